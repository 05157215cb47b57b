//! hephaestus hub: segment stores, HTTP API, OIDC verifier, static web root, metrics
