//! The uid and gid a `process` instance runs as: the node agent's own unless the service's
//! `securityContext` names them (as Nomad's `raw_exec` and its `user`). The agent sets them
//! between fork and exec; the log files it opened itself stay writable through their
//! descriptors.

use canopy_model::SecurityContext;
use canopy_model::security::UNPRIVILEGED_ID;

/// `(uid, gid)` to switch to; `None` keeps the agent's.
pub(crate) fn process_identity(security: &SecurityContext) -> (Option<u32>, Option<u32>) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    identity_from(security, &passwd)
}

fn identity_from(security: &SecurityContext, passwd: &str) -> (Option<u32>, Option<u32>) {
    let uid = security.run_as_user;
    let gid = security.run_as_group.or_else(|| {
        // The user's primary group; an unknown non-root uid gets no group of root's.
        let uid = uid?;
        Some(primary_gid(passwd, uid).unwrap_or(if uid == 0 { 0 } else { UNPRIVILEGED_ID }))
    });
    (uid, gid)
}

/// The gid field of `uid`'s line in an /etc/passwd.
fn primary_gid(passwd: &str, uid: u32) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 4 && fields[2].parse() == Ok(uid))
            .then(|| fields[3].parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nbob:x:1000:100::/home/bob:/bin/sh\nbad:x:7\n";

    fn security(json: serde_json::Value) -> SecurityContext {
        serde_json::from_value(json).expect("security context")
    }

    #[test]
    fn nothing_asked_keeps_the_agents_identity() {
        assert_eq!(
            identity_from(&SecurityContext::default(), PASSWD),
            (None, None)
        );
    }

    #[test]
    fn a_user_brings_its_primary_group_unless_a_group_is_named() {
        let bob = security(serde_json::json!({"runAsUser": 1000}));
        assert_eq!(identity_from(&bob, PASSWD), (Some(1000), Some(100)));
        let named = security(serde_json::json!({"runAsUser": 1000, "runAsGroup": 5}));
        assert_eq!(identity_from(&named, PASSWD), (Some(1000), Some(5)));
        let unknown = security(serde_json::json!({"runAsUser": 4242}));
        assert_eq!(
            identity_from(&unknown, PASSWD),
            (Some(4242), Some(UNPRIVILEGED_ID))
        );
        let group_only = security(serde_json::json!({"runAsGroup": 5}));
        assert_eq!(identity_from(&group_only, PASSWD), (None, Some(5)));
    }
}
