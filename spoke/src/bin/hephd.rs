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

/// How the flags shared with `--mode server` behave in `--mode local` (shown after the flag list).
const LOCAL_MODE_HELP: &str = "\
In --mode local:
  --oidc-issuer URL     the IdP the device's tokens must come from. A stored token set of another issuer
                        is refused at startup (the message names both); a token set without an issuer
                        (hand-provisioned) uses this one, and an empty token endpoint is then found by
                        OpenID discovery at this issuer when the access token is refreshed.
  --oidc-client-id ID   the OAuth client the tokens were issued to; same rules (refused when the token
                        set names another client, filled in when it names none).
  --socket PATH         the CLI socket (default <data-dir>/hephd.sock).
  --owner-id ULID       a new store joins this owner; a store of another owner is refused.";

/// The hephaestus daemon.
#[derive(Debug, Parser)]
#[command(name = "hephd", version = heph_hub::VERSION_STRING, about, after_help = LOCAL_MODE_HELP)]
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
    // Local mode checks its flags before anything (the self-update status file included) is written.
    let local = match cli.mode {
        Mode::Local => Some(heph_spoke::daemon::LocalStart::prepare(
            cli.local.clone(),
            heph_spoke::daemon::SharedFlags {
                socket: cli.hub.socket.clone(),
                owner_id: cli.hub.owner_id,
                oidc_issuer: cli.hub.oidc_issuer.clone(),
                oidc_client_id: cli.hub.oidc_client_id.clone(),
            },
        )?),
        Mode::Server => None,
    };
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
                .max_blocking_threads(heph_hub::server::MAX_BLOCKING_THREADS)
                .build()?;
            let extension = self_update.clone().map(|h| {
                std::sync::Arc::new(h) as std::sync::Arc<dyn heph_hub::server::StatusExtension>
            });
            rt.block_on(heph_hub::args::serve_with(cli.hub, extension))?;
            Ok(())
        }
        Mode::Local => match local {
            Some(start) => start.run(),
            None => anyhow::bail!("--mode local was not prepared"),
        },
    }
}
