//! Where tokens live: a private JSON file per normalised hub URL (or `--token-file`), or external
//! `--token-load-cmd` / `--token-save-cmd` programs split into argv and run without a shell.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{AuthError, TokenSet};

/// The key tokens are stored under: scheme and host lower-cased, default port (80/443) dropped, trailing
/// slashes dropped; path kept as given. `HTTPS://Heph.Example:443/` → `https://heph.example`.
pub fn normalise_hub_url(url: &str) -> Result<String, AuthError> {
    let bad = |reason: &str| AuthError::BadHubUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = url.trim();
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| bad("expected http://… or https://…"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return Err(bad("the scheme must be http or https")),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("missing host (or credentials in the URL)"));
    }
    if path.contains(['?', '#']) {
        return Err(bad("query strings and fragments are not allowed"));
    }
    let authority = authority.to_ascii_lowercase();
    let (host, port) = if authority.starts_with('[') {
        let end = authority
            .find(']')
            .ok_or_else(|| bad("unterminated IPv6 literal"))?;
        let (h, p) = authority.split_at(end + 1);
        match p.strip_prefix(':') {
            Some(port) => (h.to_string(), Some(port.to_string())),
            None if p.is_empty() => (h.to_string(), None),
            None => return Err(bad("bad host")),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (authority.clone(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(bad("missing host"));
    }
    let authority = match port {
        None => host,
        Some(p) if p == default_port => host,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()) => {
            format!("{host}:{p}")
        }
        Some(_) => return Err(bad("bad port")),
    };
    let path = path.trim_end_matches('/');
    Ok(format!("{scheme}://{authority}{path}"))
}

/// File name for a hub's tokens under `<data dir>/tokens/`.
pub fn token_file_name(normalised: &str) -> String {
    let readable: String = normalised
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let hash = blake3::hash(normalised.as_bytes()).to_hex();
    format!("{readable}-{}.json", &hash[..12])
}

/// Where tokens are loaded from and saved to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenStore {
    /// A JSON file, mode 0600.
    File(PathBuf),
    /// External commands (each split into argv, run without a shell). `load` prints the token set JSON
    /// (or a bare access token) on stdout; `save` receives the token set JSON on stdin.
    Commands {
        /// `--token-load-cmd`.
        load: Option<String>,
        /// `--token-save-cmd`.
        save: Option<String>,
        /// Also keep the file (used when one command is missing).
        file: Option<PathBuf>,
    },
}

impl TokenStore {
    /// The store the flags call for: commands when given, else `token_file`, else
    /// `<data_dir>/tokens/<normalised hub url>.json`.
    pub fn from_flags(
        data_dir: &Path,
        hub_url: &str,
        token_file: Option<PathBuf>,
        load_cmd: Option<String>,
        save_cmd: Option<String>,
    ) -> Result<TokenStore, AuthError> {
        let file = match token_file {
            Some(f) => f,
            None => data_dir
                .join("tokens")
                .join(token_file_name(&normalise_hub_url(hub_url)?)),
        };
        for (which, cmd) in [("token-load-cmd", &load_cmd), ("token-save-cmd", &save_cmd)] {
            if let Some(c) = cmd {
                split_command(which, c)?;
            }
        }
        if load_cmd.is_none() && save_cmd.is_none() {
            return Ok(TokenStore::File(file));
        }
        Ok(TokenStore::Commands {
            load: load_cmd,
            save: save_cmd,
            file: Some(file),
        })
    }

    /// Load the token set, `None` when there is none yet.
    pub fn load(&self) -> Result<Option<TokenSet>, AuthError> {
        match self {
            TokenStore::File(path) => load_file(path),
            TokenStore::Commands {
                load: Some(cmd), ..
            } => run_load(cmd).map(Some),
            TokenStore::Commands {
                load: None, file, ..
            } => match file {
                Some(f) => load_file(f),
                None => Ok(None),
            },
        }
    }

    /// Save the token set.
    pub fn save(&self, tokens: &TokenSet) -> Result<(), AuthError> {
        match self {
            TokenStore::File(path) => save_file(path, tokens),
            TokenStore::Commands {
                save: Some(cmd), ..
            } => run_save(cmd, tokens),
            TokenStore::Commands {
                save: None, file, ..
            } => match file {
                Some(f) => save_file(f, tokens),
                None => Ok(()),
            },
        }
    }

    /// Remove stored tokens (the file; commands can't be undone, so only the file is removed).
    /// Returns whether something was removed.
    pub fn remove(&self) -> Result<bool, AuthError> {
        let path = match self {
            TokenStore::File(p) => Some(p),
            TokenStore::Commands { file, .. } => file.as_ref(),
        };
        match path {
            Some(p) => match std::fs::remove_file(p) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(AuthError::TokenFile {
                    path: p.clone(),
                    message: e.to_string(),
                }),
            },
            None => Ok(false),
        }
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            TokenStore::File(p) => p.display().to_string(),
            TokenStore::Commands { load, save, .. } => format!(
                "commands (load: {}, save: {})",
                load.as_deref().map(program_name).unwrap_or("-"),
                save.as_deref().map(program_name).unwrap_or("-")
            ),
        }
    }
}

fn program_name(cmd: &str) -> &str {
    cmd.split_whitespace().next().unwrap_or("")
}

fn load_file(path: &Path) -> Result<Option<TokenSet>, AuthError> {
    let err = |message: String| AuthError::TokenFile {
        path: path.to_path_buf(),
        message,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(AuthError::LoosePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let tokens: TokenSet = serde_json::from_slice(&bytes).map_err(|e| {
        err(format!(
            "not a heph token file (expected JSON written by `heph auth login`: {}); remove it and log in again",
            e.classify_name()
        ))
    })?;
    Ok(Some(tokens))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "JSON with missing or wrong fields",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

fn save_file(path: &Path, tokens: &TokenSet) -> Result<(), AuthError> {
    let err = |message: String| AuthError::TokenFile {
        path: path.to_path_buf(),
        message,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(|e| err(format!("creating {}: {e}", dir.display())))?;
    let json = serde_json::to_vec_pretty(tokens).map_err(|e| err(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("tokens"),
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let write = || -> std::io::Result<()> {
        let mut f = opts.open(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e.to_string())
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Split a command line into argv (POSIX shell word rules, no expansion); it will run without a shell.
pub fn split_command(which: &'static str, cmd: &str) -> Result<Vec<String>, AuthError> {
    let argv = shell_words::split(cmd).map_err(|e| AuthError::Command {
        which,
        message: format!("cannot split {cmd:?} into arguments: {e}"),
    })?;
    if argv.is_empty() {
        return Err(AuthError::Command {
            which,
            message: "empty command".into(),
        });
    }
    Ok(argv)
}

fn describe_failure(which: &'static str, argv0: &str, out: &std::process::Output) -> AuthError {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    AuthError::Command {
        which,
        message: format!(
            "{argv0} exited with {}{}",
            out.status,
            if first.is_empty() {
                String::new()
            } else {
                format!(": {first}")
            }
        ),
    }
}

fn run_load(cmd: &str) -> Result<TokenSet, AuthError> {
    const WHICH: &str = "token-load-cmd";
    let argv = split_command(WHICH, cmd)?;
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| AuthError::Command {
            which: WHICH,
            message: format!("cannot run {:?}: {e}", argv[0]),
        })?;
    if !out.status.success() {
        return Err(describe_failure(WHICH, &argv[0], &out));
    }
    let text = String::from_utf8(out.stdout).map_err(|_| AuthError::Command {
        which: WHICH,
        message: "printed bytes that are not UTF-8".into(),
    })?;
    let text = text.trim();
    if text.starts_with('{') {
        return serde_json::from_str::<TokenSet>(text).map_err(|e| AuthError::Command {
            which: WHICH,
            message: format!(
                "printed {} bytes of {} instead of a heph token set",
                text.len(),
                e.classify_name()
            ),
        });
    }
    // A bare access token (e.g. stored by hand): usable until it expires, no refresh.
    if text.split('.').count() == 3
        && !text.contains(char::is_whitespace)
        && let Some(claims) = super::unverified_claims(text)
    {
        return Ok(TokenSet {
            version: 1,
            hub_url: String::new(),
            issuer: claims
                .get("iss")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string(),
            client_id: claims
                .get("client_id")
                .or_else(|| claims.get("azp"))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string(),
            token_endpoint: String::new(),
            access_token: text.to_string(),
            expires_at: claims.get("exp").and_then(|v| v.as_u64()),
            refresh_token: None,
            id_token: None,
            scope: None,
        });
    }
    Err(AuthError::Command {
        which: WHICH,
        message: format!(
            "printed {} bytes that are neither a heph token set (JSON) nor a JWT access token",
            text.len()
        ),
    })
}

fn run_save(cmd: &str, tokens: &TokenSet) -> Result<(), AuthError> {
    const WHICH: &str = "token-save-cmd";
    let argv = split_command(WHICH, cmd)?;
    let json = serde_json::to_vec(tokens).map_err(|e| AuthError::Command {
        which: WHICH,
        message: e.to_string(),
    })?;
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| AuthError::Command {
            which: WHICH,
            message: format!("cannot run {:?}: {e}", argv[0]),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that exits without reading is reported by its status below.
        let _ = stdin.write_all(&json);
    }
    let out = child.wait_with_output().map_err(|e| AuthError::Command {
        which: WHICH,
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(describe_failure(WHICH, &argv[0], &out));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        let n = |u: &str| normalise_hub_url(u).expect(u);
        assert_eq!(n("HTTPS://Heph.Example:443/"), "https://heph.example");
        assert_eq!(n("https://heph.example"), "https://heph.example");
        assert_eq!(n("http://127.0.0.1:80//"), "http://127.0.0.1");
        assert_eq!(n("http://127.0.0.1:8787/"), "http://127.0.0.1:8787");
        assert_eq!(
            n("https://h.example:8443/hub/"),
            "https://h.example:8443/hub"
        );
        assert_eq!(n("http://[::1]:8787"), "http://[::1]:8787");
        assert_eq!(n("http://[::1]"), "http://[::1]");
        for bad in [
            "ftp://x",
            "heph.example",
            "https://",
            "https://u:p@h",
            "https://h:abc",
            "https://h/?q=1",
        ] {
            assert!(normalise_hub_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            token_file_name(&n("HTTPS://Heph.Example:443/")),
            token_file_name(&n("https://heph.example"))
        );
        assert_ne!(
            token_file_name("https://a.example"),
            token_file_name("https://b.example")
        );
    }

    #[test]
    fn split_without_shell() {
        assert_eq!(
            split_command("x", "op read 'op://vault/heph token'").ok(),
            Some(vec![
                "op".to_string(),
                "read".to_string(),
                "op://vault/heph token".to_string()
            ])
        );
        assert!(split_command("x", "unterminated 'quote").is_err());
        assert!(split_command("x", "   ").is_err());
    }

    fn sample() -> TokenSet {
        TokenSet {
            version: 1,
            hub_url: "https://heph.example".into(),
            issuer: "https://idp.example/".into(),
            client_id: "heph".into(),
            token_endpoint: "https://idp.example/token".into(),
            access_token: "SECRET-ACCESS".into(),
            expires_at: Some(1),
            refresh_token: Some("SECRET-REFRESH".into()),
            id_token: None,
            scope: None,
        }
    }

    #[cfg(unix)]
    #[test]
    fn file_round_trip_is_private_and_loose_or_garbage_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            TokenStore::from_flags(dir.path(), "HTTPS://Heph.Example:443/", None, None, None)
                .expect("store");
        assert_eq!(store.load().expect("load"), None);
        store.save(&sample()).expect("save");
        let TokenStore::File(path) = &store else {
            panic!("file store expected")
        };
        let mode = std::fs::metadata(path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(path.parent().expect("dir"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(store.load().expect("load"), Some(sample()));
        // Same hub spelled differently: same file.
        let again = TokenStore::from_flags(dir.path(), "https://heph.example", None, None, None)
            .expect("store");
        assert_eq!(again, store);

        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = store.load().expect_err("loose permissions");
        assert!(
            matches!(err, AuthError::LoosePermissions { mode: 0o644, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");

        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(path, "SECRET-ACCESS not json").expect("write");
        let err = store.load().expect_err("not json").to_string();
        assert!(
            err.contains("not a heph token file") && !err.contains("SECRET"),
            "{err}"
        );

        assert!(store.remove().expect("remove"));
        assert!(!store.remove().expect("remove twice"));
    }

    #[cfg(unix)]
    #[test]
    fn commands_run_without_a_shell_and_fail_clearly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let saved = dir.path().join("saved.json");
        let save = format!("tee {}", saved.display());
        let load = format!("cat {}", saved.display());
        let store = TokenStore::from_flags(
            dir.path(),
            "https://h.example",
            None,
            Some(load),
            Some(save),
        )
        .expect("store");
        store.save(&sample()).expect("save via command");
        assert_eq!(store.load().expect("load via command"), Some(sample()));

        let cmd = |load: &str| {
            TokenStore::from_flags(
                dir.path(),
                "https://h.example",
                None,
                Some(load.to_string()),
                None,
            )
            .expect("store")
        };
        // Shell syntax is not interpreted: `;` and `$(...)` are plain arguments to cat.
        let err = cmd(&format!("cat {}; echo $(id)", saved.display()))
            .load()
            .expect_err("no shell")
            .to_string();
        assert!(
            err.contains("token-load-cmd") && err.contains("cat exited"),
            "{err}"
        );
        let err = cmd("false").load().expect_err("failing").to_string();
        assert!(err.contains("false exited with"), "{err}");
        let err = cmd("echo SECRET-GARBAGE")
            .load()
            .expect_err("garbage")
            .to_string();
        assert!(err.contains("neither") && !err.contains("SECRET"), "{err}");
        let err = cmd("echo {\"access_token\":\"SECRET-X\"}")
            .load()
            .expect_err("wrong json")
            .to_string();
        assert!(
            err.contains("instead of a heph token set") && !err.contains("SECRET"),
            "{err}"
        );
        let err = cmd("/nonexistent/program")
            .load()
            .expect_err("missing program")
            .to_string();
        assert!(err.contains("cannot run"), "{err}");
        assert!(
            TokenStore::from_flags(
                dir.path(),
                "https://h.example",
                None,
                Some("'unterminated".into()),
                None
            )
            .is_err()
        );
        let store = TokenStore::from_flags(
            dir.path(),
            "https://h.example",
            None,
            None,
            Some("false".into()),
        )
        .expect("s");
        let err = store.save(&sample()).expect_err("save fails").to_string();
        assert!(
            err.contains("token-save-cmd") && !err.contains("SECRET"),
            "{err}"
        );
    }
}
