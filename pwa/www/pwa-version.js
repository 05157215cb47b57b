// Replaced by `cargo xtask pwa` with the build's version (crate version + asset hash).
export const PWA_VERSION = "dev";
