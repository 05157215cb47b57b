//! The segment log: chain rules at the door, heads derived from the store, and their cache.
//!
//! [`SegmentLog`] sits on any [`SegmentStore`]. It reads only segment headers
//! ([`heph_format::decode_header`]); payloads are sealed bytes. Position entries are immutable, so
//! it caches every entry it has seen forever and only asks the store for entries after its cached
//! head (at most once per revalidation interval for reads, and always before refusing a push as a
//! gap). Any number of logs (hubs) over one store derive the same heads.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use heph_format::chain::{ChainError, ChainHead, check_continues};
use heph_format::{DecodeLimits, FormatError, Origin, OwnerId, SegmentId, decode_header};
use tokio::sync::watch;

use crate::store::{Position, PutOutcome, SegmentStore, StoreError};

/// How a [`SegmentLog`] behaves.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    /// Decode limits applied to pushed segments (the size limit gives `413`).
    pub limits: DecodeLimits,
    /// How long cached heads are trusted before the store is asked for newer entries.
    pub revalidate: Duration,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            limits: DecodeLimits::DEFAULT,
            revalidate: Duration::from_millis(100),
        }
    }
}

/// A successful push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOutcome {
    /// True when this push stored the segment; false for an identical re-push.
    pub created: bool,
    /// The segment's position entry.
    pub position: Position,
    /// The origin's head after the push.
    pub head: ChainHead,
}

/// Why a push was refused. Nothing is stored for any of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The body does not hash to the claimed id.
    #[error("segment hash mismatch: claimed {claimed}, body hashes to {actual}")]
    HashMismatch {
        /// The id the client claimed.
        claimed: SegmentId,
        /// The body's actual hash.
        actual: SegmentId,
    },
    /// The body is larger than the segment size limit.
    #[error("segment of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The body length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The header does not decode.
    #[error("malformed segment: {0}")]
    Malformed(FormatError),
    /// The URL names another origin or position than the header.
    #[error(
        "URL names origin {url_origin} first_seq {url_first_seq}, segment header says origin {origin} first_seq {first_seq}"
    )]
    UrlMismatch {
        /// Origin in the URL.
        url_origin: Origin,
        /// first_seq in the URL.
        url_first_seq: u64,
        /// Origin in the header.
        origin: Origin,
        /// first_seq in the header.
        first_seq: u64,
    },
    /// The segment belongs to another owner than the hub's.
    #[error("segment owner {found} is not this hub's owner {hub_owner}")]
    WrongOwner {
        /// The hub's owner.
        hub_owner: OwnerId,
        /// The segment's owner.
        found: OwnerId,
    },
    /// The segment starts after the position the chain expects next.
    #[error("gap: chain expects first_seq {expected}, segment starts at {found}")]
    Gap {
        /// The position the chain expects next.
        expected: u64,
        /// The segment's first_seq.
        found: u64,
        /// The origin's head.
        head: Option<ChainHead>,
    },
    /// The segment is at the expected position but names another previous segment.
    #[error("fork: segment names prev {}, chain head is {}", fmt_id(.claimed), fmt_head(.head))]
    Fork {
        /// The segment's prev.
        claimed: Option<SegmentId>,
        /// The origin's head.
        head: Option<ChainHead>,
    },
    /// A different segment holds the position, or it lies inside the chain.
    #[error("position occupied: chain already holds seq {first_seq} (head at {})", .head.map_or(0, |h| h.last_seq))]
    Occupied {
        /// The segment's first_seq.
        first_seq: u64,
        /// The origin's head.
        head: Option<ChainHead>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn fmt_id(id: &Option<SegmentId>) -> String {
    id.map_or_else(|| "none".to_owned(), |i| i.to_string())
}

fn fmt_head(h: &Option<ChainHead>) -> String {
    h.map_or_else(|| "none".to_owned(), |h| h.hash.to_string())
}

impl PushError {
    /// The stable error code (`docs/protocol.md`).
    pub fn code(&self) -> &'static str {
        match self {
            PushError::HashMismatch { .. } => "hash_mismatch",
            PushError::TooLarge { .. } => "too_large",
            PushError::Malformed(_) => "malformed",
            PushError::UrlMismatch { .. } => "url_mismatch",
            PushError::WrongOwner { .. } => "wrong_owner",
            PushError::Gap { .. } => "gap",
            PushError::Fork { .. } => "fork",
            PushError::Occupied { .. } => "occupied",
            PushError::Store(_) => "store_unavailable",
        }
    }
}

/// Why a log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store already belongs to another owner than the configured one.
    #[error(
        "the store already belongs to owner {stored}, not the configured --owner-id {configured}"
    )]
    OwnerConflict {
        /// The owner recorded in the store.
        stored: OwnerId,
        /// The owner configured.
        configured: OwnerId,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every origin's head, as served by `GET /sync/v1/heads`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heads {
    /// The hub's owner, once known.
    pub owner: Option<OwnerId>,
    /// Digest of all heads: 32 hex digits, equal for equal heads on every hub.
    pub tag: String,
    /// Head per origin, ascending.
    pub origins: BTreeMap<Origin, ChainHead>,
}

/// Totals over the cached chains (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Segments in all known chains.
    pub segments: u64,
    /// Bytes of those segments.
    pub bytes: u64,
}

#[derive(Debug, Default)]
struct Chain {
    positions: Vec<Position>,
    bytes: u64,
}

impl Chain {
    fn head(&self) -> Option<ChainHead> {
        self.positions.last().map(|p| ChainHead {
            last_seq: p.last_seq,
            hash: p.hash,
            segments: self.positions.len() as u64,
        })
    }

    fn next_seq(&self) -> u64 {
        self.positions.last().map_or(1, |p| p.last_seq + 1)
    }

    fn at(&self, first_seq: u64) -> Option<&Position> {
        self.positions
            .binary_search_by_key(&first_seq, |p| p.first_seq)
            .ok()
            .map(|i| &self.positions[i])
    }

    /// Appends `p` if it continues the chain; returns whether it did.
    fn append(&mut self, p: Position) -> bool {
        let prev_ok = match (self.positions.last(), p.prev) {
            (None, None) => true,
            (Some(last), Some(prev)) => last.hash == prev,
            _ => false,
        };
        if p.first_seq != self.next_seq() || !prev_ok {
            return false;
        }
        self.bytes += p.len;
        self.positions.push(p);
        true
    }
}

/// Chain rules and heads over one store. Cheap to share: wrap in an `Arc`.
#[derive(Debug)]
pub struct SegmentLog {
    store: Arc<dyn SegmentStore>,
    opts: LogOptions,
    owner: Mutex<Option<OwnerId>>,
    chains: Mutex<BTreeMap<Origin, Chain>>,
    push_locks: Mutex<HashMap<Origin, Arc<tokio::sync::Mutex<()>>>>,
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    changes: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SegmentLog {
    /// Opens a log over `store`. With `owner`, the store is claimed for that owner (and opening
    /// fails if it already belongs to another); otherwise the owner is whatever the store records,
    /// or the owner of the first segment pushed.
    pub async fn open(
        store: Arc<dyn SegmentStore>,
        owner: Option<OwnerId>,
        opts: LogOptions,
    ) -> Result<SegmentLog, OpenError> {
        let known = match owner {
            Some(configured) => {
                let stored = store.claim_owner(configured).await?;
                if stored != configured {
                    return Err(OpenError::OwnerConflict { stored, configured });
                }
                Some(stored)
            }
            None => store.owner().await?,
        };
        let log = SegmentLog {
            store,
            opts,
            owner: Mutex::new(known),
            chains: Mutex::new(BTreeMap::new()),
            push_locks: Mutex::new(HashMap::new()),
            last_refresh: tokio::sync::Mutex::new(None),
            changes: watch::channel(0).0,
        };
        log.refresh_all().await?;
        *log.last_refresh.lock().await = Some(Instant::now());
        Ok(log)
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn SegmentStore> {
        &self.store
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &LogOptions {
        &self.opts
    }

    /// The hub's owner, once known.
    pub fn owner(&self) -> Option<OwnerId> {
        *lock(&self.owner)
    }

    /// A receiver that changes whenever this log sees heads change (local pushes immediately,
    /// other hubs' pushes when a refresh finds them).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn bump(&self) {
        self.changes.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Totals over the cached chains.
    pub fn totals(&self) -> Totals {
        let chains = lock(&self.chains);
        let mut t = Totals::default();
        for c in chains.values() {
            t.segments += c.positions.len() as u64;
            t.bytes += c.bytes;
        }
        t
    }

    /// Learns the owner from the store if not yet known.
    async fn learn_owner(&self) -> Result<Option<OwnerId>, StoreError> {
        if let Some(o) = self.owner() {
            return Ok(Some(o));
        }
        let stored = self.store.owner().await?;
        if let Some(o) = stored {
            *lock(&self.owner) = Some(o);
        }
        Ok(stored)
    }

    /// Asks the store for every origin and every entry after the cached heads.
    async fn refresh_all(&self) -> Result<(), StoreError> {
        let Some(owner) = self.learn_owner().await? else {
            return Ok(());
        };
        let origins = self.store.list_origins(owner).await?;
        futures::stream::iter(origins)
            .map(|o| self.refresh_origin(owner, o))
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Reads entries of `origin` after the cached head into the cache.
    async fn refresh_origin(&self, owner: OwnerId, origin: Origin) -> Result<(), StoreError> {
        let next = lock(&self.chains).get(&origin).map(Chain::next_seq);
        let mut found = Vec::new();
        match next {
            None | Some(1) => {
                // Cold: list the whole chain, then read the entries (immutable) concurrently.
                let seqs = self
                    .store
                    .list_positions(owner, origin, 0, usize::MAX)
                    .await?;
                let entries: Vec<Option<Position>> = futures::stream::iter(seqs)
                    .map(|s| self.store.get_position(owner, origin, s))
                    .buffered(16)
                    .try_collect()
                    .await?;
                found.extend(entries.into_iter().flatten());
            }
            Some(mut next) => {
                while let Some(p) = self.store.get_position(owner, origin, next).await? {
                    next = p.last_seq + 1;
                    found.push(p);
                }
            }
        }
        let mut chains = lock(&self.chains);
        let chain = chains.entry(origin).or_default();
        let mut changed = false;
        for p in found {
            if p.first_seq < chain.next_seq() {
                continue; // already cached (another task appended it meanwhile)
            }
            if !chain.append(p) {
                tracing::warn!(
                    %origin, first_seq = p.first_seq,
                    "store holds a position entry that does not continue the chain; ignoring it"
                );
                break;
            }
            changed = true;
        }
        drop(chains);
        if changed {
            self.bump();
        }
        Ok(())
    }

    /// Refreshes from the store unless the cache was revalidated within the interval.
    pub async fn revalidate(&self) -> Result<(), StoreError> {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.opts.revalidate) {
            return Ok(());
        }
        self.refresh_all().await?;
        *last = Some(Instant::now());
        Ok(())
    }

    fn snapshot(&self) -> Heads {
        let chains = lock(&self.chains);
        let origins: BTreeMap<Origin, ChainHead> = chains
            .iter()
            .filter_map(|(o, c)| c.head().map(|h| (*o, h)))
            .collect();
        drop(chains);
        let mut hasher = blake3::Hasher::new();
        for (o, h) in &origins {
            hasher.update(&o.to_bytes());
            hasher.update(&h.last_seq.to_le_bytes());
            hasher.update(&h.hash.0);
        }
        let digest = hasher.finalize();
        let tag = digest.as_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Heads {
            owner: self.owner(),
            tag,
            origins,
        }
    }

    /// Every origin's head (revalidated per the interval).
    pub async fn heads(&self) -> Result<Heads, StoreError> {
        self.revalidate().await?;
        Ok(self.snapshot())
    }

    /// The heads as currently cached, without asking the store.
    pub fn cached_heads(&self) -> Heads {
        self.snapshot()
    }

    /// Up to `limit` positions of `origin` with `last_seq > after`, whether more follow, and the
    /// origin's head.
    pub async fn segments(
        &self,
        origin: Origin,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Position>, bool, Option<ChainHead>), StoreError> {
        self.revalidate().await?;
        let chains = lock(&self.chains);
        let Some(chain) = chains.get(&origin) else {
            return Ok((Vec::new(), false, None));
        };
        let start = chain.positions.partition_point(|p| p.last_seq <= after);
        let rest = &chain.positions[start..];
        let take = rest.len().min(limit);
        Ok((rest[..take].to_vec(), rest.len() > take, chain.head()))
    }

    /// The bytes of segment `id`, if stored.
    pub async fn blob(&self, id: SegmentId) -> Result<Option<Bytes>, StoreError> {
        self.store.get_blob(id).await
    }

    fn push_lock(&self, origin: Origin) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(lock(&self.push_locks).entry(origin).or_default())
    }

    fn head_of(&self, origin: Origin) -> Option<ChainHead> {
        lock(&self.chains).get(&origin).and_then(Chain::head)
    }

    /// Pushes one segment of `origin` at `first_seq` whose id is claimed to be `claimed`.
    ///
    /// Checks the hash, the header, the URL, the owner and the chain rules; stores the blob and
    /// then the position entry (create-if-absent). See `docs/protocol.md` for the order of checks.
    pub async fn push(
        &self,
        origin: Origin,
        first_seq: u64,
        claimed: SegmentId,
        bytes: Bytes,
    ) -> Result<PushOutcome, PushError> {
        let max = self.opts.limits.max_segment_bytes;
        if bytes.len() as u64 > max {
            return Err(PushError::TooLarge {
                len: bytes.len() as u64,
                max,
            });
        }
        let actual = SegmentId::of(&bytes);
        if actual != claimed {
            return Err(PushError::HashMismatch { claimed, actual });
        }
        let header = decode_header(&bytes, &self.opts.limits).map_err(|e| match e {
            FormatError::SegmentTooLarge { len, max } => PushError::TooLarge { len, max },
            other => PushError::Malformed(other),
        })?;
        if header.origin != origin || header.first_seq != first_seq {
            return Err(PushError::UrlMismatch {
                url_origin: origin,
                url_first_seq: first_seq,
                origin: header.origin,
                first_seq: header.first_seq,
            });
        }
        let owner = match self.owner() {
            Some(o) => o,
            None => {
                let stored = self.store.claim_owner(header.owner).await?;
                *lock(&self.owner) = Some(stored);
                stored
            }
        };
        if header.owner != owner {
            return Err(PushError::WrongOwner {
                hub_owner: owner,
                found: header.owner,
            });
        }

        let origin_lock = self.push_lock(origin);
        let _serial = origin_lock.lock().await;
        if !lock(&self.chains).contains_key(&origin) {
            self.refresh_origin(owner, origin).await?;
        }
        let mut refreshed = false;
        loop {
            let (head, existing) = {
                let chains = lock(&self.chains);
                let chain = chains.get(&origin);
                (
                    chain.and_then(Chain::head),
                    chain.and_then(|c| c.at(first_seq).copied()),
                )
            };
            if let Some(h) = head
                && first_seq <= h.last_seq
            {
                return match existing {
                    Some(p) if p.hash == claimed => Ok(PushOutcome {
                        created: false,
                        position: p,
                        head: h,
                    }),
                    _ => Err(PushError::Occupied { first_seq, head }),
                };
            }
            match check_continues(head.as_ref(), &header) {
                Ok(()) => break,
                Err(ChainError::Gap { .. }) if !refreshed => {
                    refreshed = true;
                    self.refresh_origin(owner, origin).await?;
                }
                Err(ChainError::Gap { expected, found }) => {
                    return Err(PushError::Gap {
                        expected,
                        found,
                        head,
                    });
                }
                Err(ChainError::Occupied { .. }) => {
                    return Err(PushError::Occupied { first_seq, head });
                }
                Err(_) => {
                    return Err(PushError::Fork {
                        claimed: header.prev,
                        head,
                    });
                }
            }
        }

        let position = Position {
            first_seq,
            last_seq: header.last_seq(),
            hash: claimed,
            len: bytes.len() as u64,
            prev: header.prev,
        };
        match self
            .store
            .put_segment(owner, origin, &position, bytes)
            .await?
        {
            PutOutcome::Created => {
                let head = {
                    let mut chains = lock(&self.chains);
                    let chain = chains.entry(origin).or_default();
                    chain.append(position);
                    chain.head()
                };
                self.bump();
                let head = head.ok_or_else(|| {
                    StoreError::Backend("stored segment missing from the chain cache".into())
                })?;
                Ok(PushOutcome {
                    created: true,
                    position,
                    head,
                })
            }
            PutOutcome::Exists(other) => {
                // Another hub won this position meanwhile.
                self.refresh_origin(owner, origin).await?;
                let head = self.head_of(origin);
                match head {
                    Some(h) if other.hash == claimed => Ok(PushOutcome {
                        created: false,
                        position: other,
                        head: h,
                    }),
                    _ => Err(PushError::Occupied { first_seq, head }),
                }
            }
        }
    }
}
