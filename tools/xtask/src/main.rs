//! xtask: build and dev helpers for the hephaestus workspace (`cargo xtask pwa` builds the PWA web root).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// The wasm-bindgen version the `heph-pwa` crate pins (`=0.2.130`); the CLI must match it exactly.
const WASM_BINDGEN_VERSION: &str = "0.2.130";
const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-release";

const USAGE: &str = "usage: cargo xtask pwa [--out DIR] [--skip-install] [--shell-only]

  pwa   build the PWA: the heph-pwa wasm crate (profile wasm-release, target wasm32-unknown-unknown,
        CARGO_TARGET_DIR=target/wasm), wasm-bindgen, and the shell from pwa/www, into DIR
        (default target/web). Installs the rustup target, clang and wasm-bindgen-cli when missing
        unless --skip-install is given. --shell-only recopies the shell and restamps the version but
        keeps the wasm module already in DIR/pkg (for quick UI iterations).";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(cmd) = args.next() else {
        println!("{USAGE}");
        return Ok(());
    };
    match cmd.as_str() {
        "pwa" => {
            let root = workspace_root()?;
            let mut out = root.join("target/web");
            let mut install = true;
            let mut shell_only = false;
            while let Some(a) = args.next() {
                match a.as_str() {
                    "--out" => {
                        let v = args.next().context("--out needs a directory")?;
                        out = absolute(&v)?;
                    }
                    "--skip-install" => install = false,
                    "--shell-only" => shell_only = true,
                    "-h" | "--help" => {
                        println!("{USAGE}");
                        return Ok(());
                    }
                    other => bail!("unknown argument {other:?}\n{USAGE}"),
                }
            }
            if shell_only {
                shell(&root, &out)
            } else {
                build_pwa(&root, &out, install)
            }
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

fn absolute(p: &str) -> Result<PathBuf> {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        Ok(p)
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

fn workspace_root() -> Result<PathBuf> {
    // tools/xtask/Cargo.toml → the workspace root is two levels up.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = dir
        .parent()
        .and_then(Path::parent)
        .context("cannot locate the workspace root")?;
    Ok(root.to_path_buf())
}

fn status(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let st = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !st.success() {
        bail!("{shown} failed with {st}");
    }
    Ok(())
}

fn output_ok(cmd: &mut Command) -> Option<String> {
    let o = cmd.output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Installs the rustup target, clang and the pinned wasm-bindgen CLI when missing.
fn ensure_tools() -> Result<()> {
    if output_ok(Command::new("rustup").arg("--version")).is_some() {
        status(Command::new("rustup").args(["target", "add", TARGET]))?;
    } else {
        eprintln!("xtask: rustup not found; assuming the {TARGET} standard library is installed");
    }
    if output_ok(Command::new("clang").arg("--version")).is_none() {
        eprintln!(
            "xtask: clang is missing (SQLite's C code needs it for wasm32); installing with apt-get"
        );
        let apt = |args: &[&str]| {
            status(
                Command::new("apt-get")
                    .args(args)
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )
        };
        if apt(&["install", "-y", "--no-install-recommends", "clang"]).is_err() {
            apt(&["update"])?;
            apt(&["install", "-y", "--no-install-recommends", "clang"])
                .context("install clang by hand: apt-get install -y clang")?;
        }
    }
    let have = output_ok(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if !have.contains(WASM_BINDGEN_VERSION) {
        eprintln!(
            "xtask: wasm-bindgen {WASM_BINDGEN_VERSION} not found (have {:?}); installing (takes a few minutes)",
            have.trim()
        );
        status(Command::new("cargo").args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            WASM_BINDGEN_VERSION,
        ]))?;
    }
    Ok(())
}

fn build_pwa(root: &Path, out: &Path, install: bool) -> Result<()> {
    if install {
        ensure_tools()?;
    }
    let target_dir = root.join("target/wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(
        Command::new(cargo)
            .current_dir(root)
            .env("CARGO_TARGET_DIR", &target_dir)
            // WAL on the OPFS pool (no shared memory) needs EXCLUSIVE locking; see .cargo/config.toml.
            .env("SQLITE_WASM_RS_FLAGS", "SQLITE_DEFAULT_LOCKING_MODE=1")
            .args([
                "build",
                "-p",
                "heph-pwa",
                "--target",
                TARGET,
                "--profile",
                PROFILE,
            ]),
    )?;
    let wasm = target_dir.join(TARGET).join(PROFILE).join("heph_pwa.wasm");
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("cannot clear {}", out.display()))?;
    }
    std::fs::create_dir_all(out.join("pkg"))?;
    status(
        Command::new("wasm-bindgen")
            .arg("--target")
            .arg("web")
            .arg("--no-typescript")
            .arg("--out-dir")
            .arg(out.join("pkg"))
            .arg("--out-name")
            .arg("heph_pwa")
            .arg(&wasm),
    )?;
    shell(root, out)
}

/// Copies the shell into `out` (keeping `out/pkg`) and stamps the version.
fn shell(root: &Path, out: &Path) -> Result<()> {
    if !out.join("pkg/heph_pwa_bg.wasm").exists() {
        bail!(
            "{} holds no wasm build yet: run `cargo xtask pwa` first",
            out.display()
        );
    }
    let www = root.join("pwa/www");
    copy_shell(&www, out)?;
    stamp(root, out)?;
    eprintln!("xtask: web root written to {}", out.display());
    Ok(())
}

/// Copies the shell files (everything under pwa/www except a stray local `pkg/`).
fn copy_shell(from: &Path, to: &Path) -> Result<()> {
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        if name == "pkg" {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&dst)?;
            copy_shell(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

fn list_files(dir: &Path, base: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let p = entry.path();
        if entry.file_type()?.is_dir() {
            list_files(&p, base, out)?;
        } else {
            let rel = p
                .strip_prefix(base)
                .context("path outside the web root")?
                .to_string_lossy()
                .replace('\\', "/");
            out.push(rel);
        }
    }
    Ok(())
}

/// Writes the version into `pwa-version.js` and `sw.js` (cache name `heph-pwa-v<version>`, asset list).
///
/// The version is the crate version plus the first 8 hex digits of a hash over every shell asset, so any
/// change to any asset changes `sw.js`, which makes browsers install the new service worker, which evicts
/// the old cache.
fn stamp(root: &Path, out: &Path) -> Result<()> {
    let mut files = Vec::new();
    list_files(out, out, &mut files)?;
    files.retain(|f| f != "sw.js" && f != "pwa-version.js");
    files.sort();
    let mut h = blake3::Hasher::new();
    for f in &files {
        h.update(f.as_bytes());
        h.update(&std::fs::read(out.join(f))?);
    }
    let sw_src = std::fs::read_to_string(root.join("pwa/www/sw.js"))?;
    h.update(sw_src.as_bytes());
    let hash = h.finalize().to_hex();
    let version = format!("{}-{}", env!("CARGO_PKG_VERSION"), &hash[..8]);
    std::fs::write(
        out.join("pwa-version.js"),
        format!(
            "// Written by `cargo xtask pwa`: the build's version (crate version + asset hash).\nexport const PWA_VERSION = {version:?};\n"
        ),
    )?;
    let mut assets: Vec<String> = vec!["./".into(), "./pwa-version.js".into()];
    assets.extend(files.iter().map(|f| format!("./{f}")));
    let assets_js = format!(
        "[{}]",
        assets
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !sw_src.contains("\"__HEPH_PWA_VERSION__\"") || !sw_src.contains("[\"__HEPH_PWA_ASSETS__\"]")
    {
        bail!("pwa/www/sw.js lacks the version/asset placeholders");
    }
    let sw = sw_src
        .replace("\"__HEPH_PWA_VERSION__\"", &format!("{version:?}"))
        .replace("[\"__HEPH_PWA_ASSETS__\"]", &assets_js);
    std::fs::write(out.join("sw.js"), sw)?;
    eprintln!("xtask: PWA version {version}, {} assets", assets.len());
    Ok(())
}
