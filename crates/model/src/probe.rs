//! Health probes of a service, spelled as Kubernetes spells them: one handler (`exec`,
//! `httpGet` or `tcpSocket`) and its timing. The node runs them; what their results mean
//! (ready, restart) is decided in the node's health core.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest delay, period or timeout a probe may have, in seconds.
pub const MAX_PROBE_SECONDS: u32 = 3600;
/// Largest success or failure threshold.
pub const MAX_PROBE_THRESHOLD: u32 = 1000;

/// One probe: exactly one of `exec`, `httpGet` and `tcpSocket`, with its timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    /// A command run inside the instance; exit status 0 passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    /// An HTTP GET to the instance; a status in 200..400 passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    /// A TCP connection to the instance; an accepted connection passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    /// Seconds after the start before the first probe.
    #[serde(default, deserialize_with = "crate::integer::integral")]
    pub initial_delay_seconds: u32,
    /// Seconds between probes.
    #[serde(
        default = "default_period",
        deserialize_with = "crate::integer::integral"
    )]
    pub period_seconds: u32,
    /// Seconds a probe may take before it counts as failed.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::integer::integral"
    )]
    pub timeout_seconds: u32,
    /// Passes in a row that make a failing probe pass (1 for liveness and startup).
    #[serde(
        default = "default_success",
        deserialize_with = "crate::integer::integral"
    )]
    pub success_threshold: u32,
    /// Failures in a row that make a passing probe fail.
    #[serde(
        default = "default_failure",
        deserialize_with = "crate::integer::integral"
    )]
    pub failure_threshold: u32,
}

/// What a probe checks, borrowed from the one handler that is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeHandler<'a> {
    Exec(&'a [String]),
    HttpGet { path: &'a str, port: u16 },
    TcpSocket { port: u16 },
}

impl Probe {
    /// Every handler that is set (a valid probe has exactly one).
    pub fn handlers(&self) -> Vec<ProbeHandler<'_>> {
        let mut handlers = Vec::with_capacity(1);
        if let Some(exec) = &self.exec {
            handlers.push(ProbeHandler::Exec(&exec.command));
        }
        if let Some(http) = &self.http_get {
            handlers.push(ProbeHandler::HttpGet {
                path: &http.path,
                port: http.port,
            });
        }
        if let Some(tcp) = &self.tcp_socket {
            handlers.push(ProbeHandler::TcpSocket { port: tcp.port });
        }
        handlers
    }

    /// The single handler of a valid probe.
    pub fn handler(&self) -> Option<ProbeHandler<'_>> {
        let handlers = self.handlers();
        (handlers.len() == 1).then(|| handlers[0])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecAction {
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGetAction {
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(deserialize_with = "crate::integer::integral")]
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSocketAction {
    #[serde(deserialize_with = "crate::integer::integral")]
    pub port: u16,
}

fn default_period() -> u32 {
    10
}
fn default_timeout() -> u32 {
    1
}
fn default_success() -> u32 {
    1
}
fn default_failure() -> u32 {
    3
}
fn default_path() -> String {
    "/".to_string()
}

/// Every problem with the probes of `svc` (at `p`, the service's path), each by its field.
pub(crate) fn probe_errors(p: &str, svc: &crate::ServiceSpec) -> Vec<crate::FieldError> {
    let mut errors = Vec::new();
    let probes = [
        ("livenessProbe", &svc.liveness_probe, true),
        ("readinessProbe", &svc.readiness_probe, false),
        ("startupProbe", &svc.startup_probe, true),
    ];
    for (field, probe, single_success) in probes {
        if let Some(probe) = probe {
            check(
                &mut errors,
                &format!("{p}.{field}"),
                probe,
                single_success,
                svc.runtime,
            );
        }
    }
    errors
}

fn check(
    errors: &mut Vec<crate::FieldError>,
    path: &str,
    probe: &Probe,
    single_success: bool,
    runtime: crate::RuntimeKind,
) {
    let mut err = |field: &str, reason: String| {
        let at = if field.is_empty() {
            path.to_string()
        } else {
            format!("{path}.{field}")
        };
        errors.push(crate::FieldError::new(at, reason));
    };
    if probe.handlers().len() != 1 {
        err(
            "",
            format!(
                "must set exactly one of exec, httpGet and tcpSocket, got {}",
                probe.handlers().len()
            ),
        );
    }
    if let Some(exec) = &probe.exec {
        if runtime == crate::RuntimeKind::Wasm {
            err("exec", "does not apply to runtime wasm (no exec)".into());
        }
        if exec.command.is_empty() {
            err("exec.command", "must not be empty".into());
        } else if exec.command.len() > crate::limits::MAX_COMMAND_WORDS {
            err(
                "exec.command",
                format!(
                    "must have at most {} entries",
                    crate::limits::MAX_COMMAND_WORDS
                ),
            );
        }
        for (i, word) in exec.command.iter().enumerate() {
            if word.contains('\0') || word.chars().count() > crate::limits::MAX_STRING_LEN {
                err(
                    &format!("exec.command[{i}]"),
                    format!(
                        "must be at most {} characters without NUL",
                        crate::limits::MAX_STRING_LEN
                    ),
                );
            }
        }
    }
    if runtime == crate::RuntimeKind::Wasm {
        if probe.http_get.is_some() {
            err("httpGet", crate::wasm::NO_SOCKETS.into());
        }
        if probe.tcp_socket.is_some() {
            err("tcpSocket", crate::wasm::NO_SOCKETS.into());
        }
    }
    if let Some(http) = &probe.http_get {
        if !http.path.starts_with('/') {
            err("httpGet.path", "must start with '/'".into());
        } else if http
            .path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
            || http.path.chars().count() > crate::limits::MAX_STRING_LEN
        {
            err(
                "httpGet.path",
                format!(
                    "must be at most {} characters, without whitespace or control characters",
                    crate::limits::MAX_STRING_LEN
                ),
            );
        }
        if http.port == 0 {
            err("httpGet.port", "must be >= 1".into());
        }
    }
    if probe.tcp_socket.as_ref().is_some_and(|t| t.port == 0) {
        err("tcpSocket.port", "must be >= 1".into());
    }
    let seconds = [
        ("initialDelaySeconds", probe.initial_delay_seconds, 0),
        ("periodSeconds", probe.period_seconds, 1),
        ("timeoutSeconds", probe.timeout_seconds, 1),
    ];
    for (field, value, min) in seconds {
        if value < min || value > MAX_PROBE_SECONDS {
            err(
                field,
                format!("must be in [{min}, {MAX_PROBE_SECONDS}], got {value}"),
            );
        }
    }
    for (field, value) in [
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        if value == 0 || value > MAX_PROBE_THRESHOLD {
            err(
                field,
                format!("must be in [1, {MAX_PROBE_THRESHOLD}], got {value}"),
            );
        }
    }
    if single_success && probe.success_threshold != 1 {
        err(
            "successThreshold",
            format!(
                "must be 1 for liveness and startup probes, got {}",
                probe.success_threshold
            ),
        );
    }
}
