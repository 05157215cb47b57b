//! An in-memory hub: the same chain rules as the real hub (via heph-format), no I/O. For fast tests.
//!
//! Clones share one store, so several replicas can sync through one `MemoryHub`. [`MemoryHub::tamper`]
//! lets tests make it misbehave (serve wrong bytes, cut streams) the way a broken hub could.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use heph_format::chain::{advance, check_owner};
use heph_format::{
    ChainError, ChainHead, DecodeLimits, Origin, OwnerId, SegmentHeader, SegmentId,
    check_continues, decode_header,
};

use super::hub::{
    HubClient, HubConfig, HubError, HubHeads, PushOutcome, SegmentEntry, SegmentList,
    SegmentStream, WaitOutcome,
};

/// How a tampered [`MemoryHub`] misbehaves when serving segments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tamper {
    /// Behave.
    #[default]
    None,
    /// Flip a byte in every served segment (the id no longer matches).
    CorruptBytes,
    /// End streams after this many frames without the end frame.
    CutStreamAfter(usize),
    /// Every call fails as if the hub were down.
    Down,
}

#[derive(Debug, Default)]
struct Stored {
    header: Option<SegmentHeader>,
    id: Option<SegmentId>,
    bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    owner: Option<OwnerId>,
    chains: BTreeMap<Origin, Vec<Stored>>,
    tamper: Tamper,
}

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct MemoryHub {
    state: Arc<Mutex<State>>,
}

impl MemoryHub {
    /// An empty hub whose owner is fixed by the first push.
    pub fn new() -> MemoryHub {
        MemoryHub::default()
    }

    /// An empty hub serving exactly `owner` (like `--owner-id`).
    pub fn with_owner(owner: OwnerId) -> MemoryHub {
        let hub = MemoryHub::default();
        hub.lock().owner = Some(owner);
        hub
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Makes the hub misbehave (or behave again with [`Tamper::None`]).
    pub fn tamper(&self, how: Tamper) {
        self.lock().tamper = how;
    }

    /// Appends `bytes` to `origin`'s chain without any check (a broken or malicious hub).
    pub fn inject_unchecked(&self, origin: Origin, bytes: Vec<u8>) {
        let header = decode_header(&bytes, &DecodeLimits::DEFAULT).ok();
        self.lock().chains.entry(origin).or_default().push(Stored {
            header,
            id: Some(SegmentId::of(&bytes)),
            bytes,
        });
    }

    /// Forgets every segment of `origin` from position `from_index` on (a hub restored from an old backup).
    pub fn truncate_chain(&self, origin: Origin, keep_segments: usize) {
        if let Some(c) = self.lock().chains.get_mut(&origin) {
            c.truncate(keep_segments);
        }
    }

    fn check_up(st: &State) -> Result<(), HubError> {
        if st.tamper == Tamper::Down {
            return Err(HubError::Unreachable {
                url: "memory".into(),
                reason: "the in-memory hub is switched off".into(),
            });
        }
        Ok(())
    }

    fn head_of(chain: &[Stored]) -> Option<ChainHead> {
        let mut head: Option<ChainHead> = None;
        for s in chain {
            if let (Some(h), Some(id)) = (&s.header, s.id) {
                head = Some(advance(head.as_ref(), h, id));
            }
        }
        head
    }

    fn heads_of(st: &State) -> HubHeads {
        let origins: BTreeMap<Origin, ChainHead> = st
            .chains
            .iter()
            .filter_map(|(o, c)| MemoryHub::head_of(c).map(|h| (*o, h)))
            .collect();
        HubHeads {
            owner: st.owner,
            tag: heads_tag(&origins),
            origins,
        }
    }

    fn served(st: &State, bytes: &[u8]) -> Vec<u8> {
        let mut b = bytes.to_vec();
        if st.tamper == Tamper::CorruptBytes
            && let Some(last) = b.last_mut()
        {
            *last ^= 0x55;
        }
        b
    }
}

/// The heads tag as `docs/protocol.md` defines it: the first 16 bytes of blake3 over the sorted
/// `origin ‖ last_seq ‖ hash` list, as 32 hex digits.
pub fn heads_tag(origins: &BTreeMap<Origin, ChainHead>) -> String {
    let mut h = blake3::Hasher::new();
    for (o, head) in origins {
        h.update(&o.to_bytes());
        h.update(&head.last_seq.to_le_bytes());
        h.update(&head.hash.0);
    }
    h.finalize().as_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct MemoryStream {
    frames: std::vec::IntoIter<(SegmentId, Vec<u8>)>,
    cut_after: Option<usize>,
    sent: usize,
}

#[async_trait(?Send)]
impl SegmentStream for MemoryStream {
    async fn next_segment(&mut self) -> Result<Option<(SegmentId, Vec<u8>)>, HubError> {
        if self.cut_after.is_some_and(|n| self.sent >= n) {
            return Err(HubError::Truncated {
                reason: format!(
                    "stream ended after {} frames without its end frame",
                    self.sent
                ),
            });
        }
        self.sent += 1;
        Ok(self.frames.next())
    }
}

#[async_trait(?Send)]
impl HubClient for MemoryHub {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn config(&self) -> Result<HubConfig, HubError> {
        let st = self.lock();
        MemoryHub::check_up(&st)?;
        Ok(HubConfig {
            hub_version: Some("memory".into()),
            api: Some("sync/v1".into()),
            dev_mode: true,
            owner: st.owner,
            ..HubConfig::default()
        })
    }

    async fn heads(&self) -> Result<HubHeads, HubError> {
        let st = self.lock();
        MemoryHub::check_up(&st)?;
        Ok(MemoryHub::heads_of(&st))
    }

    async fn push(
        &self,
        origin: Origin,
        first_seq: u64,
        id: SegmentId,
        bytes: &[u8],
    ) -> Result<PushOutcome, HubError> {
        let mut st = self.lock();
        MemoryHub::check_up(&st)?;
        let rejected = |code: &str, message: String| HubError::Rejected {
            status: 400,
            code: code.into(),
            message,
        };
        if let Err(e) = id.verify(bytes) {
            return Err(rejected("hash_mismatch", e.to_string()));
        }
        let header = decode_header(bytes, &DecodeLimits::DEFAULT)
            .map_err(|e| rejected("malformed", e.to_string()))?;
        if header.origin != origin || header.first_seq != first_seq {
            return Err(rejected(
                "url_mismatch",
                "the URL's origin or first_seq differs from the segment header".into(),
            ));
        }
        if let Some(owner) = st.owner
            && let Err(e) = check_owner(owner, &header)
        {
            return Err(HubError::WrongOwner {
                hub_owner: Some(owner),
                message: e.to_string(),
            });
        }
        let chain = st.chains.entry(origin).or_default();
        let head = MemoryHub::head_of(chain);
        if let Some(existing) = chain
            .iter()
            .find(|s| s.header.is_some_and(|h| h.first_seq == first_seq))
            && existing.id == Some(id)
        {
            return Ok(PushOutcome::Exists);
        }
        match check_continues(head.as_ref(), &header) {
            Ok(()) => {}
            Err(ChainError::Occupied { .. }) => {
                return Err(HubError::Occupied {
                    origin,
                    first_seq,
                    head,
                    message: format!("a different segment already holds seq {first_seq}"),
                });
            }
            Err(ChainError::Gap { expected, found }) => {
                return Err(HubError::Gap {
                    origin,
                    expected_first_seq: expected,
                    head,
                    message: format!(
                        "gap: chain expects first_seq {expected}, segment starts at {found}"
                    ),
                });
            }
            Err(e) => {
                return Err(HubError::Fork {
                    origin,
                    head,
                    message: e.to_string(),
                });
            }
        }
        chain.push(Stored {
            header: Some(header),
            id: Some(id),
            bytes: bytes.to_vec(),
        });
        if st.owner.is_none() {
            st.owner = Some(header.owner);
        }
        Ok(PushOutcome::Stored)
    }

    async fn list(&self, origin: Origin, after: u64, limit: u32) -> Result<SegmentList, HubError> {
        let st = self.lock();
        MemoryHub::check_up(&st)?;
        let limit = limit.clamp(1, 1000) as usize;
        let chain = st.chains.get(&origin).map(Vec::as_slice).unwrap_or(&[]);
        let all: Vec<SegmentEntry> = chain
            .iter()
            .filter_map(|s| {
                let h = s.header?;
                Some(SegmentEntry {
                    first_seq: h.first_seq,
                    last_seq: h.last_seq(),
                    hash: s.id?,
                    len: s.bytes.len() as u64,
                })
            })
            .filter(|e| e.last_seq > after)
            .collect();
        let more = all.len() > limit;
        Ok(SegmentList {
            segments: all.into_iter().take(limit).collect(),
            more,
            head: MemoryHub::head_of(chain),
        })
    }

    async fn blob(&self, id: SegmentId) -> Result<Vec<u8>, HubError> {
        let st = self.lock();
        MemoryHub::check_up(&st)?;
        st.chains
            .values()
            .flatten()
            .find(|s| s.id == Some(id))
            .map(|s| MemoryHub::served(&st, &s.bytes))
            .ok_or_else(|| HubError::NotFound {
                what: format!("blob {id}"),
            })
    }

    async fn stream<'a>(
        &'a self,
        after: &[(Origin, u64)],
        only: &[Origin],
    ) -> Result<Box<dyn SegmentStream + 'a>, HubError> {
        let st = self.lock();
        MemoryHub::check_up(&st)?;
        let mut frames = Vec::new();
        for (origin, chain) in &st.chains {
            if !only.is_empty() && !only.contains(origin) {
                continue;
            }
            let skip = after
                .iter()
                .find(|(o, _)| o == origin)
                .map_or(0, |(_, s)| *s);
            for s in chain {
                let last = s.header.map_or(u64::MAX, |h| h.last_seq());
                if last <= skip {
                    continue;
                }
                frames.push((s.id.unwrap_or_default(), MemoryHub::served(&st, &s.bytes)));
            }
        }
        let cut_after = match st.tamper {
            Tamper::CutStreamAfter(n) => Some(n),
            _ => None,
        };
        Ok(Box::new(MemoryStream {
            frames: frames.into_iter(),
            cut_after,
            sent: 0,
        }))
    }

    async fn wait(&self, tag: Option<&str>, _timeout_secs: u64) -> Result<WaitOutcome, HubError> {
        // Without a runtime there is nothing to block on: answer at once, as the real hub does on a change.
        let st = self.lock();
        MemoryHub::check_up(&st)?;
        let heads = MemoryHub::heads_of(&st);
        Ok(WaitOutcome {
            changed: tag != Some(heads.tag.as_str()),
            heads,
        })
    }
}
