//! The in-memory segment store: a map of keys to bytes, for tests and benchmarks.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use heph_format::{Origin, OwnerId, SegmentId};

use super::{
    Position, PutOutcome, SegmentStore, StoreError, decode_owner, decode_position, encode_owner,
    encode_position, keys,
};

/// A store that keeps every object in process memory (lost on exit). Same semantics as the
/// persistent stores: create-if-absent writes, ordered listings.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Bytes>> {
        // A poisoned map is still consistent: every write is a single insert.
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Inserts unless present; returns the existing value when present.
    fn put_if_absent(&self, key: String, value: Bytes) -> Option<Bytes> {
        let mut map = self.lock();
        if let Some(existing) = map.get(&key) {
            return Some(existing.clone());
        }
        map.insert(key, value);
        None
    }

    /// Keys under `prefix/` (direct children only), as names relative to the prefix.
    fn children(&self, prefix: &str) -> Vec<String> {
        let start = format!("{prefix}/");
        let map = self.lock();
        let mut out: Vec<String> = Vec::new();
        for key in map.range(start.clone()..).map(|(k, _)| k) {
            let Some(rest) = key.strip_prefix(&start) else {
                break;
            };
            let name = rest.split('/').next().unwrap_or(rest);
            if out.last().map(String::as_str) != Some(name) {
                out.push(name.to_owned());
            }
        }
        out
    }
}

#[async_trait]
impl SegmentStore for MemoryStore {
    fn describe(&self) -> String {
        "memory:".to_owned()
    }

    async fn put_blob(&self, id: SegmentId, bytes: Bytes) -> Result<(), StoreError> {
        self.put_if_absent(keys::blob(&id), bytes);
        Ok(())
    }

    async fn get_blob(&self, id: SegmentId) -> Result<Option<Bytes>, StoreError> {
        Ok(self.lock().get(&keys::blob(&id)).cloned())
    }

    async fn put_position(
        &self,
        owner: OwnerId,
        origin: Origin,
        pos: &Position,
    ) -> Result<PutOutcome, StoreError> {
        let key = keys::position(owner, origin, pos.first_seq);
        match self.put_if_absent(key.clone(), encode_position(pos)) {
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
        let found = self.lock().get(&key).cloned();
        found
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
            .children(&keys::chain(owner, origin))
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
            self.children(&keys::owner_chains(owner)),
        ))
    }

    async fn claim_owner(&self, owner: OwnerId) -> Result<OwnerId, StoreError> {
        match self.put_if_absent(keys::OWNER.to_owned(), encode_owner(owner)) {
            None => Ok(owner),
            Some(existing) => decode_owner(&existing),
        }
    }

    async fn owner(&self) -> Result<Option<OwnerId>, StoreError> {
        let found = self.lock().get(keys::OWNER).cloned();
        found.map(|b| decode_owner(&b)).transpose()
    }

    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
