//! The desired container of each sandbox, derived purely from the validated manifest, and the
//! canonical hash that `apply` compares against the `clw-fortress.spec-hash` label.
//!
//! The hash covers everything the engine can only change by recreating the container (image,
//! user, binds, env, command, network, hardening, seccomp profile). Resource limits are left out
//! on purpose: they are updated in place, and a label cannot change without a recreate, so
//! hashing them would leave a stale label after every in-place update. Limits are compared
//! against the live values the engine reports instead, which also catches drift.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::engine::{BindMount, CreateRequest, Resources};
use crate::manifest::{Limits, Sandbox};

pub const LABEL_MANAGED: &str = "clw-fortress.managed";
pub const LABEL_FORTRESS: &str = "clw-fortress.fortress";
pub const LABEL_SANDBOX: &str = "clw-fortress.sandbox";
pub const LABEL_SPEC_HASH: &str = "clw-fortress.spec-hash";

/// Mode of every tmpfs mount: world-writable with the sticky bit, like `/tmp`, so the
/// non-root sandbox user can write and nobody can delete another user's files. Podman leaves
/// a tmpfs without a mode at 000, so the mode is always explicit.
const TMPFS_MODE: &str = "1777";

/// What one sandbox should look like on the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub sandbox: String,
    pub request: CreateRequest,
    pub spec_hash: String,
}

/// The part of the container config that only a recreate can change, in a stable order.
#[derive(Serialize)]
struct Canonical<'a> {
    image: &'a str,
    user: &'a str,
    env: &'a [String],
    cmd: &'a [String],
    binds: Vec<(&'a str, &'a str, bool)>,
    tmpfs: &'a BTreeMap<String, String>,
    read_only_root: bool,
    cap_drop: Vec<String>,
    cap_add: Vec<String>,
    no_new_privileges: bool,
    init: bool,
    seccomp_sha256: Option<String>,
    network: &'a str,
}

pub fn resources_of(l: &Limits) -> Resources {
    Resources {
        memory: l.memory,
        memory_swap: l.memory_swap,
        nano_cpus: l.nano_cpus(),
        pids_limit: l.pids,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One capability name in one form: `CAP_NET_RAW`, `net_raw` and ` NET_RAW` are `NET_RAW`.
/// Every comparison of capability names (manifest, spec hash, engine views, verify) uses it.
pub fn capability(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    upper.strip_prefix("CAP_").unwrap_or(&upper).to_string()
}

fn caps(list: &[String]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|c| capability(c)).collect();
    v.sort();
    v.dedup();
    v
}

/// The desired container of `sandbox` in fortress `fortress`, with its seccomp profile
/// (compact JSON) already generated and validated by the caller. `ca_bundle`: the host path of
/// the broker CA bundle (crate::broker::ca), mounted read-only into a sandbox with a brokered
/// secret and announced through the usual CA variables.
pub fn desired(
    fortress: &str,
    sandbox: &Sandbox,
    seccomp_json: Option<String>,
    ca_bundle: Option<&std::path::Path>,
) -> Desired {
    let mut env: Vec<String> = sandbox
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    // A sandbox with an egress allow-list reaches the network through the proxy only; tell the
    // tools that honour the proxy variables where it is (a name the manifest sets wins).
    if sandbox.egress.is_some() {
        for (k, v) in crate::egress::netns::proxy_env() {
            if !sandbox.env.contains_key(&k) {
                env.push(format!("{k}={v}"));
            }
        }
    }
    let mut binds: Vec<BindMount> = sandbox
        .binds
        .iter()
        .map(|b| BindMount {
            source: b.source.display().to_string(),
            target: b.target.display().to_string(),
            read_only: b.mode == crate::manifest::Mode::Ro,
        })
        .collect();
    if let (false, Some(bundle)) = (sandbox.broker.is_empty(), ca_bundle) {
        binds.push(BindMount {
            source: bundle.display().to_string(),
            target: crate::broker::ca::BUNDLE_TARGET.to_string(),
            read_only: true,
        });
        for k in crate::broker::ca::BUNDLE_ENV {
            if !sandbox.env.contains_key(k) {
                env.push(format!("{k}={}", crate::broker::ca::BUNDLE_TARGET));
            }
        }
    }
    let tmpfs: BTreeMap<String, String> = sandbox
        .tmpfs
        .iter()
        .map(|(path, size)| {
            (
                path.clone(),
                format!("size={size},mode={TMPFS_MODE},nosuid,nodev"),
            )
        })
        .collect();
    let cap_drop = caps(&sandbox.cap_drop);
    let cap_add = caps(&sandbox.cap_add);
    let canonical = Canonical {
        image: &sandbox.image,
        user: &sandbox.user,
        env: &env,
        cmd: &sandbox.command,
        binds: binds
            .iter()
            .map(|b| (b.source.as_str(), b.target.as_str(), b.read_only))
            .collect(),
        tmpfs: &tmpfs,
        read_only_root: sandbox.read_only_root,
        cap_drop: cap_drop.clone(),
        cap_add: cap_add.clone(),
        no_new_privileges: sandbox.no_new_privileges,
        init: sandbox.init,
        seccomp_sha256: seccomp_json.as_deref().map(|j| sha256_hex(j.as_bytes())),
        network: sandbox.network.mode(),
    };
    let spec_hash = sha256_hex(
        serde_json::to_string(&canonical)
            .expect("the canonical spec is plain data")
            .as_bytes(),
    );
    let labels = BTreeMap::from([
        (LABEL_MANAGED.to_string(), "1".to_string()),
        (LABEL_FORTRESS.to_string(), fortress.to_string()),
        (LABEL_SANDBOX.to_string(), sandbox.name.clone()),
        (LABEL_SPEC_HASH.to_string(), spec_hash.clone()),
    ]);
    Desired {
        sandbox: sandbox.name.clone(),
        request: CreateRequest {
            name: sandbox.name.clone(),
            image: sandbox.image.clone(),
            user: sandbox.user.clone(),
            env,
            cmd: sandbox.command.clone(),
            labels,
            binds,
            tmpfs,
            read_only_root: sandbox.read_only_root,
            cap_drop,
            cap_add,
            no_new_privileges: sandbox.no_new_privileges,
            init: sandbox.init,
            seccomp_profile: seccomp_json,
            network_mode: sandbox.network.mode().to_string(),
            resources: resources_of(&sandbox.limits),
        },
        spec_hash,
    }
}

/// Docker refuses a CPU limit above the engine host's CPU count ("Range of CPUs is from 0.01
/// to N"), while manifest.md makes it a warning; a limit of more CPUs than exist means "all of
/// them", so it is clamped to the host's count. Returns the sandboxes that were clamped.
pub fn clamp_cpus(desired: &mut [Desired], host_cpus: i64) -> Vec<String> {
    desired
        .iter_mut()
        .filter_map(|d| cap_cpus(&mut d.request.resources, host_cpus, &d.sandbox))
        .collect()
}

/// The CPU cap itself, shared by apply ([`clamp_cpus`]) and enforce (`enforce::Policy`):
/// lowers `r`'s CPU limit to `host_cpus` when it is above, and says so (`what (8 -> 2 cpus)`).
/// An unknown host count (0 or less) caps nothing.
pub fn cap_cpus(r: &mut Resources, host_cpus: i64, what: &str) -> Option<String> {
    let n = r.nano_cpus?;
    let capped = (capped_cpus(n as f64 / 1e9, host_cpus) * 1e9).round() as i64;
    if capped >= n {
        return None;
    }
    r.nano_cpus = Some(capped);
    Some(format!("{what} ({} -> {host_cpus} cpus)", n as f64 / 1e9))
}

/// The CPU cap rule: at most the host's CPU count; an unknown count (0 or less) caps nothing.
/// `verify` expects the capped figure the same way apply and enforce set it.
pub fn capped_cpus(cpus: f64, host_cpus: i64) -> f64 {
    if host_cpus <= 0 {
        cpus
    } else {
        cpus.min(host_cpus as f64)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifest::{Bind, Mode, Network, SeccompPolicy, SeccompSource};
    use std::path::PathBuf;

    /// A label map from pairs, for the unit tests of every module that reads labels.
    pub(crate) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn capability_names_have_one_form() {
        for raw in ["cap_net_raw", "NET_RAW", " CAP_NET_RAW ", "net_raw"] {
            assert_eq!(super::capability(raw), "NET_RAW", "{raw:?}");
        }
    }

    pub(crate) fn sandbox(name: &str) -> Sandbox {
        Sandbox {
            name: name.into(),
            image: "img:1".into(),
            user: "1000:1000".into(),
            allow_root: false,
            network: Network::None,
            read_only_root: true,
            tmpfs: BTreeMap::from([("/tmp".to_string(), 64 << 20)]),
            cap_drop: vec!["ALL".into()],
            cap_add: vec![],
            no_new_privileges: true,
            init: true,
            seccomp: SeccompSource::Policy {
                policy: SeccompPolicy::Default,
                allow: vec![],
                deny: vec![],
            },
            limits: Limits {
                memory: Some(64 << 20),
                memory_swap: Some(64 << 20),
                cpus: Some(0.5),
                pids: Some(64),
            },
            binds: vec![Bind {
                source: PathBuf::from("/h/.openclaw/workspace"),
                target: PathBuf::from("/agent-workspace"),
                mode: Mode::Rw,
                create: false,
            }],
            bind_sets: vec![],
            env: BTreeMap::from([("LANG".to_string(), "C.UTF-8".to_string())]),
            secret_env: vec!["API_KEY".into()],
            broker: Default::default(),
            command: vec!["sleep".into(), "infinity".into()],
            liveness: None,
            egress: None,
        }
    }

    #[test]
    fn limits_do_not_change_the_spec_hash() {
        let a = sandbox("s");
        let mut b = a.clone();
        b.limits.memory = Some(128 << 20);
        b.limits.pids = Some(128);
        assert_eq!(
            desired("f", &a, None, None).spec_hash,
            desired("f", &b, None, None).spec_hash
        );
    }

    #[test]
    fn every_recreate_field_changes_the_spec_hash() {
        let base = sandbox("s");
        let h =
            |s: &Sandbox, p: Option<&str>| desired("f", s, p.map(str::to_string), None).spec_hash;
        let h0 = h(&base, Some("{}"));
        let mut variants: Vec<Sandbox> = Vec::new();
        let mut v = base.clone();
        v.image = "img:2".into();
        variants.push(v);
        let mut v = base.clone();
        v.binds[0].mode = Mode::Ro;
        variants.push(v);
        let mut v = base.clone();
        v.user = "1001".into();
        variants.push(v);
        let mut v = base.clone();
        v.read_only_root = false;
        variants.push(v);
        let mut v = base.clone();
        v.cap_add = vec!["NET_BIND_SERVICE".into()];
        variants.push(v);
        let mut v = base.clone();
        v.network = Network::Bridge;
        variants.push(v);
        let mut v = base.clone();
        v.env.insert("X".into(), "1".into());
        variants.push(v);
        for v in &variants {
            assert_ne!(h(v, Some("{}")), h0, "{v:?}");
        }
        assert_ne!(h(&base, Some("{\"a\":1}")), h0, "seccomp profile change");
    }

    #[test]
    fn secret_names_never_reach_the_container_config() {
        let d = desired("f", &sandbox("s"), None, None);
        assert!(d.request.env.iter().all(|e| !e.starts_with("API_KEY")));
    }

    #[test]
    fn a_sandbox_with_a_brokered_secret_mounts_the_ca_bundle_read_only_and_announces_it() {
        let bundle = std::path::Path::new("/state/broker-ca/ca-bundle.crt");
        let mut s = sandbox("s");
        let plain = desired("f", &s, None, Some(bundle));
        assert!(plain
            .request
            .binds
            .iter()
            .all(|b| b.source != bundle.display().to_string()));
        s.broker.insert(
            "API_KEY".into(),
            crate::broker::Broker {
                hosts: vec![crate::broker::parse_host("api.example.com:443").unwrap()],
                places: [crate::broker::Place::Header].into(),
            },
        );
        let d = desired("f", &s, None, Some(bundle));
        assert!(d.request.binds.contains(&BindMount {
            source: bundle.display().to_string(),
            target: crate::broker::ca::BUNDLE_TARGET.into(),
            read_only: true,
        }));
        for k in crate::broker::ca::BUNDLE_ENV {
            assert!(
                d.request
                    .env
                    .contains(&format!("{k}={}", crate::broker::ca::BUNDLE_TARGET)),
                "{k}"
            );
        }
        assert_ne!(d.spec_hash, plain.spec_hash);
    }

    #[test]
    fn cpus_above_the_host_count_are_clamped_to_it() {
        let mut big = sandbox("big");
        big.limits.cpus = Some(4.0);
        let mut d = vec![
            desired("f", &big, None, None),
            desired("f", &sandbox("small"), None, None),
        ];
        let clamped = clamp_cpus(&mut d, 2);
        assert_eq!(clamped.len(), 1);
        assert_eq!(d[0].request.resources.nano_cpus, Some(2_000_000_000));
        assert_eq!(d[1].request.resources.nano_cpus, Some(500_000_000));
    }

    #[test]
    fn capabilities_are_normalised_before_hashing() {
        let mut a = sandbox("s");
        a.cap_drop = vec!["cap_all".into()];
        let b = sandbox("s");
        assert_eq!(
            desired("f", &a, None, None).spec_hash,
            desired("f", &b, None, None).spec_hash
        );
    }
}
