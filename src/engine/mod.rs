//! The container engine as the product needs it: one trait, one bollard-backed implementation
//! (`docker`), and a recording fake for unit tests of pure logic (`fake`).
//!
//! This module owns every Docker/Podman difference; callers never branch on the flavor for
//! wire-level reasons. It must not decide policy (what to create, what to limit): that is the
//! planner's job.

pub mod container;
pub mod docker;
pub mod failure;
pub mod logging;
pub mod podman;
pub mod security;
pub mod snapshot;
pub mod socket;

#[cfg(test)]
pub mod fake;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use futures_util::Stream;

use crate::error::{Coded, ErrorCode};

pub use container::{Container, Mount, RunState};
pub use docker::DockerEngine;

/// Which engine answers on the socket, as its `/version` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Docker,
    Podman,
}

impl Flavor {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Docker => "docker",
            Flavor::Podman => "podman",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngineInfo {
    pub flavor: Flavor,
    pub version: String,
    pub api_version: String,
    pub kernel: String,
    pub rootless: bool,
    /// `SecurityOptions` of `/info`, e.g. `name=seccomp,profile=default`.
    pub security_options: Vec<String>,
    pub cgroup_version: String,
    pub ncpu: i64,
}

/// A container as listed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerSummary {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `running`, `exited`, `created`, ...
    pub state: String,
    pub image: String,
}

/// Resource limits as the engine holds them. `None` or `Some(0)` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// Everything needed to create one container. Carries no secret value, ever.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateRequest {
    pub name: String,
    pub image: String,
    pub user: String,
    /// `KEY=VALUE`, plain environment only.
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub binds: Vec<BindMount>,
    /// Mount point -> tmpfs options (`size=..,mode=..,...`).
    pub tmpfs: BTreeMap<String, String>,
    pub read_only_root: bool,
    pub cap_drop: Vec<String>,
    pub cap_add: Vec<String>,
    pub no_new_privileges: bool,
    /// Run the engine's init as PID 1 (`HostConfig.Init`).
    pub init: bool,
    /// The seccomp profile as compact JSON; the adapter delivers it inline or as a path.
    pub seccomp_profile: Option<String>,
    pub network_mode: String,
    pub resources: Resources,
}

/// What an exec produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// One exec request. `env` may hold secret values: it is sent to the engine for this exec
/// only and never logged (its `Debug` prints names only).
#[derive(Clone, Default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub stdin: Option<Vec<u8>>,
    pub workdir: Option<String>,
}

impl std::fmt::Debug for ExecRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecRequest")
            .field("cmd", &self.cmd)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("user", &self.user)
            .finish()
    }
}

/// An engine event in one vocabulary for both flavors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// Container id.
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Unix time in nanoseconds, as the engine stamped it.
    pub time_nano: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Create,
    Start,
    Die,
    Oom,
    Stop,
    Kill,
    Destroy,
    Update,
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no engine answered at {socket}")]
    Unreachable {
        socket: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("permission denied on the engine socket {socket}")]
    SocketPermission {
        socket: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("unsupported engine socket address {0:?} (expected unix://, tcp:// or http://)")]
    BadSocket(String),
    #[error("the engine refused to {op} {target}: {message}")]
    Refused {
        op: &'static str,
        target: String,
        status: u16,
        message: String,
    },
    #[error("no such container {0}")]
    NotFound(String),
    #[error("engine request to {op} {target} failed")]
    Request {
        op: &'static str,
        target: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("engine request to {op} {target} failed: {message}")]
    Http {
        op: &'static str,
        target: String,
        message: String,
    },
    #[error("engine.flavor is {} but the engine at {socket} is {}", declared.as_str(), found.as_str())]
    FlavorMismatch {
        socket: String,
        declared: Flavor,
        found: Flavor,
    },
    #[error("could not write the seccomp profile for podman to {path}")]
    ProfileWrite {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Coded for EngineError {
    fn code(&self) -> ErrorCode {
        match self {
            EngineError::Unreachable { .. } | EngineError::BadSocket(_) => {
                ErrorCode::EngineUnreachable
            }
            EngineError::SocketPermission { .. } => ErrorCode::PermissionDenied,
            // The manifest states something false about this host: fix the manifest (or the
            // socket it names), not the engine.
            EngineError::FlavorMismatch { .. } => ErrorCode::ConfigInvalid,
            EngineError::Refused { .. }
            | EngineError::NotFound(_)
            | EngineError::Request { .. }
            | EngineError::Http { .. }
            | EngineError::ProfileWrite { .. } => ErrorCode::SandboxFailure,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            EngineError::Unreachable { socket, .. } => Some(format!(
                "start the engine (e.g. `systemctl start docker`) or point --engine / engine.socket / DOCKER_HOST at a live socket; tried {socket}"
            )),
            EngineError::SocketPermission { socket, .. } => Some(format!(
                "run as a user that may open {socket} (the docker group, or the rootless podman socket of this user)"
            )),
            EngineError::FlavorMismatch {
                socket, declared, found,
            } => Some(format!(
                "set engine.flavor to {} (or auto), or point engine.socket / --engine at the {} socket instead of {socket}",
                found.as_str(),
                declared.as_str()
            )),
            EngineError::Refused { message, .. } => {
                failure::classify(message).map(|c| c.hint().to_string())
            }
            _ => None,
        }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;
pub type EventStream = Pin<Box<dyn Stream<Item = EngineResult<Event>> + Send>>;
pub type ByteStream = Pin<Box<dyn Stream<Item = EngineResult<bytes::Bytes>> + Send>>;

/// What the product asks of a container engine.
pub trait Engine: Send + Sync {
    fn socket(&self) -> &str;
    fn info(&self) -> impl Future<Output = EngineResult<EngineInfo>> + Send;
    /// Every container (running or not) whose labels include all of `labels` (`key=value`
    /// or `key`); an empty filter lists all containers.
    fn list(
        &self,
        labels: &[String],
    ) -> impl Future<Output = EngineResult<Vec<ContainerSummary>>> + Send;
    /// `Ok(None)` when no such container exists. The view is built once here (a seccomp profile
    /// the engine holds by path is read through the adapter, bounded).
    fn inspect(
        &self,
        id_or_name: &str,
    ) -> impl Future<Output = EngineResult<Option<Container>>> + Send;
    /// Creates (does not start) a container; returns its id.
    fn create(&self, req: &CreateRequest) -> impl Future<Output = EngineResult<String>> + Send;
    fn start(&self, id: &str) -> impl Future<Output = EngineResult<()>> + Send;
    fn stop(&self, id: &str, timeout_s: i64) -> impl Future<Output = EngineResult<()>> + Send;
    fn restart(&self, id: &str, timeout_s: i64) -> impl Future<Output = EngineResult<()>> + Send;
    /// Force-removes a container and its anonymous volumes.
    fn remove(&self, id: &str) -> impl Future<Output = EngineResult<()>> + Send;
    fn update_resources(
        &self,
        id: &str,
        resources: &Resources,
    ) -> impl Future<Output = EngineResult<()>> + Send;
    /// Detaches the container from engine network `network` (created or running).
    fn disconnect_network(
        &self,
        id: &str,
        network: &str,
    ) -> impl Future<Output = EngineResult<()>> + Send;
    fn exec(
        &self,
        id: &str,
        req: &ExecRequest,
    ) -> impl Future<Output = EngineResult<ExecOutput>> + Send;
    /// Container events from now on, in the flavor-neutral vocabulary.
    fn events(&self) -> EventStream;
    /// A tar stream of `path` inside the container (bind mounts included, tmpfs not).
    fn archive(&self, id: &str, path: &str) -> ByteStream;
}

/// An engine shared between tasks is still the engine: the daemon keeps its connection in an
/// `Arc` so each per-container reconcile can hold it.
impl<E: Engine> Engine for std::sync::Arc<E> {
    fn socket(&self) -> &str {
        (**self).socket()
    }
    fn info(&self) -> impl Future<Output = EngineResult<EngineInfo>> + Send {
        (**self).info()
    }
    fn list(
        &self,
        labels: &[String],
    ) -> impl Future<Output = EngineResult<Vec<ContainerSummary>>> + Send {
        (**self).list(labels)
    }
    fn inspect(
        &self,
        id_or_name: &str,
    ) -> impl Future<Output = EngineResult<Option<Container>>> + Send {
        (**self).inspect(id_or_name)
    }
    fn create(&self, req: &CreateRequest) -> impl Future<Output = EngineResult<String>> + Send {
        (**self).create(req)
    }
    fn start(&self, id: &str) -> impl Future<Output = EngineResult<()>> + Send {
        (**self).start(id)
    }
    fn stop(&self, id: &str, timeout_s: i64) -> impl Future<Output = EngineResult<()>> + Send {
        (**self).stop(id, timeout_s)
    }
    fn restart(&self, id: &str, timeout_s: i64) -> impl Future<Output = EngineResult<()>> + Send {
        (**self).restart(id, timeout_s)
    }
    fn remove(&self, id: &str) -> impl Future<Output = EngineResult<()>> + Send {
        (**self).remove(id)
    }
    fn update_resources(
        &self,
        id: &str,
        resources: &Resources,
    ) -> impl Future<Output = EngineResult<()>> + Send {
        (**self).update_resources(id, resources)
    }
    fn disconnect_network(
        &self,
        id: &str,
        network: &str,
    ) -> impl Future<Output = EngineResult<()>> + Send {
        (**self).disconnect_network(id, network)
    }
    fn exec(
        &self,
        id: &str,
        req: &ExecRequest,
    ) -> impl Future<Output = EngineResult<ExecOutput>> + Send {
        (**self).exec(id, req)
    }
    fn events(&self) -> EventStream {
        (**self).events()
    }
    fn archive(&self, id: &str, path: &str) -> ByteStream {
        (**self).archive(id, path)
    }
}
