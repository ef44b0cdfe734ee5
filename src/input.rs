//! Bounded reads of the files a user hands in: manifests, bind sets, seccomp profiles and the
//! secrets file.
//!
//! Owns one rule for all of them: the path must name a regular file of at most
//! [`MAX_INPUT_BYTES`], and what is read is never more than that. It must not parse: each
//! caller parses what it reads and reports its own problems.
//!
//! The file is opened non-blocking, so a FIFO given as input is refused at once instead of
//! waiting forever for a writer; the type and size are read from the opened descriptor, so a
//! file swapped between the check and the read is still the one checked; and the read itself is
//! capped, so a file that grows while read (or a `/proc` file that reports size 0) cannot make
//! it unbounded.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use crate::error::{Coded, ErrorCode};

/// The largest input file accepted: far above any real manifest, bind set, profile or secrets
/// file (the generated `default` seccomp profile is about 40 KiB), far below what would strain
/// memory or the parsers.
pub const MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {kind}, not a regular file")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{path} is larger than {}, the limit for input files", cap_text(*cap))]
    TooLarge { path: PathBuf, cap: u64 },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The offset, never the bytes: the file may be the secrets file.
    #[error("{path} is not UTF-8 text (invalid byte at offset {offset})")]
    NotText { path: PathBuf, offset: usize },
}

impl InputError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            InputError::Open { path, .. }
            | InputError::NotAFile { path, .. }
            | InputError::TooLarge { path, .. }
            | InputError::Read { path, .. }
            | InputError::NotText { path, .. } => path,
        }
    }
}

impl Coded for InputError {
    fn code(&self) -> ErrorCode {
        ErrorCode::ConfigInvalid
    }

    fn hint(&self) -> Option<String> {
        match self {
            InputError::NotAFile { .. } => Some(
                "give the path of a regular file; FIFOs, devices and directories are not read"
                    .into(),
            ),
            InputError::TooLarge { cap, .. } => Some(format!(
                "input files are limited to {}; check that the path names the intended file",
                cap_text(*cap)
            )),
            InputError::NotText { .. } => Some("save the file as UTF-8 text".into()),
            InputError::Open { .. } | InputError::Read { .. } => None,
        }
    }
}

fn cap_text(cap: u64) -> String {
    if cap % (1024 * 1024) == 0 {
        format!("{} MiB", cap / (1024 * 1024))
    } else {
        format!("{cap} bytes")
    }
}

/// What kind of non-regular file a type is, for the error.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Reads `path` as UTF-8 text of at most [`MAX_INPUT_BYTES`].
pub fn read_to_string(path: &Path) -> Result<String, InputError> {
    read_to_string_capped(path, MAX_INPUT_BYTES)
}

/// [`read_to_string`] with another cap (tests use a small one).
pub fn read_to_string_capped(path: &Path, cap: u64) -> Result<String, InputError> {
    let bytes = read_capped(path, cap)?;
    String::from_utf8(bytes).map_err(|e| InputError::NotText {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// The bytes of `path`, a regular file of at most `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. O_NOCTTY: a
    // terminal given as input must not become the controlling terminal. Neither changes how a
    // regular file is read.
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
        .map_err(|source| InputError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| InputError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(InputError::NotAFile {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    let too_large = || InputError::TooLarge {
        path: path.to_path_buf(),
        cap,
    };
    if meta.len() > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_regular_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.yaml");
        std::fs::write(&p, "kind: Fortress\n").unwrap();
        assert_eq!(read_to_string(&p).unwrap(), "kind: Fortress\n");
    }

    #[test]
    fn a_file_at_the_cap_is_read_and_one_byte_more_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![b'a'; 100]).unwrap();
        assert_eq!(read_capped(&p, 100).unwrap().len(), 100);
        let e = read_capped(&p, 99).unwrap_err();
        assert!(matches!(e, InputError::TooLarge { cap: 99, .. }), "{e:?}");
        assert!(e.to_string().contains("99 bytes"), "{e}");
    }

    #[test]
    fn a_sparse_file_past_the_cap_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        File::create(&p).unwrap().set_len(1 << 30).unwrap();
        let e = read_to_string(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} is larger than 4 MiB, the limit for input files",
                p.display()
            )
        );
        assert_eq!(e.code(), ErrorCode::ConfigInvalid);
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_by_type() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for (path, kind) in [
            (Path::new("/dev/zero"), "a character device"),
            (fifo.as_path(), "a FIFO"),
            (dir.path(), "a directory"),
        ] {
            match read_to_string(path) {
                Err(InputError::NotAFile { kind: k, .. }) => assert_eq!(k, kind, "{path:?}"),
                other => panic!("{path:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_utf8_names_the_offset_not_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin");
        std::fs::write(&p, b"KEY=ok\n\xff\xfe").unwrap();
        let e = read_to_string(&p).unwrap_err();
        assert!(matches!(e, InputError::NotText { offset: 7, .. }), "{e:?}");
    }

    #[test]
    fn a_missing_file_is_an_open_error_naming_it() {
        let e = read_to_string(Path::new("/nonexistent/fortress.yaml")).unwrap_err();
        assert!(matches!(e, InputError::Open { .. }));
        assert_eq!(e.path(), Path::new("/nonexistent/fortress.yaml"));
    }
}
