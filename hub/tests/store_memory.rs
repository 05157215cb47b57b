//! The store conformance suite against the in-memory store.

use std::sync::Arc;

use heph_hub::store::{MemoryStore, SegmentStore};

async fn make() -> Arc<dyn SegmentStore> {
    Arc::new(MemoryStore::new())
}

heph_hub::store_conformance!(make());
