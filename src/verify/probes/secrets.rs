//! The `secrets.*` probes decided from the script's facts: the secrets file and the deny paths
//! of the bind sets must not be reachable inside, by exact path, by name anywhere in the
//! filesystem, or in the archive the engine exported. Only paths and names: the search for
//! secret *values* is `verify::scan`'s, on the host.

use super::super::{Outcome, ProbeResult};
use super::{list, r, Context, Facts};

/// `secrets.file-absent` and `secrets.deny-absent`, in that order.
pub(super) fn probes(ctx: &Context, facts: &Facts) -> Vec<ProbeResult> {
    vec![file_absent(ctx, facts), deny_absent(facts)]
}

/// `secrets.file-absent`: exact paths inside, names anywhere inside, names in the archive.
fn file_absent(ctx: &Context, facts: &Facts) -> ProbeResult {
    let mut hits: Vec<String> = facts.exists_secret.clone();
    hits.extend(
        facts
            .found_names
            .iter()
            .filter(|p| {
                let base = p.rsplit('/').next().unwrap_or("");
                ctx.secret_names.iter().any(|n| n == base)
            })
            .cloned(),
    );
    hits.extend(ctx.archive_name_hits.iter().cloned());
    hits.sort();
    hits.dedup();
    if !hits.is_empty() {
        r(
            "secrets.file-absent",
            Outcome::Fail,
            format!("secrets file reachable at {}", list(&hits)),
        )
    } else if !facts.find_done {
        r(
            "secrets.file-absent",
            Outcome::Inconclusive,
            "`find` is missing in the image; only exact paths and the archive were checked",
        )
    } else {
        r(
            "secrets.file-absent",
            Outcome::Pass,
            format!(
                "no {} found inside or in the exported filesystem",
                ctx.secret_names.join(" / ")
            ),
        )
    }
}

/// `secrets.deny-absent`: no path a bind set denies exists inside.
fn deny_absent(facts: &Facts) -> ProbeResult {
    if facts.exists_deny.is_empty() {
        r(
            "secrets.deny-absent",
            Outcome::Pass,
            "no deny path of any bind set is reachable",
        )
    } else {
        r(
            "secrets.deny-absent",
            Outcome::Fail,
            format!("denied paths reachable: {}", list(&facts.exists_deny)),
        )
    }
}
