//! Latency probes for Vivaldi network coordinates. Every participant answers UDP pings with
//! its current coordinate, and each period pings a few peers (named by its cluster) to
//! update its own: one round trip per peer, no state kept between rounds.
//!
//! Wire format (little endian): ping = magic `CVP1`, kind 0, nonce u64 (13 bytes);
//! pong = magic, kind 1, the nonce echoed, then x, y, height and error as f64 (45 bytes).

use canopy_sched::vivaldi::{Coordinate, Vivaldi};
use rand::Rng;
use rand::seq::SliceRandom;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

const MAGIC: &[u8; 4] = b"CVP1";
const PING: u8 = 0;
const PONG: u8 = 1;
const PING_LEN: usize = 13;
const PONG_LEN: usize = 45;

/// A coordinate with its error, as peers learn it from pongs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub coordinate: Coordinate,
    pub error: f64,
}

/// One participant: answers pings and, when [`Prober::run`] runs, probes its peers.
pub struct Prober {
    socket: UdpSocket,
    vivaldi: Mutex<Vivaldi>,
    peers: Mutex<Vec<SocketAddr>>,
    pending: Mutex<HashMap<u64, Pending>>,
}

/// A ping awaiting its pong: when it left, and who wants the round trip and the position.
type Pending = (Instant, oneshot::Sender<(Duration, Position)>);

impl Prober {
    /// Binds `address` (port 0 picks one); `seed` drives Vivaldi's tie-breaking.
    pub async fn bind(address: SocketAddr, seed: u64) -> std::io::Result<Arc<Prober>> {
        let socket = UdpSocket::bind(address).await?;
        Ok(Arc::new(Prober {
            socket,
            vivaldi: Mutex::new(Vivaldi::new(seed)),
            peers: Mutex::new(Vec::new()),
            pending: Mutex::new(HashMap::new()),
        }))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub fn position(&self) -> Position {
        let vivaldi = lock(&self.vivaldi);
        Position {
            coordinate: vivaldi.coordinate,
            error: vivaldi.error,
        }
    }

    /// The peers to probe from now on (the cluster refreshes them now and then).
    pub fn set_peers(&self, peers: Vec<SocketAddr>) {
        let own = self.local_addr().ok();
        *lock(&self.peers) = peers.into_iter().filter(|p| Some(*p) != own).collect();
    }

    /// Answers pings, and every `period` probes up to `per_round` random peers, until `stop`.
    pub async fn run(
        self: Arc<Self>,
        period: Duration,
        per_round: usize,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buffer = [0u8; 64];
        loop {
            tokio::select! {
                _ = crate::stopped(&mut stop) => return,
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((len, from)) => self.on_datagram(&buffer[..len], from).await,
                    Err(e) => tracing::debug!(error = %e, "probe socket receive failed"),
                },
                _ = ticks.tick() => {
                    let prober = self.clone();
                    // A round waits for its pongs; answering pings must not wait for it.
                    tokio::spawn(async move { prober.round(per_round, period).await });
                }
            }
        }
    }

    async fn on_datagram(&self, datagram: &[u8], from: SocketAddr) {
        if datagram.len() < PING_LEN || &datagram[..4] != MAGIC {
            return;
        }
        let nonce = u64::from_le_bytes(datagram[5..13].try_into().unwrap_or_default());
        match datagram[4] {
            PING => {
                let position = self.position();
                let mut pong = Vec::with_capacity(PONG_LEN);
                pong.extend_from_slice(MAGIC);
                pong.push(PONG);
                pong.extend_from_slice(&nonce.to_le_bytes());
                for value in [
                    position.coordinate.x,
                    position.coordinate.y,
                    position.coordinate.height,
                    position.error,
                ] {
                    pong.extend_from_slice(&value.to_le_bytes());
                }
                if let Err(e) = self.socket.send_to(&pong, from).await {
                    tracing::debug!(error = %e, %from, "cannot answer a probe");
                }
            }
            PONG if datagram.len() >= PONG_LEN => {
                let Some((sent, reply)) = lock(&self.pending).remove(&nonce) else {
                    return;
                };
                let value = |i: usize| {
                    f64::from_le_bytes(
                        datagram[13 + 8 * i..21 + 8 * i]
                            .try_into()
                            .unwrap_or_default(),
                    )
                };
                let position = Position {
                    coordinate: Coordinate {
                        x: value(0),
                        y: value(1),
                        height: value(2),
                    },
                    error: value(3),
                };
                let _ = reply.send((sent.elapsed(), position));
            }
            _ => {}
        }
    }

    /// Pings up to `count` random peers and folds every answer within `timeout` into the
    /// coordinate. Lost pings are simply not samples.
    async fn round(&self, count: usize, timeout: Duration) {
        let targets: Vec<SocketAddr> = {
            let mut peers = lock(&self.peers).clone();
            peers.shuffle(&mut rand::rng());
            peers.truncate(count);
            peers
        };
        let mut answers = Vec::new();
        for target in targets {
            let nonce: u64 = rand::rng().random();
            let (tx, rx) = oneshot::channel();
            lock(&self.pending).insert(nonce, (Instant::now(), tx));
            let mut ping = Vec::with_capacity(PING_LEN);
            ping.extend_from_slice(MAGIC);
            ping.push(PING);
            ping.extend_from_slice(&nonce.to_le_bytes());
            if self.socket.send_to(&ping, target).await.is_err() {
                lock(&self.pending).remove(&nonce);
                continue;
            }
            answers.push((nonce, rx));
        }
        for (nonce, rx) in answers {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok((rtt, remote))) => {
                    let rtt_ms = rtt.as_secs_f64() * 1000.0;
                    lock(&self.vivaldi).update(rtt_ms, &remote.coordinate, remote.error);
                }
                _ => {
                    lock(&self.pending).remove(&nonce);
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn prober() -> Arc<Prober> {
        Prober::bind("127.0.0.1:0".parse().unwrap(), 7)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn probing_a_peer_moves_the_coordinate_and_lowers_the_error() {
        let (stop_tx, stop) = watch::channel(false);
        let a = prober().await;
        let b = prober().await;
        a.set_peers(vec![b.local_addr().unwrap(), a.local_addr().unwrap()]);
        assert_eq!(lock(&a.peers).len(), 1, "a node never probes itself");
        let before = a.position();
        tokio::spawn(b.clone().run(Duration::from_secs(3600), 0, stop.clone()));
        tokio::spawn(a.clone().run(Duration::from_millis(20), 1, stop));
        let deadline = Instant::now() + Duration::from_secs(10);
        while a.position().error >= before.error {
            assert!(Instant::now() < deadline, "no pong was folded in");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_ne!(a.position().coordinate, before.coordinate);
        let _ = stop_tx.send(true);
    }

    #[tokio::test]
    async fn garbage_is_ignored_and_unanswered_pings_are_forgotten() {
        let a = prober().await;
        a.on_datagram(b"nonsense", "127.0.0.1:9".parse().unwrap())
            .await;
        // A peer that does not answer: the round ends at its timeout, nothing pending stays.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_peers(vec![silent.local_addr().unwrap()]);
        a.round(1, Duration::from_millis(50)).await;
        assert!(lock(&a.pending).is_empty());
        assert_eq!(a.position().error, canopy_sched::vivaldi::MAX_ERROR);
    }
}
