//! `canopy`: the one binary. Daemons (`up`, `root`) and client verbs (`apply`, `get`, ...).

mod cli;
mod client;
mod commands;
mod config;
mod config_verbs;
mod create;
mod daemon;
mod diff;
mod drivers;
mod duration;
mod events;
mod exec;
mod exit;
mod files;
mod first_admin;
mod forward;
mod get;
mod local_join;
mod login;
mod namespaces;
mod operations;
mod output;
mod overlay;
mod rollout;
mod root_store;
mod run;
mod scaling;
mod secret_verbs;
mod service_wide;
mod sim;
mod sse;
mod streams;
mod tokens;
mod users;
mod version;
mod wait;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    if cli.command.is_daemon() {
        files::private_by_default();
    } else {
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
        // A verb that said all it had to (`diff`: 1 means "there are changes"; `exec`: the
        // remote command's code).
        Err(e) => match e.downcast_ref::<exit::ExitStatus>() {
            Some(status) => std::process::ExitCode::from(status.0),
            None => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
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
