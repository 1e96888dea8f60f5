//! Sandbox support: a service asking for a sandbox (`sandbox: gvisor`) goes only where a
//! probe sandbox started, one asking for KVM (`vm.requireKvm`) only where a probe guest ran
//! under KVM; a cluster passes when some ready node of it offers it.

use super::Reason;
use crate::prepare::Prepared;
use canopy_model::Sandbox;

pub fn check(p: &Prepared, offered: &[Sandbox], kvm: bool) -> Result<(), Reason> {
    let spec = p.request.spec;
    if spec.vm.as_ref().is_some_and(|vm| vm.require_kvm) && !kvm {
        return Err("no working kvm");
    }
    match spec.sandbox {
        Some(wanted) if !offered.contains(&wanted) => Err(match wanted {
            Sandbox::Gvisor => "no gvisor sandbox (runsc)",
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Request;
    use canopy_model::ServiceSpec;

    fn spec(sandbox: Option<&str>) -> ServiceSpec {
        let mut json =
            serde_json::json!({"name": "web", "runtime": "container", "image": "busybox"});
        if let Some(s) = sandbox {
            json["sandbox"] = s.into();
        }
        serde_json::from_value(json).expect("spec")
    }

    #[test]
    fn sandboxed_services_need_a_node_that_offers_the_sandbox() {
        let gvisor = spec(Some("gvisor"));
        let p = Prepared::new(&Request::new(&gvisor, &[]));
        assert_eq!(check(&p, &[], true), Err("no gvisor sandbox (runsc)"));
        assert_eq!(check(&p, &[Sandbox::Gvisor], false), Ok(()));
        let plain = spec(None);
        let p = Prepared::new(&Request::new(&plain, &[]));
        assert_eq!(check(&p, &[], false), Ok(()));
        let fast: ServiceSpec = serde_json::from_value(serde_json::json!({
            "name": "guest", "runtime": "vm", "vm": {"kernel": "/k", "requireKvm": true}
        }))
        .expect("spec");
        let p = Prepared::new(&Request::new(&fast, &[]));
        assert_eq!(check(&p, &[], false), Err("no working kvm"));
        assert_eq!(check(&p, &[], true), Ok(()));
    }
}
