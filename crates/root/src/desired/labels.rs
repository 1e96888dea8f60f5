//! The labels services and instances are selected by (`labelSelector` on the list endpoints).

use super::{Desired, RootError};
use std::collections::{BTreeMap, HashMap};

/// `(namespace, application, service)`.
pub type ServiceKey = (String, String, String);

impl Desired {
    /// Each service's labels: its application's, overlaid by its own.
    pub async fn service_labels(
        &self,
        namespace: Option<&str>,
    ) -> Result<HashMap<ServiceKey, BTreeMap<String, String>>, RootError> {
        let records = self.records(namespace).await?;
        Ok(records
            .iter()
            .flat_map(|record| {
                let metadata = &record.application.metadata;
                record.application.spec.services.iter().map(|service| {
                    (
                        (
                            metadata.namespace.clone(),
                            metadata.name.clone(),
                            service.name.clone(),
                        ),
                        canopy_model::service_labels(&metadata.labels, &service.labels),
                    )
                })
            })
            .collect())
    }
}
