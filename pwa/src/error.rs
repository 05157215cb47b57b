//! Typed errors of the browser spoke, and the JSON shape the worker hands to the UI.

use serde::Serialize;

/// Why the browser spoke could not do what was asked. The UI shows `message` and `hint`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PwaError {
    /// The browser offers no Origin Private File System sync access handles (old browser, private mode,
    /// or code not running in a dedicated worker).
    #[error("this browser offers no persistent storage (OPFS): {detail}")]
    NoOpfs {
        /// What the browser said.
        detail: String,
    },
    /// The storage quota is exhausted.
    #[error("storage is full: {detail}")]
    Quota {
        /// What the browser or SQLite said.
        detail: String,
    },
    /// The replica database exists but is not a readable SQLite database.
    #[error("the local replica is damaged: {detail}")]
    Corrupt {
        /// What SQLite said.
        detail: String,
    },
    /// Any other storage failure.
    #[error("storage error: {detail}")]
    Storage {
        /// What failed.
        detail: String,
    },
    /// The request from the UI was malformed (not JSON, unknown method, bad parameters).
    #[error("bad request: {detail}")]
    BadRequest {
        /// What is wrong with it.
        detail: String,
    },
    /// The spoke core refused the call (unknown id, invalid date, ...).
    #[error("{message}")]
    Rpc {
        /// The core's error code.
        code: String,
        /// The core's one-line message.
        message: String,
    },
    /// Talking to the hub failed (offline, hub down, expired token, refused push).
    #[error("sync: {message}")]
    Sync {
        /// A stable code: `offline`, `hub_down`, `auth`, `refused`, `protocol`.
        code: String,
        /// What happened.
        message: String,
    },
}

/// The error object posted to the UI thread: `{ "code": ..., "message": ..., "hint": ... }`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: String,
    /// One line saying what is wrong.
    pub message: String,
    /// One line saying what to do about it.
    pub hint: String,
}

impl PwaError {
    /// The stable code the UI switches on.
    pub fn code(&self) -> String {
        match self {
            PwaError::NoOpfs { .. } => "no_opfs".into(),
            PwaError::Quota { .. } => "quota".into(),
            PwaError::Corrupt { .. } => "corrupt".into(),
            PwaError::Storage { .. } => "storage".into(),
            PwaError::BadRequest { .. } => "bad_request".into(),
            PwaError::Rpc { code, .. } => code.clone(),
            PwaError::Sync { code, .. } => format!("sync_{code}"),
        }
    }

    /// What the person should do next.
    pub fn hint(&self) -> String {
        match self {
            PwaError::NoOpfs { .. } => {
                "Use a current Chrome, Edge, Safari or Firefox outside private \
                browsing. Captures are kept on this page until storage works."
                    .into()
            }
            PwaError::Quota { .. } => {
                "Free some space on this device or allow this site more storage, \
                then press Try again. Unsent captures are kept on this page."
                    .into()
            }
            PwaError::Corrupt { .. } => {
                "Reset the local replica in Settings: it is rebuilt from the hub \
                after login. Unsent captures are kept and re-added."
                    .into()
            }
            PwaError::Storage { .. } => {
                "Reload the page. If it persists, reset the local replica in Settings.".into()
            }
            PwaError::BadRequest { .. } => "This is a bug in the app; reload the page.".into(),
            PwaError::Rpc { .. } => String::new(),
            PwaError::Sync { code, .. } => match code.as_str() {
                "auth" => "Log in again in Settings.".into(),
                "offline" | "hub_down" => {
                    "Changes are kept here and sent when the hub is reachable.".into()
                }
                _ => "Changes are kept here; see Settings for details.".into(),
            },
        }
    }

    /// The body posted to the UI.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            hint: self.hint(),
        }
    }

    /// Classifies a SQLite failure met while opening or using the replica.
    pub fn from_sqlite_text(text: &str) -> PwaError {
        let lower = text.to_ascii_lowercase();
        if lower.contains("not a database")
            || lower.contains("malformed")
            || lower.contains("corrupt")
        {
            PwaError::Corrupt {
                detail: text.to_owned(),
            }
        } else if lower.contains("full") || lower.contains("quota") {
            PwaError::Quota {
                detail: text.to_owned(),
            }
        } else {
            PwaError::Storage {
                detail: text.to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_texts_are_classified() {
        assert_eq!(
            PwaError::from_sqlite_text("file is not a database").code(),
            "corrupt"
        );
        assert_eq!(
            PwaError::from_sqlite_text("database disk image is malformed").code(),
            "corrupt"
        );
        assert_eq!(
            PwaError::from_sqlite_text("database or disk is full").code(),
            "quota"
        );
        assert_eq!(
            PwaError::from_sqlite_text("disk I/O error").code(),
            "storage"
        );
    }

    #[test]
    fn bodies_carry_a_hint() {
        let b = PwaError::NoOpfs { detail: "x".into() }.body();
        assert_eq!(b.code, "no_opfs");
        assert!(b.message.contains("OPFS"));
        assert!(!b.hint.is_empty());
        let s = PwaError::Sync {
            code: "auth".into(),
            message: "token expired".into(),
        };
        assert_eq!(s.code(), "sync_auth");
        assert!(s.hint().contains("Log in"));
    }
}
