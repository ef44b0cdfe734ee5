//! Which containers are this fortress's own: the one rule every command uses (`exec`, `stop`,
//! `heal` and the agent's crash path, `enforce`, `status`, `doctor`, `verify`, `plan`/`apply`).
//! Labels say what a container claims to be, and anyone with access to the engine can write
//! them; the state database says what this fortress really created. A container is an owned
//! sandbox only when both agree: its labels name this fortress and a declared sandbox, and its
//! id was recorded when clw-fortress created it.
//!
//! [`classify`] is pure (labels and the record in, a verdict out); [`of`] is the thin reader
//! that fetches the record from the state database and calls it. Neither acts on a container.

use std::collections::BTreeMap;

use crate::spec::{LABEL_FORTRESS, LABEL_MANAGED, LABEL_SANDBOX};
use crate::state::{State, StateError};

/// What a container is to a fortress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Ownership {
    /// Labelled as this fortress's sandbox and recorded as created by it.
    Owned { sandbox: String },
    /// Labelled as this fortress's sandbox, but not recorded: it may be a forgery (or a
    /// container created before the record existed). Never trusted with secrets, never
    /// restarted, stopped or removed.
    Unrecorded { sandbox: String },
    /// Recorded for another sandbox than its labels name: forged or tampered labels.
    Mismatch { labelled: String, recorded: String },
    /// Labelled as managed by another fortress: neither ours nor ours to adopt, so two
    /// fortresses on one engine never fight over a container.
    OtherFortress { fortress: String },
    /// Not labelled as any fortress's sandbox.
    #[default]
    Foreign,
}

impl Ownership {
    /// True when this is the container this fortress created for `sandbox`.
    pub fn owns(&self, sandbox: &str) -> bool {
        matches!(self, Ownership::Owned { sandbox: s } if s == sandbox)
    }

    /// Labelled as this fortress's sandbox but not recorded as such (a forgery, or a container
    /// from before the record existed).
    pub fn is_unrecorded(&self) -> bool {
        matches!(
            self,
            Ownership::Unrecorded { .. } | Ownership::Mismatch { .. }
        )
    }

    /// Whether `adopt` selectors may apply: anything that is neither this fortress's own nor
    /// another fortress's. Limiting a container whose labels merely claim to be ours is safe.
    pub fn adoptable(&self) -> bool {
        !matches!(
            self,
            Ownership::Owned { .. } | Ownership::OtherFortress { .. }
        )
    }

    /// Why this is not the container this fortress created for `sandbox` (for a refusal);
    /// `None` when it is.
    pub fn refusal(&self, sandbox: &str) -> Option<String> {
        Some(match self {
            Ownership::Owned { sandbox: s } if s == sandbox => return None,
            Ownership::Owned { sandbox: s } => format!("it was created for sandbox {s}"),
            Ownership::Unrecorded { .. } => "its labels name this fortress, but the state \
                database has no record of creating it (forged labels, or created before records \
                were kept)"
                .into(),
            Ownership::Mismatch { labelled, recorded } => {
                format!("labelled {labelled} but recorded as {recorded}")
            }
            Ownership::OtherFortress { fortress } => {
                format!("it carries the labels of fortress {fortress}")
            }
            Ownership::Foreign => "it does not carry this fortress's labels".into(),
        })
    }
}

/// Classifies a container by its labels and the state's record of what this fortress created
/// with that id (`recorded`: the sandbox name, if any). Pure.
pub fn classify(
    fortress: &str,
    labels: &BTreeMap<String, String>,
    recorded: Option<&str>,
) -> Ownership {
    if labels.get(LABEL_MANAGED).map(String::as_str) != Some("1") {
        return Ownership::Foreign;
    }
    match labels.get(LABEL_FORTRESS) {
        Some(owner) if owner != fortress => {
            return Ownership::OtherFortress {
                fortress: owner.clone(),
            }
        }
        Some(_) => {}
        None => return Ownership::Foreign,
    }
    let Some(sandbox) = labels.get(LABEL_SANDBOX) else {
        return Ownership::Foreign;
    };
    match recorded {
        Some(r) if r == sandbox => Ownership::Owned {
            sandbox: sandbox.clone(),
        },
        Some(r) => Ownership::Mismatch {
            labelled: sandbox.clone(),
            recorded: r.to_string(),
        },
        None => Ownership::Unrecorded {
            sandbox: sandbox.clone(),
        },
    }
}

/// What container `id` with `labels` is to `fortress`: reads what the state database recorded
/// for that id and calls [`classify`]. Without a database nothing is owned (nothing was
/// recorded). The database is read only when the labels claim a sandbox of this fortress.
pub fn of(
    state: Option<&State>,
    fortress: &str,
    id: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Ownership, StateError> {
    let claimed = classify(fortress, labels, None);
    let (Ownership::Unrecorded { .. }, Some(state)) = (&claimed, state) else {
        return Ok(claimed);
    };
    let recorded = state.created_sandbox(fortress, id)?;
    Ok(classify(fortress, labels, recorded.as_deref()))
}

/// [`of`] for the callers that report rather than fail (status, enforce, doctor, planning):
/// a database that cannot be read is logged and the container judged as if nothing had been
/// recorded, so it is never taken for owned.
pub fn of_logged(
    state: Option<&State>,
    fortress: &str,
    id: &str,
    labels: &BTreeMap<String, String>,
) -> Ownership {
    of(state, fortress, id, labels).unwrap_or_else(|e| {
        tracing::warn!(
            container = %id, error = %crate::report::chain(&e),
            "cannot read the created-container record; treating the container as not recorded"
        );
        classify(fortress, labels, None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::spec::tests::labels;

    fn ours(sandbox: &str) -> BTreeMap<String, String> {
        labels(&[
            (LABEL_MANAGED, "1"),
            (LABEL_FORTRESS, "f"),
            (LABEL_SANDBOX, sandbox),
        ])
    }

    #[test]
    fn labels_and_record_together_decide_ownership() {
        let cases = [
            (
                ours("sbx"),
                Some("sbx"),
                Ownership::Owned {
                    sandbox: "sbx".into(),
                },
            ),
            (
                ours("sbx"),
                None,
                Ownership::Unrecorded {
                    sandbox: "sbx".into(),
                },
            ),
            (
                ours("sbx"),
                Some("other"),
                Ownership::Mismatch {
                    labelled: "sbx".into(),
                    recorded: "other".into(),
                },
            ),
            (
                labels(&[
                    (LABEL_MANAGED, "1"),
                    (LABEL_FORTRESS, "g"),
                    (LABEL_SANDBOX, "sbx"),
                ]),
                Some("sbx"),
                Ownership::OtherFortress {
                    fortress: "g".into(),
                },
            ),
            (
                labels(&[(LABEL_FORTRESS, "f"), (LABEL_SANDBOX, "sbx")]),
                Some("sbx"),
                Ownership::Foreign,
            ),
            (
                labels(&[(LABEL_MANAGED, "1"), (LABEL_FORTRESS, "f")]),
                None,
                Ownership::Foreign,
            ),
            (
                labels(&[(LABEL_MANAGED, "1"), (LABEL_FORTRESS, "g")]),
                None,
                Ownership::OtherFortress {
                    fortress: "g".into(),
                },
            ),
            (labels(&[]), None, Ownership::Foreign),
        ];
        for (l, recorded, want) in cases {
            assert_eq!(classify("f", &l, recorded), want, "{l:?} {recorded:?}");
        }
    }

    #[test]
    fn only_the_owned_container_of_the_sandbox_is_owned_and_adopt_rules_reach_the_rest() {
        let owned = Ownership::Owned {
            sandbox: "sbx".into(),
        };
        assert!(owned.owns("sbx") && !owned.owns("other"));
        assert_eq!(owned.refusal("sbx"), None);
        assert!(owned
            .refusal("other")
            .unwrap()
            .contains("created for sandbox sbx"));
        assert!(!owned.adoptable());
        let unrecorded = Ownership::Unrecorded {
            sandbox: "sbx".into(),
        };
        assert!(!unrecorded.owns("sbx") && unrecorded.is_unrecorded());
        assert!(unrecorded.refusal("sbx").unwrap().contains("no record"));
        assert!(unrecorded.adoptable());
        let other = Ownership::OtherFortress {
            fortress: "g".into(),
        };
        assert!(!other.adoptable() && !other.is_unrecorded());
        assert!(Ownership::Foreign.adoptable());
    }

    /// The reader on a real state database file: the record decides, per fortress and id.
    #[test]
    fn the_record_in_the_state_database_decides_what_labels_only_claim() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.db")).unwrap();
        state.record_created("f", "sbx", "id-real").unwrap();
        state.record_created("g", "sbx", "id-of-g").unwrap();
        let l = ours("sbx");
        let of = |state: Option<&State>, id: &str| of(state, "f", id, &l).unwrap();
        assert_eq!(
            of(Some(&state), "id-real"),
            Ownership::Owned {
                sandbox: "sbx".into()
            }
        );
        // Same labels, another id: a copy.
        assert!(of(Some(&state), "id-forged").is_unrecorded());
        // Recorded, but by another fortress.
        assert!(of(Some(&state), "id-of-g").is_unrecorded());
        // Without a database nothing was recorded.
        assert!(of(None, "id-real").is_unrecorded());
        // Recorded for one sandbox, labelled as another.
        assert_eq!(
            super::of(Some(&state), "f", "id-real", &ours("other")).unwrap(),
            Ownership::Mismatch {
                labelled: "other".into(),
                recorded: "sbx".into()
            }
        );
        // Labels that do not claim this fortress are judged without the record.
        assert_eq!(
            super::of(Some(&state), "f", "id-real", &labels(&[])).unwrap(),
            Ownership::Foreign
        );
        // The record survives reopening the file.
        drop(state);
        let state = State::open(&dir.path().join("state.db")).unwrap();
        assert!(of(Some(&state), "id-real").owns("sbx"));
        assert!(of_logged(Some(&state), "f", "id-real", &l).owns("sbx"));
    }
}
