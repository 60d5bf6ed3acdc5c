//! Who is told: alerts with a lifecycle, and emails that are never lost.
//!
//! Detections from the analyzer are grouped into alerts by `(rule, key)` in an SQLite store
//! ([`AlertStore`]); firing, reminding and resolving queue French emails in a durable outbox
//! ([`Outbox`]) in the same transaction, and [`run_outbox`] delivers them over SMTP or into a
//! directory of `.eml` files, retrying through outages and across restarts.

mod compose;
mod deliver;
mod error;
mod french;
mod metrics;
mod outbox;
mod run;
mod schema;
mod store;

pub use analyzer::format_date_fr;
pub use deliver::{DeliveryReport, Mailer, Transport, deliver_due, run_outbox};
pub use error::AlertError;
pub use metrics::AlertingMetrics;
pub use outbox::{Email, Outbox, OutboxEntry, OutboxState, OutboxStats};
pub use run::run_alerts;
pub use store::{Alert, AlertFilter, AlertPolicy, AlertState, AlertStore, Silence, SilenceMatcher, TickReport};
