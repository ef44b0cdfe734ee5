//! Retention: which snapshots of one source survive `keep: {last, daily, weekly}`.
//!
//! Pure: it sees ids and timestamps, decides, and touches no file and no database. The driver
//! (`super::apply_retention`) deletes what is not returned.
//!
//! The policy, all in UTC:
//! - the newest `last` snapshots;
//! - the newest snapshot of each calendar day among the last `daily` days, today included
//!   (a window anchored on `now`, so days without a snapshot use up the window: after a long
//!   outage `last` is what still holds copies);
//! - the newest snapshot of each ISO week (Monday to Sunday) among the last `weekly` weeks,
//!   the current week included;
//! - and never nothing: when the rules above keep none, the newest snapshot stays, so a source
//!   never loses its only good copy.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use crate::manifest::Keep;

/// What retention needs to know about one good snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub id: i64,
    pub created: DateTime<Utc>,
}

/// The ids to keep; every other id of `snapshots` may be deleted. `snapshots` are the good
/// (status ok, not yet deleted) snapshots of ONE source.
pub fn retain(snapshots: &[SnapshotMeta], keep: &Keep, now: DateTime<Utc>) -> BTreeSet<i64> {
    let mut newest_first = snapshots.to_vec();
    newest_first.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));

    let mut kept: BTreeSet<i64> = newest_first
        .iter()
        .take(keep.last as usize)
        .map(|s| s.id)
        .collect();

    let today = now.date_naive();
    let mut days = BTreeSet::new();
    for s in &newest_first {
        let day = s.created.date_naive();
        // A snapshot from the future (clock stepped back) counts as within the window.
        if (today - day).num_days() < i64::from(keep.daily) && days.insert(day) {
            kept.insert(s.id);
        }
    }

    let this_week = week_start(today);
    let mut weeks = BTreeSet::new();
    for s in &newest_first {
        let week = week_start(s.created.date_naive());
        if (this_week - week).num_days() / 7 < i64::from(keep.weekly) && weeks.insert(week) {
            kept.insert(s.id);
        }
    }

    if kept.is_empty() {
        if let Some(newest) = newest_first.first() {
            kept.insert(newest.id);
        }
    }
    kept
}

/// The Monday of the ISO week holding `day`: one key per ISO week, and week distances are
/// plain day arithmetic across year boundaries.
fn week_start(day: NaiveDate) -> NaiveDate {
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn keep(last: u32, daily: u32, weekly: u32) -> Keep {
        Keep {
            last,
            daily,
            weekly,
        }
    }

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    /// Snapshots at the given times, ids in creation order from 1.
    fn snaps(times: &[DateTime<Utc>]) -> Vec<SnapshotMeta> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| SnapshotMeta {
                id: i as i64 + 1,
                created: *t,
            })
            .collect()
    }

    fn ids(v: &[i64]) -> BTreeSet<i64> {
        v.iter().copied().collect()
    }

    /// Runs a daily 03:00 backup (plus an extra 15:00 one on the days listed in `twice`) from
    /// `first` for `days` days, applying retention after every run as the driver does, and
    /// returns the surviving snapshot times.
    fn simulate(first: NaiveDate, days: i64, twice: &[i64], policy: &Keep) -> Vec<DateTime<Utc>> {
        let mut alive: Vec<SnapshotMeta> = Vec::new();
        let mut next_id = 1;
        for d in 0..days {
            let date = first + Duration::days(d);
            let mut hours = vec![3];
            if twice.contains(&d) {
                hours.push(15);
            }
            for h in hours {
                let now = date.and_hms_opt(h, 0, 0).unwrap().and_utc();
                alive.push(SnapshotMeta {
                    id: next_id,
                    created: now,
                });
                next_id += 1;
                let kept = retain(&alive, policy, now);
                alive.retain(|s| kept.contains(&s.id));
            }
        }
        let mut times: Vec<_> = alive.iter().map(|s| s.created).collect();
        times.sort();
        times
    }

    #[test]
    fn retention_keeps_exactly_what_the_policy_says_for_single_sets() {
        // 2024-05-06 is a Monday.
        struct Case {
            name: &'static str,
            times: Vec<DateTime<Utc>>,
            keep: Keep,
            now: DateTime<Utc>,
            kept: Vec<i64>,
        }
        let cases = [
            Case {
                name: "nothing to keep from nothing",
                times: vec![],
                keep: keep(3, 3, 3),
                now: at(2024, 5, 10, 12),
                kept: vec![],
            },
            Case {
                name: "last alone keeps the newest n",
                times: vec![
                    at(2024, 5, 6, 3),
                    at(2024, 5, 7, 3),
                    at(2024, 5, 8, 3),
                    at(2024, 5, 9, 3),
                ],
                keep: keep(2, 0, 0),
                now: at(2024, 5, 9, 4),
                kept: vec![3, 4],
            },
            Case {
                name: "daily keeps the newest of each day in the window only",
                times: vec![
                    at(2024, 5, 6, 3),
                    at(2024, 5, 7, 3),
                    at(2024, 5, 7, 15),
                    at(2024, 5, 8, 3),
                    at(2024, 5, 8, 9),
                ],
                keep: keep(0, 2, 0),
                now: at(2024, 5, 8, 10),
                kept: vec![3, 5],
            },
            Case {
                name: "days without snapshots use up the daily window",
                times: vec![at(2024, 5, 1, 3), at(2024, 5, 2, 3)],
                keep: keep(1, 3, 0),
                now: at(2024, 5, 10, 3),
                kept: vec![2],
            },
            Case {
                name: "weekly keeps the newest of each iso week across a year boundary",
                times: vec![
                    at(2023, 12, 26, 3), // ISO 2023-W52
                    at(2023, 12, 31, 3), // Sunday, ISO 2023-W52
                    at(2024, 1, 1, 3),   // Monday, ISO 2024-W01
                    at(2024, 1, 3, 3),   // ISO 2024-W01
                ],
                keep: keep(0, 0, 2),
                now: at(2024, 1, 3, 4),
                kept: vec![2, 4],
            },
            Case {
                name: "the rules add up instead of intersecting",
                times: vec![
                    at(2024, 4, 28, 3), // Sunday two weeks back: outside `weekly: 2`
                    at(2024, 5, 5, 3),  // Sunday of the previous week
                    at(2024, 5, 6, 3),
                    at(2024, 5, 7, 3),
                    at(2024, 5, 8, 3),
                ],
                keep: keep(1, 2, 2),
                now: at(2024, 5, 8, 4),
                kept: vec![2, 4, 5],
            },
            Case {
                name: "an all-zero policy still keeps the only good snapshot",
                times: vec![at(2024, 5, 1, 3)],
                keep: keep(0, 0, 0),
                now: at(2024, 6, 1, 3),
                kept: vec![1],
            },
            Case {
                name: "an all-zero policy keeps just the newest of several",
                times: vec![at(2024, 5, 1, 3), at(2024, 5, 2, 3), at(2024, 5, 3, 3)],
                keep: keep(0, 0, 0),
                now: at(2024, 6, 1, 3),
                kept: vec![3],
            },
            Case {
                name: "a snapshot from the future counts as today",
                times: vec![at(2024, 5, 1, 3), at(2024, 5, 12, 3)],
                keep: keep(0, 1, 0),
                now: at(2024, 5, 10, 3),
                kept: vec![2],
            },
        ];
        for c in cases {
            let got = retain(&snaps(&c.times), &c.keep, c.now);
            assert_eq!(got, ids(&c.kept), "{}", c.name);
        }
    }

    #[test]
    fn daily_runs_over_sixty_days_leave_exactly_the_policy_set() {
        // 2024-05-06 is a Monday; 60 days run to Thursday 2024-07-04. Extra afternoon runs on
        // some days must never add a second copy of a day that falls out of `last`.
        let first = NaiveDate::from_ymd_opt(2024, 5, 6).unwrap();
        let got = simulate(first, 60, &[10, 40, 57, 59], &keep(3, 7, 4));
        let d = |m, d, h| at(2024, m, d, h);
        let want = vec![
            // weekly: Sundays of the three previous ISO weeks (the current week's newest is
            // today, already kept).
            d(6, 16, 3),
            d(6, 23, 3),
            // daily: 2024-06-28 .. 2024-07-04, newest of each.
            d(6, 28, 3),
            d(6, 29, 3),
            d(6, 30, 3), // also the Sunday of week 26
            d(7, 1, 3),
            d(7, 2, 15), // day 57 ran twice: the 15:00 one is that day's newest
            d(7, 3, 3),
            // last 3: the two runs of day 59 and the one of day 58.
            d(7, 4, 3),
            d(7, 4, 15),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn applying_retention_daily_equals_applying_it_once_at_the_end() {
        let first = NaiveDate::from_ymd_opt(2023, 12, 1).unwrap();
        for policy in [
            keep(7, 7, 4),
            keep(1, 0, 0),
            keep(0, 3, 0),
            keep(0, 0, 5),
            keep(2, 10, 2),
        ] {
            let daily = simulate(first, 75, &[3, 30, 74], &policy);
            // All runs, then retention once, as of the last run.
            let all = simulate(first, 75, &[3, 30, 74], &keep(u32::MAX, 0, 0));
            let metas = snaps(&all);
            let now = *all.last().unwrap();
            let kept = retain(&metas, &policy, now);
            let once: Vec<_> = metas
                .iter()
                .filter(|s| kept.contains(&s.id))
                .map(|s| s.created)
                .collect();
            assert_eq!(daily, once, "{policy:?}");
        }
    }
}
