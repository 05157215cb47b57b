//! The filesystem segment store (the embedded default): one file per object under a root directory,
//! written with create-if-absent links and group-committed directory fsyncs.
//!
//! # Write protocol
//!
//! Every object (blob, position entry, owner record) is written the same way
//! ([`SegmentStore::create`]): the bytes go to a fresh file under `tmp/`, which is fsynced, then
//! hard-linked to its final name (`link(2)` fails if the name exists, so nothing is ever
//! replaced), then the directory holding the final name is fsynced. A crash at any point leaves
//! either no final file or a complete one, and a reader (this hub or another one on the same
//! directory) sees a whole object or none. When the name is already taken — possibly by another
//! process that has linked it but not yet fsynced its directory — the directory is fsynced
//! before the existing object is returned, so "already stored" is as durable as "created".
//!
//! A pushed segment ([`SegmentStore::put_segment`]) is its blob, then its position entry, each
//! written this way: the position entry (the commit) is linked only after the blob's name is
//! durable, so it never reaches the disk before its blob, and the push is acknowledged only after
//! the position entry's directory fsync, so an acknowledged push survives a crash or power loss.
//!
//! # Group commit of directory fsyncs
//!
//! Directory fsyncs go through [`DirSyncer`]: a caller that has linked a name into a directory
//! needs one fsync of that directory that *started after* its link. If no fsync of the directory
//! is running, the caller runs it (the leader); otherwise it waits for the running one to end and
//! then for the next one, which one of the waiters starts. Every link made before an fsync starts
//! is covered by it, so concurrent writers into one directory (a blob fan-out directory, an
//! origin's chain, the root) share one fsync instead of running one each.
//!
//! A crash leaves at most unlinked temp files, removed when the store is opened, and complete
//! blobs that no position entry refers to (a re-push reuses them).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use heph_format::{Origin, OwnerId};

use super::{SegmentStore, StoreError, keys};

/// A store rooted at a local directory. See the module docs for the write protocol.
#[derive(Debug, Clone)]
pub struct FsStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    dirs: DirSyncer,
}

/// A position entry's temp file, ready to be linked, or the entry that already holds the name.
enum Prepared {
    Temp(PathBuf),
    Existing(Bytes),
}

impl FsStore {
    /// Opens (creating if needed) the store at `root`, and removes temp files left by a crash.
    pub async fn open(root: impl Into<PathBuf>) -> Result<FsStore, StoreError> {
        let root: PathBuf = root.into();
        let store = FsStore {
            inner: Arc::new(Inner {
                root: root.clone(),
                dirs: DirSyncer::default(),
            }),
        };
        blocking(move || {
            for sub in ["tmp", "blobs", "chains"] {
                let dir = root.join(sub);
                fs::create_dir_all(&dir).map_err(|e| StoreError::io(dir.display(), e))?;
            }
            let tmp = root.join("tmp");
            let entries = fs::read_dir(&tmp).map_err(|e| StoreError::io(tmp.display(), e))?;
            for entry in entries.flatten() {
                // Leftover temp files were never linked into place, or were linked and their
                // temp name not yet removed; either way the temp name holds nothing of value.
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
        &self.inner.root
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || f(&inner)).await
    }
}

impl Inner {
    /// The final path of `key` and the directory holding it.
    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        let dest = self.root.join(key);
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        (dest, parent)
    }

    /// Writes `bytes` to a fresh temp file (fsynced when `sync`), returning its path and handle.
    fn write_temp(&self, bytes: &[u8], sync: bool) -> Result<(PathBuf, File), StoreError> {
        let tmp = self.root.join("tmp").join(temp_name());
        let write = || -> std::io::Result<File> {
            let mut f = File::options().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            if sync {
                f.sync_all()?;
            }
            Ok(f)
        };
        match write() {
            Ok(f) => Ok((tmp, f)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(StoreError::io(tmp.display(), e))
            }
        }
    }

    /// Create-if-absent with the fsync-before-link protocol (position entries, owner record).
    fn create(&self, key: &str, bytes: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let prepared = self.prepare(key, bytes)?;
        self.finish(key, prepared)
    }

    /// The second half of [`Inner::create`]: commits a temp file, or makes the existing
    /// object's name durable (its writer may not have yet).
    fn finish(&self, key: &str, prepared: Prepared) -> Result<Option<Bytes>, StoreError> {
        match prepared {
            Prepared::Temp(tmp) => self.commit(key, &tmp),
            Prepared::Existing(existing) => {
                self.dirs.sync(&self.paths(key).1)?;
                Ok(Some(existing))
            }
        }
    }

    /// The first half of [`Inner::create`]: the existing object, or a fsynced temp file.
    fn prepare(&self, key: &str, bytes: &[u8]) -> Result<Prepared, StoreError> {
        let (dest, parent) = self.paths(key);
        if let Some(existing) = read_opt(&dest)? {
            return Ok(Prepared::Existing(existing));
        }
        ensure_dir(&self.root, &parent)?;
        let (tmp, _file) = self.write_temp(bytes, true)?;
        Ok(Prepared::Temp(tmp))
    }

    /// Links the temp file into place (never replacing)
    /// and make the name durable. Returns the existing object when the name was taken.
    fn commit(&self, key: &str, tmp: &Path) -> Result<Option<Bytes>, StoreError> {
        let (dest, parent) = self.paths(key);
        let linked = fs::hard_link(tmp, &dest);
        let _ = fs::remove_file(tmp);
        match linked {
            Ok(()) => {
                self.dirs.sync(&parent)?;
                Ok(None)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                // Lost a race: somebody else's complete file is in place.
                let existing = read_opt(&dest)?.ok_or_else(|| StoreError::io(dest.display(), e))?;
                self.dirs.sync(&parent)?;
                Ok(Some(existing))
            }
            Err(e) => Err(StoreError::io(dest.display(), e)),
        }
    }

    fn list_dir(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let path = self.root.join(key);
        match fs::read_dir(&path) {
            Ok(entries) => Ok(entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(StoreError::io(path.display(), e)),
        }
    }
}

/// Group commit of directory fsyncs (see the module docs): one [`DirSlot`] per directory that
/// has callers waiting, dropped when the last one leaves.
#[derive(Debug, Default)]
struct DirSyncer {
    slots: Mutex<HashMap<PathBuf, Arc<DirSlot>>>,
}

/// One directory's fsync generations: the last started and the last finished.
#[derive(Debug, Default)]
struct DirSlot {
    state: Mutex<DirState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct DirState {
    started: u64,
    done: u64,
    running: bool,
    /// Callers inside [`DirSyncer::sync`] for this directory (guarded by the slots map).
    waiters: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Guarded data are plain counters; a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DirSyncer {
    /// Returns once a fsync of `dir` that started after this call has succeeded, so every
    /// name linked into `dir` before the call is durable. Runs the fsync itself when none is
    /// running; otherwise waits for the running one (which may have started too early) and the
    /// next. One fsync serves every caller that arrived before it started.
    fn sync(&self, dir: &Path) -> Result<(), StoreError> {
        let slot = {
            let mut slots = lock(&self.slots);
            let slot = Arc::clone(slots.entry(dir.to_path_buf()).or_default());
            lock(&slot.state).waiters += 1;
            slot
        };
        let result = slot.sync(dir);
        let mut slots = lock(&self.slots);
        let mut st = lock(&slot.state);
        st.waiters -= 1;
        if st.waiters == 0 {
            slots.remove(dir);
        }
        result
    }
}

impl DirSlot {
    fn sync(&self, dir: &Path) -> Result<(), StoreError> {
        let mut st = lock(&self.state);
        let need = st.started + 1;
        loop {
            if st.done >= need {
                return Ok(());
            }
            if st.running {
                st = self
                    .changed
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.running = true;
            st.started += 1;
            let generation = st.started;
            drop(st);
            let synced = sync_dir(dir);
            st = lock(&self.state);
            st.running = false;
            if synced.is_ok() {
                st.done = generation;
            }
            self.changed.notify_all();
            // On failure the waiters retry with a fsync of their own; this caller reports it.
            synced?;
        }
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

#[async_trait]
impl SegmentStore for FsStore {
    fn describe(&self) -> String {
        format!("file://{}", self.inner.root.display())
    }

    async fn create(&self, key: &str, bytes: Bytes) -> Result<Option<Bytes>, StoreError> {
        let key = key.to_owned();
        self.run(move |s| s.create(&key, &bytes)).await
    }

    async fn read(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let path = self.inner.root.join(key);
        blocking(move || read_opt(&path)).await
    }

    async fn list_positions(
        &self,
        owner: OwnerId,
        origin: Origin,
        after: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let key = keys::chain(owner, origin);
        let names = self.run(move |s| s.list_dir(&key)).await?;
        Ok(super::select_positions(&names, after, limit))
    }

    async fn list_origins(&self, owner: OwnerId) -> Result<Vec<Origin>, StoreError> {
        let key = keys::owner_chains(owner);
        Ok(super::canonical_origins(
            self.run(move |s| s.list_dir(&key)).await?,
        ))
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.run(|s| {
            fs::metadata(s.root.join("chains"))
                .map(|_| ())
                .map_err(|e| StoreError::io(s.root.display(), e))
        })
        .await
    }
}
