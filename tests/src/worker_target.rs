//! The edge target: the Worker built by `scripts/build-worker.sh`, served
//! by `wrangler dev` (workerd) on loopback through `scripts/wrangler-dev.sh`.

use std::path::{Path, PathBuf};
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
            capabilities: vec![
                Capability::Edge,
                Capability::DemoPage,
                Capability::PresenceState,
            ],
        }
    }

    /// Starts `wrangler dev` on `port` keeping storage in `persist`.
    pub fn start_on(
        &self,
        options: TargetOptions,
        label: &str,
        port: u16,
        persist: &Path,
    ) -> Result<Arc<ServerProcess>> {
        self.spawn_on(with_vars(options, &[]), None, label, port, persist)
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
        let vars = with_vars(options, overrides);
        let process = self.spawn_on(vars, None, label, port, &persist)?;
        if process.await_http(Duration::from_secs(60))? {
            Ok(process)
        } else {
            Err(process.exited_at_start())
        }
    }

    /// Starts `wrangler dev` on another Worker than Longhouse's, the one of
    /// `wrangler_toml` (a fixture showing a runtime behaviour); returns once
    /// it answers `GET /health` with `200 ok`.
    pub fn start_fixture(&self, wrangler_toml: &Path, label: &str) -> Result<Arc<ServerProcess>> {
        let port = fresh_port()?;
        let persist = persist_dir(label, port)?;
        let process = self.spawn_on(vec![], Some(wrangler_toml), label, port, &persist)?;
        if process.await_health(Duration::from_secs(60))? {
            Ok(process)
        } else {
            Err(process.exited_at_start())
        }
    }

    /// Spawns `scripts/wrangler-dev.sh` with `vars`, on the project's
    /// `wrangler.toml` or on `config`.
    fn spawn_on(
        &self,
        vars: Vec<(String, String)>,
        config: Option<&Path>,
        label: &str,
        port: u16,
        persist: &Path,
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
        for (key, value) in vars {
            args.push("--var".into());
            args.push(format!("{key}:{value}"));
        }
        if let Some(config) = config {
            args.extend(["--".into(), "-c".into(), config.display().to_string()]);
        }
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

/// The vars of `options` with `overrides` in their place, and the handler
/// trace on (one log line per handler invocation: the edge cases count
/// them).
fn with_vars(options: TargetOptions, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let overridden = |key: &str| overrides.iter().any(|(k, _)| *k == key);
    options
        .env()
        .into_iter()
        .filter(|(key, _)| !overridden(key))
        .chain(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .chain([("TRACE_HANDLERS".to_owned(), "1".to_owned())])
        .collect()
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
