//! Which containers are this fortress's own. Labels say what a container claims to be, and
//! anyone with access to the engine can write them; the state database says what this fortress
//! really created. A container is an owned sandbox only when both agree: its labels name this
//! fortress and a declared sandbox, and its id was recorded when clw-fortress created it.
//!
//! Pure: the caller reads the labels from the engine and the record from the state.

use std::collections::BTreeMap;

use crate::spec::{LABEL_FORTRESS, LABEL_MANAGED, LABEL_SANDBOX};

/// What a container is to a fortress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Labelled as this fortress's sandbox and recorded as created by it.
    Owned { sandbox: String },
    /// Labelled as this fortress's sandbox, but not recorded: it may be a forgery (or a
    /// container created before the record existed). Never trusted with secrets.
    Unrecorded { sandbox: String },
    /// Recorded for another sandbox than its labels name: forged or tampered labels.
    Mismatch { labelled: String, recorded: String },
    /// Not labelled as this fortress's.
    Foreign,
}

/// Classifies a container by its labels and the state's record of what this fortress created
/// with that id (`recorded`: the sandbox name, if any).
pub fn classify(
    fortress: &str,
    labels: &BTreeMap<String, String>,
    recorded: Option<&str>,
) -> Ownership {
    let ours = labels.get(LABEL_MANAGED).map(String::as_str) == Some("1")
        && labels.get(LABEL_FORTRESS).map(String::as_str) == Some(fortress);
    let Some(sandbox) = labels.get(LABEL_SANDBOX).filter(|_| ours) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_and_record_together_decide_ownership() {
        let ours = labels(&[
            (LABEL_MANAGED, "1"),
            (LABEL_FORTRESS, "f"),
            (LABEL_SANDBOX, "sbx"),
        ]);
        let cases = [
            (
                ours.clone(),
                Some("sbx"),
                Ownership::Owned {
                    sandbox: "sbx".into(),
                },
            ),
            (
                ours.clone(),
                None,
                Ownership::Unrecorded {
                    sandbox: "sbx".into(),
                },
            ),
            (
                ours.clone(),
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
                Ownership::Foreign,
            ),
            (
                labels(&[(LABEL_FORTRESS, "f"), (LABEL_SANDBOX, "sbx")]),
                Some("sbx"),
                Ownership::Foreign,
            ),
            (labels(&[]), None, Ownership::Foreign),
        ];
        for (l, recorded, want) in cases {
            assert_eq!(classify("f", &l, recorded), want, "{l:?} {recorded:?}");
        }
    }
}
