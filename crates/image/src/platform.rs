//! OCI platforms (`os/architecture[/variant]`) and the choice of a manifest from an index.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An OCI platform, with OCI's names (`amd64`, `arm64`, `arm` + `v7`...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on: Linux and `std::env::consts::ARCH` mapped to OCI names.
    pub fn host() -> Self {
        let (architecture, variant) = oci_arch(std::env::consts::ARCH);
        Platform {
            os: "linux".to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// `linux/amd64`, `linux/arm/v7`.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Whether an index entry with this os/arch/variant can run here. A missing variant on
    /// either side matches; `arm64` treats `v8` as no variant.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != architecture {
            return false;
        }
        let norm = |v: Option<&str>| -> Option<String> {
            match v {
                Some("") | None => None,
                Some("v8") if architecture == "arm64" => None,
                Some(v) => Some(v.to_string()),
            }
        };
        match (norm(self.variant.as_deref()), norm(variant)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform::host()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Rust's `target_arch` name → OCI architecture and variant.
pub fn oci_arch(rust_arch: &str) -> (&str, Option<&'static str>) {
    match rust_arch {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", None),
        "arm" => (
            "arm",
            Some(if cfg!(target_feature = "v7") {
                "v7"
            } else {
                "v6"
            }),
        ),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
        "mips" if cfg!(target_endian = "little") => ("mipsle", None),
        other => (other, None),
    }
}

/// Picks the entry of an image index for `platform`; `Err` carries the platforms on offer.
pub(crate) fn select<'a>(
    entries: &'a [oci_client::manifest::ImageIndexEntry],
    platform: &Platform,
) -> Result<&'a oci_client::manifest::ImageIndexEntry, Vec<String>> {
    let mut available = Vec::new();
    for entry in entries {
        let Some(p) = &entry.platform else {
            continue;
        };
        let (os, arch) = (p.os.to_string(), p.architecture.to_string());
        if platform.matches(&os, &arch, p.variant.as_deref()) {
            return Ok(entry);
        }
        // Attestation manifests say unknown/unknown: not a platform anyone can pick.
        if os != "unknown" {
            let mut name = format!("{os}/{arch}");
            if let Some(v) = &p.variant {
                name.push('/');
                name.push_str(v);
            }
            available.push(name);
        }
    }
    Err(available)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_arch_is_mapped() {
        let p = Platform::host();
        assert_eq!(p.os, "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(p.architecture, "amd64");
        }
        if cfg!(target_arch = "aarch64") {
            assert_eq!(p.architecture, "arm64");
        }
    }

    #[test]
    fn variants_match_loosely() {
        let arm7 = Platform::new("linux", "arm", Some("v7"));
        assert!(arm7.matches("linux", "arm", Some("v7")));
        assert!(arm7.matches("linux", "arm", None));
        assert!(!arm7.matches("linux", "arm", Some("v6")));
        let arm64 = Platform::new("linux", "arm64", None);
        assert!(arm64.matches("linux", "arm64", Some("v8")));
        assert!(!arm64.matches("linux", "amd64", None));
        assert!(!arm64.matches("windows", "arm64", None));
        assert_eq!(arm7.to_string(), "linux/arm/v7");
    }
}
