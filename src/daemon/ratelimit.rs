//! Rate limits repeated identical warnings, so an engine outage does not log the same line
//! every second (the tick job fails each second while the engine is away).
//!
//! The first occurrence of a warning is logged; identical ones (same scope, same text) within
//! its quiet window are counted and dropped; the next one after the window is logged with how
//! many were suppressed, and the window doubles (1 min, 2 min, ... at most 30 min) while the
//! warning keeps repeating. When the condition clears, the caller asks [`Warnings::cleared`]
//! and logs the suppressed count once. A warning not seen for the longest window starts over.
//!
//! [`RateLimit`] is the pure core (the clock is a parameter, in ms); [`Warnings`] is the shell
//! the daemon's call sites use, on tokio's monotonic clock. It must not log itself: each call
//! site keeps its own fields and wording.

use std::collections::HashMap;
use std::time::Duration;

/// What to do with one occurrence of a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` identical ones were dropped since it was last logged.
    Log { suppressed: u64 },
    /// Drop it (counted).
    Quiet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Logged occurrences are dropped until this time.
    quiet_until_ms: u64,
    window_ms: u64,
    suppressed: u64,
    last_seen_ms: u64,
}

/// Per-warning windows. Pure: every method takes the time.
#[derive(Debug, Clone)]
pub struct RateLimit {
    initial_ms: u64,
    max_ms: u64,
    /// Distinct warnings remembered; past it the least recently seen is forgotten (warning
    /// texts can name containers, and anyone with engine access can create those).
    capacity: usize,
    entries: HashMap<(String, String), Entry>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RateLimit {
    pub fn new(initial: Duration, max: Duration, capacity: usize) -> RateLimit {
        RateLimit {
            initial_ms: ms(initial).max(1),
            max_ms: ms(max).max(ms(initial)),
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    /// The daemon's policy: quiet for 1 min after the first, doubling to 30 min; 256 warnings.
    pub fn warnings() -> RateLimit {
        RateLimit::new(Duration::from_secs(60), Duration::from_secs(30 * 60), 256)
    }

    /// One occurrence of warning `text` in `scope` at `now_ms`.
    pub fn check(&mut self, scope: &str, text: &str, now_ms: u64) -> Verdict {
        let key = (scope.to_string(), text.to_string());
        if let Some(e) = self.entries.get_mut(&key) {
            let stale = now_ms.saturating_sub(e.last_seen_ms) >= self.max_ms;
            e.last_seen_ms = now_ms;
            if !stale && now_ms < e.quiet_until_ms {
                e.suppressed += 1;
                return Verdict::Quiet;
            }
            let suppressed = std::mem::take(&mut e.suppressed);
            e.window_ms = if stale {
                self.initial_ms
            } else {
                e.window_ms.saturating_mul(2).min(self.max_ms)
            };
            e.quiet_until_ms = now_ms.saturating_add(e.window_ms);
            return Verdict::Log { suppressed };
        }
        if self.entries.len() >= self.capacity {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_seen_ms)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            key,
            Entry {
                quiet_until_ms: now_ms.saturating_add(self.initial_ms),
                window_ms: self.initial_ms,
                suppressed: 0,
                last_seen_ms: now_ms,
            },
        );
        Verdict::Log { suppressed: 0 }
    }

    /// The condition behind `scope`'s warnings cleared: forgets them (the next one is logged
    /// at once) and returns how many were suppressed since each was last logged.
    pub fn clear(&mut self, scope: &str) -> u64 {
        let mut n = 0;
        self.entries.retain(|(s, _), e| {
            if s == scope {
                n += e.suppressed;
                false
            } else {
                true
            }
        });
        n
    }
}

/// [`RateLimit`] on tokio's monotonic clock, shared by the tasks of one call site.
#[derive(Debug)]
pub struct Warnings {
    core: parking_lot::Mutex<RateLimit>,
    epoch: tokio::time::Instant,
}

impl Default for Warnings {
    fn default() -> Self {
        Warnings::new(RateLimit::warnings())
    }
}

impl Warnings {
    pub fn new(core: RateLimit) -> Warnings {
        Warnings {
            core: parking_lot::Mutex::new(core),
            epoch: tokio::time::Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        ms(self.epoch.elapsed())
    }

    /// Whether to log warning `text` of `scope` now: `Some(note)` to log it with `note`
    /// appended (empty, or how many identical ones were suppressed), `None` to drop it.
    pub fn allow(&self, scope: &str, text: &str) -> Option<String> {
        match self.core.lock().check(scope, text, self.now_ms()) {
            Verdict::Quiet => None,
            Verdict::Log { suppressed: 0 } => Some(String::new()),
            Verdict::Log { suppressed } => Some(format!(
                " ({suppressed} similar warning(s) suppressed since it was last logged)"
            )),
        }
    }

    /// `scope`'s condition cleared: a note for the caller's recovery line when warnings were
    /// suppressed (`None` when there is nothing to say).
    pub fn cleared(&self, scope: &str) -> Option<String> {
        match self.core.lock().clear(scope) {
            0 => None,
            n => Some(format!("suppressed {n} similar warning(s) while it lasted")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;
    const MIN: u64 = 60 * S;

    fn limit() -> RateLimit {
        RateLimit::new(Duration::from_secs(60), Duration::from_secs(600), 3)
    }

    /// The times at which occurrences every `every` ms from 0 to `until` are logged.
    fn logged(r: &mut RateLimit, every: u64, until: u64) -> Vec<(u64, u64)> {
        (0..=until / every)
            .map(|i| i * every)
            .filter_map(|t| match r.check("job", "engine down", t) {
                Verdict::Log { suppressed } => Some((t / S, suppressed)),
                Verdict::Quiet => None,
            })
            .collect()
    }

    #[test]
    fn a_warning_every_second_is_logged_first_then_after_doubling_windows() {
        let mut r = limit();
        assert_eq!(
            logged(&mut r, S, 30 * MIN),
            [
                (0, 0),
                (60, 59),
                (180, 119),
                (420, 239),
                (900, 479),
                // The window stops growing at 10 min.
                (1500, 599),
            ]
        );
    }

    #[test]
    fn different_texts_and_scopes_have_windows_of_their_own() {
        let mut r = limit();
        assert_eq!(r.check("a", "x", 0), Verdict::Log { suppressed: 0 });
        assert_eq!(r.check("a", "y", S), Verdict::Log { suppressed: 0 });
        assert_eq!(r.check("b", "x", 2 * S), Verdict::Log { suppressed: 0 });
        assert_eq!(r.check("a", "x", 3 * S), Verdict::Quiet);
    }

    #[test]
    fn clearing_a_scope_reports_the_suppressed_count_and_starts_over() {
        let mut r = limit();
        r.check("engine", "down", 0);
        r.check("engine", "down", S);
        r.check("engine", "down", 2 * S);
        r.check("other", "x", 0);
        r.check("other", "x", S);
        assert_eq!(r.clear("engine"), 2);
        assert_eq!(r.clear("engine"), 0, "nothing left to report");
        // The next outage's first warning is logged at once.
        assert_eq!(
            r.check("engine", "down", 3 * S),
            Verdict::Log { suppressed: 0 }
        );
        assert_eq!(r.check("other", "x", 2 * S), Verdict::Quiet, "not cleared");
    }

    #[test]
    fn a_warning_quiet_for_the_longest_window_starts_over_from_the_first_window() {
        let mut r = limit();
        logged(&mut r, S, 10 * MIN);
        // Seen again long after: logged with what the last window held, and the next window
        // is the first one again.
        let t = 30 * MIN;
        assert_eq!(
            r.check("job", "engine down", t),
            Verdict::Log { suppressed: 180 }
        );
        assert_eq!(r.check("job", "engine down", t + 59 * S), Verdict::Quiet);
        assert_eq!(
            r.check("job", "engine down", t + 60 * S),
            Verdict::Log { suppressed: 1 }
        );
    }

    #[test]
    fn past_its_capacity_the_least_recently_seen_warning_is_forgotten() {
        let mut r = limit();
        for (i, text) in ["a", "b", "c"].into_iter().enumerate() {
            r.check("s", text, i as u64);
        }
        r.check("s", "a", 10);
        r.check("s", "d", 11);
        assert_eq!(r.entries.len(), 3);
        // `b` was forgotten: logged again at once; `a` is still quiet.
        assert_eq!(r.check("s", "b", 12), Verdict::Log { suppressed: 0 });
        assert_eq!(r.check("s", "a", 13), Verdict::Quiet);
    }

    #[test]
    fn the_shell_appends_the_suppressed_count_to_the_line_it_lets_through() {
        let quiet = Warnings::default();
        assert_eq!(quiet.allow("s", "x").as_deref(), Some(""));
        assert_eq!(quiet.allow("s", "x"), None);
        assert_eq!(
            quiet.cleared("s").as_deref(),
            Some("suppressed 1 similar warning(s) while it lasted")
        );
        assert_eq!(quiet.cleared("s"), None);
    }
}
