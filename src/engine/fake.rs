//! A recording in-memory engine for unit tests of pure-ish drivers. Integration tests never use
//! it: they talk to a real engine.
//!
//! For the daemon's event loop it can also be scripted: an event stream per connection fed by
//! the test ([`FakeEngine::event_feed`]), an inspect that takes a while for one container
//! ([`FakeEngine::delay_inspect`], on tokio's clock so paused-time tests stay instant), and a
//! way to wait until a call happened ([`FakeEngine::until`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use bollard::models::{ContainerInspectResponse, ContainerState, HostConfig};

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Create(String),
    Start(String),
    Stop(String),
    Restart(String),
    Remove(String),
    Update(String, Resources),
    Exec(String, Vec<String>),
    Disconnect(String, String),
}

#[derive(Debug, Clone)]
struct Container {
    id: String,
    req: CreateRequest,
    running: bool,
    resources: Resources,
}

/// The pid every running container of the fake has (nothing on the host: a `/proc` in a test
/// directory has no such entry).
pub const FAKE_PID: i64 = 4242;

fn tokio_stream_of(
    mut rx: mpsc::UnboundedReceiver<EngineResult<Event>>,
) -> impl futures_util::Stream<Item = EngineResult<Event>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[derive(Default)]
pub struct FakeEngine {
    containers: Mutex<BTreeMap<String, Container>>,
    calls: Mutex<Vec<Call>>,
    fail_create: Mutex<BTreeSet<String>>,
    fail_start: Mutex<BTreeSet<String>>,
    next_id: Mutex<u64>,
    /// Container name -> how long its inspect takes.
    inspect_delay: Mutex<BTreeMap<String, Duration>>,
    /// Container name -> how many times it was inspected.
    inspects: Mutex<BTreeMap<String, usize>>,
    /// The event streams of the next connections, in order.
    feeds: Mutex<VecDeque<mpsc::UnboundedReceiver<EngineResult<Event>>>>,
    /// Bumped on every recorded call, for [`FakeEngine::until`].
    changed: watch::Sender<u64>,
}

fn refused(op: &'static str, target: &str) -> EngineError {
    EngineError::Refused {
        op,
        target: target.into(),
        status: 500,
        message: "injected failure".into(),
    }
}

impl FakeEngine {
    pub fn fail_create(&self, name: &str) {
        self.fail_create.lock().unwrap().insert(name.into());
    }
    pub fn fail_start(&self, name: &str) {
        self.fail_start.lock().unwrap().insert(name.into());
    }
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    /// Names of the containers that exist.
    pub fn containers(&self) -> Vec<String> {
        self.containers.lock().unwrap().keys().cloned().collect()
    }
    fn record(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
        self.changed.send_modify(|n| *n += 1);
    }
    /// Waits until `pred` holds for the calls so far (re-checked after every call).
    pub async fn until(&self, pred: impl Fn(&[Call]) -> bool) {
        let mut rx = self.changed.subscribe();
        loop {
            if pred(&self.calls()) {
                return;
            }
            rx.changed()
                .await
                .expect("the fake lives as long as its waiters");
        }
    }
    /// Makes every inspect of `name` take `delay` (tokio time).
    pub fn delay_inspect(&self, name: &str, delay: Duration) {
        self.inspect_delay
            .lock()
            .unwrap()
            .insert(name.into(), delay);
    }
    /// How many times the container `name` was inspected.
    pub fn inspect_count(&self, name: &str) -> usize {
        self.inspects
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }
    /// A new event stream: the next call of `events` (the next connection) returns what is
    /// sent here; dropping the sender ends that stream (the engine went away). Without a feed,
    /// `events` returns a stream that stays open and quiet.
    pub fn event_feed(&self) -> mpsc::UnboundedSender<EngineResult<Event>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.feeds.lock().unwrap().push_back(rx);
        tx
    }
    /// Sets whether `name` runs, without recording a call (something outside the product did
    /// it: a crash, `docker start`).
    pub fn set_running(&self, name: &str, running: bool) {
        self.containers
            .lock()
            .unwrap()
            .get_mut(name)
            .expect("a container of the fake")
            .running = running;
    }
    /// The id of the container `name`.
    pub fn id_of(&self, name: &str) -> String {
        self.containers.lock().unwrap()[name].id.clone()
    }
    fn name_of(&self, id: &str) -> Option<String> {
        self.containers
            .lock()
            .unwrap()
            .values()
            .find(|c| c.id == id || c.req.name == id)
            .map(|c| c.req.name.clone())
    }
}

impl Engine for FakeEngine {
    fn socket(&self) -> &str {
        "fake://"
    }

    async fn info(&self) -> EngineResult<EngineInfo> {
        Ok(EngineInfo {
            flavor: Flavor::Docker,
            version: "fake".into(),
            api_version: "1.41".into(),
            kernel: "fake".into(),
            rootless: false,
            security_options: vec!["name=seccomp,profile=default".into()],
            cgroup_version: "1".into(),
            ncpu: 2,
        })
    }

    async fn list(&self, labels: &[String]) -> EngineResult<Vec<ContainerSummary>> {
        let all = self.containers.lock().unwrap();
        Ok(all
            .values()
            .filter(|c| {
                labels.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => c.req.labels.get(k).map(String::as_str) == Some(v),
                    None => c.req.labels.contains_key(l),
                })
            })
            .map(|c| ContainerSummary {
                id: c.id.clone(),
                name: c.req.name.clone(),
                labels: c.req.labels.clone(),
                state: if c.running { "running" } else { "created" }.into(),
                image: c.req.image.clone(),
            })
            .collect())
    }

    async fn inspect(&self, id: &str) -> EngineResult<Option<super::Container>> {
        let Some(name) = self.name_of(id) else {
            return Ok(None);
        };
        *self
            .inspects
            .lock()
            .unwrap()
            .entry(name.clone())
            .or_default() += 1;
        let delay = self.inspect_delay.lock().unwrap().get(&name).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let all = self.containers.lock().unwrap();
        let Some(c) = all.get(&name) else {
            return Ok(None);
        };
        let inspected = ContainerInspectResponse {
            id: Some(c.id.clone()),
            name: Some(format!("/{}", c.req.name)),
            config: Some(bollard::models::ContainerConfig {
                labels: Some(c.req.labels.clone().into_iter().collect()),
                user: Some(c.req.user.clone()),
                ..Default::default()
            }),
            // What an engine reports for the request: its binds as mounts, its security
            // options, and the engine's default masked and read-only paths.
            mounts: Some(
                c.req
                    .binds
                    .iter()
                    .map(|b| bollard::models::MountPoint {
                        typ: Some("bind".to_string()),
                        source: Some(b.source.clone()),
                        destination: Some(b.target.clone()),
                        rw: Some(!b.read_only),
                        ..Default::default()
                    })
                    .collect(),
            ),
            state: Some(ContainerState {
                running: Some(c.running),
                pid: Some(if c.running { FAKE_PID } else { 0 }),
                status: Some(if c.running {
                    bollard::models::ContainerStateStatusEnum::RUNNING
                } else {
                    bollard::models::ContainerStateStatusEnum::CREATED
                }),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                memory: c.resources.memory,
                memory_swap: c.resources.memory_swap,
                nano_cpus: c.resources.nano_cpus,
                pids_limit: c.resources.pids_limit,
                cap_add: Some(c.req.cap_add.clone()),
                cap_drop: Some(c.req.cap_drop.clone()),
                network_mode: Some(c.req.network_mode.clone()),
                readonly_rootfs: Some(c.req.read_only_root),
                masked_paths: Some(vec!["/proc/kcore".into()]),
                readonly_paths: Some(vec!["/proc/sys".into()]),
                security_opt: Some(
                    c.req
                        .no_new_privileges
                        .then(|| "no-new-privileges:true".to_string())
                        .into_iter()
                        .chain(c.req.seccomp_profile.iter().map(|p| format!("seccomp={p}")))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(Some(super::Container::from_inspect(&inspected, |p| {
            Err(std::io::Error::other(format!(
                "the fake holds no profile at {p}"
            )))
        })))
    }

    async fn create(&self, req: &CreateRequest) -> EngineResult<String> {
        self.record(Call::Create(req.name.clone()));
        if self.fail_create.lock().unwrap().contains(&req.name) {
            return Err(refused("create", &req.name));
        }
        let mut n = self.next_id.lock().unwrap();
        *n += 1;
        let id = format!("{:064x}", *n);
        self.containers.lock().unwrap().insert(
            req.name.clone(),
            Container {
                id: id.clone(),
                req: req.clone(),
                running: false,
                resources: req.resources,
            },
        );
        Ok(id)
    }

    async fn start(&self, id: &str) -> EngineResult<()> {
        self.record(Call::Start(id.into()));
        let name = self
            .name_of(id)
            .ok_or_else(|| EngineError::NotFound(id.into()))?;
        if self.fail_start.lock().unwrap().contains(&name) {
            return Err(refused("start", id));
        }
        self.containers
            .lock()
            .unwrap()
            .get_mut(&name)
            .unwrap()
            .running = true;
        Ok(())
    }

    async fn stop(&self, id: &str, _timeout_s: i64) -> EngineResult<()> {
        self.record(Call::Stop(id.into()));
        let name = self
            .name_of(id)
            .ok_or_else(|| EngineError::NotFound(id.into()))?;
        self.containers
            .lock()
            .unwrap()
            .get_mut(&name)
            .unwrap()
            .running = false;
        Ok(())
    }

    async fn restart(&self, id: &str, _timeout_s: i64) -> EngineResult<()> {
        self.record(Call::Restart(id.into()));
        let name = self
            .name_of(id)
            .ok_or_else(|| EngineError::NotFound(id.into()))?;
        self.containers
            .lock()
            .unwrap()
            .get_mut(&name)
            .unwrap()
            .running = true;
        Ok(())
    }

    async fn remove(&self, id: &str) -> EngineResult<()> {
        self.record(Call::Remove(id.into()));
        if let Some(name) = self.name_of(id) {
            self.containers.lock().unwrap().remove(&name);
        }
        Ok(())
    }

    async fn disconnect_network(&self, id: &str, network: &str) -> EngineResult<()> {
        self.record(Call::Disconnect(id.into(), network.into()));
        self.name_of(id)
            .map(|_| ())
            .ok_or_else(|| EngineError::NotFound(id.into()))
    }

    async fn update_resources(&self, id: &str, r: &Resources) -> EngineResult<()> {
        self.record(Call::Update(id.into(), *r));
        let name = self
            .name_of(id)
            .ok_or_else(|| EngineError::NotFound(id.into()))?;
        self.containers
            .lock()
            .unwrap()
            .get_mut(&name)
            .unwrap()
            .resources = *r;
        Ok(())
    }

    async fn exec(&self, id: &str, req: &ExecRequest) -> EngineResult<ExecOutput> {
        self.record(Call::Exec(id.into(), req.cmd.clone()));
        Ok(ExecOutput::default())
    }

    fn events(&self) -> EventStream {
        match self.feeds.lock().unwrap().pop_front() {
            Some(rx) => Box::pin(tokio_stream_of(rx)),
            None => Box::pin(futures_util::stream::pending()),
        }
    }

    fn archive(&self, _id: &str, _path: &str) -> ByteStream {
        Box::pin(futures_util::stream::empty())
    }
}
