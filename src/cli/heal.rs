//! `heal`: one pass of every health probe and sandbox liveness (timer mode), and
//! `heal --release <target>`. Exit 0 when everything is healthy or was restarted successfully,
//! 1 when something is still failing or quarantined (see `HealReport::exit_status`).

use super::{Cli, CmdResult, Output};
use crate::error::{exit, ErrorCode};
use crate::heal::{self, Decision, HealReport, TargetReport};
use crate::report::ErrorReport;
use crate::state::now_ms;

pub async fn run(cli: &Cli, release: Option<&str>) -> CmdResult {
    let fortress = cli.load()?;
    let state = cli.open_state(&fortress)?;
    if let Some(target) = release {
        let released = heal::release(&state, &fortress.name, target, now_ms())
            .map_err(|e| super::report_of(&e))?;
        match cli.output {
            Output::Json => super::print_json(&serde_json::json!({
                "fortress": fortress.name,
                "released": released,
            })),
            Output::Text if cli.quiet => {}
            Output::Text => {
                for k in &released {
                    println!("released {k} of fortress {}: quarantine lifted", k.fortress);
                }
            }
        }
        return Ok(exit::OK);
    }
    let engine = cli.connect(Some(&fortress)).await?;
    let report = heal::run_once(&engine, &state, &fortress, now_ms())
        .await
        .map_err(|e| super::report_of(&e))?;
    match cli.output {
        Output::Json => super::print_json(&report),
        Output::Text if !cli.quiet => print!("{}", render(&report)),
        Output::Text => {}
    }
    Ok(report.exit_status())
}

/// `stop <sandbox>`: a deliberate stop, recorded before the engine is asked (see
/// `heal::stop_sandbox`).
pub async fn stop(cli: &Cli, sandbox: &str, time: u32) -> CmdResult {
    let fortress = cli.load()?;
    heal::declared(&fortress, sandbox).map_err(|e| super::report_of(&e))?;
    let state = cli.open_state(&fortress)?;
    let engine = cli.connect(Some(&fortress)).await?;
    let id = heal::stop_sandbox(
        &engine,
        &state,
        &fortress,
        sandbox,
        i64::from(time),
        now_ms(),
    )
    .await
    .map_err(|e| super::report_of(&e))?;
    match cli.output {
        Output::Json => super::print_json(&serde_json::json!({
            "fortress": fortress.name,
            "stopped": sandbox,
            "id": id,
        })),
        Output::Text if cli.quiet => {}
        Output::Text => println!(
            "stopped {sandbox} deliberately: heal and the agent leave it down until it is started again (`clw-fortress apply` starts it)"
        ),
    }
    Ok(exit::OK)
}

fn clock(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// `report` on the lines below a target's line (without the last newline: `line` adds it).
fn below(report: ErrorReport) -> String {
    format!("\n{}", report.render_indented("    ").trim_end())
}

fn line(t: &TargetReport) -> String {
    let who = format!("{} {}", t.target.kind.as_str(), t.target.name);
    let err = t.error.as_deref().unwrap_or("");
    let count = format!("{}/{} failures", t.consecutive_failures, t.threshold);
    let (tag, rest) = match (t.decision, &t.skipped) {
        (None, Some(why)) => ("skipped", why.clone()),
        (None, None) | (Some(Decision::Nothing), _) => ("ok", t.probe.clone()),
        (Some(Decision::CountFailure), _) => ("failing", format!("{err} ({count})")),
        (Some(Decision::Unhealthy), _) => (
            "unhealthy",
            format!(
                "{err} ({count}, nothing to restart){}",
                below(ErrorReport::new(
                    ErrorCode::HealthFailed,
                    "the probe crossed its failure threshold"
                ))
            ),
        ),
        (Some(Decision::Restart), _) => match &t.restart {
            Some(r) if r.ok => (
                "restarted",
                format!(
                    "{err} ({count}) -> restarted {} ({}/{} restarts before quarantine)",
                    r.target, t.restarts_in_window, t.quarantine_restarts
                ),
            ),
            Some(r) => (
                "failed",
                format!(
                    "{err} ({count}) -> restart of {} failed{}",
                    r.target,
                    below(ErrorReport::new(
                        ErrorCode::HealthFailed,
                        r.error.as_deref().unwrap_or("")
                    ))
                ),
            ),
            None => ("restart", err.to_string()),
        },
        (Some(Decision::WaitBackoff { until_ms }), _) => (
            "backoff",
            format!(
                "{err} ({count}); next restart not before {}",
                clock(until_ms)
            ),
        ),
        (Some(Decision::Quarantine | Decision::Quarantined), _) => (
            "quarantined",
            format!(
                "{}{}",
                if err.is_empty() { "healthy now" } else { err },
                below(
                    ErrorReport::new(
                        ErrorCode::Quarantined,
                        "restarted too often, no longer restarted automatically"
                    )
                    .with_hint(format!(
                        "fix the cause, then `clw-fortress heal --release {}`",
                        t.target.name
                    ))
                )
            ),
        ),
    };
    format!("  {tag:<12}{who:<40} {rest}\n")
}

/// The report as people read it.
pub fn render(r: &HealReport) -> String {
    let mut out = format!("heal fortress {}\n", r.fortress);
    for t in &r.targets {
        out.push_str(&line(t));
    }
    let count = |f: &dyn Fn(&TargetReport) -> bool| r.targets.iter().filter(|t| f(t)).count();
    out.push_str(&format!(
        "heal: {} healthy, {} restarted, {} failing, {} quarantined, {} skipped\n",
        count(&|t| t.decision == Some(Decision::Nothing)),
        count(&|t| t.restart.as_ref().is_some_and(|r| r.ok)),
        count(&|t| {
            t.failing()
                && !matches!(
                    t.decision,
                    Some(Decision::Quarantine | Decision::Quarantined)
                )
        }),
        count(&|t| {
            matches!(
                t.decision,
                Some(Decision::Quarantine | Decision::Quarantined)
            )
        }),
        count(&|t| t.skipped.is_some()),
    ));
    out
}
