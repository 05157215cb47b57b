//! `hephd --mode local`: the spoke daemon. Owns the store (exclusive lock), serves the CLI and local agents
//! over a Unix socket (JSON RPC at `/rpc`), and keeps the replica in sync with the hub in the background.
//!
//! Native only. The layout: [`server`] (socket RPC), [`syncloop`] (debounce, long-poll, backoff),
//! [`client`] (the CLI's daemon backend), [`cli`] (`heph sync`), [`progress`] (bring-up bar).

pub mod cli;
pub mod client;
pub mod progress;
pub mod server;
pub mod syncloop;

use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context as _, Result, anyhow, bail};
use heph_format::OwnerId;

use crate::env::SystemEnv;
use crate::replica::Replica;
use crate::sync::{HttpHub, TokenProvider, normalise_hub_url, status};

/// File name of the exclusive lock a running daemon holds in its data directory.
pub const LOCK_FILE: &str = "hephd.lock";
/// Default socket file name in the data directory.
pub const SOCKET_FILE: &str = "hephd.sock";
/// Store file name in the data directory.
pub const DB_FILE: &str = "heph.db";

/// Flags of `hephd --mode local` that the server mode does not have.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// The spoke's data directory (holds heph.db, hephd.sock, hephd.lock) [default: ~/.local/share/heph].
    #[arg(long, env = "HEPH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The hub to sync with (remembered in the store; default: the remembered one).
    #[arg(long, value_name = "URL")]
    pub hub_url: Option<String>,
    /// Token file (JSON, mode 0600) [default: <data-dir>/tokens/<hub>.json].
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Command printing the token set JSON (or an access token) on stdout; run without a shell.
    #[arg(long, value_name = "CMD")]
    pub token_load_cmd: Option<String>,
    /// Command receiving refreshed token set JSON on stdin; run without a shell.
    #[arg(long, value_name = "CMD")]
    pub token_save_cmd: Option<String>,
    /// Extra CA certificate (PEM) trusted for HTTPS to the hub and the IdP.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
}

/// Flags shared with `--mode server` (parsed once by `hephd`, used by both modes).
#[derive(Debug, Clone, Default)]
pub struct SharedFlags {
    /// `--socket PATH` (default `<data-dir>/hephd.sock`).
    pub socket: Option<PathBuf>,
    /// `--owner-id`: a new store joins this owner; a store of another owner is refused.
    pub owner_id: Option<OwnerId>,
    /// `--oidc-issuer` (informational for the spoke: tokens come from the token store).
    pub oidc_issuer: Option<String>,
    /// `--oidc-client-id`.
    pub oidc_client_id: Option<String>,
}

/// The default data directory.
pub fn default_data_dir() -> Result<PathBuf> {
    let home =
        std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set; pass --data-dir DIR"))?;
    Ok(PathBuf::from(home).join(".local/share/heph"))
}

/// The exclusive lock on a data directory, held for the daemon's lifetime.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    path: PathBuf,
}

impl StoreLock {
    /// Takes the lock (non-blocking); fails clearly when another process holds it.
    pub fn acquire(dir: &Path) -> Result<StoreLock> {
        use std::io::Write as _;
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                bail!(
                    "the store in {} is held by another hephd (pid {}); stop it first",
                    dir.display(),
                    holder.trim()
                );
            }
            Err(e) => bail!("cannot lock {}: {e}", path.display()),
        }
        file.set_len(0).ok();
        write!(file, "{}", std::process::id()).ok();
        file.flush().ok();
        Ok(StoreLock { _file: file, path })
    }

    /// Whether some process holds the lock of `dir` right now.
    pub fn is_held(dir: &Path) -> bool {
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(LOCK_FILE))
        else {
            return false;
        };
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
            Ok(()) => {
                let _ = rustix::fs::flock(&file, rustix::fs::FlockOperation::Unlock);
                false
            }
            Err(_) => true,
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens `<dir>/heph.db` (creating the directory), joining `owner` when given.
pub fn open_replica(dir: &Path, owner: Option<OwnerId>) -> Result<Replica> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let path = dir.join(DB_FILE);
    let path = path
        .to_str()
        .ok_or_else(|| anyhow!("the data directory path is not UTF-8"))?;
    Ok(match owner {
        Some(o) => Replica::open_with_owner(path, o, &SystemEnv)?,
        None => Replica::open(path, &SystemEnv)?,
    })
}

/// Builds the HTTP hub client for `url` with the token store the flags name.
pub fn hub_client(
    data_dir: &Path,
    url: &str,
    token_file: Option<PathBuf>,
    load_cmd: Option<String>,
    save_cmd: Option<String>,
    ca_file: Option<PathBuf>,
) -> Result<HttpHub> {
    let url = normalise_hub_url(url)?;
    let store =
        crate::auth::TokenStore::from_flags(data_dir, &url, token_file, load_cmd, save_cmd)?;
    let token: Rc<dyn TokenProvider> =
        Rc::new(crate::auth::AuthSession::new(store, ca_file.clone()));
    let client = crate::auth::http::client_builder(ca_file.as_deref())?
        .connect_timeout(std::time::Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()
        .context("cannot build the HTTP client")?;
    Ok(HttpHub::with_client(&url, client, token)?)
}

/// Runs `hephd --mode local` until SIGTERM/SIGINT.
pub fn run_local(args: LocalArgs, shared: SharedFlags) -> Result<()> {
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let lock = StoreLock::acquire(&dir)?;
    let replica = open_replica(&dir, shared.owner_id)?;
    let hub_url = match &args.hub_url {
        Some(u) => {
            let u = normalise_hub_url(u)?;
            status::set_hub_url(&replica, &u)?;
            Some(u)
        }
        None => status::hub_url(&replica)?,
    };
    let socket = shared
        .socket
        .clone()
        .unwrap_or_else(|| dir.join(SOCKET_FILE));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let local = tokio::task::LocalSet::new();
    let state = Rc::new(server::Daemon {
        replica: RefCell::new(replica),
        env: SystemEnv,
        data_dir: dir.clone(),
        socket: socket.clone(),
        args: args.clone(),
        hub: RefCell::new(None),
        wake: tokio::sync::Notify::new(),
        sync_guard: tokio::sync::Mutex::new(()),
    });
    if let Some(u) = &hub_url {
        state.set_hub(u)?;
    } else {
        tracing::warn!(
            "no hub URL configured: serving the store without sync (use --hub-url or `heph sync --hub-url`)"
        );
    }
    tracing::info!(data_dir = %dir.display(), socket = %socket.display(), lock = %lock.path().display(),
        hub = hub_url.as_deref().unwrap_or("none"), "hephd --mode local starting");
    let result = local.block_on(&rt, async move {
        let listener = server::bind(&socket)?;
        tokio::task::spawn_local(syncloop::run(state.clone()));
        let serve = tokio::task::spawn_local(server::serve(listener, state.clone()));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot install the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            r = serve => {
                if let Ok(Err(e)) = r { return Err(e); }
            }
        }
        let _ = std::fs::remove_file(&socket);
        Ok::<(), anyhow::Error>(())
    });
    drop(lock);
    result
}
