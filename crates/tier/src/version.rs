//! Which versions may link. Every hello carries its tier's version; a parent accepts children
//! of its own major version that are at most one minor version older (so roots can be upgraded
//! first, one at a time, then their clusters and nodes) and refuses the rest, newer ones
//! included, with an error that names both versions.

/// This build's version: every crate of the workspace shares it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Incompatible {
    #[error("sent no version (a canopy older than 0.1); upgrade it to {parent}")]
    Unversioned { parent: String },
    #[error("version {child:?} is not MAJOR.MINOR.PATCH")]
    Unreadable { child: String },
    #[error("version {child} is newer than its parent's {parent}: upgrade the parent first")]
    Newer { child: String, parent: String },
    #[error(
        "version {child} is too old for its parent's {parent}: children may be at most one \
         minor version older; upgrade it"
    )]
    Older { child: String, parent: String },
}

fn major_minor(version: &str) -> Option<(u64, u64)> {
    let core = version.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    parts.next().is_none().then_some((major, minor))
}

/// May a child of version `child` link to a parent of version `parent`?
pub fn compatible(parent: &str, child: &str) -> Result<(), Incompatible> {
    if child.is_empty() {
        return Err(Incompatible::Unversioned {
            parent: parent.to_string(),
        });
    }
    let unreadable = || Incompatible::Unreadable {
        child: child.to_string(),
    };
    let (parent_major, parent_minor) = major_minor(parent).ok_or_else(unreadable)?;
    let (child_major, child_minor) = major_minor(child).ok_or_else(unreadable)?;
    let (child_text, parent_text) = (child.to_string(), parent.to_string());
    if (child_major, child_minor) > (parent_major, parent_minor) {
        return Err(Incompatible::Newer {
            child: child_text,
            parent: parent_text,
        });
    }
    if child_major != parent_major || child_minor + 1 < parent_minor {
        return Err(Incompatible::Older {
            child: child_text,
            parent: parent_text,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_minor_and_one_minor_older_link_and_patches_never_matter() {
        assert_eq!(compatible("0.4.2", "0.4.2"), Ok(()));
        assert_eq!(
            compatible("0.4.2", "0.4.9"),
            Ok(()),
            "a newer patch is fine"
        );
        assert_eq!(compatible("0.4.0", "0.3.7"), Ok(()));
        assert_eq!(compatible("1.0.0", "1.0.0-rc.1"), Ok(()));
        assert_eq!(compatible(VERSION, VERSION), Ok(()));
    }

    #[test]
    fn older_by_two_minors_another_major_newer_or_none_are_refused_with_both_versions() {
        assert!(matches!(
            compatible("0.4.0", "0.2.9"),
            Err(Incompatible::Older { .. })
        ));
        assert!(matches!(
            compatible("2.0.0", "1.9.0"),
            Err(Incompatible::Older { .. })
        ));
        let newer = compatible("0.4.0", "0.5.0").unwrap_err();
        assert!(matches!(newer, Incompatible::Newer { .. }));
        assert!(newer.to_string().contains("0.5.0") && newer.to_string().contains("0.4.0"));
        assert!(matches!(
            compatible("0.4.0", "1.0.0"),
            Err(Incompatible::Newer { .. })
        ));
        assert!(matches!(
            compatible("0.4.0", ""),
            Err(Incompatible::Unversioned { .. })
        ));
        for unreadable in ["0.4", "x.y.z", "0.4.0.1", "0.4.x"] {
            assert!(
                matches!(
                    compatible("0.4.0", unreadable),
                    Err(Incompatible::Unreadable { .. })
                ),
                "{unreadable}"
            );
        }
    }
}
