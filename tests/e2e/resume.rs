//! PROTOCOL.md section 5, Resuming with a former id (and the `Invalid id`
//! row of section 6).

use anyhow::{ensure, Result};
use longhouse_e2e::client::parse_joined_at;
use longhouse_e2e::{unique, Ctx};
use serde_json::Value;

use crate::support::{check_expiry_timing, expect_all_silent, expiry_wait, ids, outlive_subject};

/// Within the lease, the same identity gets its old id and joinedAt back,
/// nobody sees anything, and the old socket (still open) is closed with
/// 4001 without causing a leave.
pub async fn within_lease_same_identity_gets_same_id_and_joined_at_silently(
    cx: &Ctx,
) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    let mut old = cx.join(&space, "alice").await?;
    observer.expect_join(&old.member()).await?;
    let mut new = cx.join_with_id(&space, "alice", &old.id).await?;
    ensure!(
        new.member() == old.member(),
        "resumed as {}, was {}",
        new.member(),
        old.member()
    );
    ensure!(
        ids(&new.roster) == ids(&[observer.member(), old.member()]),
        "roster after resume: {:?}",
        new.roster
    );
    old.expect_close(4001).await?;
    expect_all_silent(&mut [&mut observer, &mut new]).await?;
    let late = cx.join(&space, "late").await?;
    ensure!(
        ids(&late.roster) == ids(&[observer.member(), new.member(), late.member()]),
        "the resumed client should be there once: {:?}",
        late.roster
    );
    new.expect_join(&late.member()).await?;
    observer.expect_join(&late.member()).await
}

/// Resuming renews the lease: it then runs TTL from the resume.
pub async fn resume_renews_the_lease(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let ttl = cx.ttl();
    let mut observer = cx.join(&space, "observer").await?;
    let mut old = cx.join(&space, "alice").await?;
    observer.expect_join(&old.member()).await?;
    observer.expect_silence_for(ttl * 2 / 3).await?;
    observer.ping().await?;
    let new = cx.join_with_id(&space, "alice", &old.id).await?;
    ensure!(new.member() == old.member(), "resumed as {}", new.member());
    old.expect_close(4001).await?;
    outlive_subject(&mut observer, ttl).await?;
    let at = observer
        .expect_leave_within(&new.member(), expiry_wait(ttl))
        .await?;
    check_expiry_timing(
        "leave of the resumed client",
        at,
        new.connect_started,
        new.welcomed_at.expect("welcomed"),
        ttl,
    )
}

/// After a lost connection (no close frame), coming back within the lease
/// is silent: same id, same joinedAt, no event to anyone.
pub async fn after_lost_connection_is_silent(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    let mut old = cx.join(&space, "alice").await?;
    observer.expect_join(&old.member()).await?;
    old.drop_tcp()?;
    let mut new = cx.join_with_id(&space, "alice", &old.id).await?;
    ensure!(
        new.member() == old.member(),
        "resumed as {}, was {}",
        new.member(),
        old.member()
    );
    expect_all_silent(&mut [&mut observer, &mut new]).await?;
    let late = cx.join(&space, "late").await?;
    ensure!(
        ids(&late.roster) == ids(&[observer.member(), new.member(), late.member()]),
        "roster: {:?}",
        late.roster
    );
    Ok(())
}

/// After expiry the id is no longer live: asking for it is an ordinary join
/// that keeps the id, and others see `remote join`.
pub async fn after_expiry_is_an_ordinary_join_keeping_the_id(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let ttl = cx.ttl();
    let mut observer = cx.join(&space, "observer").await?;
    let mut old = cx.join(&space, "alice").await?;
    observer.expect_join(&old.member()).await?;
    outlive_subject(&mut observer, ttl).await?;
    let (v, _) = old.recv_json_timed(expiry_wait(ttl)).await?;
    ensure!(
        v.get("event").and_then(Value::as_str) == Some("expired"),
        "expected {{\"event\":\"expired\"}}, got {v}"
    );
    old.expect_close(4000).await?;
    observer.expect_leave(&old.member()).await?;
    let new = cx.join_with_id(&space, "alice", &old.id).await?;
    ensure!(new.id == old.id, "asked for {}, got {}", old.id, new.id);
    let (t_old, t_new) = (
        parse_joined_at(&old.joined_at)?,
        parse_joined_at(&new.joined_at)?,
    );
    ensure!(
        t_new >= t_old + ttl.as_millis() as i64 - 1,
        "an ordinary join gets a new joinedAt: was {}, now {}",
        old.joined_at,
        new.joined_at
    );
    observer.expect_join(&new.member()).await?;
    Ok(())
}

/// An id that never existed in the space is an ordinary join keeping it.
pub async fn unknown_id_is_an_ordinary_join_keeping_the_id(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    let id = unique("never-seen");
    let c = cx.join_with_id(&space, "alice", &id).await?;
    ensure!(c.id == id, "asked for {id}, got {}", c.id);
    ensure!(
        ids(&c.roster) == ids(&[observer.member(), c.member()]),
        "roster: {:?}",
        c.roster
    );
    observer.expect_join(&c.member()).await?;
    observer.expect_silence().await
}

/// Nobody can take over someone else's live presence: `Invalid id`, close
/// 1008, the holder and everyone else unaffected.
pub async fn live_id_of_another_identity_is_invalid_id_1008(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    let mut holder = cx.join(&space, "alice").await?;
    observer.expect_join(&holder.member()).await?;
    let mut thief = cx
        .connect(&space, Some("mallory"), Some(&holder.id))
        .await?;
    thief.expect_rejected("Invalid id", 1008).await?;
    expect_all_silent(&mut [&mut observer, &mut holder]).await?;
    let late = cx.join(&space, "late").await?;
    ensure!(
        late.roster.contains(&holder.member()) && late.roster.len() == 3,
        "the holder should be untouched: {:?}",
        late.roster
    );
    holder.expect_join(&late.member()).await?;
    observer.expect_join(&late.member()).await
}

/// After a clean close the id is free: joining with it (any identity, the
/// same one too) is an ordinary join that others see.
pub async fn after_clean_close_the_id_is_free(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    for (first, second) in [("alice", "bob"), ("carol", "carol")] {
        let mut old = cx.join(&space, first).await?;
        observer.expect_join(&old.member()).await?;
        old.close().await?;
        observer.expect_leave(&old.member()).await?;
        let new = cx.join_with_id(&space, second, &old.id).await?;
        ensure!(new.id == old.id, "asked for {}, got {}", old.id, new.id);
        ensure!(new.identity == second, "identity {:?}", new.identity);
        observer.expect_join(&new.member()).await?;
    }
    observer.expect_silence().await
}
