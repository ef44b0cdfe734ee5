//! `enforce`: one limits pass over owned and adopted containers (the timer-mode twin of the
//! daemon's sweep), reported as text or JSON.

use super::{Cli, CmdResult, Output};
use crate::enforce::{self, Enforcement, Policy, SweepReport};
use crate::engine::Engine;
use crate::error::{exit, ErrorCode};

pub async fn run(cli: &Cli) -> CmdResult {
    let fortress = cli.load()?;
    let engine = cli.connect(Some(&fortress)).await?;
    let info = engine.info().await.map_err(|e| super::report_of(&e))?;
    let policy = Policy::new(&fortress, info.ncpu);
    for c in &policy.clamped {
        tracing::warn!("cpus above the engine host's count, clamped: {c}");
    }
    let state = cli.open_state(&fortress)?;
    let report = enforce::sweep(&engine, &policy, Some(&state))
        .await
        .map_err(|e| super::report_of(&e))?;
    for e in &report.enforced {
        if let Err(err) = enforce::record(&state, e) {
            tracing::error!(
                "cannot record the enforcement of {}: {}",
                e.name,
                crate::report::chain(&err)
            );
        }
    }
    match cli.output {
        Output::Json => super::print_json(&serde_json::json!({
            "fortress": fortress.name,
            "enforced": report.enforced,
            "unchanged": report.unchanged,
            "failed": report.failed(),
        })),
        Output::Text if !cli.quiet => {
            print!("{}", render(&fortress.name, engine.socket(), &report))
        }
        Output::Text => {}
    }
    let first = report
        .enforced
        .iter()
        .filter(|e| !e.ok)
        .map(|e| {
            e.error
                .as_ref()
                .map_or(ErrorCode::EngineUnreachable, |f| f.code)
        })
        .next();
    // Containers already as declared count as done.
    let done = report.succeeded() + report.unchanged.len();
    Ok(exit::of_operations(done, first))
}

fn line(e: &Enforcement) -> String {
    let mut out = format!(
        "  ~ {:<8} {} ({}){}: {}",
        e.kind.as_str(),
        e.name,
        e.rule,
        if e.drift { " drift" } else { "" },
        crate::plan::describe_changes(&e.changes)
    );
    match &e.error {
        None => out.push_str("  ... ok\n"),
        Some(f) => {
            out.push_str("  ... failed\n");
            out.push_str(&f.report().render_indented("    "));
        }
    }
    out
}

/// Names and limits only.
pub fn render(fortress: &str, socket: &str, r: &SweepReport) -> String {
    let mut out = format!("enforce limits of fortress {fortress} on {socket}\n");
    for e in &r.enforced {
        out.push_str(&line(e));
    }
    for u in &r.unchanged {
        out.push_str(&format!(
            "  = {:<8} {} ({}): as declared\n",
            u.kind.as_str(),
            u.name,
            u.rule
        ));
    }
    out.push_str(&format!(
        "enforce: {} updated, {} failed, {} as declared\n",
        r.succeeded(),
        r.failed(),
        r.unchanged.len()
    ));
    out
}
