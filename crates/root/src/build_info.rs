//! The build this is: the version, and the git commit when the build knew it (from
//! `CANOPY_GIT_COMMIT` at build time, or the checkout it was built in; see build.rs).

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: Option<&str> = option_env!("CANOPY_GIT_COMMIT");
