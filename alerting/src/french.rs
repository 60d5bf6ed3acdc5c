//! French wording for what on-call engineers read: severities (dates are
//! [`analyzer::format_date_fr`]).

use analyzer::Severity;

/// The word shown in subjects: `CRITIQUE`, `AVERTISSEMENT`, `INFO`.
pub(crate) fn severity_fr(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "CRITIQUE",
        Severity::Warning => "AVERTISSEMENT",
        Severity::Info => "INFO",
    }
}
