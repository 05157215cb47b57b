//! hephaestus end-to-end tests: real hub, spokes, IdP and browser
