use super::*;
use crate::verify::endpoint::Answer;

const GOOD: &str = "TOOL\tfind\nTOOL\tnc\nTOOL\tod\nTOOL\tunshare\nTOOL\tmount\nUID\t1000\n\
STATUS\tself\tUid:\t1000\t1000\t1000\t1000\n\
STATUS\tself\tCapPrm:\t0000000000000000\nSTATUS\tself\tCapEff:\t0000000000000000\n\
STATUS\tself\tCapBnd:\t0000000000000000\nSTATUS\tself\tCapAmb:\t0000000000000000\n\
STATUS\tself\tNoNewPrivs:\t1\nSTATUS\tself\tSeccomp:\t2\n\
STATUS\t1\tUid:\t1000\t1000\t1000\t1000\n\
MOUNT\t196 100 0:74 / / ro,relatime master:5 - overlay overlay rw\n\
MOUNT\t197 196 0:80 / /proc rw,nosuid - proc proc rw\n\
MOUNT\t213 196 254:0 /h/ws /agent-workspace rw,relatime - ext4 /dev/vda rw\n\
MOUNT\t214 196 254:0 /h/logs /logs ro,relatime - ext4 /dev/vda rw\n\
MOUNT\t215 196 0:87 / /tmp rw,nosuid - tmpfs tmpfs rw,size=65536k\n\
MOUNT\t216 196 254:0 /var/lib/docker/containers/x/hosts /etc/hosts ro - ext4 /dev/vda rw\n\
PID1\t736c656570003336303000\n\
CG\t/sys/fs/cgroup/memory/memory.limit_in_bytes\t67108864\n\
CG\t/sys/fs/cgroup/pids/pids.max\t64\n\
CG\t/sys/fs/cgroup/cpu/cpu.cfs_quota_us\t50000\n\
CG\t/sys/fs/cgroup/cpu/cpu.cfs_period_us\t100000\n\
NETDEV\tInter-|   Receive\nNETDEV\t face |bytes\nNETDEV\t    lo:       0       0\n\
META\tclosed\nFINDDONE\n\
WRITE\tro\t/logs\terr\tsh: can't create /logs/.clw: Read-only file system\n\
WRITE\trw\t/agent-workspace\tok\n\
WRITE\troot\t/\terr\tsh: can't create /x: Read-only file system\n\
WRITE\troot\t/etc\terr\tsh: can't create /etc/x: Read-only file system\n\
MASK\t/proc/kcore\tabsent\nMASK\t/proc/keys\tnull\nMASK\t/sys/firmware\tempty\n\
MOUNT\t198 197 0:80 /sys /proc/sys ro,nosuid - proc proc rw\n\
MOUNT\t199 197 0:80 /sysrq-trigger /proc/sysrq-trigger ro,nosuid - proc proc rw\n\
ROPATH\t/proc/sys\tdir\nROPATH\t/proc/sysrq-trigger\terr\tsh: Read-only file system\n\
ASK\t127.0.0.1\t2375\t\nASKDONE\n\
SYSPROBE\tran\t/tmp\t0\t00000000000000000000000000000000ffffffffffffffff\nEND\n";

fn expect() -> Expect {
    Expect {
        binds: Some(vec![
            crate::verify::BindExpect {
                target: "/agent-workspace".into(),
                read_only: false,
            },
            crate::verify::BindExpect {
                target: "/logs".into(),
                read_only: true,
            },
        ]),
        tmpfs: vec!["/tmp".into()],
        read_only_root: true,
        no_new_privileges: true,
        cap_drop_all: true,
        network_none: true,
        memory: Some(64 << 20),
        pids: Some(64),
        cpus: Some(0.5),
        syscalls: vec![crate::verify::sysprobe::Sampled {
            label: "unshare(CLONE_NEWUSER)".into(),
            nr: 272,
            args: [0x1000_0000, 0, 0, 0, 0, 0],
            errno: 1,
        }],
        ..Default::default()
    }
}

fn ctx() -> Context {
    Context {
        command: vec!["sleep".into(), "3600".into()],
        secret_names: vec!["secrets.env".into()],
        cpus: Some(0.5),
        ..Default::default()
    }
}

fn failing(text: &str) -> Vec<String> {
    evaluate(&expect(), &ctx(), &parse_facts(text))
        .into_iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| format!("{}:{}", r.probe, r.outcome.as_str()))
        .collect()
}

#[test]
fn a_hardened_sandbox_passes_every_in_sandbox_probe() {
    assert_eq!(failing(GOOD), Vec::<String>::new());
    let ids: Vec<String> = evaluate(&expect(), &ctx(), &parse_facts(GOOD))
        .into_iter()
        .map(|r| r.probe)
        .collect();
    let want: Vec<&str> = crate::verify::SANDBOX_PROBES
        .iter()
        .copied()
        .filter(|p| !matches!(*p, "secrets.env-clean" | "secrets.content-scan"))
        .filter(|p| !crate::verify::EGRESS_PROBES.contains(p))
        .collect();
    assert_eq!(ids, want);
}

#[test]
fn each_weakened_fact_fails_exactly_its_probe() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "STATUS\tself\tCapBnd:\t0000000000000000",
            "STATUS\tself\tCapBnd:\t0000000000200000",
            "proc.caps-empty:fail",
        ),
        (
            "STATUS\tself\tNoNewPrivs:\t1",
            "STATUS\tself\tNoNewPrivs:\t0",
            "proc.no-new-privs:fail",
        ),
        (
            "STATUS\tself\tSeccomp:\t2",
            "STATUS\tself\tSeccomp:\t0",
            "proc.seccomp-filter:fail",
        ),
        (
            "STATUS\t1\tUid:\t1000",
            "STATUS\t1\tUid:\t0",
            "proc.non-root:fail",
        ),
        (
            "PID1\t736c656570003336303000",
            "PID1\t2f7362696e2f696e697400",
            "proc.pid-namespace:fail",
        ),
        ("pids.max\t64", "pids.max\tmax", "limits.pids:fail"),
        (
            "limit_in_bytes\t67108864",
            "limit_in_bytes\t9223372036854771712",
            "limits.memory:fail",
        ),
        ("cfs_quota_us\t50000", "cfs_quota_us\t-1", "limits.cpu:fail"),
        ("META\tclosed", "META\topen", "net.none:fail"),
        (
            "NETDEV\t    lo:",
            "NETDEV\t  eth0: 1 2\nNETDEV\t    lo:",
            "net.none:fail",
        ),
        (
            "WRITE\tro\t/logs\terr\tsh: can't create /logs/.clw: Read-only file system",
            "WRITE\tro\t/logs\tok",
            "fs.ro-binds:fail",
        ),
        (
            "WRITE\trw\t/agent-workspace\tok",
            "WRITE\trw\t/agent-workspace\terr\tPermission denied",
            "fs.rw-binds:fail",
        ),
        (
            "/ ro,relatime master:5",
            "/ rw,relatime master:5",
            "fs.root-readonly:fail",
        ),
        (
            "FINDDONE",
            "FIND\tname\t/cfg/secrets.env\nFINDDONE",
            "secrets.file-absent:fail",
        ),
        (
            "FINDDONE",
            "FIND\tsock\t/run/docker.sock\nFINDDONE",
            "engine.no-socket:fail",
        ),
        (
            "FINDDONE",
            "MOUNT\t300 196 0:9 / /mnt rw - ext4 /dev/vda rw\nFINDDONE",
            "fs.no-extra-mounts:fail",
        ),
        (
            "FINDDONE",
            "EXISTS\tdeny\t/h/credentials\nFINDDONE",
            "secrets.deny-absent:fail",
        ),
        ("00000000000000000000000000000000ffffffffffffffff", "00000000000000000000000000000000daffffffffffffff", "seccomp.denied:fail"),
        (
            "SYSPROBE\tran\t/tmp\t0\t00000000000000000000000000000000ffffffffffffffff",
            "SYSPROBE\tnone\tnot executable from: /tmp (mounted noexec?)",
            "seccomp.denied:inconclusive",
        ),
        (
            "MASK\t/proc/keys\tnull",
            "MASK\t/proc/keys\treadable",
            "fs.masked-paths:fail",
        ),
        (
            "MASK\t/sys/firmware\tempty",
            "MASK\t/sys/firmware\tlisted",
            "fs.masked-paths:fail",
        ),
        (
            "/sys /proc/sys ro,nosuid",
            "/sys /proc/sys rw,nosuid",
            "fs.masked-paths:fail",
        ),
        (
            "ROPATH\t/proc/sysrq-trigger\terr\tsh: Read-only file system",
            "ROPATH\t/proc/sysrq-trigger\tok",
            "fs.masked-paths:fail",
        ),
        (
            "ASK\t127.0.0.1\t2375\t",
            "ASK\t127.0.0.1\t2375\t485454502f312e3120323030204f4b0d0a4170692d56657273696f6e3a20312e34310d0a0d0a4f4b",
            "engine.no-socket:fail",
        ),
        ("ASKDONE\n", "", "engine.no-socket:inconclusive"),
        (
            "META\tclosed",
            "UNIX\t0000: 00000002 00000000 00010000 0001 01 3 @/containerd-shim/x.sock\nMETA\tclosed",
            "engine.no-socket:fail",
        ),
        ("META\tclosed\n", "", "net.none:inconclusive"),
    ];
    for (from, to, want) in cases {
        assert!(GOOD.contains(from), "{from}");
        let text = GOOD.replacen(from, to, 1);
        assert_eq!(failing(&text), vec![want.to_string()], "{from} -> {to}");
    }
}

#[test]
fn a_read_only_tmpfs_over_an_automatic_podman_tmpfs_is_not_an_extra_mount() {
    let shadow = "MOUNT\t217 196 0:88 / /var/tmp ro,nosuid,nodev,noexec - tmpfs tmpfs ro,size=4k\n";
    let writable = "MOUNT\t217 196 0:88 / /var/tmp rw,nosuid,nodev - tmpfs tmpfs rw\n";
    let elsewhere = "MOUNT\t217 196 0:88 / /mnt ro,nosuid,nodev,noexec - tmpfs tmpfs ro,size=4k\n";
    for (extra, want) in [
        (shadow, vec![]),
        (writable, vec!["fs.no-extra-mounts:fail".to_string()]),
        (elsewhere, vec!["fs.no-extra-mounts:fail".to_string()]),
    ] {
        let text = GOOD.replacen("PID1\t", &format!("{extra}PID1\t"), 1);
        assert_eq!(failing(&text), want, "{extra}");
    }
}

#[test]
fn podmans_generated_passwd_and_group_are_not_extra_mounts_and_other_ones_are() {
    // Measured: Podman 4.3, `--read-only --user 4242:4242` on a Debian image.
    let id = "d9a130c9a32e40eca2a743b3f2ff8cd979a92a062f1105e9749a6a79bbab763a";
    let line = |file: &str, root: &str, mode: &str| {
        format!("MOUNT\t113 87 254:0 {root} /etc/{file} {mode},nosuid,nodev,noexec,relatime - ext4 /dev/vda rw\n")
    };
    let userdata =
        |file: &str| format!("/var/lib/containers/storage/overlay-containers/{id}/userdata/{file}");
    let fail = || vec!["fs.no-extra-mounts:fail".to_string()];
    for (extra, want) in [
        (line("passwd", &userdata("passwd"), "ro"), vec![]),
        (line("group", &userdata("group"), "ro"), vec![]),
        // Writable, from somewhere else, crossed over, or not a container id: extra.
        (line("passwd", &userdata("passwd"), "rw"), fail()),
        (line("passwd", "/etc/shadow", "ro"), fail()),
        (line("passwd", &userdata("group"), "ro"), fail()),
        (
            line(
                "passwd",
                "/home/alice/overlay-containers/x/userdata/passwd",
                "ro",
            ),
            fail(),
        ),
        (line("shadow", &userdata("shadow"), "ro"), fail()),
    ] {
        let text = GOOD.replacen("PID1\t", &format!("{extra}PID1\t"), 1);
        assert_eq!(failing(&text), want, "{extra}");
    }
}

#[test]
fn the_engines_read_only_init_binary_is_not_an_extra_mount() {
    // Measured: Docker 20.10 and Podman 4.3 with `init: true`.
    let docker = "MOUNT\t135 118 254:0 /usr/bin/tini-static /bin/docker-init ro,relatime - ext4 /dev/vda rw\n";
    let podman =
        "MOUNT\t140 120 254:0 /usr/bin/catatonit /run/podman-init ro,relatime - ext4 /dev/vda rw\n";
    let writable =
        "MOUNT\t140 120 254:0 /usr/bin/catatonit /run/podman-init rw,relatime - ext4 /dev/vda rw\n";
    let elsewhere =
        "MOUNT\t140 120 254:0 /usr/bin/catatonit /opt/init ro,relatime - ext4 /dev/vda rw\n";
    for (extra, want) in [
        (docker, vec![]),
        (podman, vec![]),
        (writable, vec!["fs.no-extra-mounts:fail".to_string()]),
        (elsewhere, vec!["fs.no-extra-mounts:fail".to_string()]),
    ] {
        let text = GOOD.replacen("PID1\t", &format!("{extra}PID1\t"), 1);
        assert_eq!(failing(&text), want, "{extra}");
    }
}

#[test]
fn a_missing_find_or_a_cut_script_is_inconclusive_not_pass() {
    let f = failing(&GOOD.replace("FINDDONE\n", ""));
    assert_eq!(
        f,
        [
            "secrets.file-absent:inconclusive",
            "engine.no-socket:inconclusive"
        ]
    );
    let cut = failing(&GOOD.replace("END\n", ""));
    assert_eq!(
        cut.len(),
        crate::verify::SANDBOX_PROBES.len() - 2 - crate::verify::EGRESS_PROBES.len()
    );
    assert!(cut.iter().all(|c| c.ends_with(":inconclusive")));
}

#[test]
fn adopted_containers_skip_the_bind_probes() {
    let mut e = expect();
    e.binds = None;
    let ids: Vec<String> = evaluate(&e, &ctx(), &parse_facts(GOOD))
        .into_iter()
        .map(|r| r.probe)
        .collect();
    for p in crate::verify::BIND_PROBES {
        assert!(!ids.iter().any(|i| i == p), "{p}");
    }
}

#[test]
fn the_script_quotes_every_path_and_carries_no_value() {
    let s = script(&ScriptInput {
        nonce: "abc".into(),
        secret_names: vec!["secrets.env".into()],
        secret_paths: vec!["/h/it's here/secrets.env".into()],
        rw_targets: vec!["/w s".into()],
        tmpfs: vec!["/tmp".into()],
        ..Default::default()
    });
    assert!(s.contains("'/h/it'\\''s here/secrets.env'"), "{s}");
    assert!(s.contains("'/w s'"));
    assert!(s.contains("tar -c -f - -C / 'tmp'"));
}

#[test]
fn pid_1_may_be_the_engines_init_running_the_sandboxs_command() {
    let hex = |argv: &[&str]| hex::encode(argv.join("\0") + "\0");
    let good = "PID1\t736c656570003336303000";
    for (argv, want) in [
        // Docker: inspect shows `sleep 3600`, /proc/1/cmdline the init in front of it.
        (vec!["/sbin/docker-init", "--", "sleep", "3600"], vec![]),
        (vec!["/run/podman-init", "--", "sleep", "3600"], vec![]),
        // The init running something else, or another program in front, is not the command.
        (
            vec!["/sbin/docker-init", "--", "sh", "-c", "x"],
            vec!["proc.pid-namespace:fail".to_string()],
        ),
        (
            vec!["/sbin/tini-imposter", "--", "sleep", "3600"],
            vec!["proc.pid-namespace:fail".to_string()],
        ),
        (
            vec!["/sbin/docker-init", "--"],
            vec!["proc.pid-namespace:fail".to_string()],
        ),
    ] {
        let text = GOOD.replacen(good, &format!("PID1\t{}", hex(&argv)), 1);
        assert_eq!(failing(&text), want, "{argv:?}");
    }
}

#[test]
fn a_unix_socket_answering_the_engine_api_fails_whatever_its_name() {
    let mut c = ctx();
    c.sockets = vec![
        ("/agent-workspace/agent.sock".into(), Answer::Engine),
        ("/tmp/other.sock".into(), Answer::NotEngine),
    ];
    let r = evaluate(&expect(), &c, &parse_facts(GOOD));
    let sock = r.iter().find(|r| r.probe == "engine.no-socket").unwrap();
    assert_eq!(sock.outcome, Outcome::Fail);
    assert!(
        sock.detail.contains("/agent-workspace/agent.sock"),
        "{}",
        sock.detail
    );
    assert!(!sock.detail.contains("other.sock"), "{}", sock.detail);
    c.sockets = vec![("/tmp/x.sock".into(), Answer::Unasked("gone".into()))];
    let r = evaluate(&expect(), &c, &parse_facts(GOOD));
    let sock = r.iter().find(|r| r.probe == "engine.no-socket").unwrap();
    assert_eq!(sock.outcome, Outcome::Inconclusive, "{}", sock.detail);
}

#[test]
fn socket_files_and_abstract_listeners_are_asked() {
    let text = format!(
        "UNIX\tNum       RefCount Protocol Flags    Type St Inode Path\n\
UNIX\t0000: 00000002 00000000 00010000 0001 01 3 /run/a.sock\n\
UNIX\t0000: 00000002 00000000 00010000 0001 01 4 @abstract\n\
UNIX\t0000: 00000003 00000000 00000000 0001 03 5 /run/a.sock\n\
UNIX\t0000: 00000003 00000000 00000000 0001 03 6\n\
FIND\tsock\t/ws/b.sock\n{GOOD}"
    );
    assert_eq!(
        sockets_to_ask(&parse_facts(&text)),
        ["/ws/b.sock", "@abstract"]
    );
}

fn egress_policy() -> crate::egress::EgressPolicy {
    crate::egress::EgressPolicy {
        allow: ["allowed.test:8080", "*.example.org", "10.0.0.0/8:5432"]
            .iter()
            .map(|e| crate::egress::parse_allow_entry(e).unwrap())
            .collect(),
        hosts: [("allowed.test".to_string(), "172.17.0.2".parse().unwrap())]
            .into_iter()
            .collect(),
    }
}

#[test]
fn the_egress_plan_probes_exact_entries_and_refuses_what_the_list_does_not_hold() {
    let plan = super::egress_expect(&egress_policy());
    assert_eq!(plan.allowed, [("allowed.test".to_string(), 8080)]);
    assert_eq!(plan.direct, [("172.17.0.2".to_string(), 8080)]);
    assert_eq!(plan.not_probed, ["*.example.org", "10.0.0.0/8:5432"]);
    let refused: Vec<&str> = plan.refused.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(
        refused,
        [
            super::net::NOT_ALLOWED_NAME,
            super::net::METADATA,
            super::net::PRIVATE_PROBE
        ]
    );
    // A list that allows the private range leaves that probe out rather than expect a refusal.
    let mut p = egress_policy();
    p.allow
        .push(crate::egress::parse_allow_entry("10.0.0.0/8").unwrap());
    let plan = super::egress_expect(&p);
    assert!(!plan
        .refused
        .iter()
        .any(|(h, _)| h == super::net::PRIVATE_PROBE));
}

const EGRESS_GOOD: &str = "EGRESS\tallowed\tallowed.test:8080\tHTTP/1.1 200 OK
EGRESS\trefused\tclw-verify-not-allowed.invalid:443\tHTTP/1.1 403 Forbidden
EGRESS\trefused\t169.254.169.254:80\tHTTP/1.1 403 Forbidden
EGRESS\trefused\t10.255.255.254:80\tHTTP/1.1 403 Forbidden
DIRECT\t172.17.0.2\t8080\tclosed
DIRECT\t169.254.169.254\t80\tclosed
EGRESSDONE
";

fn egress_outcomes(extra: &str) -> Vec<String> {
    let mut e = expect();
    e.egress = Some(super::egress_expect(&egress_policy()));
    let facts = GOOD.replacen("\nEND\n", &format!("\n{extra}END\n"), 1);
    assert!(facts.contains(extra), "GOOD has an END line");
    evaluate(&e, &ctx(), &parse_facts(&facts))
        .into_iter()
        .filter(|r| r.probe.starts_with("net.egress"))
        .map(|r| format!("{}:{}", r.probe, r.outcome.as_str()))
        .collect()
}

#[test]
fn egress_probes_pass_on_the_answers_of_a_working_proxy() {
    assert_eq!(
        egress_outcomes(EGRESS_GOOD),
        ["net.egress-allowed:pass", "net.egress-denied:pass"]
    );
}

#[test]
fn each_weakened_egress_fact_fails_its_probe() {
    let cases = [
        // The proxy let a name on no list through.
        (
            "clw-verify-not-allowed.invalid:443\tHTTP/1.1 403 Forbidden",
            "clw-verify-not-allowed.invalid:443\tHTTP/1.1 200 OK",
            ["net.egress-allowed:pass", "net.egress-denied:fail"],
        ),
        // The allowed server's address opens without the proxy (a network besides lo).
        (
            "DIRECT\t172.17.0.2\t8080\tclosed",
            "DIRECT\t172.17.0.2\t8080\topen",
            ["net.egress-allowed:pass", "net.egress-denied:fail"],
        ),
        // Nothing answers on the proxy port: the agent is down. Nothing is reachable either.
        (
            "allowed.test:8080\tHTTP/1.1 200 OK",
            "allowed.test:8080\t",
            ["net.egress-allowed:fail", "net.egress-denied:pass"],
        ),
        // No nc: nothing was tried, nothing is claimed.
        (
            "EGRESSDONE\n",
            "",
            [
                "net.egress-allowed:inconclusive",
                "net.egress-denied:inconclusive",
            ],
        ),
    ];
    for (from, to, want) in cases {
        assert_eq!(
            egress_outcomes(&EGRESS_GOOD.replace(from, to)),
            want,
            "{from} -> {to}"
        );
    }
}
