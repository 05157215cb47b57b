//! hephaestus hub: segment stores, HTTP API, OIDC verifier seam, static web root, metrics.
//!
//! The hub is a dumb, static segment log server: it stores content-addressed, append-only
//! segments keyed by owner and origin, enforces the chain rules at the door (reading only segment
//! headers), and serves them back over the HTTP API documented in `docs/protocol.md`.
//!
//! Layers, bottom up: [`store`] (the [`SegmentStore`] trait and its memory, filesystem and S3
//! implementations), [`log`] (chain rules, heads and their cache over any store), [`http`] (the
//! routes), [`server`] (`run(listener, config, shutdown)`), [`args`] (the `hephd --mode server`
//! flags).

#![deny(unreachable_pub)]

pub mod args;
pub mod authn;
pub mod http;
pub mod log;
pub mod metrics;
pub mod oidc;
pub mod relay;
pub mod server;
mod static_files;
pub mod store;
pub mod testkit;
pub mod tls;

pub use authn::{AuthError, Authenticator, Caller, DevAuthenticator};
pub use log::{PushError, PushOutcome, SegmentLog};
pub use server::{HubConfig, ServerError, run};
pub use store::{Position, PutOutcome, SegmentStore, StoreError, open_store};

/// The hub's version (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The short git commit the hub was built from, or `unknown`.
pub const BUILD_COMMIT: &str = env!("HEPH_BUILD_COMMIT");
/// `X.Y.Z (shortsha)`, as `hephd --version` prints after the binary name.
pub const VERSION_STRING: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("HEPH_BUILD_COMMIT"),
    ")"
);
