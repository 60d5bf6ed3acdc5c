//! The `[scrape]`, `[probes]` and `[watch]` sections of `vigie.toml`, raw then validated into a
//! [`MetricsConfig`]. Values that need more than a type keep their place in the file
//! (`toml::Spanned`) so that a mistake is reported at its line and column.

use collector::{DURATION_HINT, parse_duration};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::run::{ClamavWatch, MetricsConfig, ProbeSchedule, ScrapeTarget};

/// Records a problem: span in the file, key, message, hint.
pub type Report<'a> = &'a mut dyn FnMut(Range<usize>, &str, String, &str);

fn spanned(s: &str) -> Spanned<String> {
    Spanned::new(0..0, s.to_owned())
}
fn d15s() -> Spanned<String> {
    spanned("15s")
}
fn d10s() -> Spanned<String> {
    spanned("10s")
}
fn d30s() -> Spanned<String> {
    spanned("30s")
}
fn d5m() -> Spanned<String> {
    spanned("5m")
}
fn d2d() -> Spanned<String> {
    spanned("2d")
}
fn three() -> u32 {
    3
}
fn fifteen() -> u32 {
    15
}
fn half() -> f64 {
    0.5
}
fn six() -> Spanned<String> {
    spanned("06:00")
}
fn floor_mbps() -> f64 {
    15.0
}

/// `[scrape]`: metric targets pulled by `vigie run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeSection {
    /// Default time between two scrapes of a target.
    #[serde(default = "d15s")]
    pub interval: Spanned<String>,
    /// Default time a scrape may take.
    #[serde(default = "d10s")]
    pub timeout: Spanned<String>,
    /// Targets on the default schedule: `host`, `redis://…`, `mysql://…`, `http(s)://…/metrics`,
    /// `apache+http://…/server-status?auto`, `nginx+http://…`, `rabbitmq+http://…`.
    #[serde(default)]
    pub targets: Vec<Spanned<String>>,
    /// Targets with their own schedule: `[[scrape.target]] url = "…" interval = "1m"`.
    #[serde(default)]
    pub target: Vec<ScrapeTargetSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeTargetSection {
    pub url: Spanned<String>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

/// `[probes]`: checks of the ENT as its users see it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesSection {
    /// Default time between two runs of a probe.
    #[serde(default = "d30s")]
    pub interval: Spanned<String>,
    /// Default time a probe may take.
    #[serde(default = "d10s")]
    pub timeout: Spanned<String>,
    /// Consecutive failures of an availability probe that open an outage.
    #[serde(default = "three")]
    pub fail_threshold: u32,
    /// Probe the demo's local ENT (what `vigie demo` does).
    #[serde(default)]
    pub demo: bool,
    #[serde(default)]
    pub http: Vec<HttpProbeSection>,
    #[serde(default)]
    pub tcp: Vec<TcpProbeSection>,
    #[serde(default)]
    pub bandwidth: Vec<BandwidthProbeSection>,
}

/// `[[probes.http]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbeSection {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
    /// Text the page must contain.
    pub contains: Option<String>,
    /// Accepted statuses (default: any 2xx or 3xx).
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// PEM CA certificates to trust instead of the public roots.
    pub ca_file: Option<PathBuf>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    /// Whether its failures are outages of the ENT for the 21 h accounting (default true).
    pub availability: Option<bool>,
}

/// `[[probes.tcp]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbeSection {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    /// Whether its failures are outages of the ENT (default false).
    #[serde(default)]
    pub availability: bool,
}

/// `[[probes.bandwidth]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandwidthProbeSection {
    pub name: Spanned<String>,
    /// A file of a few MB on the city's servers.
    pub url: Spanned<String>,
    /// The floor, in Mb/s (the CCTP guarantees 15).
    #[serde(default = "floor_mbps")]
    pub floor_mbps: f64,
    pub ca_file: Option<PathBuf>,
    /// Default 15 minutes: a download costs the bandwidth it measures.
    pub interval: Option<Spanned<String>>,
    /// Default 60 s.
    pub timeout: Option<Spanned<String>>,
}

/// `[watch]`: backups and anti-virus signatures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSection {
    /// Time between two checks.
    #[serde(default = "d5m")]
    pub interval: Spanned<String>,
    #[serde(default)]
    pub backups: Vec<BackupSection>,
    #[serde(default)]
    pub clamav: Vec<ClamavSection>,
}

/// `[[watch.backups]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// The directory with one file or directory per daily backup.
    pub location: Spanned<PathBuf>,
    /// Days that must each have a backup, from D-1 back (the CCTP keeps 15).
    #[serde(default = "fifteen")]
    pub days: u32,
    /// A backup smaller than this fraction of the day before's is flagged.
    #[serde(default = "half")]
    pub min_ratio: f64,
    /// Local time by which yesterday's backup must be there.
    #[serde(default = "six")]
    pub due_by: Spanned<String>,
}

/// `[[watch.clamav]]`: one of `clamd`, `socket` or `freshclam_log`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClamavSection {
    pub server: Spanned<String>,
    /// clamd's TCP address, `HOST:3310`.
    pub clamd: Option<String>,
    /// clamd's unix socket.
    pub socket: Option<PathBuf>,
    /// freshclam's log file.
    pub freshclam_log: Option<PathBuf>,
    /// Signatures older than this raise `antivirus.signatures-outdated`.
    #[serde(default = "d2d")]
    pub max_age: Spanned<String>,
}

macro_rules! empty_default {
    ($($ty:ident),*) => {$(
        impl Default for $ty {
            fn default() -> Self {
                toml::from_str("").expect("every field has a default")
            }
        }
    )*};
}
empty_default!(ScrapeSection, ProbesSection, WatchSection);

/// The validated sections: what the metrics stage runs, and whether to probe the demo ENT.
#[derive(Debug, Clone, Default)]
pub struct MetricsSettings {
    pub config: MetricsConfig,
    /// `[probes] demo = true`: the pipeline serves the demo ENT and probes it.
    pub demo: bool,
    /// Interval, timeout and failure threshold of the demo probes.
    pub demo_interval: Duration,
    pub demo_timeout: Duration,
    pub fail_threshold: u32,
}

impl MetricsSettings {
    /// The probes of the demo ENT served at `base` (`http://127.0.0.1:PORT`): its login page
    /// (an availability probe, so the demo's outage is accounted) and its bandwidth file.
    pub fn demo_probes(&self, base: &str) -> Vec<ProbeSchedule> {
        let page = collector::Probe {
            name: "ent-demo".into(),
            kind: collector::ProbeKind::Http(collector::HttpCheck {
                url: format!("{base}/"),
                expect_status: vec![],
                contains: Some(collector::probe::DEMO_ENT_TITLE.into()),
                ca_file: None,
            }),
            timeout: self.demo_timeout,
        };
        let download = collector::Probe {
            name: "debit-demo".into(),
            kind: collector::ProbeKind::Bandwidth {
                url: format!("{base}/download"),
                floor_bps: collector::probe::CCTP_BANDWIDTH_FLOOR_BPS,
                ca_file: None,
            },
            timeout: Duration::from_secs(60),
        };
        vec![
            ProbeSchedule {
                probe: page,
                interval: self.demo_interval,
                availability: true,
                fail_threshold: self.fail_threshold,
            },
            ProbeSchedule {
                probe: download,
                interval: Duration::from_secs(300),
                availability: false,
                fail_threshold: 1,
            },
        ]
    }
}

/// Validates the three sections; every problem goes to `at`. Relative paths are relative to `base`.
pub fn validate(
    scrape: &ScrapeSection,
    probes: &ProbesSection,
    watch: &WatchSection,
    base: &Path,
    time_zone: &jiff::tz::TimeZone,
    at: Report<'_>,
) -> MetricsSettings {
    let duration = |value: &Spanned<String>, key: &str, at: Report<'_>| match parse_duration(value.get_ref()) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            at(value.span(), key, "must be longer than zero".into(), DURATION_HINT);
            Duration::from_secs(30)
        }
        Err(e) => {
            at(value.span(), key, e, DURATION_HINT);
            Duration::from_secs(30)
        }
    };
    let mut config = MetricsConfig { time_zone: time_zone.clone(), ..MetricsConfig::default() };

    let interval = duration(&scrape.interval, "scrape.interval", at);
    let timeout = duration(&scrape.timeout, "scrape.timeout", at);
    let mut add_target =
        |url: &Spanned<String>, interval, timeout, at: Report<'_>| match collector::Target::parse(url.get_ref()) {
            Ok(target) => config.scrapes.push(ScrapeTarget { target, interval, timeout }),
            Err(e) => at(url.span(), "scrape.targets", e.to_string(), "see `vigie scrape --help` for the target forms"),
        };
    for url in &scrape.targets {
        add_target(url, interval, timeout, at);
    }
    for t in &scrape.target {
        let i = t.interval.as_ref().map_or(interval, |v| duration(v, "scrape.target.interval", at));
        let o = t.timeout.as_ref().map_or(timeout, |v| duration(v, "scrape.target.timeout", at));
        add_target(&t.url, i, o, at);
    }

    let p_interval = duration(&probes.interval, "probes.interval", at);
    let p_timeout = duration(&probes.timeout, "probes.timeout", at);
    let fail_threshold = probes.fail_threshold.max(1);
    let mut names = std::collections::HashSet::new();
    let mut push = |name: &Spanned<String>,
                    kind: collector::ProbeKind,
                    interval: Duration,
                    timeout: Duration,
                    availability: bool,
                    at: Report<'_>| {
        let n = name.get_ref();
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            at(
                name.span(),
                "probes.name",
                format!("`{n}` is not a valid probe name"),
                "use letters, digits, '-' and '_'",
            );
            return;
        }
        if !names.insert(n.clone()) {
            at(name.span(), "probes.name", format!("two probes are named `{n}`"), "give each probe its own name");
            return;
        }
        let probe = collector::Probe { name: n.clone(), kind, timeout };
        if let Err(e) = probe.validate() {
            at(name.span(), "probes", format!("probe `{n}`: {e}"), "see config/vigie.example.toml, section [probes]");
            return;
        }
        config.probes.push(ProbeSchedule { probe, interval, availability, fail_threshold });
    };
    for h in &probes.http {
        let kind = collector::ProbeKind::Http(collector::HttpCheck {
            url: h.url.get_ref().clone(),
            expect_status: h.expect_status.clone(),
            contains: h.contains.clone(),
            ca_file: h.ca_file.as_ref().map(|p| base.join(p)),
        });
        let i = h.interval.as_ref().map_or(p_interval, |v| duration(v, "probes.http.interval", at));
        let o = h.timeout.as_ref().map_or(p_timeout, |v| duration(v, "probes.http.timeout", at));
        push(&h.name, kind, i, o, h.availability.unwrap_or(true), at);
    }
    for t in &probes.tcp {
        let kind = collector::ProbeKind::Tcp { address: t.address.get_ref().clone() };
        let i = t.interval.as_ref().map_or(p_interval, |v| duration(v, "probes.tcp.interval", at));
        let o = t.timeout.as_ref().map_or(p_timeout, |v| duration(v, "probes.tcp.timeout", at));
        push(&t.name, kind, i, o, t.availability, at);
    }
    for b in &probes.bandwidth {
        let kind = collector::ProbeKind::Bandwidth {
            url: b.url.get_ref().clone(),
            floor_bps: b.floor_mbps * 1_000_000.0,
            ca_file: b.ca_file.as_ref().map(|p| base.join(p)),
        };
        let i = b.interval.as_ref().map_or(Duration::from_secs(900), |v| duration(v, "probes.bandwidth.interval", at));
        let o = b.timeout.as_ref().map_or(Duration::from_secs(60), |v| duration(v, "probes.bandwidth.timeout", at));
        push(&b.name, kind, i, o, false, at);
    }

    config.watch_every = duration(&watch.interval, "watch.interval", at);
    for b in &watch.backups {
        let due_by = jiff::civil::Time::strptime("%H:%M", b.due_by.get_ref()).unwrap_or_else(|_| {
            at(
                b.due_by.span(),
                "watch.backups.due_by",
                format!("`{}` is not a time", b.due_by.get_ref()),
                "write it like \"06:00\"",
            );
            jiff::civil::Time::constant(6, 0, 0, 0)
        });
        if !(0.0..=1.0).contains(&b.min_ratio) {
            at(
                b.location.span(),
                "watch.backups.min_ratio",
                format!("{} is not between 0 and 1", b.min_ratio),
                "e.g. 0.5",
            );
        }
        config.backups.push(collector::watch::BackupWatch {
            location: base.join(b.location.get_ref()),
            days: b.days.max(1),
            min_ratio: b.min_ratio,
            due_by,
            time_zone: time_zone.clone(),
        });
    }
    for c in &watch.clamav {
        let max_age = duration(&c.max_age, "watch.clamav.max_age", at);
        let source = match (&c.clamd, &c.socket, &c.freshclam_log) {
            (Some(addr), None, None) => Some(collector::watch::ClamavSource::Tcp(addr.clone())),
            (None, Some(path), None) => Some(collector::watch::ClamavSource::Unix(base.join(path))),
            (None, None, Some(path)) => Some(collector::watch::ClamavSource::FreshclamLog(base.join(path))),
            _ => {
                at(
                    c.server.span(),
                    "watch.clamav",
                    format!("server `{}` needs exactly one of clamd, socket and freshclam_log", c.server.get_ref()),
                    "e.g. clamd = \"127.0.0.1:3310\"",
                );
                None
            }
        };
        if let Some(source) = source {
            config.clamav.push(ClamavWatch { server: c.server.get_ref().clone(), source, max_age });
        }
    }
    MetricsSettings { config, demo: probes.demo, demo_interval: p_interval, demo_timeout: p_timeout, fail_threshold }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (MetricsSettings, Vec<(usize, String, String)>) {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Doc {
            scrape: ScrapeSection,
            probes: ProbesSection,
            watch: WatchSection,
        }
        let doc: Doc = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let mut problems = Vec::new();
        let mut at = |span: Range<usize>, key: &str, message: String, _hint: &str| {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            problems.push((line, key.to_owned(), message));
        };
        let tz = jiff::tz::TimeZone::UTC;
        let s = validate(&doc.scrape, &doc.probes, &doc.watch, Path::new("/etc/vigie"), &tz, &mut at);
        (s, problems)
    }

    #[test]
    fn a_full_configuration() {
        let (s, problems) = check(
            r#"
[scrape]
interval = "20s"
targets = ["host", "redis://127.0.0.1:6379"]
[[scrape.target]]
url = "mysql://root@127.0.0.1:3306"
interval = "1m"

[probes]
fail_threshold = 2
[[probes.http]]
name = "ent"
url = "https://ent.ville.fr/"
contains = "Connexion"
[[probes.tcp]]
name = "mariadb"
address = "10.0.0.5:3306"
[[probes.bandwidth]]
name = "debit"
url = "https://ent.ville.fr/test-10M.bin"

[watch]
[[watch.backups]]
location = "backups"
due_by = "07:30"
[[watch.clamav]]
server = "web1"
clamd = "127.0.0.1:3310"
"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let c = &s.config;
        assert_eq!(c.scrapes.len(), 3);
        assert_eq!(c.scrapes[0].interval, Duration::from_secs(20));
        assert_eq!(c.scrapes[2].interval, Duration::from_secs(60));
        assert_eq!(c.probes.len(), 3);
        assert!(c.probes[0].availability && !c.probes[1].availability && !c.probes[2].availability);
        assert_eq!(c.probes[0].fail_threshold, 2);
        assert_eq!(c.probes[2].interval, Duration::from_secs(900));
        assert!(
            matches!(c.probes[2].probe.kind, collector::ProbeKind::Bandwidth { floor_bps, .. } if floor_bps == 15e6)
        );
        assert_eq!(c.backups[0].location, Path::new("/etc/vigie/backups"));
        assert_eq!(c.backups[0].due_by, jiff::civil::Time::constant(7, 30, 0, 0));
        assert_eq!(c.clamav[0].max_age, Duration::from_secs(2 * 86_400));
    }

    #[test]
    fn every_mistake_is_reported_at_its_line() {
        let (_, problems) = check(
            r#"
[scrape]
targets = ["localhost:6379"]
[probes]
interval = "soon"
[[probes.http]]
name = "ent"
url = "ftp://x/"
[[probes.tcp]]
name = "ent"
address = "10.0.0.5:3306"
[watch]
[[watch.clamav]]
server = "web1"
"#,
        );
        let found: Vec<(usize, &str)> = problems.iter().map(|(l, k, _)| (*l, k.as_str())).collect();
        assert_eq!(
            found,
            [(3, "scrape.targets"), (5, "probes.interval"), (7, "probes"), (10, "probes.name"), (14, "watch.clamav")],
            "{problems:?}"
        );
        assert!(problems[2].2.contains("not an http:// or https:// URL"), "{problems:?}");
    }
}
