//! harden's own pre-harden copy: every file a harden run changes, moves or removes, copied as
//! it was before the *first* harden, and the list of files harden created (with the hash of
//! what it wrote), so that `--undo` restores exactly the pre-harden files and removes only
//! what is still harden's.
//!
//! It lives in the secrets directory (0700; its files 0600), because the copy of
//! `openclaw.json` holds the plaintext credentials harden moved out; no bind may expose that
//! directory. OpenClaw's own `openclaw.json.bak*` rotate on every write of the config and are
//! never used for this.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{OpenclawError, Paths, Step};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Index {
    pub version: u32,
    /// Files that existed before harden and were changed, moved or removed by it.
    pub restore: Vec<Restore>,
    /// Files harden created, with the hash of what it wrote.
    pub created: Vec<Created>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Restore {
    pub path: PathBuf,
    /// The copy's file name inside the pre-harden directory.
    pub backup: String,
    pub mode: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Created {
    pub path: PathBuf,
    pub sha256: String,
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The index of an earlier harden, if there is one.
pub fn read_index(p: &Paths) -> Result<Option<Index>, OpenclawError> {
    let Some(bytes) = super::read(&p.index)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| OpenclawError::ConfigParse {
            file: p.index.clone(),
            line: e.line(),
            column: e.column(),
            message: "not a pre-harden index".into(),
        })
}

/// Appends to `out` the steps that copy what `steps` will change (only files the copy does
/// not hold yet: the first harden's copy is the pristine one), then `steps`, then the index.
pub fn steps(p: &Paths, steps: &[Step], out: &mut Vec<Step>) -> Result<(), OpenclawError> {
    let before = read_index(p)?;
    let had_index = before.is_some();
    let mut index = before.unwrap_or(Index {
        version: 1,
        ..Index::default()
    });
    let mut copies: Vec<Step> = Vec::new();
    let mut restore = |path: &Path, content: &[u8], mode: u32, index: &mut Index| {
        if index.restore.iter().any(|r| r.path == path)
            || index.created.iter().any(|c| c.path == path)
        {
            return;
        }
        let backup = format!("{}-{}", index.restore.len() + 1, file_name(path));
        copies.push(Step::Write {
            path: p.pre_harden.join(&backup),
            content: content.to_vec(),
            mode: 0o600,
            previous: None,
        });
        index.restore.push(Restore {
            path: path.to_path_buf(),
            backup,
            mode,
        });
    };
    let created = |path: &Path, content: &[u8], index: &mut Index| {
        let hash = sha256(content);
        match index.created.iter_mut().find(|c| c.path == path) {
            Some(c) => c.sha256 = hash,
            None => index.created.push(Created {
                path: path.to_path_buf(),
                sha256: hash,
            }),
        }
    };
    for step in steps {
        match step {
            Step::Write {
                path,
                content,
                previous: Some((before, mode)),
                ..
            } => {
                restore(path, before, *mode, &mut index);
                if index.created.iter().any(|c| c.path == *path) {
                    created(path, content, &mut index);
                }
            }
            Step::Write {
                path,
                content,
                previous: None,
                ..
            } => created(path, content, &mut index),
            Step::Move {
                from,
                to,
                mode_before,
                ..
            } => {
                let content = super::read(from)?.unwrap_or_default();
                restore(from, &content, *mode_before, &mut index);
                created(to, &content, &mut index);
            }
            Step::Remove {
                path,
                content,
                mode,
            } => restore(path, content, *mode, &mut index),
            Step::Chmod { .. } | Step::CreateDir { .. } | Step::RemoveDir { .. } => {}
        }
    }
    if !had_index {
        super::create_dirs(&p.pre_harden, 0o700, 0o700, out);
    }
    out.extend(copies);
    out.extend(steps.iter().cloned());
    let text = serde_json::to_vec_pretty(&index).expect("the index serialises");
    out.push(Step::Write {
        path: p.index.clone(),
        previous: super::read(&p.index)?.map(|b| (b, 0o600)),
        content: text,
        mode: 0o600,
    });
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().trim_start_matches('.').to_string())
        .unwrap_or_else(|| "file".into())
}
