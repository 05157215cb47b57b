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
use crate::sync::{HttpHub, HubError, SyncError, TokenProvider, normalise_hub_url, status};

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

/// How the daemon (or `heph sync`) authenticates to the hub and trusts its certificate.
#[derive(Debug, Clone, Default)]
pub struct HubAuthFlags {
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `--token-load-cmd`.
    pub token_load_cmd: Option<String>,
    /// `--token-save-cmd`.
    pub token_save_cmd: Option<String>,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `--oidc-issuer` / `--oidc-client-id`: the IdP the tokens must come from (and fill-ins).
    pub idp: crate::auth::ExpectedIdp,
}

impl HubAuthFlags {
    /// Checks what can be checked without a hub: the `--ca-file` holds PEM certificates, the token
    /// commands split into argv. Nothing is read from the store.
    pub fn validate(&self) -> Result<()> {
        if let Some(i) = &self.idp.issuer {
            let rest = i
                .strip_prefix("https://")
                .or_else(|| i.strip_prefix("http://"));
            let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
            if host.is_none_or(str::is_empty) || i.contains(char::is_whitespace) {
                bail!("--oidc-issuer {i:?} is not an issuer URL (expected https://… or http://…)");
            }
        }
        if self
            .idp
            .client_id
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            bail!("--oidc-client-id must not be empty");
        }
        drop(crate::auth::http::client_builder(self.ca_file.as_deref())?);
        for (which, cmd) in [
            ("token-load-cmd", &self.token_load_cmd),
            ("token-save-cmd", &self.token_save_cmd),
        ] {
            if let Some(c) = cmd {
                crate::auth::store::split_command(which, c)?;
            }
        }
        Ok(())
    }
}

/// A hub client and the token session it uses.
#[derive(Debug)]
pub struct HubConnection {
    /// The `sync/v1` client.
    pub hub: Rc<HttpHub>,
    /// Its bearer-token source.
    pub auth: Rc<crate::auth::AuthSession>,
}

/// Builds the HTTP hub client for `url` with the token store and CA the flags name.
pub fn connect_hub(data_dir: &Path, url: &str, flags: &HubAuthFlags) -> Result<HubConnection> {
    let url = normalise_hub_url(url)?;
    let store = crate::auth::TokenStore::from_flags(
        data_dir,
        &url,
        flags.token_file.clone(),
        flags.token_load_cmd.clone(),
        flags.token_save_cmd.clone(),
    )?;
    let auth = Rc::new(crate::auth::AuthSession::with_expected(
        store,
        flags.ca_file.clone(),
        flags.idp.clone(),
    ));
    let token: Rc<dyn TokenProvider> = auth.clone();
    let client = crate::auth::http::client_builder(flags.ca_file.as_deref())?
        .connect_timeout(std::time::Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()
        .context("cannot build the HTTP client")?;
    Ok(HubConnection {
        hub: Rc::new(HttpHub::with_client(&url, client, token)?),
        auth,
    })
}

/// Loads the tokens once at startup: a token set of another IdP/client than `--oidc-issuer` /
/// `--oidc-client-id` name is a startup error; any other token problem (missing, unreadable, garbage,
/// a failing command) is left to the sync status (`auth_failure`), so the daemon keeps serving the store.
pub fn check_tokens_at_start(conn: &HubConnection) -> Result<()> {
    match conn.auth.reload() {
        Ok(()) => Ok(()),
        Err(e @ crate::auth::AuthError::IdpMismatch { .. }) => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "no usable tokens yet; the sync status will show auth_failure");
            Ok(())
        }
    }
}

/// Adds what the user can do to a sync failure whose bare message does not say it: a hub that refused
/// a request sent without any token (nothing in the token store), and a TLS certificate that is not
/// trusted (`--ca-file`).
pub fn explain(err: SyncError, conn: &HubConnection, url: &str) -> SyncError {
    match err {
        SyncError::Hub(HubError::Unauthorized { message })
            if matches!(conn.auth.state(), crate::auth::AuthState::NotLoggedIn) =>
        {
            SyncError::Hub(HubError::Unauthorized {
                message: format!(
                    "{message}; no token was sent because {} holds none (not logged in to {url})",
                    conn.auth.store().describe()
                ),
            })
        }
        SyncError::Hub(HubError::Unreachable { url: u, reason })
            if is_certificate_error(&reason) =>
        {
            SyncError::Hub(HubError::Unreachable {
                url: u,
                reason: format!(
                    "TLS certificate not trusted ({reason}); if the hub uses a private CA, pass --ca-file PEM with that CA's certificate"
                ),
            })
        }
        e => e,
    }
}

/// Whether a network failure is the server's certificate being refused (retrying will not help).
pub fn is_certificate_error(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("certificate") || r.contains("unknownissuer") || r.contains("notvalidforname")
}

/// `hephd --mode local` after its flags were checked ([`LocalStart::prepare`]), ready to run.
#[derive(Debug)]
pub struct LocalStart {
    shared: SharedFlags,
    dir: PathBuf,
    flags: HubAuthFlags,
    arg_url: Option<String>,
    conn: Option<HubConnection>,
}

impl LocalStart {
    /// Checks the flags without touching the data directory or the store: `--hub-url`, `--ca-file`,
    /// the token command syntax and, with `--hub-url`, that stored tokens come from the IdP/client
    /// `--oidc-issuer`/`--oidc-client-id` name.
    pub fn prepare(args: LocalArgs, shared: SharedFlags) -> Result<LocalStart> {
        let dir = match &args.data_dir {
            Some(d) => d.clone(),
            None => default_data_dir()?,
        };
        let flags = HubAuthFlags {
            token_file: args.token_file.clone(),
            token_load_cmd: args.token_load_cmd.clone(),
            token_save_cmd: args.token_save_cmd.clone(),
            ca_file: args.ca_file.clone(),
            idp: crate::auth::ExpectedIdp {
                issuer: shared.oidc_issuer.clone(),
                client_id: shared.oidc_client_id.clone(),
            },
        };
        flags.validate()?;
        let (arg_url, conn) = match &args.hub_url {
            Some(u) => {
                let u = normalise_hub_url(u)?;
                let c = connect_hub(&dir, &u, &flags)?;
                check_tokens_at_start(&c)?;
                (Some(u), Some(c))
            }
            None => (None, None),
        };
        Ok(LocalStart {
            shared,
            dir,
            flags,
            arg_url,
            conn,
        })
    }

    /// Runs the daemon until SIGTERM/SIGINT.
    pub fn run(self) -> Result<()> {
        run_prepared(self)
    }
}

/// Runs `hephd --mode local` until SIGTERM/SIGINT.
///
/// Bad flags (`--hub-url`, `--ca-file`, token command syntax, tokens of another IdP than
/// `--oidc-issuer`/`--oidc-client-id`) are refused before the data directory or the store is touched.
pub fn run_local(args: LocalArgs, shared: SharedFlags) -> Result<()> {
    LocalStart::prepare(args, shared)?.run()
}

fn run_prepared(start: LocalStart) -> Result<()> {
    let LocalStart {
        shared,
        dir,
        flags,
        arg_url,
        mut conn,
    } = start;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let lock = StoreLock::acquire(&dir)?;
    let replica = open_replica(&dir, shared.owner_id)?;
    let hub_url = match arg_url {
        Some(u) => {
            status::set_hub_url(&replica, &u)?;
            Some(u)
        }
        None => match status::hub_url(&replica)? {
            Some(u) => {
                let c = connect_hub(&dir, &u, &flags)?;
                check_tokens_at_start(&c)?;
                conn = Some(c);
                Some(u)
            }
            None => None,
        },
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
        flags,
        hub: RefCell::new(None),
        wake: tokio::sync::Notify::new(),
        sync_guard: tokio::sync::Mutex::new(()),
        progress: RefCell::new(server::SyncProgress::default()),
    });
    if let (Some(u), Some(c)) = (&hub_url, conn) {
        state.install_hub(u, c)?;
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
