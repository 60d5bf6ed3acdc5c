//! Parsers for Apache's `mod_status` machine-readable page (`server-status?auto`) and Nginx's
//! `stub_status` page, as `apache_*` and `nginx_*` samples.
//!
//! Formats: <https://httpd.apache.org/docs/2.4/mod/mod_status.html> and
//! <https://nginx.org/en/docs/http/ngx_http_stub_status_module.html>.

use super::{Sample, ScrapeError, sanitize_name};

fn page_error(what: &'static str, line: usize, message: impl Into<String>) -> ScrapeError {
    ScrapeError::StatusPage { what, line, message: message.into() }
}

/// Parses `server-status?auto`.
pub(super) fn parse_apache(text: &str) -> Result<Vec<Sample>, ScrapeError> {
    const WHAT: &str = "Apache server-status";
    if text.trim_start().starts_with('<') {
        return Err(page_error(WHAT, 1, "got an HTML page; the URL must end with `?auto`"));
    }
    let mut samples = Vec::new();
    let mut recognised = false;
    for (i, line) in text.lines().enumerate() {
        // The first line of Apache 2.4's page is the bare server name; TLS cache lines follow.
        let Some((key, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if key == "Scoreboard" {
            recognised = true;
            samples.extend(scoreboard(value).map_err(|m| page_error(WHAT, i + 1, m))?);
            continue;
        }
        // Apache writes fractions without the leading zero (`CPULoad: .002`), which Rust parses.
        let Ok(v) = value.parse::<f64>() else { continue };
        let sample = match key {
            "Total Accesses" => Sample::new("apache_accesses_total", v),
            "Total kBytes" => Sample::new("apache_sent_bytes_total", v * 1024.0),
            "Total Duration" => Sample::new("apache_request_duration_seconds_total", v / 1000.0),
            "Uptime" => Sample::new("apache_uptime_seconds", v),
            "ServerUptimeSeconds" => continue, // Same value as `Uptime`.
            "CPULoad" => Sample::new("apache_cpu_load", v),
            "CPUUser" => Sample::new("apache_cpu_seconds_total", v).with_label("mode", "user"),
            "CPUSystem" => Sample::new("apache_cpu_seconds_total", v).with_label("mode", "system"),
            "CPUChildrenUser" => Sample::new("apache_cpu_seconds_total", v).with_label("mode", "children_user"),
            "CPUChildrenSystem" => Sample::new("apache_cpu_seconds_total", v).with_label("mode", "children_system"),
            "BusyWorkers" | "BusyServers" => Sample::new("apache_workers", v).with_label("state", "busy"),
            "IdleWorkers" | "IdleServers" => Sample::new("apache_workers", v).with_label("state", "idle"),
            "GracefulWorkers" => Sample::new("apache_workers", v).with_label("state", "graceful"),
            "ConnsTotal" => Sample::new("apache_connections", v).with_label("state", "total"),
            "ConnsAsyncWriting" => Sample::new("apache_connections", v).with_label("state", "writing"),
            "ConnsAsyncKeepAlive" => Sample::new("apache_connections", v).with_label("state", "keepalive"),
            "ConnsAsyncClosing" => Sample::new("apache_connections", v).with_label("state", "closing"),
            "ReqPerSec" => Sample::new("apache_requests_per_second", v),
            "BytesPerSec" => Sample::new("apache_sent_bytes_per_second", v),
            _ => Sample::new(format!("apache_{}", sanitize_name(key)), v),
        };
        recognised |= key == "Total Accesses" || key.starts_with("Busy") || key.starts_with("Idle");
        samples.push(sample);
    }
    if !recognised {
        return Err(page_error(WHAT, 1, "no `Scoreboard` nor worker counts: not a `server-status?auto` page"));
    }
    Ok(samples)
}

fn scoreboard(board: &str) -> Result<Vec<Sample>, String> {
    const STATES: [(char, &str); 11] = [
        ('_', "waiting"),
        ('S', "starting"),
        ('R', "reading"),
        ('W', "sending"),
        ('K', "keepalive"),
        ('D', "dns"),
        ('C', "closing"),
        ('L', "logging"),
        ('G', "graceful_stop"),
        ('I', "idle_cleanup"),
        ('.', "open_slot"),
    ];
    let mut counts = [0u32; STATES.len()];
    for c in board.chars() {
        let i = STATES.iter().position(|(s, _)| *s == c).ok_or_else(|| format!("unknown scoreboard state `{c}`"))?;
        counts[i] += 1;
    }
    Ok(STATES
        .iter()
        .zip(counts)
        .map(|((_, state), n)| Sample::new("apache_scoreboard", f64::from(n)).with_label("state", *state))
        .collect())
}

/// Parses `stub_status`:
/// ```text
/// Active connections: 291
/// server accepts handled requests
///  16630948 16630948 31070465
/// Reading: 6 Writing: 179 Waiting: 106
/// ```
pub(super) fn parse_nginx(text: &str) -> Result<Vec<Sample>, ScrapeError> {
    const WHAT: &str = "Nginx stub_status";
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let number = |line: usize, s: &str| -> Result<f64, ScrapeError> {
        s.parse::<u64>()
            .map(|n| n as f64)
            .map_err(|_| page_error(WHAT, line, format!("expected a number, found `{s}`")))
    };
    let line = |i: usize| lines.get(i).copied().ok_or_else(|| page_error(WHAT, i + 1, "page ends too early"));
    let active = line(0)?
        .strip_prefix("Active connections:")
        .ok_or_else(|| page_error(WHAT, 1, "expected `Active connections: N`"))?;
    let active = number(1, active.trim())?;
    if line(1)? != "server accepts handled requests" {
        return Err(page_error(WHAT, 2, "expected `server accepts handled requests`"));
    }
    let counters: Vec<&str> = line(2)?.split_whitespace().collect();
    let [accepts, handled, requests] = counters[..] else {
        return Err(page_error(WHAT, 3, "expected three numbers: accepts, handled, requests"));
    };
    let states: Vec<&str> = line(3)?.split_whitespace().collect();
    let ["Reading:", reading, "Writing:", writing, "Waiting:", waiting] = states[..] else {
        return Err(page_error(WHAT, 4, "expected `Reading: N Writing: N Waiting: N`"));
    };
    Ok(vec![
        Sample::new("nginx_connections_active", active),
        Sample::new("nginx_connections_accepted_total", number(3, accepts)?),
        Sample::new("nginx_connections_handled_total", number(3, handled)?),
        Sample::new("nginx_http_requests_total", number(3, requests)?),
        Sample::new("nginx_connections_reading", number(4, reading)?),
        Sample::new("nginx_connections_writing", number(4, writing)?),
        Sample::new("nginx_connections_waiting", number(4, waiting)?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::http::test_server::serve;
    use crate::scrape::{Target, scrape};
    use std::time::Duration;

    const APACHE: &str = "localhost
ServerVersion: Apache/2.4.62 (Debian)
ServerMPM: event
ServerUptimeSeconds: 3600
Load1: 0.50
Total Accesses: 1200
Total kBytes: 2048
Total Duration: 15000
CPUUser: 1.5
CPUSystem: .25
CPULoad: .0486111
Uptime: 3600
ReqPerSec: .333333
BytesPerSec: 582.542
BusyWorkers: 3
GracefulWorkers: 0
IdleWorkers: 47
ConnsTotal: 5
ConnsAsyncWriting: 1
ConnsAsyncKeepAlive: 2
ConnsAsyncClosing: 0
Scoreboard: __W_K_R...G
TLSSessionCacheStatus
CacheType: SHMCB
";

    const NGINX: &str = "Active connections: 291 \nserver accepts handled requests\n 16630948 16630947 31070465 \n\
                         Reading: 6 Writing: 179 Waiting: 106 \n";

    fn value(samples: &[Sample], name: &str, label: Option<(&str, &str)>) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.name == name && label.is_none_or(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v)))
            .map(|s| s.value)
    }

    #[test]
    fn apache_auto_page() {
        let s = parse_apache(APACHE).unwrap();
        assert_eq!(value(&s, "apache_accesses_total", None), Some(1200.0));
        assert_eq!(value(&s, "apache_sent_bytes_total", None), Some(2048.0 * 1024.0));
        assert_eq!(value(&s, "apache_request_duration_seconds_total", None), Some(15.0));
        assert_eq!(value(&s, "apache_uptime_seconds", None), Some(3600.0));
        assert_eq!(value(&s, "apache_cpu_load", None), Some(0.0486111));
        assert_eq!(value(&s, "apache_cpu_seconds_total", Some(("mode", "system"))), Some(0.25));
        assert_eq!(value(&s, "apache_workers", Some(("state", "busy"))), Some(3.0));
        assert_eq!(value(&s, "apache_workers", Some(("state", "idle"))), Some(47.0));
        assert_eq!(value(&s, "apache_connections", Some(("state", "keepalive"))), Some(2.0));
        assert_eq!(value(&s, "apache_load1", None), Some(0.5));
        assert_eq!(value(&s, "apache_scoreboard", Some(("state", "waiting"))), Some(4.0));
        assert_eq!(value(&s, "apache_scoreboard", Some(("state", "sending"))), Some(1.0));
        assert_eq!(value(&s, "apache_scoreboard", Some(("state", "open_slot"))), Some(3.0));
        assert_eq!(value(&s, "apache_scoreboard", Some(("state", "graceful_stop"))), Some(1.0));
        assert_eq!(value(&s, "apache_scoreboard", Some(("state", "dns"))), Some(0.0));
        assert_eq!(s.iter().filter(|x| x.name == "apache_uptime_seconds").count(), 1);
        assert!(s.iter().all(|x| !x.name.contains("servermpm") && !x.name.contains("servicecache")));
    }

    #[test]
    fn apache_errors() {
        let err = parse_apache("<html><body>Apache Status</body></html>").unwrap_err().to_string();
        assert!(err.contains("`?auto`"), "{err}");
        let err = parse_apache("hello\nworld: yes\n").unwrap_err().to_string();
        assert!(err.contains("not a `server-status?auto` page"), "{err}");
        let err = parse_apache("Total Accesses: 1\nScoreboard: __Z\n").unwrap_err().to_string();
        assert_eq!(err, "invalid Apache server-status page, line 2: unknown scoreboard state `Z`");
    }

    #[test]
    fn nginx_stub_status() {
        let s = parse_nginx(NGINX).unwrap();
        assert_eq!(
            s,
            vec![
                Sample::new("nginx_connections_active", 291.0),
                Sample::new("nginx_connections_accepted_total", 16_630_948.0),
                Sample::new("nginx_connections_handled_total", 16_630_947.0),
                Sample::new("nginx_http_requests_total", 31_070_465.0),
                Sample::new("nginx_connections_reading", 6.0),
                Sample::new("nginx_connections_writing", 179.0),
                Sample::new("nginx_connections_waiting", 106.0),
            ]
        );
    }

    #[test]
    fn nginx_errors_name_the_line() {
        for (text, needle) in [
            ("", "line 1: page ends too early"),
            ("<html>", "line 1: expected `Active connections: N`"),
            ("Active connections: x\n", "line 1: expected a number, found `x`"),
            ("Active connections: 1\nserver accepts\n", "line 2: expected `server accepts handled requests`"),
            ("Active connections: 1\nserver accepts handled requests\n1 2\n", "line 3: expected three numbers"),
            ("Active connections: 1\nserver accepts handled requests\n1 2 3\n", "line 4: page ends too early"),
            (
                "Active connections: 1\nserver accepts handled requests\n1 2 3\nReading: 1 Writing: 2\n",
                "line 4: expected `Reading: N Writing: N Waiting: N`",
            ),
            (
                "Active connections: 1\nserver accepts handled requests\n1 2 -3\nReading: 1 Writing: 2 Waiting: 3\n",
                "line 3: expected a number, found `-3`",
            ),
        ] {
            let err = parse_nginx(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[tokio::test]
    async fn scrapes_status_pages_over_http() {
        let base = serve(vec![
            ("/server-status?auto", 200, APACHE.to_owned()),
            ("/stub_status", 200, NGINX.to_owned()),
            ("/server-status", 200, "<html>no auto</html>".to_owned()),
        ])
        .await;
        let apache = Target::parse(&format!("apache+{base}/server-status?auto")).unwrap();
        let s = scrape(&apache, Duration::from_secs(10)).await;
        assert!(s.up, "{:?}", s.error);
        assert_eq!(value(&s.samples, "apache_accesses_total", None), Some(1200.0));
        assert_eq!(s.target, format!("apache+{base}/server-status?auto"));

        let nginx = Target::parse(&format!("nginx+{base}/stub_status")).unwrap();
        let s = scrape(&nginx, Duration::from_secs(10)).await;
        assert!(s.up, "{:?}", s.error);
        assert_eq!(value(&s.samples, "nginx_http_requests_total", None), Some(31_070_465.0));

        let html = Target::parse(&format!("apache+{base}/server-status")).unwrap();
        let s = scrape(&html, Duration::from_secs(10)).await;
        assert!(!s.up);
        assert!(s.error.unwrap().contains("`?auto`"));

        let missing = Target::parse(&format!("nginx+{base}/nope")).unwrap();
        let s = scrape(&missing, Duration::from_secs(10)).await;
        assert!(!s.up);
        assert!(s.error.unwrap().contains("404"));
    }
}
