//! PROTOCOL.md section 9, Configuration.

use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use longhouse_e2e::target::describe_status;
use longhouse_e2e::{Ctx, TargetOptions};

/// A value that does not parse stops the server at start (non-zero exit)
/// with a message naming the variable.
pub async fn unparsable_value_stops_server_naming_the_variable(cx: &Ctx) -> Result<()> {
    for (var, value) in [
        ("PRESENCE_TTL", "abc"),
        ("PRESENCE_TTL", "-5"),
        ("KEEPALIVE_MS", "abc"),
        ("MAX_MESSAGE_BYTES", "4k"),
        ("PORT", "eighty"),
    ] {
        let target = cx.target().clone();
        let (status, log) = tokio::task::spawn_blocking(move || {
            target.start_expecting_exit(
                TargetOptions::DEFAULT,
                &[(var, value)],
                Duration::from_secs(5),
            )
        })
        .await
        .map_err(|e| anyhow!("{e}"))?
        .with_context(|| format!("{var}={value}"))?;
        ensure!(
            !status.success(),
            "{var}={value}: the server exited with {}",
            describe_status(status)
        );
        ensure!(
            log.contains(var),
            "{var}={value}: the server's output does not name {var}:\n{log}"
        );
    }
    Ok(())
}
