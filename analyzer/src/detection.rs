//! What the analyzer produces: a detection, its severity and the CCTP incident class it falls in.

use std::net::IpAddr;

use collector::EventId;
use serde::{Deserialize, Serialize};

/// One rule firing on one event. Alerting deduplicates on [`Detection::id`] (replays) and
/// groups on [`Detection::rule`] + [`Detection::key`] (the same offender).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// `"<rule id>:<event id>"`: the same event replayed after a crash yields the same id.
    pub id: String,
    pub rule: String,
    /// French title shown to the city's staff.
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub cctp_class: CctpClass,
    /// MITRE ATT&CK technique (`T1190`), where one fits.
    pub mitre: Option<String>,
    /// The time of the event that triggered the detection.
    pub timestamp: jiff::Timestamp,
    pub source_ip: Option<IpAddr>,
    pub user_name: Option<String>,
    /// The offender the rule groups by, as `field=value` pairs joined by `,`
    /// (`"source.ip=203.0.113.9"`).
    pub key: String,
    /// What matched, in French: the decoded fragment, or `"42 échecs de connexion en 5 min"`.
    pub evidence: String,
    pub event_id: EventId,
}

/// How urgent a detection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// The incident classes of the CCTP, each with its maximum resolution time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CctpClass {
    /// The ENT cannot be used: 1 working day.
    Bloquant,
    /// A major malfunction with a workaround: 5 working days.
    MajeurNonBloquant,
    /// A minor malfunction: 30 working days.
    Mineur,
    /// A major security flaw in the contractor's own code: 5 working days.
    SecuriteMajeureCodePropre,
    /// A major security flaw in third-party code: the vendor's fix, then 20 working days.
    SecuriteMajeureCodeExterne,
    /// A minor security flaw: 15 working days.
    SecuriteMineure,
}

/// The maximum resolution time the CCTP sets for a class, in working days (weekends and
/// French public holidays excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Counted from the opening of the incident.
    WorkingDays(u32),
    /// Counted from the day the vendor publishes a fix.
    AfterVendorFix(u32),
}

impl Deadline {
    /// The number of working days, whatever the starting point.
    pub fn working_days(self) -> u32 {
        match self {
            Deadline::WorkingDays(n) | Deadline::AfterVendorFix(n) => n,
        }
    }
}

impl CctpClass {
    /// The French label used in emails and reports.
    pub fn label(self) -> &'static str {
        match self {
            CctpClass::Bloquant => "incident bloquant",
            CctpClass::MajeurNonBloquant => "incident majeur non bloquant",
            CctpClass::Mineur => "incident mineur",
            CctpClass::SecuriteMajeureCodePropre => "faille de sécurité majeure (code propre)",
            CctpClass::SecuriteMajeureCodeExterne => "faille de sécurité majeure (code externe)",
            CctpClass::SecuriteMineure => "faille de sécurité mineure",
        }
    }

    /// The maximum resolution time (DESIGN.md, "incident classes").
    pub fn deadline(self) -> Deadline {
        match self {
            CctpClass::Bloquant => Deadline::WorkingDays(1),
            CctpClass::MajeurNonBloquant => Deadline::WorkingDays(5),
            CctpClass::Mineur => Deadline::WorkingDays(30),
            CctpClass::SecuriteMajeureCodePropre => Deadline::WorkingDays(5),
            CctpClass::SecuriteMajeureCodeExterne => Deadline::AfterVendorFix(20),
            CctpClass::SecuriteMineure => Deadline::WorkingDays(15),
        }
    }

    /// The label and the deadline together, as a report prints them
    /// (`"incident bloquant, résolution sous 1 jour ouvré"`).
    pub fn terms(self) -> String {
        let label = self.label();
        match self.deadline() {
            Deadline::WorkingDays(1) => format!("{label}, résolution sous 1 jour ouvré"),
            Deadline::WorkingDays(n) => format!("{label}, résolution sous {n} jours ouvrés"),
            Deadline::AfterVendorFix(n) => {
                format!("{label}, résolution sous {n} jours ouvrés après le correctif de l'éditeur")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_the_documented_ones() {
        assert_eq!(serde_json::to_string(&Severity::Critical).unwrap(), "\"critical\"");
        assert_eq!(
            serde_json::to_string(&CctpClass::SecuriteMajeureCodeExterne).unwrap(),
            "\"securite_majeure_code_externe\""
        );
        let c: CctpClass = serde_json::from_str("\"majeur_non_bloquant\"").unwrap();
        assert_eq!(c, CctpClass::MajeurNonBloquant);
    }

    #[test]
    fn deadlines_follow_the_cctp() {
        let days: Vec<u32> = [
            CctpClass::Bloquant,
            CctpClass::MajeurNonBloquant,
            CctpClass::Mineur,
            CctpClass::SecuriteMajeureCodePropre,
            CctpClass::SecuriteMajeureCodeExterne,
            CctpClass::SecuriteMineure,
        ]
        .iter()
        .map(|c| c.deadline().working_days())
        .collect();
        assert_eq!(days, [1, 5, 30, 5, 20, 15]);
        assert_eq!(CctpClass::Bloquant.terms(), "incident bloquant, résolution sous 1 jour ouvré");
        assert!(CctpClass::SecuriteMajeureCodeExterne.terms().ends_with("correctif de l'éditeur"));
    }
}
