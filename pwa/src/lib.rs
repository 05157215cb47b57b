//! `heph-pwa`: the hephaestus spoke core compiled to wasm32, run by the PWA in a dedicated Worker.
//!
//! The worker script (`pwa/www/worker.js`) loads this module, calls [`WorkerSpoke::open`] once (which installs
//! the OPFS sync-access-handle pool VFS and opens the replica on it), then forwards every UI message as
//! `spoke.call(method, paramsJson)` — the same method names the daemon serves to the CLI. Errors come back as a
//! JSON [`error::ErrorBody`] so the UI can say what is wrong and what to do. On native targets only the
//! platform-independent parts (errors) are compiled, so `cargo test -p heph-pwa` runs their unit tests.

#![deny(unreachable_pub)]

pub mod error;

#[cfg(target_arch = "wasm32")]
mod backend;
#[cfg(target_arch = "wasm32")]
mod env;
#[cfg(target_arch = "wasm32")]
mod storage;
#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(target_arch = "wasm32")]
pub use worker::WorkerSpoke;
