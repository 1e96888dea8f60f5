//! `sandbox`: a stronger boundary than the node's shared kernel for one container service.
//! `gvisor` runs it under gVisor (`runsc`), whose own kernel in user space answers the
//! workload's system calls; only nodes whose probe sandbox started offer it, and the
//! scheduler places such services on those nodes only.

use crate::{FieldError, RuntimeKind, ServiceSpec};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An isolation a node may offer around containers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Sandbox {
    /// gVisor's `runsc`: the container's system calls go to a user-space kernel.
    Gvisor,
}

impl Sandbox {
    pub const ALL: [Sandbox; 1] = [Sandbox::Gvisor];

    pub fn as_str(self) -> &'static str {
        match self {
            Sandbox::Gvisor => "gvisor",
        }
    }
}

impl std::str::FromStr for Sandbox {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Sandbox::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| format!("unknown sandbox {name:?} (known: gvisor)"))
    }
}

/// A sandbox wraps a container: it means nothing for a module or a native process.
pub(crate) fn sandbox_errors(p: &str, svc: &ServiceSpec) -> Vec<FieldError> {
    match svc.sandbox {
        Some(sandbox) if svc.runtime != RuntimeKind::Container => vec![FieldError::new(
            format!("{p}.sandbox"),
            format!(
                "{} applies to runtime container only, not {}",
                sandbox.as_str(),
                svc.runtime.as_str()
            ),
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: serde_json::Value) -> ServiceSpec {
        serde_json::from_value(json).expect("service")
    }

    #[test]
    fn gvisor_is_for_containers() {
        let ok = service(serde_json::json!({
            "name": "web", "runtime": "container", "image": "busybox", "sandbox": "gvisor"
        }));
        assert_eq!(ok.sandbox, Some(Sandbox::Gvisor));
        assert!(sandbox_errors("spec.services[0]", &ok).is_empty());
        let wrong = service(serde_json::json!({
            "name": "web", "runtime": "process", "command": ["/bin/true"], "sandbox": "gvisor"
        }));
        let errors = sandbox_errors("spec.services[0]", &wrong);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "spec.services[0].sandbox");
        assert!(
            errors[0]
                .reason
                .contains("runtime container only, not process")
        );
    }

    #[test]
    fn unknown_sandboxes_are_refused_by_name() {
        let e = serde_json::from_value::<ServiceSpec>(serde_json::json!({
            "name": "web", "runtime": "container", "image": "busybox", "sandbox": "kata"
        }))
        .expect_err("unknown");
        assert!(e.to_string().contains("kata"), "{e}");
        assert_eq!("gvisor".parse::<Sandbox>(), Ok(Sandbox::Gvisor));
        assert!("kata".parse::<Sandbox>().is_err());
    }
}
