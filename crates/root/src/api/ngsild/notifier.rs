//! Sends subscriptions' notifications: follows the store's watch, and after each batch of
//! changes to clusters, nodes, applications or instances maps the continuum again, compares
//! it with what it saw before, and POSTs each subscription the entities it asked about that
//! changed (ETSI GS CIM 009 §5.3.4's Notification body). A replica that is not the leader
//! keeps its view fresh but sends nothing, so that several roots notify once.

use super::context::{self, Format};
use super::entities;
use super::entity::Entity;
use super::mapping::Scoped;
use super::subscription::{SubscriptionRecord, notifies};
use super::subscriptions::stored;
use super::view;
use crate::auth::{Accounts, Action, decide};
use crate::desired::{Desired, RootError};
use crate::keys;
use canopy_store::WatchEvent;
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// Notifications in flight at once; more wait for a slot.
const MAX_SENDS: usize = 32;
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Before following the store again after it failed.
const RETRY: Duration = Duration::from_secs(1);

pub struct Notifier {
    pub desired: Arc<Desired>,
    pub accounts: Arc<Accounts>,
    /// Whether this replica leads (several roots on one etcd); `None`: alone.
    pub leader: Option<watch::Receiver<bool>>,
}

/// One change of one entity.
struct Change {
    before: Option<Entity>,
    after: Scoped,
}

impl Notifier {
    pub async fn run(self, mut stopping: watch::Receiver<bool>) {
        let sends = Arc::new(Semaphore::new(MAX_SENDS));
        let mut http = None;
        while !*stopping.borrow() {
            match self.follow(&mut stopping, &sends, &mut http).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, "NGSI-LD notifier: following the store failed; again in a second");
                    tokio::select! {
                        _ = stopping.wait_for(|stop| *stop) => return,
                        _ = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
        }
    }

    /// Until the root stops (`Ok`) or the watch fails (`Err`: list and watch again). While
    /// there is no subscription it keeps no view (so a root nobody subscribed to does no
    /// work per change); the first change after one appears (its own creation) sets the
    /// view that later changes are compared with.
    async fn follow(
        &self,
        stopping: &mut watch::Receiver<bool>,
        sends: &Arc<Semaphore>,
        http: &mut Option<reqwest::Client>,
    ) -> Result<(), RootError> {
        let store = self.desired.store().clone();
        let revision = store.revision().await?;
        let mut known = if stored(store.as_ref()).await?.is_empty() {
            None
        } else {
            Some(by_id(view::continuum(&self.desired).await?))
        };
        let mut changes = store.watch("/", revision).await?;
        loop {
            let next = tokio::select! {
                _ = stopping.wait_for(|stop| *stop) => return Ok(()),
                next = changes.next() => next,
            };
            let Some(first) = next else {
                return Err(RootError::Store(canopy_store::StoreError::Closed));
            };
            let mut relevant = matters(&first?);
            // Changes that arrived together are judged once.
            while let Some(Some(next)) = changes.next().now_or_never() {
                relevant |= matters(&next?);
            }
            if !relevant {
                continue;
            }
            let subscriptions = stored(store.as_ref()).await?;
            if subscriptions.is_empty() {
                known = None;
                continue;
            }
            let now = view::continuum(&self.desired).await?;
            let Some(before) = known.replace(by_id(now.clone())) else {
                continue;
            };
            let changed: Vec<Change> = now
                .into_iter()
                .filter(|s| before.get(&s.entity.id).map(|k| &k.entity) != Some(&s.entity))
                .map(|s| Change {
                    before: before.get(&s.entity.id).map(|k| k.entity.clone()),
                    after: s,
                })
                .collect();
            let leading = self.leader.as_ref().is_none_or(|l| *l.borrow());
            if changed.is_empty() || !leading {
                continue;
            }
            if http.is_none() {
                // Built on first use: the binary installs the TLS provider at start.
                match reqwest::Client::builder().timeout(SEND_TIMEOUT).build() {
                    Ok(client) => *http = Some(client),
                    Err(error) => {
                        tracing::warn!(%error, "NGSI-LD notifier: no HTTP client; notifications dropped");
                        continue;
                    }
                }
            }
            if let Some(client) = http.as_ref() {
                self.deliver(&subscriptions, &changed, client, sends)
                    .await?;
            }
        }
    }

    async fn deliver(
        &self,
        subscriptions: &[SubscriptionRecord],
        changed: &[Change],
        http: &reqwest::Client,
        sends: &Arc<Semaphore>,
    ) -> Result<(), RootError> {
        for record in subscriptions {
            let Some(readable) = self.readable(record).await? else {
                continue;
            };
            let subscription = &record.subscription;
            let data: Vec<&Entity> = changed
                .iter()
                .filter(|c| view::visible(&c.after, &readable))
                .filter(|c| notifies(subscription, c.before.as_ref(), &c.after.entity))
                .map(|c| &c.after.entity)
                .collect();
            if data.is_empty() {
                continue;
            }
            let (content_type, body, link) = notification(record, &data);
            let Ok(permit) = sends.clone().acquire_owned().await else {
                return Ok(());
            };
            let mut request = http
                .post(&subscription.notification.endpoint.uri)
                .header("content-type", content_type)
                .body(body.to_string());
            if let Some(link) = link {
                request = request.header("link", link);
            }
            let id = subscription.id.clone().unwrap_or_default();
            tokio::spawn(async move {
                let _permit = permit;
                // The endpoint's URL is not logged: it may carry a token.
                match request.send().await {
                    Ok(answer) if answer.status().is_success() => {
                        tracing::debug!(subscription = %id, "NGSI-LD notification sent");
                    }
                    Ok(answer) => {
                        tracing::warn!(subscription = %id, status = %answer.status(), "NGSI-LD notification refused");
                    }
                    Err(error) => {
                        tracing::warn!(subscription = %id, error = %error.without_url(), "NGSI-LD notification failed");
                    }
                }
            });
        }
        Ok(())
    }

    /// The namespaces a subscription's notifications show: its grants that its owner could
    /// still hand on (as an API token's); `None` once the owner is gone.
    async fn readable(
        &self,
        record: &SubscriptionRecord,
    ) -> Result<Option<decide::Namespaces>, RootError> {
        let Some(owner) = self.accounts.user(&record.owner).await? else {
            return Ok(None);
        };
        let grants: Vec<_> = record
            .grants
            .iter()
            .filter(|grant| decide::may_delegate(&owner.grants, grant))
            .cloned()
            .collect();
        Ok(Some(decide::namespaces_for(&grants, Action::Read)))
    }
}

fn by_id(all: Vec<Scoped>) -> HashMap<String, Scoped> {
    all.into_iter().map(|s| (s.entity.id.clone(), s)).collect()
}

/// Whether a change of this key can change an entity, or the subscriptions.
fn matters(change: &WatchEvent) -> bool {
    let key = change.key();
    keys::kind_of(key).is_some()
        || key.starts_with(keys::OPERATOR_NODES)
        || key.starts_with(keys::OPERATOR_CLUSTERS)
        || key.starts_with(keys::NGSILD_SUBSCRIPTIONS)
}

/// The notification's content type, body and `Link` header (JSON only).
fn notification(
    record: &SubscriptionRecord,
    data: &[&Entity],
) -> (&'static str, Value, Option<String>) {
    let subscription = &record.subscription;
    let attrs = (!subscription.notification.attributes.is_empty())
        .then_some(subscription.notification.attributes.as_slice());
    let key_values = subscription.notification.format == "keyValues";
    let data: Vec<Value> = data
        .iter()
        .map(|e| entities::body(e, attrs, key_values, Format::Json))
        .collect();
    let notified_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut body = json!({
        "id": format!("urn:ngsi-ld:Notification:{:016x}", rand::random::<u64>()),
        "type": "Notification",
        "subscriptionId": subscription.id,
        "notifiedAt": notified_at,
        "data": data,
    });
    if subscription.notification.endpoint.accept == "application/ld+json" {
        body["@context"] = context::reference();
        ("application/ld+json", body, None)
    } else {
        let link = format!(
            r#"<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json""#,
            context::CONTEXT_PATH
        );
        ("application/json", body, Some(link))
    }
}
