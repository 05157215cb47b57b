//! `heph auth login|logout|whoami`: clap arguments and [`run`], which the `heph` CLI delegates to.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use super::device::{self, LoginOptions};
use super::{TokenSet, TokenStore, now_secs, unverified_claims};

/// `heph auth …`.
#[derive(Debug, clap::Args)]
pub struct AuthArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AuthCommand,
}

/// The `heph auth` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuthCommand {
    /// Log this device in with the device-code flow (prints a URL, a code and a QR code).
    Login(LoginArgs),
    /// Remove this device's stored tokens for the hub.
    Logout(StoreArgs),
    /// Show who this device is logged in as (sub, name, email, groups, expiry).
    Whoami(WhoamiArgs),
}

/// Where the tokens of which hub live.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The hub URL (tokens are stored per normalised URL).
    #[arg(long, env = "HEPH_HUB_URL", value_name = "URL")]
    pub hub_url: String,
    /// Token file [default: <data dir>/tokens/<hub>.json, mode 0600].
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Command printing the stored token set (run without a shell), e.g. "op read op://vault/heph/tokens".
    #[arg(long, value_name = "CMD")]
    pub token_load_cmd: Option<String>,
    /// Command receiving the token set JSON on stdin (run without a shell).
    #[arg(long, value_name = "CMD")]
    pub token_save_cmd: Option<String>,
    /// Extra CA certificates (PEM) to trust for HTTPS to the hub and the IdP.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
}

impl StoreArgs {
    /// The token store these flags name.
    pub fn store(&self, data_dir: &Path) -> Result<TokenStore> {
        Ok(TokenStore::from_flags(
            data_dir,
            &self.hub_url,
            self.token_file.clone(),
            self.token_load_cmd.clone(),
            self.token_save_cmd.clone(),
        )?)
    }
}

/// `heph auth login`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    /// Hub and token store.
    pub store: StoreArgs,
    /// OIDC issuer [default: the hub's /config].
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// OAuth client id [default: the hub's /config].
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// Don't try to open a browser; just print the URL, code and QR code.
    #[arg(long)]
    pub no_browser: bool,
}

/// `heph auth whoami`.
#[derive(Debug, Clone, clap::Args)]
pub struct WhoamiArgs {
    #[command(flatten)]
    /// Hub and token store.
    pub store: StoreArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run one `heph auth` command; returns what to print on stdout. Login instructions go to stderr.
pub fn run(args: AuthArgs, data_dir: &Path) -> Result<String> {
    match args.command {
        AuthCommand::Login(a) => login(&a, data_dir),
        AuthCommand::Logout(a) => {
            let store = a.store(data_dir)?;
            let removed = store.remove()?;
            Ok(if removed {
                format!(
                    "logged out of {} (removed {})\n",
                    a.hub_url,
                    store.describe()
                )
            } else {
                format!(
                    "no stored tokens for {} ({})\n",
                    a.hub_url,
                    store.describe()
                )
            })
        }
        AuthCommand::Whoami(a) => {
            let store = a.store.store(data_dir)?;
            let tokens = store.load()?.ok_or_else(|| super::AuthError::NotLoggedIn {
                hub: a.store.hub_url.clone(),
            })?;
            let info = whoami(&tokens);
            if a.json {
                Ok(format!("{}\n", serde_json::to_string_pretty(&info)?))
            } else {
                Ok(render_whoami(&info))
            }
        }
    }
}

/// Run the device flow and save the tokens. Instructions and progress go to stderr.
pub fn login(a: &LoginArgs, data_dir: &Path) -> Result<String> {
    let store = a.store.store(data_dir)?;
    let mut opts = LoginOptions::new(a.store.hub_url.clone());
    opts.issuer = a.issuer.clone();
    opts.client_id = a.client_id.clone();
    opts.no_browser = a.no_browser;
    opts.ca_file = a.store.ca_file.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?;
    let tokens = rt.block_on(async {
        let login = device::start(&opts).await?;
        let mut err = std::io::stderr();
        let _ = err.write_all(login.instructions().as_bytes());
        if !opts.no_browser && login.open_browser() {
            let _ = writeln!(err, "(opened your browser)");
        }
        let _ = writeln!(err, "Waiting for approval…");
        let _ = err.flush();
        let notice = |m: &str| eprintln!("{m}");
        let sleep = device::tokio_sleep();
        login.finish(&notice, sleep.as_ref()).await
    })?;
    store.save(&tokens)?;
    let info = whoami(&tokens);
    let who = info["sub"].as_str().unwrap_or("?");
    let extra = [info["name"].as_str(), info["email"].as_str()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = format!("logged in to {} as {who}", tokens.hub_url);
    if !extra.is_empty() {
        out.push_str(&format!(" ({extra})"));
    }
    out.push('\n');
    if tokens.refresh_token.is_none() {
        out.push_str("warning: the IdP issued no refresh token (offline_access not granted): you will have to log in again when the access token expires\n");
    }
    out.push_str(&format!("tokens saved to {}\n", store.describe()));
    Ok(out)
}

/// The identity facts of a token set: ID-token claims (who approved the login), groups and expiry from the
/// access token. Claims are decoded without verification (the hub verifies; this is display only).
pub fn whoami(t: &TokenSet) -> Value {
    let id = t
        .id_token
        .as_deref()
        .and_then(unverified_claims)
        .unwrap_or_default();
    let at = unverified_claims(&t.access_token).unwrap_or_default();
    let pick = |k: &str| {
        id.get(k)
            .or_else(|| at.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let now = now_secs();
    json!({
        "hub_url": t.hub_url,
        "issuer": t.issuer,
        "client_id": t.client_id,
        "sub": pick("sub"),
        "name": pick("name"),
        "email": pick("email"),
        "groups": at.get("groups").or_else(|| id.get("groups")).cloned().unwrap_or(Value::Array(vec![])),
        "access_token_expires_at": t.expires_at,
        "access_token_expired": t.expires_at.map(|e| e <= now),
        "refresh_token": t.refresh_token.is_some(),
        "scope": t.scope,
    })
}

fn render_whoami(v: &Value) -> String {
    let s = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "-".into())
    };
    let groups = v["groups"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| "-".into());
    let expiry = match v["access_token_expires_at"].as_u64() {
        Some(e) => {
            let now = now_secs();
            let when = crate::cli::format_ms((e as i64) * 1000);
            if e > now {
                format!("{when} (in {})", human_secs(e - now))
            } else {
                format!("{when} (expired)")
            }
        }
        None => "unknown".into(),
    };
    format!(
        "hub:      {}\nissuer:   {}\nsub:      {}\nname:     {}\nemail:    {}\ngroups:   {groups}\nexpires:  {expiry}\nrefresh:  {}\n",
        s("hub_url"),
        s("issuer"),
        s("sub"),
        s("name"),
        s("email"),
        if v["refresh_token"].as_bool() == Some(true) {
            "yes"
        } else {
            "no (log in again when it expires)"
        }
    )
}

fn human_secs(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// After a sync failed with `auth_failure`: when [`super::session::auto_relogin_allowed`] (interactive, and
/// `HEPH_NO_AUTO_RELOGIN` is not `1`), ask on stderr whether to log in again and run the device login if the
/// answer is yes (or empty). Returns whether a new login was saved. Non-interactive callers get `Ok(false)`.
pub fn offer_relogin(args: &LoginArgs, data_dir: &Path) -> Result<bool> {
    if !super::session::auto_relogin_allowed() {
        return Ok(false);
    }
    eprint!(
        "The hub no longer accepts this device's login ({}). Log in again now? [Y/n] ",
        args.store.hub_url
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("reading the answer")?;
    let a = answer.trim().to_ascii_lowercase();
    if !(a.is_empty() || a == "y" || a == "yes") {
        return Ok(false);
    }
    let out = login(args, data_dir)?;
    eprint!("{out}");
    Ok(true)
}
