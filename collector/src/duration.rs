//! Durations as configuration files write them (`500ms`, `30s`, `5m`, `4h`, `2d`): one
//! reading for every section of every crate.

use std::time::Duration;

/// The hint a configuration problem about a duration gives.
pub const DURATION_HINT: &str = "write a number and a unit: \"500ms\", \"30s\", \"5m\", \"4h\", \"2d\"";

/// Parses durations written like `500ms`, `30s`, `5m`, `4h`, `2d` (one number, one unit;
/// `0s` is a valid duration, whether zero is allowed is the caller's call).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{s}` is not a duration"))?;
    let unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{s}` has no unit ms, s, m, h or d")),
    };
    n.checked_mul(unit_ms).map(Duration::from_millis).ok_or_else(|| format!("`{s}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_reads_and_anything_else_says_what_is_wrong() {
        let ok = [("500ms", 500), ("30s", 30_000), (" 5m ", 300_000), ("4h", 14_400_000), ("2d", 172_800_000)];
        for (text, ms) in ok {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(ms)), "{text}");
        }
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("10 minutes").unwrap_err(), "`10 minutes` has no unit ms, s, m, h or d");
        assert_eq!(parse_duration("5").unwrap_err(), "`5` has no unit ms, s, m, h or d");
        assert_eq!(parse_duration("m").unwrap_err(), "`m` is not a duration");
        assert_eq!(parse_duration("-5s").unwrap_err(), "`-5s` is not a duration");
        assert_eq!(parse_duration("1.5h").unwrap_err(), "`1.5h` has no unit ms, s, m, h or d");
        // Overflow is an error, not a panic or a wrapped value.
        assert_eq!(parse_duration("18446744073709551615d").unwrap_err(), "`18446744073709551615d` is too long");
    }
}
