//! The HTTP hub client (`sync/v1` over reqwest): native builds use hyper+rustls, wasm32 uses `fetch`.
//!
//! Every answer is checked against `docs/protocol.md`; anything else becomes [`HubError::Protocol`].

use std::collections::BTreeMap;
use std::rc::Rc;

use async_trait::async_trait;
use heph_format::{ChainHead, DecodeLimits, Origin, OwnerId, SegmentId};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::hub::{
    HubClient, HubConfig, HubError, HubHeads, PushOutcome, SegmentEntry, SegmentList,
    SegmentStream, TokenProvider, WaitOutcome,
};

/// Checks that `url` is an absolute http(s) URL and returns it without a trailing slash.
pub fn normalise_hub_url(url: &str) -> Result<String, HubError> {
    let bad = |reason: &str| HubError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| bad(&format!("{e}; give e.g. http://127.0.0.1:8787")))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(bad(&format!(
            "scheme {:?} is not supported; the hub URL must start with http:// or https://",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("the URL has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("the URL must not have a query or fragment"));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// A hub over HTTP. See the module docs.
pub struct HttpHub {
    base: String,
    client: reqwest::Client,
    token: Rc<dyn TokenProvider>,
}

impl std::fmt::Debug for HttpHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpHub")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct WireHeads {
    owner: Option<OwnerId>,
    tag: String,
    origins: BTreeMap<Origin, ChainHead>,
    #[serde(default)]
    changed: Option<bool>,
}

#[derive(Deserialize)]
struct WireList {
    segments: Vec<SegmentEntry>,
    more: bool,
    head: Option<ChainHead>,
}

#[derive(Deserialize, Default)]
struct WireError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    head: Option<ChainHead>,
    #[serde(default)]
    expected_first_seq: Option<u64>,
    #[serde(default)]
    hub_owner: Option<OwnerId>,
}

impl HttpHub {
    /// A client for the hub at `url` (http or https) taking bearer tokens from `token`.
    pub fn new(url: &str, token: Rc<dyn TokenProvider>) -> Result<HttpHub, HubError> {
        let base = normalise_hub_url(url)?;
        #[cfg(not(target_arch = "wasm32"))]
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .tcp_nodelay(true)
            .build();
        #[cfg(target_arch = "wasm32")]
        let client = reqwest::Client::builder().build();
        let client = client.map_err(|e| HubError::BadUrl {
            url: url.to_owned(),
            reason: format!("cannot build an HTTP client: {e}"),
        })?;
        Ok(HttpHub {
            base,
            client,
            token,
        })
    }

    /// The same, with an HTTP client built by the caller (custom CA roots, proxies).
    pub fn with_client(
        url: &str,
        client: reqwest::Client,
        token: Rc<dyn TokenProvider>,
    ) -> Result<HttpHub, HubError> {
        Ok(HttpHub {
            base: normalise_hub_url(url)?,
            client,
            token,
        })
    }

    /// The normalised base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, e: &reqwest::Error) -> HubError {
        let mut reason = e.to_string();
        let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(s) = src {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            src = s.source();
        }
        HubError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(&[u8], SegmentId)>,
        timeout_secs: Option<u64>,
        auth: bool,
    ) -> Result<reqwest::Response, HubError> {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if !query.is_empty() {
            req = req.query(query);
        }
        if auth && let Some(t) = self.token.bearer().map_err(HubError::Token)? {
            req = req.bearer_auth(t);
        }
        if let Some((bytes, id)) = body {
            req = req
                .header("Heph-Segment-Id", id.to_string())
                .header("Content-Type", "application/octet-stream")
                .body(bytes.to_vec());
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            req = req.timeout(std::time::Duration::from_secs(timeout_secs.unwrap_or(60)));
        }
        #[cfg(target_arch = "wasm32")]
        let _ = timeout_secs;
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        Ok(resp)
    }

    async fn error_of(&self, resp: reqwest::Response, origin: Option<(Origin, u64)>) -> HubError {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let w: WireError = serde_json::from_str(&text).unwrap_or_default();
        let message = if w.message.is_empty() {
            let t: String = text.chars().take(200).collect();
            if t.is_empty() { status.to_string() } else { t }
        } else {
            w.message.clone()
        };
        let (o, seq) = origin.unwrap_or_default();
        match (status.as_u16(), w.error.as_str()) {
            (401, _) => {
                self.token.rejected();
                HubError::Unauthorized { message }
            }
            (403, "wrong_owner") => HubError::WrongOwner {
                hub_owner: w.hub_owner,
                message,
            },
            (403, _) => HubError::Forbidden { message },
            (409, "occupied") => HubError::Occupied {
                origin: o,
                first_seq: seq,
                head: w.head,
                message,
            },
            (409, "gap") => HubError::Gap {
                origin: o,
                expected_first_seq: w.expected_first_seq.unwrap_or(0),
                head: w.head,
                message,
            },
            (409, "fork") => HubError::Fork {
                origin: o,
                head: w.head,
                message,
            },
            (404, _) => HubError::NotFound { what: message },
            (s, _) if s >= 500 => HubError::Unavailable {
                status: s,
                code: w.error,
                message,
            },
            (s, code) if w.error.is_empty() && !(400..500).contains(&s) => HubError::Protocol {
                reason: format!("unexpected HTTP status {s} {code}: {message}"),
            },
            (s, code) => HubError::Rejected {
                status: s,
                code: code.to_owned(),
                message,
            },
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        resp: reqwest::Response,
        what: &str,
    ) -> Result<T, HubError> {
        let bytes = resp.bytes().await.map_err(|e| HubError::Truncated {
            reason: format!("{what}: {e}"),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| HubError::Protocol {
            reason: format!("{what} is not the expected JSON: {e}"),
        })
    }
}

fn heads_of(w: WireHeads) -> HubHeads {
    HubHeads {
        owner: w.owner,
        tag: w.tag,
        origins: w.origins,
    }
}

const STREAM_PREAMBLE: &[u8; 8] = b"HEPHSTR1";

/// Parses the `HEPHSTR1` framing from response chunks.
struct HttpStream {
    /// The response being read; `None` once its body is used up (wasm32 reads it in one piece).
    resp: Option<reqwest::Response>,
    buf: Vec<u8>,
    pos: usize,
    started: bool,
    done: bool,
    max_frame: u64,
}

impl HttpStream {
    fn available(&self) -> usize {
        self.buf.len() - self.pos
    }

    async fn fill(&mut self, need: usize) -> Result<bool, HubError> {
        while self.available() < need {
            if self.pos > 0 && self.pos * 2 > self.buf.len() {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            // reqwest's fetch backend (wasm32) has no `chunk()`: there the body is read in one piece.
            #[cfg(not(target_arch = "wasm32"))]
            let next = match self.resp.as_mut() {
                Some(r) => r.chunk().await,
                None => Ok(None),
            };
            #[cfg(target_arch = "wasm32")]
            let next = match self.resp.take() {
                Some(r) => r.bytes().await.map(Some),
                None => Ok(None),
            };
            match next {
                Ok(Some(c)) => self.buf.extend_from_slice(&c),
                Ok(None) => return Ok(false),
                Err(e) => {
                    return Err(HubError::Truncated {
                        reason: format!("reading the stream failed: {e}"),
                    });
                }
            }
        }
        Ok(true)
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }
}

#[async_trait(?Send)]
impl SegmentStream for HttpStream {
    async fn next_segment(&mut self) -> Result<Option<(SegmentId, Vec<u8>)>, HubError> {
        if self.done {
            return Ok(None);
        }
        if !self.started {
            if !self.fill(8).await? {
                return Err(HubError::Truncated {
                    reason: "the stream ended before its preamble".into(),
                });
            }
            if self.take(8) != STREAM_PREAMBLE {
                return Err(HubError::Protocol {
                    reason: "the stream does not start with HEPHSTR1".into(),
                });
            }
            self.started = true;
        }
        if !self.fill(36).await? {
            return Err(HubError::Truncated {
                reason: "the stream ended without its end frame".into(),
            });
        }
        let head = self.take(36);
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&head[4..36]);
        if len == 0 {
            if id != [0u8; 32] {
                return Err(HubError::Protocol {
                    reason: "the stream's end frame has a non-zero id".into(),
                });
            }
            self.done = true;
            return Ok(None);
        }
        if u64::from(len) > self.max_frame {
            return Err(HubError::Protocol {
                reason: format!(
                    "stream frame of {len} bytes exceeds the segment limit of {}",
                    self.max_frame
                ),
            });
        }
        if !self.fill(len as usize).await? {
            return Err(HubError::Truncated {
                reason: format!("the stream ended inside a frame of {len} bytes"),
            });
        }
        let bytes = self.take(len as usize).to_vec();
        Ok(Some((SegmentId(id), bytes)))
    }
}

#[async_trait(?Send)]
impl HubClient for HttpHub {
    fn describe(&self) -> String {
        self.base.clone()
    }

    async fn config(&self) -> Result<HubConfig, HubError> {
        let resp = self
            .send(Method::GET, "/config", &[], None, Some(15), false)
            .await?;
        if !resp.status().is_success() {
            return Err(self.error_of(resp, None).await);
        }
        let c: HubConfig = self.json(resp, "GET /config").await?;
        if c.api.as_deref().is_some_and(|a| a != "sync/v1") {
            return Err(HubError::Protocol {
                reason: format!("the hub speaks {:?}, this spoke speaks sync/v1", c.api),
            });
        }
        Ok(c)
    }

    async fn heads(&self) -> Result<HubHeads, HubError> {
        let resp = self
            .send(Method::GET, "/sync/v1/heads", &[], None, Some(30), true)
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self.error_of(resp, None).await);
        }
        Ok(heads_of(self.json(resp, "GET /sync/v1/heads").await?))
    }

    async fn push(
        &self,
        origin: Origin,
        first_seq: u64,
        id: SegmentId,
        bytes: &[u8],
    ) -> Result<PushOutcome, HubError> {
        let path = format!("/sync/v1/segments/{origin}/{first_seq}");
        let resp = self
            .send(Method::PUT, &path, &[], Some((bytes, id)), Some(60), true)
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(PushOutcome::Stored),
            StatusCode::OK => Ok(PushOutcome::Exists),
            _ => Err(self.error_of(resp, Some((origin, first_seq))).await),
        }
    }

    async fn list(&self, origin: Origin, after: u64, limit: u32) -> Result<SegmentList, HubError> {
        let path = format!("/sync/v1/segments/{origin}");
        let q = [("after", after.to_string()), ("limit", limit.to_string())];
        let resp = self
            .send(Method::GET, &path, &q, None, Some(30), true)
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self.error_of(resp, Some((origin, after))).await);
        }
        let w: WireList = self.json(resp, "the segment list").await?;
        Ok(SegmentList {
            segments: w.segments,
            more: w.more,
            head: w.head,
        })
    }

    async fn blob(&self, id: SegmentId) -> Result<Vec<u8>, HubError> {
        let resp = self
            .send(
                Method::GET,
                &format!("/sync/v1/blobs/{id}"),
                &[],
                None,
                Some(60),
                true,
            )
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self.error_of(resp, None).await);
        }
        let b = resp.bytes().await.map_err(|e| HubError::Truncated {
            reason: format!("blob {id}: {e}"),
        })?;
        Ok(b.to_vec())
    }

    async fn stream<'a>(
        &'a self,
        after: &[(Origin, u64)],
        only: &[Origin],
    ) -> Result<Box<dyn SegmentStream + 'a>, HubError> {
        let mut q: Vec<(&str, String)> = after
            .iter()
            .map(|(o, s)| ("after", format!("{o}:{s}")))
            .collect();
        q.extend(only.iter().map(|o| ("origin", o.to_string())));
        // A bring-up stream may legitimately take long; the timeout covers the whole body.
        let resp = self
            .send(Method::GET, "/sync/v1/stream", &q, None, Some(3600), true)
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self.error_of(resp, None).await);
        }
        Ok(Box::new(HttpStream {
            resp: Some(resp),
            buf: Vec::new(),
            pos: 0,
            started: false,
            done: false,
            max_frame: DecodeLimits::DEFAULT.max_segment_bytes,
        }))
    }

    async fn wait(&self, tag: Option<&str>, timeout_secs: u64) -> Result<WaitOutcome, HubError> {
        let mut q = vec![("timeout_secs", timeout_secs.min(120).to_string())];
        if let Some(t) = tag {
            q.push(("tag", t.to_owned()));
        }
        let resp = self
            .send(
                Method::GET,
                "/sync/v1/wait",
                &q,
                None,
                Some(timeout_secs.min(120) + 15),
                true,
            )
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self.error_of(resp, None).await);
        }
        let w: WireHeads = self.json(resp, "GET /sync/v1/wait").await?;
        let changed = w.changed.unwrap_or(true);
        Ok(WaitOutcome {
            changed,
            heads: heads_of(w),
        })
    }
}
