//! Durations as configuration files write them (`500ms`, `30s`, `5m`, `4h`, `2d`): one
//! reading for every section of every crate.

use std::time::Duration;

/// The hint a configuration problem about a duration gives.
pub const DURATION_HINT: &str = "write a number and a unit: \"500ms\", \"30s\", \"5m\", \"4h\", \"2d\"";

/// Parses durations written like `500ms`, `30s`, `5m`, `4h`, `2d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{s}` is not a duration"))?;
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{s}` is not a duration")),
    };
    Ok(Duration::from_millis(n * unit_ms))
}
