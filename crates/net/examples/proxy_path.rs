//! The node-local proxied path against a direct TCP connection on loopback, in one process
//! and one run: bulk throughput (a client streams bytes to a sink) and request/response
//! round trips (one byte each way), each direct to the server and through a service name's
//! virtual address (the overlay's proxy, as workloads reach services). `bench/proxy` runs it.
//!
//!   cargo run --release -p canopy-net --example proxy_path -- [MIB] [ROUND_TRIPS] [RUNS]

use canopy_net::overlay::{Ask, Endpoint, Overlay, PortRoute, Resolved, ServiceName, listener};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHUNK: usize = 256 * 1024;

/// A server answering each byte with one byte, until EOF, then the count of bytes it read as
/// 8 bytes (so a bulk sender knows everything arrived).
async fn server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; CHUNK];
                let mut total = 0u64;
                let mut echo = true;
                loop {
                    let read = match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => read,
                    };
                    total += read as u64;
                    // The first message says which test this is: 'r' round trips, 'b' bulk.
                    if total == read as u64 && buffer[0] == b'b' {
                        echo = false;
                    }
                    if echo && stream.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
                let _ = stream.write_all(&total.to_be_bytes()).await;
            });
        }
    });
    port
}

async fn bulk(to: SocketAddr, mib: usize) -> f64 {
    let mut stream = TcpStream::connect(to).await.expect("connect");
    let mut chunk = vec![7u8; CHUNK];
    chunk[0] = b'b';
    let bytes = mib * 1024 * 1024;
    let start = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        stream.write_all(&chunk).await.expect("send");
        sent += CHUNK;
    }
    stream.shutdown().await.expect("shutdown");
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).await.expect("the count");
    assert_eq!(
        u64::from_be_bytes(count) as usize,
        sent,
        "every byte arrived"
    );
    sent as f64 / start.elapsed().as_secs_f64() / (1024.0 * 1024.0)
}

async fn round_trips(to: SocketAddr, n: usize) -> Vec<f64> {
    let mut stream = TcpStream::connect(to).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut byte = [b'r'];
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        stream.write_all(&byte).await.expect("send");
        stream.read_exact(&mut byte).await.expect("echo");
        took.push(start.elapsed().as_secs_f64() * 1e6);
    }
    took
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn arg(index: usize, default: usize) -> usize {
    std::env::args()
        .nth(index)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let (mib, trips, runs) = (arg(1, 1024), arg(2, 20_000), arg(3, 5));
    let target = server().await;
    let endpoints = vec![Endpoint {
        instance: "sink-0".into(),
        replica: 0,
        node: "n".into(),
        address: IpAddr::from([127, 0, 0, 1]),
        ports: vec![PortRoute {
            port: 80,
            target,
            udp: false,
        }],
        rtt_ms: None,
    }];
    let slot: Arc<Mutex<Option<Overlay>>> = Arc::default();
    let reach = slot.clone();
    let ask: Ask = Arc::new(move |names: Vec<ServiceName>, _| {
        if let Some(overlay) = reach.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            for name in names {
                overlay.set_routes(name, Some(endpoints.clone()));
            }
        }
    });
    let overlay = Overlay::new(Ipv4Addr::new(127, 97, 0, 0), ask);
    overlay.set_listen(listener());
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(overlay.clone());
    let Resolved::Address(vip) = overlay.resolve("sink.bench.default.canopy").await else {
        panic!("the name does not resolve");
    };
    let paths = [
        ("direct", SocketAddr::from(([127, 0, 0, 1], target))),
        ("proxied", SocketAddr::from((vip, 80))),
    ];
    // The proxy's listener opens in a task of its own.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(paths[1].1).await.is_err() {
        assert!(Instant::now() < deadline, "the proxy never listened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut out = serde_json::Map::new();
    for (name, _) in paths {
        out.insert(
            name.to_string(),
            serde_json::json!({"mib_per_s": [], "rtt_p50_us": [], "rtt_p99_us": []}),
        );
    }
    for run in 0..runs {
        // Alternating which path goes first, so drift in the machine falls on both.
        let order: Vec<_> = if run % 2 == 0 {
            paths.to_vec()
        } else {
            paths.iter().rev().copied().collect()
        };
        for (name, to) in order {
            let rate = bulk(to, mib).await;
            let mut rtts = round_trips(to, trips).await;
            rtts.sort_by(f64::total_cmp);
            let side = &mut out[name];
            for (key, value) in [
                ("mib_per_s", rate),
                ("rtt_p50_us", percentile(&rtts, 0.5)),
                ("rtt_p99_us", percentile(&rtts, 0.99)),
            ] {
                if let Some(values) = side[key].as_array_mut() {
                    values.push(value.into());
                }
            }
        }
    }
    out.insert("mib".into(), mib.into());
    out.insert("round_trips".into(), trips.into());
    println!("{}", serde_json::Value::Object(out));
}
