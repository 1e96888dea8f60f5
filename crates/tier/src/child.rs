//! The child's end of a link: dial, hello, heartbeats and deltas, reconnect with backoff.

use crate::metrics::LinkCounters;
pub use crate::outbox::{Outbox, Uplink, uplink};
use crate::pb::{self, up};
use crate::session::{Assignment, Hello, Revocation};
use crate::streams::{End, Frame, Pipe, forward_inbound};
use crate::trust::{self, Identity, TrustError};
use crate::{TierError, Timing};
use futures::FutureExt;
use futures::StreamExt;
use rand::Rng;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

type TierClient = pb::tier_client::TierClient<Channel>;

/// What a child (cluster or node) tells and hears over its link.
pub trait Child: Send + Sync + 'static {
    /// The full observed state, sent first on every connection: the parent diffs it against
    /// its own view, so nothing that happened while the link was down is lost.
    fn hello(&self) -> impl Future<Output = Hello> + Send;
    /// Empty by default: parents compute allocation from their own placements, and an empty
    /// heartbeat keeps idle traffic to a few bytes.
    fn heartbeat(&self) -> impl Future<Output = pb::Heartbeat> + Send {
        async { pb::Heartbeat::default() }
    }
    /// Assignments that arrived together, in order: a root placing a thousand instances
    /// sends them back to back, and a child that persists them commits them at once.
    fn on_assigns(&self, assigns: Vec<Assignment>) -> impl Future<Output = ()> + Send;
    fn on_revoke(&self, revoke: Revocation) -> impl Future<Output = ()> + Send;
    /// Peers to probe for latency.
    fn on_peers(&self, _peers: pb::Peers) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// The parent asked for a session stream (logs, exec, port-forward) and `pipe` is its
    /// end of it, already open; it runs in its own task. Refused by default.
    fn on_stream(&self, _open: pb::OpenStream, pipe: Pipe) -> impl Future<Output = ()> + Send {
        async move {
            pipe.end(End::error("unsupported", "this tier serves no streams"))
                .await
        }
    }

    /// The operator's settings of this child's nodes (cordon, labels): the whole set.
    fn on_configure(&self, _config: pb::NodeConfig) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// Overlay routes of services this child asked for.
    fn on_routes(&self, _routes: pb::Routes) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The root made a join token for one of this cluster's nodes: keep it. The error is
    /// told to the root.
    fn on_node_token(
        &self,
        _token: pb::NodeToken,
    ) -> impl Future<Output = Result<(), String>> + Send {
        async { Err("this tier admits no nodes".to_string()) }
    }
    /// The operator removed the node `name`: revoke its certificates and forget it.
    fn on_remove_node(&self, _name: String) -> impl Future<Output = Result<(), String>> + Send {
        async { Err("this tier has no nodes".to_string()) }
    }
    /// The link came up (with the parent's timing) or went down.
    fn on_link(&self, _up: Option<Timing>) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// Where the link counts its heartbeats, reconnects and bytes (nowhere by default).
    fn link_counters(&self) -> LinkCounters {
        LinkCounters::default()
    }
}

/// Exponential backoff with full jitter, so that many children cut off together do not
/// reconnect together.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            current: min,
        }
    }

    fn next(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        let millis = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }

    fn reset(&mut self) {
        self.current = self.min;
    }
}

/// How a child proves who it is to its parent.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// For `http://` parents only: no TLS and no identity.
    Cleartext,
    /// Mutual TLS with this identity (for `https://` parents), renewed before it expires and
    /// saved again in `dir`.
    Certificate { identity: Identity, dir: PathBuf },
}

/// The identity a child links with, replaced when it is renewed.
struct Trusted {
    identity: std::sync::Mutex<Identity>,
    dir: PathBuf,
}

impl Trusted {
    fn current(&self) -> Identity {
        match self.identity.lock() {
            Ok(identity) => identity.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The TLS a parent URL calls for: an `https://` parent is only ever dialled with a
/// certificate, never in cleartext.
fn trusted(parent: &str, credentials: Credentials) -> Result<Option<Arc<Trusted>>, TierError> {
    let refuse = |reason: &str| TierError::Address {
        address: parent.to_string(),
        reason: reason.to_string(),
    };
    match (credentials, parent.starts_with("https://")) {
        (Credentials::Certificate { identity, dir }, true) => Ok(Some(Arc::new(Trusted {
            identity: std::sync::Mutex::new(identity),
            dir,
        }))),
        (Credentials::Cleartext, false) => Ok(None),
        (Credentials::Cleartext, true) => Err(refuse(
            "an https:// parent is dialled with a certificate only (join it with a token)",
        )),
        (Credentials::Certificate { .. }, false) => Err(refuse(
            "a certificate is presented over TLS only: use the parent's https:// tier address",
        )),
    }
}

/// Keeps the link to `parent` up until `stop` turns true.
pub async fn run<C: Child>(
    parent: String,
    credentials: Credentials,
    child: Arc<C>,
    outbox: Outbox,
    mut stop: watch::Receiver<bool>,
) -> Result<(), TierError> {
    let endpoint = endpoint(&parent)?;
    let trusted = trusted(&parent, credentials)?;
    let _renewal = trusted.as_ref().map(|trusted| {
        Renewal(tokio::spawn(renew_forever(
            parent.clone(),
            trusted.clone(),
            stop.clone(),
        )))
    });
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let counters = child.link_counters();
    loop {
        let started = Instant::now();
        let result = tokio::select! {
            result = session(&endpoint, trusted.as_deref(), &child, &outbox, &counters) => result,
            _ = crate::stopped(&mut stop) => return Ok(()),
        };
        counters.up.set(0);
        child.on_link(None).await;
        match result {
            Ok(()) => tracing::info!(%parent, "parent closed the link"),
            Err(e) => tracing::warn!(%parent, error = %e, "link to parent failed"),
        }
        // A link that held for a while was healthy: start the backoff afresh.
        if started.elapsed() > Duration::from_secs(10) {
            backoff.reset();
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next()) => {}
            _ = crate::stopped(&mut stop) => return Ok(()),
        }
    }
}

/// Stops renewing when the link stops.
struct Renewal(tokio::task::JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews the certificate at two thirds of its lifetime, over a mutual-TLS call: the link
/// stays up (its handshake is done); the next connection presents the new certificate.
async fn renew_forever(parent: String, trusted: Arc<Trusted>, mut stop: watch::Receiver<bool>) {
    let mut retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        let current = trusted.current();
        let wait = current.renew_at_unix() - OffsetDateTime::now_utc().unix_timestamp();
        let wait = Duration::from_secs(u64::try_from(wait).unwrap_or(0));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::stopped(&mut stop) => return,
        }
        match current.renew(&parent).await {
            Ok(renewed) => {
                if let Err(e) = renewed.save(&trusted.dir) {
                    tracing::warn!(error = %e, "keeping a renewed certificate in memory only");
                }
                tracing::info!(name = %renewed.name, "certificate renewed");
                if let Ok(mut identity) = trusted.identity.lock() {
                    *identity = renewed;
                }
                retry.reset();
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the certificate failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(retry.next()) => {}
                    _ = crate::stopped(&mut stop) => return,
                }
            }
        }
    }
}

fn endpoint(parent: &str) -> Result<Endpoint, TierError> {
    let endpoint = Endpoint::from_shared(parent.to_string()).map_err(|e| TierError::Address {
        address: parent.to_string(),
        reason: e.to_string(),
    })?;
    Ok(endpoint
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        // Notices a parent that vanished without closing the connection (partition, power loss).
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true))
}

/// Most assignments handed to the child at once (one commit for all of them at the cluster).
const MAX_ASSIGN_BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connect: {}", trust::chain_text(.0))]
    Connect(#[from] tonic::transport::Error),
    #[error("{0}")]
    Trust(#[from] TrustError),
    #[error("{0}")]
    Status(#[from] tonic::Status),
    #[error("parent did not welcome the link: {0}")]
    NoWelcome(&'static str),
    #[error("outgoing stream closed")]
    Closed,
}

async fn session<C: Child>(
    endpoint: &Endpoint,
    trusted: Option<&Trusted>,
    child: &Arc<C>,
    outbox: &Outbox,
    counters: &LinkCounters,
) -> Result<(), SessionError> {
    let channel = match trusted {
        Some(trusted) => {
            let identity = trusted.current();
            if identity.expired(OffsetDateTime::now_utc()) {
                tracing::warn!(name = %identity.name, "the certificate has expired: the parent will refuse it");
            }
            trust::connect(endpoint, identity.client_config()?).await?
        }
        None => endpoint.connect().await?,
    };
    let mut client = pb::tier_client::TierClient::new(channel)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    // Anything queued before now is covered by the hello built next.
    outbox.clear();
    let hello = child.hello().await.to_pb();
    let (tx, rx) = mpsc::channel::<pb::Up>(1024);
    let mut sender = Sender {
        tx,
        seq: 0,
        counters: counters.clone(),
    };
    sender.send(up::Body::Hello(hello)).await?;
    let mut inbound = client.link(ReceiverStream::new(rx)).await?.into_inner();

    let first = tokio::time::timeout(Duration::from_secs(10), inbound.message()).await;
    if let Ok(Ok(Some(down))) = &first {
        // Heard from in an earlier session of this process: this link is a reconnect.
        if counters.received.get() > 0 {
            counters.reconnects.inc();
        }
        counters.received(down);
    }
    let timing = match first {
        Ok(Ok(Some(pb::Down {
            body: Some(pb::down::Body::Welcome(welcome)),
            ..
        }))) => Timing {
            heartbeat: Duration::from_millis(welcome.heartbeat_interval_ms.max(10)),
            deadline: Duration::from_millis(welcome.deadline_ms.max(30)),
        },
        Ok(Err(status)) => return Err(status.into()),
        Ok(Ok(_)) => return Err(SessionError::NoWelcome("first message was not a welcome")),
        Err(_) => return Err(SessionError::NoWelcome("no answer within 10 s")),
    };
    counters.up.set(1);
    child.on_link(Some(timing)).await;
    // Heartbeats and deltas go out from their own task, so a child busy with what it was
    // sent (a node admitting hundreds of assignments) still heartbeats and reports.
    let mut writer = Writer(tokio::spawn(write_loop(
        sender,
        outbox.clone(),
        child.clone(),
        timing.heartbeat,
    )));
    tokio::select! {
        result = read_loop(&mut inbound, child, &client, outbox, counters) => {
            writer.0.abort();
            // Once it has stopped, the outbox is free for the next session.
            let _ = (&mut writer.0).await;
            result
        }
        written = &mut writer.0 => written.unwrap_or(Err(SessionError::Closed)),
    }
}

/// A session's writer task, stopped however the session ends (also when it is dropped, as
/// on shutdown): a writer left running would keep heartbeating for a dead session.
struct Writer(tokio::task::JoinHandle<Result<(), SessionError>>);

impl Drop for Writer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Hands what the parent sends to the child, in order, until the link ends.
async fn read_loop<C: Child>(
    inbound: &mut tonic::Streaming<pb::Down>,
    child: &Arc<C>,
    client: &TierClient,
    outbox: &Outbox,
    counters: &LinkCounters,
) -> Result<(), SessionError> {
    loop {
        let Some(message) = inbound.message().await? else {
            return Ok(());
        };
        counters.received(&message);
        // Assignments already received go to the child as one batch; the first other
        // message after them is handled next, in order.
        let mut body = message.body;
        let mut assigns = Vec::new();
        while let Some(pb::down::Body::Assign(assign)) = body {
            match Assignment::from_pb(&assign) {
                Ok(assignment) => assigns.push(assignment),
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed assignment"),
            }
            body = None;
            if assigns.len() == MAX_ASSIGN_BATCH {
                break;
            }
            match inbound.message().now_or_never() {
                None => break,
                Some(Ok(Some(next))) => {
                    counters.received(&next);
                    body = next.body
                }
                // The stream ended or failed: what arrived before still counts.
                Some(end) => {
                    child.on_assigns(assigns).await;
                    return end.map(|_| ()).map_err(SessionError::from);
                }
            }
        }
        if !assigns.is_empty() {
            child.on_assigns(assigns).await;
        }
        match body {
            Some(pb::down::Body::Revoke(revoke)) => {
                child.on_revoke(Revocation::from_pb(revoke)).await
            }
            Some(pb::down::Body::Peers(peers)) => child.on_peers(peers).await,
            Some(pb::down::Body::OpenStream(open)) => {
                tokio::spawn(open_stream(client.clone(), child.clone(), open));
            }
            Some(pb::down::Body::Configure(config)) => child.on_configure(config).await,
            Some(pb::down::Body::Routes(routes)) => child.on_routes(routes).await,
            Some(pb::down::Body::NodeToken(token)) => {
                let request = token.request;
                let answer = child.on_node_token(token).await;
                outbox.answer(request, answer);
            }
            Some(pb::down::Body::RemoveNode(remove)) => {
                let answer = child.on_remove_node(remove.name).await;
                outbox.answer(remove.request, answer);
            }
            _ => {}
        }
    }
}

/// Answers the parent's `OpenStream` with a new call on the link's connection (its first
/// frame claims the stream), then hands the child its end.
async fn open_stream<C: Child>(mut client: TierClient, child: Arc<C>, open: pb::OpenStream) {
    let (to_parent, outgoing) = mpsc::channel::<Frame>(64);
    let claim = pb::StreamFrame {
        body: Some(pb::stream_frame::Body::Claim(open.stream_id)),
    };
    let outgoing = tokio_stream::once(claim)
        .chain(ReceiverStream::new(outgoing).map(|frame: Frame| frame.to_pb()));
    let inbound = match client.session(outgoing).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            tracing::warn!(stream = open.stream_id, %status, "parent refused a stream");
            return;
        }
    };
    let (from_parent, incoming) = mpsc::channel::<Frame>(64);
    forward_inbound(inbound, from_parent);
    child
        .on_stream(
            open,
            Pipe {
                tx: to_parent,
                rx: incoming,
            },
        )
        .await;
}

/// Sends a heartbeat every `every` and each delta the child queues, until the link fails.
async fn write_loop<C: Child>(
    mut sender: Sender,
    outbox: Outbox,
    child: Arc<C>,
    every: Duration,
) -> Result<(), SessionError> {
    let _writing = outbox.writer.lock().await;
    let mut heartbeat = tokio::time::interval(every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    loop {
        for body in outbox.take_all() {
            sender.send(body).await?;
        }
        tokio::select! {
            _ = heartbeat.tick() => {
                let beat = child.heartbeat().await;
                sender.send(up::Body::Heartbeat(beat)).await?;
                sender.counters.heartbeats.inc();
            }
            _ = outbox.ready.notified() => {}
        }
    }
}

struct Sender {
    tx: mpsc::Sender<pb::Up>,
    seq: u64,
    counters: LinkCounters,
}

impl Sender {
    async fn send(&mut self, body: up::Body) -> Result<(), SessionError> {
        self.seq += 1;
        let message = pb::Up {
            seq: self.seq,
            body: Some(body),
        };
        self.counters.sent(&message);
        self.tx
            .send(message)
            .await
            .map_err(|_| SessionError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn backoff_grows_to_its_ceiling_with_jitter_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let waits: Vec<Duration> = (0..6).map(|_| backoff.next()).collect();
        let ceilings = [100, 200, 400, 800, 800, 800];
        for (wait, ceiling) in waits.iter().zip(ceilings) {
            assert!(
                *wait <= Duration::from_millis(ceiling),
                "{wait:?} > {ceiling}ms"
            );
            assert!(
                *wait >= Duration::from_millis(ceiling / 2),
                "{wait:?} < half of {ceiling}ms"
            );
        }
        backoff.reset();
        assert!(backoff.next() <= Duration::from_millis(100));
    }
}
