//! Tests for daemon management: strict config parsing, plist/systemd rendering, restart keeping every flag,
//! the launchd/systemd backends against stand-in `launchctl`/`systemctl`, and the real supervisor process.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::backend::{Backend, Context};
use super::cli::{DaemonCommand, run_with};
use super::config::{Config, ConfigError};
use super::render::{Os, ServiceSpec, render_plist, render_systemd};

const FULL_LOCAL: &str = r#"
mode = "local"
hephd = "~/.cargo/bin/hephd"
data_dir = "~/.local/share/heph"
socket = "~/.local/share/heph/hephd.sock"
hub_url = "https://heph.ops.eblu.me"
owner_id = "01J9ZQ4V8W6Y7X5T3R2Q1P0N9M"
oidc_issuer = "https://authentik.ops.eblu.me/application/o/heph/"
oidc_client_id = "heph"
token_file = "~/.local/share/heph/token.json"
token_load_cmd = "op read 'op://Private/heph token/credential'"
token_save_cmd = "heph-token-store --vault Private"
extra_args = ["--log", "info,heph=debug"]

[self_update]
enabled = true
interval_secs = 900
forge_url = "https://forge.eblu.me/eblume/hephaestus.git"
installer = "cargo install --locked --git {url} --tag {tag} heph-spoke"

[service]
label = "mcquack.eblume.heph"
path = ["/opt/tools/bin"]
env = { HEPH_NO_AUTO_RELOGIN = "1", NOTE = "a & b < c" }
"#;

const FULL_SERVER: &str = r#"
mode = "server"
http_addr = "0.0.0.0:8787"
db = "/srv/heph/heph.db"
web_root = "~/.local/share/heph/web"
store = "s3://heph-segments/prod"
oidc_issuer = "https://authentik.ops.eblu.me/application/o/heph/"
oidc_audience = "heph"
authorized_sub = ["owner-sub", "agents-sub"]
required_group = "admins"
oidc_client_id = "heph"
s3_endpoint = "http://127.0.0.1:8333"
s3_region = "us-east-1"
[self_update]
enabled = true
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/test/config.toml"))
}

fn home() -> PathBuf {
    PathBuf::from("/home/owner")
}

#[test]
fn full_configs_parse_and_render_every_flag() {
    let c = parse(FULL_LOCAL).expect("local config");
    let args = c.hephd_args(&home());
    let joined = args.join(" ");
    for needle in [
        "--mode local",
        "--data-dir /home/owner/.local/share/heph",
        "--socket /home/owner/.local/share/heph/hephd.sock",
        "--hub-url https://heph.ops.eblu.me",
        "--owner-id 01J9ZQ4V8W6Y7X5T3R2Q1P0N9M",
        "--oidc-issuer https://authentik.ops.eblu.me/application/o/heph/",
        "--oidc-client-id heph",
        "--token-file /home/owner/.local/share/heph/token.json",
        "--token-load-cmd op read 'op://Private/heph token/credential'",
        "--token-save-cmd heph-token-store --vault Private",
        "--self-update --self-update-interval-secs 900",
        "--self-update-forge-url https://forge.eblu.me/eblume/hephaestus.git",
        "--log info,heph=debug",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in {joined}");
    }
    let s = parse(FULL_SERVER).expect("server config");
    let joined = s.hephd_args(&home()).join(" ");
    for needle in [
        "--mode server",
        "--http-addr 0.0.0.0:8787",
        "--db /srv/heph/heph.db",
        "--web-root /home/owner/.local/share/heph/web",
        "--store s3://heph-segments/prod",
        "--oidc-audience heph",
        "--authorized-sub owner-sub --authorized-sub agents-sub --required-group admins",
        "--s3-endpoint http://127.0.0.1:8333 --s3-region us-east-1",
        "--oidc-client-id heph",
        "--self-update --self-update-interval-secs 600",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in {joined}");
    }
    assert_eq!(s.label(), "heph.hub");
}

#[test]
fn empty_config_is_a_plain_local_spoke_without_self_update() {
    let c = parse("").expect("empty config");
    let args = c.hephd_args(&home());
    assert_eq!(
        args,
        [
            "--mode",
            "local",
            "--data-dir",
            "/home/owner/.local/share/heph",
            "--socket",
            "/home/owner/.local/share/heph/hephd.sock"
        ]
    );
    assert!(
        !args.iter().any(|a| a.starts_with("--self-update")),
        "self-update is off by default"
    );
}

fn expect_invalid(text: &str, key: &str) {
    match parse(text) {
        Err(ConfigError::Invalid {
            key: k, message, ..
        }) => {
            assert_eq!(k, key, "wrong key for {text:?}: {message}");
            assert!(!message.is_empty());
        }
        other => panic!("{text:?}: expected Invalid({key}), got {other:?}"),
    }
}

fn expect_parse_error(text: &str, needle: &str) {
    match parse(text) {
        Err(e @ ConfigError::Parse { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
            assert!(
                msg.contains("/test/config.toml"),
                "{msg:?} should name the file"
            );
        }
        other => panic!("{text:?}: expected a parse error, got {other:?}"),
    }
}

#[test]
fn unknown_keys_are_errors_that_name_the_key() {
    expect_parse_error("hub_ur = \"https://x\"\n", "hub_ur");
    expect_parse_error("[service]\nlabl = \"x\"\n", "labl");
    expect_parse_error("[self_update]\nenable = true\n", "enable");
    expect_parse_error("[nonsense]\n", "nonsense");
}

#[test]
fn wrong_types_and_broken_toml_are_parse_errors() {
    expect_parse_error("mode = \"hub\"\n", "mode");
    expect_parse_error("[self_update]\nenabled = \"yes\"\n", "enabled");
    expect_parse_error("authorized_sub = \"one\"\n", "authorized_sub");
    expect_parse_error("hub_url = \n", "");
    expect_parse_error("[self_update]\ninterval_secs = -5\n", "interval_secs");
}

#[test]
fn bad_values_are_rejected_with_the_key() {
    expect_invalid("hub_url = \"heph.ops.eblu.me\"\n", "hub_url");
    expect_invalid("hub_url = \"ftp://heph\"\n", "hub_url");
    expect_invalid("oidc_issuer = \"https:///path\"\n", "oidc_issuer");
    expect_invalid("owner_id = \"not-a-ulid\"\n", "owner_id");
    expect_invalid("owner_id = \"01J9ZQ4V8W6Y7X5T3R2Q1P0N9\"\n", "owner_id");
    expect_invalid("data_dir = \"relative/dir\"\n", "data_dir");
    expect_invalid("socket = \"~other/sock\"\n", "socket");
    expect_invalid("token_load_cmd = \"   \"\n", "token_load_cmd");
    expect_invalid(
        "[self_update]\ninterval_secs = 5\n",
        "self_update.interval_secs",
    );
    expect_invalid(
        "[self_update]\ninstaller = \"cargo install 'unclosed\"\n",
        "self_update.installer",
    );
    expect_invalid(
        "[self_update]\nforge_url = \"--upload-pack=evil\"\n",
        "self_update.forge_url",
    );
    expect_invalid("[service]\nlabel = \"bad label\"\n", "service.label");
    expect_invalid("[service]\nenv = { PATH = \"/x\" }\n", "service.env");
    expect_invalid("[service]\nenv = { \"1X\" = \"y\" }\n", "service.env");
    expect_invalid("http_addr = \"0.0.0.0:8787\"\n", "http_addr");
    expect_invalid("mode = \"server\"\nhttp_addr = \"nowhere\"\n", "http_addr");
    expect_invalid("mode = \"server\"\nhub_url = \"https://x\"\n", "hub_url");
    expect_invalid("db = \"/x/heph.db\"\n", "db");
    expect_invalid("mode = \"server\"\ndata_dir = \"/x\"\n", "data_dir");
    expect_invalid(
        "mode = \"server\"\ns3_endpoint = \"s3.example\"\n",
        "s3_endpoint",
    );
    expect_invalid("extra_args = [\"a\\nb\"]\n", "extra_args");
}

#[test]
fn a_missing_config_file_says_how_to_fix_it() {
    let err = Config::load(Path::new("/nonexistent/heph/config.toml")).expect_err("missing");
    assert!(matches!(err, ConfigError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("HEPH_CONFIG"), "{err}");
}

#[test]
fn config_path_prefers_heph_config_then_xdg_then_home() {
    use super::config::default_path;
    let h = home();
    assert_eq!(
        default_path(Some(Path::new("/etc/h.toml")), None, &h),
        PathBuf::from("/etc/h.toml")
    );
    assert_eq!(
        default_path(None, Some(Path::new("/x")), &h),
        PathBuf::from("/x/heph/config.toml")
    );
    assert_eq!(
        default_path(None, None, &h),
        PathBuf::from("/home/owner/.config/heph/config.toml")
    );
}

fn plist_dict(text: &str) -> plist::Dictionary {
    let v = plist::Value::from_reader_xml(text.as_bytes()).expect("rendered plist parses");
    v.into_dictionary().expect("top level is a dictionary")
}

fn plist_argv(d: &plist::Dictionary) -> Vec<String> {
    d.get("ProgramArguments")
        .and_then(|v| v.as_array())
        .expect("ProgramArguments")
        .iter()
        .map(|v| v.as_string().expect("string arg").to_owned())
        .collect()
}

#[test]
fn plist_parses_and_holds_every_flag_env_and_log() {
    for text in [FULL_LOCAL, FULL_SERVER] {
        let c = parse(text).expect("config");
        let spec = ServiceSpec::from_config(&c, Path::new("/test/config.toml"), &home(), Os::MacOs);
        let d = plist_dict(&render_plist(&spec));
        assert_eq!(
            d.get("Label").and_then(|v| v.as_string()),
            Some(c.label().as_str())
        );
        let argv = plist_argv(&d);
        assert_eq!(argv[0], "/home/owner/.cargo/bin/hephd");
        assert_eq!(argv[1..], c.hephd_args(&home())[..], "every flag, in order");
        assert_eq!(d.get("RunAtLoad").and_then(|v| v.as_boolean()), Some(true));
        assert_eq!(d.get("KeepAlive").and_then(|v| v.as_boolean()), Some(true));
        let env = d
            .get("EnvironmentVariables")
            .and_then(|v| v.as_dictionary())
            .expect("env");
        assert_eq!(
            env.get("RUSTUP_TOOLCHAIN").and_then(|v| v.as_string()),
            Some("stable")
        );
        assert_eq!(
            env.get("HOME").and_then(|v| v.as_string()),
            Some("/home/owner")
        );
        let path = env.get("PATH").and_then(|v| v.as_string()).expect("PATH");
        assert!(
            path.split(':').any(|p| p == "/home/owner/.cargo/bin"),
            "{path}"
        );
        let label = c.label();
        assert_eq!(
            d.get("StandardOutPath").and_then(|v| v.as_string()),
            Some(format!("/home/owner/Library/Logs/{label}.out.log").as_str())
        );
        assert_eq!(
            d.get("StandardErrorPath").and_then(|v| v.as_string()),
            Some(format!("/home/owner/Library/Logs/{label}.err.log").as_str())
        );
    }
    // Special characters survive XML escaping.
    let c = parse(FULL_LOCAL).expect("config");
    let spec = ServiceSpec::from_config(&c, Path::new("/t"), &home(), Os::MacOs);
    let d = plist_dict(&render_plist(&spec));
    let env = d
        .get("EnvironmentVariables")
        .and_then(|v| v.as_dictionary())
        .expect("env");
    assert_eq!(
        env.get("NOTE").and_then(|v| v.as_string()),
        Some("a & b < c")
    );
    assert_eq!(
        env.get("HEPH_NO_AUTO_RELOGIN").and_then(|v| v.as_string()),
        Some("1")
    );
    let path = env.get("PATH").and_then(|v| v.as_string()).expect("PATH");
    assert!(
        path.starts_with("/opt/tools/bin:/home/owner/.cargo/bin:"),
        "{path}"
    );
}

/// Splits an `ExecStart=` value the way systemd does for our quoting (double quotes, `\\`/`\"`, `%%`, `$$`).
fn systemd_unquote_line(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            let mut w = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => w.push(chars.next().expect("escape")),
                    '%' | '$' => {
                        assert_eq!(chars.next(), Some(c), "single {c} in {line}");
                        w.push(c);
                    }
                    c => w.push(c),
                }
            }
            words.push(w);
        }
    }
    words
}

#[test]
fn systemd_unit_holds_every_flag_env_and_restart_policy() {
    let c = parse(FULL_LOCAL).expect("config");
    let spec = ServiceSpec::from_config(&c, Path::new("/test/config.toml"), &home(), Os::Linux);
    let unit = render_systemd(&spec);
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let words = systemd_unquote_line(exec);
    assert_eq!(words[0], "/home/owner/.cargo/bin/hephd");
    assert_eq!(words[1..], c.hephd_args(&home())[..]);
    assert!(
        unit.contains("Environment=\"RUSTUP_TOOLCHAIN=stable\""),
        "{unit}"
    );
    assert!(unit.contains("Environment=\"HOME=/home/owner\""), "{unit}");
    assert!(unit.contains("/home/owner/.cargo/bin:"), "{unit}");
    assert!(unit.contains("Restart=always"), "{unit}");
    assert!(unit.contains("WantedBy=default.target"), "{unit}");
    // `%` and `$` are escaped so systemd does not expand them.
    let mut c2 = c.clone();
    c2.extra_args = vec!["100%".into(), "$HOME".into()];
    let unit = render_systemd(&ServiceSpec::from_config(
        &c2,
        Path::new("/t"),
        &home(),
        Os::Linux,
    ));
    assert!(unit.contains("\"100%%\" \"$$HOME\""), "{unit}");
}

fn require_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required under CI=true (apt-get install systemd)"
        );
        eprintln!(
            "SKIP: {name} not found on PATH (install the `systemd` package to run this test)"
        );
    }
    found
}

fn write_script(path: &Path, body: &str) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn systemd_analyze_verifies_rendered_units() {
    let Some(analyze) = require_tool("systemd-analyze") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().to_path_buf();
    write_script(&home.join(".cargo/bin/hephd"), "exit 0\n");
    for text in [FULL_LOCAL, FULL_SERVER, ""] {
        let c = parse(text).expect("config");
        let spec = ServiceSpec::from_config(&c, Path::new("/t/config.toml"), &home, Os::Linux);
        let unit_dir = home.join("units");
        std::fs::create_dir_all(&unit_dir).expect("mkdir");
        let unit_path = unit_dir.join(format!("{}.service", spec.label));
        std::fs::write(&unit_path, render_systemd(&spec)).expect("write unit");
        let out = std::process::Command::new(&analyze)
            .args(["verify", "--user"])
            .arg(&unit_path)
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &home)
            .output()
            .expect("run systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Only complaints about *our* unit count; the host's other units are not under test.
        let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(&spec.label)).collect();
        assert!(
            out.status.success() && ours.is_empty(),
            "systemd-analyze verify failed: {stderr}"
        );
    }
    // A unit with a non-executable program is caught by the verifier: the check has teeth.
    let c = parse("hephd = \"/nonexistent/hephd\"").expect("config");
    let spec = ServiceSpec::from_config(&c, Path::new("/t/config.toml"), &home, Os::Linux);
    let unit_path = home.join("units/bad.service");
    std::fs::write(&unit_path, render_systemd(&spec)).expect("write unit");
    let out = std::process::Command::new(&analyze)
        .args(["verify", "--user"])
        .arg(&unit_path)
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &home)
        .output()
        .expect("run systemd-analyze");
    assert!(
        !out.status.success(),
        "verify should reject a missing program"
    );
}

/// A temporary home with a config file, stand-in `launchctl`/`systemctl` that log their arguments, and a
/// stand-in `hephd` that records its arguments and environment and then sleeps.
struct Fixture {
    _dir: tempfile::TempDir,
    ctx: Context,
}

impl Fixture {
    fn new(config: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().to_path_buf();
        let config_path = home.join(".config/heph/config.toml");
        std::fs::create_dir_all(config_path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&config_path, config).expect("write config");
        let bin = home.join("bin");
        write_script(
            &bin.join("launchctl"),
            &format!(
                "echo \"$*\" >> {log}\n\
                 if [ \"$1\" = print ]; then\n  if [ -f {loaded} ]; then echo '\tstate = running'; echo '\tpid = 4242'; exit 0; fi\n  exit 113\nfi\n\
                 if [ \"$1\" = bootstrap ]; then touch {loaded}; fi\n\
                 if [ \"$1\" = bootout ]; then if [ -f {loaded} ]; then rm {loaded}; else exit 3; fi; fi\n\
                 exit 0\n",
                log = home.join("launchctl.log").display(),
                loaded = home.join("launchd.loaded").display()
            ),
        );
        write_script(
            &bin.join("systemctl"),
            &format!(
                "echo \"$*\" >> {log}\n\
                 if [ \"$2\" = show ]; then echo ActiveState=active; echo SubState=running; echo MainPID=777; fi\n\
                 exit 0\n",
                log = home.join("systemctl.log").display()
            ),
        );
        write_script(
            &home.join(".cargo/bin/hephd"),
            "if [ \"$1\" = --version ]; then echo 'hephd 9.9.9 (standin)'; exit 0; fi\n\
             echo \"$*\" > \"$HOME/hephd-args.txt\"\n\
             env > \"$HOME/hephd-env.txt\"\n\
             exec sleep 1000\n",
        );
        let ctx = Context {
            config_path,
            os: Os::Linux,
            launchctl: bin.join("launchctl"),
            systemctl: bin.join("systemctl"),
            heph_exe: bin.join("heph"),
            uid: 501,
            home,
        };
        Fixture { _dir: dir, ctx }
    }

    fn home(&self) -> &Path {
        &self.ctx.home
    }

    fn run(&self, cmd: DaemonCommand) -> Result<String, super::ServiceError> {
        let mut out = Vec::new();
        run_with(&self.ctx, &cmd, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.home().join(rel)).unwrap_or_default()
    }

    fn set_config(&self, text: &str) {
        std::fs::write(&self.ctx.config_path, text).expect("write config");
    }
}

fn with_backend(config: &str, backend: &str) -> String {
    format!("{config}\n[service]\nbackend = \"{backend}\"\nlabel = \"test.heph\"\n")
}

const SPOKE: &str = r#"
hub_url = "https://heph.ops.eblu.me"
oidc_issuer = "https://authentik.ops.eblu.me/application/o/heph/"
oidc_client_id = "heph"
token_load_cmd = "op read op://Private/heph/token"
"#;

#[test]
fn launchd_restart_rerenders_and_keeps_every_flag() {
    let f = Fixture::new(&with_backend(SPOKE, "launchd"));
    let cfg = f.ctx.load_config().expect("config");
    let want = cfg.hephd_args(f.home());
    let out = f.run(DaemonCommand::Install).expect("install");
    assert!(out.contains("installed"), "{out}");
    let plist_path = f.home().join("Library/LaunchAgents/test.heph.plist");
    let argv = plist_argv(&plist_dict(
        &std::fs::read_to_string(&plist_path).expect("plist"),
    ));
    assert_eq!(argv[1..], want[..]);
    assert!(
        f.read("launchctl.log").contains("bootstrap gui/501 "),
        "{}",
        f.read("launchctl.log")
    );

    // Something (an old heph, a hand edit) rewrites the plist without the hub/OIDC flags ...
    std::fs::write(
        &plist_path,
        render_plist(&ServiceSpec::from_config(
            &Config::default(),
            Path::new("/x"),
            f.home(),
            Os::MacOs,
        )),
    )
    .expect("clobber");
    // ... restart renders it again from the config: nothing is dropped.
    f.run(DaemonCommand::Restart).expect("restart");
    let argv = plist_argv(&plist_dict(
        &std::fs::read_to_string(&plist_path).expect("plist"),
    ));
    assert_eq!(argv[1..], want[..]);
    for flag in [
        "--hub-url",
        "--oidc-issuer",
        "--oidc-client-id",
        "--token-load-cmd",
    ] {
        assert!(argv.contains(&flag.to_owned()), "{flag} kept");
    }
    let log = f.read("launchctl.log");
    assert!(
        log.contains("bootout gui/501/test.heph\nbootstrap gui/501 "),
        "restart reloads the plist: {log}"
    );

    // A config change reaches the plist at the next start/restart; stop then start re-renders too.
    f.set_config(&with_backend(
        &format!("{SPOKE}\nowner_id = \"01J9ZQ4V8W6Y7X5T3R2Q1P0N9M\"\n"),
        "launchd",
    ));
    f.run(DaemonCommand::Stop).expect("stop");
    assert!(!f.home().join("launchd.loaded").exists(), "stop unloads");
    f.run(DaemonCommand::Start).expect("start");
    let argv = plist_argv(&plist_dict(
        &std::fs::read_to_string(&plist_path).expect("plist"),
    ));
    assert!(
        argv.windows(2)
            .any(|w| w == ["--owner-id", "01J9ZQ4V8W6Y7X5T3R2Q1P0N9M"]),
        "{argv:?}"
    );
    assert!(argv.contains(&"--hub-url".to_owned()));

    let status = f
        .run(DaemonCommand::Status { json: false })
        .expect("status");
    assert!(status.contains("running:      yes (pid 4242)"), "{status}");
    assert!(status.contains("hephd 9.9.9 (standin)"), "{status}");
    assert!(
        status.contains("--hub-url https://heph.ops.eblu.me"),
        "{status}"
    );
    assert!(!status.contains("differs from the config"), "{status}");

    f.run(DaemonCommand::Uninstall).expect("uninstall");
    assert!(!plist_path.exists());
}

#[test]
fn systemd_backend_rerenders_on_start_and_restart() {
    let f = Fixture::new(&with_backend(SPOKE, "systemd"));
    let unit_path = f.home().join(".config/systemd/user/test.heph.service");
    f.run(DaemonCommand::Install).expect("install");
    assert!(
        std::fs::read_to_string(&unit_path)
            .expect("unit")
            .contains("\"--hub-url\" \"https://heph.ops.eblu.me\"")
    );
    std::fs::write(&unit_path, "[Service]\nExecStart=/bin/true\n").expect("clobber");
    let status = f.run(DaemonCommand::Status { json: true }).expect("status");
    let v: serde_json::Value = serde_json::from_str(&status).expect("status json");
    assert_eq!(v["unit_matches_config"], false, "{status}");
    assert_eq!(v["running"], true);
    assert_eq!(v["pid"], 777);
    f.run(DaemonCommand::Restart).expect("restart");
    let unit = std::fs::read_to_string(&unit_path).expect("unit");
    assert!(
        unit.contains("\"--hub-url\" \"https://heph.ops.eblu.me\""),
        "{unit}"
    );
    assert!(
        unit.contains("\"--token-load-cmd\" \"op read op://Private/heph/token\""),
        "{unit}"
    );
    let log = f.read("systemctl.log");
    assert_eq!(
        log.lines()
            .filter(|l| !l.contains(" show "))
            .collect::<Vec<_>>(),
        [
            "--user daemon-reload",
            "--user enable --now test.heph.service",
            "--user daemon-reload",
            "--user restart test.heph.service"
        ]
    );
    f.run(DaemonCommand::Uninstall).expect("uninstall");
    assert!(!unit_path.exists());
    assert!(
        f.read("systemctl.log")
            .contains("--user disable --now test.heph.service")
    );
}

#[test]
fn a_bad_config_changes_nothing() {
    let f = Fixture::new(&with_backend(SPOKE, "launchd"));
    f.run(DaemonCommand::Install).expect("install");
    let plist_path = f.home().join("Library/LaunchAgents/test.heph.plist");
    let before = std::fs::read_to_string(&plist_path).expect("plist");
    let calls_before = f.read("launchctl.log");
    f.set_config(&format!(
        "{}\nhub_ulr = \"typo\"\n",
        with_backend(SPOKE, "launchd")
    ));
    let err = f.run(DaemonCommand::Restart).expect_err("typo refused");
    assert!(err.to_string().contains("hub_ulr"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&plist_path).expect("plist"),
        before,
        "plist untouched"
    );
    assert_eq!(
        f.read("launchctl.log"),
        calls_before,
        "launchctl not called"
    );
}

#[test]
fn render_prints_without_changing_anything() {
    let f = Fixture::new(&with_backend(SPOKE, "systemd"));
    let out = f.run(DaemonCommand::Render).expect("render");
    assert!(out.contains("ExecStart="), "{out}");
    assert!(!f.home().join(".config/systemd/user").exists());
    assert_eq!(f.read("systemctl.log"), "");
}

// ---- the supervisor, as a real detached process --------------------------------------------------

/// Entry point the supervisor tests start as `heph daemon supervise` (via a wrapper script around this
/// test binary). Does nothing when run normally.
#[test]
fn supervise_entry() {
    if let Some(spec) = std::env::var_os("HEPH_TEST_SUPERVISE_SPEC") {
        let r = super::supervisor::supervise(Path::new(&spec));
        std::process::exit(i32::from(r.is_err()));
    }
}

fn supervisor_fixture() -> Fixture {
    let f = Fixture::new(&with_backend(SPOKE, "supervisor"));
    let test_bin = std::env::current_exe().expect("test binary");
    write_script(
        &f.ctx.heph_exe,
        &format!(
            "[ \"$1 $2 $3\" = \"daemon supervise --spec\" ] || exit 64\n\
             HEPH_TEST_SUPERVISE_SPEC=\"$4\" exec {} --exact service::tests::supervise_entry --nocapture\n",
            test_bin.display()
        ),
    );
    f
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn supervisor_runs_restarts_and_stops_hephd_with_every_flag() {
    let f = supervisor_fixture();
    let cfg = f.ctx.load_config().expect("config");
    let spec = f.ctx.spec(&cfg);
    f.run(DaemonCommand::Install).expect("install");
    let state = Backend::Supervisor.state(&f.ctx, &spec).expect("state");
    assert!(state.running, "{state:?}");
    let pid1 = state.pid.expect("pid");
    wait_for("hephd args", || !f.read("hephd-args.txt").is_empty());
    assert_eq!(
        f.read("hephd-args.txt").trim(),
        cfg.hephd_args(f.home()).join(" ")
    );
    let env = f.read("hephd-env.txt");
    assert!(env.lines().any(|l| l == "RUSTUP_TOOLCHAIN=stable"), "{env}");
    assert!(
        env.lines()
            .any(|l| l.starts_with("PATH=") && l.contains("/.cargo/bin")),
        "{env}"
    );

    // hephd dies (a crash, or a self-update exiting): the supervisor starts it again.
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid1).expect("pid"),
        rustix::process::Signal::KILL,
    );
    wait_for("a new hephd", || {
        Backend::Supervisor
            .state(&f.ctx, &spec)
            .is_ok_and(|s| s.running && s.pid.is_some_and(|p| p != pid1))
    });

    // A second start refuses to run a second supervisor.
    let err = super::supervisor::start(&f.ctx, &spec).expect_err("second supervisor");
    assert!(err.to_string().contains("already runs"), "{err}");

    // Socket and status.
    let socket = cfg.socket(f.home());
    std::fs::create_dir_all(socket.parent().expect("dir")).expect("mkdir");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind socket");
    let status = f.run(DaemonCommand::Status { json: true }).expect("status");
    let v: serde_json::Value = serde_json::from_str(&status).expect("json");
    assert_eq!(v["running"], true, "{status}");
    assert_eq!(v["socket_alive"], true, "{status}");
    assert_eq!(v["version"], "hephd 9.9.9 (standin)");
    assert_eq!(v["unit_matches_config"], true);

    // Restart re-renders from a changed config.
    f.set_config(&with_backend(
        &format!("{SPOKE}\nowner_id = \"01J9ZQ4V8W6Y7X5T3R2Q1P0N9M\"\n"),
        "supervisor",
    ));
    std::fs::remove_file(f.home().join("hephd-args.txt")).expect("rm");
    f.run(DaemonCommand::Restart).expect("restart");
    wait_for("restarted hephd args", || {
        !f.read("hephd-args.txt").is_empty()
    });
    assert!(
        f.read("hephd-args.txt")
            .contains("--owner-id 01J9ZQ4V8W6Y7X5T3R2Q1P0N9M --oidc-issuer")
    );
    assert!(
        f.read("hephd-args.txt")
            .contains("--hub-url https://heph.ops.eblu.me")
    );

    let pid = Backend::Supervisor
        .state(&f.ctx, &spec)
        .expect("state")
        .pid
        .expect("pid");
    f.run(DaemonCommand::Stop).expect("stop");
    let state = Backend::Supervisor.state(&f.ctx, &spec).expect("state");
    assert!(!state.running, "{state:?}");
    assert!(!super::supervisor::alive(pid), "hephd stopped");
    f.run(DaemonCommand::Uninstall).expect("uninstall");
    assert!(!Backend::Supervisor.unit_path(&f.ctx, &spec).exists());
    let log = f.read(".local/state/heph/test.heph.err.log");
    assert!(log.contains("restarting in"), "{log}");
}

// ---- deploy/ templates are renders of example configs (they cannot drift from the renderer) ------------

/// The example hub config the deploy templates are rendered from (also shown in docs/operations.md).
pub(crate) const TEMPLATE_HUB: &str = r#"
mode = "server"
http_addr = "127.0.0.1:8787"
db = "~/.local/share/heph/heph.db"
web_root = "~/.local/share/heph/web"
oidc_issuer = "https://auth.example.org/application/o/heph/"
oidc_audience = "heph"
oidc_client_id = "heph"
authorized_sub = ["REPLACE-WITH-YOUR-OIDC-SUB"]

[self_update]
enabled = true
interval_secs = 600
"#;

/// The example spoke config the deploy templates are rendered from.
pub(crate) const TEMPLATE_SPOKE: &str = r#"
hub_url = "https://heph.example.org"
oidc_issuer = "https://auth.example.org/application/o/heph/"
oidc_client_id = "heph"
"#;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

#[test]
fn deploy_templates_are_current_renders() {
    let cases = [
        (
            TEMPLATE_HUB,
            Os::MacOs,
            "/Users/YOU",
            "launchd/heph.hub.plist",
        ),
        (
            TEMPLATE_SPOKE,
            Os::MacOs,
            "/Users/YOU",
            "launchd/heph.spoke.plist",
        ),
        (
            TEMPLATE_HUB,
            Os::Linux,
            "/home/YOU",
            "systemd/heph.hub.service",
        ),
        (
            TEMPLATE_SPOKE,
            Os::Linux,
            "/home/YOU",
            "systemd/heph.spoke.service",
        ),
    ];
    let bless = std::env::var_os("HEPH_BLESS").is_some();
    for (text, os, home, file) in cases {
        let c = parse(text).expect("template config");
        let spec = ServiceSpec::from_config(
            &c,
            Path::new("~/.config/heph/config.toml"),
            Path::new(home),
            os,
        );
        let want = match os {
            Os::MacOs => render_plist(&spec),
            Os::Linux => render_systemd(&spec),
        };
        let path = deploy_dir().join(file);
        if bless {
            std::fs::write(&path, &want).expect("bless");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            have, want,
            "{file} is not the current render of its example config; run `HEPH_BLESS=1 cargo nextest run -p heph-spoke deploy_templates` and review the diff"
        );
        if os == Os::MacOs {
            let d = plist_dict(&have);
            assert_eq!(plist_argv(&d)[1..], c.hephd_args(Path::new(home))[..]);
        }
    }
}

#[test]
fn the_default_forge_is_the_workspace_repository() {
    let ws = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
        .expect("workspace manifest");
    let line = ws
        .lines()
        .find(|l| l.trim_start().starts_with("repository"))
        .expect("repository line");
    assert!(
        line.contains(&format!("\"{}\"", super::config::DEFAULT_FORGE_URL)),
        "{line}"
    );
}
