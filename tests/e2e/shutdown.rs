//! PROTOCOL.md section 7, Shutdown (and 8, close code 1012).

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use longhouse_e2e::target::describe_status;
use longhouse_e2e::{Client, Ctx, TargetOptions};

/// How long a stopping server may take to close its sockets and exit.
const PROMPTLY: Duration = Duration::from_secs(5);

async fn signal_closes_sockets_1012_and_exits_0(cx: &Ctx, signal: i32, name: &str) -> Result<()> {
    let d = cx.start_own(TargetOptions::DEFAULT).await?;
    let base = d.ws_base();
    let (s1, s2) = (cx.space(), cx.space());
    let mut a = Client::join(&base, &s1, "alice", None).await?;
    let mut b = Client::join(&base, &s1, "bob", None).await?;
    a.expect_join(&b.member()).await?;
    let mut c = Client::join(&base, &s2, "carol", None).await?;
    let process = d.instances()[0].clone();
    let sent = Instant::now();
    process.signal(signal)?;
    // Nothing before the close: in particular no leave, the leases stay.
    for client in [&mut a, &mut b, &mut c] {
        client.expect_close_within(1012, PROMPTLY).await?;
    }
    let status = process.wait_exit(PROMPTLY).await?;
    ensure!(
        status.success(),
        "after {name} the server ended with {} (log {})",
        describe_status(status),
        process.log_path.display()
    );
    ensure!(
        sent.elapsed() < PROMPTLY,
        "stopping took {:?}",
        sent.elapsed()
    );
    Ok(())
}

/// SIGTERM: every socket is closed with 1012, the process exits 0 promptly.
pub async fn sigterm_closes_sockets_1012_and_exits_0(cx: &Ctx) -> Result<()> {
    signal_closes_sockets_1012_and_exits_0(cx, libc::SIGTERM, "SIGTERM").await
}

/// SIGINT: the same as SIGTERM.
pub async fn sigint_closes_sockets_1012_and_exits_0(cx: &Ctx) -> Result<()> {
    signal_closes_sockets_1012_and_exits_0(cx, libc::SIGINT, "SIGINT").await
}

/// With the in-memory store the roster goes with the process: clients that
/// reconnect with their ids to a new instance get them back, as ordinary
/// joins that the others see.
pub async fn memory_store_clients_come_back_with_their_ids_as_joins(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let first = cx.start_own(TargetOptions::DEFAULT).await?;
    let base = first.ws_base();
    let mut a = Client::join(&base, &space, "alice", None).await?;
    let mut b = Client::join(&base, &space, "bob", None).await?;
    a.expect_join(&b.member()).await?;
    let process = first.instances()[0].clone();
    process.signal(libc::SIGTERM)?;
    a.expect_close_within(1012, PROMPTLY).await?;
    b.expect_close_within(1012, PROMPTLY).await?;
    let status = process.wait_exit(PROMPTLY).await?;
    ensure!(status.success(), "exit: {}", describe_status(status));

    let second = cx.start_own(TargetOptions::DEFAULT).await?;
    let base = second.ws_base();
    let mut a2 = Client::join(&base, &space, "alice", Some(&a.id)).await?;
    ensure!(a2.id == a.id, "alice asked for {}, got {}", a.id, a2.id);
    ensure!(
        a2.roster == vec![a2.member()],
        "a new in-memory instance starts empty: {:?}",
        a2.roster
    );
    let b2 = Client::join(&base, &space, "bob", Some(&b.id)).await?;
    ensure!(b2.id == b.id, "bob asked for {}, got {}", b.id, b2.id);
    ensure!(
        b2.roster.contains(&a2.member()) && b2.roster.len() == 2,
        "roster: {:?}",
        b2.roster
    );
    a2.expect_join(&b2.member()).await
}
