//! A real link (gRPC over loopback) between a parent and a child: assignments sent back to back
//! reach the child in batches, in order, and a revoke between them keeps its place; both
//! ends count heartbeats, bytes and reconnects.

use canopy_tier::child::{self, Child};
use canopy_tier::metrics::{self, LinkCounters, LinkMetrics, PeerTier, sample_value};
use canopy_tier::parent::{Downlink, Parent, TierService};
use canopy_tier::{Assignment, Hello, Message, Revocation, Timing, Workload, pb};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tonic::Status;

/// Serves `parent` on a loopback port; its address.
fn serve<P: Parent>(parent: Arc<P>, timing: Timing) -> SocketAddr {
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let address = incoming.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TierService::new(parent, timing).into_server())
            .serve_with_incoming(incoming),
    );
    address
}

/// A child's link to the parent at `address`, kept up until closed.
struct Link {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), canopy_tier::TierError>>,
}

impl Link {
    fn open<C: Child>(address: SocketAddr, child: Arc<C>) -> Link {
        let (_uplink, outbox) = child::uplink();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(child::run(
            format!("http://{address}"),
            child::Credentials::Cleartext,
            child,
            outbox,
            stopped,
        ));
        Link { stop, task }
    }

    async fn close(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// Sends `first` assignments, a revoke, then `second` assignments as soon as the child says hello.
struct Burst {
    first: usize,
    second: usize,
}

/// An assignment of a small process workload.
fn assignment(id: String) -> Assignment {
    let spec = serde_json::from_value(serde_json::json!({
        "name": "web", "runtime": "process", "command": ["/bin/true"]
    }))
    .unwrap();
    Assignment {
        secrets: Default::default(),
        id,
        generation: 1,
        workload: Workload {
            namespace: "default".into(),
            application: "app".into(),
            service: "web".into(),
            replica: 0,
            spec,
        },
    }
}

impl Parent for Burst {
    async fn on_hello(&self, _hello: Hello, downlink: Downlink) -> Result<(), Status> {
        for i in 0..self.first {
            assert!(downlink.assign(&assignment(format!("a{i}"))));
        }
        assert!(downlink.revoke(&Revocation::new("a0", 1, "test")));
        for i in 0..self.second {
            assert!(downlink.assign(&assignment(format!("b{i}"))));
        }
        Ok(())
    }

    async fn on_message(&self, _child: &str, _message: Message) {}

    async fn on_goodbye(&self, _child: &str, _link: u64) {}
}

/// Records what it hears: each batch's ids, and revokes as `revoke:ID`.
#[derive(Default)]
struct Recorder {
    heard: Mutex<Vec<String>>,
    batches: Mutex<Vec<usize>>,
    changed: Notify,
}

impl Child for Recorder {
    async fn hello(&self) -> Hello {
        Hello {
            member: pb::Member {
                name: "child".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    async fn on_assigns(&self, assigns: Vec<Assignment>) {
        self.batches.lock().unwrap().push(assigns.len());
        self.heard
            .lock()
            .unwrap()
            .extend(assigns.into_iter().map(|a| a.id));
        self.changed.notify_one();
    }

    async fn on_revoke(&self, revoke: Revocation) {
        self.heard
            .lock()
            .unwrap()
            .push(format!("revoke:{}", revoke.id));
        self.changed.notify_one();
    }
}

#[tokio::test]
async fn assignments_arrive_in_order_in_batches_around_a_revoke() {
    let (first, second) = (700, 300);
    let timing = Timing {
        heartbeat: Duration::from_millis(200),
        deadline: Duration::from_secs(5),
    };
    let address = serve(Arc::new(Burst { first, second }), timing);
    let recorder = Arc::new(Recorder::default());
    let link = Link::open(address, recorder.clone());

    let expected = first + 1 + second;
    tokio::time::timeout(Duration::from_secs(20), async {
        while recorder.heard.lock().unwrap().len() < expected {
            recorder.changed.notified().await;
        }
    })
    .await
    .expect("every message within 20 s");

    let heard = recorder.heard.lock().unwrap().clone();
    let mut want: Vec<String> = (0..first).map(|i| format!("a{i}")).collect();
    want.push("revoke:a0".into());
    want.extend((0..second).map(|i| format!("b{i}")));
    assert_eq!(heard, want, "order kept across batches and the revoke");
    let batches = recorder.batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), first + second);
    assert!(
        batches.iter().all(|&n| n <= 512),
        "batches are capped: {batches:?}"
    );
    // All were sent before the child read any: they arrive together and are handed over
    // together; 700 before the revoke take at least two batches (the cap is 512).
    assert!(batches.iter().any(|&n| n > 1), "never batched: {batches:?}");
    assert!(batches.len() >= 3, "{batches:?}");

    link.close().await;
}

/// Sends one assignment on hello and counts the heartbeats and goodbyes it gets.
#[derive(Default)]
struct Counting {
    heartbeats: Mutex<usize>,
    goodbyes: Mutex<usize>,
    changed: Notify,
}

impl Parent for Counting {
    async fn on_hello(&self, _hello: Hello, downlink: Downlink) -> Result<(), Status> {
        assert!(downlink.assign(&assignment("slow".into())));
        Ok(())
    }

    async fn on_message(&self, _child: &str, message: Message) {
        if let Message::Heartbeat(_) = message {
            *self.heartbeats.lock().unwrap() += 1;
            self.changed.notify_one();
        }
    }

    async fn on_goodbye(&self, _child: &str, _link: u64) {
        *self.goodbyes.lock().unwrap() += 1;
    }
}

/// Takes as long as the test wants to handle its assignments.
#[derive(Default)]
struct Busy {
    release: Notify,
    handled: Notify,
}

impl Child for Busy {
    async fn hello(&self) -> Hello {
        Recorder::default().hello().await
    }

    async fn on_assigns(&self, _assigns: Vec<Assignment>) {
        self.release.notified().await;
        self.handled.notify_one();
    }

    async fn on_revoke(&self, _revoke: Revocation) {}
}

#[tokio::test]
async fn a_child_busy_with_its_assignments_still_heartbeats() {
    // A deadline a one-second stall of a loaded machine cannot break; the test waits for
    // heartbeats over more than twice it, so a child whose busy handler held back its
    // heartbeats would lose the link meanwhile.
    let timing = Timing {
        heartbeat: Duration::from_millis(50),
        deadline: Duration::from_millis(2000),
    };
    let parent = Arc::new(Counting::default());
    let address = serve(parent.clone(), timing);
    let child = Arc::new(Busy::default());
    let link = Link::open(address, child.clone());

    // The child is stuck in its handler from the start; well past the deadline, the parent
    // still hears heartbeats and keeps the link.
    let busy_since = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(20), async {
        while *parent.heartbeats.lock().unwrap() < 20
            || busy_since.elapsed() < timing.deadline * 5 / 2
        {
            let changed = parent.changed.notified();
            // Woken by a heartbeat, or after a while to look at the clock again.
            let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
        }
    })
    .await
    .expect("heartbeats for 2.5 deadlines while the child is busy");
    assert_eq!(*parent.goodbyes.lock().unwrap(), 0, "the link was dropped");

    let handled = child.handled.notified();
    child.release.notify_one();
    tokio::time::timeout(Duration::from_secs(5), handled)
        .await
        .expect("the handler finishes once released");
    link.close().await;
}

/// Counts its links' hellos and messages into its metrics; keeps each link's downlink, as
/// real parents do (a link whose downlinks are all dropped ends).
struct MeteredParent {
    links: Arc<LinkMetrics>,
    hellos: Mutex<Vec<Downlink>>,
    changed: Notify,
}

impl Parent for MeteredParent {
    async fn on_hello(&self, _hello: Hello, downlink: Downlink) -> Result<(), Status> {
        self.hellos.lock().unwrap().push(downlink);
        self.changed.notify_one();
        Ok(())
    }

    async fn on_message(&self, _child: &str, _message: Message) {
        self.changed.notify_one();
    }

    async fn on_goodbye(&self, _child: &str, _link: u64) {}

    fn link_counters(&self, child: &str) -> LinkCounters {
        self.links.counters(child, PeerTier::node)
    }
}

struct MeteredChild(Arc<LinkMetrics>);

impl Child for MeteredChild {
    async fn hello(&self) -> Hello {
        Recorder::default().hello().await
    }

    async fn on_assigns(&self, _assigns: Vec<Assignment>) {}

    async fn on_revoke(&self, _revoke: Revocation) {}

    fn link_counters(&self) -> LinkCounters {
        self.0.counters("parent", PeerTier::cluster)
    }
}

#[tokio::test]
async fn both_ends_count_heartbeats_bytes_and_the_reconnect() {
    let timing = Timing {
        heartbeat: Duration::from_millis(50),
        deadline: Duration::from_millis(2000),
    };
    let mut parent_registry = metrics::registry("parent", &[]);
    let parent = Arc::new(MeteredParent {
        links: LinkMetrics::register(&mut parent_registry),
        hellos: Mutex::new(Vec::new()),
        changed: Notify::new(),
    });
    let mut child_registry = metrics::registry("child", &[]);
    let child = Arc::new(MeteredChild(LinkMetrics::register(&mut child_registry)));
    let address = serve(parent.clone(), timing);
    // A first link, closed by the child; the second is a reconnect to both ends.
    let link = Link::open(address, child.clone());
    let text = |registry: &Registry| {
        let mut text = String::new();
        metrics::encode(registry, &mut text).unwrap();
        text
    };
    let value = |registry: &Registry, name: &str, labels: &[(&str, &str)]| {
        sample_value(&text(registry), name, labels).unwrap_or(0.0)
    };
    let heartbeats = |least: f64| {
        let (parent, parent_registry) = (&parent, &parent_registry);
        async move {
            while value(parent_registry, "parent_link_heartbeats_total", &[]) < least {
                let changed = parent.changed.notified();
                let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), heartbeats(2.0))
        .await
        .expect("heartbeats on the first link");
    link.close().await;
    let link = Link::open(address, child.clone());
    tokio::time::timeout(Duration::from_secs(20), heartbeats(5.0))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no second link heartbeating: {} hellos\n{}\n{}",
                parent.hellos.lock().unwrap().len(),
                text(&parent_registry),
                text(&child_registry)
            )
        });
    let node = [("peer_tier", "node")];
    let up = [("peer", "parent"), ("peer_tier", "cluster")];
    assert_eq!(
        value(&parent_registry, "parent_link_reconnects_total", &node),
        1.0
    );
    assert_eq!(
        value(&child_registry, "child_link_reconnects_total", &up),
        1.0
    );
    assert!(value(&parent_registry, "parent_link_up", &node) >= 1.0);
    assert_eq!(value(&child_registry, "child_link_up", &up), 1.0);
    assert!(value(&child_registry, "child_link_heartbeats_total", &up) >= 3.0);
    for (registry, prefix) in [(&parent_registry, "parent"), (&child_registry, "child")] {
        for direction in ["sent", "received"] {
            let bytes = value(
                registry,
                &format!("{prefix}_link_bytes_total"),
                &[("direction", direction)],
            );
            assert!(bytes > 0.0, "{prefix} {direction}: {}", text(registry));
        }
    }
    // What one end sent the other received, up to the messages still in flight.
    let sent = value(
        &child_registry,
        "child_link_bytes_total",
        &[("direction", "sent")],
    );
    let received = value(
        &parent_registry,
        "parent_link_bytes_total",
        &[("direction", "received")],
    );
    assert!(
        received <= sent && received > sent / 2.0,
        "{received} of {sent}"
    );
    link.close().await;
}
