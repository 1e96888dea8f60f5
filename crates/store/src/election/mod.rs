//! Leader election among root replicas on one etcd: a leader key created under a lease.
//!
//! The winner creates `key` (default `/ha/leader`, under `/` so that the root's watch on `/`
//! sees every revision) with its id as the value, renews the lease and leads until the term
//! ends ([`term::Term`] decides when: a lease it could not renew in time, the key deleted or
//! taken). The others watch the key and campaign again when it is deleted, which etcd does
//! when the leader's lease expires, at most `ttl` after the leader died. A leader's writes
//! carry its [`Fence`] (see [`crate::EtcdStore::with_fence`]).

mod campaign;
pub mod term;

use std::time::Duration;

use tokio::sync::watch;

use crate::{EtcdStore, Fence};

/// The leader key and lease of an election.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// The replica's id, stored as the leader key's value (the root puts its API URL there).
    pub id: String,
    pub key: String,
    /// The lease's time to live: how long a dead leader keeps the key.
    pub ttl: Duration,
}

impl ElectionConfig {
    pub const DEFAULT_KEY: &'static str = "/ha/leader";
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3);

    pub fn new(id: impl Into<String>) -> ElectionConfig {
        ElectionConfig {
            id: id.into(),
            key: Self::DEFAULT_KEY.to_owned(),
            ttl: Self::DEFAULT_TTL,
        }
    }

    pub fn ttl(mut self, ttl: Duration) -> ElectionConfig {
        self.ttl = ttl;
        self
    }
}

/// A replica's role, as the election last decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Another replica leads (its id when known), or nobody does right now.
    Follower { leader: Option<String> },
    /// This replica leads; its writes must carry `fence`.
    Leader { fence: Fence },
}

impl Role {
    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Leader { .. })
    }
}

/// A running election; dropping it resigns (the task stops and revokes its lease).
pub struct Election {
    role: watch::Receiver<Role>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Election {
    pub fn start(store: EtcdStore, config: ElectionConfig) -> Election {
        let (role_tx, role) = watch::channel(Role::Follower { leader: None });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(campaign::run(store, config, role_tx, stop_rx));
        Election {
            role,
            stop,
            task: Some(task),
        }
    }

    /// The role now and its changes.
    pub fn role(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Stops campaigning and gives up the leader key if held; returns once done.
    pub async fn resign(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
