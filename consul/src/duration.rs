//! Durations as Go (and so Consul) writes them: `10s`, `1m30s`, `500ms`, `1.5h`. One parser for
//! check labels (`SERVICE_CHECK_INTERVAL`) and the templater's `--wait`/`--hold` flags.

use std::time::Duration;

/// A duration that cannot be read, with the text it was given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration like 10s, 1m30s or 500ms")]
pub struct DurationError(pub String);

const UNITS: [(&str, f64); 7] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

/// Parses a Go duration: one or more `<number><unit>` parts, no sign, no spaces.
pub fn parse(raw: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError(raw.to_string());
    let mut rest = raw;
    let mut secs = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, scale) = UNITS
            .iter()
            .filter(|(u, _)| rest.starts_with(u))
            .max_by_key(|(u, _)| u.len())
            .ok_or_else(bad)?;
        rest = &rest[unit.len()..];
        secs += number * scale;
    }
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// Like [`parse`], and a bare number counts as seconds (flags such as `--hold 30`).
pub fn parse_or_seconds(raw: &str) -> Result<Duration, DurationError> {
    let raw = raw.trim();
    match raw.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => parse(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        for (raw, want) in [
            ("10s", ms(10_000)),
            ("1m30s", ms(90_000)),
            ("500ms", ms(500)),
            ("1.5h", ms(5_400_000)),
            ("2us", Duration::from_micros(2)),
            ("3µs", Duration::from_micros(3)),
        ] {
            assert_eq!(parse(raw), Ok(want), "{raw}");
        }
        for bad in ["", "10", "s", "ten", "10x", "-1s", "10s;", ".s", "1..2s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_take_bare_seconds_too() {
        assert_eq!(parse_or_seconds("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_or_seconds("0"), Ok(Duration::ZERO));
        assert_eq!(parse_or_seconds("200ms"), Ok(Duration::from_millis(200)));
        assert!(parse_or_seconds("fast").is_err());
    }
}
