//! The issuer's signing keys: OIDC discovery, JWKS fetch and parsing into verification keys.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::error::OidcError;

/// Parse a JOSE `alg` name, allowing only RS256, ES256 and EdDSA. Never `none`, never HMAC: a public key
/// can't be a MAC secret.
pub(crate) fn allowed_alg(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// One usable verification key.
pub(crate) struct VerifyKey {
    /// The only algorithm this key verifies.
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The issuer's current key set, by `kid` (keys without a `kid` under the empty string).
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    pub(crate) by_kid: HashMap<String, VerifyKey>,
}

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// The discovery URL for an issuer (OIDC Discovery §4: issuer with any trailing `/` removed, then
/// `/.well-known/openid-configuration`).
pub(crate) fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

async fn get_json(
    http: &reqwest::Client,
    url: &str,
    limit: usize,
) -> Result<serde_json::Value, OidcError> {
    let fetch_err = |message: String| OidcError::Fetch {
        url: url.to_string(),
        message,
    };
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| fetch_err(error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(fetch_err(format!("HTTP {status}")));
    }
    let body = resp.bytes().await.map_err(|e| fetch_err(error_chain(&e)))?;
    if body.len() > limit {
        return Err(OidcError::BadDocument {
            url: url.to_string(),
            message: format!("larger than {limit} bytes"),
        });
    }
    serde_json::from_slice(&body).map_err(|e| OidcError::BadDocument {
        url: url.to_string(),
        message: format!("not JSON: {e}"),
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Fetch the discovery document, check its issuer is exactly `issuer`, return the `jwks_uri`.
pub(crate) async fn discover(http: &reqwest::Client, issuer: &str) -> Result<String, OidcError> {
    let url = discovery_url(issuer);
    let doc = get_json(http, &url, 256 * 1024).await?;
    let doc: Discovery = serde_json::from_value(doc).map_err(|e| OidcError::BadDocument {
        url: url.clone(),
        message: e.to_string(),
    })?;
    if doc.issuer != issuer {
        return Err(OidcError::IssuerMismatch {
            url,
            expected: issuer.to_string(),
            found: doc.issuer,
        });
    }
    doc.jwks_uri.ok_or(OidcError::BadDocument {
        url,
        message: "no jwks_uri".into(),
    })
}

/// Fetch and parse the JWKS. Keys that can't be used for RS256/ES256/EdDSA signature verification are
/// skipped; no usable key at all is an error.
pub(crate) async fn fetch_jwks(
    http: &reqwest::Client,
    jwks_uri: &str,
) -> Result<KeySet, OidcError> {
    let doc = get_json(http, jwks_uri, 1024 * 1024).await?;
    parse_jwks(jwks_uri, doc)
}

pub(crate) fn parse_jwks(url: &str, doc: serde_json::Value) -> Result<KeySet, OidcError> {
    let raw: RawJwks = serde_json::from_value(doc).map_err(|e| OidcError::BadDocument {
        url: url.to_string(),
        message: format!("not a JWK set: {e}"),
    })?;
    let mut set = KeySet::default();
    let mut skipped = Vec::new();
    for value in raw.keys {
        let kid = value
            .get("kid")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_string();
        match usable_key(value) {
            Ok(key) => {
                set.by_kid.insert(kid, key);
            }
            Err(why) => skipped.push(format!("{kid:?}: {why}")),
        }
    }
    if set.by_kid.is_empty() {
        return Err(OidcError::NoUsableKeys {
            url: url.to_string(),
            skipped: skipped.len(),
            details: if skipped.is_empty() {
                "the set is empty".into()
            } else {
                skipped.join("; ")
            },
        });
    }
    Ok(set)
}

fn usable_key(value: serde_json::Value) -> Result<VerifyKey, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("unparseable JWK: {e}"))?;
    if let Some(u) = &jwk.common.public_key_use
        && *u != PublicKeyUse::Signature
    {
        return Err("not a signature key (use)".into());
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => return Err("symmetric key (never used)".into()),
        _ => return Err("unsupported key type or curve".into()),
    };
    if let Some(declared) = jwk.common.key_algorithm {
        let matches = matches!(
            (declared, alg),
            (KeyAlgorithm::RS256, Algorithm::RS256)
                | (KeyAlgorithm::ES256, Algorithm::ES256)
                | (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
        );
        if !matches {
            return Err(format!("key algorithm {declared:?} not allowed"));
        }
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("bad key material: {e}"))?;
    Ok(VerifyKey { alg, key })
}

/// Build the HTTP client used for discovery and JWKS: bounded timeouts, no redirects to other hosts.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, OidcError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("hephd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| OidcError::Config(format!("cannot build HTTP client: {e}")))
}
