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

/// clap's error as a report: its first line is the headline, the rest (usage, tips) details.
fn usage_report(e: &clap::Error) -> clw_fortress::report::ErrorReport {
    use clw_fortress::error::ErrorCode;
    let text = e.render().to_string();
    let mut lines = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"));
    let headline = lines
        .next()
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ")
        .to_string();
    let mut report = clw_fortress::report::ErrorReport::new(
        ErrorCode::ConfigInvalid,
        format!("command line: {headline}"),
    )
    .with_hint("`clw-fortress --help`, or `clw-fortress <command> --help`");
    report.details = lines.map(|l| l.trim().to_string()).collect();
    report
}

/// Whether the arguments ask for JSON output (`-o json`, `-ojson`, `--output json`,
/// `--output=json`), read from the raw arguments because they did not parse.
fn json_asked(args: impl Iterator<Item = String>) -> bool {
    let mut prev_is_flag = false;
    for a in args {
        if a == "--" {
            break;
        }
        if (prev_is_flag && a == "json") || a == "-ojson" || a == "--output=json" {
            return true;
        }
        prev_is_flag = a == "-o" || a == "--output";
    }
    false
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help and --version are not errors.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // A usage error is invalid input like any other: `error[clw-config-invalid]`,
            // as JSON when `-o json` was asked for, exit 2.
            let report = usage_report(&e);
            if json_asked(std::env::args().skip(1)) {
                println!("{}", report.render_json());
            } else {
                eprint!("{}", report.render_text());
            }
            return ExitCode::from(2);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> impl Iterator<Item = String> {
        a.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn json_is_recognised_in_every_spelling_and_not_after_the_separator() {
        for a in [
            &["-o", "json", "plna"][..],
            &["plna", "--output", "json"],
            &["-ojson"],
            &["--output=json", "x"],
        ] {
            assert!(json_asked(args(a)), "{a:?}");
        }
        for a in [
            &["-o", "text"][..],
            &["exec", "x", "--", "-o", "json"],
            &["json"],
        ] {
            assert!(!json_asked(args(a)), "{a:?}");
        }
    }

    #[test]
    fn a_usage_error_is_config_invalid_with_the_usage_as_details() {
        let e = Cli::try_parse_from(["clw-fortress", "plna"]).unwrap_err();
        let r = usage_report(&e);
        assert_eq!(r.code, clw_fortress::error::ErrorCode::ConfigInvalid);
        assert!(r.message.starts_with("command line: "), "{}", r.message);
        assert!(r.message.contains("plna"), "{}", r.message);
        assert!(
            r.details.iter().any(|d| d.starts_with("Usage:")),
            "{:?}",
            r.details
        );
    }
}
