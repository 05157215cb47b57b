//! Self-signed TLS material for the HTTPS tests: one certificate for `localhost` and `127.0.0.1`
//! that doubles as its own CA file.

use std::path::PathBuf;

/// A certificate (`cert`, PEM, also usable as the CA file that trusts it) and its key (`key`, PEM), in a
/// temp dir removed on drop.
#[derive(Debug)]
pub struct TestCerts {
    _dir: tempfile::TempDir,
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
}

/// Generates a fresh self-signed certificate for `localhost` and `127.0.0.1`.
pub fn self_signed() -> TestCerts {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("rcgen");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    TestCerts {
        _dir: dir,
        cert,
        key,
    }
}
