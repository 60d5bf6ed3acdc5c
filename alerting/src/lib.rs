//! Who is told: alerts with a lifecycle, incidents with their CCTP deadlines, outage notices
//! to the school directors with an approval step, and emails that are never lost.
//!
//! Detections from the analyzer are grouped into alerts by `(rule, key)` in an SQLite store
//! ([`AlertStore`]); firing, reminding and resolving queue French emails in a durable outbox
//! ([`Outbox`]) in the same transaction, and [`run_outbox`] delivers them over SMTP or into a
//! directory of `.eml` files, retrying through outages and across restarts. Availability
//! outages become [`Notices`] held until an approver agrees; [`Incidents`] carry the CCTP
//! class and a deadline in French working days ([`calendar`]).

pub mod calendar;
mod compose;
mod deliver;
mod error;
mod french;
mod incident;
mod metrics;
mod notice;
mod outbox;
mod report;
mod run;
mod schema;
mod store;
mod templates;
mod token;

pub use analyzer::format_date_fr;
pub use deliver::{DeliveryReport, Mailer, Transport, deliver_due, run_outbox};
pub use error::AlertError;
pub use incident::{DeadlineRule, Incident, IncidentClass, IncidentPolicy, Incidents};
pub use metrics::AlertingMetrics;
pub use notice::{
    Director, MaintenancePlan, Notice, NoticeDeliveries, NoticeKind, NoticePolicy, NoticeState, Notices,
    directors_from_schools, window_overlap_warnings,
};
pub use outbox::{Attachment, Email, Outbox, OutboxEntry, OutboxState, OutboxStats};
pub use report::{CHROMIUM, MonthlyReport, monthly_report, previous_month, render_pdf, write_files};
pub use run::{ServiceOutage, notices_tick, run_alerts, run_notices};
pub use store::{
    AckLinks, Alert, AlertFilter, AlertPolicy, AlertState, AlertStore, HistoryEntry, Hold, Inhibition, Route, Silence,
    SilenceMatcher, TickReport,
};
pub use token::{Claims, SigningKey};
