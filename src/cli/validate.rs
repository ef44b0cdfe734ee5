//! `validate`: parse and validate the manifest, its bind sets and its seccomp profiles. No
//! engine is contacted and nothing on the host changes.

use super::{Cli, CmdResult, Output};
use crate::apply;

pub fn run(cli: &Cli) -> CmdResult {
    let fortress = cli.load_for_validate()?;
    apply::prepare(&fortress).map_err(|e| super::seccomp::prepare_report(&e))?;
    match cli.output {
        Output::Json => super::print_json(&serde_json::json!({
            "ok": true,
            "fortress": fortress.name,
            "file": fortress.file,
            "owner": fortress.owner.as_ref().map(|o| serde_json::json!({
                "name": o.name, "uid": o.uid, "gid": o.gid, "home": o.home,
            })),
            "sandboxes": fortress.sandboxes.iter().map(|s| &s.name).collect::<Vec<_>>(),
            "bindSets": fortress.bind_sets.iter().map(|b| &b.name).collect::<Vec<_>>(),
            "warnings": fortress.warnings,
        })),
        Output::Text => {
            if !cli.quiet {
                println!(
                    "ok: fortress {} ({}): {} sandbox(es), {} bind set(s), {} adopt selector(s)",
                    fortress.name,
                    fortress.file.display(),
                    fortress.sandboxes.len(),
                    fortress.bind_sets.len(),
                    fortress.adopt.len()
                );
            }
            for w in &fortress.warnings {
                println!("warning: {w}");
            }
        }
    }
    Ok(0)
}
