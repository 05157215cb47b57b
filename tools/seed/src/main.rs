//! heph-seed: bring-up tool (Path A origin reset, clone, init, hub import, verify)

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Bring-up and repair of heph stores: Path A clones, origin resets, joining an owner, seeding a hub, checks.
#[derive(Debug, Parser)]
#[command(name = "heph-seed", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Copy SRC to a new DST with a fresh origin (Path A), verifying owner, op log, nodes and links are unchanged.
    Clone {
        /// The store to copy (no daemon may hold it).
        #[arg(long, value_name = "SRC.db")]
        from: PathBuf,
        /// The new store (must not exist).
        #[arg(long, value_name = "DST.db")]
        to: PathBuf,
        /// Also treat this socket as the daemon's (besides <dir of SRC>/hephd.sock).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Remove meta.origin in place (after writing DB.bak-<UTC time>); the next start mints a fresh origin.
    ResetOrigin {
        /// The store (no daemon may hold it).
        #[arg(long, value_name = "DB")]
        db: PathBuf,
        /// Also treat this socket as the daemon's (besides <dir of DB>/hephd.sock).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Create a clean store that joins an existing owner (it never mints an owner of its own).
    Init {
        /// The owner to join (a ULID, as `heph info` shows on any of the owner's devices).
        #[arg(long, value_name = "ULID")]
        owner_id: String,
        /// The new store (must not exist).
        #[arg(long, value_name = "DB")]
        db: PathBuf,
    },
    /// Write a device's whole op log into a hub store as segment chains (one per origin).
    HubImport {
        /// The device store.
        #[arg(long, value_name = "DEVICE.db")]
        from: PathBuf,
        /// The hub store: file:///dir or s3://bucket/prefix.
        #[arg(long, value_name = "URL")]
        store: String,
        /// S3 endpoint (else AWS_ENDPOINT_URL).
        #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL")]
        s3_endpoint: Option<String>,
        /// S3 region (else AWS_REGION).
        #[arg(long, value_name = "REGION", env = "AWS_REGION")]
        s3_region: Option<String>,
    },
    /// integrity_check, schema version, and a rebuild of the derived tables that must give the same digest.
    Verify {
        /// The store (only read).
        #[arg(long, value_name = "DB")]
        db: PathBuf,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Clone { from, to, socket } => {
            print!("{}", heph_seed::clone_store(&from, &to, socket.as_deref())?);
        }
        Cmd::ResetOrigin { db, socket } => {
            print!("{}", heph_seed::reset_origin(&db, socket.as_deref())?);
        }
        Cmd::Init { owner_id, db } => {
            print!("{}", heph_seed::init_store(&owner_id, &db)?);
        }
        Cmd::HubImport {
            from,
            store,
            s3_endpoint,
            s3_region,
        } => {
            let s3 = heph_hub::store::S3Options {
                endpoint: s3_endpoint,
                region: s3_region,
                access_key_id: std::env::var("AWS_ACCESS_KEY_ID").ok(),
                secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").ok(),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let report = rt.block_on(heph_seed::hub_import(&from, &store, &s3))?;
            print!("{report}");
        }
        Cmd::Verify { db } => {
            let report = heph_seed::verify_store(&db)?;
            print!("{report}");
            let problems = report.problems();
            if !problems.is_empty() {
                return Err(heph_seed::SeedError::VerifyFailed { path: db, problems }.into());
            }
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
