//! The PWA in real Chromium: runs the node test files under `tests/browser/` (playwright-core driving
//! Debian's Chromium against the real hub, the real test IdP and the native `heph`). Needs node, chromium,
//! the npm packages in tests/node, the web root (`cargo xtask pwa`) and the built `hephd`/`heph`; under
//! `CI=true` anything missing is a failure, otherwise the test prints why and skips.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}

fn web_root() -> PathBuf {
    std::env::var_os("HEPH_WEB_ROOT").map_or_else(|| root().join("target/web"), PathBuf::from)
}

fn chromium() -> Option<PathBuf> {
    std::env::var_os("HEPH_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/chromium", "/usr/lib/chromium/chromium"].map(PathBuf::from))
        .find(|p| p.exists())
}

/// What is missing to run the browser tests, if anything.
fn missing() -> Vec<String> {
    let r = root();
    let mut out = Vec::new();
    if Command::new("node").arg("--version").output().is_err() {
        out.push("node".to_owned());
    }
    if chromium().is_none() {
        out.push("chromium (apt-get install chromium)".to_owned());
    }
    if !r.join("tests/node/node_modules/playwright-core").is_dir() {
        out.push("tests/node/node_modules (npm install in tests/node)".to_owned());
    }
    if !web_root().join("pkg/heph_pwa_bg.wasm").exists() {
        out.push(format!(
            "the web root {} (cargo xtask pwa)",
            web_root().display()
        ));
    }
    for bin in ["hephd", "heph"] {
        if !r.join("target/debug").join(bin).exists()
            && !r.join("target/release").join(bin).exists()
        {
            out.push(format!("{bin} (cargo build --workspace --bins)"));
        }
    }
    out
}

fn run_node_tests(file: &str) {
    let missing = missing();
    if !missing.is_empty() {
        assert!(
            !in_ci(),
            "CI=true but the browser tests cannot run; missing: {}",
            missing.join(", ")
        );
        eprintln!(
            "skipping {file}: missing {} (set CI=true to fail instead)",
            missing.join(", ")
        );
        return;
    }
    let r = root();
    let out = Command::new("node")
        .current_dir(&r)
        .args(["--test", "--test-concurrency=1", "--test-reporter=tap"])
        .arg(r.join("tests/browser").join(file))
        .env("HEPH_WEB_ROOT", web_root())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "browser tests in tests/browser/{file} failed ({}); output above",
        out.status
    );
    assert!(
        stdout.contains("\n# skipped 0") && stdout.contains("\n# fail 0"),
        "a browser test was skipped or failed"
    );
}

#[test]
fn pwa_shell_views_persistence_offline_and_bad_input() {
    run_node_tests("shell.test.mjs");
}

#[test]
fn pwa_converges_with_native_spokes_through_the_hub() {
    run_node_tests("sync.test.mjs");
}

#[test]
fn pwa_logs_in_in_app_with_the_real_idp() {
    run_node_tests("login.test.mjs");
}
