//! `clw-fortress`: parse the command line, set up logging, run one command, print its error.

use std::process::ExitCode;

use clap::Parser;
use clw_fortress::cli::{self, Cli, LogFormat, Output};

/// Logs to stderr at the level of `RUST_LOG`, else of `-v`/`-q`; the HTTP stack never below
/// `info`, whatever either asks for: no log level may print a secret, and what those crates log
/// below `info` is the requests themselves.
fn init_tracing(verbose: u8, quiet: bool, format: LogFormat) {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{filter, fmt, EnvFilter};
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let wanted = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let http_stack_at_info = filter::filter_fn(|meta| {
        *meta.level() <= tracing::Level::INFO
            || !clw_fortress::engine::logging::from_http_stack(meta.target())
    });
    let registry = tracing_subscriber::registry()
        .with(wanted)
        .with(http_stack_at_info);
    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
        // Under systemd (stderr is the journal: JOURNAL_STREAM names it), each line starts
        // with its sd-daemon priority, so `journalctl -p warning` selects by level; journald
        // stamps the time itself.
        LogFormat::Text if under_journal() => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(false)
                    .event_format(cli::logfmt::Journald::default()),
            )
            .init(),
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(cli::colour())
                    .with_target(false),
            )
            .init(),
    }
}

/// Whether standard error is the journal's stream (`JOURNAL_STREAM=<dev>:<inode>` of it).
fn under_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        v.split_once(':')
            .map(|(d, i)| (d.to_string(), i.to_string()))
    }) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    meta.dev().to_string() == dev && meta.ino().to_string() == ino
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // Usage errors are invalid input (2); --help and --version are not errors.
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_tracing(cli.verbose, cli.quiet, cli.log_format);
    let output = cli.output;
    match cli::run(cli) {
        Ok(status) => ExitCode::from(status),
        Err(report) => {
            match output {
                Output::Json => println!("{}", report.render_json()),
                Output::Text => eprint!("{}", report.render_text()),
            }
            ExitCode::from(report.exit_status())
        }
    }
}
