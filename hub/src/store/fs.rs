//! The filesystem store (the embedded default): one file per object under a root directory,
//! written as create-if-absent links and made durable by a group-committed journal.
//!
//! # Layout
//!
//! `owner`, `blobs/<hh>/<hash>`, `chains/<owner>/<origin>/<first_seq:020>` (the shared [`keys`]
//! layout), plus `journal/` (one write-ahead journal per open store, see [`journal`]) and `tmp/`
//! (one temp directory per open store, `tmp/<journal name>/`).
//!
//! # Write protocol
//!
//! Every write ([`SegmentStore::create`], and [`SegmentStore::put_segment`], which writes a blob
//! and then its position entry, the commit) goes the same way:
//! 1. if the commit object's name holds other bytes, the write lost: that object is returned;
//! 2. each object's bytes go to a fresh temp file, which is not fsynced;
//! 3. the journal records the intent (keys and bytes) and the writer waits for the group-committed
//!    `fdatasync` that covers it: from here on the write survives a crash or power loss;
//! 4. each temp file is hard-linked to its final name (`link(2)` fails if the name exists, so
//!    nothing is ever replaced), blobs first, commit object last;
//! 5. if the commit object is now this write's (linked, or found holding exactly its bytes), the
//!    journal records that, the writer waits for the sync covering it, and the write is
//!    acknowledged; otherwise the object that holds the name is returned.
//!
//! A reader (this hub or another one on the same directory) sees a whole object or none, and
//! sees a position entry only after its blob. After a crash, opening the store replays the
//! journals nobody holds: acknowledged writes are put back where the disk lost them, a write
//! that was never acknowledged is left whole or removed (see [`journal`] for the rules), and
//! leftover temp directories are removed. Sealed journal files are checkpointed (`syncfs`) and
//! deleted in the background, so the journal stays small.
//!
//! One `fdatasync` of one file serves every write that was appended while the previous one ran,
//! so concurrent pushes to different origins share their syncs; per-file and per-directory
//! fsyncs, which a filesystem without its own journal runs as separate device flushes, are not
//! on the write path at all.

mod journal;

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use heph_format::{Origin, OwnerId};

use super::{Position, PutOutcome, SegmentStore, StoreError, keys};
use journal::Journal;

/// A store rooted at a local directory. See the module docs for the write protocol.
#[derive(Debug, Clone)]
pub struct FsStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// This store's temp directory, `tmp/<journal name>`.
    tmp: PathBuf,
    /// Whether temp files are unnamed (`O_TMPFILE`); cleared when the filesystem refuses them.
    #[cfg(target_os = "linux")]
    unnamed_temps: std::sync::atomic::AtomicBool,
    journal: Journal,
}

impl FsStore {
    /// Opens (creating if needed) the store at `root`: starts this store's journal, then
    /// replays the journals of stores that stopped and removes their temp files.
    pub async fn open(root: impl Into<PathBuf>) -> Result<FsStore, StoreError> {
        let root: PathBuf = root.into();
        let inner = blocking(move || {
            for sub in ["tmp", "blobs", "chains", "journal"] {
                let dir = root.join(sub);
                fs::create_dir_all(&dir).map_err(|e| StoreError::io(dir.display(), e))?;
            }
            let journal = Journal::start(&root, journal::new_name(), journal::ROTATE_BYTES)?;
            let tmp = root.join("tmp").join(journal.name());
            fs::create_dir_all(&tmp).map_err(|e| StoreError::io(tmp.display(), e))?;
            let replayed = journal::replay(&root, journal.name())?;
            if replayed.journals > 0 {
                tracing::info!(
                    store = %root.display(),
                    journals = replayed.journals,
                    restored = replayed.restored,
                    removed = replayed.removed,
                    "replayed the journals of a store that stopped"
                );
            }
            sync_dir(&root)?;
            Ok(Inner {
                root,
                tmp,
                #[cfg(target_os = "linux")]
                unnamed_temps: std::sync::atomic::AtomicBool::new(true),
                journal,
            })
        })
        .await?;
        Ok(FsStore {
            inner: Arc::new(inner),
        })
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

/// One object's bytes, written and waiting to be linked to its name: an unnamed file
/// (`O_TMPFILE`, gone by itself if never linked) where the filesystem supports it, else a named
/// file in this store's temp directory, removed when this is dropped (a link keeps the data).
enum Temp {
    #[cfg(target_os = "linux")]
    Unnamed(File),
    Named(PathBuf),
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Temp::Named(path) = self {
            let _ = fs::remove_file(path);
        }
    }
}

impl Temp {
    /// Gives the bytes the name `dest` unless it exists (`link(2)` never replaces).
    fn link(&self, dest: &Path) -> std::io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Temp::Unnamed(file) => {
                use std::os::fd::AsRawFd;
                let source = format!("/proc/self/fd/{}", file.as_raw_fd());
                rustix::fs::linkat(
                    rustix::fs::CWD,
                    source.as_str(),
                    rustix::fs::CWD,
                    dest,
                    rustix::fs::AtFlags::SYMLINK_FOLLOW,
                )
                .map_err(std::io::Error::from)
            }
            Temp::Named(path) => fs::hard_link(path, dest),
        }
    }
}

/// The temp files of one write, in object order.
struct Temps(Vec<Temp>);

/// The first half of a write: lost at once, or its temp files written and its intent appended.
enum Prepared {
    Lost(Bytes),
    Ready {
        temps: Temps,
        entry: journal::Entry,
        generation: u64,
    },
}

impl FsStore {
    /// Writes `objects` (commit object last) with the journal protocol of the module docs.
    /// Returns `None` when the commit object is now this write's and was created by it, or the
    /// bytes the commit object's name holds otherwise (equal to ours when they were already
    /// there, which is acknowledged as durably as a creation). Waits for syncs without holding
    /// a blocking thread, so concurrent writes share them.
    async fn write(&self, objects: Vec<(String, Bytes)>) -> Result<Option<Bytes>, StoreError> {
        let objects = Arc::new(objects);
        let o = Arc::clone(&objects);
        let (temps, entry, generation) = match self.run(move |s| s.prepare(&o)).await? {
            Prepared::Lost(existing) => return Ok(Some(existing)),
            Prepared::Ready {
                temps,
                entry,
                generation,
            } => (temps, entry, generation),
        };
        self.inner.journal.synced(generation).await?;
        let (outcome, mark) = self
            .run(move |s| s.link_all(&objects, &temps, entry))
            .await?;
        if let Some(generation) = mark {
            self.inner.journal.synced(generation).await?;
        }
        Ok(outcome)
    }
}

impl Inner {
    /// Steps 1–3 of the write protocol, up to the appended (not yet durable) intent.
    fn prepare(&self, objects: &[(String, Bytes)]) -> Result<Prepared, StoreError> {
        let Some((commit_key, commit_bytes)) = objects.last() else {
            return Err(StoreError::Backend("a write with no objects".into()));
        };
        if let Some(existing) = read_opt(&self.root.join(commit_key))?
            && existing != *commit_bytes
        {
            return Ok(Prepared::Lost(existing));
        }
        let mut temps = Temps(Vec::with_capacity(objects.len()));
        for (key, bytes) in objects {
            temps.0.push(self.write_temp(&self.root.join(key), bytes)?);
        }
        let records: Vec<(&str, &[u8])> =
            objects.iter().map(|(k, b)| (k.as_str(), &b[..])).collect();
        let (entry, generation) = self.journal.intend(&records)?;
        Ok(Prepared::Ready {
            temps,
            entry,
            generation,
        })
    }

    /// Steps 4–5 once the intent is durable: links every object, commit object last, and marks
    /// the write linked when the commit object is its own. Returns the write's outcome and the
    /// generation of the mark, which must be synced before the write is acknowledged.
    fn link_all(
        &self,
        objects: &[(String, Bytes)],
        temps: &Temps,
        entry: journal::Entry,
    ) -> Result<(Option<Bytes>, Option<u64>), StoreError> {
        let last = objects.len() - 1;
        for (i, ((key, bytes), tmp)) in objects.iter().zip(&temps.0).enumerate() {
            let dest = self.root.join(key);
            match self.link(tmp, &dest, bytes)? {
                Linked::Created => {}
                Linked::Same(existing) if i == last => {
                    let mark = self.journal.mark_linked(entry)?;
                    return Ok((Some(existing), Some(mark)));
                }
                Linked::Same(_) => {}
                Linked::Other(existing) if i == last => return Ok((Some(existing), None)),
                Linked::Other(_) => {
                    // A blob name holding other bytes can only be a crash leftover (blobs are
                    // content-addressed): put the verified bytes in its place.
                    tracing::warn!(path = %dest.display(), "replacing a corrupt blob");
                    let named = self.tmp.join(journal::new_name());
                    let replaced = tmp.link(&named).and_then(|()| fs::rename(&named, &dest));
                    let _ = fs::remove_file(&named);
                    replaced.map_err(|e| StoreError::io(dest.display(), e))?;
                }
            }
        }
        let mark = self.journal.mark_linked(entry)?;
        Ok((None, Some(mark)))
    }

    /// Writes `bytes` to a temp file for the object at `dest`: unnamed in `dest`'s directory
    /// (created if missing) where the filesystem allows, else named in the temp directory.
    fn write_temp(&self, dest: &Path, bytes: &[u8]) -> Result<Temp, StoreError> {
        #[cfg(target_os = "linux")]
        if self
            .unnamed_temps
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let dir = dest.parent().unwrap_or(&self.root);
            let open = || {
                rustix::fs::open(
                    dir,
                    rustix::fs::OFlags::TMPFILE
                        | rustix::fs::OFlags::WRONLY
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::from_raw_mode(0o666),
                )
            };
            let opened = match open() {
                Err(rustix::io::Errno::NOENT) => {
                    // A new directory (a new origin's chain); replay recreates it if lost.
                    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir.display(), e))?;
                    open()
                }
                other => other,
            };
            match opened {
                Ok(fd) => {
                    let mut file = File::from(fd);
                    file.write_all(bytes)
                        .map_err(|e| StoreError::io(dir.display(), e))?;
                    return Ok(Temp::Unnamed(file));
                }
                Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR) => {
                    // This filesystem has no unnamed files: use named ones from now on.
                    self.unnamed_temps
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => return Err(StoreError::io(dir.display(), e.into())),
            }
        }
        let tmp = self.tmp.join(journal::new_name());
        let written = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| f.write_all(bytes));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::io(tmp.display(), e));
        }
        Ok(Temp::Named(tmp))
    }

    /// Links `tmp` to `dest` unless the name exists (creating its directory if needed).
    fn link(&self, tmp: &Temp, dest: &Path, bytes: &[u8]) -> Result<Linked, StoreError> {
        let mut created_dir = false;
        loop {
            match tmp.link(dest) {
                Ok(()) => return Ok(Linked::Created),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let existing =
                        read_opt(dest)?.ok_or_else(|| StoreError::io(dest.display(), e))?;
                    return Ok(if existing == bytes {
                        Linked::Same(existing)
                    } else {
                        Linked::Other(existing)
                    });
                }
                Err(e) if e.kind() == ErrorKind::NotFound && !created_dir => {
                    // The directory is new (a new origin's chain); replay recreates it if lost.
                    let parent = dest.parent().unwrap_or(&self.root);
                    fs::create_dir_all(parent).map_err(|e| StoreError::io(parent.display(), e))?;
                    created_dir = true;
                }
                Err(e) => return Err(StoreError::io(dest.display(), e)),
            }
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

/// What linking a temp file to its final name found.
enum Linked {
    Created,
    /// The name already held these same bytes.
    Same(Bytes),
    /// The name holds other bytes.
    Other(Bytes),
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
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
            Ok(None)
        }
        Err(e) => Err(StoreError::io(path.display(), e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir.display(), e))
}

#[async_trait]
impl SegmentStore for FsStore {
    fn describe(&self) -> String {
        format!("file://{}", self.inner.root.display())
    }

    async fn create(&self, key: &str, bytes: Bytes) -> Result<Option<Bytes>, StoreError> {
        self.write(vec![(key.to_owned(), bytes)]).await
    }

    async fn put_segment(
        &self,
        owner: OwnerId,
        origin: Origin,
        pos: &Position,
        bytes: Bytes,
    ) -> Result<PutOutcome, StoreError> {
        // One journal record for the blob and its entry: one sync instead of two.
        let entry_key = keys::position(owner, origin, pos.first_seq);
        let objects = vec![
            (keys::blob(&pos.hash), bytes),
            (entry_key.clone(), super::encode_position(pos)),
        ];
        let existing = self.write(objects).await?;
        super::position_outcome(&entry_key, pos.first_seq, existing)
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
        if let Some(failed) = self.inner.journal.failure() {
            return Err(failed);
        }
        self.run(|s| {
            fs::metadata(s.root.join("chains"))
                .map(|_| ())
                .map_err(|e| StoreError::io(s.root.display(), e))
        })
        .await
    }
}
