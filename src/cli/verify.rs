//! `verify`: run the isolation suite over the fortress's sandboxes (and adopted containers),
//! print or write the report, record each sandbox's run, and exit 0 only when all passed.

use std::path::PathBuf;
use std::time::Duration;

use super::{Cli, CmdResult};
use crate::engine::Engine;
use crate::error::{exit, ErrorCode};
use crate::report::ErrorReport;
use crate::verify::{self, report, Options};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Junit,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

/// The flags of `verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Verify only this sandbox (or adopted container name).
    #[arg(long, value_name = "N")]
    pub sandbox: Option<String>,
    /// Report format (default: text, or json with the global `-o json`).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write the report to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also verify containers matching the manifest's `adopt` selectors.
    #[arg(long)]
    pub adopted: bool,
    /// Count inconclusive probes (tool missing, exec refused) as passed.
    #[arg(long)]
    pub allow_inconclusive: bool,
    /// Stop the host-side content scan after this many bytes per sandbox (e.g. 512Mi); as
    /// many bytes again may be decompressed from archives and compressed files inside.
    #[arg(long, value_name = "SIZE", default_value = "512Mi", value_parser = parse_size)]
    pub scan_max_bytes: u64,
    /// Stop the host-side content scan after this long per sandbox (e.g. 60s).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub scan_timeout: Duration,
}

fn parse_size(s: &str) -> Result<u64, String> {
    crate::manifest::units::parse_size(s).map(|n| n.max(0) as u64)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::manifest::units::parse_duration(s)
}

pub async fn run(cli: &Cli, args: &VerifyArgs) -> CmdResult {
    let fortress = cli.load()?;
    let engine = cli.connect(Some(&fortress)).await?;
    let info = engine.info().await.map_err(|e| super::report_of(&e))?;
    let state = cli.open_state(&fortress).ok();
    let targets = verify::targets(
        &engine,
        &fortress,
        state.as_ref(),
        args.sandbox.as_deref(),
        args.adopted,
    )
    .await
    .map_err(|e| super::report_of(&e))?;
    let inputs = verify::inputs_for(
        &fortress,
        info.ncpu,
        nix::unistd::getuid().as_raw(),
        Options {
            allow_inconclusive: args.allow_inconclusive,
            scan_max_bytes: args.scan_max_bytes,
            scan_timeout: args.scan_timeout,
            ..Options::default()
        },
    );
    let mut results = Vec::new();
    for t in &targets {
        let (r, stats) = verify::verify_target(&engine, t, &inputs).await;
        tracing::info!(
            sandbox = %t.name,
            execs = stats.execs,
            scanned_bytes = stats.scanned_bytes,
            scanned_files = stats.scanned_files,
            elapsed_ms = stats.elapsed_ms,
            "verified"
        );
        if let Some(state) = &state {
            if let Err(e) =
                verify::record(state, &fortress.name, &t.name, &r, args.allow_inconclusive)
            {
                tracing::warn!(
                    "could not record the verify run: {}",
                    crate::report::chain(&e)
                );
            }
        }
        results.extend(r);
    }

    let format = args.format.unwrap_or(match cli.output {
        super::Output::Json => Format::Json,
        super::Output::Text => Format::Text,
    });
    let manifest = cli.manifest_path();
    let about = report::About {
        fortress: &fortress.name,
        manifest: Some(&manifest),
        allow_inconclusive: args.allow_inconclusive,
    };
    let rendered = match format {
        Format::Text => report::text(
            &results,
            args.out.is_none() && super::colour(),
            args.allow_inconclusive,
        ),
        Format::Json => report::json(&results, &about) + "\n",
        Format::Junit => report::junit(&results, args.allow_inconclusive),
        Format::Sarif => report::sarif(&results, &about) + "\n",
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, &rendered).map_err(|e| {
                ErrorReport::new(
                    ErrorCode::PermissionDenied,
                    format!("cannot write the report to {}: {e}", path.display()),
                )
            })?;
            if format == Format::Text || !cli.quiet {
                let (p, f, i) = verify::counts(&results);
                println!(
                    "verify: {p} passed, {f} failed, {i} inconclusive; report written to {}",
                    path.display()
                );
            }
        }
        None => print!("{rendered}"),
    }
    let ok = verify::passed(&results, args.allow_inconclusive);
    if !ok {
        let (_, f, i) = verify::counts(&results);
        let failing: Vec<String> = results
            .iter()
            .filter(|r| r.outcome == verify::Outcome::Fail)
            .map(|r| format!("{}/{}", r.sandbox, r.probe))
            .collect();
        let code = verify::failure_code(&results);
        let (message, hint) = if code == ErrorCode::SandboxFailure {
            (
                format!("{f} probe(s) failed: the sandbox cannot do its job (not an isolation breach)"),
                "`clw-fortress status` shows why it is down; a declared rw bind must be writable by the sandbox's user",
            )
        } else {
            (
                format!("{f} probe(s) failed, {i} inconclusive"),
                "`clw-fortress explain clw-isolation-breach` describes each probe and its fix",
            )
        };
        let mut r = ErrorReport::new(code, message).with_hint(hint);
        r.details = failing;
        if !cli.quiet {
            match (cli.output, &args.out, format) {
                // Standard output holds no report: the error is the one JSON document there.
                (super::Output::Json, Some(_), _) => println!("{}", r.render_json()),
                // A machine-readable report on standard output says it all (its summary).
                (_, None, f) if f != Format::Text => {}
                _ => eprint!("{}", r.render_text()),
            }
        }
        return Ok(exit::FOUND_FAILURES);
    }
    Ok(exit::OK)
}
