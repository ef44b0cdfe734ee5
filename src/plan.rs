//! The planner: desired sandboxes vs. observed containers -> actions. No I/O.
//!
//! Identity is the container name (unique per engine). Whose a container is comes from
//! [`crate::ownership`] (labels and the record of what this fortress created): one that only
//! carries our labels is recreated when it holds a declared name and never pruned; anything
//! else that holds a declared name is a conflict, reported and never touched.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::engine::Resources;
use crate::manifest::units;
use crate::ownership::Ownership;
use crate::spec::{Desired, LABEL_SPEC_HASH};

/// A container as the planner needs to see it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    pub resources: Resources,
    /// Whose it is: its labels and the state database's record of what this fortress created
    /// (crate::ownership); labels alone can be copied.
    pub ownership: Ownership,
    /// What the engine says the container runs with; `None` when not inspected.
    pub security: Option<crate::engine::security::SecurityView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    Create {
        sandbox: String,
    },
    Start {
        sandbox: String,
        id: String,
    },
    UpdateLimits {
        sandbox: String,
        id: String,
        changes: Vec<LimitChange>,
    },
    Recreate {
        sandbox: String,
        id: String,
        reason: String,
    },
    Remove {
        name: String,
        id: String,
    },
}

impl Action {
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Start { .. } => "start",
            Action::UpdateLimits { .. } => "update",
            Action::Recreate { .. } => "recreate",
            Action::Remove { .. } => "remove",
        }
    }

    pub fn target(&self) -> &str {
        match self {
            Action::Create { sandbox }
            | Action::Start { sandbox, .. }
            | Action::UpdateLimits { sandbox, .. }
            | Action::Recreate { sandbox, .. } => sandbox,
            Action::Remove { name, .. } => name,
        }
    }
}

/// One limit that differs, as the engine holds it and as declared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitChange {
    pub field: &'static str,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// A limit for people: bytes in binary units, nano-CPUs as CPUs, `None` as unlimited.
pub fn limit_value(field: &str, v: Option<i64>) -> String {
    match (field, v) {
        (_, None) => "unlimited".into(),
        ("memory" | "memorySwap", Some(v)) => units::format_size_exact(v),
        ("nanoCpus", Some(v)) => format!("{} cpus", v as f64 / 1e9),
        (_, Some(v)) => v.to_string(),
    }
}

/// `memory 64Mi -> 96Mi, cpus 0.5 cpus -> 0.25 cpus`, for plans, reports and the audit log.
pub fn describe_changes(changes: &[LimitChange]) -> String {
    changes
        .iter()
        .map(|c| {
            let name = if c.field == "nanoCpus" {
                "cpus"
            } else {
                c.field
            };
            format!(
                "{name} {} -> {}",
                limit_value(c.field, c.from),
                limit_value(c.field, c.to)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A declared name held by a container that is not ours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    pub sandbox: String,
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Declared sandboxes already as desired.
    pub unchanged: Vec<String>,
    pub conflicts: Vec<Conflict>,
    /// Managed containers of this fortress no longer declared (removed only with `--prune`).
    pub orphans: Vec<String>,
    /// Undeclared containers labelled as this fortress's that it has no record of creating:
    /// someone else's, never removed.
    pub unrecorded: Vec<String>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.actions.is_empty()
    }
}

/// Zero, negative and absent all mean "unlimited" to the engines.
fn norm(v: Option<i64>) -> Option<i64> {
    v.filter(|v| *v > 0)
}

/// The limits that differ between what the engine holds and what is declared. A declared
/// `None` means "no opinion", not "remove the limit".
pub fn limit_changes(observed: &Resources, desired: &Resources) -> Vec<LimitChange> {
    let fields: [(&'static str, Option<i64>, Option<i64>); 4] = [
        ("memory", observed.memory, desired.memory),
        ("memorySwap", observed.memory_swap, desired.memory_swap),
        ("nanoCpus", observed.nano_cpus, desired.nano_cpus),
        ("pids", observed.pids_limit, desired.pids_limit),
    ];
    fields
        .into_iter()
        .filter(|(_, o, d)| d.is_some() && norm(*o) != norm(*d))
        .map(|(field, from, to)| LimitChange {
            field,
            from: norm(from),
            to,
        })
        .collect()
}

/// The actions that bring `observed` (as [`crate::apply::observe`] saw it for one fortress) to
/// `desired`.
pub fn plan(desired: &[Desired], observed: &[Observed], prune: bool) -> Plan {
    let mut out = Plan::default();
    let by_name: BTreeMap<&str, &Observed> =
        observed.iter().map(|o| (o.name.as_str(), o)).collect();
    let declared: BTreeSet<&str> = desired.iter().map(|d| d.sandbox.as_str()).collect();

    for d in desired {
        let Some(o) = by_name.get(d.sandbox.as_str()) else {
            out.actions.push(Action::Create {
                sandbox: d.sandbox.clone(),
            });
            continue;
        };
        let conflict = match &o.ownership {
            Ownership::Owned { .. } => None,
            Ownership::Unrecorded { .. } | Ownership::Mismatch { .. } => {
                out.actions.push(Action::Recreate {
                    sandbox: d.sandbox.clone(),
                    id: o.id.clone(),
                    reason: "not recorded as created by this fortress (its labels may be copied)"
                        .into(),
                });
                continue;
            }
            Ownership::OtherFortress { fortress } => Some(format!(
                "the name is held by a container of fortress {fortress:?}"
            )),
            Ownership::Foreign => {
                Some("the name is held by a container clw-fortress does not manage".to_string())
            }
        };
        if let Some(reason) = conflict {
            out.conflicts.push(Conflict {
                sandbox: d.sandbox.clone(),
                id: o.id.clone(),
                reason,
            });
            continue;
        }
        let hash = o.labels.get(LABEL_SPEC_HASH).map(String::as_str);
        if hash != Some(d.spec_hash.as_str()) {
            out.actions.push(Action::Recreate {
                sandbox: d.sandbox.clone(),
                id: o.id.clone(),
                reason: format!(
                    "configuration changed (spec hash {} -> {})",
                    short(hash.unwrap_or("none")),
                    short(&d.spec_hash)
                ),
            });
            continue;
        }
        let drift = o
            .security
            .as_ref()
            .map(|s| crate::engine::security::drift(&d.request, s))
            .unwrap_or_default();
        if !drift.is_empty() {
            out.actions.push(Action::Recreate {
                sandbox: d.sandbox.clone(),
                id: o.id.clone(),
                reason: format!("security drift: {}", drift.join("; ")),
            });
            continue;
        }
        let changes = limit_changes(&o.resources, &d.request.resources);
        let mut converged = true;
        if !changes.is_empty() {
            converged = false;
            out.actions.push(Action::UpdateLimits {
                sandbox: d.sandbox.clone(),
                id: o.id.clone(),
                changes,
            });
        }
        if !o.running {
            converged = false;
            out.actions.push(Action::Start {
                sandbox: d.sandbox.clone(),
                id: o.id.clone(),
            });
        }
        if converged {
            out.unchanged.push(d.sandbox.clone());
        }
    }

    for o in observed {
        if declared.contains(o.name.as_str()) {
            continue;
        }
        if o.ownership.is_unrecorded() {
            // Labels anyone can copy do not make a container ours to remove.
            out.unrecorded.push(o.name.clone());
            continue;
        }
        if let Ownership::Owned { .. } = o.ownership {
            if prune {
                out.actions.push(Action::Remove {
                    name: o.name.clone(),
                    id: o.id.clone(),
                });
            } else {
                out.orphans.push(o.name.clone());
            }
        }
    }
    out
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership;
    use crate::spec::{
        desired as desired_of, tests::sandbox, LABEL_FORTRESS, LABEL_MANAGED, LABEL_SANDBOX,
    };

    fn observed_from(d: &Desired, running: bool) -> Observed {
        Observed {
            id: format!("id-{}", d.sandbox),
            name: d.sandbox.clone(),
            labels: d.request.labels.clone(),
            running,
            resources: d.request.resources,
            // As apply records it: created by this fortress for the sandbox its labels name.
            ownership: ownership::classify("f", &d.request.labels, Some(&d.sandbox)),
            security: None,
        }
    }

    #[test]
    fn labels_without_a_record_and_security_drift_are_never_ok() {
        let a = desired_of("f", &sandbox("a"), None, None);
        let mut forged = observed_from(&a, true);
        forged.ownership = ownership::classify("f", &forged.labels, None);
        let p = plan(std::slice::from_ref(&a), &[forged.clone()], false);
        assert!(
            matches!(&p.actions[..], [Action::Recreate { reason, .. }] if reason.contains("not recorded")),
            "{p:?}"
        );
        // A forged orphan is not ours to prune.
        let mut gone = observed_from(&desired_of("f", &sandbox("gone"), None, None), true);
        gone.ownership = ownership::classify("f", &gone.labels, None);
        let p = plan(
            std::slice::from_ref(&a),
            &[observed_from(&a, true), gone],
            true,
        );
        assert!(p.actions.is_empty(), "{p:?}");
        assert_eq!(p.unrecorded, ["gone"], "{p:?}");
        // A weakened container with the right labels and record is recreated.
        let mut weak = observed_from(&a, true);
        weak.security = Some(crate::engine::security::SecurityView {
            privileged: true,
            ..Default::default()
        });
        let p = plan(std::slice::from_ref(&a), &[weak], false);
        assert!(
            matches!(&p.actions[..], [Action::Recreate { reason, .. }] if reason.starts_with("security drift: privileged")),
            "{p:?}"
        );
    }

    #[test]
    fn planner_table() {
        let a = desired_of("f", &sandbox("a"), None, None);
        let mut looser = sandbox("a");
        looser.limits.pids = Some(4096);
        let a_loose = observed_from(&desired_of("f", &looser, None, None), true);
        let mut other_image = sandbox("a");
        other_image.image = "img:2".into();
        let a_old = observed_from(&desired_of("f", &other_image, None, None), true);
        let stray = Observed {
            id: "x".into(),
            name: "a".into(),
            ..Default::default()
        };
        let foreign = Observed {
            labels: BTreeMap::from([
                (LABEL_MANAGED.into(), "1".into()),
                (LABEL_FORTRESS.into(), "g".into()),
            ]),
            ownership: Ownership::OtherFortress {
                fortress: "g".into(),
            },
            ..stray.clone()
        };
        let mut orphan = observed_from(&desired_of("f", &sandbox("gone"), None, None), true);
        orphan.labels.insert(LABEL_SANDBOX.into(), "gone".into());

        struct Case {
            name: &'static str,
            observed: Vec<Observed>,
            prune: bool,
            verbs: Vec<&'static str>,
            conflicts: usize,
            orphans: usize,
        }
        let cases = vec![
            Case {
                name: "absent is created",
                observed: vec![],
                prune: false,
                verbs: vec!["create"],
                conflicts: 0,
                orphans: 0,
            },
            Case {
                name: "as desired is a no-op",
                observed: vec![observed_from(&a, true)],
                prune: false,
                verbs: vec![],
                conflicts: 0,
                orphans: 0,
            },
            Case {
                name: "stopped is started",
                observed: vec![observed_from(&a, false)],
                prune: false,
                verbs: vec!["start"],
                conflicts: 0,
                orphans: 0,
            },
            Case {
                name: "loosened limits are updated in place",
                observed: vec![a_loose.clone()],
                prune: false,
                verbs: vec!["update"],
                conflicts: 0,
                orphans: 0,
            },
            Case {
                name: "changed config is recreated",
                observed: vec![a_old],
                prune: false,
                verbs: vec!["recreate"],
                conflicts: 0,
                orphans: 0,
            },
            Case {
                name: "unmanaged holder of the name is a conflict",
                observed: vec![stray],
                prune: true,
                verbs: vec![],
                conflicts: 1,
                orphans: 0,
            },
            Case {
                name: "another fortress's holder is a conflict",
                observed: vec![foreign],
                prune: true,
                verbs: vec![],
                conflicts: 1,
                orphans: 0,
            },
            Case {
                name: "undeclared managed is an orphan without prune",
                observed: vec![observed_from(&a, true), orphan.clone()],
                prune: false,
                verbs: vec![],
                conflicts: 0,
                orphans: 1,
            },
            Case {
                name: "undeclared managed is removed with prune",
                observed: vec![observed_from(&a, true), orphan],
                prune: true,
                verbs: vec!["remove"],
                conflicts: 0,
                orphans: 0,
            },
        ];
        for c in cases {
            let p = plan(std::slice::from_ref(&a), &c.observed, c.prune);
            let verbs: Vec<&str> = p.actions.iter().map(Action::verb).collect();
            assert_eq!(verbs, c.verbs, "{}", c.name);
            assert_eq!(p.conflicts.len(), c.conflicts, "{}", c.name);
            assert_eq!(p.orphans.len(), c.orphans, "{}", c.name);
        }
    }

    #[test]
    fn limit_changes_read_in_binary_units_and_cpus() {
        let c = [
            LimitChange {
                field: "memory",
                from: Some(64 << 20),
                to: Some(3 << 30),
            },
            LimitChange {
                field: "nanoCpus",
                from: None,
                to: Some(500_000_000),
            },
            LimitChange {
                field: "pids",
                from: Some(4096),
                to: Some(64),
            },
        ];
        assert_eq!(
            describe_changes(&c),
            "memory 64Mi -> 3Gi, cpus unlimited -> 0.5 cpus, pids 4096 -> 64"
        );
    }

    #[test]
    fn unlimited_spellings_are_equal() {
        let o = Resources {
            memory: Some(0),
            memory_swap: None,
            nano_cpus: Some(0),
            pids_limit: Some(-1),
        };
        let d = Resources::default();
        assert!(limit_changes(&o, &d).is_empty());
        let d = Resources {
            pids_limit: Some(64),
            ..Default::default()
        };
        assert_eq!(
            limit_changes(&o, &d),
            vec![LimitChange {
                field: "pids",
                from: None,
                to: Some(64)
            }]
        );
    }

    #[test]
    fn unmanaged_containers_never_get_actions() {
        let a = desired_of("f", &sandbox("a"), None, None);
        let unrelated = Observed {
            id: "u".into(),
            name: "a-lookalike".into(),
            ..Default::default()
        };
        let p = plan(&[a], &[unrelated], true);
        assert_eq!(
            p.actions.iter().map(Action::verb).collect::<Vec<_>>(),
            ["create"]
        );
    }
}
