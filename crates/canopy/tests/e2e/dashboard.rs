//! The dashboard in a real headless Chromium, driven over WebDriver (chromedriver) against a
//! real `canopy up`: log in, see the node in the table and on the map, apply from the
//! editor (and see a broken descriptor's field error at its line), watch the instances turn
//! Running with no reload, follow logs, exec, scale, delete, and see a call between two
//! services drawn as an edge with its rate. Assertions read the DOM; a
//! screenshot of each step goes to `target/tmp/dashboard/`.

use crate::support;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{KillOnDrop, canopy_json, pids_with};

/// Placement, process start-up and the event's way to the page, on a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(30);
const APP: &str = "dashboard-hello";
/// A script's start: `text`, what the exec terminal's screen shows (the DOM renderer's
/// rows, with its non-breaking spaces as spaces).
const SCREEN: &str = "const rows = document.querySelector('#terminal-screen .xterm-rows'); \
     const text = rows ? rows.textContent.replace(/\\u00a0/g, ' ') : '';";

/// chromedriver (and the Chromium it starts), stopped and reaped when dropped.
struct Driver {
    child: Child,
    url: String,
    /// In every Chromium process's command line (its profile dir): finds leftovers.
    profile: PathBuf,
}

impl Driver {
    fn start(dir: &Path) -> Driver {
        // A free port for chromedriver, which takes a number rather than binding port 0.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (Debian package chromium-driver)");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile: dir.join("chromium-profile"),
        };
        support::eventually(Duration::from_secs(20), "chromedriver to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        driver
    }

    async fn session(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1000", "--no-first-run",
                    format!("--user-data-dir={}", self.profile.display()),
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a WebDriver session in headless Chromium")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Chromium outlives a killed chromedriver: end what still runs with our profile.
        for pid in pids_with(&self.profile.display().to_string()) {
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// The page: polls, clicks, types and screenshots.
struct Page {
    client: Client,
    shots: PathBuf,
    step: u32,
}

impl Page {
    /// Runs `script` (its `return` value) until it is truthy, at most `within`.
    async fn until(&self, within: Duration, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self
                .client
                .execute(script, args.clone())
                .await
                .expect("the script runs in the page");
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!("")
                && value != json!(0);
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let body: Value = self
                    .client
                    .execute("return document.body.innerText", vec![])
                    .await
                    .unwrap_or_default();
                self.shot("timeout").await;
                panic!("timed out after {within:?} waiting for {what}; the page shows:\n{body}");
            }
            // A polling interval, not synchronisation: the condition above decides.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        self.until(
            SETTLE,
            &format!("{css} to be shown"),
            "const e = document.querySelector(arguments[0]); return !!e && e.offsetParent !== null;",
            vec![json!(css)],
        )
        .await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.client.find(Locator::Css(css)).await.expect(css);
        element.clear().await.expect("a field to clear");
        element.send_keys(text).await.expect("typing");
    }

    /// Keys to whatever has the focus, as a keyboard would send them (the terminal's input
    /// is xterm.js's own hidden text area, which WebDriver will not type into directly).
    async fn keys(&self, text: &str) {
        let mut actions = KeyActions::new("keyboard".to_string());
        for key in text.chars() {
            actions = actions
                .then(KeyAction::Down { value: key })
                .then(KeyAction::Up { value: key });
        }
        self.client
            .perform_actions(actions)
            .await
            .expect("keys to the page");
    }

    async fn text_of(&self, css: &str) -> String {
        let value = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(css)],
            )
            .await
            .expect("the script runs");
        value.as_str().unwrap_or_default().to_string()
    }

    async fn shot(&self, name: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let file = self.shots.join(format!("{:02}-{name}.png", self.step));
            let _ = std::fs::write(file, png);
        }
    }

    async fn step(&mut self, name: &str) {
        self.step += 1;
        self.shot(name).await;
    }

    /// Rows of the `table` whose cells satisfy `filter` (a JS expression over `cells`, a
    /// map from column label to text): `[{key, cells}]`.
    async fn rows(&self, table: &str, filter: &str) -> Vec<Value> {
        let script = format!(
            "return [...document.querySelectorAll('.vtable[data-table=\"' + arguments[0] + '\"] .vrow')]
               .map(r => ({{key: r.dataset.key, cells: Object.fromEntries([...r.children]
                 .filter(c => c.dataset.column).map(c => [c.dataset.column, c.textContent]))}}))
               .filter(({{cells}}) => {filter});"
        );
        let value = self
            .client
            .execute(&script, vec![json!(table)])
            .await
            .expect("the rows are read");
        value.as_array().cloned().unwrap_or_default()
    }

    /// Waits until `table` has exactly `count` rows matching `filter`; returns them.
    async fn rows_until(&self, table: &str, filter: &str, count: usize, what: &str) -> Vec<Value> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let rows = self.rows(table, filter).await;
            if rows.len() == count {
                return rows;
            }
            if Instant::now() >= deadline {
                self.shot("timeout").await;
                panic!("timed out waiting for {what}: {count} rows of {table}, have {rows:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn descriptor(marker: &str, replicas: &str) -> String {
    format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata:\n  name: {APP}\n  namespace: default\nspec:\n  services:\n    - name: greeter\n      runtime: process\n      command: [\"/bin/sh\", \"-c\", \"while true; do echo {marker} from $CANOPY_INSTANCE; sleep 1; done\"]\n      replicas: {replicas}\n      resources:\n        cpu: 10m\n        memory: 16Mi\n      restartPolicy: always\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_logs_in_shows_the_node_applies_follows_logs_execs_scales_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-dashboard-{}", std::process::id());
    let _workloads = KillOnDrop(marker.clone());
    let data = dir.path().join("up");
    let up = support::Daemon::start(
        &support::strings(&[
            "up",
            "--listen",
            "127.0.0.1:0",
            "--tier-listen",
            "127.0.0.1:0",
            "--data",
            &data.display().to_string(),
        ]),
        true,
    );
    let password = std::fs::read_to_string(data.join("admin-password"))
        .expect("canopy up wrote its admin's password");
    let node = support::eventually(SETTLE, "canopy up's node to be ready", || {
        canopy_json(&up.url, &["get", "nodes", "-A"])
            .into_iter()
            .find(|n| n["state"] == "Ready")
    });
    let node_name = node["name"].as_str().unwrap().to_string();

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let driver = Driver::start(dir.path());
    let mut page = Page {
        client: driver.session().await,
        shots,
        step: 0,
    };

    // Log in.
    page.client
        .goto(&up.url)
        .await
        .expect("the dashboard loads");
    page.until(
        SETTLE,
        "the login form",
        "return !document.getElementById('login').hidden;",
        vec![],
    )
    .await;
    page.step("login").await;
    page.type_into("#login-password", "not the password").await;
    page.click("#login-submit").await;
    page.until(
        SETTLE,
        "a refused login",
        "return document.getElementById('login-error').textContent;",
        vec![],
    )
    .await;
    page.type_into("#login-password", password.trim()).await;
    page.click("#login-submit").await;
    page.until(
        SETTLE,
        "the main view",
        "return !document.getElementById('main').hidden;",
        vec![],
    )
    .await;
    assert!(page.text_of("#whoami").await.starts_with("admin"));
    // Set once: a reload of the page would lose it.
    page.client
        .execute("window.notReloaded = true;", vec![])
        .await
        .unwrap();

    // The node in the nodes table and, having no location, under its cluster on the map.
    page.click("#tabs button[data-view=nodes]").await;
    let key = format!("local/{node_name}");
    let nodes = page
        .rows_until(
            "nodes",
            &format!("cells.Name === {:?}", node_name),
            1,
            "the node",
        )
        .await;
    assert_eq!(nodes[0]["key"], key.as_str());
    assert!(
        nodes[0]["cells"]["State"]
            .as_str()
            .unwrap()
            .starts_with("Ready")
    );
    assert!(
        nodes[0]["cells"]["Runtimes"]
            .as_str()
            .unwrap()
            .contains("process")
    );
    page.step("nodes").await;
    page.click("#tabs button[data-view=overview]").await;
    let chip = format!(
        "#unlocated .unlocated-cluster[data-cluster=local] .chip[data-node={:?}]",
        node_name
    );
    let class = page
        .until(
            SETTLE,
            "the node on the map",
            "const e = document.querySelector(arguments[0]); return e && e.className;",
            vec![json!(chip)],
        )
        .await;
    assert_eq!(class, "chip ready");
    assert!(
        page.client
            .find(Locator::Css("#map svg polygon.land"))
            .await
            .is_ok(),
        "the world outline is drawn"
    );
    page.step("map").await;

    // A broken descriptor: the field error names the path, at its line.
    page.click("#tabs button[data-view=editor]").await;
    let broken = descriptor(&marker, "lots");
    let line = broken
        .lines()
        .position(|l| l.contains("replicas:"))
        .unwrap()
        + 1;
    page.client
        .execute(
            "const t = document.getElementById('editor-text'); t.value = arguments[0]; t.dispatchEvent(new Event('input'));",
            vec![json!(broken)],
        )
        .await
        .unwrap();
    page.click("#editor-apply").await;
    let error = page
        .until(
            SETTLE,
            "a field error",
            "const e = document.querySelector('#editor-errors li.error'); return e && {path: e.dataset.path, line: e.dataset.line, text: e.textContent};",
            vec![],
        )
        .await;
    assert!(
        error["path"].as_str().unwrap().contains("replicas"),
        "{error}"
    );
    assert_eq!(error["line"], line.to_string().as_str(), "{error}");
    let gutter = page
        .text_of(&format!("#editor-gutter span.bad[data-line=\"{line}\"]"))
        .await;
    assert_eq!(gutter, line.to_string(), "the gutter marks the line");
    page.step("field-error").await;

    // The good one applies; its instances turn Running through the event stream.
    page.client
        .execute(
            "const t = document.getElementById('editor-text'); t.value = arguments[0]; t.dispatchEvent(new Event('input'));",
            vec![json!(descriptor(&marker, "2"))],
        )
        .await
        .unwrap();
    page.click("#editor-apply").await;
    let result = page
        .until(SETTLE, "the apply's answer", "const r = document.getElementById('editor-result'); return r.className === 'ok' && r.textContent;", vec![])
        .await;
    assert!(result.as_str().unwrap().contains(APP), "{result}");
    page.step("applied").await;
    page.click("#tabs button[data-view=instances]").await;
    let running = format!("cells.Application === {APP:?} && cells.State === 'Running'");
    let instances = page
        .rows_until("instances", &running, 2, "2 running instances")
        .await;
    assert_eq!(
        page.client
            .execute("return window.notReloaded === true;", vec![])
            .await
            .unwrap(),
        json!(true),
        "the page was not reloaded"
    );
    assert_eq!(page.text_of("#live").await, "live");
    page.step("running").await;

    // Logs: a line the workload prints.
    let id = instances[0]["key"].as_str().unwrap().to_string();
    page.click(&format!(".vrow[data-key={id:?}] button[data-action=logs]"))
        .await;
    page.until(
        SETTLE,
        "the workload's line in the logs",
        "return document.getElementById('logs-output').textContent.includes(arguments[0]);",
        vec![json!(format!("{marker} from {id}"))],
    )
    .await;
    page.step("logs").await;

    page.click("#drawer-close").await;

    // Exec: a command in the instance, through the WebSocket.
    page.click(&format!(".vrow[data-key={id:?}] button[data-action=exec]"))
        .await;
    page.until(
        SETTLE,
        "the exec session",
        "return document.getElementById('terminal-status').textContent.startsWith('running');",
        vec![],
    )
    .await;
    // A terminal: the command runs on a pseudo-terminal, keys go to it as typed.
    page.click("#terminal-screen").await;
    page.keys("tty; echo exec-$((6*7)) $CANOPY_INSTANCE\u{E007}")
        .await;
    page.until(
        SETTLE,
        "the command's output on the screen",
        &format!("{SCREEN} return text.includes(arguments[0]) && text.includes('/dev/pts/');"),
        vec![json!(format!("exec-42 {id}"))],
    )
    .await;
    // xterm.js's own rules (its colours), which the page's policy applies only as
    // constructed style sheets: the screen's text has the theme's colour.
    let colour = page
        .until(
            SETTLE,
            "the screen's colour",
            "const rows = document.querySelector('#terminal-screen .xterm-rows'); \
             return rows && getComputedStyle(rows).color;",
            vec![],
        )
        .await;
    assert_eq!(colour, json!("rgb(230, 237, 243)"), "xterm's theme applies");
    // The terminal follows the drawer's size.
    let size = |marker: &str| {
        format!(
            "{SCREEN} const m = [...text.matchAll(/{marker}-(\\d+)x(\\d+)/g)].pop(); \
             return m && [Number(m[1]), Number(m[2])];"
        )
    };
    page.keys("echo wide-$(stty size | tr ' ' x)\u{E007}").await;
    let wide = page
        .until(SETTLE, "the terminal's size", &size("wide"), vec![])
        .await;
    page.client
        .execute(
            "document.getElementById('drawer').style.width = '420px';",
            vec![],
        )
        .await
        .unwrap();
    page.until(
        SETTLE,
        "the screen to fit the narrower drawer",
        "const s = document.querySelector('#terminal-screen .xterm-screen'); \
         return !!s && s.getBoundingClientRect().width < 420;",
        vec![],
    )
    .await;
    page.keys("echo narrow-$(stty size | tr ' ' x)\u{E007}")
        .await;
    let narrow = page
        .until(
            SETTLE,
            "the terminal's size after a resize",
            &size("narrow"),
            vec![],
        )
        .await;
    assert!(
        narrow[1].as_u64().unwrap() < wide[1].as_u64().unwrap(),
        "a narrower drawer, fewer columns: {wide} then {narrow}"
    );
    page.keys("exit 3\u{E007}").await;
    page.until(
        SETTLE,
        "the exit code",
        "return document.getElementById('terminal-status').dataset.exit === '3';",
        vec![],
    )
    .await;
    page.step("exec").await;
    page.click("#drawer-close").await;

    // Scale to 3.
    page.click("#tabs button[data-view=services]").await;
    page.click(&format!(
        ".vrow[data-key=\"default/{APP}/greeter\"] button[data-action=scale]"
    ))
    .await;
    page.type_into("#scale-replicas", "3").await;
    page.click("#scale-submit").await;
    page.click("#tabs button[data-view=instances]").await;
    page.rows_until("instances", &running, 3, "3 running instances")
        .await;
    page.step("scaled").await;

    // Delete (the button asks for a second click).
    page.click("#tabs button[data-view=applications]").await;
    let delete = format!(".vrow[data-key=\"default/{APP}\"] button[data-action=delete]");
    page.click(&delete).await;
    page.click(&delete).await;
    page.rows_until(
        "applications",
        &format!("cells.Name === {APP:?}"),
        0,
        "the application gone",
    )
    .await;
    page.click("#tabs button[data-view=instances]").await;
    page.rows_until("instances", &running, 0, "no running instances")
        .await;
    page.step("deleted").await;

    // The graph: a call by service name is an edge from caller to callee, with its rate.
    support::apply(
        &up.url,
        dir.path(),
        &crate::traffic::talking_application(dir.path(), &marker),
    );
    page.click("#tabs button[data-view=graph]").await;
    let rate = page
        .until(
            SETTLE,
            "the client → server edge in the graph",
            "const p = document.querySelector('#graph path.traffic[data-traffic=\"client->server\"]');
             const t = document.querySelector('#graph text.traffic-rate[data-traffic=\"client->server\"]');
             return !!p && !!t && /[1-9].*B\\/s$/.test(t.textContent) && t.textContent;",
            vec![],
        )
        .await;
    assert!(
        rate.as_str().unwrap().ends_with("B/s"),
        "a rate in bytes per second: {rate}"
    );
    page.step("traffic").await;
    support::canopy_ok(&up.url, &["delete", "application", "talk"]);

    // Teardown: the session ends Chromium, the driver's drop chromedriver; nothing is left.
    let profile = driver.profile.display().to_string();
    page.client.close().await.expect("the session ends");
    drop(driver);
    support::eventually(Duration::from_secs(10), "no Chromium left running", || {
        pids_with(&profile).is_empty().then_some(())
    });
}
