//! Watches of what the CCTP requires besides availability: the daily backups (kept 15 days,
//! restorable to D-1 and D-15) and the freshness of each server's ClamAV signatures (4.2.5).
//!
//! Each check returns a report (per-day status for backups) and samples for the series store,
//! where the saturation rules `backup.missing` and `antivirus.signatures-outdated` read them.

mod backup;
mod clamav;

pub use backup::{BackupDay, BackupDayStatus, BackupReport, BackupWatch, check_backups};
pub use clamav::{ClamavSource, ClamavStatus, check_clamav, parse_clamd_version, parse_freshclam_log};

#[cfg(test)]
mod tests;
