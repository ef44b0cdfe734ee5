//! `doctor` and `status`: the commands that report on the host, the engine and the sandboxes.

use super::{Cli, CmdResult, Output};
use crate::doctor::{self, HostEnv, Inputs};
use crate::engine::{socket, DockerEngine};
use crate::error::exit;
use crate::host::HostPaths;
use crate::manifest::{self, LoadContext};
use crate::state::State;

fn load(
    cli: &Cli,
) -> (
    std::path::PathBuf,
    Result<manifest::Fortress, manifest::ManifestError>,
) {
    let path = cli.manifest_path();
    let loaded = manifest::load(&path, &LoadContext::from_process()).map(|mut f| {
        if let Some(s) = &cli.state {
            f.state_path = s.clone();
        }
        f
    });
    (path, loaded)
}

/// `doctor --access-only`: what `unit.access` runs under a unit's restrictions.
pub fn access_only(cli: &Cli) -> CmdResult {
    let (path, loaded) = load(cli);
    let report = doctor::access_only(&path, loaded.as_ref(), nix::unistd::getuid().as_raw());
    match cli.output {
        Output::Json => super::print_json(&report),
        Output::Text if !cli.quiet => print!("{}", report.render_text(true)),
        Output::Text => {}
    }
    Ok(if report.failed() {
        exit::FOUND_FAILURES
    } else {
        exit::OK
    })
}

pub async fn doctor(cli: &Cli, fix_hints: bool, units: Vec<std::path::PathBuf>) -> CmdResult {
    let (path, loaded) = load(cli);
    let fortress = loaded.as_ref().ok();
    // Connect directly (not through `Cli::connect`): an unreachable engine is a check result
    // here, not the end of the command.
    let resolved = socket::resolve_from_env(
        cli.engine.as_deref(),
        fortress.and_then(|f| f.engine.socket.as_deref()),
    );
    let profile_dir = fortress
        .and_then(|f| f.state_path.parent().map(|p| p.join("profiles")))
        .unwrap_or_else(std::env::temp_dir);
    let engine = DockerEngine::connect_expecting(
        &resolved.url,
        profile_dir,
        fortress.and_then(super::declared_flavor),
    )
    .await;
    let run = doctor::run_command;
    let state = fortress.and_then(existing_state);
    let report = doctor::run(Inputs {
        manifest_path: path,
        manifest: loaded.as_ref(),
        engine: engine.as_ref(),
        state: state.as_ref(),
        host: HostEnv {
            paths: HostPaths::real(),
            uid: nix::unistd::getuid().as_raw(),
            run: &run,
        },
        units,
        state_override: cli.state.clone(),
    })
    .await;
    match cli.output {
        Output::Json => super::print_json(&report),
        Output::Text if !cli.quiet => print!("{}", report.render_text(fix_hints)),
        Output::Text => {}
    }
    Ok(if report.failed() {
        exit::FOUND_FAILURES
    } else {
        exit::OK
    })
}

pub async fn status(cli: &Cli) -> CmdResult {
    let fortress = cli.load()?;
    let engine = cli.connect(Some(&fortress)).await?;
    let state = existing_state(&fortress);
    let report = crate::status::collect(&engine, &fortress, state.as_ref(), &HostPaths::real())
        .await
        .map_err(|e| super::report_of(&e))?;
    match cli.output {
        Output::Json => super::print_json(&report),
        Output::Text => print!("{}", report.render_text()),
    }
    Ok(exit::OK)
}

/// The state database if there is one: status and doctor work without one (before the first
/// apply) and never fail on one.
fn existing_state(fortress: &manifest::Fortress) -> Option<State> {
    fortress
        .state_path
        .exists()
        .then(|| State::open(&fortress.state_path).ok())
        .flatten()
}
