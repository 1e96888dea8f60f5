//! Autoscaling on a real `canopy up` with real processes: a service whose instances burn CPU
//! (they spin while a file exists) far above their small request scales from 1 to its `max`,
//! and back to its `min` once the file is gone and its scale-down window passed; each change
//! is an `autoscale` event on the root's event stream with the numbers that drove it, and
//! `canopy describe` shows the last one.

use crate::support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{KillOnDrop, api_get, canopy_ok, eventually, token_for};

/// Samples come every two seconds at the tests' heartbeat and decisions every three: each
/// way takes a few of them.
const WITHIN: Duration = Duration::from_secs(40);

/// The `autoscale` events of the root at `url`'s stream, as they come.
fn autoscale_events(url: &str) -> mpsc::Receiver<Value> {
    let address = url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).expect("the API listens");
    // HTTP/1.0: the stream is the body until the connection ends, never chunked.
    let request = format!(
        "GET /api/v1/events HTTP/1.0\r\nHost: {address}\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {}\r\n\r\n",
        token_for(url)
    );
    stream
        .write_all(request.as_bytes())
        .expect("the request is sent");
    let mut lines = BufReader::new(stream).lines();
    let status = lines.next().expect("an answer").expect("readable");
    assert!(status.contains(" 200"), "GET /api/v1/events: {status}");
    let (events, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let Ok(change) = serde_json::from_str::<Value>(data.trim()) else {
                continue;
            };
            if change["kind"] == "autoscale" && events.send(change["object"].clone()).is_err() {
                return;
            }
        }
    });
    received
}

/// The next event of `events` that `wanted` accepts, within `within`.
fn next_event(
    events: &mpsc::Receiver<Value>,
    within: Duration,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(event) if wanted(&event) => return event,
            Ok(_) => {}
            Err(e) => panic!("no autoscale event {what} within {within:?}: {e}"),
        }
    }
}

fn service(url: &str) -> Value {
    api_get(url, "/api/v1/services/default/load/burner")
}

fn running(url: &str) -> u64 {
    service(url)["status"]["running"].as_u64().unwrap_or(0)
}

#[test]
fn a_cpu_burning_service_scales_up_to_max_and_back_to_min_after_the_load_stops() {
    let dir = tempfile::tempdir().unwrap();
    let burn = dir.path().join("burn");
    std::fs::write(&burn, "").unwrap();
    let marker = format!("canopy-autoscale-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let daemon = support::up(&dir.path().join("data"));
    let events = autoscale_events(&daemon.url);
    // Niced, so the other tests on the machine keep most of their CPU; even a share of a
    // busy core is far above 25 % of 200m. Idle, each instance wakes once a second.
    let yaml = format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: load}}\nspec:\n  services:\n\
         \x20 - name: burner\n    runtime: process\n    replicas: 1\n\
         \x20   resources: {{cpu: 200m, memory: 16Mi}}\n\
         \x20   autoscale: {{min: 1, max: 3, targetCPU: 25, scaleDownStabilizationSeconds: 3}}\n\
         \x20   command: [/usr/bin/nice, -n, '5', /bin/sh, -c, 'while :; do [ -e {} ] || sleep 1; done', {marker}]\n",
        burn.display()
    );
    support::apply(&daemon.url, dir.path(), &yaml);

    let up = next_event(&events, WITHIN, "scaling up", |e| {
        e["service"] == "burner" && e["desired"].as_u64() > e["current"].as_u64()
    });
    assert_eq!(up["current"], 1, "{up}");
    assert_eq!(
        up["desired"], 3,
        "one instance far above its target: max at once: {up}"
    );
    let cpu = &up["readings"][0];
    assert_eq!(cpu["resource"], "cpu", "{up}");
    assert_eq!(cpu["target"], 25, "{up}");
    assert!(
        cpu["usage"].as_u64().unwrap() > 25 * 11 / 10,
        "above the target: {up}"
    );
    assert!(up["error"].is_null(), "{up}");
    // The change went through `scale`: three instances run.
    eventually(WITHIN, "three burners running", || {
        (running(&daemon.url) == 3).then_some(())
    });
    assert_eq!(service(&daemon.url)["spec"]["replicas"], 3);
    let described = canopy_ok(&daemon.url, &["describe", "services", "load/burner"]);
    assert!(
        described.contains("Autoscale:   1-3 replicas, target CPU 25%; last ")
            && described.contains("1 -> 3: cpu at "),
        "{described}"
    );

    // The load stops: after the window, back to min.
    std::fs::remove_file(&burn).unwrap();
    // Each step down (one, or a few if the idle loops' own use counts) on complete data.
    let mut current = 3;
    while current > 1 {
        let down = next_event(&events, WITHIN, "scaling down", |e| {
            e["service"] == "burner" && e["desired"].as_u64() < e["current"].as_u64()
        });
        assert_eq!(down["current"], current, "{down}");
        let cpu = &down["readings"][0];
        assert!(
            cpu["usage"].as_u64().unwrap() < 25,
            "below the target: {down}"
        );
        assert_eq!(cpu["measured"], current, "every instance measured: {down}");
        current = down["desired"].as_u64().unwrap();
        assert!(current >= 1, "never below min: {down}");
    }
    eventually(WITHIN, "one burner left", || {
        let status = &service(&daemon.url)["status"];
        (status["running"] == 1 && status["other"] == 0).then_some(())
    });
    assert_eq!(service(&daemon.url)["status"]["autoscale"]["desired"], 1);
}
