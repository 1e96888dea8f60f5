//! A verb that said all it had to and ends `canopy` with a status of its own: `diff`'s 1
//! ("there are changes"), `exec`'s remote command's exit code.

/// Ends the process with this status and no further message.
#[derive(Debug)]
pub struct ExitStatus(pub u8);

impl ExitStatus {
    /// A command's exit code as a process status (codes outside 1..=255 become 1).
    pub fn of_code(code: i32) -> ExitStatus {
        ExitStatus(u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1))
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for ExitStatus {}
