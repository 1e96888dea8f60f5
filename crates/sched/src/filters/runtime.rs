//! Runtime support: the candidate must run the spec's runtime kind.

use super::Reason;
use crate::prepare::Prepared;
use canopy_model::RuntimeKind;

pub fn check(p: &Prepared, runtimes: &[RuntimeKind]) -> Result<(), Reason> {
    if runtimes.contains(&p.request.spec.runtime) {
        Ok(())
    } else {
        Err(p.runtime_reason)
    }
}
