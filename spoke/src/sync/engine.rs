//! The sync algorithm: push this replica's chain, pull every other origin's chain, verify, apply with the
//! cursor in the same transaction, and finish only when the hub's heads equal what the replica holds.
//!
//! See `docs/sync.md` for the rules (cursors, fork/clone detection, owner adoption) in prose.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use heph_format::{
    ChainError, ChainHead, DecodeLimits, Origin, OwnerId, SegmentId, check_continues,
    decode_segment, encode_segment,
};
use serde::{Deserialize, Serialize};

use heph_format::chain::{advance, check_owner};

use super::hub::{HubClient, HubError, HubHeads, PushOutcome};
use crate::env::Env;
use crate::error::SpokeError;
use crate::replica::{Replica, StoredOp, SyncCursor};

/// The fix printed whenever this replica's origin turns out to be shared with another copy.
pub const RESET_ORIGIN_FIX: &str = "this store was copied from (or restored over) another device that uses the same origin; \
     stop the daemon and run `heph-seed reset-origin --data-dir <this data dir>` to give this copy a fresh origin, \
     then sync again (local ops are kept)";

/// Why a sync did not finish. Nothing already applied is undone; the next sync resumes from the cursors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The hub could not be used (network, refusal, garbage).
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] SpokeError),
    /// The replica holds data of another owner than the hub's; nothing was pushed or changed.
    #[error(
        "this store belongs to owner {ours} but the hub {hub_url} serves owner {hub}; nothing was pushed or changed \
         (use a store of owner {hub}, e.g. `heph-seed init --owner-id {hub}`, or point --hub-url at your own hub)"
    )]
    OwnerMismatch {
        /// The replica's owner.
        ours: OwnerId,
        /// The hub's owner.
        hub: OwnerId,
        /// The hub.
        hub_url: String,
    },
    /// The hub holds a different segment at one of this replica's own positions: the origin was cloned.
    #[error(
        "origin {origin} is used by another copy of this store: the hub holds different ops at seq {seq} of this \
         replica's own chain ({detail}); pushing stopped, local ops are kept. Fix: {RESET_ORIGIN_FIX}"
    )]
    OriginCloned {
        /// This replica's origin.
        origin: Origin,
        /// The first position that differs.
        seq: u64,
        /// What was found.
        detail: String,
    },
    /// A segment from the hub failed verification; it was not applied.
    #[error(
        "refused a segment of origin {origin} from the hub: {reason}; nothing of it was applied"
    )]
    BadSegment {
        /// The origin the segment claims.
        origin: Origin,
        /// What was wrong (hash, header, owner, chain continuity).
        reason: String,
    },
    /// The hub holds less of a chain than this replica already took from it (a hub restored from an old
    /// backup, or a different hub at the same URL).
    #[error(
        "the hub holds less of origin {origin}'s chain than this replica already has (hub: {hub}, here: {ours}); \
         refusing to continue that chain"
    )]
    HubBehind {
        /// The origin.
        origin: Origin,
        /// What the hub has.
        hub: String,
        /// What the replica has.
        ours: String,
    },
    /// After several rounds the hub's heads still differ from what the replica holds.
    #[error(
        "sync incomplete: the hub's heads still differ from this replica's after {rounds} rounds: {detail}"
    )]
    Incomplete {
        /// Rounds tried.
        rounds: u32,
        /// Which origins differ.
        detail: String,
    },
}

impl SyncError {
    /// Whether retrying later may succeed on its own.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Hub(e) => e.is_transient(),
            SyncError::Incomplete { .. } => true,
            _ => false,
        }
    }

    /// Whether the failure is an authentication/authorisation failure.
    pub fn is_auth(&self) -> bool {
        matches!(self, SyncError::Hub(e) if e.is_auth())
    }

    /// A short stable code for status reports.
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::Hub(HubError::Unreachable { .. }) => "unreachable",
            SyncError::Hub(HubError::Unauthorized { .. }) | SyncError::Hub(HubError::Token(_)) => {
                "unauthorized"
            }
            SyncError::Hub(HubError::Forbidden { .. }) => "forbidden",
            SyncError::Hub(HubError::BadUrl { .. }) => "bad_url",
            SyncError::Hub(HubError::Protocol { .. }) => "protocol",
            SyncError::Hub(HubError::Truncated { .. }) => "truncated",
            SyncError::Hub(HubError::Unavailable { .. }) => "unavailable",
            SyncError::Hub(_) => "hub_refused",
            SyncError::Store(_) => "store",
            SyncError::OwnerMismatch { .. } => "owner_mismatch",
            SyncError::OriginCloned { .. } => "origin_cloned",
            SyncError::BadSegment { .. } => "bad_segment",
            SyncError::HubBehind { .. } => "hub_behind",
            SyncError::Incomplete { .. } => "incomplete",
        }
    }
}

/// Bring-up progress (an indicatif bar natively, a message to the UI in the browser).
pub trait Progress {
    /// About `total_ops` ops are about to be downloaded.
    fn begin(&mut self, _total_ops: u64) {}
    /// `ops` more ops were applied.
    fn advance(&mut self, _ops: u64) {}
    /// Done (successfully or not).
    fn end(&mut self) {}
}

/// A progress sink that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Knobs of one sync.
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    /// Most ops packed into one pushed segment.
    pub max_segment_ops: usize,
    /// Largest encoded segment pushed (bytes); bigger batches are split.
    pub max_segment_bytes: usize,
    /// Pull rounds before giving up on matching the hub's heads (others may keep pushing meanwhile).
    pub max_rounds: u32,
    /// Limits for decoding segments from the hub.
    pub limits: DecodeLimits,
}

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            max_segment_ops: 10_000,
            max_segment_bytes: 8 << 20,
            max_rounds: 5,
            limits: DecodeLimits::DEFAULT,
        }
    }
}

/// What one successful sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Segments pushed (new on the hub).
    pub pushed_segments: u64,
    /// Ops in them.
    pub pushed_ops: u64,
    /// Segments pulled and applied.
    pub pulled_segments: u64,
    /// Ops in them.
    pub pulled_ops: u64,
    /// Set when this fresh store adopted the hub's owner.
    pub adopted_owner: Option<OwnerId>,
    /// The hub's heads tag the replica now matches.
    pub tag: String,
    /// The heads the replica now matches (for status: per-origin lag is computed against these).
    pub heads: HubHeads,
}

fn cursor_head(c: &SyncCursor) -> Option<ChainHead> {
    c.head_hash.map(|hash| ChainHead {
        last_seq: c.last_seq,
        hash,
        segments: c.segments,
    })
}

fn cursor_of(origin: Origin, h: &ChainHead) -> SyncCursor {
    SyncCursor {
        origin,
        last_seq: h.last_seq,
        head_hash: Some(h.hash),
        segments: h.segments,
    }
}

fn zero_cursor(origin: Origin) -> SyncCursor {
    SyncCursor {
        origin,
        last_seq: 0,
        head_hash: None,
        segments: 0,
    }
}

fn describe(h: Option<&ChainHead>) -> String {
    h.map_or_else(
        || "nothing".to_owned(),
        |h| {
            format!(
                "seq {} in {} segments, head {}",
                h.last_seq, h.segments, h.hash
            )
        },
    )
}

/// Whether the store is fresh: no ops and no sync state (it may still adopt another owner).
pub fn is_fresh(replica: &Replica) -> Result<bool, SpokeError> {
    Ok(replica.op_count()? == 0 && replica.all_sync_states()?.is_empty())
}

/// Makes a fresh, empty store belong to `owner` (reopening it). Refuses a store that holds anything.
pub fn adopt_owner(
    cell: &RefCell<Replica>,
    owner: OwnerId,
    env: &dyn Env,
) -> Result<(), SyncError> {
    let mut r = cell.borrow_mut();
    if r.owner() == owner {
        return Ok(());
    }
    if !is_fresh(&r)? {
        return Err(SyncError::Store(SpokeError::Invalid(format!(
            "the store holds data of owner {}; it cannot adopt owner {owner}",
            r.owner()
        ))));
    }
    let path = r.path().to_owned();
    let fresh = if path == ":memory:" {
        Replica::open_in_memory_with_owner(owner, env)?
    } else {
        r.connection()
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'owner_id'",
                [owner.to_string()],
            )
            .map_err(SpokeError::Sqlite)?;
        Replica::open_with_owner(&path, owner, env)?
    };
    *r = fresh;
    Ok(())
}

/// Checks the hub's view of this replica's own chain against what it pushed; fast-forwards the push
/// cursor when the hub holds exactly ops this replica has (a push whose answer was lost), and reports a
/// clone when it holds anything else.
async fn reconcile_own(
    cell: &RefCell<Replica>,
    hub: &dyn HubClient,
    hub_head: Option<&ChainHead>,
    opts: &SyncOptions,
) -> Result<SyncCursor, SyncError> {
    let (own, cursor) = {
        let r = cell.borrow();
        let own = r.origin();
        (own, r.sync_state(own)?.unwrap_or_else(|| zero_cursor(own)))
    };
    let Some(h) = hub_head else {
        if cursor.last_seq == 0 {
            return Ok(cursor);
        }
        return Err(SyncError::HubBehind {
            origin: own,
            hub: "nothing".into(),
            ours: describe(cursor_head(&cursor).as_ref()),
        });
    };
    if h.last_seq == cursor.last_seq && Some(h.hash) == cursor.head_hash {
        return Ok(cursor);
    }
    if h.last_seq < cursor.last_seq {
        return Err(SyncError::HubBehind {
            origin: own,
            hub: describe(Some(h)),
            ours: describe(cursor_head(&cursor).as_ref()),
        });
    }
    if h.last_seq == cursor.last_seq {
        return Err(SyncError::OriginCloned {
            origin: own,
            seq: cursor.last_seq,
            detail: format!(
                "the hub's head segment is {}, this replica pushed {}",
                h.hash,
                cursor
                    .head_hash
                    .map_or_else(|| "none".to_owned(), |x| x.to_string())
            ),
        });
    }
    // The hub holds more of our chain than we recorded: verify that every extra op is one we hold.
    let mut head = cursor_head(&cursor);
    let mut after = cursor.last_seq;
    loop {
        let page = hub.list(own, after, 1000).await?;
        for e in &page.segments {
            let bytes = hub.blob(e.hash).await?;
            let bad = |reason: String| SyncError::BadSegment {
                origin: own,
                reason,
            };
            e.hash.verify(&bytes).map_err(|x| bad(x.to_string()))?;
            let seg = decode_segment(&bytes, &opts.limits).map_err(|x| bad(x.to_string()))?;
            let owner = cell.borrow().owner();
            check_owner(owner, &seg.header).map_err(|x| bad(x.to_string()))?;
            if let Err(x) = check_continues(head.as_ref(), &seg.header) {
                return Err(SyncError::OriginCloned {
                    origin: own,
                    seq: seg.header.first_seq,
                    detail: format!(
                        "the hub's chain does not continue what this replica pushed: {x}"
                    ),
                });
            }
            let local = cell
                .borrow()
                .ops_since(own, seg.header.first_seq - 1, seg.ops.len())?;
            for (i, op) in seg.ops.iter().enumerate() {
                let seq = seg.header.first_seq + i as u64;
                match local.get(i) {
                    Some(l) if l.seq == seq && &l.op == op => {}
                    Some(_) => {
                        return Err(SyncError::OriginCloned {
                            origin: own,
                            seq,
                            detail: "the hub's op at that position is not this replica's op".into(),
                        });
                    }
                    None => {
                        return Err(SyncError::OriginCloned {
                            origin: own,
                            seq,
                            detail: "the hub holds an op at that position this replica never wrote"
                                .into(),
                        });
                    }
                }
            }
            let next = advance(head.as_ref(), &seg.header, e.hash);
            cell.borrow_mut().set_sync_state(&cursor_of(own, &next))?;
            head = Some(next);
            after = next.last_seq;
        }
        if !page.more || page.segments.is_empty() {
            break;
        }
    }
    let c = cell
        .borrow()
        .sync_state(own)?
        .unwrap_or_else(|| zero_cursor(own));
    if c.last_seq != h.last_seq {
        return Err(SyncError::Incomplete {
            rounds: 1,
            detail: format!(
                "the hub's list of origin {own} ended at seq {} but its head is at {}",
                c.last_seq, h.last_seq
            ),
        });
    }
    Ok(c)
}

async fn push_own(
    cell: &RefCell<Replica>,
    hub: &dyn HubClient,
    mut cursor: SyncCursor,
    opts: &SyncOptions,
    report: &mut SyncReport,
) -> Result<SyncCursor, SyncError> {
    let mut batch = opts.max_segment_ops.max(1);
    loop {
        let (owner, ops) = {
            let r = cell.borrow();
            (
                r.owner(),
                r.ops_since(cursor.origin, cursor.last_seq, batch)?,
            )
        };
        let Some(first) = ops.first() else {
            return Ok(cursor);
        };
        if first.seq != cursor.last_seq + 1 {
            return Err(SyncError::Store(SpokeError::Invalid(format!(
                "the op log of this replica's own origin has a gap after seq {} (next held: {})",
                cursor.last_seq, first.seq
            ))));
        }
        let plain: Vec<_> = ops
            .iter()
            .enumerate()
            .take_while(|(i, s)| s.seq == first.seq + *i as u64)
            .map(|(_, s)| s.op.clone())
            .collect();
        let prev = cursor.head_hash;
        let seg = encode_segment(owner, cursor.origin, first.seq, prev, &plain)
            .map_err(SpokeError::Format)?;
        if seg.bytes.len() > opts.max_segment_bytes && plain.len() > 1 {
            batch = (plain.len() / 2).max(1);
            continue;
        }
        let outcome = hub.push(cursor.origin, first.seq, seg.id, &seg.bytes).await;
        match outcome {
            Ok(o) => {
                let head = advance(cursor_head(&cursor).as_ref(), &seg.header, seg.id);
                cursor = cursor_of(cursor.origin, &head);
                cell.borrow_mut().set_sync_state(&cursor)?;
                if o == PushOutcome::Stored {
                    report.pushed_segments += 1;
                    report.pushed_ops += plain.len() as u64;
                }
                batch = opts.max_segment_ops.max(1);
            }
            Err(HubError::Occupied { head, .. }) | Err(HubError::Fork { head, .. }) => {
                return Err(SyncError::OriginCloned {
                    origin: cursor.origin,
                    seq: first.seq,
                    detail: format!(
                        "the hub refused our segment; its head for this origin is {}",
                        describe(head.as_ref())
                    ),
                });
            }
            Err(HubError::Gap { head, .. }) => {
                return Err(SyncError::HubBehind {
                    origin: cursor.origin,
                    hub: describe(head.as_ref()),
                    ours: describe(cursor_head(&cursor).as_ref()),
                });
            }
            Err(HubError::WrongOwner {
                hub_owner: Some(hub_owner),
                ..
            }) => {
                return Err(SyncError::OwnerMismatch {
                    ours: owner,
                    hub: hub_owner,
                    hub_url: hub.describe(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Origins whose held cursor differs from the hub's head. Errors when the hub is behind a held cursor.
fn lagging(
    cell: &RefCell<Replica>,
    heads: &HubHeads,
) -> Result<(BTreeMap<Origin, SyncCursor>, Vec<String>), SyncError> {
    let r = cell.borrow();
    let own = r.origin();
    let held: BTreeMap<Origin, SyncCursor> = r
        .all_sync_states()?
        .into_iter()
        .map(|c| (c.origin, c))
        .collect();
    let mut lag = BTreeMap::new();
    let mut diffs = Vec::new();
    for (o, h) in &heads.origins {
        let c = held.get(o).cloned().unwrap_or_else(|| zero_cursor(*o));
        if c.last_seq == h.last_seq && c.head_hash == Some(h.hash) && c.segments == h.segments {
            continue;
        }
        if *o == own {
            diffs.push(format!(
                "own origin {o}: hub {}, pushed {}",
                describe(Some(h)),
                describe(cursor_head(&c).as_ref())
            ));
            continue;
        }
        if c.last_seq > h.last_seq || (c.last_seq == h.last_seq && c.last_seq > 0) {
            return Err(SyncError::HubBehind {
                origin: *o,
                hub: describe(Some(h)),
                ours: describe(cursor_head(&c).as_ref()),
            });
        }
        diffs.push(format!(
            "{o}: hub {}, held {}",
            describe(Some(h)),
            describe(cursor_head(&c).as_ref())
        ));
        lag.insert(*o, c);
    }
    // A chain held here that the hub no longer has at all.
    for (o, c) in &held {
        if *o != own && c.last_seq > 0 && !heads.origins.contains_key(o) {
            return Err(SyncError::HubBehind {
                origin: *o,
                hub: "nothing".into(),
                ours: describe(cursor_head(c).as_ref()),
            });
        }
    }
    Ok((lag, diffs))
}

/// Pulls the chains of `lag` through one bulk stream, verifying and applying segment by segment.
async fn pull(
    cell: &RefCell<Replica>,
    hub: &dyn HubClient,
    heads: &HubHeads,
    lag: BTreeMap<Origin, SyncCursor>,
    opts: &SyncOptions,
    progress: &mut dyn Progress,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let total: u64 = lag
        .iter()
        .map(|(o, c)| {
            heads
                .origins
                .get(o)
                .map_or(0, |h| h.last_seq.saturating_sub(c.last_seq))
        })
        .sum();
    progress.begin(total);
    // A pull of more than one batch is a bulk load (see `Replica::set_bulk_apply`).
    let bulk = total > APPLY_BATCH_OPS as u64;
    if bulk {
        cell.borrow_mut().set_bulk_apply(true)?;
    }
    let pulled = pull_stream(cell, hub, lag, opts, progress, report).await;
    // Back to normal mode whether or not the pull failed; the pull's own error comes first.
    let restored = if bulk {
        cell.borrow_mut().set_bulk_apply(false)
    } else {
        Ok(())
    };
    pulled?;
    Ok(restored?)
}

/// The stream part of [`pull`].
async fn pull_stream(
    cell: &RefCell<Replica>,
    hub: &dyn HubClient,
    mut lag: BTreeMap<Origin, SyncCursor>,
    opts: &SyncOptions,
    progress: &mut dyn Progress,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let after: Vec<(Origin, u64)> = lag
        .iter()
        .filter(|(_, c)| c.last_seq > 0)
        .map(|(o, c)| (*o, c.last_seq))
        .collect();
    let only: Vec<Origin> = lag.keys().copied().collect();
    let (owner, own) = {
        let r = cell.borrow();
        (r.owner(), r.origin())
    };
    let mut stream = hub.stream(&after, &only).await?;
    let wanted: BTreeSet<Origin> = only.iter().copied().collect();
    let mut batch = PullBatch::default();
    let received: Result<(), SyncError> = async {
        while let Some((id, bytes)) = stream.next_segment().await? {
            let claimed = heph_format::decode_header(&bytes, &opts.limits)
                .map(|h| h.origin)
                .unwrap_or_default();
            let bad = |reason: String| SyncError::BadSegment {
                origin: claimed,
                reason,
            };
            id.verify(&bytes).map_err(|e| bad(e.to_string()))?;
            let seg = decode_segment(&bytes, &opts.limits).map_err(|e| bad(e.to_string()))?;
            let origin = seg.header.origin;
            if origin == own || !wanted.contains(&origin) {
                return Err(bad(
                    "the hub sent a segment of an origin that was not asked for".into(),
                ));
            }
            check_owner(owner, &seg.header).map_err(|e| bad(e.to_string()))?;
            let Some(cursor) = lag.get(&origin) else {
                return Err(bad(
                    "the hub sent a segment of an origin that was not asked for".into(),
                ));
            };
            if seg.header.last_seq() <= cursor.last_seq {
                // Already held (the hub ignored `after`): nothing to do.
                continue;
            }
            let head = cursor_head(cursor);
            check_continues(head.as_ref(), &seg.header).map_err(|e| match e {
                ChainError::Gap { .. } | ChainError::Fork { .. } | ChainError::Occupied { .. } => {
                    bad(format!(
                        "chain continuity: {e} (this replica holds {})",
                        describe(head.as_ref())
                    ))
                }
                other => bad(other.to_string()),
            })?;
            let next = cursor_of(origin, &advance(head.as_ref(), &seg.header, id));
            let first = seg.header.first_seq;
            batch
                .ops
                .extend(seg.ops.into_iter().enumerate().map(|(i, op)| StoredOp {
                    origin,
                    seq: first + i as u64,
                    op,
                }));
            batch.cursors.push(next.clone());
            batch.segments += 1;
            lag.insert(origin, next);
            if batch.ops.len() >= APPLY_BATCH_OPS {
                batch.apply(cell, progress, report)?;
            }
        }
        Ok(())
    }
    .await;
    // Segments verified before a failure are kept; then the failure is reported.
    let applied = batch.apply(cell, progress, report);
    received.and(applied)
}

/// Verified segments are applied this many ops at a time (at least one segment), each batch with its
/// cursors in one transaction: fewer, larger commits, and one materialisation per node per batch.
pub const APPLY_BATCH_OPS: usize = 20_000;

/// Verified segments waiting to be applied.
#[derive(Default)]
struct PullBatch {
    ops: Vec<StoredOp>,
    cursors: Vec<SyncCursor>,
    segments: u64,
}

impl PullBatch {
    fn apply(
        &mut self,
        cell: &RefCell<Replica>,
        progress: &mut dyn Progress,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        if self.segments == 0 {
            return Ok(());
        }
        cell.borrow_mut()
            .apply_with_cursors(&self.ops, &self.cursors)?;
        let n = self.ops.len() as u64;
        report.pulled_segments += self.segments;
        report.pulled_ops += n;
        progress.advance(n);
        *self = PullBatch::default();
        Ok(())
    }
}

/// One complete sync against `hub` (see the module docs). Returns only when the replica holds exactly
/// the hub's heads for every origin (or fails with the reason it does not).
pub async fn sync_once(
    cell: &RefCell<Replica>,
    hub: &dyn HubClient,
    env: &dyn Env,
    opts: &SyncOptions,
    progress: &mut dyn Progress,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    let result = sync_inner(cell, hub, env, opts, progress, &mut report).await;
    progress.end();
    result.map(|()| report)
}

async fn sync_inner(
    cell: &RefCell<Replica>,
    hub: &dyn HubClient,
    env: &dyn Env,
    opts: &SyncOptions,
    progress: &mut dyn Progress,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let mut heads = hub.heads().await?;
    // Owner: adopt the hub's when this store is fresh, refuse when it holds another owner's data.
    let hub_owner = match heads.owner {
        Some(o) => Some(o),
        None => hub.config().await.ok().and_then(|c| c.owner),
    };
    if let Some(hub_owner) = hub_owner {
        let ours = cell.borrow().owner();
        if hub_owner != ours {
            if is_fresh(&cell.borrow())? {
                adopt_owner(cell, hub_owner, env)?;
                report.adopted_owner = Some(hub_owner);
            } else {
                return Err(SyncError::OwnerMismatch {
                    ours,
                    hub: hub_owner,
                    hub_url: hub.describe(),
                });
            }
        }
    }
    let own = cell.borrow().origin();
    for round in 1..=opts.max_rounds {
        let cursor = reconcile_own(cell, hub, heads.origins.get(&own), opts).await?;
        let before = cursor.last_seq;
        let cursor = push_own(cell, hub, cursor, opts, report).await?;
        let (lag, _) = lagging(cell, &heads)?;
        if !lag.is_empty() {
            pull(cell, hub, &heads, lag, opts, progress, report).await?;
        }
        // The finish line: the hub's current heads, compared with what this replica holds.
        heads = hub.heads().await?;
        let (lag, diffs) = lagging(cell, &heads)?;
        if lag.is_empty() && diffs.is_empty() {
            let pending = {
                let r = cell.borrow();
                r.last_seq(own)? > r.sync_state(own)?.map_or(0, |c| c.last_seq)
            };
            if !pending {
                report.tag = heads.tag.clone();
                report.heads = heads;
                return Ok(());
            }
        }
        if round == opts.max_rounds {
            return Err(SyncError::Incomplete {
                rounds: round,
                detail: if diffs.is_empty() {
                    format!(
                        "local ops written after seq {} are not pushed yet",
                        cursor.last_seq.max(before)
                    )
                } else {
                    diffs.join("; ")
                },
            });
        }
    }
    Ok(())
}

/// The id of the segment this replica last pushed (for status displays).
pub fn pushed_head(replica: &Replica) -> Result<Option<SegmentId>, SpokeError> {
    Ok(replica
        .sync_state(replica.origin())?
        .and_then(|c| c.head_hash))
}
