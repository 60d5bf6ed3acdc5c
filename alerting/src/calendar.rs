//! Working days in France: weekends and public holidays, for the CCTP's resolution deadlines.
//!
//! The eleven public holidays of metropolitan France (Code du travail, art. L3133-1): eight on
//! fixed dates, and Easter Monday, Ascension Thursday and Whit Monday, which move with Easter
//! Sunday. Easter is computed (the Gregorian computus), never read from a list that would run
//! out. Alsace-Moselle's two extra days (Good Friday, 26 December) are not counted: the city
//! is not there.
//!
//! A deadline of N working days starts at the opening instant if it falls on a working day,
//! otherwise at 00:00 of the next working day, and moves that instant N working days forward,
//! keeping its wall-clock time: an incident opened on Friday at 14:00 with one working day is
//! due on Monday at 14:00; one opened on Saturday is due at the end of Monday (Tuesday 00:00).

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Easter Sunday of `year` in the Gregorian calendar (anonymous algorithm, Meeus/Jones/Butcher),
/// valid for every year jiff supports from 1583 on.
pub fn easter_sunday(year: i16) -> Date {
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    // month is 3 or 4 and day 1..=31 by construction of the algorithm.
    Date::new(year, i8::try_from(month).unwrap_or(4), i8::try_from(day).unwrap_or(1))
        .unwrap_or_else(|_| Date::constant(2000, 4, 23))
}

/// The French public holidays of `year`, in date order, with their names.
pub fn public_holidays(year: i16) -> Vec<(Date, &'static str)> {
    let easter = easter_sunday(year);
    let after = |days: i64| easter.checked_add(SignedDuration::from_hours(days * 24)).unwrap_or(easter);
    let fixed = |m: i8, d: i8| Date::new(year, m, d).unwrap_or(easter);
    let mut days = vec![
        (fixed(1, 1), "Jour de l'an"),
        (after(1), "Lundi de Pâques"),
        (fixed(5, 1), "Fête du Travail"),
        (fixed(5, 8), "Victoire 1945"),
        (after(39), "Ascension"),
        (after(50), "Lundi de Pentecôte"),
        (fixed(7, 14), "Fête nationale"),
        (fixed(8, 15), "Assomption"),
        (fixed(11, 1), "Toussaint"),
        (fixed(11, 11), "Armistice 1918"),
        (fixed(12, 25), "Noël"),
    ];
    days.sort_by_key(|(d, _)| *d);
    days
}

/// The name of the public holiday on `day`, if it is one.
pub fn holiday_name(day: Date) -> Option<&'static str> {
    public_holidays(day.year()).into_iter().find(|(d, _)| *d == day).map(|(_, name)| name)
}

/// Whether `day` is a working day: Monday to Friday, and not a public holiday.
pub fn is_working_day(day: Date) -> bool {
    !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) && holiday_name(day).is_none()
}

/// The first working day strictly after `day`.
pub fn next_working_day(day: Date) -> Date {
    let mut d = day;
    loop {
        d = match d.tomorrow() {
            Ok(next) => next,
            Err(_) => return d,
        };
        if is_working_day(d) {
            return d;
        }
    }
}

/// `start` moved `n` working days forward in `tz` (see the module documentation).
pub fn add_working_days(start: Timestamp, n: u32, tz: &TimeZone) -> Timestamp {
    let local = start.to_zoned_datetime(tz.clone());
    let (mut day, mut time) = (local.date(), local.time());
    if !is_working_day(day) {
        day = next_working_day(day);
        time = Time::midnight();
    }
    for _ in 0..n {
        day = next_working_day(day);
    }
    tz.to_ambiguous_timestamp(day.to_datetime(time)).compatible().unwrap_or(Timestamp::MAX)
}

/// How many working days in `[from, to)` (dates, `from` included).
pub fn working_days_between(from: Date, to: Date) -> u32 {
    let mut n = 0;
    let mut d = from;
    while d < to {
        if is_working_day(d) {
            n += 1;
        }
        d = match d.tomorrow() {
            Ok(next) => next,
            Err(_) => break,
        };
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn computus_matches_known_easter_sundays() {
        for (year, month, day) in [
            (1818, 3, 22), // the earliest possible date
            (1943, 4, 25), // the latest possible date
            (1961, 4, 2),
            (2000, 4, 23),
            (2008, 3, 23),
            (2011, 4, 24),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2038, 4, 25),
            (2285, 3, 22),
        ] {
            assert_eq!(easter_sunday(year), date(year, month, day), "Easter {year}");
        }
    }

    #[test]
    fn movable_holidays_follow_easter() {
        let names: Vec<(Date, &str)> = public_holidays(2025);
        assert_eq!(names.len(), 11);
        assert!(names.contains(&(date(2025, 4, 21), "Lundi de Pâques")));
        assert!(names.contains(&(date(2025, 5, 29), "Ascension")));
        assert!(names.contains(&(date(2025, 6, 9), "Lundi de Pentecôte")));
        // 2024: Easter on 31 March, so Easter Monday is 1 April and Ascension 9 May.
        assert_eq!(holiday_name(date(2024, 4, 1)), Some("Lundi de Pâques"));
        assert_eq!(holiday_name(date(2024, 5, 9)), Some("Ascension"));
        assert_eq!(holiday_name(date(2024, 5, 20)), Some("Lundi de Pentecôte"));
        // 2008: Ascension fell on 1 May.
        assert_eq!(holiday_name(date(2008, 5, 1)), Some("Fête du Travail"));
        assert!(public_holidays(2008).iter().any(|(d, n)| *d == date(2008, 5, 1) && *n == "Ascension"));
    }

    #[test]
    fn weekends_and_holidays_are_not_working_days() {
        assert!(is_working_day(date(2025, 4, 18)), "Good Friday is worked outside Alsace-Moselle");
        for (y, m, d) in [
            (2025, 1, 1),
            (2025, 4, 21),
            (2025, 5, 1),
            (2025, 5, 8),
            (2025, 5, 29),
            (2025, 6, 9),
            (2025, 7, 14),
            (2025, 8, 15),
            (2025, 11, 1),
            (2025, 11, 11),
            (2025, 12, 25),
            (2025, 4, 19), // Saturday
            (2025, 4, 20), // Sunday
        ] {
            assert!(!is_working_day(date(y, m, d)), "{y}-{m}-{d}");
        }
        // April 2025: 22 weekdays, Easter Monday off.
        assert_eq!(working_days_between(date(2025, 4, 1), date(2025, 5, 1)), 21);
    }

    fn paris() -> TimeZone {
        TimeZone::get("Europe/Paris").unwrap()
    }

    fn check(start: &str, n: u32, expected: &str) {
        let start: Timestamp = start.parse().unwrap();
        let expected: Timestamp = expected.parse().unwrap();
        assert_eq!(add_working_days(start, n, &paris()), expected, "{start} + {n} working days");
    }

    #[test]
    fn deadlines_skip_weekends_and_every_holiday() {
        // Friday 14:00 + 1 → Monday 14:00.
        check("2025-03-14T14:00:00+01:00", 1, "2025-03-17T14:00:00+01:00");
        // Saturday → counting starts Monday 00:00: due Tuesday 00:00 (the end of Monday).
        check("2025-03-15T10:00:00+01:00", 1, "2025-03-18T00:00:00+01:00");
        // Thursday before Easter 2025 + 1 → Friday; + 2 → Tuesday (Easter Monday skipped).
        check("2025-04-17T09:00:00+02:00", 1, "2025-04-18T09:00:00+02:00");
        check("2025-04-17T09:00:00+02:00", 2, "2025-04-22T09:00:00+02:00");
        // 30 April 2025 (Wednesday) + 1: 1 May is off → Friday 2 May.
        check("2025-04-30T16:00:00+02:00", 1, "2025-05-02T16:00:00+02:00");
        // Wednesday 7 May + 1: 8 May off → Friday 9 May.
        check("2025-05-07T11:00:00+02:00", 1, "2025-05-09T11:00:00+02:00");
        // Wednesday 28 May + 1: Ascension Thursday off → Friday 30 May.
        check("2025-05-28T11:00:00+02:00", 1, "2025-05-30T11:00:00+02:00");
        // Friday 6 June + 1: weekend then Whit Monday → Tuesday 10 June.
        check("2025-06-06T11:00:00+02:00", 1, "2025-06-10T11:00:00+02:00");
        // Friday 11 July + 1: weekend and 14 July (Monday) → Tuesday 15 July.
        check("2025-07-11T17:00:00+02:00", 1, "2025-07-15T17:00:00+02:00");
        // Thursday 14 August + 1: 15 August (Friday), weekend → Monday 18 August.
        check("2025-08-14T08:30:00+02:00", 1, "2025-08-18T08:30:00+02:00");
        // Friday 31 October + 1: 1 November is a Saturday anyway → Monday 3 November.
        check("2025-10-31T10:00:00+01:00", 1, "2025-11-03T10:00:00+01:00");
        // Monday 10 November + 1: 11 November (Tuesday) off → Wednesday 12.
        check("2025-11-10T10:00:00+01:00", 1, "2025-11-12T10:00:00+01:00");
        // Wednesday 24 December + 1: Christmas off → Friday 26 (worked outside Alsace-Moselle).
        check("2025-12-24T10:00:00+01:00", 1, "2025-12-26T10:00:00+01:00");
        // Opened ON a holiday (Christmas): counting starts Friday 26 00:00.
        check("2025-12-25T10:00:00+01:00", 1, "2025-12-29T00:00:00+01:00");
        // Across a daylight-saving change the wall-clock time is kept: Friday 28 March 2025
        // (CET) + 1 → Monday 31 March (CEST), 14:00 local both times.
        check("2025-03-28T14:00:00+01:00", 1, "2025-03-31T14:00:00+02:00");
    }
}
