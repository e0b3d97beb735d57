//! PROTOCOL.md section 3, Events to others (and the independence of spaces
//! from section 1).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use futures_util::future::try_join_all;
use longhouse_e2e::{unique, Client, Ctx, View};
use tokio::sync::Barrier;

use crate::support::{expect_all_silent, ids};

/// Each join reaches every client already there, and never the joiner.
pub async fn remote_join_reaches_every_other_client_never_the_subject(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut clients: Vec<Client> = Vec::new();
    for i in 0..5 {
        let c = cx.join(&space, &format!("user{i}")).await?;
        for earlier in clients.iter_mut() {
            earlier.expect_join(&c.member()).await?;
        }
        clients.push(c);
    }
    let mut refs: Vec<&mut Client> = clients.iter_mut().collect();
    expect_all_silent(&mut refs).await
}

/// A leave reaches every other client, once.
pub async fn remote_leave_reaches_every_other_client(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut clients: Vec<Client> = Vec::new();
    for i in 0..4 {
        let c = cx.join(&space, &format!("user{i}")).await?;
        for earlier in clients.iter_mut() {
            earlier.expect_join(&c.member()).await?;
        }
        clients.push(c);
    }
    let mut leaver = clients.remove(1);
    leaver.close().await?;
    for c in clients.iter_mut() {
        c.expect_leave(&leaver.member()).await?;
    }
    let mut refs: Vec<&mut Client> = clients.iter_mut().collect();
    expect_all_silent(&mut refs).await
}

const CROWD: usize = 50;

/// 50 clients join at once and a third of them leave right after their
/// welcome, racing the others' joins. Every remaining client's view
/// (welcome + joins − leaves) converges to the true roster, with no doubled
/// event and no leave for someone never seen joining.
pub async fn fifty_concurrent_joins_and_leaves_converge(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let barrier = Arc::new(Barrier::new(CROWD));
    let mut tasks = Vec::new();
    for i in 0..CROWD {
        let base = cx.dep().ws_base();
        let space = space.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut c = Client::join(&base, &space, &format!("user{i}@example.com"), None)
                .await
                .with_context(|| format!("user{i}"))?;
            let view = View::from_roster(&c.roster)?;
            if i % 3 == 0 {
                c.close().await?;
                anyhow::Ok(None)
            } else {
                Ok(Some((c, view)))
            }
        }));
    }
    let mut stayers = Vec::new();
    for t in tasks {
        if let Some(s) = t.await?? {
            stayers.push(s);
        }
    }

    // A close returns once the handshake is done; with a shared store the
    // leave may still be on its way, so the observer reads events until the
    // space has settled (welcome + events, like everyone else).
    let mut observer = cx.join(&space, "observer").await?;
    let mut truth = View::from_roster(&observer.roster)?;
    let mut expected_ids: Vec<String> = stayers.iter().map(|(c, _)| c.id.clone()).collect();
    expected_ids.push(observer.id.clone());
    expected_ids.sort();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ids(&truth.members()) != expected_ids {
        let left = deadline.saturating_duration_since(Instant::now());
        let (v, _) = observer.recv_json_timed(left).await.with_context(|| {
            format!(
                "the roster never settled to the {} who stayed: {:?}",
                expected_ids.len(),
                truth.members()
            )
        })?;
        let kind = v.get("event").and_then(|e| e.as_str()).unwrap_or_default();
        let member =
            longhouse_e2e::Member::from_json(v.get("client").ok_or_else(|| anyhow!("{v}"))?)?;
        truth.apply(kind, &member)?;
    }

    let truth = &truth;
    try_join_all(stayers.into_iter().map(|(mut c, mut view)| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        while &view != truth {
            let left = deadline.saturating_duration_since(Instant::now());
            let (kind, member) = match c.recv_json_timed(left).await {
                Ok((v, _)) => {
                    let kind = v
                        .get("event")
                        .and_then(|e| e.as_str())
                        .ok_or_else(|| anyhow!("{}: not an event: {v}", c.label))?
                        .to_string();
                    let member = longhouse_e2e::Member::from_json(
                        v.get("client").ok_or_else(|| anyhow!("no client: {v}"))?,
                    )?;
                    (kind, member)
                }
                Err(e) => bail!(
                    "{}: view never converged ({e:#}); has {} members, truth {}",
                    c.label,
                    view.len(),
                    truth.len()
                ),
            };
            ensure!(
                member.id != c.id,
                "{}: received an event about itself: {kind} {member}",
                c.label
            );
            view.apply(&kind, &member)
                .with_context(|| format!("{}'s view", c.label))?;
        }
        c.expect_silence().await
    }))
    .await?;
    Ok(())
}

/// Nothing crosses between spaces, and the same id in two spaces is two
/// unrelated clients.
pub async fn spaces_are_independent(cx: &Ctx) -> Result<()> {
    let (s1, s2) = (cx.space(), cx.space());
    let id = unique("shared-id");
    let mut a1 = cx.join_with_id(&s1, "alice", &id).await?;
    let mut a2 = cx.join_with_id(&s2, "bob", &id).await?;
    ensure!(a1.id == id && a2.id == id, "ids {} / {}", a1.id, a2.id);
    ensure!(
        a2.roster == vec![a2.member()],
        "space 2 sees space 1: {:?}",
        a2.roster
    );
    let mut b1 = cx.join(&s1, "carol").await?;
    a1.expect_join(&b1.member()).await?;
    a2.expect_silence().await?;
    a1.close().await?;
    b1.expect_leave(&a1.member()).await?;
    let c2 = cx.join(&s2, "dave").await?;
    ensure!(
        c2.roster.contains(&a2.member()) && c2.roster.len() == 2,
        "closing {id} in space 1 touched space 2: {:?}",
        c2.roster
    );
    a2.expect_join(&c2.member()).await?;
    expect_all_silent(&mut [&mut a2, &mut b1]).await
}
