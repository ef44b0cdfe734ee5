//! `daemon`: the long-running agent (see `crate::daemon`). This handler only resolves the
//! inputs the agent keeps for its lifetime (manifest path, engine socket, state override).

use std::sync::Arc;

use super::{Cli, CmdResult};
use crate::daemon::{self, connect::DockerConnect, Loader, Options};
use crate::engine::socket;
use crate::error::exit;
use crate::host::HostPaths;
use crate::manifest::{self, LoadContext};

pub async fn run(cli: &Cli) -> CmdResult {
    let fortress = cli.load()?;
    let resolved =
        socket::resolve_from_env(cli.engine.as_deref(), fortress.engine.socket.as_deref());
    let path = cli.manifest_path();
    let state_override = cli.state.clone();
    // The same loading as `Cli::load`, owned so that SIGHUP can run it again later.
    let load: Loader = Arc::new(move || {
        let mut f = manifest::load(&path, &LoadContext::from_process())
            .map_err(|e| super::manifest_report(&e))?;
        if let Some(s) = &state_override {
            f.state_path = s.clone();
        }
        Ok(f)
    });
    let profile_dir = fortress
        .state_path
        .parent()
        .map(|p| p.join("profiles"))
        .unwrap_or_else(std::env::temp_dir);
    let connect = DockerConnect {
        socket: resolved.url,
        flavor: super::declared_flavor(&fortress),
        profile_dir,
    };
    daemon::run(
        Options {
            fortress,
            load,
            host: HostPaths::real(),
        },
        connect,
    )
    .await?;
    Ok(exit::OK)
}
