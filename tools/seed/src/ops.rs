//! clone, reset-origin, init and verify: the store-level seed operations and their safety checks.

use std::fmt;
use std::path::{Path, PathBuf};

use heph_format::{Origin, OwnerId};
use heph_spoke::{Replica, SystemEnv};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::digest::{StoreDigest, digest_replica, scratch_replica};
use crate::{SeedError, io_err, sqlite_err};

/// The lock file a running `hephd --mode local` holds in its data directory.
const LOCK_FILE: &str = heph_spoke::daemon::LOCK_FILE;
/// The daemon's default socket in its data directory.
const SOCKET_FILE: &str = heph_spoke::daemon::SOCKET_FILE;

fn open_read_only(path: &Path) -> Result<Connection, SeedError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| SeedError::NotAHephStore {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn meta_value(conn: &Connection, path: &Path, key: &str) -> Result<Option<String>, SeedError> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .map_err(sqlite_err(path))
}

/// Checks, reading only, that `path` is a heph store: an SQLite file with a `meta` table naming a schema
/// version this build understands and a valid owner. Returns (schema version, owner, origin if set).
pub fn check_heph_store(path: &Path) -> Result<(u32, OwnerId, Option<Origin>), SeedError> {
    let md = std::fs::metadata(path).map_err(|_| SeedError::Missing {
        path: path.to_path_buf(),
    })?;
    if !md.is_file() {
        return Err(SeedError::NotAHephStore {
            path: path.to_path_buf(),
            reason: "it is not a regular file".into(),
        });
    }
    let not = |reason: String| SeedError::NotAHephStore {
        path: path.to_path_buf(),
        reason,
    };
    let conn = open_read_only(path)?;
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(|e| not(e.to_string()))?;
    if !has_meta {
        return Err(not("it has no meta table".into()));
    }
    let version = meta_value(&conn, path, "schema_version")?
        .ok_or_else(|| not("meta has no schema_version".into()))?;
    let version: u32 = version
        .parse()
        .map_err(|_| not(format!("meta.schema_version {version:?} is not a number")))?;
    if version > heph_spoke::schema::SCHEMA_VERSION {
        return Err(not(format!(
            "its schema version {version} is newer than this heph-seed understands ({}); upgrade heph-seed",
            heph_spoke::schema::SCHEMA_VERSION
        )));
    }
    let owner =
        meta_value(&conn, path, "owner_id")?.ok_or_else(|| not("meta has no owner_id".into()))?;
    let owner: OwnerId = owner
        .parse()
        .map_err(|_| not(format!("meta.owner_id {owner:?} is not a ULID")))?;
    let origin = match meta_value(&conn, path, "origin")? {
        Some(o) => Some(
            o.parse()
                .map_err(|_| not(format!("meta.origin {o:?} is not a ULID")))?,
        ),
        None => None,
    };
    Ok((version, owner, origin))
}

/// Whether a daemon holds the store at `db`: its data directory's lock is held, or something answers on
/// its socket. Returns how, for the refusal message.
pub fn daemon_holding(db: &Path, socket: Option<&Path>) -> Option<String> {
    let dir = db
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    if heph_spoke::daemon::StoreLock::is_held(&dir) {
        return Some(format!("lock held: {}", dir.join(LOCK_FILE).display()));
    }
    let default_socket = dir.join(SOCKET_FILE);
    for s in socket
        .into_iter()
        .chain(std::iter::once(default_socket.as_path()))
    {
        if std::os::unix::net::UnixStream::connect(s).is_ok() {
            return Some(format!("socket answering: {}", s.display()));
        }
    }
    None
}

fn refuse_if_held(db: &Path, socket: Option<&Path>) -> Result<(), SeedError> {
    match daemon_holding(db, socket) {
        Some(how) => Err(SeedError::DaemonRunning {
            path: db.to_path_buf(),
            how,
        }),
        None => Ok(()),
    }
}

fn refuse_if_exists(path: &Path) -> Result<(), SeedError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        if std::fs::symlink_metadata(&p).is_ok() {
            return Err(SeedError::TargetExists { path: p });
        }
    }
    Ok(())
}

/// Copies the store at `src` to the new file `dst` with SQLite's online backup API (a consistent snapshot
/// even while another process writes). `dst` must not exist.
pub fn backup_to(src: &Path, dst: &Path) -> Result<(), SeedError> {
    refuse_if_exists(dst)?;
    let from = open_read_only(src)?;
    let mut to = Connection::open(dst).map_err(sqlite_err(dst))?;
    let result = (|| {
        let b = rusqlite::backup::Backup::new(&from, &mut to)?;
        b.run_to_completion(1024, std::time::Duration::ZERO, None)
    })();
    drop(to);
    if let Err(e) = result {
        remove_store_files(dst);
        return Err(SeedError::Sqlite {
            path: src.to_path_buf(),
            source: e,
        });
    }
    Ok(())
}

fn remove_store_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn partial_path(dst: &Path) -> PathBuf {
    let name = dst
        .file_name()
        .map_or_else(|| "heph.db".into(), |n| n.to_string_lossy().into_owned());
    dst.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Moves `from` to `to` without ever replacing an existing `to` (hard link, then unlink).
fn move_no_clobber(from: &Path, to: &Path) -> Result<(), SeedError> {
    match std::fs::hard_link(from, to) {
        Ok(()) => {
            let _ = std::fs::remove_file(from);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            remove_store_files(from);
            Err(SeedError::TargetExists {
                path: to.to_path_buf(),
            })
        }
        Err(e) => {
            remove_store_files(from);
            Err(SeedError::Io {
                action: "moving the verified copy to",
                path: to.to_path_buf(),
                source: e,
            })
        }
    }
}

fn delete_origin(path: &Path) -> Result<(), SeedError> {
    let mut conn = Connection::open(path).map_err(sqlite_err(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_err(path))?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sqlite_err(path))?;
    tx.execute("DELETE FROM meta WHERE key = 'origin'", [])
        .map_err(sqlite_err(path))?;
    tx.commit().map_err(sqlite_err(path))?;
    Ok(())
}

/// Every meta row except `origin`, for comparing a store with its copy.
fn meta_without_origin(path: &Path) -> Result<Vec<(String, String)>, SeedError> {
    let conn = open_read_only(path)?;
    let mut st = conn
        .prepare("SELECT key, CAST(value AS TEXT) FROM meta WHERE key <> 'origin' ORDER BY key")
        .map_err(sqlite_err(path))?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            ))
        })
        .map_err(sqlite_err(path))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(sqlite_err(path))
}

fn compare(before: &StoreDigest, after: &StoreDigest) -> Result<(), SeedError> {
    match before.first_difference(after) {
        None => Ok(()),
        Some(what) => Err(SeedError::DigestMismatch {
            what,
            before: crate::hex(&before.combined()),
            after: crate::hex(&after.combined()),
        }),
    }
}

/// What `clone` did.
#[derive(Debug, Clone)]
pub struct CloneReport {
    /// The source.
    pub from: PathBuf,
    /// The new store.
    pub to: PathBuf,
    /// The source's origin (the copy no longer has it).
    pub source_origin: Option<Origin>,
    /// Digest of the source.
    pub before: StoreDigest,
    /// Digest of the copy.
    pub after: StoreDigest,
}

impl fmt::Display for CloneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cloned {} -> {}", self.from.display(), self.to.display())?;
        writeln!(f, "  before: {}", self.before.summary())?;
        writeln!(f, "  after:  {}", self.after.summary())?;
        writeln!(
            f,
            "  digests match: owner, op log, nodes and links are unchanged"
        )?;
        writeln!(
            f,
            "  origin: {} removed from the copy; the next start of hephd (or heph) there mints a fresh one",
            self.source_origin
                .map_or_else(|| "(none)".to_owned(), |o| o.to_string())
        )
    }
}

/// `heph-seed clone --from SRC --to DST` (Path A): a verified copy of SRC with a fresh origin.
pub fn clone_store(
    src: &Path,
    dst: &Path,
    socket: Option<&Path>,
) -> Result<CloneReport, SeedError> {
    refuse_if_exists(dst)?;
    let (_, _, source_origin) = check_heph_store(src)?;
    refuse_if_held(src, socket)?;
    if let Some(dir) = dst
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
    {
        return Err(SeedError::Missing {
            path: dir.to_path_buf(),
        });
    }
    let before = crate::digest::digest_of(src)?;
    let partial = partial_path(dst);
    remove_store_files(&partial);
    backup_to(src, &partial)?;
    let result = (|| {
        delete_origin(&partial)?;
        let after = crate::digest::digest_of(&partial)?;
        compare(&before, &after)?;
        if meta_without_origin(src)? != meta_without_origin(&partial)? {
            return Err(SeedError::DigestMismatch {
                what: "meta (other than origin)",
                before: "source".into(),
                after: "copy".into(),
            });
        }
        if check_heph_store(&partial)?.2.is_some() {
            return Err(SeedError::Hub(
                "internal: the copy still has an origin".into(),
            ));
        }
        Ok(after)
    })();
    let after = match result {
        Ok(a) => a,
        Err(e) => {
            remove_store_files(&partial);
            return Err(e);
        }
    };
    move_no_clobber(&partial, dst)?;
    Ok(CloneReport {
        from: src.to_path_buf(),
        to: dst.to_path_buf(),
        source_origin,
        before,
        after,
    })
}

/// What `reset-origin` did.
#[derive(Debug, Clone)]
pub struct ResetReport {
    /// The store.
    pub db: PathBuf,
    /// The backup written first.
    pub backup: Option<PathBuf>,
    /// The origin removed (none: there was none, nothing was done).
    pub old_origin: Option<Origin>,
    /// Digest before.
    pub before: StoreDigest,
    /// Digest after.
    pub after: StoreDigest,
}

impl fmt::Display for ResetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.old_origin, &self.backup) {
            (Some(o), Some(b)) => {
                writeln!(f, "reset the origin of {} (was {o})", self.db.display())?;
                writeln!(f, "  backup: {}", b.display())?;
            }
            _ => writeln!(
                f,
                "{} has no origin already; nothing changed",
                self.db.display()
            )?,
        }
        writeln!(f, "  before: {}", self.before.summary())?;
        writeln!(f, "  after:  {}", self.after.summary())?;
        writeln!(
            f,
            "  the next start of hephd (or heph) mints a fresh origin"
        )
    }
}

fn backup_name(db: &Path, now: std::time::SystemTime) -> PathBuf {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp = heph_spoke::sync::status::rfc3339(secs * 1000).replace([':', '-'], "");
    let stamp = stamp
        .trim_end_matches('Z')
        .split('.')
        .next()
        .unwrap_or("")
        .to_owned()
        + "Z";
    let base = format!("{}.bak-{stamp}", db.display());
    let mut p = PathBuf::from(&base);
    let mut n = 1;
    while std::fs::symlink_metadata(&p).is_ok() {
        n += 1;
        p = PathBuf::from(format!("{base}-{n}"));
    }
    p
}

/// `heph-seed reset-origin --db DB`: writes a timestamped backup next to DB, then removes meta.origin in place.
pub fn reset_origin(db: &Path, socket: Option<&Path>) -> Result<ResetReport, SeedError> {
    let (_, _, old_origin) = check_heph_store(db)?;
    refuse_if_held(db, socket)?;
    let before = crate::digest::digest_of(db)?;
    if old_origin.is_none() {
        return Ok(ResetReport {
            db: db.to_path_buf(),
            backup: None,
            old_origin,
            after: before.clone(),
            before,
        });
    }
    let backup = backup_name(db, std::time::SystemTime::now());
    backup_to(db, &backup)?;
    compare(&before, &crate::digest::digest_of(&backup)?)?;
    refuse_if_held(db, socket)?;
    delete_origin(db)?;
    let after = crate::digest::digest_of(db)?;
    compare(&before, &after)?;
    Ok(ResetReport {
        db: db.to_path_buf(),
        backup: Some(backup),
        old_origin,
        before,
        after,
    })
}

/// What `init` did.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The new store.
    pub db: PathBuf,
    /// Its owner (the one given).
    pub owner: OwnerId,
    /// Its origin (fresh).
    pub origin: Origin,
    /// Schema version.
    pub schema_version: u32,
}

impl fmt::Display for InitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "created {} (schema {})",
            self.db.display(),
            self.schema_version
        )?;
        writeln!(f, "  owner:  {} (joined, not minted)", self.owner)?;
        writeln!(f, "  origin: {} (fresh)", self.origin)?;
        writeln!(
            f,
            "  next: start hephd on it and run `heph sync` (or `heph auth login` first) to pull the owner's history"
        )
    }
}

/// Parses an owner id with heph-seed's error.
pub fn parse_owner(s: &str) -> Result<OwnerId, SeedError> {
    s.trim()
        .parse()
        .map_err(|_| SeedError::BadOwnerId(s.to_owned()))
}

/// `heph-seed init --owner-id ULID --db DB`: a clean store that joins `owner` (never minting its own).
pub fn init_store(owner: &str, db: &Path) -> Result<InitReport, SeedError> {
    let owner = parse_owner(owner)?;
    refuse_if_exists(db)?;
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    let partial = partial_path(db);
    remove_store_files(&partial);
    let partial_str = partial
        .to_str()
        .ok_or_else(|| SeedError::NonUtf8Path(partial.clone()))?
        .to_owned();
    let made = (|| {
        let r = Replica::open_with_owner(&partial_str, owner, &SystemEnv)?;
        let report = (r.owner(), r.origin(), r.schema_version()?, r.op_count()?);
        drop(r);
        Ok::<_, SeedError>(report)
    })();
    let (got_owner, origin, schema_version, ops) = match made {
        Ok(v) => v,
        Err(e) => {
            remove_store_files(&partial);
            return Err(e);
        }
    };
    if got_owner != owner || ops != 0 {
        remove_store_files(&partial);
        return Err(SeedError::Hub(format!(
            "internal: the new store has owner {got_owner} and {ops} ops"
        )));
    }
    move_no_clobber(&partial, db)?;
    Ok(InitReport {
        db: db.to_path_buf(),
        owner,
        origin,
        schema_version,
    })
}

/// What `verify` found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The store.
    pub db: PathBuf,
    /// `PRAGMA integrity_check` lines ("ok" when healthy).
    pub integrity: Vec<String>,
    /// The store's schema version.
    pub schema_version: u32,
    /// The version this build writes.
    pub current_schema: u32,
    /// Materialised-state digest before the rebuild (on a scratch copy).
    pub state_before: [u8; 32],
    /// And after it.
    pub state_after: [u8; 32],
    /// The full digest.
    pub digest: StoreDigest,
}

impl VerifyReport {
    /// Each problem found (empty: healthy).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.integrity != ["ok"] {
            p.push(format!("integrity_check: {}", self.integrity.join(" | ")));
        }
        if self.state_before != self.state_after {
            p.push(format!(
                "a rebuild from the op log gives a different state ({} before, {} after): the derived tables are stale; open the store with heph to repair, or run `heph doctor`",
                &crate::hex(&self.state_before)[..16],
                &crate::hex(&self.state_after)[..16]
            ));
        }
        p
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "verify {}", self.db.display())?;
        writeln!(f, "  integrity_check: {}", self.integrity.join(" | "))?;
        let note = if self.schema_version == self.current_schema {
            "current".to_owned()
        } else {
            format!(
                "older than this build's {}; heph migrates it on next open",
                self.current_schema
            )
        };
        writeln!(f, "  schema version:  {} ({note})", self.schema_version)?;
        writeln!(
            f,
            "  rebuild:         {} -> {} ({})",
            &crate::hex(&self.state_before)[..16],
            &crate::hex(&self.state_after)[..16],
            if self.state_before == self.state_after {
                "same"
            } else {
                "DIFFERENT"
            }
        )?;
        writeln!(f, "  digest:          {}", self.digest.summary())
    }
}

/// `heph-seed verify --db DB`: integrity check, schema version, and rebuild → same digest (on a scratch copy;
/// the store is only read). Returns the report; [`VerifyReport::problems`] lists what is wrong.
pub fn verify_store(db: &Path) -> Result<VerifyReport, SeedError> {
    let (schema_version, _, _) = check_heph_store(db)?;
    let conn = open_read_only(db)?;
    let integrity: Vec<String> = {
        let mut st = conn
            .prepare("PRAGMA integrity_check")
            .map_err(sqlite_err(db))?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(sqlite_err(db))?;
        rows.collect::<Result<_, _>>().map_err(sqlite_err(db))?
    };
    drop(conn);
    let (_dir, mut r) = scratch_replica(db)?;
    let digest = digest_replica(&r)?;
    let (state_before, state_after) = r.doctor()?;
    Ok(VerifyReport {
        db: db.to_path_buf(),
        integrity,
        schema_version,
        current_schema: heph_spoke::schema::SCHEMA_VERSION,
        state_before,
        state_after,
        digest,
    })
}
