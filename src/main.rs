//! `clw-fortress`: parse the command line, set up logging, run one command, print its error.

use std::process::ExitCode;

use clap::Parser;
use clw_fortress::cli::{self, Cli, Output};

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(cli::colour())
        .with_target(false)
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
