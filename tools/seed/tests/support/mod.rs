//! Shared by the heph-seed integration tests: the workspace's `heph`/`hephd` binaries, built once per run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `heph`/`hephd` binaries of this workspace, built once per test run.
pub(crate) fn spoke_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "heph-spoke",
                "--bin",
                "heph",
                "--bin",
                "hephd",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for heph/hephd");
        assert!(status.success(), "building heph and hephd failed");
        // target/<profile>/deps/<test> → target/<profile>
        let exe = std::env::current_exe().expect("test exe");
        exe.parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf()
    });
    dir.join(name)
}
