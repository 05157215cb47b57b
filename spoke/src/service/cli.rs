//! `heph daemon install|start|stop|restart|status|uninstall|render`: the clap arguments and what each does.

use std::io::Write;
use std::path::PathBuf;

use super::ServiceError;
use super::backend::Context;

/// `heph daemon …`.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// The config file [default: $HEPH_CONFIG, else ~/.config/heph/config.toml].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: DaemonCommand,
}

/// The daemon subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DaemonCommand {
    /// Render the LaunchAgent / systemd unit from the config, register it and start the daemon.
    Install,
    /// Re-render from the config and start the daemon (if it already runs, the new unit applies at restart).
    Start,
    /// Stop the daemon.
    Stop,
    /// Re-render from the config, then stop and start, so every configured flag is what runs.
    Restart,
    /// Show whether it runs, its version, socket, last sync, self-update state and full command.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the daemon and remove its unit (the store and logs stay).
    Uninstall,
    /// Print the unit/plist the config renders to, changing nothing.
    Render,
    /// Run the supervisor loop (used by `start` on Linux without systemd).
    #[command(hide = true)]
    Supervise {
        /// The rendered spec.
        #[arg(long)]
        spec: PathBuf,
    },
}

/// Runs `heph daemon …` for this process's user, printing to stdout.
pub fn run(args: &DaemonArgs) -> Result<(), ServiceError> {
    if let DaemonCommand::Supervise { spec } = &args.command {
        return super::supervisor::supervise(spec);
    }
    let ctx = Context::from_env(args.config.as_deref())?;
    let mut out = std::io::stdout().lock();
    run_with(&ctx, &args.command, &mut out)
}

/// Runs one subcommand in `ctx`, writing the report to `out` (write errors such as a closed pipe are ignored).
pub fn run_with(
    ctx: &Context,
    command: &DaemonCommand,
    out: &mut dyn Write,
) -> Result<(), ServiceError> {
    if let DaemonCommand::Supervise { spec } = command {
        return super::supervisor::supervise(spec);
    }
    let config = ctx.load_config()?;
    let spec = ctx.spec(&config);
    let backend = ctx.backend(&config);
    match command {
        DaemonCommand::Install => {
            let path = backend.install(ctx, &spec)?;
            let _ = writeln!(
                out,
                "installed {} ({}) and started {}",
                path.display(),
                backend.name(),
                spec.label
            );
        }
        DaemonCommand::Start => {
            let path = backend.start(ctx, &spec)?;
            let _ = writeln!(
                out,
                "rendered {} from {}; started {}",
                path.display(),
                ctx.config_path.display(),
                spec.label
            );
        }
        DaemonCommand::Stop => {
            backend.stop(ctx, &spec)?;
            let _ = writeln!(out, "stopped {}", spec.label);
        }
        DaemonCommand::Restart => {
            let path = backend.restart(ctx, &spec)?;
            let _ = writeln!(
                out,
                "rendered {} from {}; restarted {}",
                path.display(),
                ctx.config_path.display(),
                spec.label
            );
        }
        DaemonCommand::Status { json } => {
            let status = super::status::gather(ctx, &config)?;
            if *json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                );
            } else {
                let _ = write!(out, "{}", status.human());
            }
        }
        DaemonCommand::Uninstall => {
            let path = backend.uninstall(ctx, &spec)?;
            let _ = writeln!(out, "stopped {} and removed {}", spec.label, path.display());
        }
        DaemonCommand::Render => {
            let _ = writeln!(out, "# {}", backend.unit_path(ctx, &spec).display());
            let _ = write!(out, "{}", backend.render(&spec));
        }
        DaemonCommand::Supervise { .. } => {}
    }
    Ok(())
}
