//! The harness itself against the real engine: the engine answers, the fixture image runs
//! hardened as the sandbox user, guards clean up (also on panic), fixtures have the layout and
//! modes the manifest rules demand. Everything else in `tests/` builds on these.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn engine_answers_with_a_server_version() {
    require_engine();
    assert!(!engine_version().is_empty());
}

#[test]
fn fixture_image_runs_hardened_as_the_sandbox_user() {
    require_engine();
    let mut guard = ContainerGuard::new();
    let name = guard.track(&unique("clwt-smoke"));
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        TEST_LABEL,
        "--read-only",
        "--cap-drop",
        "ALL",
        "--network",
        "none",
        "--pids-limit",
        "32",
        "--user",
        "1000:1000",
        "--security-opt",
        "no-new-privileges",
        FIXTURE_IMAGE,
        "sleep",
        "300",
    ]);

    assert_eq!(docker_ok(&["exec", &name, "id", "-u"]), "1000");
    assert_eq!(docker_ok(&["exec", &name, "id", "-un"]), "sandbox");

    let write = docker(&["exec", &name, "touch", "/probe"]);
    assert!(!write.status.success(), "the read-only root took a write");
    assert!(
        String::from_utf8_lossy(&write.stderr).contains("Read-only file system"),
        "{}",
        describe(&write)
    );

    let links = docker_ok(&["exec", &name, "ls", "/sys/class/net"]);
    assert_eq!(links, "lo", "network none shows only lo");

    let info = inspect(&name);
    assert_eq!(info["HostConfig"]["ReadonlyRootfs"], true);
    assert_eq!(info["HostConfig"]["PidsLimit"], 32);
    assert_eq!(info["HostConfig"]["NetworkMode"], "none");
    assert_eq!(info["Config"]["User"], "1000:1000");
    assert_eq!(info["State"]["Running"], true);
}

#[test]
fn container_guard_removes_its_containers_even_when_the_test_panics() {
    require_engine();
    let name = unique("clwt-guard");
    let inner = name.clone();
    let result = std::panic::catch_unwind(move || {
        let mut guard = ContainerGuard::new();
        guard.track(&inner);
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &inner,
            "--label",
            TEST_LABEL,
            FIXTURE_IMAGE,
            "sleep",
            "300",
        ]);
        assert!(container_exists(&inner));
        panic!("deliberate");
    });
    assert!(result.is_err());
    assert!(!container_exists(&name), "{name} survived its guard");
}

#[test]
fn label_guard_removes_every_container_of_its_fortress() {
    require_engine();
    let fortress = unique("clwt-label");
    let names = [unique("clwt-label-a"), unique("clwt-label-b")];
    // Backstop only: if the label guard failed, this still cleans up after the assertion below.
    let mut backstop = ContainerGuard::new();
    {
        let _guard = LabelGuard(fortress.clone());
        for n in &names {
            backstop.track(n);
            docker_ok(&[
                "create",
                "--name",
                n,
                "--label",
                &format!("clw-fortress.fortress={fortress}"),
                FIXTURE_IMAGE,
            ]);
        }
        assert_eq!(
            containers_with_label(&format!("clw-fortress.fortress={fortress}")).len(),
            2
        );
    }
    for n in &names {
        assert!(!container_exists(n), "{n} survived the label guard");
    }
}

#[test]
fn unique_names_are_valid_distinct_and_short() {
    let mut seen = std::collections::HashSet::new();
    for prefix in [
        "x",
        "Apply_Test",
        "a-very-long-prefix-that-would-overflow-the-limit",
        "--",
    ] {
        for _ in 0..50 {
            let n = unique(prefix);
            assert!(n.len() <= 40, "{n} is longer than 40");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n} has a character outside [a-z0-9-]"
            );
            assert!(n.chars().next().unwrap().is_ascii_alphanumeric(), "{n}");
            assert!(seen.insert(n.clone()), "{n} was handed out twice");
        }
    }
}

#[test]
fn fixture_lays_out_an_openclaw_home_with_strict_secret_modes() {
    let fx = Fixture::new("layout");
    let oc = fx.openclaw_dir();
    for d in OPENCLAW_DIRS {
        assert!(oc.join(d).is_dir(), "{d} missing");
    }
    assert_eq!(
        std::fs::read_to_string(oc.join("openclaw.json")).unwrap(),
        "{}\n"
    );

    assert_eq!(mode(&fx.secrets_dir()), 0o700);
    assert_eq!(mode(&fx.secrets_file()), 0o600);
    let env = std::fs::read_to_string(fx.secrets_file()).unwrap();
    let key = fx.secret_value("ANTHROPIC_API_KEY");
    assert!(env.contains(&format!("ANTHROPIC_API_KEY={key}\n")));
    assert!(env.contains(&format!("BOT_TOKEN={}\n", fx.secret_value("BOT_TOKEN"))));

    // Secrets are random per fixture, and only the secrets file holds them.
    let other = Fixture::new("layout");
    assert_ne!(other.secret_value("ANTHROPIC_API_KEY"), key);
    assert_ne!(other.name(), fx.name());
    let manifest = fx.manifest_text();
    assert!(!manifest.contains(&key));

    assert!(fx.name().starts_with("clwt-layout-"));
    assert!(manifest.contains(&format!("name: {}\n", fx.name())));
    assert!(manifest.contains(&format!("- name: {}\n", fx.sandbox())));
    assert!(manifest.contains(fx.secrets_file().to_str().unwrap()));
    assert!(!manifest.contains('~'), "paths must be absolute");
    let binds = std::fs::read_to_string(fx.bind_set_path()).unwrap();
    assert!(binds.contains(oc.to_str().unwrap()));

    fx.write_manifest("kind: Fortress\n");
    assert_eq!(fx.manifest_text(), "kind: Fortress\n");

    let dir = fx.dir().to_path_buf();
    drop(fx);
    assert!(!dir.exists(), "the fixture directory outlived the fixture");
}

#[test]
fn fixture_manifest_is_yaml_with_the_documented_shape() {
    // serde_json is the only parser the tests may use without the library: check the YAML is
    // plain enough that every value line is `key: value` with JSON-quoted paths.
    let fx = Fixture::new("shape");
    let text = fx.manifest_text();
    for field in [
        "apiVersion: clw-fortress/v1",
        "kind: Fortress",
        "bindSets: [binds/test.yaml]",
        "image: clw-fixture:busybox",
        "user: \"1000:1000\"",
        "policy: default",
        "limits: {memory: 64Mi, memorySwap: 64Mi, cpus: 0.5, pids: 64}",
        "secretEnv: [ANTHROPIC_API_KEY]",
        "command: [sleep, \"3600\"]",
    ] {
        assert!(text.contains(field), "manifest lacks `{field}`:\n{text}");
    }
    let state_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("path:"))
        .unwrap();
    let state: String =
        serde_json::from_str(state_line.trim_start().trim_start_matches("path:").trim()).unwrap();
    assert_eq!(std::path::Path::new(&state), fx.state_path());
}

/// The Podman matrix of `scripts/test.sh` names every test target that talks to an engine: a
/// new engine test cannot silently run on Docker only.
#[test]
fn every_engine_test_target_is_in_the_podman_matrix() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("scripts/test.sh")).unwrap();
    let start = script
        .find("PODMAN_MATRIX=(")
        .expect("PODMAN_MATRIX in scripts/test.sh");
    let list = &script[start + "PODMAN_MATRIX=(".len()..];
    let mut matrix: Vec<&str> = list[..list.find(')').unwrap()].split_whitespace().collect();
    // Docker-only targets, listed with a reason each (comment lines are not names).
    let start = script
        .find("DOCKER_ONLY_TARGETS=(")
        .expect("DOCKER_ONLY_TARGETS in scripts/test.sh");
    let list = &script[start + "DOCKER_ONLY_TARGETS=(".len()..];
    matrix.extend(
        list[..list.find("\n)").unwrap()]
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#')),
    );
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let target = path.file_stem().unwrap().to_str().unwrap().to_string();
        if text.contains("require_engine();") && !matrix.contains(&target.as_str()) {
            missing.push(target);
        }
    }
    assert!(
        missing.is_empty(),
        "not in PODMAN_MATRIX: {missing:?} (matrix: {matrix:?})"
    );
}
