//! The agent's egress proxies: one listener inside each running sandbox with an `egress`
//! allow-list (see `egress::netns` for where and why), served by this process.
//!
//! A listener belongs to one container *and* one start of it (its init's pid): a restarted
//! sandbox has a new network namespace, so it gets a new listener. The set follows the engine:
//! a start (event or the resync after connecting) opens one, a death closes it, the limits
//! sweep opens what is missing and closes what is gone, and a reload that changed a sandbox's
//! allow-list re-serves it. Only owned sandboxes get one: labels alone (which anyone with
//! engine access can forge) open nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::metrics::Metrics;
use crate::egress::netns;
use crate::egress::proxy::{self, Proxy, ProxyLimits};
use crate::egress::EgressPolicy;
use crate::engine::Container;
use crate::manifest::Fortress;
use crate::state::State;

struct Served {
    pid: i64,
    policy: EgressPolicy,
    task: JoinHandle<()>,
}

/// The listeners this agent serves, by container id.
pub struct Listeners {
    served: tokio::sync::Mutex<HashMap<String, Served>>,
    state_path: PathBuf,
    /// A connection of its own to the state database for the denial rows (the proxies write
    /// from their own tasks), opened on first use.
    state: std::sync::OnceLock<Option<Arc<State>>>,
    metrics: Arc<Metrics>,
}

impl Listeners {
    pub fn new(state_path: PathBuf, metrics: Arc<Metrics>) -> Listeners {
        Listeners {
            served: tokio::sync::Mutex::new(HashMap::new()),
            state_path,
            state: std::sync::OnceLock::new(),
            metrics,
        }
    }

    fn state(&self) -> Option<Arc<State>> {
        self.state
            .get_or_init(|| match State::open(&self.state_path) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    tracing::error!(
                        "egress: cannot open the state database for denial records: {e}"
                    );
                    None
                }
            })
            .clone()
    }

    /// Serves `sandbox`'s allow-list inside container `c` (owned, running) unless that start
    /// of it is served already with the same policy. Returns whether a listener was opened.
    pub async fn ensure(
        &self,
        fortress: &Fortress,
        sandbox: &str,
        c: &Container,
    ) -> std::io::Result<bool> {
        let Some(policy) = fortress
            .sandboxes
            .iter()
            .find(|s| s.name == sandbox)
            .and_then(|s| s.egress.clone())
        else {
            self.forget(&c.id).await;
            return Ok(false);
        };
        let Some(pid) = c.state.pid.filter(|p| *p > 1 && c.state.running) else {
            self.forget(&c.id).await;
            return Ok(false);
        };
        let mut served = self.served.lock().await;
        if let Some(s) = served.get(&c.id) {
            if s.pid == pid && s.policy == policy && !s.task.is_finished() {
                return Ok(false);
            }
        }
        if let Some(old) = served.remove(&c.id) {
            // The old listener must be closed before the port is bound again in the same
            // namespace (a reload that changed the list).
            old.task.abort();
            let _ = old.task.await;
        }
        let std_listener = tokio::task::spawn_blocking(move || netns::listen_in(pid))
            .await
            .map_err(std::io::Error::other)??;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let proxy = Proxy::new(
            &fortress.name,
            sandbox,
            policy.clone(),
            ProxyLimits::default(),
            self.state(),
            self.metrics.clone(),
        );
        let task = tokio::spawn(proxy::serve(listener, Arc::new(proxy)));
        tracing::info!(sandbox, pid, "egress proxy listening inside the sandbox");
        served.insert(c.id.clone(), Served { pid, policy, task });
        Ok(true)
    }

    /// Closes the listener of container `id`, if any.
    pub async fn forget(&self, id: &str) {
        if let Some(old) = self.served.lock().await.remove(id) {
            old.task.abort();
        }
    }

    /// Closes every listener whose container is not among `running` ids.
    pub async fn retain(&self, running: &[String]) {
        let mut served = self.served.lock().await;
        served.retain(|id, s| {
            let keep = running.contains(id);
            if !keep {
                s.task.abort();
            }
            keep
        });
    }

    /// How many listeners are open (for tests and the log).
    pub async fn count(&self) -> usize {
        self.served.lock().await.len()
    }
}
