//! PROTOCOL.md section 7, Keepalive.

use std::time::Duration;

use anyhow::{ensure, Result};
use longhouse_e2e::Ctx;

/// With `KEEPALIVE_MS=200` an idle client receives `{"ping":true}` about
/// every 200 ms.
pub async fn server_sends_ping_every_keepalive_ms(cx: &Ctx) -> Result<()> {
    let period = Duration::from_millis(cx.dep().options().keepalive_ms);
    ensure!(
        period == Duration::from_millis(200),
        "registered with 200 ms"
    );
    let space = cx.space();
    let mut c = cx.join(&space, "idle").await?;
    let first = c.expect_keepalive(period * 5).await?;
    let mut last = first;
    for _ in 0..3 {
        let next = c.expect_keepalive(period * 5).await?;
        ensure!(
            next - last >= period / 2,
            "keepalives {} ms apart with KEEPALIVE_MS={}",
            (next - last).as_millis(),
            period.as_millis()
        );
        last = next;
    }
    ensure!(
        last - first <= period * 3 * 2,
        "3 keepalive periods took {} ms with KEEPALIVE_MS={}",
        (last - first).as_millis(),
        period.as_millis()
    );
    Ok(())
}

/// With `KEEPALIVE_MS=0` no keepalive is sent.
pub async fn keepalive_ms_0_sends_no_ping(cx: &Ctx) -> Result<()> {
    ensure!(cx.dep().options().keepalive_ms == 0, "registered with 0");
    let space = cx.space();
    let mut c = cx.join(&space, "idle").await?;
    c.expect_no_frames_for(Duration::from_millis(500)).await
}
