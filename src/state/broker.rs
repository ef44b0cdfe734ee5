//! The brokered secrets' seeds (`broker_seed`): one random seed per sandbox, from which exec
//! and the egress proxy derive the same sentinels (crate::broker). A seed is not a secret (it
//! yields the sentinel, which the sandbox holds anyway); the real values are never stored.

use rusqlite::{params, OptionalExtension};

use super::{now_ms, q, State, StateError};

pub(super) const MIGRATION: &str = "CREATE TABLE broker_seed (
            sandbox  TEXT PRIMARY KEY,
            seed     TEXT NOT NULL,
            ts_ms    INTEGER NOT NULL
        );";

/// 32 random bytes from the kernel, hex.
fn fresh_seed() -> Result<String, StateError> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|source| StateError::Random { source })?;
    Ok(hex::encode(b))
}

impl State {
    /// `sandbox`'s seed, drawn now when it has none yet.
    pub fn broker_seed(&self, sandbox: &str) -> Result<Vec<u8>, StateError> {
        let conn = self.connection();
        let found: Option<String> = conn
            .query_row(
                "SELECT seed FROM broker_seed WHERE sandbox = ?1",
                params![sandbox],
                |r| r.get(0),
            )
            .optional()
            .map_err(q("select broker_seed"))?;
        let seed = match found {
            Some(s) => s,
            None => {
                // Two processes drawing at once: the first insert wins and both read it.
                conn.execute(
                    "INSERT OR IGNORE INTO broker_seed (sandbox, seed, ts_ms) VALUES (?1, ?2, ?3)",
                    params![sandbox, fresh_seed()?, now_ms()],
                )
                .map_err(q("insert broker_seed"))?;
                conn.query_row(
                    "SELECT seed FROM broker_seed WHERE sandbox = ?1",
                    params![sandbox],
                    |r| r.get(0),
                )
                .map_err(q("select broker_seed"))?
            }
        };
        Ok(seed.into_bytes())
    }

    /// Draws a new seed for `sandbox`: every sentinel of it changes.
    pub fn rotate_broker_seed(&self, sandbox: &str) -> Result<(), StateError> {
        self.connection()
            .execute(
                "INSERT INTO broker_seed (sandbox, seed, ts_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(sandbox) DO UPDATE SET seed = excluded.seed, ts_ms = excluded.ts_ms",
                params![sandbox, fresh_seed()?, now_ms()],
            )
            .map_err(q("upsert broker_seed"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_is_stable_until_it_is_rotated() {
        let s = State::in_memory();
        let a = s.broker_seed("sbx").unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(s.broker_seed("sbx").unwrap(), a);
        assert_ne!(s.broker_seed("other").unwrap(), a);
        s.rotate_broker_seed("sbx").unwrap();
        let b = s.broker_seed("sbx").unwrap();
        assert_ne!(a, b);
        assert_eq!(s.broker_seed("sbx").unwrap(), b);
    }
}
