//! How the agent gets an engine: a connect factory, called at start and after every loss of
//! the engine. The real one dials the socket resolved at start ([`DockerConnect`]); the unit
//! tests of the event loop hand it fakes that fail, succeed and go away on cue.

use std::future::Future;
use std::path::PathBuf;

use crate::engine::{DockerEngine, Engine, EngineResult, Flavor};

/// One connection attempt per call; the agent retries with capped backoff.
pub trait Connect: Send + Sync + 'static {
    type Engine: Engine + 'static;
    /// A connected engine, checked to be of the declared flavor.
    fn connect(&self) -> impl Future<Output = EngineResult<Self::Engine>> + Send;
    /// Where it connects, for log lines and the systemd status.
    fn socket(&self) -> &str;
}

/// The engine socket resolved at start (a change of `engine.socket` or `engine.flavor` needs a
/// restart of the agent).
pub struct DockerConnect {
    pub socket: String,
    /// The declared `engine.flavor`; `None` for `auto`.
    pub flavor: Option<Flavor>,
    /// Where Podman-bound seccomp profiles would go (the engine adapter wants one).
    pub profile_dir: PathBuf,
}

impl Connect for DockerConnect {
    type Engine = DockerEngine;

    async fn connect(&self) -> EngineResult<DockerEngine> {
        DockerEngine::connect_expecting(&self.socket, self.profile_dir.clone(), self.flavor).await
    }

    fn socket(&self) -> &str {
        &self.socket
    }
}
