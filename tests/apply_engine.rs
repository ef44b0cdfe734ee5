//! `plan` / `apply` / `exec` against a real engine: every hardening field lands, apply is
//! idempotent, limits update in place, other changes recreate, `--prune` removes only what is
//! ours, an interrupted apply converges, and `exec` injects secrets the container never holds.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

fn apply_ok(fx: &Fixture, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply"];
    args.extend_from_slice(extra);
    let out = fx.run(&args);
    assert!(out.status.success(), "apply failed: {}", describe(&out));
    out
}

fn plan_json(fx: &Fixture, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["-o", "json", "plan"];
    args.extend_from_slice(extra);
    let out = fx.run(&args);
    assert!(out.status.success(), "plan failed: {}", describe(&out));
    json(&out)
}

fn id_of(name: &str) -> String {
    inspect(name)["Id"].as_str().unwrap().to_string()
}

#[test]
fn apply_creates_a_sandbox_with_every_hardening_field() {
    require_engine();
    let fx = Fixture::new("harden");
    apply_ok(&fx, &[]);
    let c = inspect(&fx.sandbox());
    let hc = &c["HostConfig"];
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(hc["ReadonlyRootfs"], true);
    match engine_flavor() {
        Flavor::Docker => assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"])),
        // Podman reports ALL expanded into the capabilities it would otherwise grant.
        Flavor::Podman => {
            let drop: Vec<String> = serde_json::from_value(hc["CapDrop"].clone()).unwrap();
            for cap in ["CHOWN", "DAC_OVERRIDE", "NET_RAW", "SETUID", "SYS_CHROOT"] {
                assert!(drop.iter().any(|c| c == cap), "{cap} not dropped: {drop:?}");
            }
        }
    }
    assert!(hc["CapAdd"].is_null() || hc["CapAdd"] == serde_json::json!([]));
    assert_eq!(hc["NetworkMode"], "none");
    assert_eq!(hc["Privileged"], false);
    assert_eq!(hc["Memory"], 64 << 20);
    assert_eq!(hc["MemorySwap"], 64 << 20);
    assert_eq!(hc["NanoCpus"], 500_000_000);
    assert_eq!(hc["PidsLimit"], 64);
    let sec: Vec<String> = serde_json::from_value(hc["SecurityOpt"].clone()).unwrap();
    assert!(
        sec.iter()
            .any(|s| s == "no-new-privileges:true" || s == "no-new-privileges"),
        "{sec:?}"
    );
    let seccomp = sec
        .iter()
        .find(|s| s.starts_with("seccomp="))
        .expect("a seccomp profile");
    let profile = match engine_flavor() {
        Flavor::Docker => seccomp["seccomp=".len()..].to_string(),
        // Podman's compat API reads the option as a path on the engine host.
        Flavor::Podman => std::fs::read_to_string(&seccomp["seccomp=".len()..]).unwrap(),
    };
    assert!(
        profile.contains("defaultAction"),
        "a generated profile: {profile:.80}"
    );
    assert!(!profile.contains("unconfined"));
    let tmpfs = hc["Tmpfs"].as_object().expect("tmpfs mounts");
    for mount in ["/tmp", "/run"] {
        let opts = tmpfs[mount].as_str().unwrap();
        assert!(opts.contains("mode=1777"), "{mount}: {opts}");
        assert!(opts.contains("size="), "{mount}: {opts}");
    }
    assert_eq!(c["Config"]["User"], "1000:1000");
    assert_eq!(c["Config"]["Cmd"], serde_json::json!(["sleep", "3600"]));
    let env: Vec<String> = serde_json::from_value(c["Config"]["Env"].clone()).unwrap();
    assert!(env.contains(&"LANG=C.UTF-8".to_string()), "{env:?}");
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["clw-fortress.managed"], "1");
    assert_eq!(labels["clw-fortress.fortress"], fx.name());
    assert_eq!(labels["clw-fortress.sandbox"], fx.sandbox().as_str());
    assert_eq!(labels["clw-fortress.spec-hash"].as_str().unwrap().len(), 64);

    // Binds: each declared source with its mode, denied paths absent.
    let mounts = c["Mounts"].as_array().unwrap();
    let find = |dest: &str| {
        mounts
            .iter()
            .find(|m| m["Destination"] == dest)
            .unwrap_or_else(|| panic!("no mount at {dest}: {mounts:?}"))
    };
    assert_eq!(find("/agent-workspace")["RW"], true);
    let logs = fx.openclaw_dir().join("logs");
    let logs_mount = find(logs.to_str().unwrap());
    assert_eq!(logs_mount["RW"], false);
    assert_eq!(logs_mount["Propagation"], "rprivate");
    for m in mounts {
        let src = m["Source"].as_str().unwrap_or("");
        for denied in ["credentials", "secrets", "matrix", "identity", "devices"] {
            assert!(!src.contains(denied), "denied path mounted: {src}");
        }
    }

    // The hardening is real inside, not only in the config.
    let status = docker_ok(&["exec", &fx.sandbox(), "cat", "/proc/self/status"]);
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    for path in ["/etc/x", "/x", "/var/tmp/x", "/home/x"] {
        let w = docker(&["exec", &fx.sandbox(), "touch", path]);
        assert!(
            !w.status.success(),
            "{path} is writable outside the declared tmpfs mounts"
        );
    }
    let w = docker(&[
        "exec",
        &fx.sandbox(),
        "touch",
        logs.join("x").to_str().unwrap(),
    ]);
    assert!(!w.status.success(), "ro bind is writable");
    docker_ok(&[
        "exec",
        &fx.sandbox(),
        "touch",
        "/agent-workspace/probe",
        "/tmp/probe",
    ]);
}

#[test]
fn the_sandbox_runs_the_engines_init_which_reaps_orphans_and_passes_sigterm_on() {
    require_engine();
    let fx = Fixture::new("init");
    apply_ok(&fx, &[]);
    let sbx = fx.sandbox();
    // PID 1 is the engine's init (tini mounted as docker-init, catatonit as podman-init), the
    // declared command its child.
    let comm = docker_ok(&["exec", &sbx, "cat", "/proc/1/comm"]);
    let want = match engine_flavor() {
        Flavor::Docker => "docker-init",
        Flavor::Podman => "podman-init",
    };
    assert_eq!(comm.trim(), want);

    // A process orphaned by an exec is reaped: without an init, `sleep` as PID 1 would keep it
    // a zombie, holding a pid until the sandbox restarts.
    docker_ok(&["exec", &sbx, "sh", "-c", "sleep 1 & exit 0"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = docker_ok(&["exec", &sbx, "ps", "-o", "stat="]);
        if !stats.lines().any(|l| l.trim_start().starts_with('Z')) {
            break;
        }
        assert!(Instant::now() < deadline, "a zombie stays: {stats}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // SIGTERM reaches the command: the stop ends with 143 (128 + SIGTERM), not with the
    // SIGKILL (137) a bare `sleep` as PID 1 would get after the 30 s timeout.
    docker_ok(&["stop", "-t", "30", &sbx]);
    assert_eq!(inspect(&sbx)["State"]["ExitCode"], 143);
}

#[test]
fn a_second_apply_performs_zero_actions() {
    require_engine();
    let fx = Fixture::new("idem");
    let first = plan_json(&fx, &[]);
    assert_eq!(first["actions"][0]["action"], "create");
    apply_ok(&fx, &[]);
    let id = id_of(&fx.sandbox());
    let again = plan_json(&fx, &[]);
    assert_eq!(again["actions"], serde_json::json!([]), "{again}");
    assert_eq!(again["unchanged"], serde_json::json!([fx.sandbox()]));
    let out = fx.run(&["-o", "json", "apply"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(json(&out)["report"]["outcomes"], serde_json::json!([]));
    assert_eq!(id_of(&fx.sandbox()), id);
}

#[test]
fn plan_detailed_exitcode_says_whether_changes_are_pending_and_quiet_prints_nothing() {
    require_engine();
    let fx = Fixture::new("pexit");
    let pending = fx.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(pending.status.code(), Some(1), "{}", describe(&pending));
    assert!(String::from_utf8_lossy(&pending.stdout).contains("+ create"));
    // Without the flag a plan with changes is still a success.
    let plain = fx.run(&["plan"]);
    assert_eq!(plain.status.code(), Some(0), "{}", describe(&plain));

    let applied = fx.run(&["-q", "apply"]);
    assert!(applied.status.success(), "{}", describe(&applied));
    assert!(applied.stdout.is_empty(), "{}", describe(&applied));

    let none = fx.run(&["-q", "plan", "--detailed-exitcode"]);
    assert_eq!(none.status.code(), Some(0), "{}", describe(&none));
    assert!(none.stdout.is_empty(), "{}", describe(&none));
}

#[test]
fn exec_with_stdin_passes_standard_input_to_the_command() {
    require_engine();
    let fx = Fixture::new("stdin");
    apply_ok(&fx, &[]);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut child = fx
        .command(&[
            "exec",
            "-i",
            &fx.sandbox(),
            "--",
            "sh",
            "-c",
            "cat | wc -c; exit 3",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        data.len().to_string()
    );
    // Without -i the command gets no input (end of file at once).
    let out = fx.run(&["exec", &fx.sandbox(), "--", "sh", "-c", "cat | wc -c"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "{}",
        describe(&out)
    );
}

#[test]
fn a_limits_only_change_updates_in_place_and_keeps_the_id() {
    require_engine();
    let fx = Fixture::new("limits");
    apply_ok(&fx, &[]);
    let id = id_of(&fx.sandbox());
    fx.write_manifest(&fx.manifest_text().replace(
        "{memory: 64Mi, memorySwap: 64Mi, cpus: 0.5, pids: 64}",
        "{memory: 96Mi, memorySwap: 96Mi, cpus: 0.25, pids: 48}",
    ));
    let p = plan_json(&fx, &[]);
    assert_eq!(p["actions"][0]["action"], "update-limits", "{p}");
    apply_ok(&fx, &[]);
    assert_eq!(id_of(&fx.sandbox()), id, "same container");
    if engine_flavor() == Flavor::Docker {
        // Podman 4.3 keeps reporting create-time limits after an update; the cgroup is the truth.
        let hc = inspect(&fx.sandbox())["HostConfig"].clone();
        assert_eq!(hc["Memory"], 96 << 20);
        assert_eq!(hc["NanoCpus"], 250_000_000);
        assert_eq!(hc["PidsLimit"], 48);
    }
    assert_eq!(cgroup_limits(&fx.sandbox()), (96 << 20, 250_000_000, 48));
    assert_eq!(plan_json(&fx, &[])["actions"], serde_json::json!([]));
}

#[test]
fn drift_made_with_docker_update_is_planned_and_reverted() {
    require_engine();
    let fx = Fixture::new("drift");
    apply_ok(&fx, &[]);
    loosen_pids_limit(&fx.sandbox(), 4096);
    let p = plan_json(&fx, &[]);
    assert_eq!(p["actions"][0]["action"], "update-limits");
    assert_eq!(p["actions"][0]["changes"][0]["field"], "pids");
    assert_eq!(p["actions"][0]["changes"][0]["from"], 4096);
    apply_ok(&fx, &[]);
    assert_eq!(cgroup_limits(&fx.sandbox()).2, 64);
    assert_eq!(
        plan_json(&fx, &[])["actions"],
        serde_json::json!([]),
        "converged"
    );
}

#[test]
fn a_bind_change_recreates_the_container() {
    require_engine();
    let fx = Fixture::new("rebind");
    apply_ok(&fx, &[]);
    let id = id_of(&fx.sandbox());
    let binds = std::fs::read_to_string(fx.bind_set_path()).unwrap();
    std::fs::write(
        fx.bind_set_path(),
        binds.replace("{source: memory, mode: rw}", "{source: memory, mode: ro}"),
    )
    .unwrap();
    let p = plan_json(&fx, &[]);
    assert_eq!(p["actions"][0]["action"], "recreate", "{p}");
    apply_ok(&fx, &[]);
    let new_id = id_of(&fx.sandbox());
    assert_ne!(new_id, id);
    assert!(!container_exists(&id), "the old container is gone");
    let memory = fx.openclaw_dir().join("memory");
    let m = inspect(&fx.sandbox())["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == memory.to_str().unwrap())
        .cloned()
        .unwrap();
    assert_eq!(m["RW"], false);
}

#[test]
fn prune_removes_only_undeclared_managed_containers() {
    require_engine();
    let fx = Fixture::new("prune");
    let extra = format!("{}-extra", fx.name());
    let lookalike = format!("{}-lookalike", fx.name());
    let mut guard = ContainerGuard::new();
    guard.track(&lookalike);
    // An unlabelled container with the same name prefix: never ours.
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &lookalike,
        "--label",
        "clw-test=1",
        FIXTURE_IMAGE,
        "sleep",
        "3600",
    ]);

    let two = fx.manifest_text().replace(
        "sandboxes:\n",
        &format!("sandboxes:\n  - name: {extra}\n    command: [sleep, \"3600\"]\n"),
    );
    fx.write_manifest(&two);
    apply_ok(&fx, &[]);
    assert!(container_exists(&extra));
    fx.write_manifest(&fx.default_manifest());

    // Without --prune the undeclared one is reported, not removed.
    let p = plan_json(&fx, &[]);
    assert_eq!(p["orphans"], serde_json::json!([extra]));
    apply_ok(&fx, &[]);
    assert!(container_exists(&extra));

    let p = plan_json(&fx, &["--prune"]);
    assert_eq!(p["actions"][0]["action"], "remove");
    assert_eq!(p["actions"][0]["name"], extra.as_str());
    apply_ok(&fx, &["--prune"]);
    assert!(
        !container_exists(&extra),
        "undeclared managed container removed"
    );
    assert!(container_exists(&fx.sandbox()), "declared one kept");
    assert!(
        container_exists(&lookalike),
        "unlabelled lookalike untouched"
    );
    assert_eq!(inspect(&lookalike)["State"]["Running"], true);
}

#[test]
fn a_name_held_by_an_unmanaged_container_is_a_conflict_left_untouched() {
    require_engine();
    let fx = Fixture::new("conflict");
    let mut guard = ContainerGuard::new();
    guard.track(&fx.sandbox());
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &fx.sandbox(),
        "--label",
        "clw-test=1",
        FIXTURE_IMAGE,
        "sleep",
        "3600",
    ]);
    let id = id_of(&fx.sandbox());
    let out = fx.run(&["apply"]);
    assert!(!out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("conflict"), "{}", describe(&out));
    assert_eq!(
        id_of(&fx.sandbox()),
        id,
        "the foreign container is untouched"
    );
    assert!(inspect(&fx.sandbox())["Config"]["Labels"]["clw-fortress.managed"].is_null());
}

#[test]
fn an_apply_killed_midway_converges_on_the_next_run_without_duplicates() {
    require_engine();
    let fx = Fixture::new("killed");
    let names: Vec<String> = (0..6).map(|i| format!("{}-s{i}", fx.name())).collect();
    let mut yaml = fx.manifest_text();
    let extra: String = names
        .iter()
        .map(|n| format!("  - name: {n}\n    command: [sleep, \"3600\"]\n"))
        .collect();
    yaml = yaml.replace("sandboxes:\n", &format!("sandboxes:\n{extra}"));
    fx.write_manifest(&yaml);

    let mut child = fx.command(&["apply"]).spawn().expect("spawn apply");
    // Kill it as soon as the first container of the fortress exists: part-way through.
    let label = format!("clw-fortress.fortress={}", fx.name());
    let deadline = Instant::now() + Duration::from_secs(60);
    while containers_with_label(&label).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill apply");
    let _ = child.wait();

    apply_ok(&fx, &[]);
    let all = containers_with_label(&label);
    assert_eq!(
        all.len(),
        names.len() + 1,
        "exactly one container per sandbox: {all:?}"
    );
    for n in names.iter().chain([&fx.sandbox()]) {
        assert_eq!(inspect(n)["State"]["Running"], true, "{n} running");
    }
    assert_eq!(plan_json(&fx, &[])["actions"], serde_json::json!([]));
}

/// Finding 5 of the integrity review: a container recreated with the fortress's labels but a
/// weaker configuration is never `= ok`: apply replaces it; `--prune` never removes a
/// container that merely carries the labels.
#[test]
fn a_weakened_copy_with_the_right_labels_is_replaced_and_a_forged_orphan_is_not_pruned() {
    require_engine();
    let fx = Fixture::new("forged");
    apply_ok(&fx, &[]);
    forge(
        &fx.sandbox(),
        &fx.sandbox(),
        &[
            "--cap-add",
            "SYS_ADMIN",
            "--security-opt",
            "seccomp=unconfined",
        ],
    );
    let p = plan_json(&fx, &[]);
    assert_eq!(p["actions"][0]["action"], "recreate", "{p}");
    assert!(
        p["actions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not recorded as created by this fortress"),
        "{p}"
    );
    apply_ok(&fx, &[]);
    let hc = inspect(&fx.sandbox())["HostConfig"].clone();
    assert!(
        hc["CapAdd"].as_array().is_none_or(|a| a.is_empty()),
        "{}",
        hc["CapAdd"]
    );
    assert_eq!(plan_json(&fx, &[])["actions"], serde_json::json!([]));

    // A forged container of an undeclared sandbox name is left alone by --prune.
    let orphan = format!("{}-orphan", fx.name());
    let mut guard = ContainerGuard::new();
    guard.track(&orphan);
    let labels = inspect(&fx.sandbox())["Config"]["Labels"].clone();
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), orphan.clone()];
    for (k, v) in labels.as_object().unwrap() {
        let v = if k == "clw-fortress.sandbox" {
            orphan.as_str()
        } else {
            v.as_str().unwrap()
        };
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    args.extend([FIXTURE_IMAGE.to_string(), "sleep".into(), "3600".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_ok(&args);
    let p = plan_json(&fx, &["--prune"]);
    assert_eq!(p["actions"], serde_json::json!([]), "{p}");
    assert_eq!(p["unrecorded"], serde_json::json!([orphan]), "{p}");
    apply_ok(&fx, &["--prune"]);
    assert!(container_exists(&orphan));
}

/// A container of the sandbox's name with the fortress's labels copied, made by someone else
/// with engine access and a bind to collect loot: `exec` refuses it and reads no secret.
#[test]
fn exec_refuses_a_forged_sandbox_and_hands_it_no_secret() {
    require_engine();
    let fx = Fixture::new("exec-forged");
    apply_ok(&fx, &[]);
    let loot = tempfile::tempdir().unwrap();
    let bind = format!("{}:/loot", loot.path().display());
    forge(&fx.sandbox(), &fx.sandbox(), &["-v", &bind]);

    let out = fx.run(&[
        "exec",
        &fx.sandbox(),
        "--",
        "sh",
        "-c",
        "printf %s \"$ANTHROPIC_API_KEY\" > /loot/k",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error[clw-isolation-breach]:")
            && stderr.contains("not a sandbox this fortress created"),
        "{stderr}"
    );
    assert!(
        !loot.path().join("k").exists(),
        "the forged container ran the command"
    );
    let secret = fx.secret_value("ANTHROPIC_API_KEY");
    assert!(!stderr.contains(&secret));
}

#[test]
fn exec_injects_a_secret_that_inspect_never_shows() {
    require_engine();
    let fx = Fixture::new("exec");
    apply_ok(&fx, &[]);
    let secret = fx.secret_value("ANTHROPIC_API_KEY");
    let out = fx.run(&[
        "exec",
        &fx.sandbox(),
        "--",
        "sh",
        "-c",
        "printf %s \"$ANTHROPIC_API_KEY\"",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), secret);
    // Only the declared secretEnv is injected.
    let out = fx.run(&[
        "exec",
        &fx.sandbox(),
        "--",
        "sh",
        "-c",
        "printf %s \"${BOT_TOKEN:-unset}\"",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "unset");
    // The command's exit status is passed through.
    let out = fx.run(&["exec", &fx.sandbox(), "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));

    let inspected = docker_ok(&["inspect", &fx.sandbox()]);
    assert!(
        !inspected.contains(&secret),
        "docker inspect shows the secret"
    );
    let environ = docker_ok(&[
        "exec",
        &fx.sandbox(),
        "sh",
        "-c",
        "cat /proc/1/environ | tr '\\0' '\\n'",
    ]);
    assert!(!environ.contains(&secret), "PID 1 holds the secret");
    // Nor does anything clw-fortress wrote: the state database and its own output.
    let db = std::fs::read(fx.state_path()).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&db).contains(&secret),
        "state db holds the secret"
    );
    let plan = fx.run(&["plan"]);
    assert!(!String::from_utf8_lossy(&plan.stdout).contains(&secret));
}

#[test]
fn an_unreachable_engine_exits_3_naming_the_socket() {
    let fx = Fixture::new("nosock");
    let sock = fx.dir().join("nothing-here.sock");
    let url = format!("unix://{}", sock.display());
    let out = fx.run(&["--engine", &url, "plan"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error[clw-engine-unreachable]"), "{err}");
    assert!(err.contains(sock.to_str().unwrap()), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

/// Finding 3 of the integrity review: a bind source swapped for a symlink to the secrets
/// directory between validation and create is not mounted; apply refuses and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_source_swapped_for_a_symlink_after_validation_is_never_mounted() {
    use clw_fortress::{apply, engine::DockerEngine, manifest, plan, state::State};
    require_engine();
    let fx = Fixture::new("pinned");
    let fortress = manifest::load(&fx.manifest_path(), &manifest::LoadContext::from_process())
        .expect("a valid manifest");
    // Validated; now the workspace becomes a symlink to the secrets directory.
    let ws = fx.openclaw_dir().join("workspace");
    let secrets_dir = fx.secrets_dir();
    std::fs::rename(&ws, fx.openclaw_dir().join("workspace-moved")).unwrap();
    std::os::unix::fs::symlink(&secrets_dir, &ws).unwrap();

    let desired = apply::prepare(&fortress).unwrap();
    let engine = DockerEngine::connect(&engine_socket(), fx.dir().join("profiles"))
        .await
        .unwrap();
    let state = State::open(&fx.state_path()).unwrap();
    let observed = apply::observe(&engine, &fortress.name, &desired, Some(&state))
        .await
        .unwrap();
    let p = plan::plan(&desired, &observed, false);
    let report = apply::execute(&engine, &p, &desired, &state, "test").await;
    assert_eq!(report.failed(), 1, "{report:?}");
    let failure = report.outcomes[0].error.as_ref().unwrap();
    assert_eq!(
        failure.code.to_string(),
        "clw-isolation-breach",
        "{failure:?}"
    );
    assert!(
        failure.message.contains("replaced by a symlink"),
        "{failure:?}"
    );
    assert!(!container_exists(&fx.sandbox()), "nothing was created");
}

/// Finding 3, the restart half: the engine resolves bind sources again at every start. A
/// source swapped for a symlink to the secrets directory before a heal restart is caught after
/// the restart, and the container is stopped, not left running with the secrets mounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_source_swapped_before_a_heal_restart_stops_the_sandbox() {
    use clw_fortress::{engine::DockerEngine, heal::restart};
    require_engine();
    let fx = Fixture::new("pinned-restart");
    apply_ok(&fx, &[]);
    let ws = fx.openclaw_dir().join("workspace");
    std::fs::rename(&ws, fx.openclaw_dir().join("workspace-moved")).unwrap();
    std::os::unix::fs::symlink(fx.secrets_dir(), &ws).unwrap();

    let engine = DockerEngine::connect(&engine_socket(), fx.dir().join("profiles"))
        .await
        .unwrap();
    let err = restart::restart_container(&engine, &fx.sandbox())
        .await
        .unwrap_err();
    assert_eq!(
        clw_fortress::error::Coded::code(&err).to_string(),
        "clw-isolation-breach",
        "{err}"
    );
    assert!(err.to_string().contains("replaced by a symlink"), "{err}");
    assert_eq!(
        inspect(&fx.sandbox())["State"]["Running"],
        false,
        "the sandbox was stopped"
    );
}

/// The daemon's heal path (it holds the manifest loaded before the swap; every command that
/// loads it now refuses it): the pass that finds the other source mounted stops the sandbox
/// and records the stop, so no later pass starts it again with that source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heal_pass_that_finds_a_swapped_source_stops_the_sandbox_for_good() {
    use clw_fortress::{engine::DockerEngine, heal, manifest, state::State};
    require_engine();
    let fx = Fixture::new("pinned-heal");
    apply_ok(&fx, &[]);
    let fortress = manifest::load(&fx.manifest_path(), &manifest::LoadContext::from_process())
        .expect("the fixture manifest loads");
    let sandbox = fortress.sandboxes[0].clone();
    let ws = fx.openclaw_dir().join("workspace");
    std::fs::rename(&ws, fx.openclaw_dir().join("workspace-moved")).unwrap();
    std::os::unix::fs::symlink(fx.secrets_dir(), &ws).unwrap();
    docker_ok(&["kill", &fx.sandbox()]);

    let engine = DockerEngine::connect(&engine_socket(), fx.dir().join("profiles"))
        .await
        .unwrap();
    let state = State::open(&fx.state_path()).unwrap();
    let now = || chrono::Utc::now().timestamp_millis();
    let first = heal::run_sandbox(&engine, &state, &fortress, &sandbox, now())
        .await
        .unwrap();
    let shown = format!("{first:?}");
    assert!(shown.contains("replaced by a symlink"), "{shown}");
    assert_eq!(inspect(&fx.sandbox())["State"]["Running"], false);
    let started = inspect(&fx.sandbox())["State"]["StartedAt"].clone();

    // An hour later: past any backoff, so only the recorded stop keeps it down.
    let second = heal::run_sandbox(&engine, &state, &fortress, &sandbox, now() + 3_600_000)
        .await
        .unwrap();
    let shown = format!("{second:?}");
    assert!(
        !shown.contains("replaced by a symlink"),
        "restarted again: {shown}"
    );
    assert_eq!(inspect(&fx.sandbox())["State"]["Running"], false);
    assert_eq!(
        inspect(&fx.sandbox())["State"]["StartedAt"],
        started,
        "started again"
    );
}
