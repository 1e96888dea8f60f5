//! Files a service's instances find in their filesystem, read-only: inline configuration or
//! one key of a Secret of the namespace (as Kubernetes' ConfigMap and Secret volumes, or
//! Nomad's templates). Containers see each at its `path`; a process, which has no
//! filesystem of its own, finds it at the same path under `$CANOPY_FILES`.

use crate::SecretKeyRef;
use crate::descriptor::{RuntimeKind, ServiceSpec};
use crate::error::FieldError;
use crate::secret::validate_secret_key;
use crate::validate::validate_dns_label;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// At most this many files per service.
pub const MAX_FILES: usize = 64;
/// At most this many characters of inline content per file (the whole descriptor is bounded too).
pub const MAX_FILE_CONTENT: usize = 256 * 1024;
/// The environment variable naming the directory a process's files are under.
pub const FILES_ENV: &str = "CANOPY_FILES";

/// Where the kernel's and the runtime's own file systems are: never a service's file.
const RESERVED: [&str; 4] = ["/proc", "/sys", "/dev", "/etc/resolv.conf"];

/// One file: exactly one of `content` and `secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute and normal (`/etc/app/config.yaml`): no `.` or `..` parts, no trailing `/`.
    pub path: String,
    /// The file's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A key of a Secret of the namespace whose value is the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretKeyRef>,
}

impl FileSpec {
    /// The path below the root (`etc/app/config.yaml`): where it goes in a directory tree.
    pub fn relative_path(&self) -> &str {
        self.path.trim_start_matches('/')
    }
}

/// Every problem with the service's `files`, each naming its field under `p`.
pub(crate) fn check_files(p: &str, svc: &ServiceSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if svc.files.is_empty() {
        return errors;
    }
    if svc.files.len() > MAX_FILES {
        errors.push(FieldError::new(
            format!("{p}.files"),
            format!("must have at most {MAX_FILES} files"),
        ));
    }
    if svc.runtime == RuntimeKind::Wasm {
        errors.push(FieldError::new(
            format!("{p}.files"),
            "does not apply to runtime wasm yet (files for wasm modules are planned)",
        ));
    }
    if svc.runtime == RuntimeKind::Process && svc.security_context.run_as_user.is_some() {
        errors.push(FieldError::new(
            format!("{p}.files"),
            "cannot be combined with securityContext.runAsUser for runtime process \
             (its files are under the node's private data directory)",
        ));
    }
    for (i, file) in svc.files.iter().enumerate() {
        let at = format!("{p}.files[{i}]");
        if let Err(reason) = check_path(&file.path) {
            errors.push(FieldError::new(format!("{at}.path"), reason));
        }
        if let Some(first) = svc.files[..i].iter().position(|f| f.path == file.path) {
            errors.push(FieldError::new(
                format!("{at}.path"),
                format!("is also the path of files[{first}]"),
            ));
        }
        match (&file.content, &file.secret) {
            (Some(_), Some(_)) | (None, None) => errors.push(FieldError::new(
                at.clone(),
                "must have exactly one of content and secret",
            )),
            (Some(content), None) if content.chars().count() > MAX_FILE_CONTENT => {
                errors.push(FieldError::new(
                    format!("{at}.content"),
                    format!("must be at most {MAX_FILE_CONTENT} characters"),
                ))
            }
            (_, Some(secret)) => {
                if let Err(reason) = validate_dns_label(&secret.name) {
                    errors.push(FieldError::new(format!("{at}.secret.name"), reason));
                }
                if let Err(reason) = validate_secret_key(&secret.key) {
                    errors.push(FieldError::new(format!("{at}.secret.key"), reason));
                }
            }
            _ => {}
        }
    }
    errors
}

/// Absolute and normal, and not where the runtime's own file systems are.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    check_normal(path)?;
    if let Some(reserved) = RESERVED
        .iter()
        .find(|r| path == **r || path.starts_with(&format!("{r}/")))
    {
        return Err(format!("must not be under {reserved} (the runtime's own)"));
    }
    Ok(())
}

/// Absolute and normal: no empty, `.` or `..` parts, no trailing `/`, no NUL.
pub(crate) fn check_normal(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("must be absolute (start with /)".into());
    }
    if path.chars().count() > 1024 {
        return Err("must be at most 1024 characters".into());
    }
    if path.contains('\0') {
        return Err("must not hold NUL".into());
    }
    let parts: Vec<&str> = path[1..].split('/').collect();
    if parts
        .iter()
        .any(|part| part.is_empty() || *part == "." || *part == "..")
    {
        return Err("must be normal: no empty, '.' or '..' parts, no trailing /".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(runtime: &str, files: serde_json::Value) -> ServiceSpec {
        let mut spec = serde_json::json!({"name": "web", "runtime": runtime, "files": files});
        match runtime {
            "container" => spec["image"] = "reg/x:1".into(),
            "wasm" => spec["module"] = "m.wasm".into(),
            _ => spec["command"] = serde_json::json!(["/bin/true"]),
        }
        match serde_json::from_value(spec) {
            Ok(spec) => spec,
            Err(e) => panic!("test spec: {e}"),
        }
    }

    fn paths(svc: &ServiceSpec) -> Vec<String> {
        check_files("s", svc)
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.reason))
            .collect()
    }

    #[test]
    fn a_content_file_and_a_secret_file_are_valid() {
        let svc = service(
            "container",
            serde_json::json!([
                {"path": "/etc/app/config.yaml", "content": "a: 1\n"},
                {"path": "/run/secrets/token", "secret": {"name": "api", "key": "token"}}
            ]),
        );
        assert!(paths(&svc).is_empty(), "{:?}", paths(&svc));
        assert_eq!(svc.files[0].relative_path(), "etc/app/config.yaml");
    }

    #[test]
    fn paths_must_be_absolute_normal_unique_and_not_reserved() {
        let svc = service(
            "container",
            serde_json::json!([
                {"path": "etc/x", "content": ""},
                {"path": "/a/../../etc/shadow", "content": ""},
                {"path": "/a/", "content": ""},
                {"path": "/proc/self/mem", "content": ""},
                {"path": "/etc/resolv.conf", "content": ""},
                {"path": "/ok", "content": ""},
                {"path": "/ok", "content": ""}
            ]),
        );
        let errors = paths(&svc);
        let expected = [
            "s.files[0].path: must be absolute",
            "s.files[1].path: must be normal",
            "s.files[2].path: must be normal",
            "s.files[3].path: must not be under /proc",
            "s.files[4].path: must not be under /etc/resolv.conf",
            "s.files[6].path: is also the path of files[5]",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:?}");
        for (error, expected) in errors.iter().zip(expected) {
            assert!(error.starts_with(expected), "{error} vs {expected}");
        }
    }

    #[test]
    fn a_file_has_exactly_one_source_and_a_valid_secret_reference() {
        let svc = service(
            "process",
            serde_json::json!([
                {"path": "/a"},
                {"path": "/b", "content": "x", "secret": {"name": "api", "key": "k"}},
                {"path": "/c", "secret": {"name": "Not_A_Label", "key": "../k"}}
            ]),
        );
        let errors = paths(&svc);
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("s.files[0]: must have exactly one"));
        assert!(errors[1].starts_with("s.files[1]: must have exactly one"));
        assert!(errors[2].starts_with("s.files[2].secret.name:"));
        assert!(errors[3].starts_with("s.files[2].secret.key:"));
    }

    #[test]
    fn oversized_content_and_too_many_files_are_refused() {
        let big = "x".repeat(MAX_FILE_CONTENT + 1);
        let svc = service(
            "container",
            serde_json::json!([{"path": "/a", "content": big}]),
        );
        assert_eq!(paths(&svc).len(), 1);
        assert!(paths(&svc)[0].starts_with("s.files[0].content: must be at most"));
        let many: Vec<_> = (0..=MAX_FILES)
            .map(|i| serde_json::json!({"path": format!("/f{i}"), "content": ""}))
            .collect();
        let svc = service("container", serde_json::Value::Array(many));
        assert_eq!(paths(&svc), vec!["s.files: must have at most 64 files"]);
    }

    #[test]
    fn wasm_and_processes_running_as_another_user_get_no_files_yet() {
        let file = serde_json::json!([{"path": "/a", "content": ""}]);
        assert!(paths(&service("wasm", file.clone()))[0].starts_with("s.files: does not apply"));
        let mut svc = service("process", file);
        assert!(paths(&svc).is_empty());
        svc.security_context.run_as_user = Some(1000);
        assert!(paths(&svc)[0].starts_with("s.files: cannot be combined"));
    }
}
