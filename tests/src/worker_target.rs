//! The edge target: the Worker built by `scripts/build-worker.sh`, served
//! by `wrangler dev` (workerd) on loopback through `scripts/wrangler-dev.sh`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::target::{
    fresh_port, log_path, workspace_root, Capability, Deployment, ServerProcess, SpawnSpec, Target,
    TargetOptions,
};

/// `worker`: one `wrangler dev` per deployment. It has no signals to send,
/// no keepalive (so idle spaces can hibernate) and no start-up exit on a
/// bad var; its leases live in Durable Object storage, kept in a directory
/// of the deployment's own.
pub struct WorkerTarget {
    capabilities: Vec<Capability>,
}

impl WorkerTarget {
    /// The target; the Worker must have been built already.
    pub fn new() -> Self {
        WorkerTarget {
            capabilities: vec![Capability::Edge, Capability::DemoPage],
        }
    }

    /// Starts `wrangler dev` on `port` keeping storage in `persist`.
    pub fn start_on(
        &self,
        options: TargetOptions,
        label: &str,
        port: u16,
        persist: &std::path::Path,
    ) -> Result<Arc<ServerProcess>> {
        self.spawn_on(options, &[], label, port, persist)
            .and_then(|process| {
                if process.await_health(Duration::from_secs(60))? {
                    Ok(process)
                } else {
                    Err(process.exited_at_start())
                }
            })
    }

    /// Starts `wrangler dev` with `overrides` replacing vars, such as a value
    /// the Worker must refuse, and returns once it answers HTTP at all
    /// (`GET /health` is a 500 while a var is unusable).
    pub fn start_with_vars(
        &self,
        options: TargetOptions,
        overrides: &[(&str, &str)],
        label: &str,
    ) -> Result<Arc<ServerProcess>> {
        let port = fresh_port()?;
        let persist = persist_dir(label, port)?;
        let process = self.spawn_on(options, overrides, label, port, &persist)?;
        if process.await_http(Duration::from_secs(60))? {
            Ok(process)
        } else {
            Err(process.exited_at_start())
        }
    }

    fn spawn_on(
        &self,
        options: TargetOptions,
        overrides: &[(&str, &str)],
        label: &str,
        port: u16,
        persist: &std::path::Path,
    ) -> Result<Arc<ServerProcess>> {
        let root = workspace_root();
        let built = root.join("crates/worker/build/index.js");
        if !built.is_file() {
            bail!(
                "{} not found: build the Worker with scripts/build-worker.sh",
                built.display()
            );
        }
        let mut args = vec![
            // Its own process group, so that stopping it stops workerd too.
            "--wait".to_string(),
            root.join("scripts/wrangler-dev.sh").display().to_string(),
            "--port".into(),
            port.to_string(),
            "--persist-to".into(),
            persist.display().to_string(),
        ];
        let overridden = |key: &str| overrides.iter().any(|(k, _)| *k == key);
        let vars = options
            .env()
            .into_iter()
            .filter(|(key, _)| !overridden(key))
            .chain(
                overrides
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
        for (key, value) in vars {
            args.push("--var".into());
            args.push(format!("{key}:{value}"));
        }
        // One log line per handler invocation: the edge cases count them.
        args.push("--var".into());
        args.push("TRACE_HANDLERS:1".into());
        let spec = SpawnSpec {
            program: PathBuf::from("setsid"),
            args,
            env: vec![],
            env_remove: vec![],
            log: log_path(label, port),
        };
        Ok(Arc::new(
            ServerProcess::spawn(spec, format!("worker[{label}]:{port}"), port)
                .context("spawn scripts/wrangler-dev.sh")?,
        ))
    }
}

impl Default for WorkerTarget {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh storage directory for one deployment.
pub fn persist_dir(label: &str, port: u16) -> Result<PathBuf> {
    let dir = workspace_root()
        .join("target/e2e-wrangler")
        .join(format!("{label}-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

impl Target for WorkerTarget {
    fn name(&self) -> &str {
        "worker"
    }

    fn capabilities(&self) -> &[Capability] {
        &self.capabilities
    }

    fn start(&self, options: TargetOptions, label: &str) -> Result<Deployment> {
        let mut last = anyhow!("not started");
        for _attempt in 0..3 {
            let port = fresh_port()?;
            let persist = persist_dir(label, port)?;
            match self.start_on(options, label, port, &persist) {
                Ok(process) => return Ok(Deployment::new(options, vec![process], vec![])),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}
