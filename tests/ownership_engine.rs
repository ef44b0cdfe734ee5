//! One ownership rule against a real engine: a container that carries a sandbox's labels (copied
//! from the real one) but was not created by this fortress is not the sandbox, whichever
//! command looks at it. `stop` refuses it with `clw-isolation-breach`, a heal pass and the
//! agent's crash path never restart it after a `docker kill`, and `status` shows it as
//! `unrecorded`, not as the sandbox; `enforce` does not give it the sandbox's limits.

mod common;

use std::time::{Duration, Instant};

use clw_fortress::engine::DockerEngine;
use clw_fortress::heal::{self, DeathWatch, Seen};
use clw_fortress::manifest::{self, LoadContext};
use clw_fortress::state::{now_ms, State};
use common::*;
use futures_util::StreamExt;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

/// Applies the fixture, then replaces its sandbox by a `sleep` container of the same name that
/// carries the real sandbox's labels; returns the copy's id.
fn apply_then_forge(fx: &Fixture) -> String {
    let out = fx.run(&["apply"]);
    assert!(out.status.success(), "apply failed: {}", describe(&out));
    forge(&fx.sandbox(), &fx.sandbox(), &[]);
    let copy = inspect(&fx.sandbox());
    assert_eq!(
        copy["Config"]["Labels"]["clw-fortress.fortress"],
        fx.name(),
        "the copy carries the fortress's labels"
    );
    copy["Id"].as_str().unwrap().to_string()
}

fn running(name: &str) -> bool {
    inspect(name)["State"]["Running"] == true
}

#[test]
fn stop_refuses_a_container_that_only_carries_the_sandboxs_labels() {
    require_engine();
    let fx = Fixture::new("own-stop");
    apply_then_forge(&fx);

    let out = fx.run(&["stop", "--time", "1", &fx.sandbox()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error[clw-isolation-breach]:")
            && stderr.contains("not a sandbox this fortress created")
            && stderr.contains("no record of creating it"),
        "{stderr}"
    );
    assert!(running(&fx.sandbox()), "the copy was stopped");

    let out = fx.run(&["-o", "json", "stop", "--time", "1", &fx.sandbox()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(running(&fx.sandbox()));
}

#[test]
fn a_heal_pass_never_restarts_a_killed_container_that_only_carries_the_sandboxs_labels() {
    require_engine();
    let fx = Fixture::new("own-heal");
    apply_then_forge(&fx);
    docker_ok(&["kill", &fx.sandbox()]);

    let out = fx.run(&["-o", "json", "heal"]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        describe(&out)
    );
    let report = json(&out);
    let t = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "sandbox" && t["name"] == fx.sandbox().as_str())
        .unwrap_or_else(|| panic!("no sandbox entry in {report:#}"));
    assert!(
        t["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("not the sandbox this fortress created")),
        "{report:#}"
    );
    assert!(t["restart"].is_null(), "{report:#}");
    assert!(!running(&fx.sandbox()), "the copy was restarted");
}

/// The agent's crash path (the same functions the daemon calls per event): the copy's `die`
/// is seen, its stop window passes, and nothing is restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crash_path_never_restarts_a_killed_container_that_only_carries_the_sandboxs_labels() {
    require_engine();
    let fx = Fixture::new("own-crash");
    let id = apply_then_forge(&fx);
    let fortress = manifest::load(&fx.manifest_path(), &LoadContext::from_process())
        .expect("a valid manifest");
    let engine = DockerEngine::connect(&engine_socket(), fx.dir().join("profiles"))
        .await
        .expect("connect");
    let state = State::open(&fx.state_path()).expect("open the state database");
    let mut events = clw_fortress::engine::Engine::events(&engine);
    let mut watch = DeathWatch::default();
    // The stream subscribes on its first poll; subscribe before the kill.
    let _ = tokio::time::timeout(Duration::from_secs(1), events.next()).await;

    docker_ok(&["kill", &fx.sandbox()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut died_at = None;
    let mut reports = Vec::new();
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), events.next()).await {
            Ok(Some(Ok(ev))) => {
                let seen = heal::observe_event(&state, &mut watch, &ev, now_ms()).unwrap();
                if ev.id == id && seen == Seen::Held {
                    died_at.get_or_insert_with(Instant::now);
                }
            }
            Ok(Some(Err(e))) => panic!("event stream failed: {e}"),
            Ok(None) => panic!("event stream ended"),
            Err(_) => {}
        }
        reports.extend(
            heal::on_due(&engine, &state, &fortress, &mut watch, now_ms())
                .await
                .unwrap(),
        );
        // Past the stop window, so a death held for healing would have surfaced.
        if died_at.is_some_and(|t| t.elapsed() > heal::DEFAULT_STOP_WINDOW + Duration::from_secs(2))
        {
            break;
        }
    }
    assert!(died_at.is_some(), "the copy's die event was not seen");
    assert!(reports.is_empty(), "the copy was healed: {reports:?}");
    assert!(!running(&fx.sandbox()), "the copy was restarted");
}

#[test]
fn status_shows_a_labelled_copy_as_unrecorded_not_as_the_sandbox() {
    require_engine();
    let fx = Fixture::new("own-status");
    let id = apply_then_forge(&fx);

    let out = fx.run(&["-o", "json", "status"]);
    assert!(out.status.success(), "{}", describe(&out));
    let report = json(&out);
    let targets = report["targets"].as_array().unwrap();
    let row = |kind: &str| {
        targets
            .iter()
            .find(|t| t["kind"] == kind && t["name"] == fx.sandbox().as_str())
            .unwrap_or_else(|| panic!("no {kind} row for the sandbox in {report:#}"))
    };
    assert_eq!(row("sandbox")["state"], "missing", "{report:#}");
    assert!(row("sandbox")["container_id"].is_null(), "{report:#}");
    assert_eq!(row("unrecorded")["container_id"], id.as_str(), "{report:#}");
    assert_eq!(row("unrecorded")["state"], "running", "{report:#}");

    let out = fx.run(&["status"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let kinds: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(fx.sandbox().as_str()))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(kinds, ["sandbox", "unrecorded"], "{text}");
}

#[test]
fn enforce_gives_a_labelled_copy_none_of_the_sandboxs_limits() {
    require_engine();
    let fx = Fixture::new("own-enforce");
    apply_then_forge(&fx);
    let pids_before = inspect(&fx.sandbox())["HostConfig"]["PidsLimit"].clone();

    let out = fx.run(&["-o", "json", "enforce"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report = json(&out);
    for list in ["enforced", "unchanged"] {
        assert!(
            report[list]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["name"] != fx.sandbox().as_str()),
            "{report:#}"
        );
    }
    assert_eq!(
        inspect(&fx.sandbox())["HostConfig"]["PidsLimit"],
        pids_before,
        "the copy got the sandbox's limits"
    );
}
