//! The seams to the parts the pages read through other crates' newer APIs: incidents and
//! outage notices, legal requisitions, availability against the contract's window, and
//! metric series. The binary implements these traits over `alerting`, `retention` and the
//! series store; a page whose service is not wired says "non configuré" and shows no figure.

use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;

/// A service's failure; the message goes to the log, never to the page.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServiceError(pub String);

/// What every service call returns.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// An incident with its CCTP class and resolution deadline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IncidentView {
    pub id: i64,
    pub title: String,
    /// The CCTP class as written in the contract (`bloquant`, `majeur non bloquant`…).
    pub cctp_class: String,
    pub opened: Timestamp,
    /// The working-day deadline; `None` when the class has none (vendor fix).
    pub deadline: Option<Timestamp>,
    pub resolved: Option<Timestamp>,
}

/// An outage notice to the school directors, awaiting or past the IT service's approval.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NoticeView {
    pub id: i64,
    pub subject: String,
    pub body: String,
    pub created: Timestamp,
    /// `None` while it awaits approval.
    pub approved: Option<(Timestamp, String)>,
    pub recipients: usize,
}

/// Incidents and outage notices (issue 6).
pub trait IncidentService: Send + Sync + std::fmt::Debug {
    /// Open and recently resolved incidents, newest first.
    fn incidents(&self, now: Timestamp) -> ServiceResult<Vec<IncidentView>>;
    /// Outage notices, those awaiting approval first.
    fn notices(&self, now: Timestamp) -> ServiceResult<Vec<NoticeView>>;
    /// Approves notice `id` with its (possibly edited) subject and body; it is then sent.
    fn approve_notice(&self, id: i64, subject: &str, body: &str, approver: &str, now: Timestamp) -> ServiceResult<()>;
}

/// A requisition search: the reference is mandatory and audited with the query.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequisitionQuery {
    /// The authority's reference (PV number…), mandatory.
    pub reference: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub ip: Option<IpAddr>,
    pub user: Option<String>,
}

/// One connection record found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequisitionRecord {
    pub timestamp: Timestamp,
    pub source_ip: Option<IpAddr>,
    pub source_port: Option<u16>,
    pub user: Option<String>,
    /// What the record is (`connexion web`, `pare-feu`…), never the content consulted.
    pub kind: String,
}

/// The result of a search, kept by the service for its export.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequisitionResult {
    pub search_id: String,
    pub records: Vec<RequisitionRecord>,
    /// More records matched than are shown; the export has them all.
    pub truncated: bool,
}

/// One line of the audit log of legal searches.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub operator: String,
    pub reference: String,
    pub query: String,
    pub results: u64,
    pub export_sha256: Option<String>,
}

/// A file to download.
#[derive(Debug, Clone)]
pub struct Export {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Legal requisitions over the connection archive (issue 7).
pub trait RequisitionService: Send + Sync + std::fmt::Debug {
    /// Runs and audits a search by `operator`.
    fn search(&self, query: &RequisitionQuery, operator: &str, now: Timestamp) -> ServiceResult<RequisitionResult>;
    /// The export (records and integrity manifest) of an earlier search; audited too.
    fn export(&self, search_id: &str, operator: &str, now: Timestamp) -> ServiceResult<Export>;
    /// The audit log, newest first.
    fn audit(&self, limit: usize) -> ServiceResult<Vec<AuditEntry>>;
}

/// One day's contractual window with the outages inside it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DayAvailability {
    pub day: Date,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    /// Outages clipped to the window: (start, end).
    pub outages: Vec<(Timestamp, Timestamp)>,
    /// Share of the window the ENT was up, 0 to 1.
    pub ratio: f64,
    pub breach: bool,
}

/// A month of availability.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MonthAvailability {
    pub year: i16,
    pub month: i8,
    pub days: Vec<DayAvailability>,
    pub ratio: f64,
    /// What the contract requires (21/24).
    pub required: f64,
}

/// Availability against the 06:00–03:00 window (issue 5).
pub trait AvailabilityService: Send + Sync + std::fmt::Debug {
    /// Whether the ENT answers right now; `None` while no probe has run.
    fn up_now(&self, now: Timestamp) -> ServiceResult<Option<bool>>;
    /// The month containing `day`, up to `now`.
    fn month(&self, day: Date, now: Timestamp) -> ServiceResult<MonthAvailability>;
}

/// A metric series (CPU, memory, disk, bandwidth…).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Series {
    pub points: Vec<(Timestamp, f64)>,
    /// A forecast continuing the series (disk full ETA), drawn dashed.
    pub forecast: Vec<(Timestamp, f64)>,
}

/// The metric series store (issue 5).
pub trait SeriesService: Send + Sync + std::fmt::Debug {
    /// The series `name` (as named in a panel file) between `from` and `to`; `None` if unknown.
    fn series(&self, name: &str, from: Timestamp, to: Timestamp) -> ServiceResult<Option<Series>>;
}

/// The services the binary wires in; each absent one shows as "non configuré".
#[derive(Debug, Clone, Default)]
pub struct Services {
    pub incidents: Option<Arc<dyn IncidentService>>,
    pub requisitions: Option<Arc<dyn RequisitionService>>,
    pub availability: Option<Arc<dyn AvailabilityService>>,
    pub series: Option<Arc<dyn SeriesService>>,
}
