//! `hephd`: the hephaestus daemon (`--mode server` runs the hub, `--mode local` a spoke).

use clap::{Parser, ValueEnum};

/// Which daemon to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// The hub: stores and serves segments for every device.
    Server,
    /// A spoke: the local replica, CLI socket and background sync.
    Local,
}

/// The hephaestus daemon.
#[derive(Debug, Parser)]
#[command(name = "hephd", version = heph_hub::VERSION_STRING, about)]
struct Cli {
    /// Run as the hub (`server`) or as a device's spoke (`local`).
    #[arg(long, value_enum)]
    mode: Mode,
    #[command(flatten)]
    hub: heph_hub::args::HubArgs,
    /// `--mode local` flags (`--socket`, `--owner-id`, `--oidc-*` are shared with the server flags).
    #[command(flatten)]
    local: heph_spoke::daemon::LocalArgs,
    /// `--self-update-forge-url`, `--self-update-installer` (`--self-update` itself is in the hub's flags).
    #[command(flatten)]
    self_update: heph_spoke::selfupdate::SelfUpdateArgs,
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEPH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Self-update status lives in the data directory (local) or beside --db (server); off unless --self-update.
    let state_dir = match (cli.mode, &cli.hub.db, &cli.local.data_dir) {
        (Mode::Server, Some(db), _) => db.parent().map(std::path::Path::to_path_buf),
        (Mode::Local, _, Some(dir)) => Some(dir.clone()),
        _ => heph_spoke::daemon::default_data_dir().ok(),
    };
    let self_update = match &state_dir {
        Some(dir) => Some(cli.self_update.start(
            cli.hub.self_update,
            cli.hub.self_update_interval_secs,
            dir,
        )?),
        None if cli.hub.self_update => {
            anyhow::bail!("--self-update needs HOME or --db/--data-dir for its status file")
        }
        None => None,
    };
    match cli.mode {
        Mode::Server => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let extension = self_update.clone().map(|h| {
                std::sync::Arc::new(h) as std::sync::Arc<dyn heph_hub::server::StatusExtension>
            });
            rt.block_on(heph_hub::args::serve_with(cli.hub, extension))?;
            Ok(())
        }
        Mode::Local => {
            let shared = heph_spoke::daemon::SharedFlags {
                socket: cli.hub.socket,
                owner_id: cli.hub.owner_id,
                oidc_issuer: cli.hub.oidc_issuer,
                oidc_client_id: cli.hub.oidc_client_id,
            };
            heph_spoke::daemon::run_local(cli.local, shared)
        }
    }
}
