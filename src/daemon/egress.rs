//! The agent's egress proxies: one listener inside each running sandbox with an `egress`
//! allow-list (see `egress::netns` for where and why), served by this process.
//!
//! A listener belongs to one container *and* one start of it (its init's pid): a restarted
//! sandbox has a new network namespace, so it gets a new listener. The set follows the engine:
//! a start (event or the resync after connecting) opens one, a death closes it, the limits
//! sweep opens what is missing and closes what is gone, and a reload that changed a sandbox's
//! allow-list re-serves it.
//!
//! Who gets one ([`policy_for`]): an owned sandbox with `egress` (labels alone, which anyone
//! with engine access can forge, own nothing), and a container adopted by a rule with `egress`
//! (the gateway's sandboxes). An adopted container was created by someone else, possibly on a
//! network: the agent detaches it from every engine network on its create and start events
//! and on each sweep, so the listener is its one way out there too. Its environment was fixed
//! at create, so it has no proxy variables: tools that are not pointed at the proxy fail.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;

use std::collections::BTreeMap;

use super::metrics::Metrics;
use crate::broker::ca::Ca;
use crate::broker::Broker;
use crate::egress::broker::{self as ebroker, Brokering};
use crate::egress::netns;
use crate::egress::proxy::{self, Proxy, ProxyLimits};
use crate::egress::EgressPolicy;
use crate::engine::{Container, Engine};
use crate::manifest::Fortress;
use crate::ownership::Ownership;
use crate::state::State;

/// The allow-list that applies to a container, and the name its proxy reports under: the
/// owned sandbox's, or the first matching adopt rule's (the same first-match order as the
/// limits); `None` when no egress applies.
pub fn policy_for(
    fortress: &Fortress,
    name: &str,
    labels: &std::collections::BTreeMap<String, String>,
    owner: &Ownership,
) -> Option<(String, EgressPolicy, bool)> {
    if let Ownership::Owned { sandbox } = owner {
        return fortress
            .sandboxes
            .iter()
            .find(|s| &s.name == sandbox)
            .and_then(|s| s.egress.clone())
            .map(|p| (sandbox.clone(), p, false));
    }
    if !owner.adoptable() {
        return None;
    }
    fortress
        .adopt
        .iter()
        .find(|a| a.selector.matches(name, labels))
        .and_then(|a| a.egress.clone())
        .map(|p| (name.trim_start_matches('/').to_string(), p, true))
}

/// Detaches an adopted container from every engine network it is on. Returns the networks
/// it was detached from.
pub async fn detach<E: Engine>(engine: &E, c: &Container) -> Vec<String> {
    let mut done = Vec::new();
    for net in &c.networks {
        match engine.disconnect_network(&c.id, net).await {
            Ok(()) => done.push(net.clone()),
            Err(e) => tracing::error!(
                container = %c.name,
                network = %net,
                "egress: cannot detach the adopted container from its network: {e}"
            ),
        }
    }
    if !done.is_empty() {
        tracing::warn!(
            container = %c.name,
            networks = %done.join(","),
            "egress: detached an adopted container from its networks; its way out is the proxy"
        );
    }
    done
}

struct Served {
    pid: i64,
    policy: EgressPolicy,
    /// The brokered secrets it serves (a reload that changed them re-serves it).
    brokers: BTreeMap<String, Broker>,
    task: JoinHandle<()>,
}

/// What the proxy of owned sandbox `sandbox` needs to broker its secrets; `None` when it has
/// none. The CA lives in the agent's state directory; extra upstream trust anchors come from
/// [`ebroker::TRUST_ENV`].
fn brokering_for(
    fortress: &Fortress,
    sandbox: &str,
    state_path: &std::path::Path,
) -> Result<Option<Brokering>, String> {
    let Some(s) = fortress
        .sandboxes
        .iter()
        .find(|s| s.name == sandbox && !s.broker.is_empty())
    else {
        return Ok(None);
    };
    let Some(secrets_file) = fortress.secrets_file.clone() else {
        return Err("brokered secrets need secrets.file".into());
    };
    let roots = std::path::Path::new(crate::broker::ca::SYSTEM_ROOTS);
    let ca = Ca::ensure(
        &crate::broker::ca::dir_of(state_path),
        &fortress.name,
        roots,
    )
    .map_err(|e| crate::report::chain(&e))?;
    let upstream = ebroker::upstream_config(roots, &ebroker::trust_from_env())
        .map_err(|e| crate::report::chain(&e))?;
    Ok(Some(Brokering {
        brokers: s.broker.clone(),
        secrets_uid: fortress.secrets_uid(nix::unistd::getuid().as_raw()),
        secrets_file,
        ca: Arc::new(ca),
        upstream: Arc::new(upstream),
    }))
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

    /// Serves `policy` (reported as `sandbox`'s) inside container `c` unless that start of it
    /// is served already with the same policy; `None` closes its listener. Returns whether a
    /// listener was opened.
    pub async fn ensure(
        &self,
        fortress: &Fortress,
        sandbox: &str,
        policy: Option<EgressPolicy>,
        c: &Container,
    ) -> std::io::Result<bool> {
        let Some(policy) = policy else {
            self.forget(&c.id).await;
            return Ok(false);
        };
        let Some(pid) = c.state.pid.filter(|p| *p > 1 && c.state.running) else {
            self.forget(&c.id).await;
            return Ok(false);
        };
        let brokers = fortress
            .sandboxes
            .iter()
            .find(|s| s.name == sandbox)
            .map(|s| s.broker.clone())
            .unwrap_or_default();
        let mut served = self.served.lock().await;
        if let Some(s) = served.get(&c.id) {
            if s.pid == pid && s.policy == policy && s.brokers == brokers && !s.task.is_finished() {
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
        let mut proxy = Proxy::new(
            &fortress.name,
            sandbox,
            policy.clone(),
            ProxyLimits::default(),
            self.state(),
            self.metrics.clone(),
        );
        // Without what brokering needs, the proxy is not served at all: a sandbox whose
        // sentinels cannot be recognised gets no way out (fail closed).
        let state_path = self.state_path.clone();
        let fortress_for_broker = fortress.clone();
        let sandbox_name = sandbox.to_string();
        proxy.brokering = tokio::task::spawn_blocking(move || {
            brokering_for(&fortress_for_broker, &sandbox_name, &state_path)
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| std::io::Error::other(format!("cannot broker {sandbox}'s secrets: {e}")))?
        .map(Arc::new);
        let task = tokio::spawn(proxy::serve(listener, Arc::new(proxy)));
        tracing::info!(sandbox, pid, "egress proxy listening inside the sandbox");
        served.insert(
            c.id.clone(),
            Served {
                pid,
                policy,
                brokers,
                task,
            },
        );
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
