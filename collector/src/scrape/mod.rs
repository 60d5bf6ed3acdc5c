//! Metric scrapers: one pull of a target (the host, a Prometheus endpoint, Redis, MariaDB, RabbitMQ,
//! Apache/Nginx status pages) turned into flat samples, with `up` telling whether the pull worked.

mod host;
mod http;
mod mysql;
mod prometheus;
mod rabbitmq;
mod redis;
mod status;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub use prometheus::{Exposition, MetricType, PromParseError, parse_prometheus_text};

/// One value of one time series, as in the Prometheus data model.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Milliseconds since the Unix epoch, when the target gave one.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    pub(crate) fn new(name: impl Into<String>, value: f64) -> Self {
        Sample { name: name.into(), labels: Vec::new(), value, timestamp_ms: None }
    }

    pub(crate) fn with_label(mut self, name: &str, value: impl Into<String>) -> Self {
        self.labels.push((name.to_owned(), value.into()));
        self
    }
}

/// The outcome of one scrape. A failed scrape is a value (`up == false` and `error`), not an `Err`,
/// because "the target is down" is itself the measurement.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// The target as shown to people: passwords are masked.
    pub target: String,
    pub up: bool,
    pub samples: Vec<Sample>,
    pub duration: Duration,
    pub error: Option<String>,
}

/// What to scrape. URLs are kept as given (with credentials); [`Target::label`] masks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Host,
    Prometheus(String),
    Redis(String),
    Mysql(String),
    /// Base URL of the RabbitMQ management API, e.g. `http://guest:guest@127.0.0.1:15672`.
    RabbitMq(String),
    /// URL of Apache's `server-status?auto`.
    ApacheStatus(String),
    /// URL of Nginx's `stub_status`.
    NginxStatus(String),
}

/// Why a target could not be understood or scraped.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("invalid scrape target `{input}`: {reason}")]
    InvalidTarget { input: String, reason: String },
    #[error("invalid Prometheus text: {0}")]
    Prometheus(#[from] PromParseError),
    #[error("http request failed: {0}")]
    Http(#[from] ureq::Error),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("redis: {0}")]
    Redis(String),
    #[error("mysql: {0}")]
    Mysql(#[from] mysql_async::Error),
    #[error("invalid json from {what}: {source}")]
    Json { what: &'static str, source: serde_json::Error },
    #[error("invalid {what} page, line {line}: {message}")]
    StatusPage { what: &'static str, line: usize, message: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("scrape task failed: {0}")]
    Task(String),
}

const TARGET_SYNTAX: &str = "expected `host`, `redis://HOST:PORT`, `mysql://USER@HOST:PORT`, \
     `http(s)://…/metrics`, `apache+http://…/server-status?auto`, `nginx+http://…/stub_status` \
     or `rabbitmq+http://USER:PASS@HOST:15672`";

impl Target {
    /// Parses a target as written in the config file or on the command line.
    pub fn parse(s: &str) -> Result<Target, ScrapeError> {
        let s = s.trim();
        let invalid = |reason: &str| ScrapeError::InvalidTarget { input: s.to_owned(), reason: reason.to_owned() };
        if s == "host" {
            return Ok(Target::Host);
        }
        let Some((scheme, _)) = s.split_once("://") else {
            return Err(invalid(TARGET_SYNTAX));
        };
        let (kind, inner) = match scheme.split_once('+') {
            Some((kind, _)) => (kind, &s[kind.len() + 1..]),
            None => ("", s),
        };
        let inner_scheme = inner.split_once("://").map(|(sch, _)| sch).unwrap_or_default();
        let url = UrlParts::parse(inner).map_err(|reason| invalid(&reason))?;
        let http = matches!(inner_scheme, "http" | "https");
        match (kind, inner_scheme) {
            ("", "redis") => {
                if url.path.len() > 1 && url.path[1..].parse::<u32>().is_err() {
                    return Err(invalid("the path of a redis URL is a database number, e.g. `redis://HOST:6379/0`"));
                }
                Ok(Target::Redis(s.to_owned()))
            }
            ("", "rediss") => Err(invalid("TLS to Redis is not supported; scrape it through a local `redis://` URL")),
            ("", "mysql" | "mariadb") => {
                // mysql_async only knows the `mysql` scheme; MariaDB speaks the same protocol.
                let normalized = format!("mysql{}", &s[scheme.len()..]);
                mysql_async::Opts::from_url(&normalized).map_err(|e| invalid(&e.to_string()))?;
                Ok(Target::Mysql(normalized))
            }
            ("", "http" | "https") => Ok(Target::Prometheus(s.to_owned())),
            ("apache", _) if http => Ok(Target::ApacheStatus(inner.to_owned())),
            ("nginx", _) if http => Ok(Target::NginxStatus(inner.to_owned())),
            ("rabbitmq", _) if http => Ok(Target::RabbitMq(inner.to_owned())),
            ("prometheus", _) if http => Ok(Target::Prometheus(inner.to_owned())),
            _ => Err(invalid(TARGET_SYNTAX)),
        }
    }

    /// The target as it may be shown and stored: the password, if any, replaced by `***`.
    pub fn label(&self) -> String {
        match self {
            Target::Host => "host".to_owned(),
            Target::Prometheus(u) | Target::Redis(u) | Target::Mysql(u) => mask_password(u),
            Target::RabbitMq(u) => format!("rabbitmq+{}", mask_password(u)),
            Target::ApacheStatus(u) => format!("apache+{}", mask_password(u)),
            Target::NginxStatus(u) => format!("nginx+{}", mask_password(u)),
        }
    }
}

/// The pieces of `scheme://[user[:password]@]host[:port][/path]` the scrapers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlParts {
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    /// Path and query, starting with `/`, or empty.
    pub(crate) path: String,
}

impl UrlParts {
    pub(crate) fn parse(url: &str) -> Result<UrlParts, String> {
        let (_, rest) = url.split_once("://").ok_or_else(|| "missing `scheme://`".to_owned())?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        // The password may itself contain `@`; the host part follows the last one.
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (non_empty(user), Some(pass.to_owned())),
                None => (non_empty(u), None),
            },
            None => (None, None),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| "unclosed `[` in IPv6 host".to_owned())?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err("missing host".to_owned());
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| format!("invalid port `{p}`"))?),
            None => None,
        };
        Ok(UrlParts { user, password, host: host.to_owned(), port, path: path.to_owned() })
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_owned() };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Scrapes one target. Never fails and never panics: a problem gives `up == false` and `error`.
pub async fn scrape(target: &Target, timeout: Duration) -> Scrape {
    let started = Instant::now();
    let label = target.label();
    let outcome = match tokio::time::timeout(timeout, scrape_inner(target, timeout)).await {
        Ok(result) => result,
        Err(_) => Err(ScrapeError::Timeout(timeout)),
    };
    let duration = started.elapsed();
    match outcome {
        Ok(samples) => {
            tracing::debug!(target_name = %label, samples = samples.len(), ?duration, "scrape succeeded");
            Scrape { target: label, up: true, samples, duration, error: None }
        }
        Err(error) => {
            tracing::warn!(target_name = %label, %error, "scrape failed");
            Scrape { target: label, up: false, samples: Vec::new(), duration, error: Some(error.to_string()) }
        }
    }
}

async fn scrape_inner(target: &Target, timeout: Duration) -> Result<Vec<Sample>, ScrapeError> {
    match target {
        Target::Host => host::scrape().await,
        Target::Prometheus(url) => {
            let body = http::get_text(url, timeout, "text/plain;version=0.0.4;q=1,*/*;q=0.1").await?;
            Ok(parse_prometheus_text(&body)?.samples)
        }
        Target::Redis(url) => redis::scrape(url).await,
        Target::Mysql(url) => mysql::scrape(url).await,
        Target::RabbitMq(url) => rabbitmq::scrape(url, timeout).await,
        Target::ApacheStatus(url) => {
            let body = http::get_text(url, timeout, "text/plain").await?;
            status::parse_apache(&body)
        }
        Target::NginxStatus(url) => {
            let body = http::get_text(url, timeout, "text/plain").await?;
            status::parse_nginx(&body)
        }
    }
}

/// Renders scrapes in the Prometheus text exposition format (version 0.0.4), each sample with a
/// `target` label, preceded by `up` and `scrape_duration_seconds` for every target. Samples of the
/// same name are kept together, as the format requires, even when several targets expose them.
pub fn render_prometheus_text(scrapes: &[Scrape]) -> String {
    let mut out = String::new();
    out.push_str("# HELP up Whether the last scrape of the target succeeded (1) or not (0).\n# TYPE up gauge\n");
    for s in scrapes {
        let _ = writeln!(out, "up{{target=\"{}\"}} {}", escape_label_value(&s.target), u8::from(s.up));
    }
    out.push_str(
        "# HELP scrape_duration_seconds How long the last scrape of the target took.\n\
         # TYPE scrape_duration_seconds gauge\n",
    );
    for s in scrapes {
        let _ = writeln!(
            out,
            "scrape_duration_seconds{{target=\"{}\"}} {}",
            escape_label_value(&s.target),
            format_value(s.duration.as_secs_f64())
        );
    }
    // Group by name, in order of first appearance.
    let mut order: Vec<&str> = Vec::new();
    let mut groups: std::collections::HashMap<&str, Vec<(&Scrape, &Sample)>> = std::collections::HashMap::new();
    for s in scrapes {
        for sample in &s.samples {
            groups
                .entry(sample.name.as_str())
                .or_insert_with(|| {
                    order.push(sample.name.as_str());
                    Vec::new()
                })
                .push((s, sample));
        }
    }
    for name in order {
        for (scrape, sample) in &groups[name] {
            out.push_str(name);
            out.push('{');
            let has_target = sample.labels.iter().any(|(k, _)| k == "target");
            // A target that already labels its samples `target` keeps its value, as Prometheus's
            // `honor_labels` would; ours would be ambiguous.
            if !has_target {
                let _ = write!(out, "target=\"{}\"", escape_label_value(&scrape.target));
            }
            for (i, (k, v)) in sample.labels.iter().enumerate() {
                if i > 0 || !has_target {
                    out.push(',');
                }
                let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
            }
            out.push_str("} ");
            out.push_str(&format_value(sample.value));
            if let Some(ts) = sample.timestamp_ms {
                let _ = write!(out, " {ts}");
            }
            out.push('\n');
        }
    }
    out
}

pub(crate) fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub(crate) fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

/// Turns a free-form key (`Total Accesses`, `Threads_connected`) into a metric name fragment.
pub(crate) fn sanitize_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_target_kind() {
        assert_eq!(Target::parse("host").unwrap(), Target::Host);
        assert_eq!(Target::parse("redis://127.0.0.1:6379").unwrap(), Target::Redis("redis://127.0.0.1:6379".into()));
        assert_eq!(
            Target::parse("mysql://root@127.0.0.1:3306").unwrap(),
            Target::Mysql("mysql://root@127.0.0.1:3306".into())
        );
        assert_eq!(
            Target::parse("mariadb://root@127.0.0.1:3306").unwrap(),
            Target::Mysql("mysql://root@127.0.0.1:3306".into())
        );
        assert_eq!(
            Target::parse("http://10.0.0.1:9100/metrics").unwrap(),
            Target::Prometheus("http://10.0.0.1:9100/metrics".into())
        );
        assert_eq!(
            Target::parse("apache+http://web1/server-status?auto").unwrap(),
            Target::ApacheStatus("http://web1/server-status?auto".into())
        );
        assert_eq!(
            Target::parse("nginx+https://web2/stub_status").unwrap(),
            Target::NginxStatus("https://web2/stub_status".into())
        );
        assert_eq!(
            Target::parse("rabbitmq+http://guest:guest@127.0.0.1:15672").unwrap(),
            Target::RabbitMq("http://guest:guest@127.0.0.1:15672".into())
        );
    }

    #[test]
    fn rejects_bad_targets_with_a_reason() {
        for (input, needle) in [
            ("localhost:6379", "expected `host`"),
            ("ftp://x/metrics", "expected `host`"),
            ("redis://:6379", "missing host"),
            ("redis://h:99999", "invalid port `99999`"),
            ("redis://h:6379/abc", "database number"),
            ("rediss://h:6379", "TLS"),
            ("apache+ftp://h/", "expected `host`"),
        ] {
            let err = Target::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
            assert!(err.contains(input), "{input}: {err}");
        }
    }

    #[test]
    fn labels_mask_passwords() {
        let t = Target::parse("rabbitmq+http://guest:s3cr@t@127.0.0.1:15672").unwrap();
        assert_eq!(t.label(), "rabbitmq+http://guest:***@127.0.0.1:15672");
        let t = Target::parse("redis://:pw@127.0.0.1:6379/2").unwrap();
        assert_eq!(t.label(), "redis://:***@127.0.0.1:6379/2");
        assert_eq!(Target::parse("mysql://root@db:3306").unwrap().label(), "mysql://root@db:3306");
    }

    #[test]
    fn url_parts() {
        let u = UrlParts::parse("redis://user:p@ss@[::1]:6380/3").unwrap();
        assert_eq!(u.user.as_deref(), Some("user"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, Some(6380));
        assert_eq!(u.path, "/3");
        let u = UrlParts::parse("http://h?x=1").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("h", None, "?x=1"));
    }

    #[test]
    fn renders_up_duration_and_grouped_samples() {
        let a = Scrape {
            target: "redis://a:6379".into(),
            up: true,
            samples: vec![
                Sample::new("redis_connected_clients", 3.0),
                Sample::new("redis_db_keys", 10.0).with_label("db", "db0"),
            ],
            duration: Duration::from_millis(1500),
            error: None,
        };
        let b = Scrape {
            target: "redis://b:6379".into(),
            up: true,
            samples: vec![Sample {
                timestamp_ms: Some(1_700_000_000_000),
                ..Sample::new("redis_connected_clients", 4.0)
            }],
            duration: Duration::from_millis(250),
            error: None,
        };
        let down = Scrape {
            target: "http://x\"y/metrics".into(),
            up: false,
            samples: vec![],
            duration: Duration::ZERO,
            error: Some("refused".into()),
        };
        let text = render_prometheus_text(&[a, b, down]);
        let expected = "\
# HELP up Whether the last scrape of the target succeeded (1) or not (0).
# TYPE up gauge
up{target=\"redis://a:6379\"} 1
up{target=\"redis://b:6379\"} 1
up{target=\"http://x\\\"y/metrics\"} 0
# HELP scrape_duration_seconds How long the last scrape of the target took.
# TYPE scrape_duration_seconds gauge
scrape_duration_seconds{target=\"redis://a:6379\"} 1.5
scrape_duration_seconds{target=\"redis://b:6379\"} 0.25
scrape_duration_seconds{target=\"http://x\\\"y/metrics\"} 0
redis_connected_clients{target=\"redis://a:6379\"} 3
redis_connected_clients{target=\"redis://b:6379\"} 4 1700000000000
redis_db_keys{target=\"redis://a:6379\",db=\"db0\"} 10
";
        assert_eq!(text, expected);
        // What we render, we can read back.
        let parsed = parse_prometheus_text(&text).unwrap();
        assert_eq!(parsed.samples.len(), 9);
    }

    #[test]
    fn render_keeps_a_targets_own_target_label_and_special_values() {
        let s = Scrape {
            target: "t".into(),
            up: true,
            samples: vec![
                Sample::new("m", f64::NAN).with_label("target", "inner"),
                Sample::new("n", f64::NEG_INFINITY),
            ],
            duration: Duration::ZERO,
            error: None,
        };
        let text = render_prometheus_text(&[s]);
        assert!(text.contains("m{target=\"inner\"} NaN\n"), "{text}");
        assert!(text.contains("n{target=\"t\"} -Inf\n"), "{text}");
    }

    #[tokio::test]
    async fn unreachable_target_is_down_with_the_error() {
        // Bind then drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        for t in [
            format!("redis://127.0.0.1:{port}"),
            format!("http://127.0.0.1:{port}/metrics"),
            format!("mysql://root@127.0.0.1:{port}"),
            format!("nginx+http://127.0.0.1:{port}/stub_status"),
        ] {
            let target = Target::parse(&t).unwrap();
            let s = scrape(&target, Duration::from_secs(5)).await;
            assert!(!s.up, "{t}");
            assert!(s.samples.is_empty());
            let err = s.error.unwrap();
            assert!(err.to_lowercase().contains("refused") || err.contains("connect"), "{t}: {err}");
        }
    }

    #[tokio::test]
    async fn scrapes_a_prometheus_endpoint() {
        let page = "# TYPE ent_sessions gauge\nent_sessions{school=\"0750001A\"} 42 1700000000000\n";
        let base = http::test_server::serve(vec![
            ("/metrics", 200, page.to_owned()),
            ("/bad", 200, "ok 1\nbroken{\n".to_owned()),
        ])
        .await;
        let s = scrape(&Target::parse(&format!("{base}/metrics")).unwrap(), Duration::from_secs(10)).await;
        assert!(s.up, "{:?}", s.error);
        assert_eq!(s.error, None);
        assert_eq!(
            s.samples,
            vec![Sample {
                timestamp_ms: Some(1_700_000_000_000),
                ..Sample::new("ent_sessions", 42.0).with_label("school", "0750001A")
            }]
        );
        let bad = scrape(&Target::parse(&format!("{base}/bad")).unwrap(), Duration::from_secs(10)).await;
        assert!(!bad.up);
        assert!(bad.samples.is_empty());
        assert!(bad.error.as_deref().unwrap().starts_with("invalid Prometheus text: line 2: "), "{:?}", bad.error);
    }

    #[tokio::test]
    async fn a_silent_target_times_out() {
        // Accepted by the kernel's backlog, never answered.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for t in [format!("http://{addr}/metrics"), format!("redis://{addr}")] {
            let s = scrape(&Target::parse(&t).unwrap(), Duration::from_millis(300)).await;
            assert!(!s.up, "{t}");
            let err = s.error.unwrap();
            assert!(err.contains("no answer within") || err.to_lowercase().contains("timeout"), "{t}: {err}");
        }
        drop(listener);
    }

    #[test]
    fn sanitizes_names() {
        assert_eq!(sanitize_name("Total Accesses"), "total_accesses");
        assert_eq!(sanitize_name("Threads_connected"), "threads_connected");
        assert_eq!(sanitize_name(" a--b "), "a_b");
    }
}
