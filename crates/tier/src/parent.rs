//! The parent's end: accept links, hand messages to the handler, drop silent children.

use crate::Timing;
use crate::answers::{ANSWER_DEADLINE, Answers, AskError};
use crate::metrics::LinkCounters;
use crate::pb::{self, down, up};
use crate::session::{Assignment, Hello, Message, Revocation};
use crate::streams::{CLAIM_DEADLINE, Frame, Pending, Pipe, StreamError, forward_inbound};
use futures::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// What a parent (root or cluster) does with its children's links.
pub trait Parent: Send + Sync + 'static {
    /// A child connected. Refuse it with an error status, or keep `downlink` to talk to it.
    fn on_hello(
        &self,
        hello: Hello,
        downlink: Downlink,
    ) -> impl Future<Output = Result<(), Status>> + Send;
    fn on_message(&self, child: &str, message: Message) -> impl Future<Output = ()> + Send;
    /// The link with this id ended (closed, failed, or silent past the deadline). A newer
    /// link of the same child may already be up: compare `link`.
    fn on_goodbye(&self, child: &str, link: u64) -> impl Future<Output = ()> + Send;
    /// Where the link with `child` counts its heartbeats, reconnects and bytes (nowhere
    /// by default). Asked once per link.
    fn link_counters(&self, _child: &str) -> LinkCounters {
        LinkCounters::default()
    }
}

/// Sends messages down one link.
#[derive(Clone, Debug)]
pub struct Downlink {
    link: u64,
    tx: mpsc::Sender<Result<pb::Down, Status>>,
    seq: Arc<AtomicU64>,
    pending: Arc<Pending>,
    answers: Arc<Answers>,
    child: Arc<str>,
    counters: LinkCounters,
}

/// Messages queued for a child beyond this mean it is not reading; they are dropped and the
/// child's next hello resynchronises.
const DOWNLINK_CAPACITY: usize = 16 * 1024;

impl Downlink {
    pub fn link(&self) -> u64 {
        self.link
    }

    /// False (here and below) when the link is gone or congested.
    pub fn assign(&self, assignment: &Assignment) -> bool {
        self.send(down::Body::Assign(assignment.to_pb()))
    }

    pub fn revoke(&self, revocation: &Revocation) -> bool {
        self.send(down::Body::Revoke(revocation.to_pb()))
    }

    pub fn peers(&self, peers: Vec<pb::Peer>) -> bool {
        self.send(down::Body::Peers(pb::Peers { peers }))
    }

    /// Asks the child to open a session stream for `open` (its `stream_id` is set here) and
    /// waits for the child's call: an error when the link is down or the child does not
    /// answer within [`CLAIM_DEADLINE`].
    pub async fn open_stream(&self, mut open: pb::OpenStream) -> Result<Pipe, StreamError> {
        let waiting = self.pending.register();
        open.stream_id = waiting.id;
        let down = || StreamError::LinkDown(self.child.to_string());
        if !self.send(down::Body::OpenStream(open)) {
            return Err(down());
        }
        let mut waiting = waiting;
        tokio::select! {
            pipe = &mut waiting.rx => pipe.map_err(|_| down()),
            _ = tokio::time::sleep(CLAIM_DEADLINE) => {
                Err(StreamError::NotClaimed(self.child.to_string(), CLAIM_DEADLINE))
            }
            _ = self.tx.closed() => Err(down()),
        }
    }

    /// The operator's settings of the child's nodes (the whole set).
    pub fn configure(&self, config: pb::NodeConfig) -> bool {
        self.send(down::Body::Configure(config))
    }

    /// Overlay routes of services the child is interested in.
    pub fn routes(&self, routes: pb::Routes) -> bool {
        self.send(down::Body::Routes(routes))
    }

    /// Hands the child a node token (see `trust::Enrolment::node_token`) and waits until it
    /// has kept it.
    pub async fn node_token(&self, mut token: pb::NodeToken) -> Result<(), AskError> {
        self.ask(|request| {
            token.request = request;
            down::Body::NodeToken(token)
        })
        .await
    }

    /// Asks the child to revoke its node `name`'s certificates and forget it, and waits.
    pub async fn remove_node(&self, name: &str) -> Result<(), AskError> {
        self.ask(|request| {
            down::Body::RemoveNode(pb::RemoveNode {
                request,
                name: name.to_string(),
            })
        })
        .await
    }

    async fn ask(&self, body: impl FnOnce(u64) -> down::Body) -> Result<(), AskError> {
        let question = self.answers.register();
        let child = || self.child.to_string();
        if !self.send(body(question.id)) {
            return Err(AskError::LinkDown(child()));
        }
        let mut question = question;
        tokio::select! {
            answer = &mut question.rx => match answer {
                Ok(error) if error.is_empty() => Ok(()),
                Ok(error) => Err(AskError::Refused(child(), error)),
                Err(_) => Err(AskError::LinkDown(child())),
            },
            _ = tokio::time::sleep(ANSWER_DEADLINE) => Err(AskError::NoAnswer(child(), ANSWER_DEADLINE)),
            _ = self.tx.closed() => Err(AskError::LinkDown(child())),
        }
    }

    /// Ends the link with `status`: the child sees it as the link's error.
    pub fn end(&self, status: Status) -> bool {
        self.tx.try_send(Err(status)).is_ok()
    }

    fn send(&self, body: down::Body) -> bool {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let message = pb::Down {
            seq,
            body: Some(body),
        };
        self.counters.sent(&message);
        self.tx.try_send(Ok(message)).is_ok()
    }
}

pub struct TierService<P> {
    parent: Arc<P>,
    timing: Timing,
    next_link: AtomicU64,
    pending: Arc<Pending>,
    answers: Arc<Answers>,
}

impl<P: Parent> TierService<P> {
    pub fn new(parent: Arc<P>, timing: Timing) -> Self {
        TierService {
            parent,
            timing,
            next_link: AtomicU64::new(1),
            pending: Arc::new(Pending::default()),
            answers: Arc::new(Answers::default()),
        }
    }

    /// The gRPC service, ready to be merged into an axum router or served by tonic.
    pub fn into_server(self) -> pb::tier_server::TierServer<Self> {
        pb::tier_server::TierServer::new(self)
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024)
    }
}

#[tonic::async_trait]
impl<P: Parent> pb::tier_server::Tier for TierService<P> {
    type LinkStream = ReceiverStream<Result<pb::Down, Status>>;
    type SessionStream = futures::stream::BoxStream<'static, Result<pb::StreamFrame, Status>>;

    /// A child answering an `OpenStream`: its first frame names the stream it claims.
    async fn session(
        &self,
        request: Request<Streaming<pb::StreamFrame>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = request.into_inner();
        let id = match tokio::time::timeout(CLAIM_DEADLINE, inbound.message()).await {
            Ok(Ok(Some(pb::StreamFrame {
                body: Some(pb::stream_frame::Body::Claim(id)),
            }))) => id,
            Ok(Err(status)) => return Err(status),
            Ok(Ok(_)) => return Err(Status::invalid_argument("the first frame must be a claim")),
            Err(_) => return Err(Status::deadline_exceeded("no claim within the deadline")),
        };
        let (ours, theirs) = Pipe::pair();
        let Pipe { tx, rx } = theirs;
        if self.pending.deliver(id, ours).is_err() {
            return Err(Status::not_found(format!(
                "no stream {id} is waiting (unknown, or past its deadline)"
            )));
        }
        forward_inbound(inbound, tx);
        let outbound = ReceiverStream::new(rx).map(|frame: Frame| Ok(frame.to_pb()));
        Ok(Response::new(outbound.boxed()))
    }

    async fn link(
        &self,
        request: Request<Streaming<pb::Up>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let peer = request.extensions().get::<crate::trust::Peer>().cloned();
        let mut inbound = request.into_inner();
        let deadline = self.timing.deadline;
        let hello = match tokio::time::timeout(deadline, inbound.message()).await {
            Ok(Ok(Some(pb::Up {
                body: Some(up::Body::Hello(hello)),
                ..
            }))) => hello,
            Ok(Err(status)) => return Err(status),
            Ok(Ok(_)) => {
                return Err(Status::invalid_argument(
                    "the first message must be a hello",
                ));
            }
            Err(_) => return Err(Status::deadline_exceeded("no hello within the deadline")),
        };
        let hello_bytes = prost::Message::encoded_len(&hello) as u64;
        if let Err(e) = crate::version::compatible(crate::version::VERSION, &hello.version) {
            let name = hello.member.as_ref().map(|m| m.name.as_str()).unwrap_or("");
            tracing::warn!(child = %name, error = %e, "refused a hello");
            return Err(Status::failed_precondition(format!("{name}: {e}")));
        }
        let hello = Hello::from_pb(hello).map_err(|e| Status::invalid_argument(e.to_string()))?;
        crate::session::authenticate(&hello, peer.as_ref()).map_err(|e| {
            tracing::warn!(error = %e, "refused a hello");
            Status::permission_denied(e.to_string())
        })?;
        let child = hello.name().to_string();
        let (tx, rx) = mpsc::channel(DOWNLINK_CAPACITY);
        let counters = self.parent.link_counters(&child);
        // A child heard from before (since this parent started) is linking again.
        if counters.received.get() > 0 {
            counters.reconnects.inc();
        }
        // Counted up and down: a child that reconnects before its old link has ended
        // has two links for a moment.
        counters.up.inc();
        counters.received.inc_by(hello_bytes);
        let downlink = Downlink {
            link: self.next_link.fetch_add(1, Ordering::Relaxed),
            tx,
            seq: Arc::new(AtomicU64::new(0)),
            pending: self.pending.clone(),
            answers: self.answers.clone(),
            child: Arc::from(child.as_str()),
            counters: counters.clone(),
        };
        downlink.send(down::Body::Welcome(pb::Welcome {
            heartbeat_interval_ms: self.timing.heartbeat.as_millis() as u64,
            deadline_ms: deadline.as_millis() as u64,
        }));
        self.parent.on_hello(hello, downlink.clone()).await?;
        let parent = self.parent.clone();
        let answers = self.answers.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::time::timeout(deadline, inbound.message()).await;
                if let Ok(Ok(Some(received))) = &message {
                    counters.received(received);
                    if matches!(received.body, Some(up::Body::Heartbeat(_))) {
                        counters.heartbeats.inc();
                    }
                }
                match message {
                    Ok(Ok(Some(pb::Up {
                        body: Some(up::Body::Answer(answer)),
                        ..
                    }))) => {
                        let _ = answers.deliver(answer.request, answer.error);
                    }
                    Ok(Ok(Some(pb::Up {
                        body: Some(body), ..
                    }))) => {
                        if let Some(message) = Message::from_pb(&child, body) {
                            parent.on_message(&child, message).await;
                        }
                    }
                    Ok(Ok(Some(_))) => {}
                    Ok(Ok(None)) => break,
                    Ok(Err(status)) => {
                        tracing::debug!(%child, %status, "link failed");
                        break;
                    }
                    Err(_) => {
                        tracing::warn!(%child, ?deadline, "child silent past the deadline; dropping its link");
                        break;
                    }
                }
            }
            counters.up.dec();
            parent.on_goodbye(&child, downlink.link).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
