//! The secret inventory of an OpenClaw home: every credential the install holds, whatever file
//! it is in, so that `verify` can search a sandbox for all of them and `harden` can move the
//! ones OpenClaw lets it reference.
//!
//! Measured on `openclaw@2026.9.6` (docs/openclaw.md): `openclaw onboard` writes the gateway
//! token and the model provider's API key in plaintext into `openclaw.json`; OpenClaw's own
//! rotating backups (`openclaw.json.bak`, `.bak.N`) keep the old plaintext; the env file is
//! `.env` (and `~/.config/openclaw/gateway.env` as a fallback); generated per-agent
//! `agents/*/agent/models.json` files may repeat provider keys; channel, device and identity
//! material lives under `credentials/`, `identity/` and `devices/`; `*.key` files at the top
//! hold raw keys.
//!
//! The classification of `openclaw.json` fields and file contents is pure (tested on recorded
//! files); [`collect`] is the thin reader. Values exist in memory only, as `SecretString`s:
//! nothing here prints, logs or stores one, and every report names the file and the field.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde_json::Value;

use crate::secrets::SecretMap;

/// A secret shorter than this is not worth an entry: it would match everywhere (ports, flags).
pub const MIN_VALUE_LEN: usize = 8;

/// A file larger than this is not read for secrets (it is still never mounted).
const MAX_FILE_BYTES: u64 = 4 << 20;

/// The most files the credential trees are walked for; more is reported, not silently cut.
const MAX_FILES: usize = 10_000;

/// At most this many values are taken from one non-JSON file (one per long token).
const MAX_TOKENS_PER_FILE: usize = 64;

/// Directories under the state directory whose every file is credential material.
pub const CREDENTIAL_DIRS: &[&str] = &["credentials", "identity", "devices"];

/// Files and directories under the state directory that hold secrets and must never be
/// mounted into a sandbox, not even read-only or through a parent (bind-set `deny`, harden).
pub const NEVER_MOUNTED: &[&str] = &[
    "openclaw.json",
    ".env",
    "credentials",
    "identity",
    "devices",
    "state",
    "agents",
    "secrets.env",
    "config-journal-fingerprint.key",
];

/// One secret: where it is and what it is called; the value is in memory only.
pub struct Item {
    /// The file it was found in.
    pub file: PathBuf,
    /// The field (`gateway.auth.token`), env key, or file-relative name.
    pub field: String,
    pub value: SecretString,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Item")
            .field("file", &self.file)
            .field("field", &self.field)
            .finish_non_exhaustive()
    }
}

/// Every secret found, and what could not be read (never containing a value).
#[derive(Debug, Default)]
pub struct Inventory {
    pub items: Vec<Item>,
    /// Files that could not be read or were over a bound; a search that relies on the
    /// inventory is incomplete while this is not empty.
    pub problems: Vec<String>,
}

impl Inventory {
    /// The inventory as a map from a key naming the file and field to the value. Equal
    /// values found in several places keep one key (the first), so a leak is reported once.
    pub fn to_secret_map(&self, state_dir: &Path) -> SecretMap {
        let mut map = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for item in &self.items {
            use secrecy::ExposeSecret;
            if !seen.insert(item.value.expose_secret().to_string()) {
                continue;
            }
            let file = item
                .file
                .strip_prefix(state_dir)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| item.file.display().to_string());
            map.insert(format!("{file}:{}", item.field), item.value.clone());
        }
        SecretMap::from_map(map)
    }
}

/// Key names whose string values are credentials (lowercase comparison). OpenClaw's
/// SecretRef credential surface (docs/reference/secretref-credential-surface.md in the
/// package) names its fields `apiKey`, `token`, `botToken`, `appToken`, `userToken`,
/// `accessToken`, `authToken`, `password`, `appPassword`, `apiPassword`, `secret`,
/// `appSecret`, `clientSecret`, `signingSecret`, `webhookSecret`, `botSecret`, `privateKey`,
/// `encryptKey`, `verificationToken`, `authTag`, `passphrase`, `serviceAccount`, `key`;
/// the rule below covers each of them and the unsupported ones (`hooks.token`, `pushToken`).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "apikey",
        "api_key",
        "privatekey",
        "private_key",
        "encryptkey",
        "authtag",
        "serviceaccount",
        "credential",
    ];
    WORDS.iter().any(|w| k.contains(w)) || k == "key" || k.ends_with("_key") || k == "auth"
}

/// Keys whose names contain a secret word but whose values are settings, not secrets.
fn is_setting_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("mode")
        || k.ends_with("enabled")
        || k.ends_with("file")
        || k.ends_with("path")
        || k.ends_with("ref")
        || k.ends_with("env")
        || k.ends_with("provider")
        || k.ends_with("url")
        || k.ends_with("ttl")
        || k.ends_with("ms")
        || k.ends_with("seconds")
}

/// A value that is a reference to a secret, not a secret: `${VAR}`, `$VAR`, or an object of
/// the SecretRef shape `{source, id}`.
pub fn is_reference(value: &Value) -> bool {
    match value {
        Value::String(s) => {
            let s = s.trim();
            let name = s
                .strip_prefix("${")
                .and_then(|r| r.strip_suffix('}'))
                .or_else(|| s.strip_prefix('$'));
            name.is_some_and(|n| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        }
        Value::Object(m) => m.contains_key("source") && m.contains_key("id"),
        _ => false,
    }
}

/// Every plaintext secret of a parsed `openclaw.json` (or a backup of it, or a generated
/// `models.json`), as `(dotted field path, value)`. A string is a secret when its key says
/// credential (or it sits under such a key, as in `headers.*` of a provider) and it is not a
/// reference; headers are all taken, since OpenClaw lets any of them carry a credential.
pub fn config_secrets(config: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(config, &mut String::new(), false, &mut out);
    out
}

fn walk(value: &Value, path: &mut String, secret_parent: bool, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            if is_reference(value) {
                return;
            }
            for (k, v) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let secret = !is_setting_key(k)
                    && (is_secret_key(k) || secret_parent || k.eq_ignore_ascii_case("headers"));
                walk(v, path, secret, out);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(v, path, secret_parent, out);
                path.truncate(len);
            }
        }
        Value::String(s)
            if secret_parent && !is_reference(value) && s.trim().len() >= MIN_VALUE_LEN =>
        {
            out.push((path.clone(), s.clone()));
        }
        _ => {}
    }
}

/// Every `KEY=VALUE` of an env file whose value is long enough to be a secret. The whole file
/// counts: OpenClaw recommends it for provider keys, and a value that is not a secret costs a
/// needle, while a missed secret costs the key.
pub fn dotenv_secrets(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
            .unwrap_or(v);
        if v.len() >= MIN_VALUE_LEN && !is_reference(&Value::from(v)) {
            out.push((k.trim().to_string(), v.to_string()));
        }
    }
    out
}

/// The secrets of a file under a credential directory: every string leaf of a JSON document
/// (all of it is credential material), or every long whitespace-free token of a text file
/// (PEM bodies, bare tokens). Binary content is taken whole, hex-encoded.
pub fn credential_file_secrets(bytes: &[u8]) -> Vec<(String, String)> {
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        let mut out = Vec::new();
        walk(&value, &mut String::new(), true, &mut out);
        return out;
    }
    let text = std::str::from_utf8(bytes)
        .ok()
        .filter(|t| !t.chars().any(|c| c.is_control() && !c.is_whitespace()));
    match text {
        Some(text) => text
            .split_whitespace()
            .filter(|t| t.len() >= 16 && !t.starts_with("-----"))
            .take(MAX_TOKENS_PER_FILE)
            .enumerate()
            .map(|(i, t)| (format!("token[{i}]"), t.to_string()))
            .collect(),
        None if bytes.len() >= MIN_VALUE_LEN / 2 => {
            vec![("bytes(hex)".to_string(), hex::encode(bytes))]
        }
        None => Vec::new(),
    }
}

/// Parses `openclaw.json` as OpenClaw does: JSON5 (comments, trailing commas, unquoted keys).
pub fn parse_json5(text: &str) -> Result<Value, String> {
    super::config::parse(text, Path::new("")).map_err(|e| e.to_string())
}

/// A regular file's bytes (no symlink followed out of the tree, no FIFO opened), bounded.
fn read_bounded(path: &Path, problems: &mut Vec<String>) -> Option<Vec<u8>> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    if meta.len() > MAX_FILE_BYTES {
        problems.push(format!(
            "{}: larger than {} MiB, not searched for secrets",
            path.display(),
            MAX_FILE_BYTES >> 20
        ));
        return None;
    }
    let mut bytes = Vec::new();
    match fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES).read_to_end(&mut bytes)) {
        Ok(_) => Some(bytes),
        Err(e) => {
            problems.push(format!("{}: {e}", path.display()));
            None
        }
    }
}

/// Regular files below `dir` (symlinks not followed), at most `budget` of them.
fn files_below(dir: &Path, budget: &mut usize, problems: &mut Vec<String>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                if *budget == 0 {
                    problems.push(format!(
                        "{}: more than {MAX_FILES} files, the rest not searched",
                        dir.display()
                    ));
                    return out;
                }
                *budget -= 1;
                out.push(e.path());
            }
        }
    }
    out
}

/// Files whose name matches `openclaw.json.bak`, `openclaw.json.bak.N`, or harden's own
/// pre-harden copy: old plaintext lives on in them.
fn config_copies(state_dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(state_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("openclaw.json.") && n != "openclaw.json.tmp")
        })
        .collect();
    out.sort();
    out
}

/// The files of the config's `file` secrets providers (`secrets.providers.<alias>` with
/// `source: "file"`): the credentials referenced from the config live there. `~` resolves
/// against the parent of the state directory (the home it normally sits in).
pub fn file_provider_paths(config: &Value, state_dir: &Path) -> Vec<PathBuf> {
    let home = state_dir.parent().unwrap_or(Path::new("/"));
    config
        .pointer("/secrets/providers")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|p| p.get("source").and_then(Value::as_str) == Some("file"))
        .filter_map(|p| p.get("path").and_then(Value::as_str))
        .map(|p| match p.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => PathBuf::from(p),
        })
        .collect()
}

/// Every path of the OpenClaw home `state_dir` that holds or may hold a secret: what no bind
/// may expose (manifest rule 3) and what `verify` expects to be absent inside a sandbox.
pub fn secret_paths(state_dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = NEVER_MOUNTED.iter().map(|n| state_dir.join(n)).collect();
    out.extend(config_copies(state_dir));
    for entry in fs::read_dir(state_dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "key") && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Reads the inventory of the OpenClaw home `state_dir` (and `extra` files: the moved
/// secrets files, `~/.config/openclaw/gateway.env`). Missing files are not problems: a fresh
/// home has few of them.
pub fn collect(state_dir: &Path, extra: &[PathBuf]) -> Inventory {
    let mut inv = Inventory::default();
    let push = |inv: &mut Inventory, file: &Path, found: Vec<(String, String)>| {
        for (field, value) in found {
            inv.items.push(Item {
                file: file.to_path_buf(),
                field,
                value: SecretString::from(value),
            });
        }
    };

    let mut configs = vec![state_dir.join("openclaw.json")];
    configs.extend(config_copies(state_dir));
    let mut budget = MAX_FILES;
    for agent in fs::read_dir(state_dir.join("agents"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for name in ["models.json", "auth-profiles.json", "auth.json"] {
            configs.push(agent.path().join("agent").join(name));
        }
    }
    let mut provider_files = Vec::new();
    for path in configs {
        let Some(bytes) = read_bounded(&path, &mut inv.problems) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        match parse_json5(&text) {
            Ok(v) => {
                provider_files.extend(file_provider_paths(&v, state_dir));
                push(&mut inv, &path, config_secrets(&v))
            }
            Err(e) => inv
                .problems
                .push(format!("{}: not JSON5 ({e}); not searched", path.display())),
        }
    }

    // OpenClaw's fallback env file on systemd installs, beside the state directory's home.
    let mut env_files = vec![state_dir.join(".env")];
    if let Some(home) = state_dir.parent() {
        env_files.push(home.join(".config/openclaw/gateway.env"));
    }
    let mut other = Vec::new();
    for path in extra {
        let is_env = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".env"));
        if is_env {
            env_files.push(path.clone());
        } else {
            other.push(path.clone());
        }
    }
    for path in env_files {
        if let Some(bytes) = read_bounded(&path, &mut inv.problems) {
            push(
                &mut inv,
                &path,
                dotenv_secrets(&String::from_utf8_lossy(&bytes)),
            );
        }
    }

    let mut credential_files = other;
    for p in provider_files {
        if !credential_files.contains(&p) {
            credential_files.push(p);
        }
    }
    for dir in CREDENTIAL_DIRS {
        credential_files.extend(files_below(
            &state_dir.join(dir),
            &mut budget,
            &mut inv.problems,
        ));
    }
    for entry in fs::read_dir(state_dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "key") {
            credential_files.push(p);
        }
    }
    for path in credential_files {
        if let Some(bytes) = read_bounded(&path, &mut inv.problems) {
            push(&mut inv, &path, credential_file_secrets(&bytes));
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(found: &[(String, String)]) -> Vec<&str> {
        found.iter().map(|(f, _)| f.as_str()).collect()
    }

    /// `openclaw onboard` of 2026.9.6, recorded (values replaced by test values of the
    /// same shape; structure as written by the package).
    const ONBOARDED: &str = include_str!("testdata/onboarded.json");

    #[test]
    fn an_onboarded_config_yields_the_gateway_token_and_the_provider_key() {
        let v = parse_json5(ONBOARDED).unwrap();
        let found = config_secrets(&v);
        assert_eq!(
            fields(&found),
            [
                "gateway.auth.token",
                "models.providers.custom-127-0-0-1-18999.apiKey"
            ]
        );
    }

    #[test]
    fn references_are_not_secrets_and_settings_with_secret_words_are_skipped() {
        let v = parse_json5(
            r#"{
              // JSON5, as OpenClaw accepts it
              gateway: {auth: {mode: "token", token: {source: "file", provider: "p", id: "/t"}}},
              models: {providers: {a: {apiKey: "${OPENAI_API_KEY}", headers: {"X-Auth": "hdr-secret-123"}}}},
              channels: {telegram: {botToken: "123456:AAAAbbbbCCCC", tokenFile: "/x/y"}},
              hooks: {token: "$HOOK"},
              agents: {entries: {main: {memory: {search: {remote: {apiKey: "mem-key-123456"}}}}}},
            }"#,
        )
        .unwrap();
        assert_eq!(
            fields(&config_secrets(&v)),
            [
                "models.providers.a.headers.X-Auth",
                "channels.telegram.botToken",
                "agents.entries.main.memory.search.remote.apiKey"
            ]
        );
    }

    #[test]
    fn short_values_are_not_inventoried() {
        let v = parse_json5(r#"{"auth": {"password": "abc"}}"#).unwrap();
        assert!(config_secrets(&v).is_empty());
    }

    #[test]
    fn env_files_yield_every_long_value() {
        let found = dotenv_secrets(
            "# keys\nOPENAI_API_KEY=sk-proj-0123456789\nexport B=\"quoted-value-1\"\nPORT=1\nREF=${OPENAI_API_KEY}\n",
        );
        assert_eq!(
            found,
            [
                (
                    "OPENAI_API_KEY".to_string(),
                    "sk-proj-0123456789".to_string()
                ),
                ("B".to_string(), "quoted-value-1".to_string())
            ]
        );
    }

    #[test]
    fn credential_files_yield_json_leaves_pem_bodies_and_raw_bytes() {
        let json = credential_file_secrets(br#"{"token": "abcdefgh12345678", "n": 1}"#);
        assert_eq!(fields(&json), ["token"]);
        let pem = credential_file_secrets(
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ0lq8Yv\n-----END PRIVATE KEY-----\n",
        );
        assert_eq!(pem.len(), 1);
        assert_eq!(pem[0].1, "MC4CAQAwBQYDK2VwBCIEIJ0lq8Yv");
        let raw = credential_file_secrets(&[0xa3, 0x76, 0x07, 0x2c, 0xd5, 0x58, 0xa5, 0x19]);
        assert_eq!(raw[0].1, "a376072cd558a519");
    }

    #[test]
    fn a_home_is_collected_with_backups_env_agents_and_credential_trees() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path();
        fs::write(s.join("openclaw.json"), ONBOARDED).unwrap();
        fs::write(
            s.join("openclaw.json.bak.1"),
            r#"{"gateway": {"auth": {"token": "older-token-1234567"}}}"#,
        )
        .unwrap();
        fs::write(s.join(".env"), "ANTHROPIC_API_KEY=sk-ant-0123456789\n").unwrap();
        fs::create_dir_all(s.join("agents/main/agent")).unwrap();
        fs::write(
            s.join("agents/main/agent/models.json"),
            r#"{"providers": {"x": {"apiKey": "models-json-key-1"}}}"#,
        )
        .unwrap();
        fs::create_dir_all(s.join("credentials/telegram")).unwrap();
        fs::write(
            s.join("credentials/telegram/default.json"),
            r#"{"botToken": "1234:telegram-token"}"#,
        )
        .unwrap();
        fs::write(s.join("config-journal-fingerprint.key"), [7u8; 32]).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", s.join("credentials/link")).unwrap();

        let inv = collect(s, &[]);
        let map = inv.to_secret_map(s);
        let keys: Vec<&str> = map.keys().collect();
        assert_eq!(
            keys,
            [
                ".env:ANTHROPIC_API_KEY",
                "agents/main/agent/models.json:providers.x.apiKey",
                "config-journal-fingerprint.key:bytes(hex)",
                "credentials/telegram/default.json:botToken",
                "openclaw.json.bak.1:gateway.auth.token",
                "openclaw.json:gateway.auth.token",
                "openclaw.json:models.providers.custom-127-0-0-1-18999.apiKey",
            ]
        );
        assert!(inv.problems.is_empty(), "{:?}", inv.problems);
        let debug = format!("{inv:?} {map:?}");
        assert!(!debug.contains("telegram-token"), "{debug}");
    }
}
