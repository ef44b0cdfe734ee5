//! `seccomp generate | check | explain`: the profile tools (seccomp.md). Pure file work: no
//! manifest, no engine, no state database. Every profile is validated before it is written or
//! explained, so what these commands print is what `apply` would hand to the engine.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use super::{display, CmdResult, Output};
use crate::error::exit;
use crate::manifest::SeccompPolicy;
use crate::report::ErrorReport;
use crate::seccomp::{self, Profile, SeccompError};

#[derive(Debug, Subcommand)]
pub enum SeccompCommand {
    /// Print (or write) the generated profile of a policy with overrides, as pretty JSON.
    Generate {
        #[command(flatten)]
        source: PolicyArgs,
        /// Write the profile to this file (mode 0644) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Validate a profile file: exit 0 (warnings printed) or 2 with `clw-seccomp-invalid`.
    Check {
        /// A Docker/OCI seccomp profile (JSON).
        file: PathBuf,
    },
    /// A human summary of a profile: what it denies, why, and how it differs from the engine
    /// default.
    Explain {
        /// A profile file; or give `--policy` instead.
        #[arg(required_unless_present = "policy", conflicts_with = "policy")]
        file: Option<PathBuf>,
        #[command(flatten)]
        source: OptionalPolicyArgs,
    },
}

/// The policy and overrides of `generate` (same meaning as the manifest's `seccomp:` block).
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// The policy to start from.
    #[arg(long, value_enum, default_value_t = PolicyArg::Default)]
    policy: PolicyArg,
    /// Syscall names to allow on top of the policy (repeat or separate with commas).
    #[arg(long, value_name = "SYSCALL", num_args = 1.., value_delimiter = ',')]
    allow: Vec<String>,
    /// Syscall names to deny (EPERM) whatever the policy and capabilities.
    #[arg(long, value_name = "SYSCALL", num_args = 1.., value_delimiter = ',')]
    deny: Vec<String>,
}

/// `explain --policy P [--allow ..] [--deny ..]`, the alternative to a file.
#[derive(Debug, Args)]
pub struct OptionalPolicyArgs {
    /// Explain the generated profile of this policy instead of a file.
    #[arg(long, value_enum)]
    policy: Option<PolicyArg>,
    /// With `--policy`: syscall names to allow on top of it.
    #[arg(long, value_name = "SYSCALL", num_args = 1.., value_delimiter = ',', requires = "policy")]
    allow: Vec<String>,
    /// With `--policy`: syscall names to deny.
    #[arg(long, value_name = "SYSCALL", num_args = 1.., value_delimiter = ',', requires = "policy")]
    deny: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    Permissive,
    Default,
    Strict,
}

impl From<PolicyArg> for SeccompPolicy {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::Permissive => SeccompPolicy::Permissive,
            PolicyArg::Default => SeccompPolicy::Default,
            PolicyArg::Strict => SeccompPolicy::Strict,
        }
    }
}

pub fn run(cmd: &SeccompCommand, output: Output, quiet: bool) -> CmdResult {
    match cmd {
        SeccompCommand::Generate { source, out } => generate(source, out.as_deref(), output, quiet),
        SeccompCommand::Check { file } => check(file, output, quiet),
        SeccompCommand::Explain { file, source } => explain(file.as_deref(), source, output),
    }
}

/// Writes long output to stdout; a reader that stops early (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The error with each of several problems on its own line under a short headline.
pub fn report(e: &SeccompError) -> ErrorReport {
    let mut r = super::report_of(e);
    let problems = e.problems();
    if problems.len() > 1 {
        r.message = match e.file() {
            Some(f) => format!(
                "seccomp profile {}: {} problems",
                display(f),
                problems.len()
            ),
            None => format!("{} problems in the seccomp profile", problems.len()),
        };
        r.details = problems;
        r.causes.clear();
    }
    r
}

/// `apply::prepare`'s error: one detail line per sandbox and problem.
pub fn prepare_report(e: &crate::apply::PrepareError) -> ErrorReport {
    let mut r = super::report_of(e);
    let lines: Vec<String> = e
        .problems
        .iter()
        .flat_map(|(sandbox, err)| {
            let file = err
                .file()
                .map(|f| format!("{}: ", display(f)))
                .unwrap_or_default();
            err.problems()
                .into_iter()
                .map(move |p| format!("sandbox {sandbox}: {file}{p}"))
        })
        .collect();
    if lines.len() > 1 {
        r.message = format!("{} seccomp problems", lines.len());
        r.details = lines;
    }
    r
}

fn generate(source: &PolicyArgs, out: Option<&Path>, output: Output, quiet: bool) -> CmdResult {
    let policy: SeccompPolicy = source.policy.into();
    let profile = seccomp::generate(policy, &source.allow, &source.deny).map_err(|e| report(&e))?;
    let Some(path) = out else {
        // The profile is the output; `-o json` changes nothing here.
        emit(&format!("{}\n", profile.to_pretty_json()));
        return Ok(exit::OK);
    };
    write_profile(path, &profile)?;
    match output {
        Output::Json => super::print_json(&serde_json::json!({
            "ok": true,
            "file": path,
            "policy": policy.as_str(),
            "rules": profile.syscalls.len(),
        })),
        Output::Text if !quiet => println!(
            "wrote {}: policy {}, {} rules",
            display(path),
            policy.as_str(),
            profile.syscalls.len()
        ),
        Output::Text => {}
    }
    Ok(exit::OK)
}

/// Writes the pretty profile with mode 0644: the engine (Podman reads a path) and other users
/// must be able to read it; it holds no secret.
fn write_profile(path: &Path, profile: &Profile) -> Result<(), ErrorReport> {
    use std::os::unix::fs::PermissionsExt;
    let mut text = profile.to_pretty_json();
    text.push('\n');
    std::fs::write(path, text)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)))
        .map_err(|source| {
            report(&SeccompError::Write {
                file: path.to_path_buf(),
                source,
            })
        })
}

fn check(file: &Path, output: Output, quiet: bool) -> CmdResult {
    let profile = seccomp::load_file(file).map_err(|e| report(&e))?;
    // `load_file` validated already; validating again only collects the warnings.
    let warnings = seccomp::check(&profile).map_err(|e| report(&e))?;
    match output {
        Output::Json => super::print_json(&serde_json::json!({
            "ok": true,
            "file": file,
            "warnings": warnings,
        })),
        Output::Text => {
            if !quiet {
                println!(
                    "ok: {}: {} rules, {} warning(s)",
                    display(file),
                    profile.syscalls.len(),
                    warnings.len()
                );
            }
            for w in &warnings {
                println!("warning: {w}");
            }
        }
    }
    Ok(exit::OK)
}

fn explain(file: Option<&Path>, source: &OptionalPolicyArgs, output: Output) -> CmdResult {
    let (profile, origin) = match (file, source.policy) {
        (Some(f), _) => (seccomp::load_file(f).map_err(|e| report(&e))?, display(f)),
        (None, Some(p)) => {
            let policy: SeccompPolicy = p.into();
            (
                seccomp::generate(policy, &source.allow, &source.deny).map_err(|e| report(&e))?,
                format!("policy {}", policy.as_str()),
            )
        }
        (None, None) => unreachable!("clap requires a file or --policy"),
    };
    let text = seccomp::explain(&profile);
    match output {
        Output::Json => super::print_json(&serde_json::json!({
            "profile": origin,
            "deniedX86_64": seccomp::denied_names(&profile),
            "summary": text,
        })),
        Output::Text => emit(&format!("{origin}\n{text}")),
    }
    Ok(exit::OK)
}
