//! Deployments shared between cases, and the per-case context.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::client::Client;
use crate::target::{target_from_env, Deployment, Target, TargetOptions};

type Slot = Arc<OnceLock<Result<Arc<Deployment>, String>>>;

/// The target under test and the deployments started for it, one per
/// distinct [`TargetOptions`], started on first use and kept until
/// [`Suite::stop_all`].
pub struct Suite {
    target: Arc<dyn Target>,
    shared: Mutex<HashMap<TargetOptions, Slot>>,
}

impl Suite {
    pub fn from_env() -> Result<Suite> {
        Ok(Suite::new(target_from_env()?))
    }

    pub fn new(target: Arc<dyn Target>) -> Suite {
        Suite {
            target,
            shared: Mutex::new(HashMap::new()),
        }
    }

    pub fn target(&self) -> &Arc<dyn Target> {
        &self.target
    }

    /// The shared deployment for `options`, started (blocking) if this is
    /// its first use. A failed start is remembered: every case that needs
    /// it fails with the same message instead of retrying.
    pub fn shared(&self, options: TargetOptions) -> Result<Arc<Deployment>> {
        let slot = self
            .shared
            .lock()
            .unwrap()
            .entry(options)
            .or_default()
            .clone();
        slot.get_or_init(|| {
            let mut label = format!(
                "shared-ttl{}-ka{}-max{}",
                options.ttl_ms, options.keepalive_ms, options.max_message_bytes
            );
            if options.limits != crate::target::ServerLimits::NONE {
                let knobs: Vec<String> = options.limits.env().into_iter().map(|(k, _)| k).collect();
                label.push_str(&format!("-{}", knobs.join("-").to_lowercase()));
            }
            self.target
                .start(options, &label)
                .map(Arc::new)
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow!("starting the shared {} deployment: {e}", self.target.name()))
    }

    /// Stops every shared deployment.
    pub fn stop_all(&self) {
        for slot in self.shared.lock().unwrap().values() {
            if let Some(Ok(d)) = slot.get() {
                d.stop();
            }
        }
    }
}

/// What a case gets: the target, its shared deployment (if it uses one) and
/// a place for deployments it starts itself, stopped when the case ends.
pub struct Ctx {
    pub name: String,
    target: Arc<dyn Target>,
    deployment: Option<Arc<Deployment>>,
    own: Mutex<Vec<Arc<Deployment>>>,
}

impl Ctx {
    pub fn new(name: &str, target: Arc<dyn Target>, deployment: Option<Arc<Deployment>>) -> Ctx {
        Ctx {
            name: name.to_string(),
            target,
            deployment,
            own: Mutex::new(Vec::new()),
        }
    }

    pub fn target(&self) -> &Arc<dyn Target> {
        &self.target
    }

    /// The shared deployment of this case.
    pub fn dep(&self) -> &Arc<Deployment> {
        self.deployment
            .as_ref()
            .expect("this case was registered without a shared deployment")
    }

    pub fn ttl(&self) -> Duration {
        self.dep().ttl()
    }

    /// A space no other case uses (named after the case, for the logs).
    pub fn space(&self) -> String {
        let short = self.name.rsplit("::").next().unwrap_or("case");
        let short: String = short.chars().take(48).collect();
        crate::unique(&short)
    }

    /// Opens a socket on the shared deployment (next instance in turn),
    /// without waiting for anything.
    pub async fn connect(
        &self,
        space: &str,
        identity: Option<&str>,
        id: Option<&str>,
    ) -> Result<Client> {
        Client::connect(&self.dep().ws_base(), space, identity, id).await
    }

    /// Joins the shared deployment and waits for the welcome.
    pub async fn join(&self, space: &str, identity: &str) -> Result<Client> {
        Client::join(&self.dep().ws_base(), space, identity, None).await
    }

    /// Joins with `?id=` and waits for the welcome.
    pub async fn join_with_id(&self, space: &str, identity: &str, id: &str) -> Result<Client> {
        Client::join(&self.dep().ws_base(), space, identity, Some(id)).await
    }

    /// Starts a deployment for this case alone (stopped when the case ends).
    pub async fn start_own(&self, options: TargetOptions) -> Result<Arc<Deployment>> {
        let target = self.target.clone();
        let label = format!("{}-own", self.name.replace("::", "-"));
        let d = tokio::task::spawn_blocking(move || target.start(options, &label))
            .await
            .map_err(|e| anyhow!("start task failed: {e}"))??;
        let d = Arc::new(d);
        self.own.lock().unwrap().push(d.clone());
        Ok(d)
    }

    /// Where to look when the case failed.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = &self.deployment {
            parts.push(format!("shared deployment {}", d.describe()));
        }
        for d in self.own.lock().unwrap().iter() {
            parts.push(format!("own deployment {}", d.describe()));
        }
        parts.join("; ")
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for d in self.own.lock().unwrap().drain(..) {
            d.stop();
        }
    }
}
