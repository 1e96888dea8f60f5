//! Sandbox support: a service asking for a sandbox (`sandbox: gvisor`) goes only where a
//! probe sandbox started; a cluster passes when some ready node of it offers one.

use super::Reason;
use crate::prepare::Prepared;
use canopy_model::Sandbox;

pub fn check(p: &Prepared, offered: &[Sandbox]) -> Result<(), Reason> {
    match p.request.spec.sandbox {
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
        let mut json = serde_json::json!({"name": "web", "runtime": "container", "image": "busybox"});
        if let Some(s) = sandbox {
            json["sandbox"] = s.into();
        }
        serde_json::from_value(json).expect("spec")
    }

    #[test]
    fn sandboxed_services_need_a_node_that_offers_the_sandbox() {
        let gvisor = spec(Some("gvisor"));
        let p = Prepared::new(&Request::new(&gvisor, &[]));
        assert_eq!(check(&p, &[]), Err("no gvisor sandbox (runsc)"));
        assert_eq!(check(&p, &[Sandbox::Gvisor]), Ok(()));
        let plain = spec(None);
        let p = Prepared::new(&Request::new(&plain, &[]));
        assert_eq!(check(&p, &[]), Ok(()));
    }
}
