//! What the fortress does beside running its sandboxes: adopt rules (exactly one selector,
//! rule 10, with the limits and egress to enforce on containers it did not create), the cron
//! schedules of its periodic jobs, backups (whose destination no bind may expose: snapshots
//! hold what the deny lists keep out of sandboxes) and the metrics endpoint.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;

use super::super::expand::{expand, expand_file_path, real_path};
use super::super::raw::{RawAdopt, RawBackup, RawSchedules};
use super::super::{Adopt, Backup, Keep, LoadContext, Metrics, Schedules, Selector};
use super::binds::Resolved;
use super::settings::{merge_limits, parse_egress, parse_limits};
use super::Report;

pub(super) fn adopt(
    r: &mut Report,
    file: &Path,
    i: usize,
    raw: &RawAdopt,
    ctx: &LoadContext,
) -> Option<Adopt> {
    let prefix = format!("adopt[{i}]");
    let selector = match (&raw.selector.label, &raw.selector.name_prefix) {
        (Some(label), None) => {
            let (key, value) = match label.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
                None => (label.trim(), None),
            };
            if key.is_empty() {
                r.invalid(
                    file,
                    format!("{prefix}.selector.label"),
                    label,
                    "a label selector is `key=value` or `key`",
                );
                None
            } else {
                Some(Selector::Label {
                    key: key.to_string(),
                    value,
                })
            }
        }
        (None, Some(name)) if !name.is_empty() => Some(Selector::NamePrefix(name.clone())),
        (None, Some(name)) => {
            r.invalid(
                file,
                format!("{prefix}.selector.namePrefix"),
                name,
                "the name prefix is empty",
            );
            None
        }
        _ => {
            r.invalid(
                file,
                format!("{prefix}.selector"),
                "",
                "a selector has exactly one of `label` and `namePrefix`",
            );
            None
        }
    };
    let limits = raw
        .limits
        .as_ref()
        .map(|l| parse_limits(r, file, &format!("{prefix}.limits"), l, ctx))
        .unwrap_or_default();
    let egress = raw
        .egress
        .as_ref()
        .map(|e| parse_egress(r, file, &format!("{prefix}.egress"), e));
    Some(Adopt {
        selector: selector?,
        limits: merge_limits(&[&limits]),
        egress: egress.flatten(),
    })
}

/// A cron expression in the `cron` crate's grammar (6 or 7 fields with seconds, or `@daily`).
pub(super) fn check_cron(r: &mut Report, file: &Path, field: &str, expr: &str) -> Option<String> {
    let trimmed = expr.trim();
    if !trimmed.starts_with('@') && trimmed.split_whitespace().count() == 5 {
        r.invalid(
            file,
            field,
            expr,
            format!(
                "cron takes 6 fields, seconds first; for this 5-field expression write `0 {trimmed}`"
            ),
        );
        return None;
    }
    match cron::Schedule::from_str(trimmed) {
        Ok(_) => Some(trimmed.to_string()),
        Err(e) => {
            r.invalid(file, field, expr, format!("not a cron expression: {e}"));
            None
        }
    }
}

pub(super) fn backups(
    r: &mut Report,
    file: &Path,
    dir: &Path,
    raw: &[RawBackup],
    binds: &[Resolved],
    ctx: &LoadContext,
) -> Vec<Backup> {
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (i, b) in raw.iter().enumerate() {
        let prefix = format!("backups[{i}]");
        let mut ok = true;
        if b.name.trim().is_empty() || !names.insert(b.name.clone()) {
            r.invalid(
                file,
                format!("{prefix}.name"),
                &b.name,
                "backup names must be non-empty and unique",
            );
            ok = false;
        }
        if b.sources.is_empty() {
            r.invalid(file, format!("{prefix}.sources"), "", "no sources");
            ok = false;
        }
        let mut sources = Vec::new();
        for (j, s) in b.sources.iter().enumerate() {
            match expand(s, ctx) {
                Ok(e) => sources.push(dir.join(e).to_string_lossy().into_owned()),
                Err(m) => {
                    r.invalid(file, format!("{prefix}.sources[{j}]"), s, m);
                    ok = false;
                }
            }
        }
        let dest = expand_file_path(&b.dest, dir, ctx)
            .map_err(|m| r.invalid(file, format!("{prefix}.dest"), &b.dest, m))
            .ok();
        if let Some(dest) = &dest {
            // Snapshots hold exactly what the deny list keeps out of sandboxes (the matrix
            // store, memory databases): a destination inside a bind would hand them back.
            let real = real_path(dest).0;
            if let Some(bind) = binds.iter().find(|bd| real.starts_with(&bd.bind.source)) {
                r.invalid(
                    file,
                    format!("{prefix}.dest"),
                    &b.dest,
                    format!(
                        "the backup destination is inside bind source {}; sandboxes could read the snapshots",
                        bind.bind.source.display()
                    ),
                );
                ok = false;
            }
        }
        let schedule = match &b.schedule {
            None => None,
            Some(expr) => {
                let checked = check_cron(r, file, &format!("{prefix}.schedule"), expr);
                ok &= checked.is_some();
                checked
            }
        };
        let keep = b.keep.as_ref();
        let keep = Keep {
            last: keep.and_then(|k| k.last).unwrap_or(7),
            daily: keep.and_then(|k| k.daily).unwrap_or(7),
            weekly: keep.and_then(|k| k.weekly).unwrap_or(4),
        };
        if let (true, Some(dest)) = (ok, dest) {
            out.push(Backup {
                name: b.name.clone(),
                sources,
                dest,
                schedule,
                keep,
            });
        }
    }
    out
}

pub(super) fn metrics(r: &mut Report, file: &Path, listen: &str) -> Option<Metrics> {
    match listen.parse::<SocketAddr>() {
        Ok(addr) => {
            if !addr.ip().is_loopback() {
                r.warn(format!(
                    "metrics.listen {addr} is not a loopback address; the endpoint is reachable from the network"
                ));
            }
            Some(Metrics { listen: addr })
        }
        Err(_) => {
            r.invalid(
                file,
                "metrics.listen",
                listen,
                "must be an IP address and port, e.g. 127.0.0.1:9477",
            );
            None
        }
    }
}

/// `schedules`: the cron expressions of the periodic limits sweep and verify run.
pub(super) fn schedules(r: &mut Report, file: &Path, raw: Option<&RawSchedules>) -> Schedules {
    Schedules {
        limits: raw
            .and_then(|s| s.limits.as_deref())
            .and_then(|c| check_cron(r, file, "schedules.limits", c)),
        verify: raw
            .and_then(|s| s.verify.as_deref())
            .and_then(|c| check_cron(r, file, "schedules.verify", c)),
    }
}
