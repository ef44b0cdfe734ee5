//! The generated seccomp profiles, byte for byte, against the reviewed files in
//! `tests/golden/`. Pure: no engine. A policy change shows up as a diff of these files in
//! review; regenerate them with `CLW_UPDATE_GOLDEN=1 cargo test --test seccomp_golden`.

use std::path::PathBuf;

use clw_fortress::manifest::SeccompPolicy;
use clw_fortress::seccomp::{self, Profile};

const POLICIES: [SeccompPolicy; 3] = [
    SeccompPolicy::Permissive,
    SeccompPolicy::Default,
    SeccompPolicy::Strict,
];

fn golden_path(policy: SeccompPolicy) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("seccomp-{}.json", policy.as_str()))
}

fn updating() -> bool {
    std::env::var("CLW_UPDATE_GOLDEN").is_ok_and(|v| v == "1")
}

#[test]
fn generated_profiles_match_the_golden_files() {
    let mut stale = Vec::new();
    for policy in POLICIES {
        let generated = seccomp::generate(policy, &[], &[])
            .unwrap_or_else(|e| panic!("{} does not generate: {e}", policy.as_str()))
            .to_pretty_json();
        let path = golden_path(policy);
        if updating() {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let golden = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        if golden != generated {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "generated profiles differ from {stale:?}; review the change and regenerate with \
         CLW_UPDATE_GOLDEN=1 cargo test --test seccomp_golden"
    );
}

#[test]
fn golden_files_are_valid_profiles() {
    if updating() {
        return;
    }
    for policy in POLICIES {
        let path = golden_path(policy);
        let profile: Profile = seccomp::load_file(&path)
            .unwrap_or_else(|e| panic!("{} is not a valid profile: {e}", path.display()));
        assert!(seccomp::check(&profile).unwrap().is_empty());
    }
}
