//! `man --out DIR`: one roff man page per command and subcommand, generated from the clap
//! definitions (`clw-fortress.1`, `clw-fortress-apply.1`, `clw-fortress-seccomp-generate.1`,
//! ...). The Debian package installs them; nothing else reads them.

use std::path::{Path, PathBuf};

use super::{CmdResult, Output};
use crate::error::{exit, ErrorCode};
use crate::report::ErrorReport;

pub fn run(out: &Path, output: Output, quiet: bool) -> CmdResult {
    let write_err = |e: std::io::Error| {
        ErrorReport::new(
            ErrorCode::PermissionDenied,
            format!("cannot write the man pages to {}: {e}", out.display()),
        )
    };
    std::fs::create_dir_all(out).map_err(write_err)?;
    let mut written = Vec::new();
    write_pages(root_command(), out, &mut written).map_err(write_err)?;
    written.sort();
    match output {
        Output::Json => super::print_json(&serde_json::json!({
            "ok": true,
            "dir": out,
            "pages": written
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy())
                .collect::<Vec<_>>(),
        })),
        Output::Text if !quiet => {
            println!("wrote {} man pages to {}", written.len(), out.display())
        }
        Output::Text => {}
    }
    Ok(exit::OK)
}

/// The whole command tree as the man pages show it: built, so every subcommand carries its
/// `clw-fortress-<path>` display name and the global options; clap's own `help` subcommand
/// is left out (it has no page of its own in any man tree).
fn root_command() -> clap::Command {
    let mut cmd = <super::Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Writes the page of `cmd`, then of each visible subcommand, depth first. The pages carry no
/// date, so the same binary writes the same bytes (a reproducible package).
fn write_pages(cmd: clap::Command, out: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), out, written)?;
    }
    written.push(clap_mangen::Man::new(cmd).generate_to(out)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_and_subcommand_gets_a_page_named_for_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut written = Vec::new();
        write_pages(root_command(), dir.path(), &mut written).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for page in [
            "clw-fortress.1",
            "clw-fortress-apply.1",
            "clw-fortress-man.1",
            "clw-fortress-seccomp-generate.1",
            "clw-fortress-backup-run.1",
        ] {
            assert!(names.iter().any(|n| n == page), "{page} missing: {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("-help")), "{names:?}");
        let top = std::fs::read_to_string(dir.path().join("clw-fortress.1")).unwrap();
        assert!(top.contains(".TH clw-fortress 1"), "{top}");
        assert!(
            top.contains("CLW_FORTRESS_FILE"),
            "the env var is documented: {top}"
        );
    }
}
