//! The seams to the parts the pages read through other crates' newer APIs: incidents and
//! outage notices, legal requisitions, availability against the contract's window, and
//! metric series. The binary implements these traits over `alerting`, `retention` and the
//! series store; a page whose service is not wired says "non configuré" and shows no figure.

use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;

/// Why a service call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request cannot be done as asked (a window too wide, an expired link, a notice
    /// already over): the French message is shown to the user, who can correct it.
    #[error("{0}")]
    Refused(String),
    /// The service failed; the message goes to the log, never to the page.
    #[error("{0}")]
    Failed(String),
}

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
    /// The service that is (or will be) down.
    pub service: String,
    /// `interruption` or `maintenance programmée`.
    pub kind: String,
    /// The subject one director receives (the first school's, as a sample).
    pub subject: String,
    /// The text one director receives, as a sample.
    pub body: String,
    /// The free text the IT service adds to the message (editable before approval).
    pub message: String,
    pub starts_at: Timestamp,
    /// The expected end the directors are told (editable before approval).
    pub expected_end: Timestamp,
    /// When the outage ended (then the directors are told the service is back).
    pub ended_at: Option<Timestamp>,
    /// When this revision was prepared.
    pub created: Timestamp,
    /// `None` while it awaits approval.
    pub approved: Option<(Timestamp, String)>,
    /// The outage ended before anybody approved: the directors were never told.
    pub cancelled: bool,
    pub recipients: usize,
}

/// Incidents and outage notices (issue 6).
pub trait IncidentService: Send + Sync + std::fmt::Debug {
    /// Open and recently resolved incidents, newest first.
    fn incidents(&self, now: Timestamp) -> ServiceResult<Vec<IncidentView>>;
    /// Outage notices, those awaiting approval first.
    fn notices(&self, now: Timestamp) -> ServiceResult<Vec<NoticeView>>;
    /// Approves notice `id` with its (possibly edited) expected end and added message; it is
    /// then sent to every director. Returns how many emails were queued.
    fn approve_notice(
        &self,
        id: i64,
        expected_end: Option<Timestamp>,
        message: &str,
        approver: &str,
        now: Timestamp,
    ) -> ServiceResult<usize>;
    /// Approves through the signed link of an approval email: `(notice id, emails queued)`.
    fn approve_with_token(&self, token: &str, now: Timestamp) -> ServiceResult<(i64, usize)>;
}

/// Whom a requisition is about: exactly one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum SearchTarget {
    /// One client address, with its source port when the authority gives it (CG-NAT).
    Ip(IpAddr, Option<u16>),
    /// A CIDR range (`203.0.113.0/24`).
    Network(String),
    /// One account.
    User(String),
    /// One school (UAI).
    School(String),
}

/// A requisition search: the requisition's identity is mandatory and audited with the query.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequisitionQuery {
    /// Who requires (`Parquet de Lyon`, `OPJ …, commissariat de …`).
    pub authority: String,
    /// The procedure (PV) number.
    pub procedure_number: String,
    /// The legal basis (`art. 60-1 CPP`).
    pub legal_basis: String,
    /// The requisition's date.
    pub date: Date,
    pub from: Timestamp,
    pub to: Timestamp,
    pub target: SearchTarget,
}

/// One connection record found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequisitionRecord {
    pub timestamp: Timestamp,
    pub source_ip: Option<IpAddr>,
    pub source_port: Option<u16>,
    pub user: Option<String>,
    /// The school the client belongs to (UAI).
    pub school: Option<String>,
    /// The nature of the operation (`connexion`, `publication`, `pare-feu:refus`…), never the
    /// content consulted.
    pub kind: String,
}

/// The result of a search, kept by the service for its export.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequisitionResult {
    pub search_id: String,
    /// How many records match in all.
    pub total: u64,
    pub records: Vec<RequisitionRecord>,
    /// More records matched than are shown; the export has them all.
    pub truncated: bool,
}

/// One line of the audit log of legal searches.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: Timestamp,
    pub operator: String,
    /// `search`, `export`, `audit-read`, `hold`, `release`.
    pub action: String,
    pub reference: String,
    pub query: String,
    pub results: Option<u64>,
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
    /// The audit log, newest first, after checking its chain; reading it is itself audited.
    fn audit(&self, operator: &str, limit: usize) -> ServiceResult<Vec<AuditEntry>>;
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
    /// Whether an availability probe watched this day's window (a day before monitoring
    /// started is no evidence of availability, and counts in no ratio).
    pub measured: bool,
}

/// A month of availability.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MonthAvailability {
    pub year: i16,
    pub month: i8,
    pub days: Vec<DayAvailability>,
    /// Over the measured days' windows up to now.
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

/// How the series a selector matches are folded into one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    /// Added up at each instant (queues of every RabbitMQ vhost).
    #[default]
    Sum,
    /// The lowest (the fullest file system's free space).
    Min,
    /// The highest.
    Max,
}

/// The metric series store (issue 5).
pub trait SeriesService: Send + Sync + std::fmt::Debug {
    /// The series a panel's selector matches (`name` or `name{label="value",…}`) between
    /// `from` and `to`, folded by `combine`; `None` when nothing matches.
    fn series(&self, selector: &str, combine: Combine, from: Timestamp, to: Timestamp)
    -> ServiceResult<Option<Series>>;
}

/// The services the binary wires in; each absent one shows as "non configuré".
#[derive(Debug, Clone, Default)]
pub struct Services {
    pub incidents: Option<Arc<dyn IncidentService>>,
    pub requisitions: Option<Arc<dyn RequisitionService>>,
    pub availability: Option<Arc<dyn AvailabilityService>>,
    pub series: Option<Arc<dyn SeriesService>>,
}
