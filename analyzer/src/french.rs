//! French dates for what the city's staff and on-call read (`lundi 7 avril 2025, 14 h 30`).
//!
//! jiff has no locale support, so day and month names are written out here; the format
//! follows French typographic use (`1er` for the first day). It lives in the analyzer, the
//! lowest crate whose output (the block list) needs it; alerting and dashboards use it too.

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;

const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// The French name of a month, `1` → `janvier`; out-of-range months are clamped.
pub fn month_fr(month: i8) -> &'static str {
    MONTHS[usize::try_from(month - 1).unwrap_or(0).min(11)]
}

/// The French name of a day of the week (`lundi`).
pub fn weekday_fr(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "lundi",
        Weekday::Tuesday => "mardi",
        Weekday::Wednesday => "mercredi",
        Weekday::Thursday => "jeudi",
        Weekday::Friday => "vendredi",
        Weekday::Saturday => "samedi",
        Weekday::Sunday => "dimanche",
    }
}

/// `t` as a French reader expects it in `tz`: `lundi 7 avril 2025, 14 h 30`.
///
/// The first day of a month is written `1er`, as French usage requires.
pub fn format_date_fr(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned_datetime(tz.clone());
    let day = match z.day() {
        1 => "1er".to_owned(),
        d => d.to_string(),
    };
    // `month()` is 1..=12 by jiff's contract.
    let month = month_fr(z.month());
    format!("{} {} {} {}, {} h {:02}", weekday_fr(z.weekday()), day, month, z.year(), z.hour(), z.minute())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> TimeZone {
        TimeZone::get("Europe/Paris").unwrap()
    }

    fn check(utc: &str, expected: &str) {
        let t: Timestamp = utc.parse().unwrap();
        assert_eq!(format_date_fr(t, &paris()), expected, "for {utc}");
    }

    #[test]
    fn summer_time_is_utc_plus_two() {
        check("2025-04-07T12:30:00Z", "lundi 7 avril 2025, 14 h 30");
    }

    #[test]
    fn winter_time_is_utc_plus_one_and_minutes_are_padded() {
        check("2025-12-25T08:05:00Z", "jeudi 25 décembre 2025, 9 h 05");
    }

    #[test]
    fn first_of_the_month_is_premier() {
        check("2025-04-01T06:00:00Z", "mardi 1er avril 2025, 8 h 00");
    }

    #[test]
    fn dst_change_day_in_spring() {
        // 30 March 2025: at 02:00 Paris time the clocks jump to 03:00.
        check("2025-03-30T00:59:00Z", "dimanche 30 mars 2025, 1 h 59");
        check("2025-03-30T01:00:00Z", "dimanche 30 mars 2025, 3 h 00");
    }

    #[test]
    fn dst_change_day_in_autumn_shows_the_repeated_hour() {
        // 26 October 2025: at 03:00 Paris time the clocks go back to 02:00, so 02:30
        // happens twice, one UTC hour apart.
        check("2025-10-26T00:30:00Z", "dimanche 26 octobre 2025, 2 h 30");
        check("2025-10-26T01:30:00Z", "dimanche 26 octobre 2025, 2 h 30");
        check("2025-10-26T02:30:00Z", "dimanche 26 octobre 2025, 3 h 30");
    }

    #[test]
    fn midnight_and_accented_months() {
        check("2025-08-14T22:00:00Z", "vendredi 15 août 2025, 0 h 00");
        check("2026-02-01T12:00:00Z", "dimanche 1er février 2026, 13 h 00");
    }
}
