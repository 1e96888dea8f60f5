//! `canopy`: the one binary. Daemons (`up`, `root`) and client verbs (`apply`, `get`, ...).

mod cli;
mod client;
mod commands;
mod daemon;
mod exec;
mod forward;
mod output;
mod sim;
mod streams;
mod tokens;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    if !cli.command.is_daemon() {
        quiet_on_closed_pipe();
    }
    // reqwest and the registry client share rustls; without a process-wide provider the
    // first TLS client would panic.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if let Some(exec::CommandExit(code)) = e.downcast_ref::<exec::CommandExit>() {
                return std::process::ExitCode::from(u8::try_from(*code).unwrap_or(1));
            }
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A client verb whose reader went away (`canopy get ... | head`) ends quietly, as other
/// command-line tools do, instead of panicking on the failed write: Rust ignores SIGPIPE, so
/// its default action is restored. Daemons keep ignoring it: a closed log pipe must not kill
/// a tier.
fn quiet_on_closed_pipe() {
    // SAFETY: called before any thread is started; resetting a signal's disposition to its
    // default has no other effect on the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
