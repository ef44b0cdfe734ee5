//! `plan`, `apply` and `exec`: the commands that converge and use sandboxes.

use std::io::Write;

use super::{Cli, CmdResult, Output};
use crate::apply::{self, Report};
use crate::engine::Engine;
use crate::error::{exit, ErrorCode};
use crate::exec;
use crate::manifest::Fortress;
use crate::plan::{self, Action, Plan};
use crate::report::ErrorReport;

async fn plan_for(
    cli: &Cli,
    prune: bool,
) -> Result<
    (
        Fortress,
        Vec<crate::spec::Desired>,
        Plan,
        crate::engine::DockerEngine,
    ),
    ErrorReport,
> {
    let fortress = cli.load_for_mount()?;
    let mut desired = apply::prepare(&fortress).map_err(|e| super::seccomp::prepare_report(&e))?;
    let engine = cli.connect(Some(&fortress)).await?;
    let info = engine.info().await.map_err(|e| super::report_of(&e))?;
    for c in crate::spec::clamp_cpus(&mut desired, info.ncpu) {
        tracing::warn!("cpus above the engine host's count, clamped: {c}");
    }
    let state = cli.open_state(&fortress).ok();
    let observed = apply::observe(&engine, &fortress.name, &desired, state.as_ref())
        .await
        .map_err(|e| super::report_of(&e))?;
    let p = plan::plan(&desired, &observed, prune);
    Ok((fortress, desired, p, engine))
}

pub async fn plan(cli: &Cli, prune: bool, detailed_exitcode: bool) -> CmdResult {
    let (fortress, _, p, engine) = plan_for(cli, prune).await?;
    match cli.output {
        Output::Json => super::print_json(&p),
        Output::Text if cli.quiet => {}
        Output::Text => print!("{}", render_plan(&fortress.name, engine.socket(), &p)),
    }
    Ok(plan_status(&p, detailed_exitcode))
}

/// `plan`'s exit status: 0, or with `--detailed-exitcode` 1 when anything would change
/// (actions, or conflicts that need a person).
fn plan_status(p: &Plan, detailed: bool) -> u8 {
    if detailed && !(p.actions.is_empty() && p.conflicts.is_empty()) {
        exit::FOUND_FAILURES
    } else {
        exit::OK
    }
}

/// The most standard input `exec -i` passes on: it is read to its end before the exec starts.
const MAX_STDIN: u64 = 64 << 20;

fn read_stdin() -> Result<Vec<u8>, ErrorReport> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut buf)
        .map_err(|e| {
            ErrorReport::new(
                ErrorCode::ConfigInvalid,
                format!("cannot read standard input: {e}"),
            )
        })?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(ErrorReport::new(
            ErrorCode::ConfigInvalid,
            format!(
                "standard input is larger than {} MiB, the most `exec -i` passes on",
                MAX_STDIN >> 20
            ),
        )
        .with_hint("copy large files through a bind mount of the sandbox instead"));
    }
    Ok(buf)
}

pub async fn apply(cli: &Cli, prune: bool) -> CmdResult {
    let (fortress, desired, p, engine) = plan_for(cli, prune).await?;
    let state = cli.open_state(&fortress)?;
    apply::ensure_broker_ca(&fortress).map_err(|e| ErrorReport::from_error(&e))?;
    let report = apply::execute(&engine, &p, &desired, &state, "cli:apply").await;
    apply::rotate_sentinels(&fortress, &state, "cli:apply");
    match cli.output {
        Output::Json => super::print_json(&serde_json::json!({
            "fortress": fortress.name,
            "report": report,
            "unchanged": p.unchanged,
            "orphans": p.orphans,
            "unrecorded": p.unrecorded,
        })),
        Output::Text if !cli.quiet => print!("{}", render_report(&fortress.name, &p, &report)),
        Output::Text => {}
    }
    Ok(apply_status(&report))
}

/// 0 when everything converged; 4 when some operations failed and others were done; the
/// failure's own status when nothing could be done.
fn apply_status(r: &Report) -> u8 {
    let first = r
        .outcomes
        .iter()
        .find_map(|o| o.error.as_ref())
        .map(|f| f.code);
    // A failure always carries its code; an outcome marked failed without one is the engine's.
    let first = first.or((r.failed() > 0).then_some(ErrorCode::EngineUnreachable));
    exit::of_operations(r.succeeded(), first)
}

pub async fn exec(cli: &Cli, sandbox: &str, cmd: Vec<String>, stdin: bool) -> CmdResult {
    let fortress = cli.load()?;
    let stdin = if stdin { Some(read_stdin()?) } else { None };
    let engine = cli.connect(Some(&fortress)).await?;
    let state = cli.open_state(&fortress).ok();
    let uid = nix::unistd::getuid().as_raw();
    let out = exec::run(&engine, &fortress, sandbox, cmd, stdin, uid, state.as_ref())
        .await
        .map_err(|e| super::report_of(&e))?;
    let _ = std::io::stdout().write_all(&out.stdout);
    let _ = std::io::stderr().write_all(&out.stderr);
    // The command's own status, clamped to what a process can return.
    Ok(out.exit_code.clamp(0, 255) as u8)
}

fn action_line(a: &Action) -> String {
    match a {
        Action::Create { sandbox } => format!("  + create    {sandbox}"),
        Action::Start { sandbox, .. } => format!("  > start     {sandbox} (exists, stopped)"),
        Action::UpdateLimits {
            sandbox,
            changes: c,
            ..
        } => {
            format!(
                "  ~ update    {sandbox} in place: {}",
                plan::describe_changes(c)
            )
        }
        Action::Recreate {
            sandbox, reason, ..
        } => format!("  ± recreate  {sandbox}: {reason}"),
        Action::Remove { name, .. } => format!("  - remove    {name} (no longer declared)"),
    }
}

/// The plan as people read it. Names and limits only: never an environment value.
pub fn render_plan(fortress: &str, socket: &str, p: &Plan) -> String {
    let mut out = format!("plan for fortress {fortress} on {socket}\n");
    for a in &p.actions {
        out.push_str(&action_line(a));
        out.push('\n');
    }
    for c in &p.conflicts {
        out.push_str(&format!(
            "  ! conflict  {}: {} (left untouched)\n",
            c.sandbox, c.reason
        ));
    }
    for u in &p.unchanged {
        out.push_str(&format!("  = ok        {u}\n"));
    }
    for o in &p.orphans {
        out.push_str(&format!(
            "  ? orphan    {o} (managed, no longer declared; `apply --prune` removes it)\n"
        ));
    }
    for o in &p.unrecorded {
        out.push_str(&format!(
            "  ! foreign   {o} (labelled as this fortress's, but never created by it: left alone)\n"
        ));
    }
    let count = |v: &str| p.actions.iter().filter(|a| a.verb() == v).count();
    out.push_str(&format!(
        "{} to create, {} to update in place, {} to recreate, {} to start, {} to remove, {} unchanged, {} conflict(s)\n",
        count("create"),
        count("update"),
        count("recreate"),
        count("start"),
        count("remove"),
        p.unchanged.len(),
        p.conflicts.len()
    ));
    out
}

fn render_report(fortress: &str, p: &Plan, r: &Report) -> String {
    let mut out = String::new();
    if p.actions.is_empty() && p.conflicts.is_empty() {
        out.push_str(&format!(
            "fortress {fortress}: nothing to do, {} sandbox(es) as declared\n",
            p.unchanged.len()
        ));
    }
    for o in &r.outcomes {
        out.push_str(&action_line(&o.action));
        match &o.error {
            None => out.push_str("  ... ok\n"),
            Some(f) => {
                out.push_str("  ... failed\n");
                out.push_str(&f.report().render_indented("    "));
            }
        }
    }
    for c in &r.conflicts {
        out.push_str(&format!(
            "  ! conflict  {}: {} (left untouched)\n",
            c.sandbox, c.reason
        ));
        out.push_str(
            &ErrorReport::new(ErrorCode::SandboxFailure, "the name is taken")
                .with_hint("rename the sandbox or remove the other container yourself")
                .render_indented("    "),
        );
    }
    for o in &p.orphans {
        out.push_str(&format!(
            "  ? orphan    {o} (managed, no longer declared; `apply --prune` removes it)\n"
        ));
    }
    for o in &p.unrecorded {
        out.push_str(&format!(
            "  ! foreign   {o} (labelled as this fortress's, but never created by it: left alone)\n"
        ));
    }
    out.push_str(&format!(
        "apply: {} done, {} failed, {} unchanged\n",
        r.succeeded(),
        r.failed(),
        p.unchanged.len()
    ));
    out
}
