//! Guard rails: a load test is an attack unless the target is yours. Targets must be in an
//! allow-list (or the operator says `--i-own-this-target`); a default rate cap keeps a typo in
//! `--users` from flattening a production ENT; the open-file limit is raised so thousands of
//! connections do not fail with "too many open files".

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::client::Origin;

/// Requests per second a run may send at most unless told otherwise (`--max-rate`).
pub const DEFAULT_MAX_RATE: f64 = 1000.0;

/// The `[loadtest]` table of Vigie's configuration file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadtestConfig {
    /// Origins the city may load-test: `host`, `host:port` or `*.domain` (its subdomains).
    /// This machine's loopback addresses are always allowed; anything else needs an entry here,
    /// `--allow`, or `--i-own-this-target`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Cap on requests per second, all virtual users together, when `--max-rate` is not
    /// given. Default: 1000.
    #[serde(default)]
    pub max_rate: Option<f64>,
}

/// Origins a run may target.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    entries: Vec<Entry>,
    own_target: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Lowercase host; `*.example.fr` allows every subdomain (not `example.fr` itself).
    host: String,
    port: Option<u16>,
}

impl AllowList {
    /// Parses `host`, `host:port`, `*.domain`, `[v6]:port` entries (from `--allow` and the
    /// configuration).
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, String> {
        let mut out = Vec::new();
        for raw in entries {
            let raw = raw.as_ref().trim();
            let raw = raw.split_once("://").map_or(raw, |(_, rest)| rest).trim_end_matches('/');
            let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
                let (h, after) =
                    rest.split_once(']').ok_or_else(|| format!("allow-list entry `{raw}`: `[` not closed"))?;
                (h.to_owned(), after.strip_prefix(':'))
            } else {
                match raw.rsplit_once(':') {
                    Some((h, p)) if !h.contains(':') => (h.to_owned(), Some(p)),
                    _ => (raw.to_owned(), None),
                }
            };
            let port = match port {
                Some(p) => {
                    Some(p.parse::<u16>().map_err(|_| format!("allow-list entry `{raw}`: `{p}` is not a port"))?)
                }
                None => None,
            };
            if host.is_empty() || host.contains('/') {
                return Err(format!("allow-list entry `{raw}`: write a host name, optionally with :PORT"));
            }
            out.push(Entry { host: host.to_ascii_lowercase(), port });
        }
        Ok(AllowList { entries: out, own_target: false })
    }

    /// `--i-own-this-target`: every origin is allowed.
    pub fn own_target(mut self, yes: bool) -> AllowList {
        self.own_target = yes;
        self
    }

    /// Whether requests to `origin` may be sent. This machine's loopback addresses are always
    /// allowed: a server started here for the test is the operator's own.
    pub fn allows(&self, origin: &Origin) -> bool {
        if self.own_target || is_loopback(&origin.host) {
            return true;
        }
        self.entries.iter().any(|e| {
            let host_ok = match e.host.strip_prefix("*.") {
                Some(domain) => origin.host.ends_with(&format!(".{domain}")),
                None => e.host == origin.host,
            };
            host_ok && e.port.is_none_or(|p| p == origin.port)
        })
    }

    /// The refusal for the origins the scenario names that are not allowed, or `Ok`.
    pub fn check(&self, origins: &[Origin]) -> Result<(), String> {
        let refused: Vec<_> = origins.iter().filter(|o| !self.allows(o)).collect();
        if refused.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = refused.iter().map(|o| o.to_string()).collect();
        Err(format!(
            "refusing to load-test {}: not in the allow-list. A load test of someone else's server is an attack. \
             If this platform is yours, add it with --allow {} (or `allow` in the [loadtest] configuration), \
             or pass --i-own-this-target",
            names.join(", "),
            refused[0].host
        ))
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A shared cap on the request rate (GCRA: each request books the next free slot and waits
/// for it), so that the cap holds whatever the number of virtual users.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval_nanos: u64,
    start: tokio::time::Instant,
    /// Nanoseconds after `start` of the next free slot.
    next: AtomicU64,
}

impl RateLimiter {
    pub(crate) fn new(per_second: f64) -> RateLimiter {
        RateLimiter {
            interval_nanos: (1e9 / per_second).max(1.0) as u64,
            start: tokio::time::Instant::now(),
            next: AtomicU64::new(0),
        }
    }

    /// Waits for this request's slot.
    pub(crate) async fn acquire(&self) {
        let now = self.start.elapsed().as_nanos() as u64;
        let interval = self.interval_nanos;
        let slot =
            match self.next.fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| Some(next.max(now) + interval)) {
                Ok(previous) | Err(previous) => previous.max(now),
            };
        if slot > now {
            tokio::time::sleep_until(self.start + Duration::from_nanos(slot)).await;
        }
    }
}

/// Raises the soft limit on open files to the hard limit; returns the limit now in force.
/// Each virtual user holds one socket, so 10,000 users need more than the usual 1,024.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let Some(hard) = current.maximum else {
        // No hard limit: ask for a generous fixed number.
        let want = Rlimit { current: Some(1 << 20), maximum: None };
        setrlimit(Resource::Nofile, want).map_err(std::io::Error::from)?;
        return Ok(1 << 20);
    };
    if current.current.is_some_and(|soft| soft >= hard) {
        return Ok(hard);
    }
    setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) }).map_err(std::io::Error::from)?;
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(url: &str) -> Origin {
        Origin::from_url(url).unwrap()
    }

    #[test]
    fn allow_list_matches_hosts_ports_and_subdomains() {
        let a =
            AllowList::new(&["ent-recette.ville.fr", "*.preprod.ville.fr", "https://stats.ville.fr:8443/"]).unwrap();
        assert!(a.allows(&o("https://ent-recette.ville.fr/login")));
        assert!(a.allows(&o("http://ent-recette.ville.fr:8080/")));
        assert!(a.allows(&o("https://blog.preprod.ville.fr/")));
        assert!(!a.allows(&o("https://preprod.ville.fr/")));
        assert!(a.allows(&o("https://stats.ville.fr:8443/")));
        assert!(!a.allows(&o("https://stats.ville.fr/")));
        assert!(!a.allows(&o("https://ent.ville.fr/")));
        assert!(!a.allows(&o("https://ent-recette.ville.fr.evil.example/")));
        // This machine is always allowed.
        assert!(a.allows(&o("http://127.0.0.1:8080/")));
        assert!(a.allows(&o("http://localhost:1/")));
        assert!(a.allows(&o("http://[::1]:1/")));
        assert!(AllowList::new(&["h:notaport"]).is_err());
    }

    #[test]
    fn refusal_says_how_to_proceed_and_owning_the_target_lifts_it() {
        let a = AllowList::new::<&str>(&[]).unwrap();
        let err = a.check(&[o("https://ent.ville.fr/")]).unwrap_err();
        assert!(err.contains("https://ent.ville.fr:443") && err.contains("--allow ent.ville.fr"), "{err}");
        assert!(err.contains("--i-own-this-target"), "{err}");
        assert!(a.clone().own_target(true).check(&[o("https://ent.ville.fr/")]).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_spaces_requests() {
        let limiter = RateLimiter::new(10.0);
        let start = tokio::time::Instant::now();
        for _ in 0..21 {
            limiter.acquire().await;
        }
        // 21 requests at 10/s: the first goes at once, the 21st two seconds later.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn open_files_limit_reaches_the_hard_limit() {
        let limit = raise_open_files_limit().unwrap();
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(now.current, Some(limit));
    }
}
