//! What the agent does about one engine event. Pure: the daemon loop acts on the answer.
//!
//! Each event is classified once, from the name and labels it carries, into the [`Work`] its
//! container needs; events of containers that are none of our business cost no inspect at all
//! (the engine's other users generate most events). Work for one container coalesces
//! ([`Work::merge`]): the reconcile that handles it inspects the container once and does all
//! of it with that one inspect (`daemon::reconcile`).
//!
//! Adoption must be event-driven (openclaw.md): the gateway recreates its sandboxes, and a
//! recreated container would run unlimited until the next sweep. So `create` and `start` of a
//! container the policy covers are enforced at once. Both, because Docker may refuse or defer
//! an update of a container that is only created; the `start` event is the second chance.
//! `update` events reveal someone loosening limits with `docker update` (drift); the agent's
//! own updates also raise `update` events, which find the limits converged and do nothing.
//!
//! A `start` also re-checks the pinned binds of an owned sandbox (whoever started it, a plain
//! `docker start` included): the engine resolved its bind sources again (crate::pin). After
//! each (re)connect every running sandbox labelled as this fortress's is re-checked the same
//! way ([`Work::recheck`]), for the starts the agent did not see.
//!
//! A `die` is not work yet: the heal death watch holds it for its stop window. When the window
//! passes it is a crash, reconciled once for both the limit it may have run into and healing;
//! a `stop` inside the window makes it deliberate, reconciled for the limit only. An `oom` is
//! diagnosed at once, while the container's cgroup (and its counters) still exists.

use crate::enforce::{Policy, Trigger};
use crate::engine::{Event, EventKind};
use crate::heal::Death;

/// What one container needs from the agent, from one event or several coalesced.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    /// The container's id.
    pub id: String,
    /// Its name as the latest event gave it (for logs; the reconcile inspects the real one).
    pub name: String,
    /// Check its limits, triggered by this event (`create`, `start` or `update`).
    pub limits: Option<Trigger>,
    /// It started: re-check the pinned binds if it is an owned sandbox.
    pub started: bool,
    /// Find which limit it ran into (`oom`, a deliberate `stop`, a crash).
    pub diagnose: bool,
    /// It died and was not stopped on purpose: heal it if it is an owned sandbox.
    pub death: Option<Death>,
}

impl Work {
    /// The re-check of a container found running when the agent (re)connects: it may have been
    /// started while no one watched the events.
    pub fn recheck(id: &str, name: &str) -> Work {
        Work {
            started: true,
            ..Work::new(id, name)
        }
    }

    fn new(id: &str, name: &str) -> Work {
        Work {
            id: id.to_string(),
            name: name.to_string(),
            limits: None,
            started: false,
            diagnose: false,
            death: None,
        }
    }

    /// Folds `later` (work for the same container) into this one. The limits check keeps the
    /// trigger that says most: an `update` reveals drift, a `start` is the second chance of a
    /// `create`.
    pub fn merge(&mut self, later: Work) {
        debug_assert_eq!(self.id, later.id);
        let rank = |t: &Option<Trigger>| match t {
            Some(Trigger::Event(EventKind::Update)) => 3,
            Some(Trigger::Event(EventKind::Start)) => 2,
            Some(_) => 1,
            None => 0,
        };
        if rank(&later.limits) >= rank(&self.limits) {
            self.limits = later.limits.or(self.limits);
        }
        self.name = later.name;
        self.started |= later.started;
        self.diagnose |= later.diagnose;
        if later.death.is_some() {
            self.death = later.death;
        }
    }
}

/// The work an event asks for, or `None` when its container is none of our business or the
/// event needs nothing (yet).
pub fn work(policy: &Policy, event: &Event) -> Option<Work> {
    if event.id.is_empty() {
        return None;
    }
    let mut w = Work::new(&event.id, &event.name);
    match event.kind {
        EventKind::Create | EventKind::Update => w.limits = Some(Trigger::Event(event.kind)),
        EventKind::Start => {
            w.limits = Some(Trigger::Event(event.kind));
            w.started = true;
        }
        EventKind::Oom | EventKind::Stop => w.diagnose = true,
        EventKind::Die | EventKind::Kill | EventKind::Destroy | EventKind::Other => return None,
    }
    policy.may_cover(&event.name, &event.labels).then_some(w)
}

/// The work of a death whose stop window passed: diagnose and heal.
pub fn death_work(policy: &Policy, death: Death) -> Option<Work> {
    if !policy.may_cover(&death.name, &death.labels) {
        return None;
    }
    let mut w = Work::new(&death.id, &death.name);
    w.diagnose = true;
    w.death = Some(death);
    Some(w)
}

/// Seconds between the engine stamping the event and now (never negative: clocks of the
/// engine and the agent are the same host's, but a step of the clock must not yield garbage).
pub fn lag_seconds(event_time_nano: i64, now_nano: i64) -> f64 {
    if event_time_nano <= 0 {
        return 0.0;
    }
    (now_nano.saturating_sub(event_time_nano)).max(0) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Adopt, Fortress, Limits, Selector};
    use std::collections::BTreeMap;

    fn policy() -> Policy {
        let f = Fortress {
            sandboxes: vec![crate::spec::tests::sandbox("sbx")],
            adopt: vec![Adopt {
                selector: Selector::Label {
                    key: "openclaw.sandbox".into(),
                    value: Some("1".into()),
                },
                limits: Limits {
                    pids: Some(64),
                    ..Default::default()
                },
                egress: None,
            }],
            ..Fortress::for_tests()
        };
        Policy::new(&f, 2)
    }

    fn event(kind: EventKind, name: &str, labels: &[(&str, &str)]) -> Event {
        Event {
            kind,
            id: "abc".into(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            time_nano: 1,
        }
    }

    #[test]
    fn each_event_of_a_covered_container_asks_for_its_own_work() {
        let p = policy();
        let adopted = [("openclaw.sandbox", "1")];
        let owned = [
            ("clw-fortress.managed", "1"),
            ("clw-fortress.fortress", "f"),
            ("clw-fortress.sandbox", "sbx"),
        ];
        use EventKind::*;
        // (event, labels, limits trigger, started, diagnose); `None` for no work at all.
        type Case<'a> = (
            EventKind,
            &'a [(&'a str, &'a str)],
            Option<(Option<Trigger>, bool, bool)>,
        );
        let cases: Vec<Case> = vec![
            (
                Create,
                &adopted,
                Some((Some(Trigger::Event(Create)), false, false)),
            ),
            (
                Start,
                &adopted,
                Some((Some(Trigger::Event(Start)), true, false)),
            ),
            (
                Update,
                &adopted,
                Some((Some(Trigger::Event(Update)), false, false)),
            ),
            (
                Update,
                &owned,
                Some((Some(Trigger::Event(Update)), false, false)),
            ),
            (
                Start,
                &owned,
                Some((Some(Trigger::Event(Start)), true, false)),
            ),
            (Oom, &owned, Some((None, false, true))),
            (Stop, &adopted, Some((None, false, true))),
            // Held by the death watch until its stop window passes.
            (Die, &adopted, None),
            (Destroy, &adopted, None),
            (Kill, &owned, None),
            (Other, &adopted, None),
            (Create, &[("openclaw.sandbox", "0")], None),
            (Start, &[], None),
        ];
        for (kind, labels, want) in cases {
            let got =
                work(&p, &event(kind, "x", labels)).map(|w| (w.limits, w.started, w.diagnose));
            assert_eq!(got, want, "{kind:?} {labels:?}");
        }
    }

    #[test]
    fn an_event_without_a_container_id_is_ignored() {
        let mut e = event(EventKind::Start, "x", &[("openclaw.sandbox", "1")]);
        e.id.clear();
        assert_eq!(work(&policy(), &e), None);
    }

    #[test]
    fn work_for_one_container_coalesces_and_keeps_the_trigger_that_says_most() {
        let p = policy();
        let adopted = [("openclaw.sandbox", "1")];
        let w = |kind| work(&p, &event(kind, "x", &adopted)).unwrap();
        let mut a = w(EventKind::Create);
        a.merge(w(EventKind::Update));
        a.merge(w(EventKind::Start));
        a.merge(w(EventKind::Oom));
        assert_eq!(a.limits, Some(Trigger::Event(EventKind::Update)));
        assert!(a.started && a.diagnose && a.death.is_none());
        let death = Death {
            id: "abc".into(),
            name: "x".into(),
            exit_code: Some(3),
            labels: adopted
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            at_ms: 1,
        };
        a.merge(death_work(&p, death.clone()).unwrap());
        assert_eq!(a.death, Some(death.clone()));
        assert_eq!(a.limits, Some(Trigger::Event(EventKind::Update)), "kept");
        let foreign = Death {
            labels: Default::default(),
            ..death
        };
        assert_eq!(death_work(&p, foreign), None);
    }

    #[test]
    fn event_lag_is_seconds_and_never_negative() {
        assert_eq!(lag_seconds(1_000_000_000, 3_500_000_000), 2.5);
        assert_eq!(lag_seconds(5_000_000_000, 3_000_000_000), 0.0);
        assert_eq!(lag_seconds(0, 3_000_000_000), 0.0);
    }
}
