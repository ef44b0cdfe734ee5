//! Sizes (`64Mi`, `8Gi`, plain bytes) and durations (`500ms`, `30s`, `3m`, `1h`, `7d`).
//!
//! The grammar is deliberately narrow: one integer and one unit. Docker's `8g` and
//! humantime's `3min` are refused with a hint rather than guessed at, so a manifest means the
//! same thing to every reader.

use std::time::Duration;

const SIZE_UNITS: [(&str, i64); 3] = [("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)];

/// A size as `parse_size` reads it back: the largest binary unit that divides it exactly, else
/// plain bytes (`64Mi`, `1572865`). For plans and audit rows, where the value must be exact.
pub fn format_size_exact(v: i64) -> String {
    for (u, n) in SIZE_UNITS {
        if v >= n && v % n == 0 {
            return format!("{}{u}", v / n);
        }
    }
    v.to_string()
}

/// A size for people: the largest binary unit, one decimal when not exact (`64Mi`, `1.5Mi`,
/// `900B`). For usage figures, where a rounded value reads better than an exact one.
pub fn format_size(v: i64) -> String {
    for (u, n) in SIZE_UNITS {
        if v >= n {
            return if v % n == 0 {
                format!("{}{u}", v / n)
            } else {
                format!("{:.1}{u}", v as f64 / n as f64)
            };
        }
    }
    format!("{v}B")
}

/// Parses a size: an integer with an optional binary suffix `Ki`, `Mi`, `Gi` or `Ti`.
pub fn parse_size(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "`{s}` is not a size: write bytes or a number with Ki, Mi or Gi (e.g. 64Mi)"
        ));
    }
    let shift = match unit {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        "Ti" => 40,
        other => {
            let hint = match other.to_ascii_lowercase().trim_end_matches(['b', 'i']) {
                "k" => format!(" (did you mean {digits}Ki?)"),
                "m" => format!(" (did you mean {digits}Mi?)"),
                "g" => format!(" (did you mean {digits}Gi?)"),
                "t" => format!(" (did you mean {digits}Ti?)"),
                _ => String::new(),
            };
            return Err(format!(
                "`{s}` has an unknown size unit `{other}`: use Ki, Mi, Gi or plain bytes{hint}"
            ));
        }
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is too large for a size"))?;
    n.checked_mul(1i64 << shift)
        .ok_or_else(|| format!("`{s}` is too large for a size"))
}

/// Parses a duration: an integer with one of the units `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() || unit.is_empty() {
        return Err(format!(
            "`{s}` is not a duration: write a number with ms, s, m, h or d (e.g. 30s)"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is too large for a duration"))?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "`{s}` has an unknown duration unit `{other}`: use ms, s, m, h or d"
            ))
        }
    };
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}` is too large for a duration"))
}

#[cfg(test)]
mod tests {

    #[test]
    fn sizes_format_exactly_for_plans_and_rounded_for_people() {
        for (v, exact, human) in [
            (64 << 20, "64Mi", "64Mi"),
            (3 << 30, "3Gi", "3Gi"),
            ((3 << 20) / 2, "1536Ki", "1.5Mi"),
            (1_572_865, "1572865", "1.5Mi"),
            (900, "900", "900B"),
        ] {
            assert_eq!(format_size_exact(v), exact, "{v}");
            assert_eq!(format_size(v), human, "{v}");
            assert_eq!(parse_size(exact), Ok(v), "the exact form reads back");
        }
    }

    use super::*;

    #[test]
    fn sizes_parse_to_bytes() {
        let cases: &[(&str, i64)] = &[
            ("8Gi", 8_589_934_592),
            ("64Mi", 64 * 1024 * 1024),
            ("6Mi", 6_291_456),
            ("1Ki", 1024),
            ("1048576", 1_048_576),
            ("0", 0),
        ];
        for (input, want) in cases {
            assert_eq!(parse_size(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn sizes_with_unknown_units_are_refused_with_a_hint() {
        let err = parse_size("8g").unwrap_err();
        assert!(err.contains("did you mean 8Gi?"), "{err}");
        for bad in ["", "Gi", "8 GB", "-1", "1.5Gi", "8GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse_in_every_unit() {
        let cases: &[(&str, Duration)] = &[
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("3m", Duration::from_secs(180)),
            ("1h", Duration::from_secs(3600)),
            ("7d", Duration::from_secs(7 * 86_400)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn durations_without_a_known_unit_are_refused() {
        for bad in ["", "30", "3min", "1w", "s", "-5s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
