//! The secrets file and the names that refer to it (rules 5 and 6). The file is read only after
//! it is known to be safe to read (owned by the user, not open to others, outside every bind
//! source); `secretEnv` names must exist in it, and no plain `env` value may equal a secret
//! value (such a problem shows the name, never the value).

use std::collections::HashSet;
use std::path::Path;

use super::super::expand::real_path;
use super::super::raw::{RawSandbox, RawSecretEnv};
use super::super::{ErrorCode, LoadContext};
use super::binds::Resolved;
use super::{suggest, Report};
use crate::error::Coded;
use crate::secrets::{self, SecretMap};
use secrecy::ExposeSecret;

/// Rule 5: checks (ownership, modes, outside every bind) and only then reads.
pub(super) fn read_secrets(
    r: &mut Report,
    file: &Path,
    raw_value: &str,
    path: &Path,
    binds: &[Resolved],
    ctx: &LoadContext,
) -> Option<SecretMap> {
    let real = real_path(path).0;
    let mut safe = true;
    for b in binds {
        if real.starts_with(&b.bind.source) || path.starts_with(&b.lexical) {
            r.add(
                ErrorCode::SecretsInsecure,
                file,
                "secrets.file",
                raw_value,
                format!(
                    "the secrets file is inside bind source {} ({}{} in {}); the sandbox could read it",
                    b.bind.source.display(),
                    b.origin.field,
                    ".source",
                    b.origin.file.display()
                ),
            );
            safe = false;
        }
    }
    if let Err(e) = secrets::check_file(path, ctx.uid) {
        report_secrets_error(r, file, raw_value, &e);
        safe = false;
    }
    if !safe {
        return None;
    }
    secrets::read(path, ctx.uid)
        .map_err(|e| report_secrets_error(r, file, raw_value, &e))
        .ok()
}

fn report_secrets_error(r: &mut Report, file: &Path, raw_value: &str, e: &secrets::SecretsError) {
    let e_text = crate::report::chain(e);
    let message = match e.hint() {
        Some(hint) => format!("{e_text} (fix: {hint})"),
        None => e_text,
    };
    r.add(e.code(), file, "secrets.file", raw_value, message);
}

/// Rule 6: `secretEnv` names exist; no plain `env` value is a secret value.
pub(super) fn check_secret_env(
    r: &mut Report,
    file: &Path,
    index: usize,
    raw: &RawSandbox,
    declared: bool,
    secrets: Option<(&SecretMap, &HashSet<&str>)>,
) {
    let prefix = format!("sandboxes[{index}]");
    if !raw.secret_env.is_empty() && !declared {
        r.invalid(
            file,
            format!("{prefix}.secretEnv"),
            raw.secret_names().join(","),
            "secretEnv needs a secrets file: set secrets.file",
        );
    }
    for (j, entry) in raw.secret_env.iter().enumerate() {
        let name = entry.name();
        if raw.env.contains_key(name) {
            r.invalid(
                file,
                format!("{prefix}.env.{name}"),
                name,
                "a name cannot be both a plain env and a secretEnv entry",
            );
        }
        if let Some((map, _)) = secrets {
            if !map.contains(name) {
                let hint = if r.may_suggest() {
                    let keys: Vec<&str> = map.keys().collect();
                    suggest(name, &keys)
                } else {
                    String::new()
                };
                r.invalid(
                    file,
                    secret_field(&prefix, j, entry),
                    name,
                    format!("not in the secrets file{hint}"),
                );
            } else if let (RawSecretEnv::Brokered(_), Some(value)) = (entry, map.get(name)) {
                let random = crate::broker::random_chars(value.expose_secret());
                if random < crate::broker::MIN_RANDOM_CHARS {
                    r.invalid(
                        file,
                        secret_field(&prefix, j, entry),
                        name,
                        format!(
                            "the value is too short to broker: its sentinel would have {random} \
                             random characters, at least {} are needed so it cannot match \
                             by accident",
                            crate::broker::MIN_RANDOM_CHARS
                        ),
                    );
                }
            }
        }
    }
    if let Some((_, values)) = secrets {
        for (key, value) in &raw.env {
            if values.contains(value.0.as_str()) {
                r.add(
                    ErrorCode::SecretsInsecure,
                    file,
                    format!("{prefix}.env.{key}"),
                    "(redacted)",
                    format!(
                        "the value of env `{key}` is a secret from the secrets file; \
                         list its name under secretEnv instead"
                    ),
                );
            }
        }
    }
}

/// The field of `secretEnv[j]`: the entry, or its `name` when it is brokered.
fn secret_field(prefix: &str, j: usize, entry: &RawSecretEnv) -> String {
    match entry {
        RawSecretEnv::Name(_) => format!("{prefix}.secretEnv[{j}]"),
        RawSecretEnv::Brokered(_) => format!("{prefix}.secretEnv[{j}].name"),
    }
}
