//! Joins spent together: the joins queued while another group committed are admitted in
//! order against one read of their tokens and members, and committed in one transaction
//! that checks every record it read, so a group racing another parent on the same store
//! (replicated roots) is read again rather than spending a use twice. A fleet of five
//! thousand nodes booting took one fsync a join; now it takes one a group.

use super::enrolment::{Enrolment, MemberRecord, put};
use super::tokens::{self, Refusal, Role, TokenRecord};
use super::{TrustError, spki_hash};
use crate::pb;
use canopy_store::{Precondition, Revision, StoreExt};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;
use tokio::sync::oneshot;

/// How many times a group is read and tried again after losing a race for its records.
const RACE_ATTEMPTS: usize = 100;

pub(super) struct JoinRequest {
    pub token: String,
    pub name: String,
    pub csr_der: Vec<u8>,
    pub ca_csr_der: Vec<u8>,
    pub now: OffsetDateTime,
    pub reply: oneshot::Sender<Result<pb::Certified, TrustError>>,
}

type Outcome = Result<pb::Certified, TrustError>;

impl Enrolment {
    pub(super) fn queue(&self, request: JoinRequest) {
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
    }

    pub(super) fn take_queued(&self) -> Vec<JoinRequest> {
        std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Answers every join of `group`.
    pub(super) async fn join_group(&self, group: Vec<JoinRequest>) {
        for _ in 0..RACE_ATTEMPTS {
            match self.try_group(&group).await {
                Ok(Some(outcomes)) => {
                    for (request, outcome) in group.into_iter().zip(outcomes) {
                        let _ = request.reply.send(outcome);
                    }
                    return;
                }
                Ok(None) => continue,
                Err(e) => {
                    let message = e.to_string();
                    for request in group {
                        let _ = request.reply.send(Err(TrustError::Busy(message.clone())));
                    }
                    return;
                }
            }
        }
        for request in group {
            let _ = request.reply.send(Err(TrustError::Busy(format!(
                "{RACE_ATTEMPTS} writes raced this join; try again"
            ))));
        }
    }

    /// One attempt: each join's outcome in order, or `None` when another write changed a
    /// token or member between the reads and the commit.
    async fn try_group(&self, group: &[JoinRequest]) -> Result<Option<Vec<Outcome>>, TrustError> {
        let mut tokens: BTreeMap<String, Option<(TokenRecord, Revision)>> = BTreeMap::new();
        let mut spent: BTreeSet<String> = BTreeSet::new();
        let mut named: BTreeSet<String> = BTreeSet::new();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut ops = Vec::new();
        for request in group {
            let (id, secret) = match tokens::parse(&request.token) {
                Ok(parsed) => parsed,
                Err(e) => {
                    outcomes.push(Err(e.into()));
                    continue;
                }
            };
            if !tokens.contains_key(id) {
                let stored = self.store.get_json(&self.token_key(id)).await?;
                tokens.insert(id.to_string(), stored);
            }
            let member_key = self.member_key(&request.name);
            let member = self.store.get_json::<MemberRecord>(&member_key).await?;
            let now = request.now;
            let taken = named.contains(&request.name)
                || member
                    .as_ref()
                    .is_some_and(|(m, _)| m.not_after_unix > now.unix_timestamp());
            let stored = tokens.get_mut(id).and_then(Option::as_mut);
            let admitted = tokens::admit(
                id,
                secret,
                stored.as_deref().map(|(record, _)| record),
                self.role,
                &request.name,
                taken,
                now.unix_timestamp(),
            );
            let (granted, record) = match (admitted, stored) {
                (Ok(granted), Some((record, _))) => (granted, record),
                (Err(refusal), _) => {
                    outcomes.push(Err(refusal.into()));
                    continue;
                }
                // admit refuses a token it was not given; kept total all the same.
                (Ok(_), None) => {
                    outcomes.push(Err(Refusal::Unknown(id.to_string()).into()));
                    continue;
                }
            };
            let (certified, member_record) = match self.certify(request, &granted) {
                Ok(made) => made,
                Err(e) => {
                    outcomes.push(Err(e));
                    continue;
                }
            };
            if record.extra_uses > 0 {
                record.extra_uses -= 1;
            } else {
                record.used = true;
            }
            spent.insert(id.to_string());
            named.insert(granted);
            let precondition = match &member {
                Some((_, revision)) => Precondition::ModRevision(*revision),
                None => Precondition::Absent,
            };
            ops.push(put(&member_key, &member_record, precondition)?);
            outcomes.push(Ok(certified));
        }
        for id in &spent {
            if let Some(Some((record, revision))) = tokens.get(id) {
                let precondition = Precondition::ModRevision(*revision);
                ops.push(put(&self.token_key(id), record, precondition)?);
            }
        }
        if !ops.is_empty() {
            match self.store.txn(ops).await {
                Ok(_) => {}
                Err(e) if e.is_conflict() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        for certified in outcomes.iter().flatten() {
            tracing::info!(member = %certified.name, role = %self.role, "joined with a token");
        }
        Ok(Some(outcomes))
    }

    /// The certificates of an admitted join, and its member record.
    fn certify(
        &self,
        request: &JoinRequest,
        granted: &str,
    ) -> Result<(pb::Certified, MemberRecord), TrustError> {
        let now = request.now;
        let issued = self
            .authority
            .issue(&request.csr_der, granted, now, self.lifetime)?;
        let member_ca = match self.role {
            Role::Cluster if request.ca_csr_der.is_empty() => {
                return Err(TrustError::Certificate(
                    "a cluster joins with a request for its own CA too (a newer canopy)".into(),
                ));
            }
            Role::Cluster => Some(self.authority.issue_ca(&request.ca_csr_der, granted, now)?),
            Role::Node => None,
        };
        let member_record = MemberRecord {
            serials: vec![issued.serial.clone()],
            not_after_unix: issued.not_after_unix,
            ca_hash: match &member_ca {
                Some(ca) => Some(spki_hash(&ca.der)?),
                None => None,
            },
        };
        let mut certified = self.certified(issued.der, granted.to_string());
        certified.member_ca_der = member_ca.map(|ca| ca.der).unwrap_or_default();
        Ok((certified, member_record))
    }
}
