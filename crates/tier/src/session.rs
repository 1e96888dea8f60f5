//! What a link carries, in the tiers' own types, and the rules both parents (the root over
//! its clusters, a cluster over its nodes) apply to a child's hello. `pb` types stop at
//! [`crate::child`] and [`crate::parent`]; handlers see only these.

use crate::pb;
use crate::status::{Reported, StatusReport};
use crate::{TierError, Workload};
use canopy_model::{Desired, InstanceState, WhenGone, when_gone};
use std::collections::{BTreeMap, BTreeSet};

/// Run this instance at this generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub id: String,
    pub generation: u64,
    pub workload: Workload,
    /// The values of the secrets the workload references (`Debug` shows keys only).
    pub secrets: canopy_model::SecretValues,
}

/// Stop this instance (the child's copy at this generation or older).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub id: String,
    pub generation: u64,
    pub reason: String,
}

/// The first message of every link: who the child is and everything it runs.
#[derive(Debug, Clone, Default)]
pub struct Hello {
    pub member: pb::Member,
    /// Unused: links are authenticated by client certificates (see [`authenticate`]); kept
    /// for the wire's sake.
    pub token: String,
    pub instances: Vec<StatusReport>,
    /// For a cluster: its nodes.
    pub nodes: Vec<pb::Member>,
}

/// What a child sends after its hello.
#[derive(Debug, Clone)]
pub enum Message {
    Heartbeat(pb::Heartbeat),
    Status(StatusReport),
    Membership(Box<pb::Membership>),
    /// The services a node's workloads use (overlay routes), and its workloads' address.
    Interest(pb::Interest),
}

impl Assignment {
    pub fn to_pb(&self) -> pb::Assign {
        self.workload
            .to_assign(&self.id, self.generation, &self.secrets)
    }

    pub fn from_pb(assign: &pb::Assign) -> Result<Assignment, TierError> {
        Ok(Assignment {
            id: assign.instance_id.clone(),
            generation: assign.generation,
            workload: Workload::from_assign(assign)?,
            secrets: crate::convert::secrets_from_pb(assign),
        })
    }
}

impl Revocation {
    pub fn new(id: &str, generation: u64, reason: impl Into<String>) -> Revocation {
        Revocation {
            id: id.to_string(),
            generation,
            reason: reason.into(),
        }
    }

    pub fn to_pb(&self) -> pb::Revoke {
        pb::Revoke {
            instance_id: self.id.clone(),
            generation: self.generation,
            reason: self.reason.clone(),
        }
    }

    pub fn from_pb(revoke: pb::Revoke) -> Revocation {
        Revocation {
            id: revoke.instance_id,
            generation: revoke.generation,
            reason: revoke.reason,
        }
    }
}

impl Hello {
    pub fn to_pb(&self) -> pb::Hello {
        pb::Hello {
            member: Some(self.member.clone()),
            token: self.token.clone(),
            instances: self
                .instances
                .iter()
                .map(pb::InstanceStatus::from)
                .collect(),
            nodes: self.nodes.clone(),
            version: crate::version::VERSION.to_string(),
        }
    }

    /// Refuses a hello without a member name; drops (and logs) statuses it cannot read.
    pub fn from_pb(hello: pb::Hello) -> Result<Hello, TierError> {
        let member = hello
            .member
            .filter(|m| !m.name.is_empty())
            .ok_or_else(|| TierError::Malformed("hello without a member name".into()))?;
        Ok(Hello {
            instances: readable(&member.name, &hello.instances),
            member,
            token: hello.token,
            nodes: hello.nodes,
        })
    }

    pub fn name(&self) -> &str {
        &self.member.name
    }
}

/// The hello of a link whose client certificate names `peer` (none on a cleartext link)
/// must speak for that member: a squatter cannot take over another's name and instances.
pub fn authenticate(hello: &Hello, peer: Option<&crate::trust::Peer>) -> Result<(), TierError> {
    match peer {
        Some(peer) if peer.name != hello.name() => Err(TierError::NotYours {
            certificate: peer.name.clone(),
            hello: hello.name().to_string(),
        }),
        _ => Ok(()),
    }
}

fn readable(child: &str, statuses: &[pb::InstanceStatus]) -> Vec<StatusReport> {
    statuses
        .iter()
        .filter_map(|s| match StatusReport::try_from(s) {
            Ok(report) => Some(report),
            Err(e) => {
                tracing::warn!(child, error = %e, "ignoring an unreadable status");
                None
            }
        })
        .collect()
}

impl Message {
    /// `None` for a hello after the first message, or an unreadable status.
    pub fn from_pb(child: &str, body: pb::up::Body) -> Option<Message> {
        match body {
            pb::up::Body::Heartbeat(beat) => Some(Message::Heartbeat(beat)),
            pb::up::Body::Membership(membership) => Some(Message::Membership(Box::new(membership))),
            pb::up::Body::Status(status) => readable(child, std::slice::from_ref(&status))
                .pop()
                .map(Message::Status),
            pb::up::Body::Interest(interest) => Some(Message::Interest(interest)),
            // Hellos after the first are ignored; answers are taken by the link itself.
            pb::up::Body::Hello(_) | pb::up::Body::Answer(_) => None,
        }
    }
}

/// What a parent knows of one of its instances on the child that said hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub generation: u64,
    pub desired: Desired,
    pub state: InstanceState,
}

/// A hello set against the parent's view of that child.
#[derive(Debug, Default, PartialEq)]
pub struct HelloDiff {
    /// Reports about the parent's own instances at their generation: taken as statuses.
    pub current: Vec<StatusReport>,
    /// Copies the parent does not know there at that generation: to be revoked.
    pub stale: Vec<Revocation>,
    /// The parent's live instances there that the child does not report: to be assigned again.
    pub missing: Vec<String>,
    /// The parent's stopping instances the child no longer reports: they are gone.
    pub stopped: Vec<String>,
}

/// Diffs a child's reported instances against what the parent placed there (`known`, by id):
/// nothing the child lost is forgotten, nothing it runs unasked keeps running.
pub fn diff_hello(reports: Vec<StatusReport>, known: &BTreeMap<String, Known>) -> HelloDiff {
    let mut diff = HelloDiff::default();
    let mut reported = BTreeSet::new();
    for report in reports {
        reported.insert(report.id.clone());
        let ours = known
            .get(&report.id)
            .is_some_and(|k| k.generation == report.generation);
        if ours {
            diff.current.push(report);
        } else if !report.is_gone() {
            diff.stale.push(Revocation::new(
                &report.id,
                report.generation,
                "no longer assigned here",
            ));
        }
    }
    for (id, known) in known {
        if reported.contains(id) || !known.state.is_live() {
            continue;
        }
        match when_gone(known.desired, known.state) {
            WhenGone::Ends => diff.stopped.push(id.clone()),
            WhenGone::PlaceAgain => diff.missing.push(id.clone()),
        }
    }
    diff
}

/// A report the parent takes is one that lies ahead of where the instance stands (it may
/// skip states the parent missed); refusals always are.
pub fn accepts(current: InstanceState, report: &StatusReport) -> bool {
    match report.state {
        Reported::Refused => true,
        Reported::State(next) => current.can_reach(next),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceState::*;

    fn report(id: &str, generation: u64, state: InstanceState) -> StatusReport {
        StatusReport::new(id, generation, Reported::State(state), "")
    }

    fn known(entries: &[(&str, u64, InstanceState)]) -> BTreeMap<String, Known> {
        entries
            .iter()
            .map(|(id, generation, state)| {
                let (desired, state) = match id.strip_prefix("asked-to-stop") {
                    Some(_) => (Desired::Stop, *state),
                    None => (Desired::Run, *state),
                };
                let known = Known {
                    generation: *generation,
                    desired,
                    state,
                };
                (id.to_string(), known)
            })
            .collect()
    }

    #[test]
    fn a_hello_is_split_into_current_stale_missing_and_stopped() {
        let parent = known(&[
            ("current", 2, Running),
            ("older-there", 3, Running),
            ("missing", 1, NodeScheduled),
            ("stopping", 1, Terminating),
            ("asked-to-stop", 1, Running),
            ("finished", 1, Succeeded),
        ]);
        let diff = diff_hello(
            vec![
                report("current", 2, Running),
                report("older-there", 2, Running),
                report("unknown", 1, Running),
                report("unknown-gone", 1, Terminated),
            ],
            &parent,
        );
        assert_eq!(diff.current, vec![report("current", 2, Running)]);
        let stale: Vec<(&str, u64)> = diff
            .stale
            .iter()
            .map(|r| (r.id.as_str(), r.generation))
            .collect();
        assert_eq!(stale, [("older-there", 2), ("unknown", 1)]);
        assert_eq!(diff.missing, ["missing"]);
        assert_eq!(diff.stopped, ["asked-to-stop", "stopping"]);
    }

    #[test]
    fn an_empty_hello_from_a_child_with_nothing_known_is_empty() {
        assert_eq!(
            diff_hello(Vec::new(), &BTreeMap::new()),
            HelloDiff::default()
        );
    }

    #[test]
    fn a_hello_must_carry_the_name_of_its_certificate() {
        let hello = Hello {
            member: pb::Member {
                name: "c0".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let peer = |name: &str| crate::trust::Peer {
            name: name.into(),
            serial: "01".into(),
        };
        assert!(authenticate(&hello, Some(&peer("c0"))).is_ok());
        assert!(
            authenticate(&hello, None).is_ok(),
            "cleartext links carry no certificate"
        );
        let refused = authenticate(&hello, Some(&peer("c1"))).unwrap_err();
        assert!(refused.to_string().contains("\"c1\""), "{refused}");
    }

    #[test]
    fn a_stopping_instance_is_not_revived_by_a_late_report() {
        assert!(!accepts(Terminating, &report("i", 1, Running)));
        assert!(accepts(Terminating, &report("i", 1, Terminated)));
        let refused = StatusReport::new("i", 1, Reported::Refused, "full");
        assert!(accepts(Terminating, &refused));
        assert!(accepts(NodeScheduled, &report("i", 1, Running)));
        assert!(
            accepts(ClusterScheduled, &report("i", 1, Running)),
            "after a gap"
        );
        assert!(!accepts(Failed, &report("i", 1, Running)));
    }
}
