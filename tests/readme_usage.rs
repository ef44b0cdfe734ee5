//! The README's usage block, run as a new user would paste it: from a temporary directory
//! outside the repository, with the binary on `PATH` and nothing else of the repository in
//! reach, on the real engine. If the README's commands stop working, this fails.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The sandbox the README's block declares; removed before and after the run.
const SANDBOX: &str = "try-main";

/// The first fenced `sh` block after the `## Usage` heading of README.md.
fn usage_block() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let usage = readme
        .split_once("\n## Usage\n")
        .expect("README.md has a `## Usage` section")
        .1;
    let body = usage
        .split_once("```sh\n")
        .expect("the usage section has a ```sh block")
        .1;
    let (block, _) = body.split_once("\n```").expect("the ```sh block is closed");
    block.to_string()
}

#[test]
fn the_usage_block_runs_from_a_temporary_directory() {
    require_engine();
    let block = usage_block();
    assert!(
        block.contains("clw-fortress apply") && block.contains("clw-fortress verify"),
        "the usage block no longer applies and verifies:\n{block}"
    );

    // Leftovers of an earlier run would be another fortress's container by the same name.
    let _ = docker(&["rm", "-f", "-v", SANDBOX]);
    let mut guard = ContainerGuard::new();
    guard.track(SANDBOX);

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let cwd = dir.path().join("shell");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_clw-fortress"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block])
        .current_dir(&cwd)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .env("DOCKER_HOST", engine_socket())
        .env("NO_COLOR", "1")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(
        out.status.success(),
        "the usage block failed ({})\n{shown}",
        out.status
    );

    assert!(
        stdout.contains("notes the tool may read"),
        "the ro bind was not readable\n{shown}"
    );
    assert!(
        stdout.contains("API_KEY: 39 characters"),
        "the secret was not injected into the exec\n{shown}"
    );
    assert!(stdout.contains("verify PASS"), "{shown}");

    // The block made its secret up; it must appear in none of the output.
    let secrets = std::fs::read_to_string(cwd.join("clw-try/secrets/secrets.env")).unwrap();
    let value = secrets
        .trim()
        .strip_prefix("API_KEY=")
        .expect("the block writes API_KEY=...");
    assert!(value.len() > 20, "{value:?}");
    assert!(
        !stdout.contains(value) && !stderr.contains(value),
        "the secret value was printed\n{shown}"
    );

    // `stop` is a deliberate stop: the sandbox is there and not running.
    let running = docker_ok(&["inspect", "--format", "{{.State.Running}}", SANDBOX]);
    assert_eq!(running, "false", "{shown}");
}
