//! Properties of the parsers every user input goes through: manifests, bind sets, the secrets
//! file and seccomp profiles. Arbitrary bytes, token soup and structured near-valid documents
//! must come back as a value or as an error with a code, never as a panic; a secrets file's
//! errors never hold its values; a profile that validates survives its own serialisation.
//!
//! Case counts are bounded so the suite runs in seconds under `cargo test` (`PROPTEST_CASES`
//! asks for more); a failure is shrunk and its seed kept by proptest (`proptest-regressions/`,
//! to be committed).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use clw_fortress::error::Coded;
use clw_fortress::manifest::{self, LoadContext};
use clw_fortress::report::ErrorReport;
use clw_fortress::seccomp::{self, Profile};
use clw_fortress::secrets;
use proptest::prelude::*;

/// Marks every value of a generated secrets file: no path or message holds it by chance.
const MARK: char = '\u{a7}';

/// 256 cases per property, or `PROPTEST_CASES` for a longer run.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(256),
        // Shrinking a failure may take longer than the run; keep it bounded too.
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

/// A temporary directory with a fake home, and the load context pointing at it.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir_all(dir.path().join("home/work")).unwrap();
        Scratch { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `bytes` to `name` with mode 0600 (what the secrets file needs; harmless for the
    /// others).
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        f.write_all(bytes).unwrap();
        path
    }

    fn ctx(&self) -> LoadContext {
        let home = self.path("home");
        LoadContext {
            env: BTreeMap::from([
                ("HOME".to_string(), home.display().to_string()),
                ("VAR".to_string(), "value".to_string()),
            ]),
            home,
            uid: nix::unistd::getuid().as_raw(),
            host_cpus: 2,
        }
    }
}

/// An error is acceptable when it carries a code and renders as a report.
fn coded(e: &(impl Coded + ?Sized)) {
    let report = ErrorReport::from_error(e);
    let _ = report.render_text();
    let _ = report.render_json();
    let _ = e.hint();
}

fn load_manifest(s: &Scratch, bytes: &[u8]) {
    let path = s.write("fortress.yaml", bytes);
    if let Err(e) = manifest::load(&path, &s.ctx()) {
        coded(&e);
    }
}

fn load_bind_set(s: &Scratch, bytes: &[u8]) {
    let path = s.write("binds.yaml", bytes);
    if let Err(e) = manifest::load_bind_set(&path, None, None, &s.ctx()) {
        coded(&e);
    }
}

fn load_profile(s: &Scratch, bytes: &[u8]) {
    let path = s.write("profile.json", bytes);
    match seccomp::load_file(&path) {
        Ok(p) => {
            let _ = seccomp::explain(&p);
        }
        Err(e) => coded(&e),
    }
}

/// Pieces of YAML syntax and of the manifest vocabulary, to be strung together at random: deep
/// and odd structures (anchors, merges, tags, block scalars, documents) that bytes alone rarely
/// produce.
const YAML_TOKENS: &[&str] = &[
    "apiVersion: clw-fortress/v1\n",
    "kind: Fortress\n",
    "kind: BindSet\n",
    "metadata: {name: x}\n",
    "metadata:\n  name: ",
    "sandboxes:\n",
    "binds:\n",
    "deny: [",
    "bindSets: [",
    "  - ",
    "- ",
    "name: s",
    "source: ",
    "target: /t",
    "mode: rw",
    "command: [sleep, \"1\"]",
    "limits: {memory: 1Gi, cpus: 0.5, pids: 64}",
    "secrets: {file: ~/s.env}",
    "env: {A: ${VAR}}",
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    "\n",
    "  ",
    "\t",
    "\"",
    "'",
    "# c\n",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!str ",
    "!!binary ",
    "? ",
    "|\n",
    ">-\n",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "~",
    "null",
    "1e400",
    "-0x1",
    "\u{feff}",
    "é",
    "\\",
    "${",
    "../",
    "/etc",
];

fn token_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(YAML_TOKENS), 0..80)
        .prop_map(|tokens| tokens.concat().into_bytes())
}

/// A scalar for a manifest field: mostly plausible, often wrong, sometimes hostile.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "0",
            "-1",
            "1",
            "8",
            "64",
            "0.5",
            "1e9",
            "1e400",
            "NaN",
            "-0",
            "18446744073709551616",
            "1Gi",
            "64Mi",
            "1.5G",
            "10Ki",
            "1Ti",
            "0B",
            "-5Mi",
            "Mi",
            "5m",
            "1h30m",
            "0s",
            "-1s",
            "100000000000h",
            "root",
            "0",
            "1000:1000",
            "0:0",
            "nobody",
            "65536",
            "none",
            "host",
            "bridge",
            "container:x",
            "rw",
            "ro",
            "default",
            "strict",
            "permissive",
            "unconfined",
            "~",
            "~/work",
            "~other/x",
            "${HOME}/work",
            "${VAR}",
            "${UNSET}",
            "${UNSET:-x}",
            "${",
            "$",
            "$$",
            "/",
            "/etc",
            "/proc/x",
            "/var/run/docker.sock",
            "../..",
            "a/../../b",
            "//",
            "/tmp",
            "127.0.0.1:9477",
            "[::1]:1",
            ":80",
            "http://127.0.0.1:1/h",
            "unix:///x.sock",
            "tcp://1.2.3.4:1",
            "0 */5 * * * *",
            "@daily",
            "* * *",
            "CAP_SYS_ADMIN",
            "SYS_ADMIN",
            "NET_RAW",
            "ALL",
            "execve",
            "exceve",
            "ptrace",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,24}",
        "\\PC{0,12}",
    ]
}

/// A manifest with every field present and each value drawn from [`scalar`]; JSON strings are
/// YAML double-quoted scalars, so the structure stays valid whatever the values.
fn structured_manifest() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(scalar(), 40),
        prop::collection::vec("[A-Za-z_][A-Za-z0-9_]{0,6}", 1..4),
    )
        .prop_map(|(v, keys)| {
            let q = |i: usize| serde_json::to_string(&v[i]).unwrap();
            let env: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{k}: {}", q(30 + i)))
                .collect();
            format!(
                "apiVersion: clw-fortress/v1
kind: Fortress
metadata: {{name: {}}}
engine: {{socket: {}}}
state: {{path: {}}}
secrets: {{file: {}}}
bindSets: [{}]
defaults:
  image: {}
  user: {}
  network: {}
  tmpfs: {{{}: {}}}
  capAdd: [{}]
  seccomp: {{policy: {}, allow: [{}], deny: [{}]}}
  limits: {{memory: {}, memorySwap: {}, cpus: {}, pids: {}}}
sandboxes:
  - name: {}
    user: {}
    binds:
      - {{source: {}, target: {}, mode: {}}}
    env: {{{}}}
    secretEnv: [{}]
    command: [{}]
    liveness: {{every: {}, exec: [\"true\"], timeout: {}}}
adopt:
  - selector: {{label: {}}}
health:
  - name: {}
    http: {{url: {}, timeout: {}}}
    every: {}
backups:
  - name: b
    sources: [{}]
    dest: {}
    schedule: {}
schedules: {{limits: {}}}
metrics: {{listen: {}}}
",
                q(0),
                q(1),
                q(2),
                q(3),
                q(4),
                q(5),
                q(6),
                q(7),
                q(8),
                q(9),
                q(10),
                q(11),
                q(12),
                q(13),
                q(14),
                q(15),
                q(16),
                q(17),
                q(18),
                q(19),
                q(20),
                q(21),
                q(22),
                env.join(", "),
                q(23),
                q(24),
                q(25),
                q(26),
                q(27),
                q(28),
                q(29),
                q(33),
                q(34),
                q(35),
                q(36),
                q(37),
                q(38),
                q(39),
            )
        })
}

/// A bind set with its fields drawn from [`scalar`].
fn structured_bind_set() -> impl Strategy<Value = String> {
    prop::collection::vec(scalar(), 8).prop_map(|v| {
        let q = |i: usize| serde_json::to_string(&v[i]).unwrap();
        format!(
            "apiVersion: clw-fortress/v1\nkind: BindSet\nmetadata: {{name: {}}}\nroot: {}\n\
             binds:\n  - {{source: {}, target: {}, mode: {}}}\n  - {{source: {}, create: true}}\n\
             deny: [{}, {}]\n",
            q(0),
            q(1),
            q(2),
            q(3),
            q(4),
            q(5),
            q(6),
            q(7)
        )
    })
}

/// Edits a valid document at random: a byte range deleted, a token inserted, a line doubled.
fn mutated(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    prop::collection::vec(
        (
            0..len,
            0..16usize,
            prop::sample::select(YAML_TOKENS),
            0..3u8,
        ),
        1..6,
    )
    .prop_map(move |edits| {
        let mut text = base.as_bytes().to_vec();
        for (at, n, token, kind) in edits {
            let at = at.min(text.len());
            match kind {
                0 => {
                    let end = (at + n).min(text.len());
                    text.drain(at..end);
                }
                1 => {
                    text.splice(at..at, token.bytes());
                }
                _ => {
                    let end = text[at..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map(|p| at + p + 1)
                        .unwrap_or(text.len());
                    let line = text[at..end].to_vec();
                    text.splice(at..at, line);
                }
            }
        }
        text
    })
}

const VALID_MANIFEST: &str = "apiVersion: clw-fortress/v1
kind: Fortress
metadata:
  name: props
defaults:
  image: busybox
  user: \"1000:1000\"
  limits: {memory: 64Mi, cpus: 0.5, pids: 64}
sandboxes:
  - name: props-main
    binds:
      - {source: ~/work, target: /work, mode: rw}
    env: {LANG: C.UTF-8}
    command: [sleep, \"3600\"]
health:
  - name: h
    exec: {container: props-main, command: [\"true\"]}
    every: 1m
";

const VALID_BIND_SET: &str = "apiVersion: clw-fortress/v1
kind: BindSet
metadata: {name: test}
root: ~/work
binds:
  - {source: a, target: /a, mode: rw, create: true}
deny: [secrets]
";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_manifest_of_arbitrary_bytes_loads_or_fails_with_a_code(
        bytes in prop::collection::vec(any::<u8>(), 0..2048)
    ) {
        load_manifest(&Scratch::new(), &bytes);
    }

    #[test]
    fn a_manifest_of_yaml_token_soup_loads_or_fails_with_a_code(bytes in token_soup()) {
        load_manifest(&Scratch::new(), &bytes);
    }

    #[test]
    fn a_manifest_with_arbitrary_field_values_loads_or_fails_with_a_code(
        text in structured_manifest()
    ) {
        load_manifest(&Scratch::new(), text.as_bytes());
    }

    #[test]
    fn a_mutated_valid_manifest_loads_or_fails_with_a_code(bytes in mutated(VALID_MANIFEST)) {
        load_manifest(&Scratch::new(), &bytes);
    }

    #[test]
    fn a_bind_set_of_arbitrary_bytes_or_token_soup_loads_or_fails_with_a_code(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..1024), token_soup()]
    ) {
        load_bind_set(&Scratch::new(), &bytes);
    }

    #[test]
    fn a_bind_set_with_arbitrary_field_values_or_edits_loads_or_fails_with_a_code(
        bytes in prop_oneof![
            structured_bind_set().prop_map(String::into_bytes),
            mutated(VALID_BIND_SET),
        ]
    ) {
        load_bind_set(&Scratch::new(), &bytes);
    }

    #[test]
    fn a_secrets_file_of_arbitrary_bytes_reads_or_fails_with_a_code(
        bytes in prop::collection::vec(any::<u8>(), 0..1024)
    ) {
        let s = Scratch::new();
        let path = s.write("secrets.env", &bytes);
        if let Err(e) = secrets::read(&path, nix::unistd::getuid().as_raw()) {
            coded(&e);
        }
    }

    #[test]
    fn a_secrets_file_error_never_holds_a_value(
        lines in prop::collection::vec(
            (
                prop_oneof!["[A-Z_][A-Z0-9_]{0,8}", "[ -~]{0,6}"],
                prop::sample::select(vec!["=", " = ", "", "==", "=\"", "='"]),
                "[ -~]{0,12}",
                prop::sample::select(vec!["", "export ", "# "]),
            ),
            1..12,
        )
    ) {
        // Every value carries a marker no path or message can hold by chance.
        let text: String = lines
            .iter()
            .map(|(k, sep, v, prefix)| format!("{prefix}{k}{sep}sv{MARK}{v}\n"))
            .collect();
        let s = Scratch::new();
        let path = s.write("secrets.env", text.as_bytes());
        match secrets::read(&path, nix::unistd::getuid().as_raw()) {
            Ok(map) => {
                let shown = format!("{map:?}");
                prop_assert!(!shown.contains(MARK), "a value in the map's Debug: {}", shown);
            }
            Err(e) => {
                let report = ErrorReport::from_error(&e);
                let all = format!("{}{}", report.render_text(), report.render_json());
                prop_assert!(!all.contains(MARK), "a value in the error: {}", all);
            }
        }
    }

    #[test]
    fn a_profile_of_arbitrary_bytes_loads_or_fails_with_a_code(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..1024),
            "[\\[\\]{}\",:0-9a-zA-Z_ ]{0,200}".prop_map(String::into_bytes),
        ]
    ) {
        load_profile(&Scratch::new(), &bytes);
    }

    #[test]
    fn a_structured_profile_validates_or_fails_with_a_code_and_survives_its_own_json(
        profile in profile_json()
    ) {
        let text = profile.to_string();
        let Ok(p) = Profile::from_json(&text) else { return Ok(()) };
        match seccomp::check(&p) {
            Ok(_) => {
                let _ = seccomp::explain(&p);
                let _ = seccomp::denied_names(&p);
                let again = Profile::from_json(&p.to_compact_json())
                    .expect("a validated profile parses back from its own JSON");
                prop_assert!(seccomp::check(&again).is_ok());
            }
            Err(e) => coded(&e),
        }
    }
}

/// A profile as JSON, plausible or hostile in equal parts.
fn profile_json() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![profile_json_of(false), profile_json_of(true)]
}

/// Picks from `good`, or when `hostile` from `good` and `bad` alike.
fn pick(good: &[&'static str], bad: &[&'static str], hostile: bool) -> BoxedStrategy<String> {
    let mut all = good.to_vec();
    if hostile {
        all.extend_from_slice(bad);
    }
    prop::sample::select(all).prop_map(str::to_string).boxed()
}

/// A profile as JSON. Plausible: known actions, architectures, operators and names, argument
/// indexes 0 to 5, the start-critical calls allowed. Hostile: unknown ones of each as well,
/// argument indexes past 5, arbitrary names, conditions on capabilities, architectures and
/// kernels.
fn profile_json_of(hostile: bool) -> impl Strategy<Value = serde_json::Value> {
    let action = pick(
        &["SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"],
        &[
            "SCMP_ACT_KILL",
            "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_TRAP",
            "SCMP_ACT_TRACE",
            "SCMP_ACT_NOTIFY",
            "SCMP_ACT_BOGUS",
        ],
        hostile,
    );
    let known = pick(
        &[
            "read",
            "write",
            "execve",
            "futex",
            "mmap",
            "clone",
            "ptrace",
            "socket",
            "personality",
            "setuid",
            "io_uring_setup",
            "bpf",
            "mount",
            "kcmp",
        ],
        &["exceve", "no_such_call", "", "clone3", "arch_prctl", "open"],
        hostile,
    );
    let name = if hostile {
        prop_oneof![4 => known, 1 => "[a-z_0-9]{0,12}"].boxed()
    } else {
        known
    };
    let arch = pick(
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        &["SCMP_ARCH_X86", "SCMP_ARCH_ARM", "SCMP_ARCH_BOGUS"],
        hostile,
    );
    let op = pick(
        &[
            "SCMP_CMP_EQ",
            "SCMP_CMP_NE",
            "SCMP_CMP_MASKED_EQ",
            "SCMP_CMP_GT",
        ],
        &["SCMP_CMP_BOGUS"],
        hostile,
    );
    let index = if hostile { 0..9u32 } else { 0..6u32 };
    let arg = (index, any::<u64>(), any::<u64>(), op).prop_map(|(index, value, two, op)| {
        serde_json::json!({"index": index, "value": value, "valueTwo": two, "op": op})
    });
    let condition = (
        prop::collection::vec(pick(&["CAP_SYS_ADMIN"], &["CAP_BOGUS", ""], hostile), 0..2),
        prop::collection::vec(pick(&["amd64", "arm64"], &["x86_64", "s390x"], hostile), 0..2),
        prop::option::of(pick(&["4.8", "6.1"], &["x", "99.99.99", "5.10"], hostile)),
    )
        .prop_map(|(caps, arches, kernel)| {
            serde_json::json!({"caps": caps, "arches": arches, "minKernel": kernel})
        });
    let rule = (
        prop::collection::vec(name, 0..6),
        action.clone(),
        prop::option::of(0..200u32),
        prop::collection::vec(arg, 0..3),
        prop::option::of(condition.clone()),
        prop::option::of(condition),
    )
        .prop_map(|(names, action, errno, args, includes, excludes)| {
            serde_json::json!({
                "names": names, "action": action, "errnoRet": errno, "args": args,
                "includes": includes, "excludes": excludes,
            })
        });
    let default = if hostile {
        action.boxed()
    } else {
        Just("SCMP_ACT_ERRNO".to_string()).boxed()
    };
    (
        default,
        prop::option::of(0..200u32),
        prop::collection::vec(arch, 0..3),
        prop::collection::vec(rule, 0..8),
        any::<bool>().prop_map(move |b| b || !hostile),
    )
        .prop_map(|(default, errno, arches, mut rules, start_critical)| {
            // The calls every container needs, allowed first: validation then gets past the
            // start-critical check and the rest of it is exercised.
            if start_critical {
                let names: Vec<&str> = seccomp::START_CRITICAL.iter().map(|c| c.name).collect();
                rules.insert(
                    0,
                    serde_json::json!({"names": names, "action": "SCMP_ACT_ALLOW"}),
                );
            }
            serde_json::json!({
                "defaultAction": default, "defaultErrnoRet": errno,
                "architectures": arches, "syscalls": rules,
            })
        })
}

/// Not vacuous: the structured manifests get past the YAML parser into validation, where the
/// rules report problems by field path.
#[test]
fn structured_manifests_reach_the_validation_rules() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = structured_manifest();
    let mut fields = 0;
    for _ in 0..32 {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        let s = Scratch::new();
        let path = s.write("fortress.yaml", text.as_bytes());
        if let Err(manifest::ManifestError::Invalid { problems, .. }) =
            manifest::load(&path, &s.ctx())
        {
            if problems
                .iter()
                .any(|p| p.field.starts_with("sandboxes[0]."))
            {
                fields += 1;
            }
        }
    }
    assert!(
        fields >= 16,
        "only {fields} of 32 reached the sandbox rules"
    );
}

/// Not vacuous: some structured profiles validate, so the round trip above is exercised.
#[test]
fn some_structured_profiles_validate() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = profile_json_of(false);
    let valid = (0..128)
        .filter(|_| {
            let text = strategy
                .new_tree(&mut runner)
                .unwrap()
                .current()
                .to_string();
            Profile::from_json(&text).is_ok_and(|p| seccomp::check(&p).is_ok())
        })
        .count();
    assert!(valid >= 16, "only {valid} of 128 validated");
}
