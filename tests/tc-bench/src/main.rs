//! Bring-up of a fresh TaskChampion 3.1 replica (SQLite on disk) from a local sync server holding N tasks:
//! the peer measurement next to heph's `cargo bench -p heph-e2e --bench sync -- tasks`.
//!
//! `CARGO_TARGET_DIR=target/tc-bench cargo run --release --manifest-path tests/tc-bench/Cargo.toml -- 10000 100000`

use std::time::Instant;

use taskchampion::storage::AccessMode;
use taskchampion::storage::sqlite::SqliteStorage;
use taskchampion::{Operations, Replica, ServerConfig, Status, Tag, Uuid};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

async fn run(n: usize) -> Res<()> {
    let tmp = tempfile::tempdir()?;
    let server_dir = tmp.path().join("server");
    std::fs::create_dir_all(&server_dir)?;
    let mut server = ServerConfig::Local {
        server_dir: server_dir.clone(),
    }
    .into_server()
    .await?;
    let a_dir = tmp.path().join("a");
    std::fs::create_dir_all(&a_dir)?;
    let mut a = Replica::new(SqliteStorage::new(&a_dir, AccessMode::ReadWrite, true).await?);
    let t = Instant::now();
    let mut ops = Operations::new();
    let tag: Tag = "bench".parse()?;
    for i in 0..n {
        let mut task = a.create_task(Uuid::new_v4(), &mut ops).await?;
        task.set_description(
            format!("benchmark task number {i} with a realistic title"),
            &mut ops,
        )?;
        task.set_status(Status::Pending, &mut ops)?;
        task.set_entry(Some(chrono::Utc::now()), &mut ops)?;
        task.add_tag(&tag, &mut ops)?;
        if ops.len() >= 10_000 {
            a.commit_operations(std::mem::take(&mut ops)).await?;
        }
    }
    a.commit_operations(ops).await?;
    a.sync(&mut server, true).await?;
    eprintln!(
        "taskchampion: created and pushed {n} tasks in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let mut times = Vec::new();
    for _ in 0..3 {
        let b_dir = tempfile::tempdir_in(tmp.path())?;
        let t = Instant::now();
        let mut b =
            Replica::new(SqliteStorage::new(b_dir.path(), AccessMode::ReadWrite, true).await?);
        let mut server = ServerConfig::Local {
            server_dir: server_dir.clone(),
        }
        .into_server()
        .await?;
        b.sync(&mut server, true).await?;
        let got = b.all_task_uuids().await?.len();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(got, n, "the fresh replica holds every task");
        times.push(secs);
    }
    times.sort_by(|x, y| x.total_cmp(y));
    let med = times[1];
    println!(
        "taskchampion 3.1 bring-up of {n} tasks (local server, SQLite): median {med:.3} s = {:.0} tasks/s",
        n as f64 / med
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    for n in sizes {
        run(n).await?;
    }
    Ok(())
}
