//! Tidy checks over the whole workspace: habits that keep the code easy to read, enforced by `cargo test`.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Directories that hold no project sources (build output, installed packages, local tool venvs).
const SKIP_DIRS: &[&str] = &[
    "target",
    "node_modules",
    ".git",
    ".venv",
    "artifacts",
    "pkg",
];

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !SKIP_DIRS.contains(&name.as_ref()) {
                walk(&path, out);
            }
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

fn files_with_extension(ext: &str) -> Vec<PathBuf> {
    let mut all = Vec::new();
    walk(&workspace_root(), &mut all);
    all.retain(|p| p.extension().is_some_and(|e| e == ext));
    all.sort();
    all
}

#[test]
fn every_rust_file_opens_with_a_module_doc_line() {
    let files = files_with_extension("rs");
    assert!(
        files.len() > 10,
        "found only {} .rs files: is the walk broken?",
        files.len()
    );
    let offenders: Vec<String> = files
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            !text.starts_with("//!")
        })
        .map(|p| {
            p.strip_prefix(workspace_root())
                .unwrap_or(p)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "these files must start with a `//!` line saying what they are for:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn no_package_registry_hosts_are_named() {
    // Lock files record their sources by necessity; everything else names no registry host.
    let hosts = [
        concat!("crates", ".io"),
        concat!("npmjs", ".org"),
        concat!("npmjs", ".com"),
        concat!("pypi", ".org"),
    ];
    let mut all = Vec::new();
    walk(&workspace_root(), &mut all);
    let offenders: Vec<String> = all
        .iter()
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !name.ends_with(".lock") && name != "package-lock.json"
        })
        .filter(|p| {
            let text = std::fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            hosts.iter().any(|h| text.contains(h))
        })
        .map(|p| {
            p.strip_prefix(workspace_root())
                .unwrap_or(p)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "these files name a package-registry host:\n{}",
        offenders.join("\n")
    );
}
