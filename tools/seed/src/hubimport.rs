//! hub-import: write a device's whole op log into a hub store as proper segment chains, one per origin.
//!
//! Segments are packed exactly as the spoke's own push does (`SyncOptions::default()`: up to
//! `max_segment_ops` contiguous ops, halved while the encoding exceeds `max_segment_bytes`), so when the
//! device later pushes its own chain the hub sees byte-identical segments: idempotent, never a fork.
//! Pushes go through the hub's [`SegmentLog`], which enforces hashes, owner and chain rules. An import that
//! stops half-way (network, disk) leaves whole segments only and is resumed by running it again: each origin
//! continues from the hub's head after checking that the hub's head segment holds the same ops as the device.

use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use heph_format::{
    ChainHead, DecodeLimits, Origin, OwnerId, SegmentId, decode_segment, encode_segment,
};
use heph_hub::log::LogOptions;
use heph_hub::store::S3Options;
use heph_hub::{SegmentLog, open_store};
use heph_spoke::Replica;

use crate::SeedError;
use crate::digest::scratch_replica;

/// One origin's import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginImport {
    /// The origin.
    pub origin: Origin,
    /// The device's last seq for it.
    pub device_last_seq: u64,
    /// The hub's last seq before the import (0: none).
    pub hub_last_seq_before: u64,
    /// Segments written.
    pub segments: u64,
    /// Ops written.
    pub ops: u64,
    /// The hub's head after the import.
    pub head: Option<ChainHead>,
}

/// What `hub-import` did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The device store.
    pub from: PathBuf,
    /// The hub store.
    pub store: String,
    /// The owner.
    pub owner: OwnerId,
    /// Per origin.
    pub origins: Vec<OriginImport>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "imported {} into {} (owner {})",
            self.from.display(),
            self.store,
            self.owner
        )?;
        for o in &self.origins {
            writeln!(
                f,
                "  origin {}: device seq {}, hub had {}, wrote {} segment(s) / {} op(s), hub head now seq {}",
                o.origin,
                o.device_last_seq,
                o.hub_last_seq_before,
                o.segments,
                o.ops,
                o.head.map_or(0, |h| h.last_seq)
            )?;
        }
        writeln!(
            f,
            "  every origin's head on the hub covers the device's op log"
        )
    }
}

fn hub_err(e: impl fmt::Display) -> SeedError {
    SeedError::Hub(e.to_string())
}

/// Checks that the hub's head segment for `origin` holds the same ops as the device at those seqs.
async fn check_hub_head(
    log: &SegmentLog,
    r: &Replica,
    origin: Origin,
    head: &ChainHead,
) -> Result<(), SeedError> {
    let bytes = log.blob(head.hash).await.map_err(hub_err)?.ok_or_else(|| {
        SeedError::Hub(format!(
            "the hub store lacks the blob of its own head {}",
            head.hash
        ))
    })?;
    let seg = decode_segment(&bytes, &DecodeLimits::DEFAULT).map_err(hub_err)?;
    let first = seg.header.first_seq;
    let ours = r.ops_since(origin, first - 1, seg.ops.len())?;
    for (i, op) in seg.ops.iter().enumerate() {
        let seq = first + i as u64;
        match ours.get(i) {
            Some(s) if s.seq == seq && &s.op == op => {}
            Some(s) if s.seq == seq => {
                return Err(SeedError::HubChainDiffers {
                    origin,
                    seq,
                    detail: "the ops differ".into(),
                });
            }
            _ => {
                return Err(SeedError::HubChainDiffers {
                    origin,
                    seq,
                    detail: "the device does not hold this op".into(),
                });
            }
        }
    }
    Ok(())
}

/// Imports one origin from `after` (the hub's head) to the device's last seq.
async fn import_origin(
    log: &SegmentLog,
    r: &Replica,
    owner: OwnerId,
    origin: Origin,
    mut head: Option<ChainHead>,
    out: &mut OriginImport,
) -> Result<(), SeedError> {
    let opts = heph_spoke::sync::SyncOptions::default();
    let max_ops = opts.max_segment_ops.max(1);
    let mut batch = max_ops;
    loop {
        let after = head.map_or(0, |h| h.last_seq);
        let ops = r.ops_since(origin, after, batch)?;
        let Some(first) = ops.first() else {
            return Ok(());
        };
        if first.seq != after + 1 {
            return Err(SeedError::HubChainDiffers {
                origin,
                seq: after + 1,
                detail: format!(
                    "the device's op log has a gap (next held seq is {})",
                    first.seq
                ),
            });
        }
        let plain: Vec<_> = ops
            .iter()
            .enumerate()
            .take_while(|(i, s)| s.seq == first.seq + *i as u64)
            .map(|(_, s)| s.op.clone())
            .collect();
        let prev: Option<SegmentId> = head.map(|h| h.hash);
        let seg = encode_segment(owner, origin, first.seq, prev, &plain)?;
        if seg.bytes.len() > opts.max_segment_bytes && plain.len() > 1 {
            batch = (plain.len() / 2).max(1);
            continue;
        }
        let pushed = log
            .push(origin, first.seq, seg.id, Bytes::from(seg.bytes))
            .await
            .map_err(hub_err)?;
        if pushed.created {
            out.segments += 1;
            out.ops += plain.len() as u64;
        }
        head = Some(pushed.head);
        out.head = head;
        batch = max_ops;
    }
}

/// `heph-seed hub-import --from DEVICE.db --store URL`. Reads the device store (a consistent snapshot; a
/// running daemon may keep it open) and writes every origin's chain into the hub store.
pub async fn hub_import(
    from: &Path,
    store_url: &str,
    s3: &S3Options,
) -> Result<ImportReport, SeedError> {
    crate::ops::check_heph_store(from)?;
    let (_dir, r) = scratch_replica(from)?;
    let owner = r.owner();
    let store = open_store(store_url, s3).await.map_err(hub_err)?;
    let describe = store.describe();
    let log = SegmentLog::open(store, Some(owner), LogOptions::default())
        .await
        .map_err(hub_err)?;
    let heads = log.heads().await.map_err(hub_err)?;
    let mut origins = Vec::new();
    for (origin, device_last_seq) in r.origins()? {
        let hub_head = heads.origins.get(&origin).copied();
        let mut out = OriginImport {
            origin,
            device_last_seq,
            hub_last_seq_before: hub_head.map_or(0, |h| h.last_seq),
            segments: 0,
            ops: 0,
            head: hub_head,
        };
        if let Some(h) = &hub_head {
            check_hub_head(&log, &r, origin, h).await?;
        }
        if out.hub_last_seq_before < device_last_seq {
            import_origin(&log, &r, owner, origin, hub_head, &mut out).await?;
        }
        origins.push(out);
    }
    // End by checking that the hub holds every origin's head (no silent partial import).
    let heads = log.heads().await.map_err(hub_err)?;
    for o in &origins {
        let hub_seq = heads.origins.get(&o.origin).map_or(0, |h| h.last_seq);
        if hub_seq < o.device_last_seq {
            return Err(SeedError::Hub(format!(
                "after the import the hub holds origin {} only up to seq {hub_seq}, the device up to {}",
                o.origin, o.device_last_seq
            )));
        }
    }
    Ok(ImportReport {
        from: from.to_path_buf(),
        store: describe,
        owner,
        origins,
    })
}
