//! Availability accounting against the CCTP service window (06:00 → 03:00 Europe/Paris, every day).
//!
//! Probe results become [`Outage`]s through an [`OutageTracker`]; [`daily`] and [`monthly`] then
//! measure how much of each service window those outages covered. Pure logic: no I/O, and the
//! clock (`now`) is always passed in.
//!
//! # What the contract says, and how it is read here
//!
//! "The ENT must be usable 21 h out of 24, from 06:00 every day, holidays included": service day
//! `D` runs from 06:00 local time on `D` to 03:00 local time on `D + 1`. Downtime inside that
//! window is a breach; downtime between 03:00 and 06:00 (the maintenance night) does not count.
//!
//! **"21 h out of 24" is the length of the window, not a tolerance.** The contract does not grant
//! 3 h of downtime a day anywhere: it says when the service must be up, and that any downtime
//! inside that time is a breach. So the contractual requirement is [`CCTP_REQUIRED_RATIO`] = 1.0,
//! the whole window. Each [`DayVerdict`] carries both readings: `downtime_free` (the strict
//! verdict: not a second of downtime in the window) and `availability` compared with the
//! `required_ratio` the caller passes (`met`), for an SLA negotiated below 100 % or for reporting.
//!
//! # Daylight-saving days
//!
//! The window is defined in LOCAL wall-clock time (06:00 local → 03:00 local next day), and its
//! bounds are converted to instants with the time zone database, so its real length follows the
//! clock changes. Neither 06:00 nor 03:00 ever falls in a gap or a fold in Europe/Paris (the
//! changes happen at 02:00 → 03:00 and 03:00 → 02:00), so each bound is one exact instant. The
//! change happens in the night from Saturday to Sunday, which belongs to SATURDAY's window
//! (06:00 Saturday → 03:00 Sunday):
//! - last Sunday of March (e.g. 2025-03-30): 02:00–03:00 does not exist, so Saturday's window
//!   lasts 20 h of real time;
//! - last Sunday of October (e.g. 2025-10-26): 02:00–03:00 happens twice, so Saturday's window
//!   lasts 22 h, and downtime during both 02:xx hours counts.
//!
//! Downtime is always measured in real (elapsed) time, never as a difference of wall-clock
//! readings. For a time zone where a bound does fall in a gap or fold, jiff's "compatible"
//! disambiguation is used (the instant after a gap, the earlier of a fold).

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// The contractual ratio: the service must be available for the whole window.
pub const CCTP_REQUIRED_RATIO: f64 = 1.0;

/// A period during which a probed target was down. `end` is `None` while it still is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

/// What an observation changed in an [`OutageTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageChange {
    /// The N-th consecutive failure arrived; the outage started at the first failure of the run.
    Opened { start: Timestamp },
    /// The first success after an open outage.
    Closed { start: Timestamp, end: Timestamp },
}

impl OutageChange {
    /// The outage as it stands after this change (open or closed).
    pub fn outage(&self) -> Outage {
        match *self {
            OutageChange::Opened { start } => Outage { start, end: None },
            OutageChange::Closed { start, end } => Outage { start, end: Some(end) },
        }
    }
}

/// Turns the probe results of ONE target (or one service) into outages.
///
/// A single failed probe is often the probe's own fault (a dropped packet, a slow GC pause), so an
/// outage opens only after `fail_threshold` consecutive failures; it is then dated from the first
/// failure of the run, because that is when users started to be affected. It closes at the first
/// success: the real recovery happened somewhere between the last failure and that success, and
/// counting up to the success keeps the figure on the city's side rather than the provider's.
#[derive(Debug, Clone)]
pub struct OutageTracker {
    fail_threshold: u32,
    consecutive_failures: u32,
    first_failure: Option<Timestamp>,
    open_since: Option<Timestamp>,
    last_seen: Option<Timestamp>,
}

impl OutageTracker {
    /// `fail_threshold` consecutive failed probes open an outage; 0 is treated as 1.
    pub fn new(fail_threshold: u32) -> Self {
        OutageTracker {
            fail_threshold: fail_threshold.max(1),
            consecutive_failures: 0,
            first_failure: None,
            open_since: None,
            last_seen: None,
        }
    }

    /// Records one probe result. Results must arrive in time order: one older than the latest
    /// seen (a late retry, a clock step) is ignored, because it cannot reorder a run that has
    /// already been judged.
    pub fn observe(&mut self, at: Timestamp, ok: bool) -> Option<OutageChange> {
        if self.last_seen.is_some_and(|last| at < last) {
            tracing::debug!(%at, last = ?self.last_seen, "out-of-order probe result ignored");
            return None;
        }
        self.last_seen = Some(at);
        if ok {
            self.consecutive_failures = 0;
            self.first_failure = None;
            return self.open_since.take().map(|start| OutageChange::Closed { start, end: at });
        }
        let first = *self.first_failure.get_or_insert(at);
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.open_since.is_none() && self.consecutive_failures >= self.fail_threshold {
            self.open_since = Some(first);
            return Some(OutageChange::Opened { start: first });
        }
        None
    }

    /// The open outage, if there is one.
    pub fn current(&self) -> Option<Outage> {
        self.open_since.map(|start| Outage { start, end: None })
    }
}

/// The daily service window, in local wall-clock time: it opens at `opens` on day `D` and
/// closes at `closes` on day `D + 1`.
#[derive(Debug, Clone)]
pub struct ServiceWindow {
    tz: TimeZone,
    opens: Time,
    closes: Time,
}

impl ServiceWindow {
    /// The CCTP window: 06:00 → 03:00 the next day, in `tz` (Europe/Paris for the contract).
    pub fn cctp(tz: TimeZone) -> Self {
        ServiceWindow { tz, opens: Time::constant(6, 0, 0, 0), closes: Time::constant(3, 0, 0, 0) }
    }

    /// The time zone the window is defined in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The instants at which service day `day`'s window opens and closes (the closing instant is
    /// excluded). Saturates at the end of jiff's supported range (year 9999) instead of failing.
    pub fn window_of(&self, day: Date) -> (Timestamp, Timestamp) {
        let start = self.instant(day, self.opens);
        let end = match day.tomorrow() {
            Ok(next) => self.instant(next, self.closes),
            Err(_) => Timestamp::MAX,
        };
        (start, end)
    }

    /// The service day whose window contains `at`, or `None` during the 03:00–06:00 night.
    pub fn service_day(&self, at: Timestamp) -> Option<Date> {
        let local = self.tz.to_datetime(at).date();
        // `at` is either in the window of its own local date (after 06:00) or in the tail of the
        // previous day's window (before 03:00).
        let candidates = [Some(local), local.yesterday().ok()];
        candidates.into_iter().flatten().find(|&day| {
            let (start, end) = self.window_of(day);
            start <= at && at < end
        })
    }

    fn instant(&self, day: Date, time: Time) -> Timestamp {
        let wall = day.to_datetime(time);
        self.tz.to_ambiguous_timestamp(wall).compatible().unwrap_or(Timestamp::MAX)
    }
}

/// How one service day went.
#[derive(Debug, Clone, PartialEq)]
pub struct DayVerdict {
    pub day: Date,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    /// Real length of the window: 1260 (21 h), 1200 on the March change, 1320 on the October one.
    pub window_minutes: i64,
    /// Downtime inside the window up to `now` (overlapping outages counted once).
    pub downtime_minutes: f64,
    /// `1 - downtime / window`, over the WHOLE window even while it is still running.
    pub availability: f64,
    /// The strict contractual verdict: no downtime at all in the window (so far).
    pub downtime_free: bool,
    /// `availability >= required_ratio` (with a ratio of 1.0, the same as `downtime_free`).
    pub met: bool,
    /// Whether the window had closed at `now`. While it runs, `met == false` is already final
    /// (downtime only grows) but `met == true` is provisional.
    pub complete: bool,
}

/// A calendar month of service days.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthReport {
    pub year: i16,
    pub month: i8,
    /// One verdict per service day of the month, in order. The window of the month's last day
    /// ends at 03:00 on the 1st of the next month; the 00:00–03:00 of the 1st belongs to the
    /// previous month.
    pub days: Vec<DayVerdict>,
    pub window_minutes: i64,
    pub downtime_minutes: f64,
    /// `1 - downtime / window` summed over all the month's windows.
    pub availability: f64,
    /// Days whose verdict is not `met`.
    pub breached_days: usize,
}

/// A caller passed a month that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no such month {year}-{month:02}; the month must be between 1 and 12 and the year between -9999 and 9999")]
pub struct InvalidMonth {
    pub year: i16,
    pub month: i8,
}

/// Measures `outages` against the window of service day `day`, as known at `now`.
///
/// Outages still open count until `now`; nothing after `now` counts. Outages spanning several
/// days are split across the windows they cross, and overlapping outages (several probes of the
/// same service) are merged so that the same minute is not counted twice. `required_ratio` is
/// in `[0, 1]`; pass [`CCTP_REQUIRED_RATIO`] for the contract.
pub fn daily(window: &ServiceWindow, outages: &[Outage], day: Date, now: Timestamp, required_ratio: f64) -> DayVerdict {
    let (start, end) = window.window_of(day);
    let length = end.duration_since(start);
    let downtime = downtime_between(outages, start, end, now);
    let availability = ratio_up(downtime, length);
    let downtime_free = downtime.is_zero();
    // With the contractual ratio the verdict must not depend on float rounding of a tiny downtime.
    let met = if required_ratio >= 1.0 { downtime_free } else { availability >= required_ratio };
    DayVerdict {
        day,
        window_start: start,
        window_end: end,
        window_minutes: length.as_secs() / 60,
        downtime_minutes: minutes(downtime),
        availability,
        downtime_free,
        met,
        complete: now >= end,
    }
}

/// [`daily`] for every day of a month, with the month's overall availability.
pub fn monthly(
    window: &ServiceWindow,
    outages: &[Outage],
    year: i16,
    month: i8,
    now: Timestamp,
    required_ratio: f64,
) -> Result<MonthReport, InvalidMonth> {
    let first = Date::new(year, month, 1).map_err(|_| InvalidMonth { year, month })?;
    let days: Vec<DayVerdict> = (1..=first.days_in_month())
        .filter_map(|d| Date::new(year, month, d).ok())
        .map(|day| daily(window, outages, day, now, required_ratio))
        .collect();
    let mut length = SignedDuration::ZERO;
    let mut downtime = SignedDuration::ZERO;
    for verdict in &days {
        let (start, end) = (verdict.window_start, verdict.window_end);
        length += end.duration_since(start);
        downtime += downtime_between(outages, start, end, now);
    }
    Ok(MonthReport {
        year,
        month,
        window_minutes: length.as_secs() / 60,
        downtime_minutes: minutes(downtime),
        availability: ratio_up(downtime, length),
        breached_days: days.iter().filter(|v| !v.met).count(),
        days,
    })
}

/// Total time covered by `outages` within `[from, to)`, counting nothing after `now`.
fn downtime_between(outages: &[Outage], from: Timestamp, to: Timestamp, now: Timestamp) -> SignedDuration {
    let until = to.min(now);
    let mut spans: Vec<(Timestamp, Timestamp)> = outages
        .iter()
        .filter_map(|o| {
            let start = o.start.max(from);
            let end = o.end.unwrap_or(now).min(until);
            (start < end).then_some((start, end))
        })
        .collect();
    spans.sort_unstable();
    let mut total = SignedDuration::ZERO;
    let mut current: Option<(Timestamp, Timestamp)> = None;
    for (start, end) in spans {
        current = match current {
            Some((cur_start, cur_end)) if start <= cur_end => Some((cur_start, cur_end.max(end))),
            Some((cur_start, cur_end)) => {
                total += cur_end.duration_since(cur_start);
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((cur_start, cur_end)) = current {
        total += cur_end.duration_since(cur_start);
    }
    total
}

fn ratio_up(downtime: SignedDuration, length: SignedDuration) -> f64 {
    if length.is_zero() || length.is_negative() {
        return 1.0;
    }
    1.0 - downtime.as_secs_f64() / length.as_secs_f64()
}

fn minutes(d: SignedDuration) -> f64 {
    d.as_secs_f64() / 60.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn paris() -> ServiceWindow {
        ServiceWindow::cctp(TimeZone::get("Europe/Paris").expect("bundled tzdb has Europe/Paris"))
    }

    /// An instant written with its explicit UTC offset, so fold times are unambiguous.
    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("bad test timestamp {s}: {e}"))
    }

    fn out(start: &str, end: &str) -> Outage {
        Outage { start: at(start), end: Some(at(end)) }
    }

    /// Long after every window of 2025, so that all test days are complete.
    fn later() -> Timestamp {
        at("2026-01-01T00:00:00Z")
    }

    fn check_day(outages: &[Outage], day: Date, window_minutes: i64, downtime_minutes: f64) -> DayVerdict {
        let v = daily(&paris(), outages, day, later(), CCTP_REQUIRED_RATIO);
        assert_eq!(v.window_minutes, window_minutes, "window of {day}");
        assert!(
            (v.downtime_minutes - downtime_minutes).abs() < 1e-9,
            "downtime of {day}: got {}, expected {downtime_minutes}",
            v.downtime_minutes
        );
        assert_eq!(v.downtime_free, downtime_minutes == 0.0, "strict verdict of {day}");
        assert_eq!(v.met, downtime_minutes == 0.0, "contractual verdict of {day}");
        assert!(v.complete);
        v
    }

    #[test]
    fn ordinary_window_is_06_to_03_local() {
        // April: CEST (+02:00), 06:00 local = 04:00Z, 03:00 local next day = 01:00Z; 21 h.
        let (start, end) = paris().window_of(date(2025, 4, 7));
        assert_eq!(start, at("2025-04-07T04:00:00Z"));
        assert_eq!(end, at("2025-04-08T01:00:00Z"));
        // January: CET (+01:00).
        let (start, end) = paris().window_of(date(2025, 1, 15));
        assert_eq!(start, at("2025-01-15T05:00:00Z"));
        assert_eq!(end, at("2025-01-16T02:00:00Z"));
    }

    #[test]
    fn service_day_of_an_instant() {
        let w = paris();
        // 01:30 on Tuesday belongs to Monday's window; 04:00 to none; 06:00 to Tuesday.
        assert_eq!(w.service_day(at("2025-04-08T01:30:00+02:00")), Some(date(2025, 4, 7)));
        assert_eq!(w.service_day(at("2025-04-08T04:00:00+02:00")), None);
        assert_eq!(w.service_day(at("2025-04-08T03:00:00+02:00")), None, "03:00 itself is outside");
        assert_eq!(w.service_day(at("2025-04-08T06:00:00+02:00")), Some(date(2025, 4, 8)));
        assert_eq!(w.service_day(at("2025-04-08T23:59:00+02:00")), Some(date(2025, 4, 8)));
    }

    #[test]
    fn outage_crossing_03_00_counts_only_before_03_00() {
        // 02:30 → 03:45 in the night Monday 7 → Tuesday 8 April: 02:30–03:00 = 30 min for Monday.
        let o = [out("2025-04-08T02:30:00+02:00", "2025-04-08T03:45:00+02:00")];
        let v = check_day(&o, date(2025, 4, 7), 1260, 30.0);
        assert!((v.availability - (1.0 - 30.0 / 1260.0)).abs() < 1e-12);
        // Tuesday's window opens at 06:00: nothing.
        check_day(&o, date(2025, 4, 8), 1260, 0.0);
        // A 97 % SLA would tolerate it (1 - 30/1260 = 0.976), the contract does not.
        let lenient = daily(&paris(), &o, date(2025, 4, 7), later(), 0.97);
        assert!(lenient.met);
        assert!(!lenient.downtime_free);
        let stricter = daily(&paris(), &o, date(2025, 4, 7), later(), 0.98);
        assert!(!stricter.met);
    }

    #[test]
    fn outage_crossing_06_00_counts_only_after_06_00() {
        // 05:30 → 06:20 on Wednesday 9 April: 06:00–06:20 = 20 min for Wednesday.
        let o = [out("2025-04-09T05:30:00+02:00", "2025-04-09T06:20:00+02:00")];
        check_day(&o, date(2025, 4, 9), 1260, 20.0);
        // Tuesday's window closed at 03:00 on Wednesday.
        check_day(&o, date(2025, 4, 8), 1260, 0.0);
    }

    #[test]
    fn outage_crossing_midnight_is_inside_one_window() {
        // 23:40 Thursday 10 → 00:25 Friday 11 April: 20 + 25 = 45 min, all Thursday's.
        let o = [out("2025-04-10T23:40:00+02:00", "2025-04-11T00:25:00+02:00")];
        check_day(&o, date(2025, 4, 10), 1260, 45.0);
        check_day(&o, date(2025, 4, 11), 1260, 0.0);
    }

    #[test]
    fn outage_in_the_maintenance_night_is_no_breach() {
        // 03:10 → 05:50 on Saturday 12 April: entirely between 03:00 and 06:00.
        let o = [out("2025-04-12T03:10:00+02:00", "2025-04-12T05:50:00+02:00")];
        check_day(&o, date(2025, 4, 11), 1260, 0.0);
        check_day(&o, date(2025, 4, 12), 1260, 0.0);
    }

    #[test]
    fn march_change_shortens_saturday_window_to_20_h() {
        let w = paris();
        // Saturday 29 March 06:00 CET = 05:00Z → Sunday 30 March 03:00 CEST = 01:00Z: 20 h.
        assert_eq!(w.window_of(date(2025, 3, 29)), (at("2025-03-29T05:00:00Z"), at("2025-03-30T01:00:00Z")));
        // Outage 01:30 CET (00:30Z) → 03:30 CEST (01:30Z): one real hour, of which only
        // 00:30Z–01:00Z (01:30 → 02:00 → 03:00 on the wall clock) is in the window = 30 min,
        // not the 90 min that a wall-clock difference 01:30 → 03:00 would give.
        let o = [out("2025-03-30T01:30:00+01:00", "2025-03-30T03:30:00+02:00")];
        check_day(&o, date(2025, 3, 29), 1200, 30.0);
        // Sunday's own window is a normal 21 h (06:00 CEST Sunday → 03:00 CEST Monday).
        check_day(&o, date(2025, 3, 30), 1260, 0.0);
        check_day(&o, date(2025, 3, 28), 1260, 0.0);
    }

    #[test]
    fn october_change_lengthens_saturday_window_to_22_h() {
        let w = paris();
        // Saturday 25 October 06:00 CEST = 04:00Z → Sunday 26 October 03:00 CET = 02:00Z: 22 h.
        assert_eq!(w.window_of(date(2025, 10, 25)), (at("2025-10-25T04:00:00Z"), at("2025-10-26T02:00:00Z")));
        // 02:30 CEST (00:30Z) → 02:30 CET (01:30Z): zero on the wall clock, one real hour.
        let twice = [out("2025-10-26T02:30:00+02:00", "2025-10-26T02:30:00+01:00")];
        check_day(&twice, date(2025, 10, 25), 1320, 60.0);
        // 02:40 CET (01:40Z) → 03:30 CET (02:30Z): 20 min before 03:00, 30 after.
        let across_close = [out("2025-10-26T02:40:00+01:00", "2025-10-26T03:30:00+01:00")];
        check_day(&across_close, date(2025, 10, 25), 1320, 20.0);
        check_day(&across_close, date(2025, 10, 26), 1260, 0.0);
    }

    #[test]
    fn outage_spanning_three_days_is_split_across_windows() {
        // Monday 14 April 22:00 → Thursday 17 April 07:00 (CEST).
        let o = [out("2025-04-14T22:00:00+02:00", "2025-04-17T07:00:00+02:00")];
        check_day(&o, date(2025, 4, 13), 1260, 0.0); // closed at 03:00 on the 14th
        check_day(&o, date(2025, 4, 14), 1260, 300.0); // 22:00 → 03:00 = 5 h
        let full = check_day(&o, date(2025, 4, 15), 1260, 1260.0); // the whole window
        assert_eq!(full.availability, 0.0);
        check_day(&o, date(2025, 4, 16), 1260, 1260.0);
        check_day(&o, date(2025, 4, 17), 1260, 60.0); // 06:00 → 07:00
        check_day(&o, date(2025, 4, 18), 1260, 0.0);
    }

    #[test]
    fn open_outage_counts_until_now_and_running_day_is_incomplete() {
        let w = paris();
        let o = [Outage { start: at("2025-04-18T10:00:00+02:00"), end: None }];
        // now = 10:45: 45 min so far.
        let v = daily(&w, &o, date(2025, 4, 18), at("2025-04-18T10:45:00+02:00"), CCTP_REQUIRED_RATIO);
        assert_eq!(v.downtime_minutes, 45.0);
        assert!(!v.complete);
        assert!(!v.met);
        // now = 12:00: 2 h; availability is over the whole 21 h window: 1 - 120/1260.
        let v = daily(&w, &o, date(2025, 4, 18), at("2025-04-18T12:00:00+02:00"), 0.5);
        assert_eq!(v.downtime_minutes, 120.0);
        assert!((v.availability - (1.0 - 120.0 / 1260.0)).abs() < 1e-12);
        assert!(v.met);
        // Next day at 07:00, still down: the 18th got 10:00 → 03:00 = 17 h, the 19th 1 h so far.
        let now = at("2025-04-19T07:00:00+02:00");
        assert_eq!(daily(&w, &o, date(2025, 4, 18), now, 1.0).downtime_minutes, 1020.0);
        let today = daily(&w, &o, date(2025, 4, 19), now, 1.0);
        assert_eq!(today.downtime_minutes, 60.0);
        // A day that has not started yet has nothing.
        let tomorrow = daily(&w, &o, date(2025, 4, 20), now, 1.0);
        assert_eq!(tomorrow.downtime_minutes, 0.0);
        assert!(tomorrow.met && !tomorrow.complete);
    }

    #[test]
    fn closed_outage_ending_after_now_counts_only_until_now() {
        let o = [out("2025-04-21T10:00:00+02:00", "2025-04-21T11:00:00+02:00")];
        let v = daily(&paris(), &o, date(2025, 4, 21), at("2025-04-21T10:15:00+02:00"), 1.0);
        assert_eq!(v.downtime_minutes, 15.0);
    }

    #[test]
    fn overlapping_outages_count_once() {
        // 10:00–11:00 and 10:30–11:30 (two probes of the same service) = 90 min, plus a
        // separate 12:00–12:10 = 100 min; a duplicate changes nothing.
        let o = [
            out("2025-04-22T10:30:00+02:00", "2025-04-22T11:30:00+02:00"),
            out("2025-04-22T10:00:00+02:00", "2025-04-22T11:00:00+02:00"),
            out("2025-04-22T12:00:00+02:00", "2025-04-22T12:10:00+02:00"),
            out("2025-04-22T12:00:00+02:00", "2025-04-22T12:10:00+02:00"),
        ];
        check_day(&o, date(2025, 4, 22), 1260, 100.0);
    }

    #[test]
    fn monthly_report_for_april() {
        let o = [
            out("2025-04-08T02:30:00+02:00", "2025-04-08T03:45:00+02:00"), // 30 min on the 7th
            out("2025-04-20T14:00:00+02:00", "2025-04-20T15:00:00+02:00"), // 60 min on the 20th
            out("2025-04-25T03:30:00+02:00", "2025-04-25T05:00:00+02:00"), // maintenance night
            out("2025-05-01T02:00:00+02:00", "2025-05-01T02:30:00+02:00"), // 30 min on the 30th
            out("2025-04-01T02:00:00+02:00", "2025-04-01T02:30:00+02:00"), // March 31st's window
        ];
        let r = monthly(&paris(), &o, 2025, 4, later(), CCTP_REQUIRED_RATIO).expect("April exists");
        assert_eq!(r.days.len(), 30);
        assert_eq!(r.days[0].day, date(2025, 4, 1));
        assert_eq!(r.days[29].day, date(2025, 4, 30));
        // 30 windows of 21 h = 37 800 min; 30 + 60 + 30 = 120 min down.
        assert_eq!(r.window_minutes, 30 * 1260);
        assert_eq!(r.downtime_minutes, 120.0);
        assert!((r.availability - (1.0 - 120.0 / 37_800.0)).abs() < 1e-12);
        assert_eq!(r.breached_days, 3);
        let breached: Vec<Date> = r.days.iter().filter(|v| !v.met).map(|v| v.day).collect();
        assert_eq!(breached, [date(2025, 4, 7), date(2025, 4, 20), date(2025, 4, 30)]);
    }

    #[test]
    fn monthly_window_totals_follow_dst() {
        let w = paris();
        // March 2025: 30 windows of 21 h and Saturday 29th of 20 h = 39 000 min.
        let march = monthly(&w, &[], 2025, 3, later(), 1.0).expect("March exists");
        assert_eq!(march.window_minutes, 30 * 1260 + 1200);
        assert_eq!((march.availability, march.breached_days), (1.0, 0));
        // October 2025: 30 windows of 21 h and Saturday 25th of 22 h = 39 120 min.
        let october = monthly(&w, &[], 2025, 10, later(), 1.0).expect("October exists");
        assert_eq!(october.window_minutes, 30 * 1260 + 1320);
        assert_eq!(october.days.len(), 31);
    }

    #[test]
    fn monthly_rejects_a_month_that_does_not_exist() {
        let err = monthly(&paris(), &[], 2025, 13, later(), 1.0).unwrap_err();
        assert_eq!(err, InvalidMonth { year: 2025, month: 13 });
        assert!(err.to_string().contains("2025-13"));
    }

    #[test]
    fn tracker_opens_at_nth_failure_dated_from_the_first() {
        let mut t = OutageTracker::new(3);
        assert_eq!(t.observe(at("2025-04-07T10:00:00Z"), true), None);
        assert_eq!(t.observe(at("2025-04-07T10:01:00Z"), false), None);
        assert_eq!(t.observe(at("2025-04-07T10:02:00Z"), false), None);
        assert_eq!(t.current(), None);
        let opened = t.observe(at("2025-04-07T10:03:00Z"), false);
        assert_eq!(opened, Some(OutageChange::Opened { start: at("2025-04-07T10:01:00Z") }));
        assert_eq!(t.current(), Some(Outage { start: at("2025-04-07T10:01:00Z"), end: None }));
        // Further failures change nothing.
        assert_eq!(t.observe(at("2025-04-07T10:04:00Z"), false), None);
        let closed = t.observe(at("2025-04-07T10:05:00Z"), true);
        let expected = OutageChange::Closed { start: at("2025-04-07T10:01:00Z"), end: at("2025-04-07T10:05:00Z") };
        assert_eq!(closed, Some(expected));
        assert_eq!(expected.outage(), out("2025-04-07T10:01:00Z", "2025-04-07T10:05:00Z"));
        assert_eq!(t.current(), None);
        assert_eq!(t.observe(at("2025-04-07T10:06:00Z"), true), None);
    }

    #[test]
    fn tracker_ignores_flapping_below_threshold() {
        let mut t = OutageTracker::new(3);
        let pattern = [false, false, true, false, true, false, false, true, false, false];
        let base = at("2025-04-07T10:00:00Z");
        for (i, ok) in pattern.into_iter().enumerate() {
            let when = base + SignedDuration::from_secs(60 * i as i64);
            assert_eq!(t.observe(when, ok), None, "probe {i}");
        }
        // The run restarted at the last success: the next failure is the third of a new run,
        // and the outage starts at the first failure after that success (minute 8).
        let opened = t.observe(base + SignedDuration::from_secs(600), false);
        assert_eq!(opened, Some(OutageChange::Opened { start: base + SignedDuration::from_secs(480) }));
    }

    #[test]
    fn tracker_threshold_zero_means_one_and_late_results_are_ignored() {
        let mut t = OutageTracker::new(0);
        let start = at("2025-04-07T10:00:00Z");
        assert_eq!(t.observe(start, false), Some(OutageChange::Opened { start }));
        // A success older than the latest result cannot close the outage.
        assert_eq!(t.observe(at("2025-04-07T09:59:00Z"), true), None);
        assert!(t.current().is_some());
        let end = at("2025-04-07T10:02:00Z");
        assert_eq!(t.observe(end, true), Some(OutageChange::Closed { start, end }));
    }
}
