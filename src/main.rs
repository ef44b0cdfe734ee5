//! `clw-fortress`: parse the command line, set up logging, run one command, print its error.

use std::process::ExitCode;

use clap::Parser;
use clw_fortress::cli::{self, Cli, Output};

/// Crates of the HTTP stack that write requests and their bodies into their logs below `info`:
/// bollard logs every request body at debug (the exec-create body carries the exec's `Env`, the
/// secrets `exec` injects) and the raw request at trace; hyper, h2 and reqwest log headers and
/// frames at trace. Their `info` and above stays visible.
const HTTP_STACK: &[&str] = &[
    "bollard",
    "hyper",
    "hyper_util",
    "hyperlocal",
    "hyper_rustls",
    "h2",
    "reqwest",
    "rustls",
    "tokio_rustls",
    "mio",
    "tower",
];

/// Whether `target` belongs to one of the [`HTTP_STACK`] crates.
fn from_http_stack(target: &str) -> bool {
    HTTP_STACK.iter().any(|krate| {
        target
            .strip_prefix(krate)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Logs to stderr at the level of `RUST_LOG`, else of `-v`/`-q`; the HTTP stack never below
/// `info`, whatever either asks for: no log level may print a secret, and what those crates log
/// below `info` is the requests themselves.
fn init_tracing(verbose: u8, quiet: bool) {
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
        *meta.level() <= tracing::Level::INFO || !from_http_stack(meta.target())
    });
    tracing_subscriber::registry()
        .with(wanted)
        .with(http_stack_at_info)
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(cli::colour())
                .with_target(false),
        )
        .init();
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
    init_tracing(cli.verbose, cli.quiet);
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
    use super::from_http_stack;

    #[test]
    fn http_stack_targets_are_matched_by_crate_not_by_prefix() {
        for target in [
            "bollard",
            "bollard::docker",
            "hyper::proto::h1::io",
            "h2::codec",
        ] {
            assert!(from_http_stack(target), "{target}");
        }
        for target in ["clw_fortress::exec", "hyperion", "h2o", "log"] {
            assert!(!from_http_stack(target), "{target}");
        }
    }
}
