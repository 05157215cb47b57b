//! `heph daemon` as a user runs it, with the real `heph` binary: render, a refused config, and the real
//! detached supervisor (`heph daemon install|status|restart|stop|uninstall`) running a stand-in `hephd`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod support;
use support::spoke_bin;

fn daemon(home: &Path, args: &[&str]) -> Output {
    Command::new(spoke_bin("heph"))
        .arg("daemon")
        .args(args)
        .env("HOME", home)
        .env_remove("HEPH_CONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .env("HEPH_DATA_DIR", home.join(".local/share/heph"))
        .output()
        .expect("run heph daemon")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const CONFIG: &str = r#"
hub_url = "https://heph.example.org"
oidc_issuer = "https://auth.example.org/application/o/heph/"
oidc_client_id = "heph"
token_load_cmd = "op read 'op://Private/heph token/credential'"

[service]
backend = "supervisor"
label = "cli.test"
"#;

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn heph_daemon_runs_a_real_supervisor_and_keeps_every_flag() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path();
    std::fs::create_dir_all(home.join(".config/heph")).expect("mkdir");
    std::fs::write(home.join(".config/heph/config.toml"), CONFIG).expect("config");
    let hephd = home.join(".cargo/bin/hephd");
    std::fs::create_dir_all(hephd.parent().expect("dir")).expect("mkdir");
    std::fs::write(
        &hephd,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'hephd 0.1.0 (test)'; exit 0; fi\n\
         printf '%s\\n' \"$@\" > \"$HOME/args.txt\"\nexec sleep 600\n",
    )
    .expect("hephd");
    std::fs::set_permissions(&hephd, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let r = daemon(home, &["render"]);
    assert!(r.status.success(), "{}", text(&r));
    assert!(
        text(&r).contains("op read 'op://Private/heph token/credential'"),
        "{}",
        text(&r)
    );

    let o = daemon(home, &["install"]);
    assert!(o.status.success(), "{}", text(&o));
    let args = || std::fs::read_to_string(home.join("args.txt")).unwrap_or_default();
    wait_for("hephd to start", || !args().is_empty());
    let got: Vec<String> = args().lines().map(str::to_owned).collect();
    assert!(
        got.windows(2).any(|w| w
            == [
                "--token-load-cmd",
                "op read 'op://Private/heph token/credential'"
            ]),
        "{got:?}"
    );
    assert!(
        got.windows(2)
            .any(|w| w == ["--hub-url", "https://heph.example.org"]),
        "{got:?}"
    );

    let s = daemon(home, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&s.stdout).expect("status json");
    assert_eq!(v["running"], true, "{v}");
    assert_eq!(v["version"], "hephd 0.1.0 (test)");
    let pid = v["pid"].as_i64().expect("pid");

    // A bad config is refused and the running daemon is left alone.
    std::fs::write(
        home.join(".config/heph/config.toml"),
        format!("{CONFIG}\nbakend = \"x\"\n"),
    )
    .expect("config");
    let bad = daemon(home, &["restart"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        text(&bad).starts_with("error: config file") && text(&bad).contains("bakend"),
        "{}",
        text(&bad)
    );
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.join(".local/state/heph/cli.test.pid"))
            .map_or_else(|_| "null".to_owned(), |p| p.trim().to_owned()),
    )
    .expect("pid file");
    assert_eq!(
        v.as_i64(),
        Some(pid),
        "hephd untouched by the refused restart"
    );

    // A changed config reaches hephd on restart.
    std::fs::write(
        home.join(".config/heph/config.toml"),
        CONFIG.replace(
            "[service]",
            "owner_id = \"01J9ZQ4V8W6Y7X5T3R2Q1P0N9M\"\n[service]",
        ),
    )
    .expect("config");
    std::fs::remove_file(home.join("args.txt")).expect("rm");
    let o = daemon(home, &["restart"]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for("restarted hephd", || args().contains("--owner-id"));
    assert!(args().contains("--token-load-cmd"), "{}", args());

    let o = daemon(home, &["stop"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = daemon(home, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&s.stdout).expect("status json");
    assert_eq!(v["running"], false, "{v}");
    let o = daemon(home, &["uninstall"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !home
            .join(".local/state/heph/cli.test.service.json")
            .exists()
    );
}
