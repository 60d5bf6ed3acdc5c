//! Backup watch: for each of the last N days (15 by default), is there a backup, is it
//! non-empty, and is it not much smaller than the day before? Is yesterday's there by the hour
//! it is due?
//!
//! A backup belongs to the day written in its name (`ent-2025-04-07.sql.gz`, `20250407.tar`),
//! or, without a date in its name, to the local date of its modification time. An entry may be a
//! file or a directory (its size is the sum of the files inside). Several entries of one day
//! add up (a dump per database).

use std::path::{Path, PathBuf};

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;

use crate::scrape::Sample;

/// One watched backup location.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupWatch {
    /// The directory holding one entry (file or directory) per backup.
    pub location: PathBuf,
    /// Days that must each have a backup, counting back from yesterday (15: D-1 to D-15).
    pub days: u32,
    /// A backup smaller than this fraction of the day before's is suspect (0.5: half).
    pub min_ratio: f64,
    /// Yesterday's backup must be there by this local time.
    pub due_by: Time,
    pub time_zone: TimeZone,
}

/// The verdict on one day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum BackupDayStatus {
    Ok,
    /// No backup for that day.
    Missing,
    /// The backup is there but holds 0 bytes.
    Empty,
    /// Smaller than `min_ratio` of the day before.
    Shrunk {
        ratio: f64,
    },
    /// Yesterday's backup, not yet due (before `due_by`).
    Pending,
}

/// One day of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupDay {
    pub date: Date,
    /// 1 for yesterday (D-1), up to `days`.
    pub days_ago: u32,
    pub bytes: u64,
    pub entries: Vec<String>,
    #[serde(flatten)]
    pub status: BackupDayStatus,
}

/// The watch's findings at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupReport {
    pub location: String,
    pub checked_at: Timestamp,
    /// D-1 first.
    pub days: Vec<BackupDay>,
    /// Days whose status is neither `ok` nor `pending`.
    pub missing: u32,
    /// Why the location could not be read at all, if it could not.
    pub error: Option<String>,
}

impl BackupReport {
    /// `backup_days_missing`, `backup_days_ok` and `backup_last_bytes`, labelled `location`.
    pub fn samples(&self) -> Vec<Sample> {
        let ok = self.days.iter().filter(|d| d.status == BackupDayStatus::Ok).count();
        let last = self.days.iter().find(|d| d.bytes > 0).map_or(0, |d| d.bytes);
        vec![
            Sample::new("backup_days_missing", f64::from(self.missing)),
            Sample::new("backup_days_ok", ok as f64),
            Sample::new("backup_last_bytes", last as f64),
            Sample::new("backup_watch_up", f64::from(u8::from(self.error.is_none()))),
        ]
        .into_iter()
        .map(|s| s.with_label("location", self.location.as_str()))
        .collect()
    }
}

/// Finds a date written `YYYY-MM-DD`, `YYYY_MM_DD` or `YYYYMMDD` in a file name.
fn date_in_name(name: &str) -> Option<Date> {
    let b = name.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let num = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<i32>().ok();
    for i in 0..b.len() {
        // Not in the middle of a longer number.
        if i > 0 && b[i - 1].is_ascii_digit() {
            continue;
        }
        let candidates: [(usize, usize, usize, usize); 2] = [(i, i + 5, i + 8, i + 10), (i, i + 4, i + 6, i + 8)];
        for (y, m, d, end) in candidates {
            let Some(s) = b.get(y..end) else { continue };
            let separated = end - y == 10;
            if separated && !(matches!(b[y + 4], b'-' | b'_') && b[y + 7] == b[y + 4]) {
                continue;
            }
            if !digits(&b[y..y + 4]) || !digits(&b[m..m + 2]) || !digits(&b[d..d + 2]) || s.is_empty() {
                continue;
            }
            if b.get(end).is_some_and(u8::is_ascii_digit) {
                continue;
            }
            let (Some(year), Some(month), Some(day)) = (num(&b[y..y + 4]), num(&b[m..m + 2]), num(&b[d..d + 2])) else {
                continue;
            };
            if let Ok(date) = Date::new(year as i16, month as i8, day as i8) {
                return Some(date);
            }
        }
    }
    None
}

fn size_of(path: &Path) -> std::io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        total += size_of(&entry?.path())?;
    }
    Ok(total)
}

/// Checks `watch` at `now`. Never fails: an unreadable location is a report with `error` and
/// every day missing.
pub fn check_backups(watch: &BackupWatch, now: Timestamp) -> BackupReport {
    let local = now.to_zoned_datetime(watch.time_zone.clone());
    let today = local.date();
    let mut by_day: std::collections::BTreeMap<Date, (u64, Vec<String>)> = std::collections::BTreeMap::new();
    let mut error = None;
    match std::fs::read_dir(&watch.location) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let date = date_in_name(&name).or_else(|| {
                    let modified = entry.metadata().ok()?.modified().ok()?;
                    let t = Timestamp::try_from(modified).ok()?;
                    Some(t.to_zoned_datetime(watch.time_zone.clone()).date())
                });
                let Some(date) = date else { continue };
                let bytes = match size_of(&path) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot size a backup");
                        0
                    }
                };
                let slot = by_day.entry(date).or_default();
                slot.0 += bytes;
                slot.1.push(name);
            }
        }
        Err(e) => error = Some(format!("cannot read {}: {e}", watch.location.display())),
    }
    let mut days = Vec::with_capacity(watch.days as usize);
    for ago in 1..=watch.days.max(1) {
        let Ok(date) = today.checked_sub((ago as i64).days()) else { break };
        let (bytes, mut entries) = by_day.get(&date).cloned().unwrap_or_default();
        entries.sort();
        let before = date.yesterday().ok().and_then(|d| by_day.get(&d)).map_or(0, |(b, _)| *b);
        let status = if entries.is_empty() {
            if ago == 1 && local.time() < watch.due_by { BackupDayStatus::Pending } else { BackupDayStatus::Missing }
        } else if bytes == 0 {
            BackupDayStatus::Empty
        } else if before > 0 && (bytes as f64) < watch.min_ratio * before as f64 {
            BackupDayStatus::Shrunk { ratio: (bytes as f64 / before as f64 * 1000.0).round() / 1000.0 }
        } else {
            BackupDayStatus::Ok
        };
        days.push(BackupDay { date, days_ago: ago, bytes, entries, status });
    }
    let missing =
        days.iter().filter(|d| !matches!(d.status, BackupDayStatus::Ok | BackupDayStatus::Pending)).count() as u32;
    BackupReport { location: watch.location.display().to_string(), checked_at: now, days, missing, error }
}

#[cfg(test)]
pub(super) fn date_in_name_for_tests(name: &str) -> Option<Date> {
    date_in_name(name)
}
