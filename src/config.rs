//! The configuration file: raw TOML sections, then one validation pass that reports every
//! problem with `file:line:column`, the key and a hint.
//!
//! Each component has its own `…Config` struct with `deny_unknown_fields`. Values that need
//! more than a type (durations, time zones, addresses, parser formats) are kept as spanned
//! strings in the raw structs and compiled in [`Config::validate`], so a mistake points at the
//! exact place in the file.

use collector::DURATION_HINT;
pub(crate) use collector::parse_duration;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;

/// Every problem found in a configuration file.
#[derive(Debug)]
pub(crate) struct ConfigErrors {
    pub(crate) file: PathBuf,
    pub(crate) problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) line: usize,
    pub(crate) column: usize,
    /// Dotted path of the key (`alerting.resolve_after`), or the section.
    pub(crate) key: String,
    pub(crate) message: String,
    pub(crate) hint: String,
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.problems.len();
        writeln!(f, "{} has {n} problem{}:", self.file.display(), if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "{}:{}:{}: {}: {}", self.file.display(), p.line, p.column, p.key, p.message)?;
            if !p.hint.is_empty() {
                write!(f, "\n    hint: {}", p.hint)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/vigie")
}
fn default_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:8080".into())
}
fn default_log_level() -> String {
    "info".into()
}
fn default_time_zone() -> Spanned<String> {
    Spanned::new(0..0, "Europe/Paris".into())
}
fn default_batch_size() -> Spanned<usize> {
    Spanned::new(0..0, 512)
}
fn default_max_in_flight() -> Spanned<usize> {
    Spanned::new(0..0, 16)
}
fn default_channel_capacity() -> Spanned<usize> {
    Spanned::new(0..0, 8)
}
fn default_commit_interval() -> Spanned<String> {
    Spanned::new(0..0, "1s".into())
}
fn default_rules_dir() -> PathBuf {
    PathBuf::from("rules")
}
fn default_resolve_after() -> Spanned<String> {
    Spanned::new(0..0, "5m".into())
}
fn default_repeat_every() -> Spanned<String> {
    Spanned::new(0..0, "4h".into())
}
/// An empty list (no position in the file).
fn default_on_call() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}
fn default_from() -> String {
    "vigie@localhost".into()
}
fn default_keep_days() -> Spanned<u32> {
    Spanned::new(0..0, 365)
}
fn default_seal_after() -> Spanned<String> {
    Spanned::new(0..0, "2h".into())
}
fn default_ack_valid_for() -> Spanned<String> {
    Spanned::new(0..0, "7d".into())
}
fn default_escalate_after() -> Spanned<String> {
    Spanned::new(0..0, "30m".into())
}
fn default_link_valid_for() -> Spanned<String> {
    Spanned::new(0..0, "24h".into())
}
fn default_estimate() -> Spanned<String> {
    Spanned::new(0..0, "2h".into())
}
fn default_notices_per_minute() -> Spanned<u32> {
    Spanned::new(0..0, 120)
}
fn default_maintenance_silences() -> Vec<String> {
    vec!["ent.unavailable".into(), "ent.server-errors".into()]
}
fn default_smtp_port() -> u16 {
    25
}
fn default_start_at() -> Spanned<String> {
    Spanned::new(0..0, "beginning".into())
}
fn default_rate() -> u32 {
    200
}

/// Where Vigie keeps its state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DataConfig {
    /// The data directory: archive, SQLite state, outbox, dead letters. One process per directory.
    #[serde(default = "default_data_dir")]
    pub(crate) dir: PathBuf,
}

/// Vigie's own log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogConfig {
    /// `human` or `json`.
    #[serde(default)]
    pub(crate) format: LogFormat,
    /// A `RUST_LOG`-style filter; the `RUST_LOG` environment variable wins.
    #[serde(default = "default_log_level")]
    pub(crate) level: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    #[default]
    Human,
    Json,
}

/// The web server (dashboards, `/metrics`, `/healthz`, `/readyz`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerConfig {
    /// Address and port to listen on.
    #[serde(default = "default_listen")]
    pub(crate) listen: Spanned<String>,
    /// PEM certificate chain: serve HTTPS (with `tls_key`). Without it, plain HTTP behind a proxy.
    #[serde(default)]
    pub(crate) tls_cert: Option<Spanned<PathBuf>>,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub(crate) tls_key: Option<Spanned<PathBuf>>,
    /// Mark cookies `Secure`; on by default under TLS; set it behind a TLS reverse proxy.
    #[serde(default)]
    pub(crate) cookie_secure: Option<bool>,
    /// A session ends this long after login.
    #[serde(default = "default_session_lifetime")]
    pub(crate) session_lifetime: Spanned<String>,
    /// A session ends after this long without a request.
    #[serde(default = "default_session_idle")]
    pub(crate) session_idle: Spanned<String>,
    /// Login attempts per minute, per client address and per account name.
    #[serde(default = "default_per_minute")]
    pub(crate) login_attempts_per_minute: Spanned<u32>,
    /// Requisition searches per minute and account.
    #[serde(default = "default_per_minute")]
    pub(crate) searches_per_minute: Spanned<u32>,
    /// Take the client address from the last `X-Forwarded-For` entry (only behind your own proxy).
    #[serde(default)]
    pub(crate) behind_proxy: bool,
    /// Addresses that read `/metrics` and `/api/v1/blocklist` without logging in.
    #[serde(default = "default_machine_clients")]
    pub(crate) machine_clients: Spanned<Vec<String>>,
    /// A directory of extra panel files (`*.toml`), read at start.
    #[serde(default)]
    pub(crate) panels_dir: Option<PathBuf>,
    /// How often pages refresh themselves.
    #[serde(default = "default_refresh")]
    pub(crate) refresh: Spanned<String>,
    /// Create one account per role with a fresh password at each start (`vigie demo` only).
    #[serde(default)]
    pub(crate) demo_accounts: bool,
}

fn default_session_lifetime() -> Spanned<String> {
    Spanned::new(0..0, "12h".into())
}
fn default_session_idle() -> Spanned<String> {
    Spanned::new(0..0, "1h".into())
}
fn default_per_minute() -> Spanned<u32> {
    Spanned::new(0..0, 10)
}
fn default_machine_clients() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["127.0.0.1".into(), "::1".into()])
}
fn default_refresh() -> Spanned<String> {
    Spanned::new(0..0, "30s".into())
}

type At<'a> = &'a mut dyn FnMut(std::ops::Range<usize>, &str, String, &str);

/// Validates `[server]` beyond `listen`: TLS files, durations, limits, machine clients.
fn server_settings(raw: &ServerConfig, base: &Path, at: At<'_>) -> dashboards::ServerSettings {
    let mut duration = |value: &Spanned<String>, key: &str| match parse_duration(value.get_ref()) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            at(value.span(), key, "must be longer than zero".into(), DURATION_HINT);
            Duration::from_secs(60)
        }
        Err(e) => {
            at(value.span(), key, e, DURATION_HINT);
            Duration::from_secs(60)
        }
    };
    let session_lifetime = duration(&raw.session_lifetime, "server.session_lifetime");
    let session_idle = duration(&raw.session_idle, "server.session_idle");
    let refresh = duration(&raw.refresh, "server.refresh");
    let tls = match (&raw.tls_cert, &raw.tls_key) {
        (Some(cert), Some(key)) => {
            let files = dashboards::TlsFiles { cert: base.join(cert.get_ref()), key: base.join(key.get_ref()) };
            if let Err(e) = dashboards::tls_config(&files) {
                at(
                    cert.span(),
                    "server.tls_cert",
                    e.to_string(),
                    "give a PEM certificate chain and its PEM private key",
                );
            }
            Some(files)
        }
        (Some(one), None) | (None, Some(one)) => {
            at(one.span(), "server", "tls_cert and tls_key go together".into(), "give both, or neither for plain HTTP");
            None
        }
        (None, None) => None,
    };
    for (value, key) in [
        (&raw.login_attempts_per_minute, "server.login_attempts_per_minute"),
        (&raw.searches_per_minute, "server.searches_per_minute"),
    ] {
        if *value.get_ref() == 0 {
            at(value.span(), key, "must be at least 1".into(), "remove the key to use the default (10)");
        }
    }
    let mut machine_clients = Vec::new();
    for ip in raw.machine_clients.get_ref() {
        match ip.parse::<std::net::IpAddr>() {
            Ok(ip) => machine_clients.push(ip),
            Err(_) => at(
                raw.machine_clients.span(),
                "server.machine_clients",
                format!("`{ip}` is not an IP address"),
                "list single addresses, like [\"127.0.0.1\", \"::1\"]",
            ),
        }
    }
    dashboards::ServerSettings {
        cookie_secure: raw.cookie_secure.unwrap_or(tls.is_some()),
        tls,
        session_lifetime,
        session_idle,
        login_attempts_per_minute: *raw.login_attempts_per_minute.get_ref(),
        searches_per_minute: *raw.searches_per_minute.get_ref(),
        behind_proxy: raw.behind_proxy,
        machine_clients,
        panels_dir: raw.panels_dir.as_ref().map(|d| base.join(d)),
        refresh,
    }
}

/// How stages are joined.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PipelineConfig {
    /// Records per batch.
    #[serde(default = "default_batch_size")]
    pub(crate) batch_size: Spanned<usize>,
    /// Unacknowledged batches per source: bounds memory and the replay after a crash.
    #[serde(default = "default_max_in_flight")]
    pub(crate) max_in_flight: Spanned<usize>,
    /// Batches buffered between two stages before the upstream stage waits (backpressure).
    #[serde(default = "default_channel_capacity")]
    pub(crate) channel_capacity: Spanned<usize>,
    /// How often the archive commits (and so how often sources may advance).
    #[serde(default = "default_commit_interval")]
    pub(crate) commit_interval: Spanned<String>,
    /// The zone for log lines that carry no offset, the 21 h window and reports.
    #[serde(default = "default_time_zone")]
    pub(crate) time_zone: Spanned<String>,
}

/// One input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceConfig {
    /// A short name, unique among sources; it prefixes every event id, so never rename a source
    /// whose events are archived.
    pub(crate) id: Spanned<String>,
    /// `file` (follow a log file), `syslog` (receive from firewalls and servers) or `demo`
    /// (generated ENT traffic).
    pub(crate) kind: Spanned<String>,
    /// For `file`: the path to follow, or a pattern (`/var/log/apache2/*access.log`) whose
    /// every matching file is followed (new ones are found within seconds).
    pub(crate) path: Option<PathBuf>,
    /// For `file` and `syslog`: the parser (`apache_combined`, `netfilter`, … — `vigie
    /// check-config` lists them). Syslog defaults to `auto`.
    pub(crate) format: Option<Spanned<String>>,
    /// For `syslog`: UDP address to listen on (`0.0.0.0:514`).
    pub(crate) udp: Option<Spanned<String>>,
    /// For `syslog`: TCP address to listen on (`0.0.0.0:601`, or `6514` with TLS).
    pub(crate) tcp: Option<Spanned<String>>,
    /// For `syslog` over TLS (RFC 5425): the PEM certificate chain and private key.
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    /// For `syslog`: longest message accepted, in bytes; longer ones are cut and counted.
    pub(crate) max_frame: Option<usize>,
    /// For `format = "apache"` or `"nginx"`: the server's `LogFormat` / `log_format` string.
    pub(crate) log_format: Option<String>,
    /// For `file`: `beginning` or `end` — where to start the first time (later runs resume).
    #[serde(default = "default_start_at")]
    pub(crate) start_at: Spanned<String>,
    /// For `demo`: `web` or `firewall`.
    pub(crate) stream: Option<Spanned<String>>,
    /// For `demo`: records per second.
    #[serde(default = "default_rate")]
    pub(crate) rate: u32,
}

/// Detection rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnalyzerConfig {
    /// The directory of rule files (relative paths are relative to the config file).
    #[serde(default = "default_rules_dir")]
    pub(crate) rules: PathBuf,
}

/// Who is told, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertingConfig {
    /// On-call addresses that receive every alert (required: somebody must be told).
    #[serde(default = "default_on_call")]
    pub(crate) on_call: Spanned<Vec<String>>,
    /// The sender address.
    #[serde(default = "default_from")]
    pub(crate) from: String,
    /// An alert with no new detection for this long is resolved.
    #[serde(default = "default_resolve_after")]
    pub(crate) resolve_after: Spanned<String>,
    /// A still-firing alert is notified again this often.
    #[serde(default = "default_repeat_every")]
    pub(crate) repeat_every: Spanned<String>,
    /// The SMTP relay; without it emails are written as .eml files in `<data>/outbox/`.
    pub(crate) smtp: Option<SmtpConfig>,
    /// The dashboard's address as the recipients' browsers reach it, for the signed links in
    /// emails (approve a notice, acknowledge an alert); default: `http://` + `[server] listen`.
    pub(crate) public_url: Option<String>,
    /// How long an acknowledgement link stays valid.
    #[serde(default = "default_ack_valid_for")]
    pub(crate) ack_valid_for: Spanned<String>,
    /// The city's IT service (SCTN / CIME), told first of every outage; default: `on_call`.
    #[serde(default = "default_on_call")]
    pub(crate) it_service: Spanned<Vec<String>>,
    /// Who hears of a missed incident deadline; default: `on_call` and `it_service`.
    #[serde(default = "default_on_call")]
    pub(crate) escalate_to: Spanned<Vec<String>>,
    /// Outage notices to the school directors.
    #[serde(default)]
    pub(crate) notices: NoticesConfig,
    /// `[[alerting.inhibit]] source = "ent.unavailable"`, `targets = ["ent.server-errors"]`: while
    /// the source rule fires, the targets' alerts are recorded but not emailed.
    #[serde(default)]
    pub(crate) inhibit: Vec<InhibitConfig>,
    /// `[[alerting.route]] severity = "critical"`, `rules = ["web.", "auth."]`,
    /// `to = ["rssi@ville.fr"]`: more recipients for some alerts (on-call gets them all).
    #[serde(default)]
    pub(crate) route: Vec<RouteConfig>,
    /// `[[alerting.hold]] rules = ["ent.server-errors"]`, `for = "2m"`: alerts of these rules
    /// stay pending that long before anybody is told (a condition that clears by itself).
    #[serde(default)]
    pub(crate) hold: Vec<HoldConfig>,
}

/// Alerts of rules starting with one of `rules` stay pending for `for` before they fire.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldConfig {
    pub(crate) rules: Spanned<Vec<String>>,
    #[serde(rename = "for")]
    pub(crate) hold_for: Spanned<String>,
}

/// Extra recipients for the alerts of at least `severity` whose rule starts with one of `rules`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteConfig {
    /// `info`, `warning` or `critical`: the lowest severity the route takes.
    #[serde(default = "default_route_severity")]
    pub(crate) severity: Spanned<String>,
    /// Rule-id prefixes (`web.`, `mariadb.`); empty: every rule.
    #[serde(default)]
    pub(crate) rules: Vec<String>,
    pub(crate) to: Spanned<Vec<String>>,
}

fn default_route_severity() -> Spanned<String> {
    Spanned::new(0..0, "info".into())
}

/// Outage notices (CCTP 4.2.1): approval, escalation, rate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoticesConfig {
    /// Who approves a notice before it reaches the directors (each gets a personal link).
    #[serde(default = "default_on_call")]
    pub(crate) approvers: Spanned<Vec<String>>,
    /// Who gets the request when nobody approved within `escalate_after`.
    #[serde(default = "default_on_call")]
    pub(crate) second_approvers: Spanned<Vec<String>>,
    #[serde(default = "default_escalate_after")]
    pub(crate) escalate_after: Spanned<String>,
    /// How long an approval link stays valid.
    #[serde(default = "default_link_valid_for")]
    pub(crate) link_valid_for: Spanned<String>,
    /// The estimated duration written in a new notice (editable before approval).
    #[serde(default = "default_estimate")]
    pub(crate) default_estimate: Spanned<String>,
    /// Director emails per minute (the relay's rate limit).
    #[serde(default = "default_notices_per_minute")]
    pub(crate) per_minute: Spanned<u32>,
    /// Rules a planned maintenance silences during its window.
    #[serde(default = "default_maintenance_silences")]
    pub(crate) maintenance_silences: Vec<String>,
    /// Rules whose alerts count as ENT outages when no availability probe reports them.
    #[serde(default)]
    pub(crate) outage_rules: Vec<String>,
    /// Demo only: a demo approver approves every notice after this long.
    pub(crate) demo_approve_after: Option<Spanned<String>>,
}

/// One inhibition rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InhibitConfig {
    pub(crate) source: String,
    pub(crate) targets: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmtpConfig {
    pub(crate) host: String,
    #[serde(default = "default_smtp_port")]
    pub(crate) port: u16,
    /// Upgrade the connection with STARTTLS.
    #[serde(default)]
    pub(crate) starttls: bool,
    pub(crate) username: Option<String>,
    /// The name of the environment variable that holds the password (never the password).
    pub(crate) password_env: Option<String>,
}

/// What is added to each event: GeoIP, the school its address belongs to, the user's role.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrichConfig {
    /// MaxMind databases: `[enrich.geoip] location = "GeoLite2-City.mmdb"`, `asn = …`,
    /// `optional = false`. Reloaded when the files change.
    pub(crate) geoip: Option<collector::GeoIpConfig>,
    /// The schools CSV (`uai,nom,email_directeur,reseaux`): events from a school's networks
    /// carry its UAI and name, and those networks are never blocked.
    pub(crate) schools: Option<Spanned<PathBuf>>,
    /// Use the demo city's 188 schools instead of a CSV (what `vigie demo` does).
    #[serde(default)]
    pub(crate) demo_schools: bool,
    /// Roles from account names: `[enrich.roles] suffixes = { ".ens" = "enseignant" }`,
    /// `otherwise = "eleve"`.
    pub(crate) roles: Option<collector::RoleMap>,
}

/// The emergency IP block list the CCTP allows: built from detections, served on
/// `/api/v1/blocklist` and written as an nftables file the firewall can load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlocklistConfig {
    /// Networks never blocked (the city's own, partners); the schools' networks are added.
    #[serde(default = "default_on_call")]
    pub(crate) allow: Spanned<Vec<String>>,
    /// The nftables file, relative to the data directory (`nft -f` loads it).
    #[serde(default = "default_nftables_file")]
    pub(crate) nftables_file: PathBuf,
    /// The nftables table and set names in that file.
    #[serde(default = "default_nft_table")]
    pub(crate) table: String,
    #[serde(default = "default_nft_set")]
    pub(crate) set: String,
}

fn default_nftables_file() -> PathBuf {
    PathBuf::from("blocklist.nft")
}
fn default_nft_table() -> String {
    "vigie".into()
}
fn default_nft_set() -> String {
    "blocked".into()
}

/// The legal archive.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetentionConfig {
    /// Days kept. The law asks for one year (decree 2021-1362).
    #[serde(default = "default_keep_days")]
    pub(crate) keep_days: Spanned<u32>,
    /// The Ed25519 key that signs day manifests and deletion certificates (`vigie archive
    /// keygen`); keep it outside the data directory. Without it, days are not sealed and
    /// expired days are not purged (the purge must certify what it deletes).
    #[serde(default)]
    pub(crate) signing_key: Option<Spanned<PathBuf>>,
    /// Route → operation table (TOML); the built-in Beneylu School 3 table when absent.
    #[serde(default)]
    pub(crate) routes: Option<Spanned<PathBuf>>,
    /// How long after its end (UTC midnight) a day is sealed.
    #[serde(default = "default_seal_after")]
    pub(crate) seal_after: Spanned<String>,
}

fn default_role() -> Spanned<String> {
    Spanned::new(0..0, "all".into())
}

/// Which part of Vigie this process runs; `vigie run --role` overrides it. See docs/deployment.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RolesConfig {
    /// `all` (everything in one process, no Kafka), or one scale-out role joined by `[kafka]`:
    /// `collector`, `analyzer`, `archiver` or `alerter`.
    #[serde(default = "default_role")]
    pub(crate) run: Spanned<String>,
}

macro_rules! section_defaults {
    ($($ty:ident),*) => {$(
        impl Default for $ty {
            fn default() -> Self {
                toml::from_str("").expect("every field has a default")
            }
        }
    )*};
}
section_defaults!(
    DataConfig,
    LogConfig,
    ServerConfig,
    PipelineConfig,
    AnalyzerConfig,
    AlertingConfig,
    NoticesConfig,
    BlocklistConfig,
    RetentionConfig,
    RolesConfig
);

/// The whole file, as written.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawConfig {
    pub(crate) data: DataConfig,
    pub(crate) log: LogConfig,
    pub(crate) server: ServerConfig,
    pub(crate) pipeline: PipelineConfig,
    pub(crate) sources: Vec<SourceConfig>,
    pub(crate) analyzer: AnalyzerConfig,
    pub(crate) alerting: AlertingConfig,
    pub(crate) blocklist: BlocklistConfig,
    pub(crate) enrich: EnrichConfig,
    pub(crate) retention: RetentionConfig,
    pub(crate) scrape: series::config::ScrapeSection,
    pub(crate) probes: series::config::ProbesSection,
    pub(crate) watch: series::config::WatchSection,
    pub(crate) roles: RolesConfig,
    pub(crate) kafka: Option<bus::KafkaConfig>,
}

const SECTIONS: &[&str] = &[
    "data",
    "log",
    "server",
    "pipeline",
    "sources",
    "enrich",
    "analyzer",
    "alerting",
    "blocklist",
    "retention",
    "roles",
    "kafka",
    "scrape",
    "probes",
    "watch",
];

/// What a source reads.
#[derive(Debug, Clone)]
pub(crate) enum SourceKind {
    File { path: PathBuf, format: collector::parse::Format, start_at_end: bool },
    Syslog { listen: collector::source::SyslogConfig, format: collector::parse::Format },
    Demo { stream: collector::source::demo::DemoStream, rate: u32 },
}

#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) id: String,
    pub(crate) kind: SourceKind,
}

/// The validated configuration the pipeline is built from.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) data_dir: PathBuf,
    pub(crate) log: LogConfig,
    pub(crate) listen: SocketAddr,
    /// TLS, sessions, rate limits of the web server.
    pub(crate) server: dashboards::ServerSettings,
    /// `vigie demo`: create one account per role at start.
    pub(crate) demo_accounts: bool,
    pub(crate) batch_size: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) channel_capacity: usize,
    pub(crate) commit_interval: Duration,
    pub(crate) time_zone: jiff::tz::TimeZone,
    pub(crate) sources: Vec<Source>,
    pub(crate) rules_dir: PathBuf,
    pub(crate) alerting: AlertingConfig,
    pub(crate) policy: alerting::AlertPolicy,
    /// Outage notices; the signing key is added from the data directory when they open.
    pub(crate) notice_policy: alerting::NoticePolicy,
    pub(crate) incident_policy: alerting::IncidentPolicy,
    /// How long acknowledgement links are valid (the key lives in the data directory).
    pub(crate) ack_valid_for: Duration,
    pub(crate) block_allow: Vec<String>,
    /// Built while validating, so that databases and the schools CSV are read once.
    pub(crate) enricher: std::sync::Arc<collector::Enricher>,
    /// Whether GeoIP databases are to be watched for changes.
    pub(crate) geoip_reload: bool,
    pub(crate) nftables_file: PathBuf,
    pub(crate) nft_table: String,
    pub(crate) nft_set: String,
    pub(crate) keep_days: u32,
    /// `[scrape]`, `[probes]` and `[watch]`: what the metrics stage runs.
    pub(crate) metrics: series::config::MetricsSettings,
    /// `[retention] signing_key`, resolved against the configuration's directory.
    pub(crate) archive_key: Option<PathBuf>,
    /// `[retention] routes`, resolved.
    pub(crate) archive_routes: Option<PathBuf>,
    pub(crate) seal_after: Duration,
    /// `[roles] run` (or `--role`): what this process runs.
    pub(crate) role: crate::roles::Role,
    /// `[kafka]`, validated; required by every role but `all`.
    pub(crate) kafka: Option<bus::KafkaSettings>,
}

/// Reads and validates `path`.
pub(crate) fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let fail = |message: String, hint: &str| ConfigErrors {
        file: path.to_owned(),
        problems: vec![Problem { line: 0, column: 0, key: "(file)".into(), message, hint: hint.into() }],
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(format!("cannot read the file: {e}"), "check the path; `vigie check-config --help` shows an example")
    })?;
    parse(path, &text)
}

/// Parses and validates configuration `text`; `file` names it in messages and anchors relative paths.
pub(crate) fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut problems = Vec::new();
    let raw = parse_raw(text, &mut problems);
    let config = validate(file, text, &raw, &mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigErrors { file: file.to_owned(), problems })
    }
}

fn parse_raw(text: &str, problems: &mut Vec<Problem>) -> RawConfig {
    let mut raw = RawConfig::default();
    let doc = match text.parse::<toml_edit::Document<String>>() {
        Ok(doc) => doc,
        Err(e) => {
            let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
            problems.push(Problem {
                line,
                column,
                key: "(syntax)".into(),
                message: e.message().trim().to_owned(),
                hint: "this is not valid TOML; see config/vigie.example.toml".into(),
            });
            return raw;
        }
    };
    for (key, item) in doc.as_table().iter() {
        if !SECTIONS.contains(&key) {
            let offset = doc.as_table().key(key).and_then(|k| k.span()).or(item.span()).map_or(0, |s| s.start);
            let (line, column) = line_col(text, offset);
            problems.push(Problem {
                line,
                column,
                key: key.to_owned(),
                message: format!("unknown section `{key}`"),
                hint: format!("the sections are: {}", SECTIONS.join(", ")),
            });
        }
    }
    section(text, &doc, "data", &mut raw.data, problems);
    section(text, &doc, "log", &mut raw.log, problems);
    section(text, &doc, "server", &mut raw.server, problems);
    section(text, &doc, "pipeline", &mut raw.pipeline, problems);
    section(text, &doc, "sources", &mut raw.sources, problems);
    section(text, &doc, "analyzer", &mut raw.analyzer, problems);
    section(text, &doc, "alerting", &mut raw.alerting, problems);
    section(text, &doc, "blocklist", &mut raw.blocklist, problems);
    section(text, &doc, "enrich", &mut raw.enrich, problems);
    section(text, &doc, "retention", &mut raw.retention, problems);
    section(text, &doc, "scrape", &mut raw.scrape, problems);
    section(text, &doc, "probes", &mut raw.probes, problems);
    section(text, &doc, "watch", &mut raw.watch, problems);
    section(text, &doc, "roles", &mut raw.roles, problems);
    section(text, &doc, "kafka", &mut raw.kafka, problems);
    raw
}

/// Deserialises one top-level section on its own, so that a mistake in one section does not
/// hide the mistakes in the others.
fn section<T: DeserializeOwned>(
    text: &str,
    doc: &toml_edit::Document<String>,
    name: &str,
    out: &mut T,
    problems: &mut Vec<Problem>,
) {
    let Some(item) = doc.as_table().get(name) else { return };
    let mut only = toml_edit::Table::new();
    only.insert(name, item.clone());
    match toml_edit::de::from_document::<BTreeMap<String, T>>(toml_edit::DocumentMut::from(only)) {
        Ok(mut map) => {
            if let Some(value) = map.remove(name) {
                *out = value;
            }
        }
        Err(e) => {
            let span = e.span().or(item.span()).unwrap_or(0..0);
            let (line, column) = line_col(text, span.start);
            let key = key_at(text, span.start).map_or_else(|| name.to_owned(), |k| format!("{name}.{k}"));
            let message = e.message().trim().to_owned();
            problems.push(Problem { line, column, key, hint: hint_for(&message), message });
        }
    }
}

fn hint_for(message: &str) -> String {
    if message.contains("unknown field") {
        "remove or rename the key; the accepted keys are listed above and documented in config/vigie.example.toml"
            .into()
    } else if message.contains("invalid type") {
        "the value has the wrong type: quote strings, write numbers bare, lists in [ ]".into()
    } else if message.contains("missing field") {
        "add the key; config/vigie.example.toml shows each key with an example".into()
    } else {
        "see config/vigie.example.toml".into()
    }
}

/// The key written on the line containing `offset`, if that line reads `key = value`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_owned())
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |i| before[i + 1..].chars().count()) + 1;
    (line, column)
}

/// Records a problem: span in the file, key, message, hint.
type Report<'a> = dyn FnMut(std::ops::Range<usize>, &str, String, &str) + 'a;

/// Opens the GeoIP databases and reads the schools CSV; their own errors name the file (and
/// the CSV line), the place given here is the key in the configuration.
fn build_enricher(text: &str, base: &Path, raw: &EnrichConfig, at: &mut Report<'_>) -> collector::Enricher {
    let key_span = |key: &str| text.find(&format!("{key} ")).or_else(|| text.find(key)).map_or(0..0, |i| i..i);
    let geo = raw.geoip.as_ref().and_then(|geo| {
        let resolved = collector::GeoIpConfig {
            location: geo.location.as_ref().map(|p| base.join(p)),
            asn: geo.asn.as_ref().map(|p| base.join(p)),
            optional: geo.optional,
        };
        collector::GeoIp::open(&resolved)
            .map_err(|e| {
                at(key_span("[enrich.geoip]"), "enrich.geoip", e.to_string(), "check the path, or set optional = true")
            })
            .ok()
    });
    let schools = match (&raw.schools, raw.demo_schools) {
        (Some(path), false) => collector::Schools::load(&base.join(path.get_ref()))
            .map_err(|e| {
                at(path.span(), "enrich.schools", e.to_string(), "fix the CSV (uai,nom,email_directeur,reseaux)")
            })
            .ok(),
        (None, true) => Some(collector::Schools::from_demo()),
        (Some(path), true) => {
            at(path.span(), "enrich.schools", "schools and demo_schools exclude each other".into(), "keep one");
            None
        }
        (None, false) => None,
    };
    collector::Enricher::new(geo, schools, raw.roles.clone())
}

fn validate(file: &Path, text: &str, raw: &RawConfig, problems: &mut Vec<Problem>) -> Config {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut at = |span: std::ops::Range<usize>, key: &str, message: String, hint: &str| {
        let (line, column) = line_col(text, span.start);
        problems.push(Problem { line, column, key: key.into(), message, hint: hint.into() });
    };
    let duration = |value: &Spanned<String>, key: &str, at: &mut dyn FnMut(_, &str, String, &str)| {
        parse_duration(value.get_ref()).unwrap_or_else(|e| {
            at(value.span(), key, e, DURATION_HINT);
            Duration::from_secs(1)
        })
    };
    let commit_interval = duration(&raw.pipeline.commit_interval, "pipeline.commit_interval", &mut at);
    let resolve_after = duration(&raw.alerting.resolve_after, "alerting.resolve_after", &mut at);
    let repeat_every = duration(&raw.alerting.repeat_every, "alerting.repeat_every", &mut at);
    let seal_after = duration(&raw.retention.seal_after, "retention.seal_after", &mut at);
    let archive_routes = raw.retention.routes.as_ref().map(|r| base.join(r.get_ref()));
    if let (Some(path), Some(spanned)) = (&archive_routes, &raw.retention.routes)
        && let Err(e) = retention::RouteTable::load(path)
    {
        at(
            spanned.span(),
            "retention.routes",
            e.to_string(),
            "fix the table, or remove the key to use the built-in Beneylu School 3 table",
        );
    }
    let archive_key = raw.retention.signing_key.as_ref().map(|k| base.join(k.get_ref()));
    if let (Some(path), Some(spanned)) = (&archive_key, &raw.retention.signing_key)
        && let Err(e) = retention::ArchiveKey::load(path)
    {
        at(spanned.span(), "retention.signing_key", e.to_string(), "create it with `vigie archive keygen --key FILE`");
    }

    let tz_name = raw.pipeline.time_zone.get_ref().clone();
    let time_zone = jiff::tz::TimeZone::get(&tz_name).unwrap_or_else(|_| {
        at(
            raw.pipeline.time_zone.span(),
            "pipeline.time_zone",
            format!("unknown time zone `{tz_name}`"),
            "use an IANA time-zone name such as \"Europe/Paris\"",
        );
        jiff::tz::TimeZone::UTC
    });
    let listen = raw.server.listen.get_ref().parse::<SocketAddr>().unwrap_or_else(|_| {
        at(
            raw.server.listen.span(),
            "server.listen",
            format!("`{}` is not an address and port", raw.server.listen.get_ref()),
            "write it like \"127.0.0.1:8080\" or \"[::]:8080\"",
        );
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let server = server_settings(&raw.server, base, &mut at);
    for (value, key) in [
        (&raw.pipeline.batch_size, "pipeline.batch_size"),
        (&raw.pipeline.max_in_flight, "pipeline.max_in_flight"),
        (&raw.pipeline.channel_capacity, "pipeline.channel_capacity"),
    ] {
        if *value.get_ref() == 0 {
            at(value.span(), key, "must be at least 1".into(), "remove the key to use the default");
        }
    }

    let routes = raw
        .alerting
        .route
        .iter()
        .map(|r| {
            let min_severity = match r.severity.get_ref().as_str() {
                "info" => analyzer::Severity::Info,
                "warning" => analyzer::Severity::Warning,
                "critical" => analyzer::Severity::Critical,
                other => {
                    at(
                        r.severity.span(),
                        "alerting.route.severity",
                        format!("unknown severity {other:?}"),
                        "write severity = \"info\", \"warning\" or \"critical\" (the lowest the route takes)",
                    );
                    analyzer::Severity::Info
                }
            };
            if r.to.get_ref().is_empty() {
                at(r.to.span(), "alerting.route.to", "the route sends to nobody".into(), "to = [\"rssi@ville.fr\"]");
            }
            alerting::Route { min_severity, rule_prefixes: r.rules.clone(), to: r.to.get_ref().clone() }
        })
        .collect();
    let holds = raw
        .alerting
        .hold
        .iter()
        .map(|h| {
            if h.rules.get_ref().is_empty() {
                at(h.rules.span(), "alerting.hold.rules", "the hold names no rule".into(), "rules = [\"ent.\"]");
            }
            let hold_for = duration(&h.hold_for, "alerting.hold.for", &mut at);
            alerting::Hold { rule_prefixes: h.rules.get_ref().clone(), hold_for }
        })
        .collect();
    let policy = alerting::AlertPolicy {
        resolve_after,
        repeat_every,
        on_call: raw.alerting.on_call.get_ref().clone(),
        from: raw.alerting.from.clone(),
        time_zone: time_zone.clone(),
        // Filled in by the pipeline with the data directory's signing key.
        ack: None,
        inhibit: raw
            .alerting
            .inhibit
            .iter()
            .map(|i| alerting::Inhibition { source_rule: i.source.clone(), target_rules: i.targets.clone() })
            .collect(),
        routes,
        holds,
    };
    let ack_valid_for = duration(&raw.alerting.ack_valid_for, "alerting.ack_valid_for", &mut at);
    let n = &raw.alerting.notices;
    let escalate_after = duration(&n.escalate_after, "alerting.notices.escalate_after", &mut at);
    let link_valid_for = duration(&n.link_valid_for, "alerting.notices.link_valid_for", &mut at);
    let default_estimate = duration(&n.default_estimate, "alerting.notices.default_estimate", &mut at);
    let demo_approve_after =
        n.demo_approve_after.as_ref().map(|d| duration(d, "alerting.notices.demo_approve_after", &mut at));
    let or_on_call = |list: &Spanned<Vec<String>>| {
        if list.get_ref().is_empty() { raw.alerting.on_call.get_ref().clone() } else { list.get_ref().clone() }
    };
    let it_service = or_on_call(&raw.alerting.it_service);
    let mut escalate_to = raw.alerting.escalate_to.get_ref().clone();
    if escalate_to.is_empty() {
        escalate_to = raw.alerting.on_call.get_ref().clone();
        escalate_to.extend(it_service.iter().filter(|a| !raw.alerting.on_call.get_ref().contains(a)).cloned());
    }
    let public_url =
        raw.alerting.public_url.clone().unwrap_or_else(|| format!("http://{}", raw.server.listen.get_ref()));
    // The directors come from the schools table, read below with the enricher.
    let mut notice_policy = alerting::NoticePolicy {
        from: raw.alerting.from.clone(),
        it_service,
        approvers: or_on_call(&n.approvers),
        second_approvers: n.second_approvers.get_ref().clone(),
        escalate_after,
        link_valid_for,
        default_estimate,
        directors: Vec::new(),
        per_minute: *n.per_minute.get_ref(),
        base_url: public_url,
        time_zone: time_zone.clone(),
        maintenance_silences: n.maintenance_silences.clone(),
        outage_rules: n.outage_rules.clone(),
        demo_approve_after,
        backups: Vec::new(),
    };
    let incident_policy =
        alerting::IncidentPolicy { time_zone: time_zone.clone(), from: raw.alerting.from.clone(), escalate_to };
    if let Err(e) = policy.validate() {
        at(
            raw.alerting.on_call.span(),
            "alerting",
            e.to_string(),
            "give at least one on-call address, e.g. on_call = [\"astreinte@ville.fr\"], and a valid `from`",
        );
    }
    if let Err(e) = analyzer::parse_allow_list(raw.blocklist.allow.get_ref()) {
        at(
            raw.blocklist.allow.span(),
            "blocklist.allow",
            e.to_string(),
            "write networks like \"192.0.2.0/24\" or \"2001:db8::/32\"",
        );
    }
    let enricher = build_enricher(text, base, &raw.enrich, &mut at);
    let metrics = series::config::validate(&raw.scrape, &raw.probes, &raw.watch, base, &time_zone, &mut at);
    notice_policy.backups = metrics.config.backups.clone();
    if let Some(schools) = enricher.schools() {
        notice_policy.directors = alerting::directors_from_schools(schools);
    }
    // Without an on-call address the [alerting] problem above already says what is missing.
    let notice_check = if raw.alerting.on_call.get_ref().is_empty() { Ok(()) } else { notice_policy.validate() };
    if let Err(e) = notice_check {
        at(
            n.approvers.span(),
            "alerting.notices",
            e.to_string(),
            "list approvers = [\"dsi@ville.fr\"] and give addresses as name@domain",
        );
    }
    let probe = analyzer::BlockList::new(analyzer::BlockPolicy::default(), Vec::new());
    if let Err(e) = probe.render_nftables(jiff::Timestamp::UNIX_EPOCH, &raw.blocklist.set, &raw.blocklist.table) {
        at(0..0, "blocklist", e.to_string(), "use letters, digits and '_' for table and set");
    }
    if *raw.retention.keep_days.get_ref() < 365 {
        at(
            raw.retention.keep_days.span(),
            "retention.keep_days",
            format!("{} days is less than the one year the law requires", raw.retention.keep_days.get_ref()),
            "connection logs must be kept one year (L34-1 CPCE, decree 2021-1362): use 365 or more",
        );
    }
    let mut sources = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for src in &raw.sources {
        let id = src.id.get_ref().clone();
        if !seen.insert(id.clone()) {
            at(src.id.span(), "sources.id", format!("two sources are named `{id}`"), "give each source its own id");
        }
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            at(
                src.id.span(),
                "sources.id",
                format!("`{id}` is not a valid source id"),
                "use letters, digits, '-' and '_'",
            );
        }
        let kind = match src.kind.get_ref().as_str() {
            "file" => {
                let format = match (&src.format, &src.path) {
                    (Some(f), Some(_)) => {
                        match collector::parse::Format::from_config(f.get_ref(), src.log_format.as_deref()) {
                            Ok(format) => Some(format),
                            Err(e) => {
                                at(
                                    f.span(),
                                    "sources.format",
                                    e.to_string(),
                                    &format!("one of: {}", collector::parse::Format::names().join(", ")),
                                );
                                None
                            }
                        }
                    }
                    _ => {
                        at(
                            src.kind.span(),
                            "sources",
                            format!("file source `{id}` needs `path` and `format`"),
                            "add path = \"/var/log/apache2/access.log\" and format = \"apache_combined\"",
                        );
                        None
                    }
                };
                let start_at_end = match src.start_at.get_ref().as_str() {
                    "beginning" => false,
                    "end" => true,
                    other => {
                        at(
                            src.start_at.span(),
                            "sources.start_at",
                            format!("`{other}` is not a start position"),
                            "write \"beginning\" or \"end\"",
                        );
                        false
                    }
                };
                format.map(|format| SourceKind::File {
                    path: base.join(src.path.clone().unwrap_or_default()),
                    format,
                    start_at_end,
                })
            }
            "syslog" => {
                let format = src.format.as_ref().map_or(Some(collector::parse::Format::Auto), |f| {
                    collector::parse::Format::from_config(f.get_ref(), src.log_format.as_deref())
                        .map_err(|e| {
                            at(
                                f.span(),
                                "sources.format",
                                e.to_string(),
                                &format!("one of: {}", collector::parse::Format::names().join(", ")),
                            );
                        })
                        .ok()
                });
                let mut address = |value: &Option<Spanned<String>>, key: &str| {
                    value.as_ref().and_then(|v| {
                        v.get_ref()
                            .parse::<SocketAddr>()
                            .map_err(|_| {
                                at(
                                    v.span(),
                                    key,
                                    format!("`{}` is not an address and port", v.get_ref()),
                                    "write it like \"0.0.0.0:514\" or \"[::]:6514\"",
                                );
                            })
                            .ok()
                    })
                };
                let udp = address(&src.udp, "sources.udp");
                let tcp = address(&src.tcp, "sources.tcp");
                if src.udp.is_none() && src.tcp.is_none() {
                    at(
                        src.kind.span(),
                        "sources",
                        format!("syslog source `{id}` listens nowhere"),
                        "add udp = \"0.0.0.0:514\" and/or tcp = \"0.0.0.0:601\"",
                    );
                }
                let tls = match (&src.tls_cert, &src.tls_key) {
                    (Some(cert), Some(key)) => {
                        if src.tcp.is_none() {
                            at(
                                src.kind.span(),
                                "sources.tls_cert",
                                "TLS needs a tcp address".into(),
                                "add tcp = \"0.0.0.0:6514\" (RFC 5425)",
                            );
                        }
                        Some(collector::source::TlsFiles { cert: base.join(cert), key: base.join(key) })
                    }
                    (None, None) => None,
                    _ => {
                        at(
                            src.kind.span(),
                            "sources.tls_cert",
                            "tls_cert and tls_key go together".into(),
                            "give both PEM files, or neither",
                        );
                        None
                    }
                };
                let listen = collector::source::SyslogConfig {
                    udp,
                    tcp,
                    tls,
                    max_frame: src.max_frame.unwrap_or(collector::source::SyslogConfig::DEFAULT_MAX_FRAME),
                };
                format.map(|format| SourceKind::Syslog { listen, format })
            }
            "demo" => {
                use collector::source::demo::DemoStream;
                let stream = match src.stream.as_ref().map(|s| s.get_ref().as_str()) {
                    Some("web") | None => Some(DemoStream::Web),
                    Some("firewall") => Some(DemoStream::Firewall),
                    Some(other) => {
                        let span = src.stream.as_ref().map_or(0..0, |s| s.span());
                        at(
                            span,
                            "sources.stream",
                            format!("`{other}` is not a demo stream"),
                            "write \"web\" or \"firewall\"",
                        );
                        None
                    }
                };
                stream.map(|stream| SourceKind::Demo { stream, rate: src.rate.max(1) })
            }
            other => {
                at(
                    src.kind.span(),
                    "sources.kind",
                    format!("`{other}` is not a source kind"),
                    "write \"file\", \"syslog\" or \"demo\"",
                );
                None
            }
        };
        if let Some(kind) = kind {
            sources.push(Source { id, kind });
        }
    }

    let section_span = |name: &str| text.find(&format!("[{name}]")).map_or(0..0, |i| i..i);
    let role = crate::roles::Role::parse(raw.roles.run.get_ref()).unwrap_or_else(|| {
        at(
            raw.roles.run.span(),
            "roles.run",
            format!("`{}` is not a role", raw.roles.run.get_ref()),
            &format!("one of: {}", crate::roles::Role::NAMES.join(", ")),
        );
        crate::roles::Role::All
    });
    let kafka = raw.kafka.as_ref().and_then(|k| {
        k.validate()
            .map_err(|problems| {
                for p in problems {
                    at(section_span("kafka"), p.key, p.message, p.hint);
                }
            })
            .ok()
    });
    if role != crate::roles::Role::All && raw.kafka.is_none() {
        at(
            raw.roles.run.span(),
            "roles.run",
            format!("the {} role needs a [kafka] section", raw.roles.run.get_ref()),
            "add [kafka] brokers = \"kafka1:9092\", or run = \"all\" for everything in one process",
        );
    }

    Config {
        data_dir: base.join(&raw.data.dir),
        log: raw.log.clone(),
        listen,
        server,
        demo_accounts: raw.server.demo_accounts,
        batch_size: (*raw.pipeline.batch_size.get_ref()).max(1),
        max_in_flight: (*raw.pipeline.max_in_flight.get_ref()).max(1),
        channel_capacity: (*raw.pipeline.channel_capacity.get_ref()).max(1),
        commit_interval,
        time_zone,
        sources,
        rules_dir: base.join(&raw.analyzer.rules),
        alerting: raw.alerting.clone(),
        policy,
        notice_policy,
        incident_policy,
        ack_valid_for,
        block_allow: raw.blocklist.allow.get_ref().clone(),
        enricher: std::sync::Arc::new(enricher),
        geoip_reload: raw.enrich.geoip.is_some(),
        nftables_file: base.join(&raw.data.dir).join(&raw.blocklist.nftables_file),
        nft_table: raw.blocklist.table.clone(),
        nft_set: raw.blocklist.set.clone(),
        keep_days: *raw.retention.keep_days.get_ref(),
        metrics,
        archive_key,
        archive_routes,
        seal_after,
        role,
        kafka,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems of `text`, with the required on-call address added at its end when the
    /// text has no `[alerting]` section (so that each test sees only its own mistake).
    fn problems(text: &str) -> Vec<Problem> {
        let text = if text.contains("[alerting]") || text.is_empty() {
            text.to_owned()
        } else {
            format!("{text}\n[alerting]\non_call = [\"astreinte@ville.fr\"]\n")
        };
        parse(Path::new("/etc/vigie.toml"), &text).err().map(|e| e.problems).unwrap_or_default()
    }

    #[test]
    fn on_call_is_the_only_required_key() {
        let config = parse(Path::new("/etc/vigie.toml"), "[alerting]\non_call = [\"astreinte@ville.fr\"]\n").unwrap();
        assert_eq!(config.commit_interval, Duration::from_secs(1));
        let p = problems("");
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].message.contains("on_call"), "{}", p[0].message);
        assert_eq!(config.keep_days, 365);
        assert_eq!(config.time_zone.iana_name(), Some("Europe/Paris"));
    }

    #[test]
    fn routes_add_recipients_and_bad_ones_name_their_line() {
        let text = "[alerting]\non_call = [\"astreinte@ville.fr\"]\n\n[[alerting.route]]\nseverity = \"critical\"\n\
                    rules = [\"web.\"]\nto = [\"rssi@ville.fr\"]\n";
        let config = parse(Path::new("/etc/vigie.toml"), text).unwrap();
        assert_eq!(
            config.policy.routes,
            [alerting::Route {
                min_severity: analyzer::Severity::Critical,
                rule_prefixes: vec!["web.".into()],
                to: vec!["rssi@ville.fr".into()]
            }]
        );
        let held = format!("{text}\n[[alerting.hold]]\nrules = [\"ent.server-errors\"]\nfor = \"2m\"\n");
        let config = parse(Path::new("/etc/vigie.toml"), &held).unwrap();
        assert_eq!(config.policy.hold_for("ent.server-errors"), Some(Duration::from_secs(120)));
        assert_eq!(config.policy.hold_for("web.sqli"), None);
        let p = problems(&held.replace("\"2m\"", "\"soon\""));
        assert_eq!((p.len(), p[0].key.as_str()), (1, "alerting.hold.for"), "{p:#?}");
        let bad = text.replace("\"critical\"", "\"urgent\"");
        let p = problems(&bad);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!((p[0].line, p[0].key.as_str()), (5, "alerting.route.severity"));
        assert!(p[0].hint.contains("\"critical\""), "{}", p[0].hint);
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let text = "[pipeline]\ncommit_interval = \"soon\"\ntime_zone = \"Europe/Pariss\"\n\n[server]\nlisten = 8080\n\n[retention]\nkeep_dayz = 365\n";
        let p = problems(text);
        let found: Vec<(usize, &str)> = p.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(
            found,
            [
                (2, "pipeline.commit_interval"),
                (3, "pipeline.time_zone"),
                (6, "server.listen"),
                (9, "retention.keep_dayz")
            ],
            "{p:#?}"
        );
        assert!(p[3].message.contains("unknown field"), "{}", p[3].message);
        assert!(p[0].hint.contains("30s"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn less_than_a_year_of_retention_is_refused() {
        let p = problems("[retention]\nkeep_days = 30\n");
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!((p[0].line, p[0].column, p[0].key.as_str()), (2, 13, "retention.keep_days"));
        assert!(p[0].hint.contains("one year"));
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
