//! The IP block list: addresses to ban for a while, built from detections, for the
//! "emergency corrective actions" the CCTP allows (ban an IP).
//!
//! Each detection at or above a severity threshold blocks its `source.ip` until the
//! detection's time plus a duration chosen by severity; a later detection extends the ban,
//! never shortens it. Addresses inside the allow-list (the schools' networks, the city's own)
//! are never blocked: banning a school's NAT address would cut off every pupil behind it.
//! The list is not persisted: it is rebuilt from the alerts. The clock is injected (`now`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::detection::{Detection, Severity};

/// How long a detection blocks its address, by severity.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockPolicy {
    /// Detections below this severity block nothing.
    pub min_severity: Severity,
    pub info: SignedDuration,
    pub warning: SignedDuration,
    pub critical: SignedDuration,
    /// The zone the French expiry dates in the rendered lists are written in.
    pub time_zone: TimeZone,
}

impl Default for BlockPolicy {
    /// Warnings block for 1 h (long enough to break a scan or a brute force, short enough
    /// that a mistaken ban heals itself), critical detections for 24 h; info blocks nothing.
    fn default() -> Self {
        BlockPolicy {
            min_severity: Severity::Warning,
            info: SignedDuration::from_mins(10),
            warning: SignedDuration::from_hours(1),
            critical: SignedDuration::from_hours(24),
            time_zone: TimeZone::get("Europe/Paris").unwrap_or(TimeZone::UTC),
        }
    }
}

impl BlockPolicy {
    pub fn duration(&self, severity: Severity) -> SignedDuration {
        match severity {
            Severity::Info => self.info,
            Severity::Warning => self.warning,
            Severity::Critical => self.critical,
        }
    }
}

/// A problem with the block list's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockListError {
    #[error(
        "allow-list entry {position} ({entry:?}) is not an address or a network: write an IPv4 or IPv6 address, or a CIDR such as 192.0.2.0/24 or 2001:db8::/32"
    )]
    BadAllowEntry { position: usize, entry: String },
    #[error(
        "{what} name {name:?} cannot be used in nftables: use letters, digits and `_`, starting with a letter (e.g. vigie_blocklist)"
    )]
    BadNftName { what: &'static str, name: String },
}

/// Parses allow-list entries: CIDRs (`192.0.2.0/24`, `2001:db8::/32`) or single addresses.
/// `position` in errors is 1-based. Host bits are cleared (`192.0.2.7/24` is `192.0.2.0/24`).
pub fn parse_allow_list<S: AsRef<str>>(entries: &[S]) -> Result<Vec<IpNet>, BlockListError> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let s = e.as_ref().trim();
            s.parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| BlockListError::BadAllowEntry { position: i + 1, entry: s.to_owned() })
        })
        .collect()
}

/// Why an address is blocked, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    pub expires: Timestamp,
    /// The rule of the detection that set the current expiry.
    pub rule: String,
    /// Its French title.
    pub title: String,
    pub severity: Severity,
    /// Detections that blocked or extended the ban.
    pub detections: u64,
}

/// What [`BlockList::add`] did with a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOutcome {
    /// A new entry, or one that had expired.
    Blocked { until: Timestamp },
    /// An active entry whose expiry moved later.
    Extended { until: Timestamp },
    /// An active entry that already lasted longer; it is left as it was.
    AlreadyBlocked { until: Timestamp },
    /// The address is in the allow-list.
    Allowed,
    /// The detection's severity is under the policy's threshold.
    BelowThreshold,
    /// The detection carries no source address.
    NoAddress,
}

/// Blocked addresses with their expiry. See the module documentation.
#[derive(Debug, Clone)]
pub struct BlockList {
    policy: BlockPolicy,
    allow: Vec<IpNet>,
    entries: BTreeMap<IpAddr, BlockEntry>,
}

impl BlockList {
    pub fn new(policy: BlockPolicy, allow: Vec<IpNet>) -> BlockList {
        BlockList { policy, allow, entries: BTreeMap::new() }
    }

    /// Whether `ip` is in the allow-list (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow.iter().any(|n| n.contains(&ip))
    }

    /// Blocks the detection's address from its time for the duration its severity gets.
    /// The expiry counts from the detection, not from now: replaying old alerts after a
    /// restart does not ban anyone for longer than the live run would have.
    pub fn add(&mut self, d: &Detection) -> BlockOutcome {
        let Some(ip) = d.source_ip.map(|ip| ip.to_canonical()) else { return BlockOutcome::NoAddress };
        if d.severity < self.policy.min_severity {
            return BlockOutcome::BelowThreshold;
        }
        if self.is_allowed(ip) {
            tracing::debug!(ip = %ip, rule = %d.rule, "allow-listed address not blocked");
            return BlockOutcome::Allowed;
        }
        let until = d.timestamp + self.policy.duration(d.severity);
        let fresh = BlockEntry {
            expires: until,
            rule: d.rule.clone(),
            title: d.title.clone(),
            severity: d.severity,
            detections: 1,
        };
        match self.entries.get_mut(&ip) {
            // An entry that had expired by the time of this detection starts over.
            Some(e) if e.expires > d.timestamp => {
                e.detections += 1;
                if until <= e.expires {
                    return BlockOutcome::AlreadyBlocked { until: e.expires };
                }
                *e = BlockEntry { detections: e.detections, ..fresh };
                tracing::info!(ip = %ip, rule = %d.rule, until = %until, "block extended");
                BlockOutcome::Extended { until }
            }
            _ => {
                self.entries.insert(ip, fresh);
                tracing::info!(ip = %ip, rule = %d.rule, until = %until, "address blocked");
                BlockOutcome::Blocked { until }
            }
        }
    }

    /// Drops the entries expired at `now`; returns how many.
    pub fn expire(&mut self, now: Timestamp) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.expires > now);
        before - self.entries.len()
    }

    pub fn is_blocked(&self, ip: IpAddr, now: Timestamp) -> bool {
        self.entries.get(&ip.to_canonical()).is_some_and(|e| e.expires > now)
    }

    /// The entries still in force at `now`, by address (IPv4 first).
    pub fn active(&self, now: Timestamp) -> impl Iterator<Item = (IpAddr, &BlockEntry)> {
        self.entries.iter().filter(move |(_, e)| e.expires > now).map(|(ip, e)| (*ip, e))
    }

    /// One address a line, each followed by a comment with its expiry and reason, for
    /// tools that read plain lists (`# ` lines are comments):
    /// `203.0.113.9 # jusqu'au lundi 7 avril 2025, 15 h 30 : web.sqli, Tentative d'injection SQL`.
    pub fn render_text(&self, now: Timestamp) -> String {
        let mut out = format!("# liste de blocage Vigie au {}\n", crate::format_date_fr(now, &self.policy.time_zone));
        for (ip, e) in self.active(now) {
            let _ = writeln!(out, "{ip} # {}", self.reason(e));
        }
        out
    }

    /// An nftables file that replaces the table `table` (family `inet`) with two sets of
    /// blocked addresses, `<set_name>_v4` and `<set_name>_v6` (a set holds one address
    /// type), each element with the time left as its `timeout`, and an `input` chain that
    /// drops their traffic. Load it with `nft -f FILE`; loading it again replaces the previous
    /// list in one transaction (the table is Vigie's own: put no other rules in it).
    pub fn render_nftables(&self, now: Timestamp, set_name: &str, table: &str) -> Result<String, BlockListError> {
        check_nft_name("table", table)?;
        check_nft_name("set", set_name)?;
        let mut out = String::new();
        let _ = writeln!(out, "#!/usr/sbin/nft -f");
        let _ = writeln!(out, "# liste de blocage Vigie au {}", crate::format_date_fr(now, &self.policy.time_zone));
        // Creating the table first makes the delete succeed on the first load.
        let _ = writeln!(out, "table inet {table}\ndelete table inet {table}\ntable inet {table} {{");
        for (suffix, kind, v4) in [("v4", "ipv4_addr", true), ("v6", "ipv6_addr", false)] {
            let _ = writeln!(out, "    set {set_name}_{suffix} {{\n        type {kind}\n        flags timeout");
            let elements: Vec<_> = self.active(now).filter(|(ip, _)| ip.is_ipv4() == v4).collect();
            if !elements.is_empty() {
                // nft rejects an empty `elements = { }`, hence the line only when there are some.
                let _ = writeln!(out, "        elements = {{");
                for (i, (ip, e)) in elements.iter().enumerate() {
                    let d = e.expires.duration_since(now);
                    // Rounded up: an entry still in force never gets `timeout 0s`.
                    let left = d.as_secs() + i64::from(d.subsec_nanos() > 0);
                    let comma = if i + 1 < elements.len() { "," } else { "" };
                    let _ = writeln!(out, "            {ip} timeout {left}s{comma} # {}", self.reason(e));
                }
                let _ = writeln!(out, "        }}");
            }
            let _ = writeln!(out, "    }}");
        }
        let _ = writeln!(
            out,
            "    chain input {{\n        type filter hook input priority -10; policy accept;\n        \
             ip saddr @{set_name}_v4 drop\n        ip6 saddr @{set_name}_v6 drop\n    }}\n}}"
        );
        Ok(out)
    }

    fn reason(&self, e: &BlockEntry) -> String {
        // A title is rule-file text: keep it on its comment line.
        let title: String = e.title.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        format!("jusqu'au {} : {}, {}", crate::format_date_fr(e.expires, &self.policy.time_zone), e.rule, title)
    }
}

/// nftables identifiers are `[a-zA-Z][a-zA-Z0-9_]*` in what Vigie writes (nft allows a few
/// more characters, which a table name never needs).
fn check_nft_name(what: &'static str, name: &str) -> Result<(), BlockListError> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(()) } else { Err(BlockListError::BadNftName { what, name: name.to_owned() }) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use collector::EventId;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn det(ip: &str, severity: Severity, ts: &str, rule: &str) -> Detection {
        Detection {
            id: format!("{rule}:t:1"),
            rule: rule.into(),
            title: format!("Titre de {rule}"),
            description: String::new(),
            severity,
            cctp_class: crate::CctpClass::SecuriteMineure,
            mitre: None,
            timestamp: at(ts),
            source_ip: Some(ip.parse().unwrap()),
            user_name: None,
            key: format!("source.ip={ip}"),
            evidence: String::new(),
            event_id: EventId::at("t", 1),
        }
    }

    fn list() -> BlockList {
        let allow = parse_allow_list(&["10.0.0.0/8", "192.0.2.128/25", "2001:db8:ec01::/48"]).unwrap();
        BlockList::new(BlockPolicy::default(), allow)
    }

    const T0: &str = "2025-04-07T12:30:00Z";

    #[test]
    fn severity_sets_the_duration_and_the_threshold() {
        let mut b = list();
        assert_eq!(b.add(&det("203.0.113.9", Severity::Info, T0, "r.info")), BlockOutcome::BelowThreshold);
        assert_eq!(
            b.add(&det("203.0.113.9", Severity::Warning, T0, "r.warn")),
            BlockOutcome::Blocked { until: at("2025-04-07T13:30:00Z") }
        );
        assert_eq!(
            b.add(&det("198.51.100.7", Severity::Critical, T0, "r.crit")),
            BlockOutcome::Blocked { until: at("2025-04-08T12:30:00Z") }
        );
        let mut none = det("203.0.113.9", Severity::Critical, T0, "r");
        none.source_ip = None;
        assert_eq!(b.add(&none), BlockOutcome::NoAddress);
        assert_eq!(b.active(at(T0)).count(), 2);
    }

    #[test]
    fn a_later_detection_extends_never_shortens() {
        let mut b = list();
        let ip = "203.0.113.9";
        b.add(&det(ip, Severity::Critical, T0, "r.crit"));
        // A warning 10 min later would end sooner: the critical ban stands.
        assert_eq!(
            b.add(&det(ip, Severity::Warning, "2025-04-07T12:40:00Z", "r.warn")),
            BlockOutcome::AlreadyBlocked { until: at("2025-04-08T12:30:00Z") }
        );
        assert_eq!(
            b.add(&det(ip, Severity::Critical, "2025-04-07T13:00:00Z", "r.crit2")),
            BlockOutcome::Extended { until: at("2025-04-08T13:00:00Z") }
        );
        let (_, e) = b.active(at(T0)).next().unwrap();
        assert_eq!((e.rule.as_str(), e.detections), ("r.crit2", 3));
    }

    #[test]
    fn entries_expire_with_the_injected_clock() {
        let mut b = list();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        b.add(&det("203.0.113.9", Severity::Warning, T0, "r"));
        assert!(b.is_blocked(ip, at("2025-04-07T13:29:59Z")));
        assert!(!b.is_blocked(ip, at("2025-04-07T13:30:00Z")));
        assert_eq!(b.expire(at("2025-04-07T13:29:59Z")), 0);
        assert_eq!(b.expire(at("2025-04-07T13:30:00Z")), 1);
        // After expiry, a new detection starts a fresh entry.
        assert_eq!(
            b.add(&det("203.0.113.9", Severity::Warning, "2025-04-07T14:00:00Z", "r")),
            BlockOutcome::Blocked { until: at("2025-04-07T15:00:00Z") }
        );
        assert_eq!(b.active(at("2025-04-07T14:00:00Z")).next().unwrap().1.detections, 1);
    }

    #[test]
    fn allow_listed_networks_are_never_blocked() {
        let mut b = list();
        for ip in ["10.1.2.3", "192.0.2.200", "::ffff:192.0.2.129", "2001:db8:ec01:42::1"] {
            assert_eq!(b.add(&det(ip, Severity::Critical, T0, "r")), BlockOutcome::Allowed, "{ip}");
        }
        // Just outside the networks.
        for ip in ["192.0.2.127", "2001:db8:ec02::1", "11.0.0.1"] {
            assert!(matches!(b.add(&det(ip, Severity::Critical, T0, "r")), BlockOutcome::Blocked { .. }), "{ip}");
        }
        // An IPv4-mapped address is blocked as the IPv4 address it is.
        b.add(&det("::ffff:203.0.113.5", Severity::Critical, T0, "r"));
        assert!(b.is_blocked("203.0.113.5".parse().unwrap(), at(T0)));
    }

    #[test]
    fn allow_list_entries_are_checked() {
        let nets = parse_allow_list(&["192.0.2.7/24", " 2001:db8::1 ", "198.51.100.1"]).unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["192.0.2.0/24", "2001:db8::1/128", "198.51.100.1/32"]);
        let err = parse_allow_list(&["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert_eq!(err, BlockListError::BadAllowEntry { position: 2, entry: "10.0.0.0/33".into() });
        assert!(err.to_string().contains("such as 192.0.2.0/24"), "{err}");
    }

    #[test]
    fn the_text_list_names_expiry_and_reason_in_french() {
        let mut b = list();
        b.add(&det("203.0.113.9", Severity::Warning, T0, "web.sqli"));
        b.add(&det("2001:db8:bad::1", Severity::Critical, "2025-04-07T08:00:00Z", "web.rce"));
        b.add(&det("198.51.100.7", Severity::Warning, "2025-04-07T10:00:00Z", "old"));
        assert_eq!(
            b.render_text(at(T0)),
            "# liste de blocage Vigie au lundi 7 avril 2025, 14 h 30\n\
             203.0.113.9 # jusqu'au lundi 7 avril 2025, 15 h 30 : web.sqli, Titre de web.sqli\n\
             2001:db8:bad::1 # jusqu'au mardi 8 avril 2025, 10 h 00 : web.rce, Titre de web.rce\n"
        );
    }

    #[test]
    fn the_nftables_file_has_one_set_per_family_with_timeouts() {
        let mut b = list();
        b.add(&det("203.0.113.9", Severity::Warning, T0, "web.sqli"));
        b.add(&det("198.51.100.7", Severity::Critical, T0, "web.rce"));
        b.add(&det("2001:db8:bad::1", Severity::Critical, T0, "web.rce"));
        let now = at("2025-04-07T12:40:00.5Z");
        let text = b.render_nftables(now, "vigie_blocklist", "vigie").unwrap();
        assert!(text.contains("table inet vigie\ndelete table inet vigie\ntable inet vigie {\n"), "{text}");
        assert!(
            text.contains(
                "        elements = {\n            \
                 198.51.100.7 timeout 85800s, # jusqu'au mardi 8 avril 2025, 14 h 30 : web.rce, Titre de web.rce\n            \
                 203.0.113.9 timeout 3000s # jusqu'au lundi 7 avril 2025, 15 h 30 : web.sqli, Titre de web.sqli\n        }\n"
            ),
            "{text}"
        );
        assert!(text.contains("set vigie_blocklist_v6 {\n        type ipv6_addr\n        flags timeout\n        elements = {\n            2001:db8:bad::1 timeout 85800s #"), "{text}");
        assert!(text.contains("ip6 saddr @vigie_blocklist_v6 drop"), "{text}");
        // An empty list is still a valid file, without `elements`.
        let empty = list().render_nftables(now, "s", "t").unwrap();
        assert!(!empty.contains("elements"), "{empty}");
        let err = b.render_nftables(now, "bad name", "vigie").unwrap_err();
        assert!(err.to_string().contains("set name \"bad name\""), "{err}");
        assert!(b.render_nftables(now, "s", "1t").is_err());
    }

    /// `nft -c -f` checks a file against nftables' own parser and evaluator without applying
    /// it. Debian's `nftables` package provides `nft`; where it is not installed the check
    /// cannot run, and the test says so instead of passing silently.
    #[test]
    fn nft_accepts_the_file() {
        let Ok(nft) = which_nft() else {
            panic!(
                "`nft` not found: install Debian's nftables package (apt-get install -y nftables) to run this check"
            );
        };
        let mut b = list();
        b.add(&det("203.0.113.9", Severity::Warning, T0, "web.sqli"));
        b.add(&det("2001:db8:bad::1", Severity::Critical, T0, "web.rce \"quoted\" # hash"));
        let dir = tempfile::tempdir().unwrap();
        for (name, list) in [("full.nft", &b), ("empty.nft", &list())] {
            let path = dir.path().join(name);
            std::fs::write(&path, list.render_nftables(at(T0), "vigie_blocklist", "vigie").unwrap()).unwrap();
            let out = std::process::Command::new(&nft).arg("-c").arg("-f").arg(&path).output().unwrap();
            assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        }
        // And the check is a real one: a bad file is refused.
        let bad = dir.path().join("bad.nft");
        std::fs::write(&bad, "table inet vigie { set s { type ipv4_addr; elements = { 2001:db8::1 } } }\n").unwrap();
        let out = std::process::Command::new(&nft).arg("-c").arg("-f").arg(&bad).output().unwrap();
        assert!(!out.status.success());
    }

    #[test]
    fn french_dates_follow_the_alert_emails() {
        let paris = TimeZone::get("Europe/Paris").unwrap();
        assert_eq!(crate::format_date_fr(at("2025-04-01T06:00:00Z"), &paris), "mardi 1er avril 2025, 8 h 00");
        assert_eq!(crate::format_date_fr(at("2025-01-05T13:30:00Z"), &paris), "dimanche 5 janvier 2025, 14 h 30");
    }

    fn which_nft() -> Result<std::path::PathBuf, ()> {
        ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.exists())
            .ok_or(())
    }
}
