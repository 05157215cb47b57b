//! [`AuthSession`]: the bearer-token source for the sync client. Hands out the stored access token,
//! refreshes it (refresh_token grant) shortly before it expires or after the hub refused it, saves the
//! new tokens, and records `auth_failure` when the refresh fails. [`ExpectedIdp`] is what
//! `hephd --mode local --oidc-issuer/--oidc-client-id` say the tokens must come from.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;

use super::{AuthError, TokenSet, TokenStore, device, now_secs};

/// Seconds before `expires_at` at which the access token is refreshed.
pub const REFRESH_SKEW_SECS: u64 = 60;

/// What the session knows about its tokens (shown by `heph sync --status` / `heph auth whoami`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthState {
    /// Nothing loaded yet.
    Unknown,
    /// No tokens stored for this hub.
    NotLoggedIn,
    /// A usable access token.
    Ok {
        /// When it expires (seconds since the Unix epoch), if known.
        expires_at: Option<u64>,
    },
    /// The token expired and could not be refreshed; `heph auth login` is needed.
    AuthFailure {
        /// Why (never a token).
        reason: String,
    },
}

/// The IdP and client the tokens must come from (`--oidc-issuer`, `--oidc-client-id` of
/// `hephd --mode local`). A token set that leaves a field empty takes it from here; a token set that names
/// another one is refused with [`AuthError::IdpMismatch`] (naming both).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedIdp {
    /// `--oidc-issuer`: compared byte for byte with the token set's `issuer` (as the hub compares `iss`).
    pub issuer: Option<String>,
    /// `--oidc-client-id`: compared with the token set's `client_id`.
    pub client_id: Option<String>,
}

impl ExpectedIdp {
    /// Fills the empty `issuer` / `client_id` of `t` from the flags, then refuses a token set of another
    /// issuer or client. `source_desc` names where the tokens came from (for the message).
    pub fn apply(&self, t: &mut TokenSet, source_desc: &str) -> Result<(), AuthError> {
        for (flag, what, expected, stored) in [
            (
                "--oidc-issuer",
                "by the issuer",
                &self.issuer,
                &mut t.issuer,
            ),
            (
                "--oidc-client-id",
                "for the client id",
                &self.client_id,
                &mut t.client_id,
            ),
        ] {
            let Some(expected) = expected else { continue };
            if stored.is_empty() {
                stored.clone_from(expected);
            } else if stored != expected {
                return Err(AuthError::IdpMismatch {
                    source_desc: source_desc.to_owned(),
                    what,
                    flag,
                    stored: stored.clone(),
                    expected: expected.clone(),
                });
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Inner {
    loaded: bool,
    tokens: Option<TokenSet>,
    stale: bool,
    state: AuthState,
}

/// Bearer tokens for one hub, from a [`TokenStore`]. Implements the sync client's `TokenProvider`.
#[derive(Debug)]
pub struct AuthSession {
    store: TokenStore,
    ca_file: Option<PathBuf>,
    expected: ExpectedIdp,
    inner: Mutex<Inner>,
}

enum Next {
    Use(Option<String>),
    Refresh(TokenSet),
}

impl AuthSession {
    /// A session over `store`; `ca_file` is trusted for HTTPS to the IdP.
    pub fn new(store: TokenStore, ca_file: Option<PathBuf>) -> AuthSession {
        AuthSession::with_expected(store, ca_file, ExpectedIdp::default())
    }

    /// A session whose tokens must come from `expected` (see [`ExpectedIdp::apply`]).
    pub fn with_expected(
        store: TokenStore,
        ca_file: Option<PathBuf>,
        expected: ExpectedIdp,
    ) -> AuthSession {
        AuthSession {
            store,
            ca_file,
            expected,
            inner: Mutex::new(Inner {
                loaded: false,
                tokens: None,
                stale: false,
                state: AuthState::Unknown,
            }),
        }
    }

    /// The current state.
    pub fn state(&self) -> AuthState {
        self.lock().state.clone()
    }

    /// The stored token set (after the first `bearer` call or [`AuthSession::reload`]).
    pub fn tokens(&self) -> Option<TokenSet> {
        self.lock().tokens.clone()
    }

    /// Where the tokens come from.
    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// Re-read the store (e.g. after `heph auth login` in another process). A token set of another
    /// issuer/client than [`ExpectedIdp`] names is an error ([`AuthError::IdpMismatch`]).
    pub fn reload(&self) -> Result<(), AuthError> {
        let tokens = self.load_checked()?;
        let mut g = self.lock();
        g.state = match &tokens {
            None => AuthState::NotLoggedIn,
            Some(t) => AuthState::Ok {
                expires_at: t.expires_at,
            },
        };
        g.tokens = tokens;
        g.loaded = true;
        g.stale = false;
        Ok(())
    }

    fn load_checked(&self) -> Result<Option<TokenSet>, AuthError> {
        let mut tokens = self.store.load()?;
        if let Some(t) = &mut tokens {
            self.expected.apply(t, &self.store.describe())?;
        }
        Ok(tokens)
    }

    /// Re-reads the store when nothing usable is held (not loaded yet, not logged in, an earlier failure)
    /// or the hub refused the held token. A token set that changed in the store (a new login) replaces
    /// the held one; a failing store keeps the held tokens when there are any.
    fn refresh_from_store(&self) -> Result<(), AuthError> {
        let (needed, held) = {
            let g = self.lock();
            let needed = !g.loaded || g.stale || !matches!(g.state, AuthState::Ok { .. });
            (needed, g.tokens.clone())
        };
        if !needed {
            return Ok(());
        }
        match self.load_checked() {
            Ok(tokens) => {
                let mut g = self.lock();
                g.loaded = true;
                match (&tokens, &held) {
                    // Same tokens as held: keep the state (a rejected one will be refreshed).
                    (Some(new), Some(old)) if new == old => {}
                    _ => {
                        g.stale = false;
                        g.state = match &tokens {
                            None => AuthState::NotLoggedIn,
                            Some(t) => AuthState::Ok {
                                expires_at: t.expires_at,
                            },
                        };
                        g.tokens = tokens;
                    }
                }
                Ok(())
            }
            Err(e) if held.is_some() && !matches!(e, AuthError::IdpMismatch { .. }) => {
                tracing::warn!(error = %e, "auth: cannot re-read the token store; using the held tokens");
                Ok(())
            }
            Err(e) => {
                let mut g = self.lock();
                g.state = AuthState::AuthFailure {
                    reason: e.to_string(),
                };
                g.tokens = None;
                Err(e)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next(&self) -> Result<Next, AuthError> {
        self.refresh_from_store()?;
        let g = self.lock();
        let Some(t) = &g.tokens else {
            return Ok(Next::Use(None));
        };
        let expiring = t
            .expires_at
            .is_some_and(|e| e <= now_secs() + REFRESH_SKEW_SECS);
        if expiring || g.stale {
            Ok(Next::Refresh(t.clone()))
        } else {
            Ok(Next::Use(Some(t.access_token.clone())))
        }
    }

    fn finish_refresh(
        &self,
        result: Result<TokenSet, AuthError>,
    ) -> Result<Option<String>, AuthError> {
        match result {
            Ok(new) => {
                if let Err(e) = self.store.save(&new) {
                    // The new token is still used for this process; the next start refreshes again.
                    tracing::warn!(error = %e, "auth: refreshed tokens could not be saved");
                }
                let mut g = self.lock();
                g.state = AuthState::Ok {
                    expires_at: new.expires_at,
                };
                let access = new.access_token.clone();
                g.tokens = Some(new);
                g.stale = false;
                Ok(Some(access))
            }
            Err(e) => {
                tracing::warn!(error = %e, "auth: token refresh failed");
                self.lock().state = AuthState::AuthFailure {
                    reason: e.to_string(),
                };
                Err(e)
            }
        }
    }

    /// The access token to send (refreshing first when it is about to expire); `Ok(None)` when no tokens
    /// are stored (a dev-mode hub needs none).
    pub async fn bearer_async(&self) -> Result<Option<String>, AuthError> {
        match self.next()? {
            Next::Use(t) => Ok(t),
            Next::Refresh(tokens) => {
                let http = super::http::idp_client(self.ca_file.as_deref())?;
                let r = device::refresh(&http, &tokens).await;
                self.finish_refresh(r)
            }
        }
    }

    /// Same as [`AuthSession::bearer_async`] for synchronous callers (also from inside an async runtime):
    /// a refresh runs on a helper thread with its own small runtime, and this call waits for it.
    pub fn bearer_blocking(&self) -> Result<Option<String>, AuthError> {
        match self.next()? {
            Next::Use(t) => Ok(t),
            Next::Refresh(tokens) => {
                let ca = self.ca_file.clone();
                let r = std::thread::scope(|s| {
                    s.spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(|e| {
                                AuthError::RefreshFailed(format!("cannot start a runtime: {e}"))
                            })?;
                        rt.block_on(async {
                            let http = super::http::idp_client(ca.as_deref())?;
                            device::refresh(&http, &tokens).await
                        })
                    })
                    .join()
                    .unwrap_or_else(|_| {
                        Err(AuthError::RefreshFailed(
                            "the refresh thread panicked".into(),
                        ))
                    })
                });
                self.finish_refresh(r)
            }
        }
    }

    /// The hub refused the last token: refresh before the next use.
    pub fn mark_rejected(&self) {
        self.lock().stale = true;
    }
}

impl crate::sync::TokenProvider for AuthSession {
    fn bearer(&self) -> Result<Option<String>, String> {
        self.bearer_blocking().map_err(|e| e.to_string())
    }

    fn rejected(&self) {
        self.mark_rejected();
    }
}

/// `true` when an interactive re-login may be offered: `HEPH_NO_AUTO_RELOGIN` is not `1` and stdin and
/// stderr are terminals.
pub fn auto_relogin_allowed() -> bool {
    use std::io::IsTerminal;
    std::env::var("HEPH_NO_AUTO_RELOGIN").as_deref() != Ok("1")
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(issuer: &str, client_id: &str, access: &str) -> TokenSet {
        TokenSet {
            version: 1,
            hub_url: "http://127.0.0.1:1".into(),
            issuer: issuer.into(),
            client_id: client_id.into(),
            token_endpoint: String::new(),
            access_token: access.into(),
            expires_at: Some(now_secs() + 3600),
            refresh_token: None,
            id_token: None,
            scope: None,
        }
    }

    #[test]
    fn expected_idp_fills_empty_fields_and_refuses_others_naming_both() {
        let e = ExpectedIdp {
            issuer: Some("https://idp.example".into()),
            client_id: Some("heph".into()),
        };
        let mut t = set("", "", "a");
        e.apply(&mut t, "F").expect("fill in");
        assert_eq!(
            (t.issuer.as_str(), t.client_id.as_str()),
            ("https://idp.example", "heph")
        );
        e.apply(&mut t, "F").expect("matching");

        let err = e
            .apply(&mut set("https://other.example", "heph", "a"), "F")
            .expect_err("other issuer")
            .to_string();
        assert!(
            err.contains("--oidc-issuer")
                && err.contains("https://other.example")
                && err.contains("https://idp.example")
                && err.contains("F"),
            "{err}"
        );
        let err = e
            .apply(&mut set("https://idp.example", "other", "a"), "F")
            .expect_err("other client")
            .to_string();
        assert!(
            err.contains("--oidc-client-id") && err.contains("\"other\""),
            "{err}"
        );
        // A trailing slash is another issuer (the hub compares `iss` byte for byte).
        assert!(
            e.apply(&mut set("https://idp.example/", "heph", "a"), "F")
                .is_err()
        );
        // No flags: nothing is checked or filled.
        let mut t = set("", "", "a");
        ExpectedIdp::default().apply(&mut t, "F").expect("no flags");
        assert!(t.issuer.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn the_store_is_read_again_until_it_yields_usable_tokens() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.json");
        let store = TokenStore::File(path.clone());
        let s = AuthSession::new(store.clone(), None);
        assert_eq!(s.bearer_blocking().expect("none yet"), None);
        assert_eq!(s.state(), AuthState::NotLoggedIn);

        std::fs::write(&path, "garbage").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = s.bearer_blocking().expect_err("garbage").to_string();
        assert!(err.contains("not a heph token file"), "{err}");
        assert!(matches!(s.state(), AuthState::AuthFailure { .. }));

        store
            .save(&set("https://idp.example", "heph", "first"))
            .expect("save");
        assert_eq!(
            s.bearer_blocking().expect("fixed").as_deref(),
            Some("first")
        );
        // Usable tokens are not re-read on every request ...
        store
            .save(&set("https://idp.example", "heph", "second"))
            .expect("save");
        assert_eq!(s.bearer_blocking().expect("held").as_deref(), Some("first"));
        // ... but after the hub refused them a changed store (a new login) is used without a refresh.
        s.mark_rejected();
        assert_eq!(
            s.bearer_blocking().expect("new login").as_deref(),
            Some("second")
        );

        // A token set of another IdP than the flags name is refused on every load.
        let strict = AuthSession::with_expected(
            store,
            None,
            ExpectedIdp {
                issuer: Some("https://elsewhere.example".into()),
                client_id: None,
            },
        );
        let err = strict.reload().expect_err("mismatch");
        assert!(matches!(err, AuthError::IdpMismatch { .. }), "{err:?}");
        assert!(strict.bearer_blocking().is_err());
    }
}
