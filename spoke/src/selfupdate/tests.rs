//! Tests for self-update: tag parsing and choice, command splitting, and whole checks against a local git
//! repository acting as the forge, with a stand-in installer and stand-in `rustc`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;

fn v(s: &str) -> semver::Version {
    parse_version(s).expect("version")
}

#[test]
fn versions_parse_like_tags_and_rust_version() {
    assert_eq!(v("v1.2.3"), semver::Version::new(1, 2, 3));
    assert_eq!(v("1.89"), semver::Version::new(1, 89, 0));
    assert!(parse_version("latest").is_none());
    assert!(parse_version("v1").is_none());
    assert!(parse_version("1.x.3").is_none());
    assert!(
        parse_version(REQUIRED_RUST_VERSION).is_some(),
        "workspace rust-version parses"
    );
}

#[test]
fn ls_remote_output_is_split_into_semver_and_other_tags() {
    let out = "\
aaa\trefs/tags/v0.1.0
bbb\trefs/tags/v0.1.0^{}
ccc\trefs/tags/v0.10.0
ddd\trefs/tags/v0.9.1
eee\trefs/tags/nightly
fff\trefs/tags/v0.11.0-rc.1
ggg\trefs/heads/main
hhh\trefs/tags/release-2
";
    let (good, bad) = parse_ls_remote(out);
    let names: Vec<&str> = good.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        names,
        ["v0.1.0", "v0.9.1", "v0.10.0", "v0.11.0-rc.1"],
        "semver order, deduplicated"
    );
    assert_eq!(bad, ["nightly", "release-2"]);
    assert_eq!(
        pick_update(&good, &v("0.1.0")).map(|(t, _)| t.as_str()),
        Some("v0.10.0"),
        "no pre-release"
    );
    assert_eq!(pick_update(&good, &v("0.10.0")), None);
    assert_eq!(pick_update(&good, &v("1.0.0")), None, "never a downgrade");
}

#[test]
fn command_lines_split_without_a_shell() {
    assert_eq!(
        split_command("cargo install --git {url} --tag {tag} heph-spoke").expect("split"),
        [
            "cargo",
            "install",
            "--git",
            "{url}",
            "--tag",
            "{tag}",
            "heph-spoke"
        ]
    );
    assert_eq!(
        split_command(r#"op read 'op://Private/heph token/x' "a \"b\"" c\ d"#).expect("split"),
        ["op", "read", "op://Private/heph token/x", "a \"b\"", "c d"]
    );
    assert_eq!(split_command("echo ''").expect("split"), ["echo", ""]);
    assert_eq!(
        split_command("a; rm -rf /").expect("split"),
        ["a;", "rm", "-rf", "/"],
        "no shell syntax"
    );
    assert!(matches!(split_command("  "), Err(CommandError::Empty)));
    assert!(matches!(
        split_command("a 'b"),
        Err(CommandError::UnclosedQuote('\'', _))
    ));
    assert!(matches!(
        split_command("a \"b"),
        Err(CommandError::UnclosedQuote('"', _))
    ));
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@localhost",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A local forge (a git repository with tags), stand-in `rustc`, installer and installed binary.
struct Forge {
    dir: tempfile::TempDir,
}

impl Forge {
    fn new(tags: &[&str]) -> Forge {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("forge");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q"]);
        std::fs::write(repo.join("README"), "heph\n").expect("write");
        git(&repo, &["add", "README"]);
        git(&repo, &["commit", "-q", "-m", "init"]);
        for t in tags {
            git(&repo, &["tag", "-a", "-m", t, t]);
        }
        let f = Forge { dir };
        f.set_rustc("rustc 1.95.0 (59807616e 2026-04-14)");
        // The installed binary starts at the running version.
        f.set_installed_version("0.1.0");
        // The installer records its arguments and environment, then "installs" the tag's version.
        write_script(
            &f.path("installer"),
            &format!(
                "echo \"$*\" > {args}\nenv > {env}\n\
                 if [ -f {fail} ]; then echo 'error[E0658]: use of unstable library feature' >&2; echo 'error: could not compile `heph-spoke`' >&2; exit 101; fi\n\
                 if [ -f {noop} ]; then exit 0; fi\n\
                 tag=\"$5\"; ver=\"${{tag#v}}\"\n\
                 printf '#!/bin/sh\\necho \"hephd %s (abc123)\"\\n' \"$ver\" > {bin}.new && chmod +x {bin}.new && mv {bin}.new {bin}\n",
                args = f.path("installer-args").display(),
                env = f.path("installer-env").display(),
                fail = f.path("installer-fails").display(),
                noop = f.path("installer-noop").display(),
                bin = f.path("hephd").display(),
            ),
        );
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn set_rustc(&self, version_line: &str) {
        write_script(
            &self.path("rustc"),
            &format!(
                "[ \"$RUSTUP_TOOLCHAIN\" = stable ] || {{ echo 'RUSTUP_TOOLCHAIN not pinned' >&2; exit 1; }}\necho '{version_line}'\n"
            ),
        );
    }

    fn set_installed_version(&self, version: &str) {
        write_script(
            &self.path("hephd"),
            &format!("echo 'hephd {version} (abc123)'\n"),
        );
    }

    fn config(&self) -> SelfUpdateConfig {
        SelfUpdateConfig {
            forge_url: self.path("forge").to_string_lossy().into_owned(),
            interval: Duration::from_secs(60),
            installer: format!(
                "{} install --git {{url}} --tag {{tag}} heph-spoke",
                self.path("installer").display()
            ),
            running: v("0.1.0"),
            required_rust: v("1.89"),
            git: "git".into(),
            rustc: self.path("rustc"),
            binary: Some(self.path("hephd")),
            status_path: Some(self.path("self-update.json")),
            probe_timeout: Duration::from_secs(20),
            install_timeout: Duration::from_secs(20),
        }
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }
}

#[test]
fn installs_the_newest_release_with_the_pinned_toolchain() {
    let f = Forge::new(&["v0.1.0", "v0.2.0", "v0.3.0-rc.1", "nightly", "v0.1.5"]);
    let cfg = f.config();
    let outcome = check_once(&cfg).expect("update");
    assert_eq!(
        outcome,
        Outcome::Updated {
            tag: "v0.2.0".into(),
            version: "0.2.0".into()
        }
    );
    let args = f.read("installer-args");
    assert_eq!(
        args.trim(),
        format!("install --git {} --tag v0.2.0 heph-spoke", cfg.forge_url)
    );
    assert!(
        f.read("installer-env")
            .lines()
            .any(|l| l == "RUSTUP_TOOLCHAIN=stable")
    );
    // Now the installed binary is 0.2.0; a daemon running 0.2.0 is up to date.
    let mut cfg2 = cfg.clone();
    cfg2.running = v("0.2.0");
    assert_eq!(
        check_once(&cfg2).expect("check"),
        Outcome::UpToDate {
            latest: Some("v0.3.0-rc.1".into())
        }
    );
}

#[test]
fn an_old_toolchain_fails_loudly_and_installs_nothing() {
    let f = Forge::new(&["v0.1.0", "v0.2.0"]);
    f.set_rustc("rustc 1.84.1 (e71f9a9a9 2025-01-27)");
    let cfg = f.config();
    let handle = SelfUpdateHandle::new(true, "0.1.0", cfg.status_path.clone());
    let result = check_once(&cfg);
    handle.record(1_700_000_000_000, &result);
    let err = result.expect_err("too old");
    assert!(
        matches!(err, SelfUpdateError::ToolchainTooOld { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("1.84.1") && msg.contains("1.89") && msg.contains("rustup update stable"),
        "{msg}"
    );
    assert!(
        !f.path("installer-args").exists(),
        "the installer never ran"
    );
    assert!(f.read("hephd").contains("0.1.0"), "binary untouched");

    // The failure is visible three ways: status file, healthz JSON, metrics.
    let status = SelfUpdateStatus::load(&f.path("self-update.json")).expect("status file");
    assert!(!status.healthy());
    let failure = status.last_failure.as_ref().expect("failure");
    assert_eq!(failure.stage, Stage::Toolchain);
    assert!(
        status.summary().starts_with("FAILING at toolchain"),
        "{}",
        status.summary()
    );
    let health = handle.healthz_json();
    assert_eq!(health["healthy"], false);
    assert_eq!(health["last_failure"]["stage"], "toolchain");
    let metrics = handle.prometheus();
    assert!(
        metrics.contains("heph_self_update_failures_total{stage=\"toolchain\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("heph_self_update_healthy 0"), "{metrics}");

    // Counters survive a restart of the daemon; a later success clears the failure but not the count.
    let handle = SelfUpdateHandle::new(true, "0.1.0", cfg.status_path.clone());
    f.set_rustc("rustc 1.95.0 (59807616e 2026-04-14)");
    let result = check_once(&cfg);
    handle.record(1_700_000_060_000, &result);
    assert!(result.is_ok(), "{result:?}");
    let s = handle.snapshot();
    assert!(s.healthy());
    assert_eq!(s.checks_total, 2);
    assert_eq!(s.failures_total.get(&Stage::Toolchain), Some(&1));
}

#[test]
fn a_missing_rustc_is_a_toolchain_failure() {
    let f = Forge::new(&["v0.2.0"]);
    let mut cfg = f.config();
    cfg.rustc = f.path("no-such-rustc");
    let err = check_once(&cfg).expect_err("no rustc");
    assert!(
        matches!(err, SelfUpdateError::ToolchainMissing { .. }),
        "{err:?}"
    );
    assert_eq!(err.stage(), Stage::Toolchain);
    // A rustc that prints garbage is not taken for a good one.
    write_script(&f.path("garbage-rustc"), "echo 'hello'\n");
    cfg.rustc = f.path("garbage-rustc");
    assert!(matches!(
        check_once(&cfg),
        Err(SelfUpdateError::ToolchainMissing { .. })
    ));
}

#[test]
fn a_failed_build_surfaces_the_compiler_error() {
    let f = Forge::new(&["v0.2.0"]);
    std::fs::write(f.path("installer-fails"), "").expect("write");
    let err = check_once(&f.config()).expect_err("build fails");
    assert_eq!(err.stage(), Stage::Install);
    let msg = err.to_string();
    assert!(
        msg.contains("v0.2.0") && msg.contains("could not compile"),
        "{msg}"
    );
    assert!(msg.contains("exit status: 101"), "{msg}");
}

#[test]
fn an_installer_that_changes_nothing_fails_verification() {
    let f = Forge::new(&["v0.2.0"]);
    std::fs::write(f.path("installer-noop"), "").expect("write");
    let err = check_once(&f.config()).expect_err("verify");
    assert!(matches!(err, SelfUpdateError::Verify { .. }), "{err:?}");
    assert!(err.to_string().contains("hephd 0.1.0"), "{err}");
}

#[test]
fn a_forge_that_does_not_answer_is_a_forge_failure() {
    let f = Forge::new(&["v0.2.0"]);
    let mut cfg = f.config();
    cfg.forge_url = f.path("no-such-repo").to_string_lossy().into_owned();
    let err = check_once(&cfg).expect_err("no repo");
    assert_eq!(err.stage(), Stage::Forge);
    // A port nothing listens on (bound, read back, closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    cfg.forge_url = format!("http://127.0.0.1:{port}/heph.git");
    let err = check_once(&cfg).expect_err("refused");
    assert!(matches!(err, SelfUpdateError::Forge { .. }), "{err:?}");
    assert!(err.to_string().contains(&cfg.forge_url), "{err}");
    assert!(!f.path("installer-args").exists());
}

#[test]
fn tags_that_are_not_semver_are_an_error_not_silence() {
    let f = Forge::new(&["nightly", "latest", "release-7"]);
    let err = check_once(&f.config()).expect_err("no semver");
    match &err {
        SelfUpdateError::NoSemverTags {
            count, examples, ..
        } => {
            assert_eq!(*count, 3);
            assert!(examples.contains(&"nightly".to_owned()));
        }
        other => panic!("{other:?}"),
    }
    // A forge with no tags at all is simply up to date.
    let f = Forge::new(&[]);
    assert_eq!(
        check_once(&f.config()).expect("no tags"),
        Outcome::UpToDate { latest: None }
    );
}

#[test]
fn a_bad_installer_line_is_refused_before_anything_runs() {
    let f = Forge::new(&["v0.2.0"]);
    let mut cfg = f.config();
    cfg.installer = "cargo install 'oops".into();
    assert!(matches!(
        check_once(&cfg),
        Err(SelfUpdateError::BadInstaller(_))
    ));
    let args = SelfUpdateArgs {
        self_update_forge_url: "x".into(),
        self_update_installer: "\"unclosed".into(),
    };
    assert!(args.start(true, 600, f.dir.path()).is_err());
    let args = SelfUpdateArgs {
        self_update_forge_url: "x".into(),
        self_update_installer: DEFAULT_INSTALLER.into(),
    };
    assert!(matches!(
        args.start(true, 5, f.dir.path()),
        Err(SelfUpdateError::BadInterval(5))
    ));
}

#[test]
fn the_loop_records_every_check_and_hands_over_after_an_update() {
    let f = Forge::new(&["v0.2.0"]);
    let cfg = f.config();
    let handle = SelfUpdateHandle::new(true, "0.1.0", cfg.status_path.clone());
    let mut updated = Vec::new();
    run_loop(&cfg, &handle, &|| true, &mut |tag| {
        updated.push(tag.to_owned())
    });
    assert_eq!(updated, ["v0.2.0"]);
    let s = SelfUpdateStatus::load(&f.path("self-update.json")).expect("status");
    assert_eq!(s.checks_total, 1);
    assert!(matches!(s.last_outcome, Some(Outcome::Updated { .. })));
    // Disabled: the handle reports it, healthy, and no check is run by `start`.
    let args = SelfUpdateArgs {
        self_update_forge_url: cfg.forge_url.clone(),
        self_update_installer: DEFAULT_INSTALLER.into(),
    };
    let h = args.start(false, 600, &f.path("off")).expect("start");
    assert_eq!(h.healthz_json()["enabled"], false);
    assert!(h.prometheus().contains("heph_self_update_enabled 0"));
    assert!(
        f.path("off/self-update.json").exists(),
        "status file written even when off"
    );
}
