//! What `verify` expects of each target: the declared binds, limits, capabilities and
//! profile of a sandbox (or the adopt rule's limits of an adopted container), and the
//! host-side inputs of a run (the secrets file, the denied paths, the host's CPU count).

use std::path::PathBuf;
use std::time::Duration;

use crate::manifest::{Adopt, Fortress, Limits, Mode, Sandbox};
use crate::secrets::SecretMap;

use super::{scan, sysprobe};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindExpect {
    pub target: String,
    pub read_only: bool,
}

/// What a sandbox should look like, from the manifest (or the strict baseline for adopted
/// containers, which declare only limits).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expect {
    /// `None` for adopted containers: their binds are not declared.
    pub binds: Option<Vec<BindExpect>>,
    pub tmpfs: Vec<String>,
    pub read_only_root: bool,
    pub no_new_privileges: bool,
    pub cap_add: Vec<String>,
    pub cap_drop_all: bool,
    pub allow_root: bool,
    pub network_none: bool,
    pub memory: Option<i64>,
    pub pids: Option<i64>,
    pub cpus: Option<f64>,
    /// Calls the seccomp policy denies that the syscall probe tries (`sysprobe::sample`).
    pub syscalls: Vec<sysprobe::Sampled>,
    /// Calls the policy refuses in a way the probe cannot observe, with the reason.
    pub syscalls_unobservable: Vec<String>,
    /// The profile clw-fortress generated for the sandbox (compact JSON); `None` for adopted
    /// containers, for which nothing was generated.
    pub seccomp_profile: Option<String>,
    /// The egress probes' plan, for a sandbox with an allow-list.
    pub egress: Option<super::probes::EgressExpect>,
}

/// The sample of `profile` for a process holding `cap_add` (all else dropped).
fn denied_sample(
    profile: Option<&crate::seccomp::Profile>,
    cap_add: &[String],
) -> (Vec<sysprobe::Sampled>, Vec<String>) {
    match profile {
        Some(p) => sysprobe::sample(p, cap_add),
        None => (Vec::new(), Vec::new()),
    }
}

impl Expect {
    pub fn of_sandbox(s: &Sandbox) -> Expect {
        let json = crate::seccomp::effective_profile_json(&s.seccomp).ok();
        let profile = json
            .as_deref()
            .and_then(|j| crate::seccomp::Profile::from_json(j).ok());
        let (syscalls, syscalls_unobservable) = denied_sample(profile.as_ref(), &s.cap_add);
        Expect {
            binds: Some(
                s.binds
                    .iter()
                    .map(|b| BindExpect {
                        target: b.target.display().to_string(),
                        read_only: b.mode == Mode::Ro,
                    })
                    .chain((!s.broker.is_empty()).then(|| BindExpect {
                        target: crate::broker::ca::BUNDLE_TARGET.to_string(),
                        read_only: true,
                    }))
                    .collect(),
            ),
            tmpfs: s.tmpfs.keys().cloned().collect(),
            read_only_root: s.read_only_root,
            no_new_privileges: s.no_new_privileges,
            cap_add: s.cap_add.clone(),
            cap_drop_all: s.cap_drop.iter().any(|c| c.eq_ignore_ascii_case("ALL")),
            allow_root: s.allow_root,
            network_none: s.network == crate::manifest::Network::None,
            syscalls,
            syscalls_unobservable,
            seccomp_profile: json,
            egress: s.egress.as_ref().map(super::probes::egress_expect),
            ..Expect::default()
        }
        .with_limits(&s.limits)
    }

    /// The strict baseline for a container the fortress adopted: hardened as a sandbox
    /// would be by default, with the adopt entry's limits.
    pub fn of_adopted(a: &Adopt) -> Expect {
        // Nothing was generated for an adopted container: it must at least deny what the
        // engine's default profile denies (the `permissive` policy is that profile).
        let engine_default =
            crate::seccomp::generate(crate::manifest::SeccompPolicy::Permissive, &[], &[]).ok();
        let (syscalls, syscalls_unobservable) = denied_sample(engine_default.as_ref(), &[]);
        Expect {
            binds: None,
            read_only_root: true,
            no_new_privileges: true,
            cap_drop_all: true,
            syscalls,
            syscalls_unobservable,
            egress: a.egress.as_ref().map(super::probes::egress_expect),
            ..Expect::default()
        }
        .with_limits(&a.limits)
    }

    fn with_limits(mut self, l: &Limits) -> Expect {
        self.memory = l.memory;
        self.pids = l.pids;
        self.cpus = l.cpus;
        self
    }
}

/// One container to verify.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The sandbox name (for adopted containers, the container name).
    pub name: String,
    /// Container name or id on the engine.
    pub container: String,
    pub expect: Expect,
    pub adopted: bool,
}

/// Bounds and switches of a run.
#[derive(Debug, Clone)]
pub struct Options {
    pub allow_inconclusive: bool,
    pub scan_max_bytes: u64,
    pub scan_timeout: Duration,
    pub min_secret_len: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allow_inconclusive: false,
            scan_max_bytes: 512 << 20,
            scan_timeout: Duration::from_secs(60),
            min_secret_len: scan::MIN_SECRET_LEN,
        }
    }
}

/// What every target of a fortress shares.
pub struct Inputs {
    pub secrets_file: Option<PathBuf>,
    /// The secret values, or why they could not be read (never containing a value).
    pub secrets: Option<Result<SecretMap, String>>,
    /// Every `deny` path of every bind set.
    pub deny: Vec<PathBuf>,
    pub host_cpus: i64,
    pub options: Options,
}

/// The inputs of a run of `fortress`: its secrets (read now, by `uid`), every deny path.
pub fn inputs_for(fortress: &Fortress, host_cpus: i64, uid: u32, options: Options) -> Inputs {
    // A secrets file that cannot be read makes the value scans inconclusive, not the run
    // impossible: the other probes still say something. The error names the file, no value.
    let mut secrets = fortress.secrets_file.as_deref().map(|f| {
        crate::secrets::read(f, fortress.secrets_uid(uid)).map_err(|e| {
            let r = crate::report::ErrorReport::from_error(&e);
            r.headline()
        })
    });
    let mut deny: Vec<PathBuf> = fortress
        .bind_sets
        .iter()
        .flat_map(|b| b.deny.iter().cloned())
        .collect();
    // The OpenClaw home's whole inventory is searched for, not only the secrets file: its
    // config, env file and credential trees hold the gateway token and the provider keys.
    if let Some(home) = &fortress.openclaw_state_dir {
        let extra: Vec<PathBuf> = fortress.secrets_file.iter().cloned().collect();
        let inventory = crate::openclaw::inventory::collect(home, &extra);
        if !inventory.problems.is_empty() {
            tracing::warn!(problems = ?inventory.problems, "parts of the OpenClaw home could not be searched for secrets");
        }
        let found = inventory.to_secret_map(home);
        secrets = Some(match secrets {
            None => Ok(found),
            Some(Ok(file)) => Ok(file.merged(found)),
            Some(Err(e)) => Err(e),
        });
        for p in crate::openclaw::inventory::secret_paths(home) {
            if !deny.contains(&p) {
                deny.push(p);
            }
        }
    }
    Inputs {
        secrets_file: fortress.secrets_file.clone(),
        secrets,
        deny,
        host_cpus,
        options,
    }
}
