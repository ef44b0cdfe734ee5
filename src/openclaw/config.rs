//! `openclaw.json`: parse it (with `line:column` on failure), compute its hardened form, render
//! it in the file's own indentation, and diff two renderings for `--dry-run`.
//!
//! Pure: no file is read or written here. Touched: the sandbox settings (defaults and
//! per-agent overrides), the credentials OpenClaw lets a SecretRef replace, and the
//! `secrets.providers` entry that serves them; every other key keeps its value and its
//! position (serde_json's `preserve_order`).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::OpenclawError;

/// What the hardened sandbox settings are made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `~` in existing bind sources expands to this.
    pub home: PathBuf,
    /// The OpenClaw state directory (absolute).
    pub state_dir: PathBuf,
    /// Paths no bind may expose (be, contain or lie inside): the secret-bearing files of the
    /// state directory (the inventory's) and the directory the secrets move to.
    pub exposing: Vec<PathBuf>,
    /// Bytes.
    pub memory: i64,
    pub cpus: f64,
    pub pids: i64,
    /// The generated seccomp profile's path.
    pub seccomp_profile: PathBuf,
    /// The JSON file the plaintext credentials of the config move to, served back to
    /// OpenClaw by a `file` secrets provider.
    pub secrets_json: PathBuf,
    /// Where OpenClaw accepts bind sources without `dangerouslyAllowExternalBindSources`: the
    /// agents' workspaces and its own sandbox directories.
    pub workspace_roots: Vec<PathBuf>,
}

/// Deeper nesting than this is refused before parsing: the JSON5 parser recurses once per
/// level, and a small hostile file could otherwise exhaust the stack.
const MAX_DEPTH: usize = 128;

/// The deepest `{`/`[` nesting outside strings (comments are counted too: conservative).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max, mut quote, mut escaped) = (0usize, 0usize, None, false);
    for c in text.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '{' | '[' => {
                    depth += 1;
                    max = max.max(depth);
                }
                '}' | ']' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    max
}

/// Parses `openclaw.json` as OpenClaw does, as JSON5 (comments, trailing commas, unquoted
/// keys); a syntax error names the file and `line:column`.
pub fn parse(text: &str, file: &Path) -> Result<Value, OpenclawError> {
    if nesting_depth(text) > MAX_DEPTH {
        return Err(shape(
            file,
            "",
            &format!("nested deeper than {MAX_DEPTH} levels; refusing to parse it"),
        ));
    }
    let value: Value = json5::from_str(text).map_err(|e| {
        let (line, column) = e
            .position()
            .map(|p| (p.line + 1, p.column + 1))
            .unwrap_or((0, 0));
        OpenclawError::ConfigParse {
            file: file.to_path_buf(),
            line,
            column,
            message: e
                .code()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "not JSON5".into()),
        }
    })?;
    if !value.is_object() {
        return Err(shape(file, "", "the top level must be a JSON object"));
    }
    Ok(value)
}

/// Whether `text` is plain JSON: when it is not (comments, trailing commas), rewriting it
/// loses what JSON cannot hold, and the user is told.
pub fn is_plain_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

fn shape(file: &Path, field: &str, message: &str) -> OpenclawError {
    OpenclawError::ConfigShape {
        file: file.to_path_buf(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// The object at `path` under `root`, created (appended at the end) when missing.
fn object_at<'a>(
    root: &'a mut Value,
    path: &[&str],
    file: &Path,
) -> Result<&'a mut Map<String, Value>, OpenclawError> {
    let mut cursor = root;
    let mut field = String::new();
    for key in path {
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(key);
        let map = cursor
            .as_object_mut()
            .ok_or_else(|| shape(file, &field, "must be a JSON object"))?;
        cursor = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !cursor.is_object() {
            return Err(shape(file, &field, "must be a JSON object"));
        }
    }
    Ok(cursor.as_object_mut().expect("checked above"))
}

/// `~` and `~/x` against `home`; anything else as written.
fn expand_home(path: &str, home: &Path) -> PathBuf {
    if path == "~" {
        home.to_path_buf()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(path)
    }
}

/// The host side of a Docker bind string (`src:dst[:opts]`).
fn bind_source(bind: &str) -> &str {
    bind.split(':').next().unwrap_or(bind)
}

/// Lexical normalisation (`.`/`//`/trailing `/`), enough to compare bind sources.
fn normalise(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Docker's `RAMInBytes`: a number of bytes, or a number with `b`/`k`/`m`/`g`/`t` (binary).
pub fn parse_docker_size(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().filter(|b| *b > 0),
        Value::String(s) => {
            let s = s.trim().to_ascii_lowercase();
            let s = s.strip_suffix('b').unwrap_or(&s);
            let s = s.strip_suffix('i').unwrap_or(s);
            let (digits, unit) = match s.char_indices().last() {
                Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], Some(c)),
                _ => (s, None),
            };
            let shift = match unit {
                None => 0,
                Some('k') => 10,
                Some('m') => 20,
                Some('g') => 30,
                Some('t') => 40,
                Some(_) => return None,
            };
            let n: f64 = digits.trim().parse().ok()?;
            (n.is_finite() && n > 0.0).then(|| (n * (1u64 << shift) as f64) as i64)
        }
        _ => None,
    }
}

/// Bytes as the Docker CLI writes them: the largest exact unit (`8g`, `64m`), else bytes.
pub fn docker_size(bytes: i64) -> String {
    for (shift, unit) in [(30, 'g'), (20, 'm'), (10, 'k')] {
        if bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn cpus_value(cpus: f64) -> Value {
    if cpus.fract() == 0.0 && cpus.abs() < 1e15 {
        Value::from(cpus as i64)
    } else {
        Value::from(cpus)
    }
}

/// The name of the `secrets.providers` entry `harden` registers for the moved credentials.
pub const PROVIDER: &str = "clw-fortress";

/// OpenClaw's SecretRef credential surface for `openclaw.json` (measured on 2026.9.6: its
/// `docs/reference/secretref-credential-surface.md`, generated from the package's target
/// registry). A field on this list accepts `{source, provider, id}` in place of its value;
/// `*` stands for one key. A credential elsewhere cannot be referenced and stays where it is.
pub const SECRET_REF_SURFACE: &[&str] = &[
    "agents.entries.*.memory.search.remote.apiKey",
    "agents.entries.*.tts.personas.*.providers.*.apiKey",
    "agents.entries.*.tts.providers.*.apiKey",
    "channels.*.accounts.*.authTag",
    "channels.*.accounts.*.privateKey",
    "channels.*.authTag",
    "channels.*.privateKey",
    "channels.*.accounts.*.token",
    "channels.*.token",
    "channels.*.accounts.*.pluralkit.token",
    "channels.*.pluralkit.token",
    "channels.*.accounts.*.appSecret",
    "channels.*.accounts.*.encryptKey",
    "channels.*.accounts.*.verificationToken",
    "channels.*.appSecret",
    "channels.*.encryptKey",
    "channels.*.verificationToken",
    "channels.*.accounts.*.nickserv.password",
    "channels.*.accounts.*.password",
    "channels.*.nickserv.password",
    "channels.*.password",
    "channels.*.accessToken",
    "channels.*.accounts.*.accessToken",
    "channels.*.accounts.*.botToken",
    "channels.*.botToken",
    "channels.*.appPassword",
    "channels.*.accounts.*.apiPassword",
    "channels.*.accounts.*.botSecret",
    "channels.*.apiPassword",
    "channels.*.botSecret",
    "channels.*.accounts.*.clientSecret",
    "channels.*.clientSecret",
    "channels.*.accounts.*.appToken",
    "channels.*.accounts.*.relay.authToken",
    "channels.*.accounts.*.signingSecret",
    "channels.*.accounts.*.userToken",
    "channels.*.appToken",
    "channels.*.relay.authToken",
    "channels.*.signingSecret",
    "channels.*.userToken",
    "channels.*.accounts.*.authToken",
    "channels.*.authToken",
    "channels.*.accounts.*.webhookSecret",
    "channels.*.webhookSecret",
    "cron.webhookToken",
    "gateway.auth.password",
    "gateway.auth.token",
    "gateway.remote.password",
    "gateway.remote.token",
    "memory.search.remote.apiKey",
    "models.providers.*.apiKey",
    "models.providers.*.headers.*",
    "models.providers.*.request.auth.token",
    "models.providers.*.request.auth.value",
    "models.providers.*.request.headers.*",
    "models.providers.*.request.proxy.tls.key",
    "models.providers.*.request.proxy.tls.passphrase",
    "models.providers.*.request.tls.key",
    "models.providers.*.request.tls.passphrase",
    "plugins.entries.*.config.webSearch.apiKey",
    "plugins.entries.*.config.webFetch.apiKey",
    "plugins.entries.*.config.apiKey",
    "plugins.entries.*.config.appServer.authToken",
    "plugins.entries.*.config.twilio.authToken",
    "plugins.entries.*.config.accounts.*.password",
    "plugins.entries.*.config.discord.token",
    "plugins.entries.*.config.github.token",
    "plugins.entries.*.config.routes.*.secret",
    "skills.entries.*.apiKey",
    "talk.providers.*.apiKey",
    "talk.realtime.providers.*.apiKey",
    "tts.personas.*.providers.*.apiKey",
    "tts.providers.*.apiKey",
];

/// Whether a dotted field path is on the SecretRef surface.
pub fn referenceable(path: &str) -> bool {
    let segments: Vec<&str> = path.split('.').collect();
    SECRET_REF_SURFACE.iter().any(|pattern| {
        let p: Vec<&str> = pattern.split('.').collect();
        p.len() == segments.len() && p.iter().zip(&segments).all(|(p, s)| *p == "*" || p == s)
    })
}

/// RFC 6901: `~` is `~0`, `/` is `~1`.
fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The hardened config, what it decided, and the credentials it took out.
pub struct Hardened {
    pub value: Value,
    pub notes: Vec<String>,
    /// The secrets store after the move: the moved values at the JSON pointer their
    /// reference names (the store nests like the config). `None` when nothing was moved.
    pub store: Option<Value>,
}

impl std::fmt::Debug for Hardened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hardened")
            .field("notes", &self.notes)
            .finish_non_exhaustive()
    }
}

/// Moves every plaintext credential on the SecretRef surface into `store` (the current
/// content of the secrets JSON, `{}` when none) and puts a `file` SecretRef in its place;
/// registers the provider. A credential off the surface is kept and said so. A store entry
/// that already holds a different value is a conflict: neither is overwritten.
fn reference_secrets(
    value: &mut Value,
    store: &mut Value,
    s: &Settings,
    notes: &mut Vec<String>,
    file: &Path,
) -> Result<bool, OpenclawError> {
    let found = super::inventory::config_secrets(value);
    let mut moved = false;
    for (path, secret) in found {
        if path.contains(".sandbox.docker.env.") {
            continue; // removed from the sandbox env by `harden_docker`, never kept
        }
        if !referenceable(&path) {
            notes.push(format!(
                "kept {path} in openclaw.json: OpenClaw accepts no reference there; the file is \
                 never mounted into a sandbox"
            ));
            continue;
        }
        let segments: Vec<&str> = path.split('.').collect();
        let pointer: String = segments
            .iter()
            .map(|k| format!("/{}", pointer_segment(k)))
            .collect();
        match store.pointer(&pointer) {
            Some(Value::String(existing)) if *existing == secret => {}
            Some(_) => {
                return Err(OpenclawError::Conflict {
                    existing: s.secrets_json.clone(),
                    source_file: file.to_path_buf(),
                })
            }
            None => {
                let (last, parents) = segments.split_last().expect("a path has a key");
                let parent = object_at(store, parents, &s.secrets_json)?;
                parent.insert(last.to_string(), Value::String(secret));
            }
        }
        let (last, parents) = segments.split_last().expect("a path has a key");
        let parent = object_at(value, parents, file)?;
        parent.insert(
            last.to_string(),
            serde_json::json!({"source": "file", "provider": PROVIDER, "id": pointer}),
        );
        notes.push(format!(
            "moved {path} to {} (referenced through the {PROVIDER} secrets provider)",
            s.secrets_json.display()
        ));
        moved = true;
    }
    let uses_provider = moved || serde_json::to_string(value).is_ok_and(|t| t.contains(PROVIDER));
    if uses_provider {
        let providers = object_at(value, &["secrets", "providers"], file)?;
        providers.insert(
            PROVIDER.into(),
            serde_json::json!({
                "source": "file",
                "path": s.secrets_json.display().to_string(),
                "mode": "json",
            }),
        );
    }
    Ok(moved)
}

/// The workspaces the config names (`agents.defaults.workspace`, each agent's `workspace`).
fn workspaces(config: &Value, home: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut add = |v: Option<&Value>| {
        if let Some(w) = v.and_then(Value::as_str) {
            out.push(normalise(&expand_home(w, home)));
        }
    };
    add(config.pointer("/agents/defaults/workspace"));
    if let Some(entries) = config.pointer("/agents/entries").and_then(Value::as_object) {
        for agent in entries.values() {
            add(agent.get("workspace"));
        }
    }
    out
}

/// Where sandbox settings live: the defaults (created when missing) and every per-agent
/// override that exists (`agents.entries.<id>` in 2026.9; `agents.list[]` in older files).
fn sandbox_sections(value: &Value) -> Vec<Vec<String>> {
    let mut out = vec![vec![
        "agents".to_string(),
        "defaults".into(),
        "sandbox".into(),
        "docker".into(),
    ]];
    if let Some(entries) = value.pointer("/agents/entries").and_then(Value::as_object) {
        for (id, agent) in entries {
            if agent
                .pointer("/sandbox/docker")
                .is_some_and(Value::is_object)
            {
                out.push(vec![
                    "agents".into(),
                    "entries".into(),
                    id.clone(),
                    "sandbox".into(),
                    "docker".into(),
                ]);
            }
        }
    }
    out
}

/// The hardened form of `config`. Decisions (each noted when it keeps or refuses a value):
///
/// - Credentials on OpenClaw's SecretRef surface move to the secrets JSON (see
///   [`reference_secrets`]); the rest stay and are named.
/// - In the defaults and in every per-agent sandbox override: a bind that exposes a secret
///   (is, contains or lies inside one of `Settings::exposing`) is removed and named; OpenClaw
///   mounts the agent workspace itself, so no bind is added.
/// - `pidsLimit`, `memory`, `cpus`: ours in the defaults unless the file already has a
///   stricter value; in an override only when it sets a looser one. `memorySwap` = `memory`.
/// - `readOnlyRoot: true`; `capDrop: ["ALL"]`; `network` `none` instead of `host` or
///   `container:*` (missing in the defaults: `none`); `seccompProfile` ours when missing in
///   the defaults or `unconfined` anywhere.
/// - `dangerouslyAllowExternalBindSources` is never set; where it is on, a note says so.
pub fn harden(
    config: &Value,
    store: &Value,
    s: &Settings,
    file: &Path,
) -> Result<Hardened, OpenclawError> {
    let mut roots = s.workspace_roots.clone();
    roots.extend(workspaces(config, &s.home));
    let s = &Settings {
        workspace_roots: roots,
        ..s.clone()
    };
    let mut value = config.clone();
    let mut notes = Vec::new();
    let mut new_store = store.clone();
    if !new_store.is_object() {
        new_store = Value::Object(Map::new());
    }
    let moved = reference_secrets(&mut value, &mut new_store, s, &mut notes, file)?;

    for (i, section) in sandbox_sections(&value).into_iter().enumerate() {
        let defaults = i == 0;
        let path: Vec<&str> = section.iter().map(String::as_str).collect();
        let docker = object_at(&mut value, &path, file)?;
        harden_docker(docker, defaults, &section.join("."), s, &mut notes, file)?;
    }
    Ok(Hardened {
        value,
        notes,
        store: (moved || *store != new_store).then_some(new_store),
    })
}

fn harden_docker(
    docker: &mut Map<String, Value>,
    defaults: bool,
    prefix: &str,
    s: &Settings,
    notes: &mut Vec<String>,
    file: &Path,
) -> Result<(), OpenclawError> {
    let field = |k: &str| format!("{prefix}.{k}");

    // Binds: none that exposes a secret.
    match docker.get("binds") {
        None => {}
        Some(Value::Array(items)) => {
            let mut kept = Vec::new();
            for v in items {
                let bind = v
                    .as_str()
                    .ok_or_else(|| shape(file, &field("binds"), "every bind must be a string"))?;
                let source = normalise(&expand_home(bind_source(bind), &s.home));
                let exposed = s
                    .exposing
                    .iter()
                    .find(|p| p.starts_with(&source) || source.starts_with(p));
                match exposed {
                    Some(p) => notes.push(format!(
                        "removed bind {bind} from {}: it exposes {}",
                        field("binds"),
                        p.display()
                    )),
                    None => kept.push(v.clone()),
                }
            }
            docker.insert("binds".into(), Value::Array(kept));
        }
        Some(_) => return Err(shape(file, &field("binds"), "must be an array of strings")),
    }

    // Env: OpenClaw passes `docker.env` into every sandbox unfiltered; a credential there is
    // handed to every tool. It is removed, never moved: the sandbox must not get it.
    if let Some(env) = docker.get_mut("env").and_then(Value::as_object_mut) {
        let secret: Vec<String> = env
            .iter()
            .filter(|(k, v)| {
                super::inventory::is_secret_key(k) && !super::inventory::is_reference(v)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in secret {
            env.remove(&k);
            notes.push(format!(
                "removed {}.{k}: OpenClaw hands docker.env to every sandbox unfiltered",
                field("env")
            ));
        }
    }

    // Limits: never loosen a stricter value already there.
    let pids = docker.get("pidsLimit").and_then(Value::as_i64);
    match pids {
        Some(p) if p > 0 && p <= s.pids => {
            if p < s.pids {
                notes.push(format!(
                    "kept {} {p} (stricter than {})",
                    field("pidsLimit"),
                    s.pids
                ));
            }
        }
        None if !defaults => {}
        _ => {
            docker.insert("pidsLimit".into(), Value::from(s.pids));
        }
    }
    let memory = docker.get("memory").cloned();
    match memory.as_ref().map(|v| (v, parse_docker_size(v))) {
        Some((v, Some(b))) if b <= s.memory => {
            if b < s.memory {
                notes.push(format!(
                    "kept {} {v} (stricter than {})",
                    field("memory"),
                    docker_size(s.memory)
                ));
            }
            docker.insert("memorySwap".into(), v.clone());
        }
        None if !defaults => {}
        _ => {
            let v = Value::from(docker_size(s.memory));
            docker.insert("memory".into(), v.clone());
            docker.insert("memorySwap".into(), v);
        }
    }
    match docker.get("cpus").and_then(Value::as_f64) {
        Some(c) if c > 0.0 && c <= s.cpus => {
            if c < s.cpus {
                notes.push(format!(
                    "kept {} {c} (stricter than {})",
                    field("cpus"),
                    s.cpus
                ));
            }
        }
        None if !defaults && docker.get("cpus").is_none() => {}
        _ => {
            docker.insert("cpus".into(), cpus_value(s.cpus));
        }
    }

    if defaults || docker.contains_key("readOnlyRoot") {
        docker.insert("readOnlyRoot".into(), Value::Bool(true));
    }
    let drops_all = docker
        .get("capDrop")
        .and_then(Value::as_array)
        .is_some_and(|caps| {
            caps.iter()
                .any(|c| c.as_str().is_some_and(|c| c.eq_ignore_ascii_case("ALL")))
        });
    if !drops_all && (defaults || docker.contains_key("capDrop")) {
        docker.insert("capDrop".into(), serde_json::json!(["ALL"]));
    }

    match docker.get("network").and_then(Value::as_str) {
        None if defaults => {
            docker.insert("network".into(), Value::from("none"));
        }
        None => {}
        Some(n) if n == "host" || n.starts_with("container:") => {
            notes.push(format!(
                "{} {n} replaced by none (OpenClaw refuses it for sandboxes)",
                field("network")
            ));
            docker.insert("network".into(), Value::from("none"));
        }
        Some("none") => {}
        Some(n) => notes.push(format!(
            "kept {} {n} (an explicit choice)",
            field("network")
        )),
    }

    let ours = s.seccomp_profile.display().to_string();
    match docker.get("seccompProfile").and_then(Value::as_str) {
        Some(p) if p != ours && !p.trim().eq_ignore_ascii_case("unconfined") => {
            notes.push(format!(
                "kept {} {p} (a profile of your own)",
                field("seccompProfile")
            ));
        }
        None if !defaults => {}
        _ => {
            docker.insert("seccompProfile".into(), Value::from(ours));
        }
    }

    // The flag switches OpenClaw's own bind-source protection off. It stays only while a
    // remaining bind needs it (a source outside the workspace roots); otherwise it goes.
    if docker.get("dangerouslyAllowExternalBindSources") == Some(&Value::Bool(true)) {
        let external: Vec<String> = docker
            .get("binds")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|b| {
                let source = normalise(&expand_home(bind_source(b), &s.home));
                !s.workspace_roots.iter().any(|r| source.starts_with(r))
            })
            .map(str::to_string)
            .collect();
        if external.is_empty() {
            docker.remove("dangerouslyAllowExternalBindSources");
            notes.push(format!(
                "removed {}: no remaining bind needs it, and it turns OpenClaw's own \
                 bind-source protection off",
                field("dangerouslyAllowExternalBindSources")
            ));
        } else {
            notes.push(format!(
                "kept {} for {}: OpenClaw's own bind-source protection stays off there; \
                 remove the flag and those binds if the agent can do without them",
                field("dangerouslyAllowExternalBindSources"),
                external.join(", ")
            ));
        }
    }
    Ok(())
}

/// The indentation unit of a JSON text: the leading whitespace of its first indented line.
pub fn indent_of(text: &str) -> String {
    text.lines()
        .skip(1)
        .find_map(|l| {
            let ws: String = l.chars().take_while(|c| *c == ' ' || *c == '\t').collect();
            (!ws.is_empty()).then_some(ws)
        })
        .unwrap_or_else(|| "  ".to_string())
}

/// Pretty JSON in `indent`, with a final newline.
pub fn render(value: &Value, indent: &str) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser).expect("a JSON value serialises");
    let mut text = String::from_utf8(out).expect("serde_json writes UTF-8");
    text.push('\n');
    text
}

/// Key names whose values are credentials: masked in diffs, which are printed.
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "token", "secret", "password", "passwd", "apikey", "api_key", "key",
    ]
    .iter()
    .any(|w| k.ends_with(w))
        || k.contains("token")
        || k.contains("secret")
        || k.contains("password")
}

/// The JSON string tokens of a line as byte ranges (quotes included); escapes respected.
fn string_tokens(line: &str) -> Vec<(usize, usize)> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            let start = i;
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            out.push((start, (i + 1).min(bytes.len())));
        }
        i += 1;
    }
    out
}

/// A line of JSON with the string value of every credential-like key masked, wherever the
/// pair sits on the line (pretty or inline objects alike).
fn redact_line(line: &str) -> String {
    let tokens = string_tokens(line);
    let mut out = String::new();
    let mut copied = 0;
    for pair in tokens.windows(2) {
        let ((ks, ke), (vs, ve)) = (pair[0], pair[1]);
        let between = &line[ke..vs];
        if between.trim() != ":" || ke < ks + 2 || !secret_key(&line[ks + 1..ke - 1]) {
            continue;
        }
        out.push_str(&line[copied..vs]);
        out.push_str("\"<redacted>\"");
        copied = ve;
    }
    out.push_str(&line[copied..]);
    out
}

/// A unified diff of two renderings, credential-like values masked.
pub fn diff(old: &str, new: &str, name: &str) -> String {
    let redact = |t: &str| t.lines().map(redact_line).collect::<Vec<_>>().join("\n") + "\n";
    let (old, new) = (redact(old), redact(new));
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}
