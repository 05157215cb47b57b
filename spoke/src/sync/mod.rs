//! The sync client: spokes converge through the hub. Runtime-free (no tokio, no threads, no filesystem),
//! so the same code runs in the native daemon/CLI and in the browser worker.
//!
//! - [`hub`]: the [`HubClient`] trait and its values and errors;
//! - [`memory`]: an in-memory hub with the same chain rules; [`http`]: the HTTP client (`sync/v1`);
//! - [`engine`]: [`sync_once`] — push, pull, verify, apply with cursors, heads check, fork detection,
//!   owner adoption;
//! - [`status`]: what `heph sync --status` shows, persisted in `meta`;
//! - [`conformance`]: the suite every hub client runs.

pub mod conformance;
pub mod engine;
pub mod http;
pub mod hub;
pub mod memory;
pub mod status;

#[cfg(test)]
mod tests;

pub use engine::{
    APPLY_BATCH_OPS, NoProgress, Progress, SyncError, SyncOptions, SyncReport, sync_once,
};
pub use http::{HttpHub, normalise_hub_url};
pub use hub::{HubClient, HubConfig, HubError, HubHeads, PushOutcome, StaticToken, TokenProvider};
pub use memory::MemoryHub;
pub use status::{SyncStatus, status};
