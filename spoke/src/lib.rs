//! hephaestus spoke: replica, merge, queries, sync client, daemon and the heph/hephd binaries
//!
//! The core (everything not behind the `native` feature) is runtime-free: no tokio, no threads, no clock
//! reads (time and randomness come from [`env::Env`]), so it also builds for `wasm32-unknown-unknown`.

#![deny(unreachable_pub)]

pub mod api;
pub mod dates;
pub mod env;
pub mod error;
pub mod export;
mod materialise;
pub mod merge;
pub mod model;
mod oplog;
pub mod recur;
pub mod replica;
pub mod rpc;
pub mod schema;
pub mod sync;
pub mod taskwarrior;

#[cfg(feature = "native")]
pub mod auth;
#[cfg(feature = "native")]
pub mod cli;
#[cfg(feature = "native")]
pub mod daemon;

#[cfg(feature = "native")]
pub use env::SystemEnv;
pub use env::{Env, TestEnv};
pub use error::SpokeError;
pub use replica::{ApplyReport, Replica, StoredOp, SyncCursor};

#[cfg(feature = "native")]
pub mod selfupdate;
#[cfg(feature = "native")]
pub mod service;
