//! The in-memory segment store: a map of keys to bytes, for tests and benchmarks.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use heph_format::{Origin, OwnerId};

use super::{SegmentStore, StoreError, keys};

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

    async fn create(&self, key: &str, bytes: Bytes) -> Result<Option<Bytes>, StoreError> {
        let mut map = self.lock();
        if let Some(existing) = map.get(key) {
            return Ok(Some(existing.clone()));
        }
        map.insert(key.to_owned(), bytes);
        Ok(None)
    }

    async fn read(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.lock().get(key).cloned())
    }

    async fn list_positions(
        &self,
        owner: OwnerId,
        origin: Origin,
        after: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let names = self.children(&keys::chain(owner, origin));
        Ok(super::select_positions(&names, after, limit))
    }

    async fn list_origins(&self, owner: OwnerId) -> Result<Vec<Origin>, StoreError> {
        Ok(super::canonical_origins(
            self.children(&keys::owner_chains(owner)),
        ))
    }

    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
