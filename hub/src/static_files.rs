//! Static files for the PWA from `--web-root`: content types, cache headers, traversal-proof paths.

use std::path::{Component, Path, PathBuf};

/// A resolved static file.
#[derive(Debug)]
pub(crate) struct StaticFile {
    pub(crate) path: PathBuf,
    pub(crate) content_type: &'static str,
    pub(crate) cache_control: &'static str,
}

/// Percent-decodes `s` once; `None` for a malformed escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The content type for a file name, by extension.
pub(crate) fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("wasm") => "application/wasm",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("xml") => "application/xml",
        _ => "application/octet-stream",
    }
}

/// Resolves a request path against the canonical web root, or `None` (answered 404).
///
/// The path is percent-decoded once; `..`/`.` segments, backslashes, NUL and drive prefixes are
/// refused outright, and the final file must canonicalise to a path inside `root` (so symlinks that
/// leave the root are refused too).
pub(crate) fn resolve(root: &Path, request_path: &str) -> Option<StaticFile> {
    let decoded = percent_decode(request_path)?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return None;
    }
    let mut rel = PathBuf::new();
    for seg in decoded.split('/') {
        if seg.is_empty() {
            continue;
        }
        if seg == "." || seg == ".." || seg.contains(':') {
            return None;
        }
        rel.push(seg);
    }
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let mut candidate = root.join(&rel);
    if candidate.is_dir() {
        candidate.push("index.html");
    }
    let real = candidate.canonicalize().ok()?;
    if !real.starts_with(root) || !real.is_file() {
        return None;
    }
    let name = real.file_name()?.to_str()?.to_owned();
    Some(StaticFile {
        content_type: content_type(&name),
        // Service worker updates must never be masked by an HTTP cache; the rest of the shell is
        // versioned by the service worker, so revalidate everything.
        cache_control: "no-cache",
        path: real,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("%2e%2E/a").as_deref(), Some("../a"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
    }

    #[test]
    fn traversal_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("www");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join("index.html"), "hi").expect("write");
        std::fs::write(dir.path().join("secret"), "no").expect("write");
        let root = root.canonicalize().expect("canon");
        assert!(resolve(&root, "/").is_some());
        assert!(resolve(&root, "/index.html").is_some());
        for bad in [
            "/../secret",
            "/%2e%2e/secret",
            "/%2E%2E%2Fsecret",
            "/a/..%2f..%2fsecret",
            "/..\\secret",
            "/%00",
            "/C:/x",
        ] {
            assert!(resolve(&root, bad).is_none(), "{bad}");
        }
    }
}
