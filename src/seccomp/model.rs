//! The typed Docker/OCI seccomp profile: the JSON format Docker, Podman and OCI runtimes read.
//!
//! Owns parsing and serialising only. Actions, operators, architectures and flags are enums, so
//! an unknown value is a parse error naming it. Optional fields stay `Option` so a profile
//! round-trips without loss; `None` is skipped on output. What a profile *means* (validation,
//! policies) lives elsewhere.

use serde::{Deserialize, Deserializer, Serialize};

/// A whole profile (`defaultAction`, `syscalls[]`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    /// What happens to a call no rule matches.
    pub default_action: Action,
    /// The errno returned by a `SCMP_ACT_ERRNO` default action (runc uses `EPERM` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Explicit architectures (OCI form); Docker derives them from `archMap` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<Arch>>,
    /// Per native architecture, the sub-architectures the filter also covers (Docker form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch_map: Option<Vec<ArchMap>>,
    /// `seccomp(2)` filter flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<Flag>>,
    /// Unix socket of a seccomp notify agent (`SCMP_ACT_NOTIFY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    /// Opaque data passed to the notify agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    /// The rules, in order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub syscalls: Vec<Rule>,
}

/// One `archMap` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchMap {
    pub architecture: Arch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_architectures: Option<Vec<Arch>>,
}

/// One `syscalls[]` entry: a group of names sharing an action and conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// The syscalls this rule matches.
    #[serde(default, deserialize_with = "null_as_default")]
    pub names: Vec<String>,
    /// The single-name form of old Docker profiles; read, kept, never generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument comparisons; all must hold (AND). Several rules for one name are OR-ed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<Arg>>,
    /// Why the rule exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The rule applies only when all of these hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Filter>,
    /// The rule does not apply when any of these holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<Filter>,
}

/// One argument comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Arg {
    /// Argument position, 0..=5.
    pub index: u32,
    /// The datum; for `SCMP_CMP_MASKED_EQ` the mask.
    pub value: u64,
    /// For `SCMP_CMP_MASKED_EQ`, the value the masked argument must equal (0 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_two: Option<u64>,
    pub op: Op,
}

/// Conditions of `includes`/`excludes` (evaluated by the engine when it builds the filter).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filter {
    /// Capabilities (`CAP_SYS_ADMIN`, ...) the container holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Vec<String>>,
    /// Go architecture names (`amd64`, `arm64`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arches: Option<Vec<String>>,
    /// Minimum host kernel, `major.minor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Filter {
    pub fn caps(&self) -> &[String] {
        self.caps.as_deref().unwrap_or_default()
    }

    pub fn arches(&self) -> &[String] {
        self.arches.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    #[serde(rename = "SCMP_ACT_KILL")]
    Kill,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

impl Action {
    /// Whether the call goes through to the kernel (`LOG` runs it too, after logging).
    pub fn lets_through(self) -> bool {
        matches!(self, Action::Allow | Action::Log)
    }

    pub fn is_kill(self) -> bool {
        matches!(
            self,
            Action::Kill | Action::KillProcess | Action::KillThread
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Kill => "SCMP_ACT_KILL",
            Action::KillProcess => "SCMP_ACT_KILL_PROCESS",
            Action::KillThread => "SCMP_ACT_KILL_THREAD",
            Action::Trap => "SCMP_ACT_TRAP",
            Action::Errno => "SCMP_ACT_ERRNO",
            Action::Trace => "SCMP_ACT_TRACE",
            Action::Allow => "SCMP_ACT_ALLOW",
            Action::Log => "SCMP_ACT_LOG",
            Action::Notify => "SCMP_ACT_NOTIFY",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

/// libseccomp architecture tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Arch {
    #[serde(rename = "SCMP_ARCH_X86")]
    X86,
    #[serde(rename = "SCMP_ARCH_X86_64")]
    X86_64,
    #[serde(rename = "SCMP_ARCH_X32")]
    X32,
    #[serde(rename = "SCMP_ARCH_ARM")]
    Arm,
    #[serde(rename = "SCMP_ARCH_AARCH64")]
    Aarch64,
    #[serde(rename = "SCMP_ARCH_MIPS")]
    Mips,
    #[serde(rename = "SCMP_ARCH_MIPS64")]
    Mips64,
    #[serde(rename = "SCMP_ARCH_MIPS64N32")]
    Mips64N32,
    #[serde(rename = "SCMP_ARCH_MIPSEL")]
    Mipsel,
    #[serde(rename = "SCMP_ARCH_MIPSEL64")]
    Mipsel64,
    #[serde(rename = "SCMP_ARCH_MIPSEL64N32")]
    Mipsel64N32,
    #[serde(rename = "SCMP_ARCH_PPC")]
    Ppc,
    #[serde(rename = "SCMP_ARCH_PPC64")]
    Ppc64,
    #[serde(rename = "SCMP_ARCH_PPC64LE")]
    Ppc64Le,
    #[serde(rename = "SCMP_ARCH_S390")]
    S390,
    #[serde(rename = "SCMP_ARCH_S390X")]
    S390X,
    #[serde(rename = "SCMP_ARCH_PARISC")]
    Parisc,
    #[serde(rename = "SCMP_ARCH_PARISC64")]
    Parisc64,
    #[serde(rename = "SCMP_ARCH_RISCV64")]
    Riscv64,
    #[serde(rename = "SCMP_ARCH_LOONGARCH64")]
    Loongarch64,
    #[serde(rename = "SCMP_ARCH_M68K")]
    M68k,
    #[serde(rename = "SCMP_ARCH_SH")]
    Sh,
    #[serde(rename = "SCMP_ARCH_SHEB")]
    Sheb,
}

/// `seccomp(2)` filter flags runc understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Flag {
    #[serde(rename = "SECCOMP_FILTER_FLAG_TSYNC")]
    Tsync,
    #[serde(rename = "SECCOMP_FILTER_FLAG_LOG")]
    Log,
    #[serde(rename = "SECCOMP_FILTER_FLAG_SPEC_ALLOW")]
    SpecAllow,
    #[serde(rename = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")]
    WaitKillableRecv,
}

/// Older Docker profiles write `null` where a list is empty.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Profile {
    /// Parses profile JSON; the error names the bad value and its line and column.
    pub fn from_json(text: &str) -> Result<Profile, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// One line, as Docker reads it inline (`seccomp=<json>`).
    pub fn to_compact_json(&self) -> String {
        serde_json::to_string(self).expect("a profile always serialises")
    }

    /// Indented, for files and reviews.
    pub fn to_pretty_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a profile always serialises");
        s.push('\n');
        s
    }
}

impl Rule {
    /// A rule with no conditions.
    pub fn new(names: &[&str], action: Action, comment: &str) -> Rule {
        Rule {
            names: names.iter().map(|n| n.to_string()).collect(),
            name: None,
            action,
            errno_ret: None,
            args: None,
            comment: Some(comment.to_string()),
            includes: None,
            excludes: None,
        }
    }

    pub fn allow(names: &[&str], comment: &str) -> Rule {
        Rule::new(names, Action::Allow, comment)
    }

    /// `SCMP_ACT_ERRNO` returning `errno`.
    pub fn errno(names: &[&str], errno: u32, comment: &str) -> Rule {
        Rule {
            errno_ret: Some(errno),
            ..Rule::new(names, Action::Errno, comment)
        }
    }

    pub fn with_args(mut self, args: &[Arg]) -> Rule {
        self.args = Some(args.to_vec());
        self
    }

    pub fn if_caps(mut self, caps: &[&str]) -> Rule {
        self.includes.get_or_insert_with(Filter::default).caps =
            Some(caps.iter().map(|c| c.to_string()).collect());
        self
    }

    pub fn if_arches(mut self, arches: &[&str]) -> Rule {
        self.includes.get_or_insert_with(Filter::default).arches =
            Some(arches.iter().map(|c| c.to_string()).collect());
        self
    }

    pub fn if_min_kernel(mut self, version: &str) -> Rule {
        self.includes.get_or_insert_with(Filter::default).min_kernel = Some(version.to_string());
        self
    }

    pub fn unless_caps(mut self, caps: &[&str]) -> Rule {
        self.excludes.get_or_insert_with(Filter::default).caps =
            Some(caps.iter().map(|c| c.to_string()).collect());
        self
    }

    /// Every name the rule matches (`names` plus the legacy `name`).
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .map(String::as_str)
            .chain(self.name.as_deref())
    }

    pub fn args(&self) -> &[Arg] {
        self.args.as_deref().unwrap_or_default()
    }

    /// Removes `name` from the rule (both forms).
    pub fn remove_name(&mut self, name: &str) {
        self.names.retain(|n| n != name);
        if self.name.as_deref() == Some(name) {
            self.name = None;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.name.is_none()
    }
}

impl Arg {
    pub fn new(index: u32, op: Op, value: u64) -> Arg {
        Arg {
            index,
            value,
            value_two: None,
            op,
        }
    }

    /// `(arg & mask) == equals`.
    pub fn masked_eq(index: u32, mask: u64, equals: u64) -> Arg {
        Arg {
            index,
            value: mask,
            value_two: (equals != 0).then_some(equals),
            op: Op::MaskedEq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOBY_SHAPED: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": null}
        ],
        "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "listenerPath": "/run/agent.sock",
        "listenerMetadata": "meta",
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
             "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["mknod"], "action": "SCMP_ACT_ALLOW", "comment": "fifo",
             "args": [{"index": 1, "value": 61440, "valueTwo": 4096, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"name": "legacy", "action": "SCMP_ACT_LOG", "args": null}
        ]
    }"#;

    #[test]
    fn moby_shaped_profile_round_trips_without_loss() {
        let first = Profile::from_json(MOBY_SHAPED).unwrap();
        let again = Profile::from_json(&first.to_compact_json()).unwrap();
        assert_eq!(first, again);
        let pretty = Profile::from_json(&first.to_pretty_json()).unwrap();
        assert_eq!(first, pretty);
        assert_eq!(first.syscalls[4].args()[0].value_two, Some(4096));
    }

    #[test]
    fn absent_fields_are_not_written() {
        let p = Profile::from_json(MOBY_SHAPED).unwrap();
        let json = p.to_compact_json();
        assert!(!json.contains("null"), "{json}");
        assert!(!json.contains("errnoRet\":null"));
    }

    #[test]
    fn unknown_action_is_a_parse_error_naming_it() {
        let err = Profile::from_json(r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#).unwrap_err();
        assert!(err.to_string().contains("SCMP_ACT_MAYBE"), "{err}");
    }

    #[test]
    fn unknown_operator_and_architecture_are_parse_errors_naming_them() {
        let err = Profile::from_json(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"],
                "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("SCMP_CMP_SOMETIMES"), "{err}");
        let err = Profile::from_json(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("SCMP_ARCH_Z80"), "{err}");
    }

    #[test]
    fn misspelt_field_is_a_parse_error_not_an_empty_profile() {
        let err = Profile::from_json(r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscall": []}"#)
            .unwrap_err();
        assert!(err.to_string().contains("syscall"), "{err}");
    }
}
