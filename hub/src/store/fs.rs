//! The filesystem segment store (the embedded default): one file per object under a root directory,
//! written with create-if-absent links and group-committed directory fsyncs.
//!
//! # Write protocol
//!
//! Every object gets its final name with `link(2)` from a fresh file under `tmp/`; `link` fails if
//! the name exists, so nothing is ever replaced (the one exception, an incomplete blob left by a
//! power loss, is below). The bytes are always written completely before the link, so a running
//! reader (this hub or another one on the same directory) sees a whole object or none.
//!
//! - **Position entries and the owner record** ([`SegmentStore::create`]): write the temp file,
//!   fsync it, link it into place, then fsync the directory that holds the new name. A crash at
//!   any point leaves no final file or a complete, durable one.
//! - **Blobs** ([`SegmentStore::put_blob`]): write the temp file, link it into place, then fsync
//!   the file and its directory. The file's data may still be in flight when the name appears, so
//!   a power loss at that moment can leave a blob whose bytes are incomplete. Blobs are
//!   content-addressed, which makes that detectable and harmless: [`SegmentStore::get_blob`]
//!   checks the bytes against the name and treats a blob that does not match as absent, and a
//!   later `put_blob` of that id replaces it (rename over it from a fsynced temp file).
//! - **A pushed segment** ([`SegmentStore::put_segment`]): the blob as above and, in parallel, the
//!   position entry's temp file written and fsynced; only when the blob's file *and* directory
//!   fsyncs have returned is the position entry linked, and its directory fsynced before the push
//!   is acknowledged. So a durable position entry always has a complete, durable blob, and an
//!   acknowledged push survives a crash or power loss. That is two rounds of waiting for the disk
//!   per push instead of four.
//! - **Existing objects**: a create that finds the name taken (possibly by another process that
//!   has not yet made it durable) fsyncs that directory (and, for a blob, the file) before
//!   answering, so "already stored" is as durable as "created".
//!
//! # Group commit of directory fsyncs
//!
//! Directory fsyncs go through [`DirSyncer`]: a caller that has linked a name into a directory
//! needs one fsync of that directory that *started after* its link. If no fsync of the directory
//! is running, the caller runs it (the leader); otherwise it waits for the running one to end and
//! then for the next one, which one of the waiters starts. Every link made before an fsync starts
//! is covered by it, so concurrent pushes into one directory share one fsync.
//!
//! A crash leaves at most unlinked temp files (removed when the store is opened) and, after a
//! power loss, blobs that no position entry refers to (complete ones are reused by a re-push,
//! incomplete ones replaced).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use heph_format::{Origin, OwnerId, SegmentId};

use super::{Position, PutOutcome, SegmentStore, StoreError, encode_position, keys};

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
        match self.prepare(key, bytes)? {
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

    /// The second half of [`Inner::create`]: link the temp file into place (never replacing)
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

    /// Stores blob `id` with the link-before-fsync protocol; durable when this returns.
    fn put_blob(&self, id: SegmentId, bytes: &[u8]) -> Result<(), StoreError> {
        let (dest, parent) = self.paths(&keys::blob(&id));
        if let Some(file) = open_opt(&dest)? {
            return self.adopt_blob(file, id, bytes, &dest, &parent);
        }
        ensure_dir(&self.root, &parent)?;
        let (tmp, file) = self.write_temp(bytes, false)?;
        let linked = fs::hard_link(&tmp, &dest);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                file.sync_all()
                    .map_err(|e| StoreError::io(dest.display(), e))?;
                self.dirs.sync(&parent)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                drop(file);
                let existing = open_opt(&dest)?.ok_or_else(|| StoreError::io(dest.display(), e))?;
                self.adopt_blob(existing, id, bytes, &dest, &parent)
            }
            Err(e) => Err(StoreError::io(dest.display(), e)),
        }
    }

    /// Blob `id` already has a file: make it durable if its bytes are right, else replace it
    /// (an incomplete blob left by a power loss; no position entry refers to it).
    fn adopt_blob(
        &self,
        mut file: File,
        id: SegmentId,
        bytes: &[u8],
        dest: &Path,
        parent: &Path,
    ) -> Result<(), StoreError> {
        let io = |e| StoreError::io(dest.display(), e);
        let mut found = Vec::with_capacity(bytes.len());
        file.read_to_end(&mut found).map_err(io)?;
        if SegmentId::of(&found) == id {
            // Its writer may not have made it durable yet.
            file.sync_all().map_err(io)?;
        } else {
            let (tmp, _file) = self.write_temp(bytes, true)?;
            let renamed = fs::rename(&tmp, dest);
            if renamed.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            renamed.map_err(io)?;
        }
        self.dirs.sync(parent)
    }

    /// Blob `id` if stored whole; a blob whose bytes do not match its name is absent.
    fn get_blob(&self, id: SegmentId) -> Result<Option<Bytes>, StoreError> {
        let (dest, _) = self.paths(&keys::blob(&id));
        Ok(read_opt(&dest)?.filter(|b| SegmentId::of(b) == id))
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

/// Group commit of directory fsyncs (see the module docs): per directory, the generation of
/// the last fsync started and the last one finished.
#[derive(Debug, Default)]
struct DirSyncer {
    state: Mutex<HashMap<PathBuf, DirState>>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct DirState {
    started: u64,
    done: u64,
    running: bool,
    waiters: usize,
}

impl DirSyncer {
    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, DirState>> {
        // The map holds plain counters; a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once a fsync of `dir` that started after this call has succeeded, so every
    /// name linked into `dir` before the call is durable. Runs the fsync itself when none is
    /// running; otherwise waits for the running one (which may have started too early) and the
    /// next. One fsync serves every caller that arrived before it started.
    fn sync(&self, dir: &Path) -> Result<(), StoreError> {
        let key = dir.to_path_buf();
        let mut map = self.lock();
        let need = {
            let st = map.entry(key.clone()).or_default();
            st.waiters += 1;
            st.started + 1
        };
        let result = loop {
            let st = map.entry(key.clone()).or_default();
            if st.done >= need {
                break Ok(());
            }
            if st.running {
                map = self
                    .changed
                    .wait(map)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.running = true;
            st.started += 1;
            let generation = st.started;
            drop(map);
            let synced = sync_dir(dir);
            map = self.lock();
            let st = map.entry(key.clone()).or_default();
            st.running = false;
            if synced.is_ok() {
                st.done = generation;
            }
            self.changed.notify_all();
            if let Err(e) = synced {
                // Waiters retry with a fsync of their own; this caller reports the failure.
                break Err(e);
            }
        };
        let st = map.entry(key.clone()).or_default();
        st.waiters -= 1;
        if st.waiters == 0 && !st.running {
            map.remove(&key);
        }
        result
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

fn open_opt(path: &Path) -> Result<Option<File>, StoreError> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
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

    async fn put_blob(&self, id: SegmentId, bytes: Bytes) -> Result<(), StoreError> {
        self.run(move |s| s.put_blob(id, &bytes)).await
    }

    async fn get_blob(&self, id: SegmentId) -> Result<Option<Bytes>, StoreError> {
        self.run(move |s| s.get_blob(id)).await
    }

    async fn put_segment(
        &self,
        owner: OwnerId,
        origin: Origin,
        pos: &Position,
        bytes: Bytes,
    ) -> Result<PutOutcome, StoreError> {
        let key = keys::position(owner, origin, pos.first_seq);
        let entry = encode_position(pos);
        let id = pos.hash;
        // Round one, in parallel: the blob made durable; the entry's temp file fsynced.
        let blob = self.run(move |s| s.put_blob(id, &bytes));
        let prepared = {
            let key = key.clone();
            self.run(move |s| s.prepare(&key, &entry))
        };
        let (blob, prepared) = tokio::join!(blob, prepared);
        if let Err(e) = blob {
            if let Ok(Prepared::Temp(tmp)) = prepared {
                let _ = fs::remove_file(tmp);
            }
            return Err(e);
        }
        // Round two: the commit, only now that the blob is durable.
        let first_seq = pos.first_seq;
        let existing = match prepared? {
            Prepared::Temp(tmp) => {
                let key = key.clone();
                self.run(move |s| s.commit(&key, &tmp)).await?
            }
            Prepared::Existing(existing) => {
                let parent = self.inner.paths(&key).1;
                self.run(move |s| s.dirs.sync(&parent)).await?;
                Some(existing)
            }
        };
        super::position_outcome(&key, first_seq, existing)
    }

    async fn list_positions(
        &self,
        owner: OwnerId,
        origin: Origin,
        after: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let key = keys::chain(owner, origin);
        let mut seqs: Vec<u64> = self
            .run(move |s| s.list_dir(&key))
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
