//! Helpers shared by the cases.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use futures_util::future::try_join_all;
use longhouse_e2e::{Client, Ctx, Member};

/// The protocol's bound: a leave follows within this after the lease ran
/// out (section 4).
pub const EXPIRY_BOUND: Duration = Duration::from_secs(1);

/// Allowance for getting the event from the server to the observing client
/// and noticing it (localhost, a loaded 2-core machine).
pub const DELIVERY_SLACK: Duration = Duration::from_millis(150);

/// Servers keep times in milliseconds; a lease end computed from a
/// truncated millisecond may be this much earlier than our bound.
pub const CLOCK_GRANULARITY: Duration = Duration::from_millis(5);

/// "Right away" (section 4): well under a second.
pub const AT_ONCE: Duration = Duration::from_secs(1);

/// Clients `a`, `b` and `c` in `space`, each having seen the later ones
/// join: a quiet space of three to send from `a`.
pub async fn join_three(cx: &Ctx, space: &str) -> Result<(Client, Client, Client)> {
    let mut a = cx.join(space, "a").await?;
    let mut b = cx.join(space, "b").await?;
    let c = cx.join(space, "c").await?;
    a.expect_join(&b.member()).await?;
    a.expect_join(&c.member()).await?;
    b.expect_join(&c.member()).await?;
    Ok((a, b, c))
}

/// Connects to `{ws base}{path_and_query}` exactly as given and waits for
/// the welcome.
pub async fn join_raw(cx: &Ctx, path_and_query: &str) -> Result<Client> {
    let mut c = connect_raw(cx, path_and_query).await?;
    c.expect_welcome().await?;
    Ok(c)
}

/// Connects to `{ws base}{path_and_query}` exactly as given.
pub async fn connect_raw(cx: &Ctx, path_and_query: &str) -> Result<Client> {
    Client::connect_url(&format!("{}{path_and_query}", cx.dep().ws_base())).await
}

/// Nothing but keepalives reaches any of `clients` during one quiet period
/// (they are watched at the same time).
pub async fn expect_all_silent(clients: &mut [&mut Client]) -> Result<()> {
    try_join_all(clients.iter_mut().map(|c| c.expect_silence())).await?;
    Ok(())
}

/// Proves `client` is still connected and in `space`: it can ping, and a
/// newcomer both sees it in the welcome and is seen joining by it.
pub async fn expect_still_open(cx: &Ctx, space: &str, client: &mut Client) -> Result<()> {
    client.ping().await?;
    let newcomer = cx.join(space, &longhouse_e2e::unique("newcomer")).await?;
    ensure!(
        newcomer.roster.contains(&client.member()),
        "{} is no longer in the roster: {:?}",
        client.label,
        newcomer.roster
    );
    client.expect_join(&newcomer.member()).await?;
    Ok(())
}

/// Checks when a leave after expiry arrived: not before the lease can have
/// run out (`lease_start_earliest + ttl`), and within the protocol's second
/// after it must have run out (`lease_start_latest + ttl`).
pub fn check_expiry_timing(
    what: &str,
    leave_at: Instant,
    lease_start_earliest: Instant,
    lease_start_latest: Instant,
    ttl: Duration,
) -> Result<()> {
    let earliest = lease_start_earliest + ttl;
    ensure!(
        leave_at + CLOCK_GRANULARITY >= earliest,
        "{what}: leave arrived {} ms before the lease could have run out",
        (earliest - leave_at).as_millis()
    );
    let latest_end = lease_start_latest + ttl;
    let late = leave_at.saturating_duration_since(latest_end);
    ensure!(
        late <= EXPIRY_BOUND + DELIVERY_SLACK,
        "{what}: leave arrived {} ms after the lease ran out (bound {} ms + {} ms delivery)",
        late.as_millis(),
        EXPIRY_BOUND.as_millis(),
        DELIVERY_SLACK.as_millis()
    );
    Ok(())
}

/// The longest a case waits for a leave after expiry.
pub fn expiry_wait(ttl: Duration) -> Duration {
    ttl + EXPIRY_BOUND + Duration::from_secs(3)
}

/// The ids in a roster, sorted.
pub fn ids(roster: &[Member]) -> Vec<String> {
    let mut ids: Vec<String> = roster.iter().map(|m| m.id.clone()).collect();
    ids.sort();
    ids
}

/// A JSON ping padded with a `pad` field to exactly `len` bytes.
pub fn ping_of_len(len: usize) -> String {
    let empty = r#"{"action":"ping","pad":""}"#;
    assert!(len >= empty.len());
    format!(
        r#"{{"action":"ping","pad":"{}"}}"#,
        "x".repeat(len - empty.len())
    )
}

/// For short-lease cases: watches `observer` through 9/10 of a lease that
/// started just now (nothing may arrive: no leave can be due yet), then
/// renews the observer's own lease, so that it outlives the subject's
/// expiry by more than the protocol's one-second bound.
pub async fn outlive_subject(observer: &mut Client, ttl: Duration) -> Result<()> {
    // Renew first: however long the set-up took, the observer's own lease
    // then outlasts the quiet period.
    observer.ping().await?;
    observer.expect_silence_for(ttl * 9 / 10).await?;
    observer.ping().await?;
    Ok(())
}
