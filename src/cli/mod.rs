//! The command line: argument definitions (clap) and one handler per command. Handlers return
//! an exit status or an [`ErrorReport`]; printing the report is `main`'s job.

mod apply;
mod backup;
mod daemon;
mod doctor;
mod egress;
mod enforce;
mod explain;
mod heal;
pub mod logfmt;
mod man;
mod openclaw;
mod seccomp;
mod validate;
mod verify;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::{socket, DockerEngine, Flavor};
use crate::error::{Coded, ErrorCode};
use crate::manifest::{self, FlavorSetting, Fortress, LoadContext, ManifestError};
use crate::report::ErrorReport;
use crate::state::State;

pub type CmdResult = Result<u8, ErrorReport>;

#[derive(Debug, Parser)]
#[command(
    name = "clw-fortress",
    version,
    about = "Hardens, enforces, heals, backs up and verifies AI-agent sandbox containers",
    propagate_version = true
)]
pub struct Cli {
    /// The fortress manifest (default: ./fortress.yaml, then /etc/clw-fortress/fortress.yaml).
    #[arg(short = 'f', long = "file", global = true, env = "CLW_FORTRESS_FILE")]
    pub file: Option<PathBuf>,
    /// Engine socket URL (unix:///…, tcp://…); overrides engine.socket and DOCKER_HOST.
    #[arg(long, global = true)]
    pub engine: Option<String>,
    /// State database path; overrides state.path.
    #[arg(long, global = true)]
    pub state: Option<PathBuf>,
    /// Output format of reports and errors.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// More log output (repeatable); RUST_LOG also works.
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// Log line format on standard error: text (with journald priority prefixes when standard
    /// error is the journal) or json (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and validate the manifest and its bind sets; no engine needed.
    Validate,
    /// Show what `apply` would create, update in place, recreate or remove; changes nothing.
    Plan {
        /// Also plan the removal of managed containers no longer declared.
        #[arg(long)]
        prune: bool,
        /// Exit 1 when changes are pending (0: none). Terraform uses 2 for this; here 2 is
        /// invalid input, as for every command.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Converge the engine to the manifest (idempotent).
    Apply {
        /// Remove managed containers of this fortress that are no longer declared.
        #[arg(long)]
        prune: bool,
    },
    /// Run a command in a sandbox with its secretEnv injected for this exec only.
    Exec {
        /// Pass standard input to the command (read to its end first, at most 64 MiB; not
        /// an interactive terminal).
        #[arg(short = 'i', long = "stdin")]
        stdin: bool,
        sandbox: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
    /// Generate, check and explain seccomp profiles; no manifest or engine needed.
    Seccomp {
        #[command(subcommand)]
        cmd: seccomp::SeccompCommand,
    },
    /// The isolation test suite: engine checks, in-sandbox probes, host-side secret scan.
    Verify(verify::VerifyArgs),
    /// One pass of every health probe and sandbox liveness with its restart policy (timer mode).
    Heal {
        /// Lift the quarantine of this target (a health check or sandbox name) instead.
        #[arg(long, value_name = "TARGET")]
        release: Option<String>,
    },
    /// Stop a sandbox on purpose: recorded first, so heal and the agent leave it down until
    /// it is started again (`apply` starts it). Needed on Podman 4.3, whose own `stop` cannot
    /// be told from a crash.
    Stop {
        sandbox: String,
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        time: u32,
    },
    /// One pass: apply declared limits to owned and adopted containers (timer mode).
    Enforce,
    /// The long-running agent: engine events and schedules; SIGHUP reloads, SIGTERM stops.
    Daemon,
    /// Host and engine checks with repair guidance; exits 1 when a check fails.
    Doctor {
        /// Show the evidence and how to repair each problem.
        #[arg(long)]
        fix_hints: bool,
        /// Check what the agent can reach under this unit file (repeatable; default: the
        /// installed clw-fortress.service and clw-fortress-maintenance.service).
        #[arg(long = "unit", value_name = "FILE")]
        units: Vec<std::path::PathBuf>,
        /// Only the access checks (secrets file, backup destinations and sources), as run under
        /// a unit's restrictions by `doctor` itself.
        #[arg(long, hide = true)]
        access_only: bool,
    },
    /// Per sandbox and adopted container: state, limits vs. usage, limit events, restarts,
    /// last verify, last backup, quarantine.
    Status,
    /// Consistent snapshots of the agent's sqlite databases; no engine needed.
    Backup {
        #[command(subcommand)]
        action: backup::BackupCommand,
    },
    /// The egress allow-list proxy (foundation: run by hand, one sandbox per process).
    Egress {
        #[command(subcommand)]
        command: egress::EgressCommand,
    },
    /// The long description of an error code.
    Explain { code: String },
    /// Harden an OpenClaw install (secrets out of the state directory, narrow sandbox binds).
    Openclaw {
        #[command(subcommand)]
        command: openclaw::OpenclawCommand,
    },
    /// Shell completions.
    Completions { shell: clap_complete::Shell },
    /// Man pages: one roff page per command and subcommand (clw-fortress.1,
    /// clw-fortress-apply.1, ...) written into a directory.
    Man {
        /// The directory to write the pages into (created when missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Where the manifest is, when `-f` is not given.
fn default_manifest() -> PathBuf {
    let local = PathBuf::from("fortress.yaml");
    if local.exists() {
        return local;
    }
    let system = PathBuf::from("/etc/clw-fortress/fortress.yaml");
    if system.exists() {
        return system;
    }
    local
}

impl Cli {
    pub fn manifest_path(&self) -> PathBuf {
        self.file.clone().unwrap_or_else(default_manifest)
    }

    /// Loads and validates the manifest; every problem becomes one detail line.
    pub fn load(&self) -> Result<Fortress, ErrorReport> {
        let f = self.load_unlogged()?;
        for w in &f.warnings {
            tracing::warn!("{w}");
        }
        Ok(f)
    }

    /// [`Cli::load`] without logging the warnings: for `validate`, whose report lists them.
    fn load_unlogged(&self) -> Result<Fortress, ErrorReport> {
        let path = self.manifest_path();
        let ctx = LoadContext::from_process();
        let mut f = manifest::load(&path, &ctx).map_err(|e| manifest_report(&e))?;
        if let Some(state) = &self.state {
            f.state_path = state.clone();
        }
        Ok(f)
    }

    /// [`Cli::load`] for the commands that mount bind sources (`validate`, `plan`, `apply`):
    /// what the bound trees hold is refused too.
    pub fn load_for_mount(&self) -> Result<Fortress, ErrorReport> {
        self.refuse_tree_problems(self.load()?)
    }

    /// [`Cli::load_for_mount`] for `validate`: its report prints the warnings, once.
    pub fn load_for_validate(&self) -> Result<Fortress, ErrorReport> {
        self.refuse_tree_problems(self.load_unlogged()?)
    }

    fn refuse_tree_problems(&self, f: Fortress) -> Result<Fortress, ErrorReport> {
        if f.tree_problems.is_empty() {
            return Ok(f);
        }
        Err(manifest_report(&ManifestError::Invalid {
            file: f.file.clone(),
            problems: f.tree_problems,
        }))
    }

    pub async fn connect(&self, fortress: Option<&Fortress>) -> Result<DockerEngine, ErrorReport> {
        let manifest_socket = fortress.and_then(|f| f.engine.socket.as_deref());
        let resolved = socket::resolve_from_env(self.engine.as_deref(), manifest_socket);
        tracing::debug!(socket = %resolved.url, origin = resolved.origin.as_str(), "connecting");
        let profile_dir = fortress
            .and_then(|f| f.state_path.parent().map(|p| p.join("profiles")))
            .unwrap_or_else(std::env::temp_dir);
        DockerEngine::connect_expecting(
            &resolved.url,
            profile_dir,
            fortress.and_then(declared_flavor),
        )
        .await
        .map_err(|e| {
            let mut r = ErrorReport::from_error(&e);
            r.message = format!("{} (from {})", r.message, resolved.origin.as_str());
            r
        })
    }

    pub fn open_state(&self, fortress: &Fortress) -> Result<State, ErrorReport> {
        State::open(&fortress.state_path).map_err(|e| ErrorReport::from_error(&e))
    }
}

/// The flavor the manifest declares (`engine.flavor`); `None` for `auto`: ask the engine.
pub fn declared_flavor(f: &Fortress) -> Option<Flavor> {
    match f.engine.flavor {
        FlavorSetting::Auto => None,
        FlavorSetting::Docker => Some(Flavor::Docker),
        FlavorSetting::Podman => Some(Flavor::Podman),
    }
}

pub fn manifest_report(e: &ManifestError) -> ErrorReport {
    let mut r = ErrorReport::from_error(e);
    if let ManifestError::Invalid { problems, .. } = e {
        r.details = problems
            .iter()
            .map(|p| {
                let loc = p
                    .location
                    .map(|(l, c)| format!(":{l}:{c}"))
                    .unwrap_or_default();
                // A problem of the whole document (syntax, nesting) has no field.
                let field = if p.field.is_empty() {
                    String::new()
                } else {
                    format!(" {} = {:?}:", p.field, p.value)
                };
                format!(
                    "[{}] {}{}:{} {}",
                    p.code,
                    p.file.display(),
                    loc,
                    field,
                    p.message
                )
            })
            .collect();
        r.hint = Some(format!(
            "fix the fields above; `clw-fortress explain {}` describes the rule",
            r.code
        ));
    }
    r
}

pub fn report_of(e: &(impl Coded + ?Sized)) -> ErrorReport {
    ErrorReport::from_error(e)
}

/// Colour only on a terminal and never with NO_COLOR.
pub fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

pub fn print_json(v: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("plain data serialises")
    );
}

/// Runs the parsed command on a tokio runtime.
pub fn run(cli: Cli) -> CmdResult {
    match &cli.command {
        Command::Explain { code } => explain::run(code, cli.output),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "clw-fortress", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { out } => man::run(out, cli.output, cli.quiet),
        Command::Validate => validate::run(&cli),
        Command::Seccomp { cmd } => seccomp::run(cmd, cli.output, cli.quiet),
        Command::Openclaw { command } => openclaw::run(&cli, command),
        Command::Backup { action } => backup::run(&cli, action),
        _ => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| {
                    ErrorReport::new(
                        ErrorCode::PermissionDenied,
                        format!("cannot start the runtime: {e}"),
                    )
                })?;
            rt.block_on(run_async(&cli))
        }
    }
}

async fn run_async(cli: &Cli) -> CmdResult {
    match &cli.command {
        Command::Plan {
            prune,
            detailed_exitcode,
        } => apply::plan(cli, *prune, *detailed_exitcode).await,
        Command::Apply { prune } => apply::apply(cli, *prune).await,
        Command::Exec {
            sandbox,
            cmd,
            stdin,
        } => apply::exec(cli, sandbox, cmd.clone(), *stdin).await,
        Command::Enforce => enforce::run(cli).await,
        Command::Daemon => daemon::run(cli).await,
        Command::Verify(args) => verify::run(cli, args).await,
        Command::Heal { release } => heal::run(cli, release.as_deref()).await,
        Command::Stop { sandbox, time } => heal::stop(cli, sandbox, *time).await,
        Command::Doctor {
            fix_hints,
            units,
            access_only,
        } => {
            if *access_only {
                doctor::access_only(cli)
            } else {
                doctor::doctor(cli, *fix_hints, units.clone()).await
            }
        }
        Command::Status => doctor::status(cli).await,
        Command::Egress { command } => egress::run(cli, command).await,
        Command::Validate
        | Command::Seccomp { .. }
        | Command::Explain { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Backup { .. }
        | Command::Openclaw { .. } => {
            unreachable!("handled without a runtime")
        }
    }
}

pub fn display(p: &Path) -> String {
    p.display().to_string()
}
