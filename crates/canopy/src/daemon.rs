//! The long-running tiers.

use crate::cli::DaemonArgs;
use anyhow::Context;
use canopy_root::Root;
use canopy_store::RedbStore;
use std::sync::Arc;

pub async fn root(args: DaemonArgs, banner: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating the data directory {}", args.data.display()))?;
    let store_path = args.data.join("root.redb");
    let store = RedbStore::open(&store_path)
        .with_context(|| format!("opening the state store {}", store_path.display()))?;
    let root = Root::open(Arc::new(store))
        .await
        .context("recovering the desired state")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%address, data = %args.data.display(), "root orchestrator serving");
    // Scripts and tests wait for this exact line to learn the (possibly random) port.
    println!("canopy API listening on http://{address}");
    if banner {
        println!("  API docs:  http://{address}/docs");
        println!("  try:       canopy apply -f examples/hello-process.yaml && canopy get instances");
    }
    root.serve(listener, shutdown_signal())
        .await
        .context("serving the API")?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C only");
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}
