//! `heph sync [--hub-url URL] [--status [--json]]`: through the daemon when one runs, else directly on the
//! store (one sync with a progress bar on a terminal).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::client::DaemonBackend;
use super::progress::BarProgress;
use super::{HubAuthFlags, StoreLock, connect_hub, explain};
use crate::env::{Env as _, SystemEnv};
use crate::sync::{
    HubError, SyncError, SyncOptions, SyncReport, SyncStatus, normalise_hub_url, status, sync_once,
};

/// Flags of `heph sync`.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// Set (and remember) the hub URL, then sync.
    #[arg(long, value_name = "URL")]
    pub hub_url: Option<String>,
    /// Show the sync status (last success, last error, auth failure, lag, pending ops) instead of syncing.
    #[arg(long)]
    pub status: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Token file to use instead of `<data-dir>/tokens/<hub>.json` (direct mode only).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) for HTTPS to the hub (direct mode only).
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
}

fn report_text(url: &str, r: &SyncReport) -> String {
    let mut s = String::new();
    if let Some(o) = r.adopted_owner {
        s.push_str(&format!("adopted the hub's owner {o}\n"));
    }
    s.push_str(&format!(
        "synced with {url}: pushed {} ops in {} segments, pulled {} ops in {} segments; all {} origins match the hub\n",
        r.pushed_ops,
        r.pushed_segments,
        r.pulled_ops,
        r.pulled_segments,
        r.heads.origins.len()
    ));
    s
}

fn status_out(s: &SyncStatus, daemon: bool, as_json: bool) -> Result<String> {
    if as_json {
        let mut v = serde_json::to_value(s)?;
        if let Value::Object(m) = &mut v {
            m.insert("daemon".into(), json!(daemon));
        }
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    Ok(format!(
        "daemon:        {}\n{}",
        if daemon { "running" } else { "not running" },
        s.human()
    ))
}

/// Runs `heph sync` for the store in `data_dir`.
pub fn run(data_dir: &Path, args: SyncArgs) -> Result<String> {
    if let Some(u) = &args.hub_url {
        normalise_hub_url(u)?;
    }
    if let Some(mut d) = DaemonBackend::connect(data_dir) {
        use crate::cli::backend::Backend as _;
        let mut out = String::new();
        if let Some(u) = &args.hub_url {
            let v = d.call("sync.set_hub", json!({ "url": u }))?;
            if !args.json {
                out.push_str(&format!(
                    "hub set to {}\n",
                    v["hub_url"].as_str().unwrap_or(u)
                ));
            }
        }
        if args.status {
            let v = d.call("sync.status", json!({}))?;
            let s: SyncStatus =
                serde_json::from_value(v).context("unexpected answer from the daemon")?;
            out.push_str(&status_out(&s, true, args.json)?);
            return Ok(out);
        }
        let watcher = super::progress::DaemonWatcher::start(d.clone());
        let v = d.call("sync.now", json!({}));
        drop(watcher);
        let v = v?;
        let r: SyncReport =
            serde_json::from_value(v.clone()).context("unexpected answer from the daemon")?;
        if args.json {
            out.push_str(&format!("{}\n", serde_json::to_string_pretty(&v)?));
        } else {
            let url = d.call("daemon.info", json!({}))?["hub_url"]
                .as_str()
                .unwrap_or("the hub")
                .to_owned();
            out.push_str(&report_text(&url, &r));
        }
        return Ok(out);
    }
    if StoreLock::is_held(data_dir) {
        bail!(
            "a hephd holds the store in {} but does not answer on {}; wait for it to start or stop it",
            data_dir.display(),
            super::client::socket_path(data_dir).display()
        );
    }
    let replica = crate::cli::open_store(data_dir)?;
    if args.status {
        let s = status::status(&replica)?;
        return status_out(&s, false, args.json);
    }
    let url = match &args.hub_url {
        Some(u) => {
            let u = normalise_hub_url(u)?;
            status::set_hub_url(&replica, &u)?;
            u
        }
        None => match status::hub_url(&replica)? {
            Some(u) => u,
            None => {
                bail!("no hub is configured for this store: run `heph sync --hub-url URL` once")
            }
        },
    };
    let conn = connect_hub(
        data_dir,
        &url,
        &HubAuthFlags {
            token_file: args.token_file.clone(),
            ca_file: args.ca_file.clone(),
            ..HubAuthFlags::default()
        },
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let cell = RefCell::new(replica);
    let env = SystemEnv;
    let mut bar = BarProgress::stderr();
    let result = rt
        .block_on(sync_once(
            &cell,
            conn.hub.as_ref(),
            &env,
            &SyncOptions::default(),
            &mut bar,
        ))
        .map_err(|e| explain(e, &conn, &url));
    let r = cell.borrow();
    match result {
        Ok(rep) => {
            status::record_success(&r, env.now_ms(), &rep)?;
            if args.json {
                Ok(format!("{}\n", serde_json::to_string_pretty(&rep)?))
            } else {
                Ok(report_text(&url, &rep))
            }
        }
        Err(e) => {
            if let Err(se) = status::record_failure(&r, env.now_ms(), &e) {
                tracing::warn!(error = %se, "cannot record the sync status");
            }
            drop(r);
            if matches!(e, SyncError::Hub(HubError::Unauthorized { .. })) {
                // Interactive only (a terminal, and HEPH_NO_AUTO_RELOGIN unset): offer a fresh login, then
                // sync again once. Otherwise the failure stands and `heph sync --status` shows auth_failure.
                let login = relogin_args(&url, &args);
                if crate::auth::cli::offer_relogin(&login, data_dir)? {
                    return run(
                        data_dir,
                        SyncArgs {
                            hub_url: None,
                            ..args
                        },
                    );
                }
            }
            Err(anyhow::Error::new(e).context(format!("sync with {url} failed")))
        }
    }
}

/// The `heph auth login` flags equivalent to this sync's hub and token options.
fn relogin_args(url: &str, args: &SyncArgs) -> crate::auth::cli::LoginArgs {
    crate::auth::cli::LoginArgs {
        store: crate::auth::cli::StoreArgs {
            hub_url: url.to_owned(),
            token_file: args.token_file.clone(),
            token_load_cmd: None,
            token_save_cmd: None,
            ca_file: args.ca_file.clone(),
        },
        issuer: None,
        client_id: None,
        no_browser: false,
    }
}
