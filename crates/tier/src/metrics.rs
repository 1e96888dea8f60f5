//! What every tier's metrics share: the Prometheus text exposition, the plain-HTTP listener
//! of `--metrics-listen`, the counters both ends of a tier link keep, and a bounded label
//! for why a placement failed. Each tier's own series are in its crate's `metrics.rs`.

pub use futures::future::BoxFuture;
use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

/// The `Content-Type` of the Prometheus text format (0.0.4) every tier answers with.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Something that writes series in the text format: a tier, or several (`canopy up`).
pub trait Exposition: Send + Sync + 'static {
    /// Appends this source's series to `out`. Async: some tiers read state behind an async
    /// lock at scrape time instead of keeping a gauge current on every change.
    fn encode<'a>(&'a self, out: &'a mut String) -> BoxFuture<'a, std::fmt::Result>;
}

/// Several sources in one exposition; their metric names must differ (each tier has its
/// own prefix: `canopy_root_`, `canopy_cluster_`, `canopy_node_`).
pub struct Chain(pub Vec<Arc<dyn Exposition>>);

impl Exposition for Chain {
    fn encode<'a>(&'a self, out: &'a mut String) -> BoxFuture<'a, std::fmt::Result> {
        Box::pin(async move {
            for source in &self.0 {
                source.encode(out).await?;
            }
            Ok(())
        })
    }
}

/// Appends `registry` in the text format.
pub fn encode(registry: &Registry, out: &mut String) -> std::fmt::Result {
    prometheus_text::encode(out, registry)
}

/// A tier's registry: its prefix and constant labels (`cluster="c0"`, `node="n1"`).
pub fn registry(prefix: &str, labels: &[(&'static str, &str)]) -> Registry {
    Registry::with_prefix_and_labels(
        prefix,
        labels
            .iter()
            .map(|(key, value)| (Cow::Borrowed(*key), Cow::Owned(value.to_string())))
            .collect::<Vec<_>>()
            .into_iter(),
    )
}

/// Buckets for latencies in seconds, from 5 ms to about 80 s (a container's first start
/// pulls its image).
pub fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Serves `source` at `/metrics` over plain HTTP on `listener` until `shutdown` (the
/// cluster's and node's `--metrics-listen`; scrapers on the host's network reach it, so
/// bind it where only they can).
pub fn serve(
    listener: tokio::net::TcpListener,
    source: Arc<dyn Exposition>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(answer))
        .with_state(source);
    async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// The `/metrics` handler over any source (the root mounts it behind its authentication).
pub async fn answer(
    axum::extract::State(source): axum::extract::State<Arc<dyn Exposition>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut body = String::with_capacity(16 * 1024);
    match source.encode(&mut body).await {
        Ok(()) => ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(_) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics",
        )
            .into_response(),
    }
}

/// The tier at the other end of a link.
#[derive(
    Debug, Clone, Copy, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelValue,
)]
#[allow(non_camel_case_types)]
pub enum PeerTier {
    root,
    cluster,
    node,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabels {
    peer: String,
    peer_tier: PeerTier,
}

#[derive(
    Debug, Clone, Copy, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelValue,
)]
#[allow(non_camel_case_types)]
enum Direction {
    sent,
    received,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkBytesLabels {
    peer: String,
    peer_tier: PeerTier,
    direction: Direction,
}

/// The link series of one tier, per peer (its parent, its children).
#[derive(Debug, Default)]
pub struct LinkMetrics {
    heartbeats: Family<LinkLabels, Counter>,
    reconnects: Family<LinkLabels, Counter>,
    bytes: Family<LinkBytesLabels, Counter>,
    up: Family<LinkLabels, Gauge>,
}

impl LinkMetrics {
    /// Registers the `link_*` families in `registry`.
    pub fn register(registry: &mut Registry) -> Arc<LinkMetrics> {
        let metrics = Arc::new(LinkMetrics::default());
        registry.register(
            "link_heartbeats",
            "Heartbeats sent to the parent (peer_tier root or cluster) or received from a child",
            metrics.heartbeats.clone(),
        );
        registry.register(
            "link_reconnects",
            "Times the link to this peer was set up again after the first time",
            metrics.reconnects.clone(),
        );
        registry.register(
            "link_bytes",
            "Protobuf bytes of the link's messages (without gRPC framing and TLS)",
            metrics.bytes.clone(),
        );
        registry.register(
            "link_up",
            "Links up with this peer: 1 while up, 0 while down",
            metrics.up.clone(),
        );
        metrics
    }

    /// The counters of the link with `peer`: handles kept by the link, so that counting a
    /// message is an atomic add, not a lookup.
    pub fn counters(&self, peer: &str, peer_tier: PeerTier) -> LinkCounters {
        let labels = LinkLabels {
            peer: peer.to_string(),
            peer_tier,
        };
        let bytes = |direction| LinkBytesLabels {
            peer: peer.to_string(),
            peer_tier,
            direction,
        };
        LinkCounters {
            heartbeats: self.heartbeats.get_or_create_owned(&labels),
            reconnects: self.reconnects.get_or_create_owned(&labels),
            sent: self.bytes.get_or_create_owned(&bytes(Direction::sent)),
            received: self.bytes.get_or_create_owned(&bytes(Direction::received)),
            up: self.up.get_or_create_owned(&labels),
        }
    }
}

/// One link's counters; the default ones count into nothing registered.
#[derive(Debug, Clone, Default)]
pub struct LinkCounters {
    pub heartbeats: Counter,
    pub reconnects: Counter,
    pub sent: Counter,
    pub received: Counter,
    pub up: Gauge,
}

impl LinkCounters {
    pub fn sent(&self, message: &impl prost::Message) {
        self.sent.inc_by(message.encoded_len() as u64);
    }

    pub fn received(&self, message: &impl prost::Message) {
        self.received.inc_by(message.encoded_len() as u64);
    }
}

/// Placement attempts and failures by reason, at the root (over clusters) or a cluster
/// (over nodes).
#[derive(Debug, Default)]
pub struct SchedulingMetrics {
    attempts: Counter,
    failures: Family<ReasonLabel, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

impl SchedulingMetrics {
    pub fn register(registry: &mut Registry) -> Arc<SchedulingMetrics> {
        let metrics = Arc::new(SchedulingMetrics::default());
        registry.register(
            "scheduling_attempts",
            "Placement decisions tried for an instance",
            metrics.attempts.clone(),
        );
        registry.register(
            "scheduling_failures",
            "Placement decisions that found no candidate, by the reason that ruled out most",
            metrics.failures.clone(),
        );
        metrics
    }

    pub fn attempted(&self, attempts: u64) {
        self.attempts.inc_by(attempts);
    }

    pub fn failed(&self, reason: &str) {
        let label = ReasonLabel {
            reason: reason.to_string(),
        };
        self.failures.get_or_create(&label).inc();
    }
}

/// A failure's label: the filter reason that ruled out most candidates (a short static
/// text of the scheduler, so the label set stays small), or `no candidates`.
pub fn failure_reason(explanation: &canopy_sched::Explanation) -> &str {
    explanation
        .reasons
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map_or("no candidates", |(reason, _)| reason.as_str())
}

/// The value of the sample `name` whose labels include every `labels` pair, in a text
/// exposition (for tests and benchmarks: a parser of the one format the tiers write).
pub fn sample_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let has = |(key, wanted): &(&str, &str)| {
                rest.split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .any(|(k, v)| k == *key && v.trim_matches('"') == *wanted)
            };
            labels.iter().all(has).then(|| value.parse().ok())?
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_counters_render_per_peer_and_direction() {
        let mut registry = registry("canopy_cluster", &[("cluster", "c0")]);
        let links = LinkMetrics::register(&mut registry);
        let root = links.counters("root", PeerTier::root);
        root.heartbeats.inc();
        root.heartbeats.inc();
        root.sent.inc_by(40);
        root.up.set(1);
        links.counters("n1", PeerTier::node).received.inc_by(7);
        let mut text = String::new();
        encode(&registry, &mut text).unwrap();
        assert!(text.contains("# TYPE canopy_cluster_link_heartbeats_total counter"));
        let value = |name, labels: &[(&str, &str)]| sample_value(&text, name, labels);
        let root_peer = [("peer", "root"), ("peer_tier", "root"), ("cluster", "c0")];
        assert_eq!(
            value("canopy_cluster_link_heartbeats_total", &root_peer),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            value("canopy_cluster_link_up", &root_peer),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(
                "canopy_cluster_link_bytes_total",
                &[("peer", "root"), ("direction", "sent")]
            ),
            Some(40.0),
            "{text}"
        );
        assert_eq!(
            value(
                "canopy_cluster_link_bytes_total",
                &[("peer", "n1"), ("direction", "received")]
            ),
            Some(7.0),
            "{text}"
        );
        assert_eq!(
            value(
                "canopy_cluster_link_bytes_total",
                &[("peer", "n1"), ("direction", "sent")]
            ),
            Some(0.0),
            "{text}"
        );
        assert_eq!(value("canopy_cluster_link_up", &[("peer", "nobody")]), None);
        assert!(
            !text.contains("# EOF"),
            "the 0.0.4 text format has no EOF marker"
        );
    }

    #[test]
    fn the_failure_label_is_the_most_common_reason() {
        let mut explanation = canopy_sched::Explanation::new("nodes", 3);
        assert_eq!(failure_reason(&explanation), "no candidates");
        explanation.reasons.insert("not ready".to_string(), 1);
        explanation
            .reasons
            .insert("insufficient cpu".to_string(), 2);
        assert_eq!(failure_reason(&explanation), "insufficient cpu");
        let mut registry = registry("canopy_root", &[]);
        let scheduling = SchedulingMetrics::register(&mut registry);
        scheduling.attempted(3);
        scheduling.failed(failure_reason(&explanation));
        let mut text = String::new();
        encode(&registry, &mut text).unwrap();
        assert_eq!(
            sample_value(&text, "canopy_root_scheduling_attempts_total", &[]),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            sample_value(
                &text,
                "canopy_root_scheduling_failures_total",
                &[("reason", "insufficient cpu")]
            ),
            Some(1.0),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_chain_serves_every_source_over_http() {
        struct Fixed(&'static str);
        impl Exposition for Fixed {
            fn encode<'a>(&'a self, out: &'a mut String) -> BoxFuture<'a, std::fmt::Result> {
                out.push_str(self.0);
                Box::pin(async { Ok(()) })
            }
        }
        let chain: Arc<dyn Exposition> = Arc::new(Chain(vec![
            Arc::new(Fixed("a_total 1\n")),
            Arc::new(Fixed("b 2\n")),
        ]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, chain, async move {
            let _ = stopped.await;
        }));
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(CONTENT_TYPE), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        assert_eq!(sample_value(body, "a_total", &[]), Some(1.0), "{answer}");
        assert_eq!(sample_value(body, "b", &[]), Some(2.0), "{answer}");
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
