//! The filesystem store's write-ahead journal: what makes a write durable with one `fdatasync`
//! shared by every concurrent writer, instead of fsyncs of each file and directory it touches.
//!
//! # Records
//!
//! A journal file (`journal/<name>.log`, one per open store, held with an exclusive lock for its
//! lifetime) is a sequence of records, each `magic "HJ01" | kind u8 | body_len u32 LE |
//! blake3(kind, body)[..16] | body`:
//! - an **intent** (kind 1) lists the objects one write is about to create, key and bytes each.
//!   The last object is the write's *commit* object (a position entry, the owner record); any
//!   before it are content-addressed blobs.
//! - a **linked** mark (kind 2) holds the file offset of an intent whose commit object this store
//!   created (or found holding exactly its bytes).
//!
//! # Write protocol (see [`super`] for the objects)
//!
//! The objects go to temp files (not fsynced); the intent is appended and the writer waits for a
//! sync that covers it; the temp files are linked into place (never replacing), commit object
//! last; when the commit object is this write's, the linked mark is appended and the writer
//! waits for a sync that covers it, and only then is the write acknowledged.
//!
//! One syncer thread runs `fdatasync` on the journal whenever records are waiting, so a sync
//! covers every record appended while the previous one ran (group commit).
//!
//! # Recovery
//!
//! A journal whose lock nobody holds belongs to a store that stopped. Opening a store replays
//! such journals ([`replay`]): a record is *ours* when it has a linked mark or when its commit
//! object holds exactly its bytes (linked, mark not yet durable). For ours, every object is put
//! back with the recorded bytes where it is missing or differs (a crash or power loss can leave a
//! linked name whose data never reached the disk). For the others, blobs that differ from the
//! recorded bytes are removed (a blob is content-addressed: other bytes are never valid) and
//! nothing is created. Then the filesystem is synced and the journal deleted.
//!
//! A write whose linked mark is durable is therefore restored however much of its files the
//! disk kept, and a write that was never acknowledged is either whole or absent.
//!
//! # Checkpoints
//!
//! A journal file is sealed when it grows past [`ROTATE_BYTES`] and a new one takes the next
//! intents. When no write of a sealed file is still in flight, a checkpoint syncs the whole
//! filesystem (`syncfs`), which makes every file those writes linked durable, and deletes it.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::{StoreError, read_opt};

/// A journal file of an open store is sealed (and checkpointed once idle) past this size.
pub(super) const ROTATE_BYTES: u64 = 16 << 20;

const MAGIC: &[u8; 4] = b"HJ01";
const KIND_INTENT: u8 = 1;
const KIND_LINKED: u8 = 2;
const HEADER_LEN: usize = 4 + 1 + 4 + 16;

/// The journal of one open store: appends, group-committed syncs, checkpoints.
#[derive(Debug)]
pub(super) struct Journal {
    shared: Arc<Shared>,
    syncer: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// `<root>/journal`.
    dir: PathBuf,
    /// A file is sealed once it has grown past this many bytes.
    rotate_bytes: u64,
    /// The store's root directory, for syncing its filesystem at checkpoints.
    root: PathBuf,
    /// This journal's name: its files are `<name>-<n>.log`, its temp directory `tmp/<name>`.
    name: String,
    state: Mutex<State>,
    /// Wakes the syncer thread.
    work: Condvar,
    /// What the syncer has made durable, for writers waiting on it.
    progress: watch::Sender<Synced>,
}

/// The last generation a finished sync covered, or why syncing stopped for good.
#[derive(Debug, Clone, Default)]
struct Synced {
    generation: u64,
    failed: Option<Arc<str>>,
}

#[derive(Debug)]
struct State {
    /// Open journal files, oldest first; the last takes new intents, the others are sealed.
    files: Vec<JournalFile>,
    next_file: u64,
    /// Generation of the last append, and the last one a finished sync covered.
    written: u64,
    synced: u64,
    /// Set for good when a sync fails: nothing appended since can be trusted to be durable.
    failed: Option<String>,
    checkpointing: bool,
    shutdown: bool,
}

#[derive(Debug)]
struct JournalFile {
    number: u64,
    path: PathBuf,
    file: Arc<File>,
    len: u64,
    unsynced: bool,
    /// Writes with an intent in this file that have not finished.
    inflight: usize,
}

/// One write in flight, from its intent on. Finish it with [`Journal::mark_linked`]; dropping it
/// instead records nothing more (the commit object was somebody else's, or linking failed).
#[derive(Debug)]
pub(super) struct Entry {
    shared: Arc<Shared>,
    file: u64,
    offset: u64,
    done: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state is counters and file handles updated in single steps.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A random name for a journal and its temp directory.
pub(super) fn new_name() -> String {
    let mut r = [0u8; 8];
    if getrandom::fill(&mut r).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        r = (t ^ u64::from(std::process::id())).to_le_bytes();
    }
    r.iter().map(|b| format!("{b:02x}")).collect()
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::io(path.display(), e)
}

/// Creates and locks a new journal file `<dir>/<name>-<number>.log`.
fn create_file(dir: &Path, name: &str, number: u64) -> Result<JournalFile, StoreError> {
    let path = dir.join(format!("{name}-{number}.log"));
    let file = File::options()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    file.try_lock().map_err(|e| {
        StoreError::io(
            path.display(),
            std::io::Error::other(format!("cannot lock a new journal file: {e}")),
        )
    })?;
    Ok(JournalFile {
        number,
        path,
        file: Arc::new(file),
        len: 0,
        unsynced: false,
        inflight: 0,
    })
}

impl Journal {
    /// Starts a journal named `name` in `<root>/journal` (which must exist) and its syncer
    /// thread; its files are sealed past `rotate_bytes`.
    pub(super) fn start(
        root: &Path,
        name: String,
        rotate_bytes: u64,
    ) -> Result<Journal, StoreError> {
        let dir = root.join("journal");
        let first = create_file(&dir, &name, 0)?;
        let shared = Arc::new(Shared {
            dir,
            rotate_bytes,
            root: root.to_path_buf(),
            name,
            state: Mutex::new(State {
                files: vec![first],
                next_file: 1,
                written: 0,
                synced: 0,
                failed: None,
                checkpointing: false,
                shutdown: false,
            }),
            work: Condvar::new(),
            progress: watch::Sender::new(Synced::default()),
        });
        let worker = Arc::clone(&shared);
        let syncer = std::thread::Builder::new()
            .name("heph-store-journal".into())
            .spawn(move || worker.sync_loop())
            .map_err(|e| io_err(&shared.dir, e))?;
        Ok(Journal {
            shared,
            syncer: Some(syncer),
        })
    }

    /// This journal's name (its temp directory is `tmp/<name>`).
    pub(super) fn name(&self) -> &str {
        &self.shared.name
    }

    /// Appends the intent to create `objects` (commit object last); it is durable once
    /// [`Journal::synced`] of the returned generation returns.
    pub(super) fn intend(&self, objects: &[(&str, &[u8])]) -> Result<(Entry, u64), StoreError> {
        let body = encode_intent(objects);
        let (file, offset, generation) = self.shared.append(KIND_INTENT, &body, None)?;
        let entry = Entry {
            shared: Arc::clone(&self.shared),
            file,
            offset,
            done: false,
        };
        Ok((entry, generation))
    }

    /// Records that `entry`'s commit object is this store's; that is durable once
    /// [`Journal::synced`] of the returned generation returns.
    pub(super) fn mark_linked(&self, mut entry: Entry) -> Result<u64, StoreError> {
        let body = entry.offset.to_le_bytes();
        let appended = self.shared.append(KIND_LINKED, &body, Some(entry.file));
        // The write is finished either way: its links are done, so a checkpoint covers them.
        entry.finish();
        appended.map(|(_, _, generation)| generation)
    }

    /// Why the journal stopped accepting writes, if it did (a failed append or sync).
    pub(super) fn failure(&self) -> Option<StoreError> {
        lock(&self.shared.state).failed.as_deref().map(failed_error)
    }

    /// Returns once a sync has covered generation `generation` (a group-committed
    /// `fdatasync`, or a checkpoint of the file the record was in).
    pub(super) async fn synced(&self, generation: u64) -> Result<(), StoreError> {
        let mut rx = self.shared.progress.subscribe();
        let state = rx
            .wait_for(|s| s.generation >= generation || s.failed.is_some())
            .await
            .map_err(|_| StoreError::Backend("the store journal stopped".into()))?;
        match &state.failed {
            Some(reason) => Err(failed_error(reason)),
            None => Ok(()),
        }
    }
}

impl Drop for Journal {
    /// Stops the syncer once nothing is waiting to be synced; it closes (and so unlocks) the
    /// journal files, which the next open of the store replays and removes.
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.work.notify_all();
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
    }
}

impl Entry {
    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let mut st = lock(&self.shared.state);
        if let Some(f) = st.files.iter_mut().find(|f| f.number == self.file) {
            f.inflight -= 1;
        }
        Shared::maybe_checkpoint(&self.shared, &mut st);
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Shared {
    /// Appends one record to file `to` (or the active file), returning the file's number, the
    /// record's offset and its generation. An intent counts as in flight in its file.
    fn append(
        self: &Arc<Self>,
        kind: u8,
        body: &[u8],
        to: Option<u64>,
    ) -> Result<(u64, u64, u64), StoreError> {
        let record = encode_record(kind, body);
        let mut st = lock(&self.state);
        if let Some(reason) = &st.failed {
            return Err(failed_error(reason));
        }
        if to.is_none() && st.files.last().is_some_and(|f| f.len >= self.rotate_bytes) {
            let number = st.next_file;
            let fresh = create_file(&self.dir, &self.name, number)?;
            st.next_file += 1;
            st.files.push(fresh);
            Self::maybe_checkpoint(self, &mut st);
        }
        let file = match to {
            Some(n) => st.files.iter_mut().find(|f| f.number == n),
            None => st.files.last_mut(),
        }
        .ok_or_else(|| StoreError::Backend("journal file of a write in flight is gone".into()))?;
        let offset = file.len;
        if let Err(e) = (&*file.file).write_all(&record) {
            // A partial record is a torn tail that recovery ignores, but nothing may follow it.
            let reason = format!("cannot append to {}: {e}", file.path.display());
            st.failed = Some(reason.clone());
            self.progress
                .send_modify(|s| s.failed = Some(Arc::from(reason.as_str())));
            return Err(failed_error(&reason));
        }
        file.len += record.len() as u64;
        file.unsynced = true;
        if kind == KIND_INTENT {
            file.inflight += 1;
        }
        let number = file.number;
        st.written += 1;
        let generation = st.written;
        self.work.notify_one();
        Ok((number, offset, generation))
    }

    /// The syncer thread: one `fdatasync` per file with new records, covering every record
    /// appended before it started, until the journal is dropped.
    fn sync_loop(self: Arc<Self>) {
        let mut st = lock(&self.state);
        loop {
            while st.written == st.synced && !st.shutdown {
                st = self.work.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            if st.written == st.synced || st.failed.is_some() {
                // Shut down with nothing to sync, or failed for good.
                if st.shutdown || st.failed.is_some() {
                    st.files.clear();
                    return;
                }
                continue;
            }
            let target = st.written;
            let files: Vec<(PathBuf, Arc<File>)> = st
                .files
                .iter_mut()
                .filter_map(|f| {
                    std::mem::replace(&mut f.unsynced, false)
                        .then(|| (f.path.clone(), Arc::clone(&f.file)))
                })
                .collect();
            drop(st);
            let mut outcome = Ok(());
            for (path, file) in &files {
                if let Err(e) = file.sync_data() {
                    outcome = Err(format!("cannot sync {}: {e}", path.display()));
                    break;
                }
            }
            st = lock(&self.state);
            match outcome {
                Ok(()) => {
                    st.synced = target;
                    self.progress.send_modify(|s| s.generation = target);
                }
                Err(reason) => {
                    tracing::error!(%reason, "store journal sync failed; writes refused until restart");
                    self.progress
                        .send_modify(|s| s.failed = Some(Arc::from(reason.as_str())));
                    st.failed = Some(reason);
                }
            }
        }
    }

    /// Starts a checkpoint of the sealed files with nothing in flight, unless one is running.
    fn maybe_checkpoint(self: &Arc<Self>, st: &mut State) {
        if st.checkpointing || st.failed.is_some() {
            return;
        }
        let sealed = st.files.len().saturating_sub(1);
        let ready: Vec<u64> = st.files[..sealed]
            .iter()
            .filter(|f| f.inflight == 0)
            .map(|f| f.number)
            .collect();
        if ready.is_empty() {
            return;
        }
        st.checkpointing = true;
        let shared = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("heph-store-checkpoint".into())
            .spawn(move || shared.checkpoint(&ready));
        if spawned.is_err() {
            // Try again at the next finished write; the sealed files stay until then.
            st.checkpointing = false;
        }
    }

    /// Makes every file the writes of journal files `numbers` linked durable, then deletes them.
    fn checkpoint(self: Arc<Self>, numbers: &[u64]) {
        let synced = sync_filesystem(&self.root);
        let ok = synced.is_ok();
        let mut st = lock(&self.state);
        match synced {
            Ok(()) => {
                let mut i = 0;
                while i < st.files.len() {
                    if numbers.contains(&st.files[i].number) {
                        let f = st.files.remove(i);
                        if let Err(e) = fs::remove_file(&f.path) {
                            tracing::warn!(path = %f.path.display(), error = %e, "cannot remove a checkpointed journal file");
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "store checkpoint failed; retried after the next write");
            }
        }
        st.checkpointing = false;
        if ok {
            Self::maybe_checkpoint(&self, &mut st);
        }
    }
}

fn failed_error(reason: &str) -> StoreError {
    StoreError::Backend(format!(
        "the store journal failed ({reason}); writes are refused until the hub restarts"
    ))
}

/// Makes everything written to the filesystem holding `root` durable.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn sync_filesystem(root: &Path) -> Result<(), StoreError> {
    let dir = File::open(root).map_err(|e| io_err(root, e))?;
    rustix::fs::syncfs(&dir).map_err(|e| io_err(root, e.into()))
}

/// Makes everything written to the filesystem holding `root` durable. Without `syncfs`, the
/// whole system is synced (`sync(2)`), then the root directory fsynced.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn sync_filesystem(root: &Path) -> Result<(), StoreError> {
    rustix::fs::sync();
    File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(root, e))
}

fn encode_record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.push(kind);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(kind, body));
    out.extend_from_slice(body);
    out
}

fn checksum(kind: u8, body: &[u8]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(&[kind]);
    h.update(body);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

fn encode_intent(objects: &[(&str, &[u8])]) -> Vec<u8> {
    let size: usize = objects.iter().map(|(k, b)| 6 + k.len() + b.len()).sum();
    let mut out = Vec::with_capacity(2 + size);
    out.extend_from_slice(&(objects.len() as u16).to_le_bytes());
    for (key, bytes) in objects {
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// One intent read back from a journal file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Intent {
    /// Offset of the record in its file.
    pub offset: u64,
    /// The objects, commit object last.
    pub objects: Vec<(String, Vec<u8>)>,
    /// Whether a linked mark for it was read.
    pub linked: bool,
}

/// Reads the records of a journal file up to the first one that is torn or corrupt.
pub(super) fn read_records(bytes: &[u8]) -> Vec<Intent> {
    let mut intents: Vec<Intent> = Vec::new();
    let mut at = 0usize;
    while let Some((kind, body, next)) = next_record(bytes, at) {
        match kind {
            KIND_INTENT => match decode_intent(body) {
                Some(objects) => intents.push(Intent {
                    offset: at as u64,
                    objects,
                    linked: false,
                }),
                None => break,
            },
            KIND_LINKED => {
                let Ok(raw) = <[u8; 8]>::try_from(body) else {
                    break;
                };
                let target = u64::from_le_bytes(raw);
                if let Some(i) = intents.iter_mut().find(|i| i.offset == target) {
                    i.linked = true;
                }
            }
            _ => break,
        }
        at = next;
    }
    intents
}

fn next_record(bytes: &[u8], at: usize) -> Option<(u8, &[u8], usize)> {
    let header = bytes.get(at..at.checked_add(HEADER_LEN)?)?;
    if &header[..4] != MAGIC {
        return None;
    }
    let kind = header[4];
    let len = u32::from_le_bytes(header[5..9].try_into().ok()?) as usize;
    let start = at + HEADER_LEN;
    let body = bytes.get(start..start.checked_add(len)?)?;
    (header[9..25] == checksum(kind, body)).then_some((kind, body, start + len))
}

fn decode_intent(body: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut r = body;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = r.split_at_checked(n)?;
        r = rest;
        Some(head)
    };
    let count = u16::from_le_bytes(take(2)?.try_into().ok()?);
    let mut objects = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let klen = u16::from_le_bytes(take(2)?.try_into().ok()?);
        let key = std::str::from_utf8(take(usize::from(klen))?)
            .ok()?
            .to_owned();
        let blen = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let data = take(blen)?.to_vec();
        objects.push((key, data));
    }
    (!objects.is_empty() && r.is_empty()).then_some(objects)
}

/// What [`replay`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Replayed {
    /// Journal files replayed and removed.
    pub journals: usize,
    /// Objects written back (missing or differing from the recorded bytes).
    pub restored: usize,
    /// Blobs removed because their bytes differed from the recorded ones.
    pub removed: usize,
}

/// Replays every journal under `<root>/journal` that no open store holds (see the module docs),
/// removes their temp directories and stray temp files, syncs the filesystem, then deletes the
/// replayed journals. `own` is the name of the caller's own journal, which is skipped.
pub(super) fn replay(root: &Path, own: &str) -> Result<Replayed, StoreError> {
    let dir = root.join("journal");
    let tmp = root.join("tmp");
    let mut done = Replayed::default();
    let mut replayed: Vec<(PathBuf, File)> = Vec::new();
    let names = fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?;
    for entry in names.flatten() {
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !file_name.ends_with(".log") || file_name.starts_with(&format!("{own}-")) {
            continue;
        }
        let file = match File::options().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&path, e)),
        };
        if file.try_lock().is_err() {
            continue; // another open store's journal
        }
        let bytes = fs::read(&path).map_err(|e| io_err(&path, e))?;
        for intent in read_records(&bytes) {
            let (r, m) = recover(root, &intent)?;
            done.restored += r;
            done.removed += m;
        }
        replayed.push((path, file));
    }
    // Temp directories of journals that are gone or were just replayed, and loose temp files.
    if let Ok(entries) = fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == own {
                continue;
            }
            // Listed again for each entry, after the entry was seen: a store creates its journal
            // before its temp directory, so a store that opened after the first listing above is
            // still found live here (a set built once would let its temp directory be removed).
            let live = fs::read_dir(&dir).ok().is_some_and(|js| {
                js.flatten().any(|j| {
                    let jn = j.file_name().to_string_lossy().into_owned();
                    jn.starts_with(&format!("{name}-"))
                        && !replayed.iter().any(|(p, _)| p == &j.path())
                })
            });
            if live {
                continue;
            }
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            if let Err(e) = removed
                && e.kind() != ErrorKind::NotFound
            {
                return Err(io_err(&path, e));
            }
        }
    }
    if !replayed.is_empty() {
        sync_filesystem(root)?;
        for (path, _file) in &replayed {
            fs::remove_file(path).map_err(|e| io_err(path, e))?;
        }
        done.journals = replayed.len();
    }
    Ok(done)
}

/// Recovers one intent; returns (objects restored, blobs removed).
fn recover(root: &Path, intent: &Intent) -> Result<(usize, usize), StoreError> {
    let Some((commit_key, commit_bytes)) = intent.objects.last() else {
        return Ok((0, 0));
    };
    let commit_path = root.join(commit_key);
    let ours = intent.linked || read_opt(&commit_path)?.as_deref() == Some(&commit_bytes[..]);
    let (mut restored, mut removed) = (0, 0);
    if ours {
        for (key, bytes) in &intent.objects {
            let path = root.join(key);
            if read_opt(&path)?.as_deref() != Some(&bytes[..]) {
                restore(root, &path, bytes)?;
                restored += 1;
            }
        }
    } else {
        let blobs = &intent.objects[..intent.objects.len() - 1];
        for (key, bytes) in blobs {
            let path = root.join(key);
            match read_opt(&path)? {
                Some(found) if found[..] != bytes[..] => {
                    fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                    removed += 1;
                }
                _ => {}
            }
        }
    }
    Ok((restored, removed))
}

/// Puts `bytes` at `path` through a temp file renamed over whatever is there.
fn restore(root: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    let tmp = root.join("tmp").join(format!("restore-{}", new_name()));
    let written = File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes));
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(objects: &[(&str, &[u8])]) -> Vec<u8> {
        encode_record(KIND_INTENT, &encode_intent(objects))
    }

    fn mark(offset: u64) -> Vec<u8> {
        encode_record(KIND_LINKED, &offset.to_le_bytes())
    }

    /// A store root with the directories a store has, and a dead journal holding `records`.
    fn root_with_journal(records: &[Vec<u8>]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["tmp", "blobs", "chains", "journal"] {
            fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let bytes: Vec<u8> = records.concat();
        fs::write(dir.path().join("journal/dead-0.log"), bytes).expect("journal");
        dir
    }

    fn put(root: &Path, key: &str, bytes: &[u8]) {
        let path = root.join(key);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, bytes).expect("write");
    }

    fn get(root: &Path, key: &str) -> Option<Vec<u8>> {
        fs::read(root.join(key)).ok()
    }

    const BLOB: &str = "blobs/ab/abcd";
    const ENTRY: &str = "chains/o/x/00000000000000000001";

    /// Replays a dead journal holding one segment write (blob `blob bytes`, entry `entry`),
    /// marked linked or not, over a store whose disk holds `on_disk`.
    fn replay_segment_write(
        marked: bool,
        on_disk: &[(&str, &[u8])],
    ) -> (tempfile::TempDir, Replayed) {
        let mut records = vec![intent(&[(BLOB, b"blob bytes"), (ENTRY, b"entry")])];
        if marked {
            records.push(mark(0));
        }
        let root = root_with_journal(&records);
        for (key, bytes) in on_disk {
            put(root.path(), key, bytes);
        }
        let done = replay(root.path(), "own").expect("replay");
        (root, done)
    }

    #[test]
    fn records_read_back_and_a_torn_or_corrupt_tail_is_ignored() {
        let first = intent(&[(BLOB, b"blob bytes"), (ENTRY, b"entry")]);
        let second = intent(&[("owner", b"{}")]);
        let mut bytes = [first.clone(), mark(0), second.clone()].concat();
        let all = read_records(&bytes);
        assert_eq!(all.len(), 2);
        assert!(all[0].linked && !all[1].linked);
        assert_eq!(all[0].objects[0], (BLOB.to_owned(), b"blob bytes".to_vec()));
        assert_eq!(all[1].offset, (first.len() + mark(0).len()) as u64);

        // A record cut short by a crash ends the journal.
        bytes.truncate(bytes.len() - 1);
        assert_eq!(read_records(&bytes).len(), 1);
        // So does a flipped byte: nothing after a corrupt record is trusted.
        let mut flipped = [first.clone(), second.clone()].concat();
        flipped[HEADER_LEN + 3] ^= 0x40;
        assert!(read_records(&flipped).is_empty());
        // And garbage or zeros (a preallocated or half-written tail).
        assert!(read_records(&[0u8; 64]).is_empty());
        assert!(read_records(b"not a journal at all").is_empty());
    }

    #[test]
    fn a_marked_write_is_restored_where_the_disk_lost_it() {
        // Power loss kept the entry's name but not its data, and lost the blob.
        let (root, done) = replay_segment_write(true, &[(ENTRY, &[0u8; 5])]);
        assert_eq!(
            done,
            Replayed {
                journals: 1,
                restored: 2,
                removed: 0
            }
        );
        assert_eq!(get(root.path(), BLOB).as_deref(), Some(&b"blob bytes"[..]));
        assert_eq!(get(root.path(), ENTRY).as_deref(), Some(&b"entry"[..]));
        assert!(
            !root.path().join("journal/dead-0.log").exists(),
            "journal removed"
        );
    }

    #[test]
    fn an_unmarked_write_whose_entry_is_on_disk_gets_its_blob_back() {
        let (root, done) = replay_segment_write(false, &[(ENTRY, b"entry")]);
        assert_eq!(done.restored, 1);
        assert_eq!(get(root.path(), BLOB).as_deref(), Some(&b"blob bytes"[..]));
    }

    #[test]
    fn an_unmarked_write_without_its_entry_is_not_created_and_a_torn_blob_goes() {
        let (root, done) = replay_segment_write(false, &[(BLOB, b"blob by")]);
        assert_eq!(done.removed, 1);
        assert_eq!(done.restored, 0);
        assert_eq!(
            get(root.path(), BLOB),
            None,
            "a blob with other bytes is never valid"
        );
        assert_eq!(
            get(root.path(), ENTRY),
            None,
            "never acknowledged: not created"
        );
    }

    #[test]
    fn a_whole_blob_of_a_write_that_lost_stays_and_the_winner_is_kept() {
        let (root, done) = replay_segment_write(
            false,
            &[(BLOB, b"blob bytes"), (ENTRY, b"another writer's entry")],
        );
        assert_eq!((done.restored, done.removed), (0, 0));
        assert_eq!(get(root.path(), BLOB).as_deref(), Some(&b"blob bytes"[..]));
        assert_eq!(
            get(root.path(), ENTRY).as_deref(),
            Some(&b"another writer's entry"[..])
        );
    }

    #[test]
    fn journals_of_open_stores_and_their_temp_files_are_left_alone() {
        let rec = intent(&[("owner", b"{\"owner\":1}")]);
        let root = root_with_journal(&[rec, mark(0)]);
        // Another store holds this journal (and uses tmp/dead).
        let held = File::open(root.path().join("journal/dead-0.log")).expect("open");
        held.try_lock().expect("lock");
        put(root.path(), "tmp/dead/inflight", b"partial");
        // Stray temp files of stores that are gone.
        put(root.path(), "tmp/gone/x", b"partial");
        put(root.path(), "tmp/loose", b"partial");
        let done = replay(root.path(), "own").expect("replay");
        assert_eq!(done, Replayed::default());
        assert_eq!(get(root.path(), "owner"), None);
        assert!(root.path().join("tmp/dead/inflight").exists());
        assert!(!root.path().join("tmp/gone").exists());
        assert!(!root.path().join("tmp/loose").exists());
        drop(held);
        assert_eq!(replay(root.path(), "own").expect("replay").restored, 1);
        assert_eq!(
            get(root.path(), "owner").as_deref(),
            Some(&b"{\"owner\":1}"[..])
        );
        assert!(!root.path().join("tmp/dead").exists());
    }

    /// An empty store root with a running journal `live` sealing files past `rotate_bytes`,
    /// and a runtime to wait for its syncs on.
    fn live_journal(rotate_bytes: u64) -> (tempfile::TempDir, Journal, tokio::runtime::Runtime) {
        let root = root_with_journal(&[]);
        fs::remove_file(root.path().join("journal/dead-0.log")).expect("rm");
        let journal = Journal::start(root.path(), "live".into(), rotate_bytes).expect("start");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        (root, journal, rt)
    }

    /// Polls `done` for up to 20 s (checkpoints run on their own thread).
    fn wait_until(done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !done() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn sealed_files_are_checkpointed_and_removed_once_idle() {
        let (root, journal, rt) = live_journal(4096);
        for i in 0..40u32 {
            let key = format!("blobs/00/{i}");
            let (entry, generation) = journal.intend(&[(&key, &[7u8; 1000])]).expect("intend");
            rt.block_on(journal.synced(generation)).expect("synced");
            put(root.path(), &key, &[7u8; 1000]);
            let generation = journal.mark_linked(entry).expect("mark");
            rt.block_on(journal.synced(generation)).expect("synced");
        }
        let logs = || {
            fs::read_dir(root.path().join("journal"))
                .expect("ls")
                .count()
        };
        wait_until(|| logs() == 1);
        assert_eq!(
            logs(),
            1,
            "sealed journal files are removed after a checkpoint"
        );
        assert!(
            !root.path().join("journal/live-0.log").exists(),
            "what is left is the newest, active file"
        );
    }

    #[test]
    fn after_a_failed_sync_every_write_is_refused() {
        let (_root, journal, rt) = live_journal(ROTATE_BYTES);
        let (entry, generation) = journal.intend(&[("a", b"1")]).expect("intend");
        rt.block_on(journal.synced(generation)).expect("synced");
        // What the syncer does when fdatasync fails.
        let reason = "cannot sync journal/live-0.log: Input/output error".to_owned();
        journal
            .shared
            .progress
            .send_modify(|s| s.failed = Some(Arc::from(reason.as_str())));
        lock(&journal.shared.state).failed = Some(reason);
        let refused = |e: StoreError| {
            let text = e.to_string();
            assert!(text.contains("Input/output error"), "{text}");
            assert!(text.contains("until the hub restarts"), "{text}");
        };
        refused(journal.mark_linked(entry).expect_err("mark refused"));
        refused(journal.intend(&[("b", b"2")]).expect_err("intend refused"));
        refused(
            rt.block_on(journal.synced(generation + 1))
                .expect_err("wait refused"),
        );
        refused(journal.failure().expect("failure reported"));
    }

    #[test]
    fn a_write_in_flight_keeps_its_sealed_file() {
        let (root, journal, rt) = live_journal(100);
        let (pending, generation) = journal.intend(&[("owner", &[1u8; 200])]).expect("intend");
        rt.block_on(journal.synced(generation)).expect("synced");
        // The next intent seals file 0; its write is still in flight, so it must stay.
        let (entry, generation) = journal.intend(&[("x", b"y")]).expect("intend");
        rt.block_on(journal.synced(generation)).expect("synced");
        drop(entry);
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(root.path().join("journal/live-0.log").exists());
        let generation = journal.mark_linked(pending).expect("mark");
        rt.block_on(journal.synced(generation)).expect("synced");
        wait_until(|| !root.path().join("journal/live-0.log").exists());
        assert!(!root.path().join("journal/live-0.log").exists());
        assert!(root.path().join("journal/live-1.log").exists());
    }
}
