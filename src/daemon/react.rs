//! What the agent does about one engine event. Pure: the daemon loop acts on the answer.
//!
//! Adoption must be event-driven (openclaw.md): the gateway recreates its sandboxes, and a
//! recreated container would run unlimited until the next sweep. So `create` and `start` of a
//! container the policy covers are enforced at once. Both, because Docker may refuse or defer
//! an update of a container that is only created; the `start` event is the second chance.
//! `update` events reveal someone loosening limits with `docker update` (drift); the agent's
//! own updates also raise `update` events, which find the limits converged and do nothing.

use crate::enforce::{Policy, Trigger};
use crate::engine::{Event, EventKind};

/// `Some(trigger)` when the event's container must be (re)checked now.
pub fn reaction(policy: &Policy, event: &Event) -> Option<Trigger> {
    match event.kind {
        EventKind::Create | EventKind::Start | EventKind::Update => {}
        _ => return None,
    }
    if event.id.is_empty() {
        return None;
    }
    // The event carries the container's labels and name, so containers that are none of our
    // business cost no inspect at all (the engine's other users generate most events).
    policy
        .may_cover(&event.name, &event.labels)
        .then_some(Trigger::Event(event.kind))
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
    fn create_start_and_update_of_covered_containers_are_enforced_at_once() {
        let p = policy();
        let adopted = [("openclaw.sandbox", "1")];
        let owned = [
            ("clw-fortress.managed", "1"),
            ("clw-fortress.fortress", "f"),
            ("clw-fortress.sandbox", "sbx"),
        ];
        use EventKind::*;
        type Case<'a> = (EventKind, &'a [(&'a str, &'a str)], Option<Trigger>);
        let cases: Vec<Case> = vec![
            (Create, &adopted, Some(Trigger::Event(Create))),
            (Start, &adopted, Some(Trigger::Event(Start))),
            (Update, &adopted, Some(Trigger::Event(Update))),
            (Update, &owned, Some(Trigger::Event(Update))),
            (Start, &owned, Some(Trigger::Event(Start))),
            (Die, &adopted, None),
            (Destroy, &adopted, None),
            (Oom, &owned, None),
            (Other, &adopted, None),
            (Create, &[("openclaw.sandbox", "0")], None),
            (Start, &[], None),
        ];
        for (kind, labels, want) in cases {
            assert_eq!(
                reaction(&p, &event(kind, "x", labels)),
                want,
                "{kind:?} {labels:?}"
            );
        }
    }

    #[test]
    fn an_event_without_a_container_id_is_ignored() {
        let mut e = event(EventKind::Start, "x", &[("openclaw.sandbox", "1")]);
        e.id.clear();
        assert_eq!(reaction(&policy(), &e), None);
    }

    #[test]
    fn event_lag_is_seconds_and_never_negative() {
        assert_eq!(lag_seconds(1_000_000_000, 3_500_000_000), 2.5);
        assert_eq!(lag_seconds(5_000_000_000, 3_000_000_000), 0.0);
        assert_eq!(lag_seconds(0, 3_000_000_000), 0.0);
    }
}
