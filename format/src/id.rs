//! ULID-based identifiers: `OwnerId`, `Origin`, `NodeId` (Crockford base32 text, 16-byte binary).

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Crockford's base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Why a piece of text is not a ULID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The text is not exactly 26 characters long.
    #[error("invalid ULID {text:?}: expected 26 characters, got {len}")]
    Length { text: String, len: usize },
    /// The text contains a character outside Crockford base32.
    #[error("invalid ULID {text:?}: character {ch:?} is not Crockford base32")]
    Character { text: String, ch: char },
    /// The first character encodes more than 128 bits.
    #[error("invalid ULID {text:?}: value overflows 128 bits (first character must be 0-7)")]
    Overflow { text: String },
}

/// A 128-bit ULID: 48 bits of Unix milliseconds followed by 80 random bits, big-endian.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ulid(pub [u8; 16]);

impl Ulid {
    /// The all-zero ULID (never minted; useful as a sentinel in tests).
    pub const NIL: Ulid = Ulid([0; 16]);

    /// Builds a ULID from a millisecond timestamp (only the low 48 bits are kept) and 10 random bytes.
    pub fn from_parts(unix_ms: u64, random: [u8; 10]) -> Ulid {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
        b[6..].copy_from_slice(&random);
        Ulid(b)
    }

    /// The timestamp part in Unix milliseconds.
    pub fn timestamp_ms(&self) -> u64 {
        let mut t = [0u8; 8];
        t[2..].copy_from_slice(&self.0[..6]);
        u64::from_be_bytes(t)
    }

    /// The 16-byte big-endian binary form.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// Writes the 26-character Crockford form into `out`.
    fn encode(&self, out: &mut [u8; 26]) {
        let v = u128::from_be_bytes(self.0);
        for (i, slot) in out.iter_mut().enumerate() {
            // 26 digits × 5 bits = 130 bits: the first digit carries only the top 3 bits.
            let digit = (v >> (125 - 5 * i)) & 0x1f;
            *slot = ALPHABET[digit as usize];
        }
    }
}

fn decode_char(c: u8) -> Option<u8> {
    let c = c.to_ascii_uppercase();
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        // Crockford: O reads as 0, I and L read as 1.
        b'O' => Some(0),
        b'I' | b'L' => Some(1),
        _ => ALPHABET.iter().position(|&a| a == c).map(|p| p as u8),
    }
}

impl FromStr for Ulid {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Ulid, IdError> {
        let bytes = s.as_bytes();
        if bytes.len() != 26 {
            return Err(IdError::Length {
                text: s.to_owned(),
                len: s.chars().count(),
            });
        }
        let mut v: u128 = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let Some(d) = decode_char(b) else {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(IdError::Character {
                    text: s.to_owned(),
                    ch,
                });
            };
            if i == 0 && d > 7 {
                return Err(IdError::Overflow { text: s.to_owned() });
            }
            v = (v << 5) | u128::from(d);
        }
        Ok(Ulid(v.to_be_bytes()))
    }
}

impl fmt::Display for Ulid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 26];
        self.encode(&mut out);
        // The alphabet is ASCII, so this is always valid UTF-8.
        f.write_str(core::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Ulid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Ulid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            // Fixed 16 bytes as a tuple: no length prefix in postcard.
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Ulid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ulid, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(Ulid(<[u8; 16]>::deserialize(d)?))
        }
    }
}

macro_rules! ulid_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Ulid);

        impl $name {
            /// Builds the id from a millisecond timestamp and 10 random bytes.
            pub fn from_parts(unix_ms: u64, random: [u8; 10]) -> $name {
                $name(Ulid::from_parts(unix_ms, random))
            }
            /// The 16-byte binary form.
            pub fn to_bytes(self) -> [u8; 16] {
                self.0.to_bytes()
            }
            /// Wraps a 16-byte binary form.
            pub fn from_bytes(bytes: [u8; 16]) -> $name {
                $name(Ulid(bytes))
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<$name, IdError> {
                s.parse().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

ulid_newtype!(
    /// The person who owns a set of replicas. Not a secret; shared by all of the owner's spokes.
    OwnerId
);
ulid_newtype!(
    /// One replica (a device, a browser profile). Two replicas must never share an origin.
    Origin
);
ulid_newtype!(
    /// A node: a task, a note or a project.
    NodeId
);

impl NodeId {
    /// The deterministic id of one occurrence of a recurring series: two replicas that create
    /// "the same" next instance concurrently produce the same id, so it is never duplicated.
    ///
    /// The timestamp part is the occurrence's day (so ids sort by occurrence); the random part is
    /// the first 10 bytes of `blake3("heph.occurrence.v1" || series || occurrence_ms)`.
    pub fn occurrence(series: NodeId, occurrence_ms: i64) -> NodeId {
        let mut h = blake3::Hasher::new();
        h.update(b"heph.occurrence.v1");
        h.update(&series.to_bytes());
        h.update(&occurrence_ms.to_be_bytes());
        let digest = h.finalize();
        let mut random = [0u8; 10];
        random.copy_from_slice(&digest.as_bytes()[..10]);
        NodeId::from_parts(occurrence_ms.max(0) as u64, random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_known_value() {
        let u = Ulid::from_parts(1_469_918_176_385, [0; 10]);
        assert_eq!(u.to_string(), "01ARYZ6S410000000000000000");
        assert_eq!("01ARYZ6S410000000000000000".parse::<Ulid>(), Ok(u));
        assert_eq!(u.timestamp_ms(), 1_469_918_176_385);
        let max = Ulid([0xff; 16]);
        assert_eq!(max.to_string(), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assert_eq!(max.to_string().parse::<Ulid>(), Ok(max));
    }

    #[test]
    fn lowercase_and_crockford_aliases_parse() {
        let a: Ulid = "01aryz6s410000000000000000".parse().unwrap();
        let b: Ulid = "01ARYZ6S41OOOOOOOOOOOOOOOO".parse().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn invalid_ulids_are_typed_errors() {
        assert!(matches!(
            "".parse::<Ulid>(),
            Err(IdError::Length { len: 0, .. })
        ));
        assert!(matches!(
            "01ARYZ6S41000000000000000U".parse::<Ulid>(),
            Err(IdError::Character { ch: 'U', .. })
        ));
        assert!(matches!(
            "81ARYZ6S410000000000000000".parse::<Ulid>(),
            Err(IdError::Overflow { .. })
        ));
        assert!(matches!(
            "01ARYZ6S41000000000000000é".parse::<Ulid>(),
            Err(IdError::Length { .. })
        ));
    }

    #[test]
    fn occurrence_ids_are_deterministic() {
        let series = NodeId::from_parts(1_700_000_000_000, [7; 10]);
        let a = NodeId::occurrence(series, 1_700_100_000_000);
        assert_eq!(a, NodeId::occurrence(series, 1_700_100_000_000));
        assert_ne!(a, NodeId::occurrence(series, 1_700_200_000_000));
        assert_eq!(a.0.timestamp_ms(), 1_700_100_000_000);
    }
}
