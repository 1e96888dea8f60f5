//! Label selectors as `kubectl -l` writes them: `key=value`, `key==value`, `key!=value`,
//! `key` (exists), `!key` (does not exist), joined by commas (all must hold).

use crate::validate::{label_key, label_value};
use std::collections::BTreeMap;
use std::fmt;

/// A parsed selector; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals { key: String, value: String },
    NotEquals { key: String, value: String },
    Exists { key: String },
    DoesNotExist { key: String },
}

/// Why a selector does not parse, naming the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {part:?}: {reason}")]
pub struct SelectorError {
    /// The comma-separated requirement at fault (or the whole selector).
    pub part: String,
    pub reason: String,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        if text.trim().is_empty() {
            return Ok(Selector::default());
        }
        let requirements = text
            .split(',')
            .map(|part| parse_requirement(part.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Selector::parse(text)
    }
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals { key, value } => labels.get(key) == Some(value),
            // As Kubernetes: a missing label is "not equal" too.
            Requirement::NotEquals { key, value } => labels.get(key) != Some(value),
            Requirement::Exists { key } => labels.contains_key(key),
            Requirement::DoesNotExist { key } => !labels.contains_key(key),
        }
    }
}

fn parse_requirement(part: &str) -> Result<Requirement, SelectorError> {
    let fail = |reason: String| SelectorError {
        part: part.to_string(),
        reason,
    };
    if part.is_empty() {
        return Err(fail(
            "empty requirement (two commas in a row, or a trailing comma)".into(),
        ));
    }
    let requirement = if let Some((key, value)) = part.split_once("!=") {
        Requirement::NotEquals {
            key: key.trim().to_string(),
            value: value.trim().to_string(),
        }
    } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        Requirement::Equals {
            key: key.trim().to_string(),
            value: value.trim().to_string(),
        }
    } else if let Some(key) = part.strip_prefix('!') {
        Requirement::DoesNotExist {
            key: key.trim().to_string(),
        }
    } else if part.contains('(') || part.split_whitespace().any(|w| w == "in" || w == "notin") {
        return Err(fail(
            "set-based requirements (`in`, `notin`) are not supported; use key=value, key!=value, key or !key".into(),
        ));
    } else {
        Requirement::Exists {
            key: part.to_string(),
        }
    };
    let (key, value) = match &requirement {
        Requirement::Equals { key, value } | Requirement::NotEquals { key, value } => {
            (key, Some(value))
        }
        Requirement::Exists { key } | Requirement::DoesNotExist { key } => (key, None),
    };
    label_key(key).map_err(fail)?;
    if let Some(value) = value {
        if value.contains(['=', '!']) {
            return Err(fail(format!(
                "invalid value {value:?}: '=' and '!' are operators"
            )));
        }
        label_value(value).map_err(|reason| fail(format!("invalid value {value:?}: {reason}")))?;
    }
    Ok(requirement)
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Equals { key, value } => write!(f, "{key}={value}"),
            Requirement::NotEquals { key, value } => write!(f, "{key}!={value}"),
            Requirement::Exists { key } => f.write_str(key),
            Requirement::DoesNotExist { key } => write!(f, "!{key}"),
        }
    }
}

/// The canonical text, which parses back to the same selector.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

/// The labels a service (and each of its instances) is selected by: its application's,
/// overlaid by its own.
pub fn service_labels(
    application: &BTreeMap<String, String>,
    service: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = application.clone();
    labels.extend(service.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_operator() {
        let selector = Selector::parse("tier=web, env==prod,team!=ops,gpu,!legacy").unwrap();
        assert_eq!(
            selector.requirements(),
            &[
                Requirement::Equals {
                    key: "tier".into(),
                    value: "web".into()
                },
                Requirement::Equals {
                    key: "env".into(),
                    value: "prod".into()
                },
                Requirement::NotEquals {
                    key: "team".into(),
                    value: "ops".into()
                },
                Requirement::Exists { key: "gpu".into() },
                Requirement::DoesNotExist {
                    key: "legacy".into()
                },
            ]
        );
        assert_eq!(
            selector.to_string(),
            "tier=web,env=prod,team!=ops,gpu,!legacy"
        );
        assert_eq!(Selector::parse(&selector.to_string()).unwrap(), selector);
    }

    #[test]
    fn all_requirements_must_hold() {
        let selector = Selector::parse("tier=web,!legacy,team!=ops").unwrap();
        assert!(selector.matches(&labels(&[("tier", "web")])));
        assert!(selector.matches(&labels(&[("tier", "web"), ("team", "dev")])));
        assert!(!selector.matches(&labels(&[("tier", "web"), ("team", "ops")])));
        assert!(!selector.matches(&labels(&[("tier", "web"), ("legacy", "")])));
        assert!(!selector.matches(&labels(&[("tier", "db")])));
        assert!(!selector.matches(&labels(&[])));
    }

    #[test]
    fn exists_and_empty_values() {
        let exists = Selector::parse("gpu").unwrap();
        assert!(exists.matches(&labels(&[("gpu", "")])));
        assert!(!exists.matches(&labels(&[("cpu", "x")])));
        let empty_value = Selector::parse("gpu=").unwrap();
        assert!(empty_value.matches(&labels(&[("gpu", "")])));
        assert!(!empty_value.matches(&labels(&[("gpu", "a100")])));
        assert!(!empty_value.matches(&labels(&[])));
    }

    #[test]
    fn the_empty_selector_matches_everything() {
        let selector = Selector::parse("  ").unwrap();
        assert!(selector.is_empty());
        assert!(selector.matches(&labels(&[])));
        assert!(selector.matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn prefixed_keys_are_allowed() {
        let selector = Selector::parse("app.kubernetes.io/name=web").unwrap();
        assert!(selector.matches(&labels(&[("app.kubernetes.io/name", "web")])));
    }

    #[test]
    fn errors_name_the_bad_part() {
        let cases = [
            ("tier=web,,env=prod", "", "empty requirement"),
            ("tier=web,", "", "empty requirement"),
            ("tier=web,=prod", "=prod", "key must not be empty"),
            ("tier=we b", "tier=we b", "invalid value"),
            ("tier=-web", "tier=-web", "start and end"),
            ("tier in (a,b)", "tier in (a", "set-based"),
            ("bad key!", "bad key!", "only letters"),
            ("a=b=c", "a=b=c", "operators"),
            ("!", "!", "key must not be empty"),
            ("UPPER/x=y", "UPPER/x=y", "DNS subdomain"),
        ];
        for (text, part, reason) in cases {
            let error = Selector::parse(text).expect_err(text);
            assert_eq!(error.part, part, "{text}: {error}");
            assert!(error.reason.contains(reason), "{text}: {error}");
            assert!(error.to_string().contains(&format!("{part:?}")), "{error}");
        }
    }

    #[test]
    fn a_service_carries_its_applications_labels_under_its_own() {
        let merged = service_labels(
            &labels(&[("team", "a"), ("tier", "app")]),
            &labels(&[("tier", "web")]),
        );
        assert_eq!(merged, labels(&[("team", "a"), ("tier", "web")]));
    }
}
