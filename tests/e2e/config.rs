//! PROTOCOL.md section 9, Configuration: a bad value stops the native
//! server at start; the edge, which has no start, refuses to serve.

use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use longhouse_e2e::target::describe_status;
use longhouse_e2e::worker_target::WorkerTarget;
use longhouse_e2e::{http, Client, Ctx, TargetOptions};

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

/// The edge has no start to fail at: a Worker whose var is unusable
/// refuses to serve instead, naming the variable. Plain requests (the
/// health check included, so a deploy check notices) answer 500 with the
/// message; a join gets it as an error, then close 1011; the log names it.
pub async fn worker_with_an_unusable_var_refuses_to_serve_naming_it(cx: &Ctx) -> Result<()> {
    for (var, value) in [("PRESENCE_TTL", "abc"), ("MESSAGE_BURST", "0")] {
        let label = format!("bad-var-{}", var.to_lowercase());
        let process = tokio::task::spawn_blocking(move || {
            WorkerTarget::new().start_with_vars(TargetOptions::DEFAULT, &[(var, value)], &label)
        })
        .await
        .map_err(|e| anyhow!("{e}"))??;
        let outcome = async {
            for path in ["/health", "/", "/some-space"] {
                let r = http::get(&process.http_base(), path).await?;
                ensure!(
                    r.status == 500 && r.body_text().contains(var),
                    "{var}={value}: GET {path} got {} {:?}",
                    r.status,
                    r.body_text()
                );
            }
            let mut c =
                Client::connect(&process.ws_base(), &cx.space(), Some("alice"), None).await?;
            let text = c.expect_error("Server misconfigured").await?;
            ensure!(
                text.contains(var),
                "{var}={value}: the join was told {text:?}"
            );
            c.expect_close(1011).await?;
            ensure!(
                process.log().contains(var),
                "{var}={value}: the Worker's log does not name {var}:\n{}",
                process.log()
            );
            Ok(())
        }
        .await;
        process.kill();
        outcome?;
    }
    Ok(())
}
