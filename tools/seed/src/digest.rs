//! The store digest heph-seed prints and compares: owner, op log, and the replica's materialised state.

use std::path::Path;

use heph_format::{Origin, OwnerId};
use heph_spoke::{Replica, SystemEnv};

use crate::{SeedError, hex};

/// What "nothing else changed" is checked against: the owner, a digest of every op of every origin (with its
/// seq), and the replica's own digest of nodes, tags, links and log entries ([`Replica::digest`]).
/// The origin is deliberately not part of it (Path A changes exactly that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreDigest {
    /// meta.owner_id.
    pub owner: OwnerId,
    /// Ops held (all origins).
    pub ops: u64,
    /// Every origin with the highest seq held.
    pub origins: Vec<(Origin, u64)>,
    /// blake3 over (origin, seq, postcard(op)) for every op, by origin then seq.
    pub op_log: [u8; 32],
    /// [`Replica::digest`]: the materialised nodes, tags, links and log entries.
    pub state: [u8; 32],
}

impl StoreDigest {
    /// One digest over all parts.
    pub fn combined(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&self.owner.to_bytes());
        h.update(&self.op_log);
        h.update(&self.state);
        *h.finalize().as_bytes()
    }

    /// `owner … ops N origins M digest …` for printing.
    pub fn summary(&self) -> String {
        format!(
            "owner {} · {} ops from {} origin(s) · op log {} · nodes/links {} · digest {}",
            self.owner,
            self.ops,
            self.origins.len(),
            &hex(&self.op_log)[..16],
            &hex(&self.state)[..16],
            &hex(&self.combined())[..16]
        )
    }

    /// The first part that differs from `other`, if any.
    pub fn first_difference(&self, other: &StoreDigest) -> Option<&'static str> {
        if self.owner != other.owner {
            Some("owner_id")
        } else if self.op_log != other.op_log
            || self.ops != other.ops
            || self.origins != other.origins
        {
            Some("the op log")
        } else if self.state != other.state {
            Some("nodes/links/tags/log entries")
        } else {
            None
        }
    }
}

/// Computes the digest of an open replica (reads only).
pub(crate) fn digest_replica(r: &Replica) -> Result<StoreDigest, SeedError> {
    let origins = r.origins()?;
    let mut h = blake3::Hasher::new();
    let mut ops = 0u64;
    for (origin, _) in &origins {
        let mut after = 0u64;
        loop {
            let page = r.ops_since(*origin, after, 10_000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for s in &page {
                h.update(&s.origin.to_bytes());
                h.update(&s.seq.to_le_bytes());
                let bytes = postcard::to_allocvec(&s.op)
                    .map_err(|e| SeedError::Hub(format!("encoding an op: {e}")))?;
                h.update(&(bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
                ops += 1;
            }
        }
    }
    Ok(StoreDigest {
        owner: r.owner(),
        ops,
        origins,
        op_log: *h.finalize().as_bytes(),
        state: r.digest()?,
    })
}

/// Opens a private scratch copy of `path` (SQLite backup API) as a replica. The scratch directory is
/// removed when the returned guard drops. The store at `path` is only read.
pub(crate) fn scratch_replica(path: &Path) -> Result<(tempfile::TempDir, Replica), SeedError> {
    let dir = tempfile::Builder::new()
        .prefix("heph-seed-")
        .tempdir()
        .map_err(crate::io_err("creating a scratch directory for", path))?;
    let copy = dir.path().join("scratch.db");
    crate::ops::backup_to(path, &copy)?;
    let copy_str = copy
        .to_str()
        .ok_or_else(|| SeedError::NonUtf8Path(copy.clone()))?;
    let r = Replica::open(copy_str, &SystemEnv)?;
    Ok((dir, r))
}

/// The digest of the store at `path`, computed on a scratch copy (the store itself is only read).
pub fn digest_of(path: &Path) -> Result<StoreDigest, SeedError> {
    crate::ops::check_heph_store(path)?;
    let (_dir, r) = scratch_replica(path)?;
    digest_replica(&r)
}
