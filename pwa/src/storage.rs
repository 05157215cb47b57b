//! OPFS storage for the replica: installs the sahpool VFS (once per worker) and classifies failures.

use std::cell::RefCell;

use sqlite_wasm_vfs::sahpool::{OpfsSAHError, OpfsSAHPoolCfgBuilder, OpfsSAHPoolUtil, install};

use crate::error::PwaError;

/// The OPFS directory holding the pool's slot files.
pub(crate) const POOL_DIR: &str = ".heph-pool";

thread_local! {
    static POOL: RefCell<Option<OpfsSAHPoolUtil>> = const { RefCell::new(None) };
}

/// Installs the OPFS sync-access-handle pool as SQLite's default VFS (idempotent).
pub(crate) async fn install_pool() -> Result<(), PwaError> {
    if POOL.with(|p| p.borrow().is_some()) {
        return Ok(());
    }
    let cfg = OpfsSAHPoolCfgBuilder::new()
        .vfs_name("heph-opfs")
        .directory(POOL_DIR)
        .initial_capacity(8)
        .build();
    let util = install::<sqlite_wasm_rs::WasmOsCallback>(&cfg, true)
        .await
        .map_err(classify)?;
    POOL.with(|p| *p.borrow_mut() = Some(util));
    Ok(())
}

/// Deletes every file in the pool (used by "reset local replica"). The connection must be closed.
pub(crate) fn clear_pool() -> Result<(), PwaError> {
    use rsqlite_vfs::VfsFilesManager as _;
    POOL.with(|p| match p.borrow().as_ref() {
        Some(util) => util.clear().map_err(classify),
        None => Ok(()),
    })
}

/// Slots in use and total, for the settings page.
pub(crate) fn pool_usage() -> (usize, usize) {
    POOL.with(|p| match p.borrow().as_ref() {
        Some(util) => {
            use rsqlite_vfs::VfsFilesManager as _;
            (util.len().unwrap_or(0), util.capacity())
        }
        None => (0, 0),
    })
}

fn classify(e: OpfsSAHError) -> PwaError {
    let text = format!("{e}");
    match &e {
        OpfsSAHError::NotSupported => PwaError::NoOpfs { detail: text },
        OpfsSAHError::NoCapacity | OpfsSAHError::OutOfMemory => PwaError::Quota { detail: text },
        OpfsSAHError::NeedsRecovery
        | OpfsSAHError::InvalidHeader { .. }
        | OpfsSAHError::DuplicateFilename(_) => PwaError::Corrupt { detail: text },
        OpfsSAHError::Opfs { message, .. } if message.contains("Quota") => {
            PwaError::Quota { detail: text }
        }
        OpfsSAHError::Opfs { message, .. }
            if message.contains("SecurityError") || message.contains("NotAllowedError") =>
        {
            PwaError::NoOpfs { detail: text }
        }
        _ => PwaError::Storage { detail: text },
    }
}
