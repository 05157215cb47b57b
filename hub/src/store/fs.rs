//! The filesystem segment store (the embedded default): one file per object under a root directory.
//!
//! Writes are atomic and crash-safe put-if-absent: the bytes go to a fresh file under `tmp/`, which
//! is fsynced, then hard-linked to its final name (`link(2)` fails if the name exists, so nothing is
//! ever replaced), then the directory holding the final name is fsynced. A crash at any point leaves
//! either no final file or a complete one; leftovers in `tmp/` are removed when the store is opened.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use heph_format::{Origin, OwnerId, SegmentId};

use super::{
    Position, PutOutcome, SegmentStore, StoreError, decode_owner, decode_position, encode_owner,
    encode_position, keys,
};

/// A store rooted at a local directory. See the module docs for the write protocol.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: Arc<PathBuf>,
}

impl FsStore {
    /// Opens (creating if needed) the store at `root`, and removes temp files left by a crash.
    pub async fn open(root: impl Into<PathBuf>) -> Result<FsStore, StoreError> {
        let root: PathBuf = root.into();
        let store = FsStore {
            root: Arc::new(root.clone()),
        };
        blocking(move || {
            for sub in ["tmp", "blobs", "chains"] {
                let dir = root.join(sub);
                fs::create_dir_all(&dir).map_err(|e| StoreError::io(dir.display(), e))?;
            }
            let tmp = root.join("tmp");
            let entries = fs::read_dir(&tmp).map_err(|e| StoreError::io(tmp.display(), e))?;
            for entry in entries.flatten() {
                // Leftover temp files were never linked into place; they hold nothing of value.
                let _ = fs::remove_file(entry.path());
            }
            sync_dir(&root)?;
            Ok(())
        })
        .await?;
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    async fn put_if_absent(&self, key: String, bytes: Bytes) -> Result<Option<Bytes>, StoreError> {
        let root = Arc::clone(&self.root);
        blocking(move || put_if_absent(&root, &key, &bytes)).await
    }

    async fn read(&self, key: String) -> Result<Option<Bytes>, StoreError> {
        let path = self.root.join(&key);
        blocking(move || read_opt(&path)).await
    }

    async fn list_dir(&self, key: String) -> Result<Vec<String>, StoreError> {
        let path = self.root.join(&key);
        blocking(move || match fs::read_dir(&path) {
            Ok(entries) => Ok(entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(StoreError::io(path.display(), e)),
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("store worker failed: {e}")))?
}

fn read_opt(path: &Path) -> Result<Option<Bytes>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(Bytes::from(b))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(path.display(), e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir.display(), e))
}

/// Creates `dir` (under `root`) if missing, fsyncing every directory whose entries changed.
fn ensure_dir(root: &Path, dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir.display(), e))?;
    let mut d = Some(dir);
    while let Some(cur) = d {
        sync_dir(cur)?;
        if cur == root {
            break;
        }
        d = cur.parent();
    }
    Ok(())
}

fn temp_name() -> String {
    let mut r = [0u8; 12];
    // Without randomness fall back to the pid and a counter-like address: still unique per call.
    if getrandom::fill(&mut r).is_err() {
        let p = std::process::id().to_le_bytes();
        r[..4].copy_from_slice(&p);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        r[4..].copy_from_slice(&t.to_le_bytes());
    }
    r.iter().map(|b| format!("{b:02x}")).collect()
}

/// The write protocol: temp file, fsync, hard link (never replaces), fsync dir.
/// Returns the existing content when the key already exists.
fn put_if_absent(root: &Path, key: &str, bytes: &[u8]) -> Result<Option<Bytes>, StoreError> {
    let dest = root.join(key);
    if let Some(existing) = read_opt(&dest)? {
        return Ok(Some(existing));
    }
    let parent = dest.parent().unwrap_or(root);
    ensure_dir(root, parent)?;
    let tmp = root.join("tmp").join(temp_name());
    let write = || -> std::io::Result<()> {
        let mut f = File::options().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::io(tmp.display(), e));
    }
    let linked = fs::hard_link(&tmp, &dest);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(parent)?;
            Ok(None)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            // Lost a race: somebody else's complete file is in place.
            read_opt(&dest)?
                .map(Some)
                .ok_or_else(|| StoreError::io(dest.display(), e))
        }
        Err(e) => Err(StoreError::io(dest.display(), e)),
    }
}

#[async_trait]
impl SegmentStore for FsStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn put_blob(&self, id: SegmentId, bytes: Bytes) -> Result<(), StoreError> {
        self.put_if_absent(keys::blob(&id), bytes).await.map(|_| ())
    }

    async fn get_blob(&self, id: SegmentId) -> Result<Option<Bytes>, StoreError> {
        self.read(keys::blob(&id)).await
    }

    async fn put_position(
        &self,
        owner: OwnerId,
        origin: Origin,
        pos: &Position,
    ) -> Result<PutOutcome, StoreError> {
        let key = keys::position(owner, origin, pos.first_seq);
        match self
            .put_if_absent(key.clone(), encode_position(pos))
            .await?
        {
            None => Ok(PutOutcome::Created),
            Some(existing) => Ok(PutOutcome::Exists(decode_position(
                &key,
                pos.first_seq,
                &existing,
            )?)),
        }
    }

    async fn get_position(
        &self,
        owner: OwnerId,
        origin: Origin,
        first_seq: u64,
    ) -> Result<Option<Position>, StoreError> {
        let key = keys::position(owner, origin, first_seq);
        self.read(key.clone())
            .await?
            .map(|b| decode_position(&key, first_seq, &b))
            .transpose()
    }

    async fn list_positions(
        &self,
        owner: OwnerId,
        origin: Origin,
        after: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let mut seqs: Vec<u64> = self
            .list_dir(keys::chain(owner, origin))
            .await?
            .iter()
            .filter_map(|n| keys::parse_position_name(n))
            .filter(|&s| s > after)
            .collect();
        seqs.sort_unstable();
        seqs.truncate(limit);
        Ok(seqs)
    }

    async fn list_origins(&self, owner: OwnerId) -> Result<Vec<Origin>, StoreError> {
        Ok(super::canonical_origins(
            self.list_dir(keys::owner_chains(owner)).await?,
        ))
    }

    async fn claim_owner(&self, owner: OwnerId) -> Result<OwnerId, StoreError> {
        match self
            .put_if_absent(keys::OWNER.to_owned(), encode_owner(owner))
            .await?
        {
            None => Ok(owner),
            Some(existing) => decode_owner(&existing),
        }
    }

    async fn owner(&self) -> Result<Option<OwnerId>, StoreError> {
        self.read(keys::OWNER.to_owned())
            .await?
            .map(|b| decode_owner(&b))
            .transpose()
    }

    async fn check(&self) -> Result<(), StoreError> {
        let root = Arc::clone(&self.root);
        blocking(move || {
            fs::metadata(root.join("chains"))
                .map(|_| ())
                .map_err(|e| StoreError::io(root.display(), e))
        })
        .await
    }
}
