//! French wording for what on-call engineers read: severities (dates are
//! [`analyzer::format_date_fr`]).

use analyzer::Severity;
use jiff::SignedDuration;

/// The word shown in subjects: `CRITIQUE`, `AVERTISSEMENT`, `INFO`.
pub(crate) fn severity_fr(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "CRITIQUE",
        Severity::Warning => "AVERTISSEMENT",
        Severity::Info => "INFO",
    }
}

/// `3 min`, `1 h 12 min`, `2 j 4 h`: a duration as French readers write it (negative ones
/// count as zero).
pub(crate) fn duration_fr(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (days, hours) {
        (0, 0) => format!("{mins} min"),
        (0, h) => format!("{h} h {mins:02} min"),
        (d, h) => format!("{d} j {h} h"),
    }
}
