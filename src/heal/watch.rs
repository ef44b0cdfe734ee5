//! Telling a crash from a deliberate stop in the engine's event stream. Pure: events and the
//! clock come in, deaths that were crashes come out; no I/O.
//!
//! Event sequences measured on dockerd 20.10 (`docker events --filter type=container`):
//!
//! ```text
//! docker kill c          kill(signal=9)  die(exitCode=137)
//! process exits/crashes  die(exitCode=3)
//! docker stop c          kill(signal=15) [kill(signal=9) after the timeout] die stop
//! docker restart c       kill(15) [kill(9)] die stop start restart
//! docker rm -f c         kill(9) die destroy
//! ```
//!
//! So `die` comes first in every case, and only a deliberate stop (or restart, including our
//! own) is followed by `stop`; a removal is followed by `destroy`. `kill` does not tell them
//! apart (`docker kill -s TERM` looks like the first step of `docker stop`). The watch therefore
//! holds every `die` for a short window: a `stop` or `destroy` of the same container inside it
//! cancels it, otherwise it becomes a [`Death`] to heal. The window costs the crash path that
//! much latency; the engine emits `stop` within milliseconds of `die`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::{Event, EventKind};

/// How long a `die` waits for a `stop` before it counts as a crash.
pub const DEFAULT_STOP_WINDOW: Duration = Duration::from_secs(3);

/// A container that died and was not stopped on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    pub id: String,
    pub name: String,
    /// From the `die` event's `exitCode` attribute, when present.
    pub exit_code: Option<i64>,
    pub labels: BTreeMap<String, String>,
    /// Engine time of the `die`, Unix ms.
    pub at_ms: i64,
}

/// What one event meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A `die` now held for the window.
    Held,
    /// A `stop` of a container: a deliberate stop (record it).
    DeliberateStop {
        id: String,
        name: String,
        at_ms: i64,
    },
    /// Anything else.
    Other,
}

#[derive(Debug, Clone)]
struct Pending {
    death: Death,
    deadline_ms: i64,
}

/// Holds deaths for [`DEFAULT_STOP_WINDOW`] (or the given window) before calling them crashes.
#[derive(Debug, Clone)]
pub struct DeathWatch {
    window_ms: i64,
    pending: BTreeMap<String, Pending>,
}

impl Default for DeathWatch {
    fn default() -> Self {
        DeathWatch::new(DEFAULT_STOP_WINDOW)
    }
}

impl DeathWatch {
    pub fn new(window: Duration) -> Self {
        DeathWatch {
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            pending: BTreeMap::new(),
        }
    }

    /// Feeds one event seen at `now_ms` (the caller's clock).
    pub fn observe(&mut self, event: &Event, now_ms: i64) -> Seen {
        let at_ms = event.time_nano / 1_000_000;
        match event.kind {
            EventKind::Die => {
                let exit_code = event.labels.get("exitCode").and_then(|c| c.parse().ok());
                let mut labels = event.labels.clone();
                labels.remove("exitCode");
                self.pending.insert(
                    event.id.clone(),
                    Pending {
                        death: Death {
                            id: event.id.clone(),
                            name: event.name.clone(),
                            exit_code,
                            labels,
                            at_ms,
                        },
                        deadline_ms: now_ms.saturating_add(self.window_ms),
                    },
                );
                Seen::Held
            }
            EventKind::Stop => {
                self.pending.remove(&event.id);
                Seen::DeliberateStop {
                    id: event.id.clone(),
                    name: event.name.clone(),
                    at_ms,
                }
            }
            EventKind::Destroy => {
                self.pending.remove(&event.id);
                Seen::Other
            }
            _ => Seen::Other,
        }
    }

    /// The deaths whose window has passed at `now_ms`: crashes. Removes them.
    pub fn due(&mut self, now_ms: i64) -> Vec<Death> {
        let ids: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| self.pending.remove(&id))
            .map(|p| p.death)
            .collect()
    }

    /// When the next held death becomes due (for the daemon's timer).
    pub fn next_deadline(&self) -> Option<i64> {
        self.pending.values().map(|p| p.deadline_ms).min()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, id: &str, ms: i64, attrs: &[(&str, &str)]) -> Event {
        Event {
            kind,
            id: id.into(),
            name: format!("n-{id}"),
            labels: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time_nano: ms * 1_000_000,
        }
    }

    /// Feeds `(kind, id, ms)` at their own times, then asks at `at` which deaths are crashes.
    fn crashes(events: &[(EventKind, &str, i64)], at: i64) -> Vec<String> {
        let mut w = DeathWatch::new(Duration::from_millis(1000));
        for (k, id, ms) in events {
            w.observe(&ev(*k, id, *ms, &[("exitCode", "137")]), *ms);
        }
        w.due(at).into_iter().map(|d| d.id).collect()
    }

    /// A case name, `(kind, container, ms)` events, and the containers expected to be crashes.
    type Case = (
        &'static str,
        Vec<(EventKind, &'static str, i64)>,
        Vec<&'static str>,
    );

    #[test]
    fn measured_event_sequences_classify_as_crash_or_deliberate() {
        use EventKind::*;
        let cases: Vec<Case> = vec![
            (
                "docker kill",
                vec![(Kill, "a", 0), (Die, "a", 1)],
                vec!["a"],
            ),
            ("a crash", vec![(Die, "a", 0)], vec!["a"]),
            (
                "docker stop",
                vec![
                    (Kill, "a", 0),
                    (Kill, "a", 10),
                    (Die, "a", 11),
                    (Stop, "a", 12),
                ],
                vec![],
            ),
            (
                "docker restart",
                vec![
                    (Kill, "a", 0),
                    (Die, "a", 1),
                    (Stop, "a", 2),
                    (Start, "a", 3),
                ],
                vec![],
            ),
            (
                "docker rm -f",
                vec![(Kill, "a", 0), (Die, "a", 1), (Destroy, "a", 5)],
                vec![],
            ),
            (
                "a stop of another container does not cancel",
                vec![(Die, "a", 0), (Die, "b", 0), (Stop, "b", 5)],
                vec!["a"],
            ),
        ];
        for (name, events, want) in cases {
            assert_eq!(crashes(&events, 5_000), want, "{name}");
        }
    }

    #[test]
    fn a_death_is_held_until_its_window_has_passed() {
        let mut w = DeathWatch::new(Duration::from_millis(1000));
        assert_eq!(
            w.observe(&ev(EventKind::Die, "a", 100, &[("exitCode", "3")]), 100),
            Seen::Held
        );
        assert_eq!(w.next_deadline(), Some(1100));
        assert!(w.due(1099).is_empty());
        let d = w.due(1100);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].exit_code, Some(3));
        assert_eq!(d[0].at_ms, 100);
        assert!(!d[0].labels.contains_key("exitCode"));
        assert!(w.is_empty());
        assert!(w.due(5000).is_empty(), "a death is reported once");
    }

    #[test]
    fn a_stop_is_reported_as_deliberate_with_its_engine_time() {
        let mut w = DeathWatch::default();
        assert_eq!(
            w.observe(&ev(EventKind::Stop, "a", 42, &[]), 50),
            Seen::DeliberateStop {
                id: "a".into(),
                name: "n-a".into(),
                at_ms: 42
            }
        );
    }
}
