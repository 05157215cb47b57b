//! hephaestus end-to-end tests: real hub, spokes, IdP and browser

pub mod idp;
pub mod tls;
