//! GeoIP and ASN enrichment from MaxMind DB files (GeoLite2 / GeoIP2), swapped atomically when the files change.
//!
//! Databases are read into memory rather than memory-mapped: the workspace forbids `unsafe`
//! (maxminddb's `open_mmap` is `unsafe`), and a mapped file rewritten in place by `cp` would
//! crash the process with SIGBUS. A GeoLite2-City file is ~60 MB; holding it (and briefly two
//! copies during a reload) is cheap next to that risk.
//!
//! Every database is fully verified before it is used, at start and at each reload, so a
//! corrupt or half-downloaded file is refused up front and the previous one keeps serving.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use maxminddb::Reader;
use serde::Deserialize;

use super::error::EnrichError;
use crate::event::Event;

/// Which GeoIP databases to use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpConfig {
    /// A City or Country database (`GeoLite2-City.mmdb`, `GeoIP2-Country.mmdb`, ...): fills the
    /// country code and, for a City database, the city name (French name when the database has
    /// one, else English).
    #[serde(default)]
    pub location: Option<PathBuf>,
    /// An ASN (or ISP) database (`GeoLite2-ASN.mmdb`): fills the AS number and organisation.
    #[serde(default)]
    pub asn: Option<PathBuf>,
    /// When true, a database that is missing or unreadable at start is a warning instead of an
    /// error: Vigie runs without it and loads it as soon as a valid file appears.
    #[serde(default)]
    pub optional: bool,
}

/// What the databases say about one address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoInfo {
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    pub city: Option<String>,
    pub as_number: Option<u32>,
    pub as_organization: Option<String>,
}

/// GeoIP/ASN lookups over hot-reloadable MaxMind databases. `Send + Sync`; lookups take no lock.
#[derive(Debug)]
pub struct GeoIp {
    location: Option<Database>,
    asn: Option<Database>,
}

impl GeoIp {
    /// Opens and verifies the configured databases.
    ///
    /// Blocking (reads whole files): call it at start-up or from `spawn_blocking`.
    pub fn open(config: &GeoIpConfig) -> Result<GeoIp, EnrichError> {
        if config.location.is_none() && config.asn.is_none() {
            return Err(EnrichError::GeoIpNothingConfigured);
        }
        let location =
            config.location.as_deref().map(|p| Database::open(p, Kind::Location, config.optional)).transpose()?;
        let asn = config.asn.as_deref().map(|p| Database::open(p, Kind::Asn, config.optional)).transpose()?;
        Ok(GeoIp { location, asn })
    }

    /// What the databases know about `ip`. Private, loopback, link-local, documentation and
    /// other non-routable addresses are answered empty without a lookup.
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        let ip = ip.to_canonical();
        let mut info = GeoInfo::default();
        if !is_routable(ip) {
            return info;
        }
        if let Some(db) = &self.location
            && let Some((country, city)) =
                db.query(ip, |r| Ok(r.lookup(ip)?.decode::<LocationRecord<'_>>()?.map(|rec| rec.fields())))
        {
            info.country = country;
            info.city = city;
        }
        if let Some(db) = &self.asn
            && let Some((number, organization)) = db.query(ip, |r| {
                Ok(r.lookup(ip)?
                    .decode::<AsnRecord<'_>>()?
                    .map(|rec| (rec.autonomous_system_number, rec.autonomous_system_organization.map(str::to_owned))))
            })
        {
            info.as_number = number;
            info.as_organization = organization;
        }
        info
    }

    /// Fills the event's empty geo and AS fields from its `source_ip`.
    pub fn enrich(&self, event: &mut Event) {
        let Some(ip) = event.source_ip else { return };
        if event.source_country.is_some()
            && event.source_city.is_some()
            && event.source_as_number.is_some()
            && event.source_as_organization.is_some()
        {
            return;
        }
        let info = self.lookup(ip);
        fill(&mut event.source_country, info.country);
        fill(&mut event.source_city, info.city);
        fill(&mut event.source_as_number, info.as_number);
        fill(&mut event.source_as_organization, info.as_organization);
    }

    /// Re-reads every database whose file changed (size or modification time) since it was
    /// last looked at, and swaps it in if it verifies; returns how many were swapped.
    ///
    /// A file that is missing, unreadable or corrupt is reported once (warning) and the
    /// database already loaded keeps serving: ingestion never stops for a bad download.
    /// Blocking: call it from `spawn_blocking` or a thread.
    pub fn reload_if_changed(&self) -> usize {
        [&self.location, &self.asn].into_iter().flatten().filter(|db| db.reload_if_changed()).count()
    }

    /// Lookups that hit a corrupt part of a database since start (they answered empty).
    pub fn lookup_errors(&self) -> u64 {
        [&self.location, &self.asn].into_iter().flatten().map(|db| db.lookup_errors.load(Ordering::Relaxed)).sum()
    }
}

fn fill<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// Whether an address can be in a GeoIP database: everything but the IANA special-purpose
/// ranges Vigie meets in practice. (`IpAddr::is_global` is not stable yet.)
fn is_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_routable_v4(v4),
        IpAddr::V6(v6) => is_routable_v6(v6),
    }
}

fn is_routable_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24, IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // 198.18.0.0/15, benchmarking
        || a >= 240) // 240.0.0.0/4, reserved
}

fn is_routable_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || (s[0] == 0x2001 && s[1] == 0x0db8) // 2001:db8::/32, documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])) // 100::/64, discard-only
}

/// The two kinds of database, checked against the file's `database_type` so that swapped
/// paths in the configuration are caught at start rather than yielding empty fields forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Location,
    Asn,
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Location => "a City or Country database",
            Kind::Asn => "an ASN or ISP database",
        }
    }

    fn accepts(self, database_type: &str) -> bool {
        let t = database_type.to_ascii_lowercase();
        match self {
            Kind::Location => t.contains("city") || t.contains("country") || t.contains("enterprise"),
            Kind::Asn => t.contains("asn") || t.contains("isp"),
        }
    }
}

/// What identifies a version of a database file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    Missing,
    File { len: u64, modified: Option<SystemTime> },
}

fn stamp(path: &Path) -> Stamp {
    match std::fs::metadata(path) {
        Ok(m) => Stamp::File { len: m.len(), modified: m.modified().ok() },
        Err(_) => Stamp::Missing,
    }
}

/// One database file and the reader currently serving it.
struct Database {
    kind: Kind,
    path: PathBuf,
    reader: ArcSwapOption<Reader<Vec<u8>>>,
    /// The file version last tried, loaded or refused: a refused file is reported once, and
    /// tried again only when it changes.
    seen: Mutex<Stamp>,
    /// Reset at each swap, so each database version warns about its corruption once.
    warned: AtomicBool,
    lookup_errors: AtomicU64,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("loaded", &self.reader.load().is_some())
            .finish_non_exhaustive()
    }
}

impl Database {
    fn open(path: &Path, kind: Kind, optional: bool) -> Result<Database, EnrichError> {
        let seen = stamp(path);
        let reader = match load(path, kind) {
            Ok(reader) => Some(Arc::new(reader)),
            Err(e) if optional => {
                tracing::warn!(path = %path.display(), error = %e, "optional geoip database not loaded; running without it");
                None
            }
            Err(e) => return Err(e),
        };
        Ok(Database {
            kind,
            path: path.to_owned(),
            reader: ArcSwapOption::new(reader),
            seen: Mutex::new(seen),
            warned: AtomicBool::new(false),
            lookup_errors: AtomicU64::new(0),
        })
    }

    /// Runs `query` on the current reader. Errors from a corrupt database answer `None`:
    /// enrichment is best-effort and must not stop ingestion; they are counted, and logged once
    /// per database version so a flood of bad lookups cannot flood the log.
    fn query<T>(
        &self,
        ip: IpAddr,
        query: impl FnOnce(&Reader<Vec<u8>>) -> Result<Option<T>, maxminddb::MaxMindDbError>,
    ) -> Option<T> {
        let guard = self.reader.load();
        let reader = guard.as_deref()?;
        match query(reader) {
            Ok(found) => found,
            Err(e) => {
                self.lookup_errors.fetch_add(1, Ordering::Relaxed);
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(path = %self.path.display(), %ip, error = %e, "geoip lookup failed; the database looks corrupt");
                }
                None
            }
        }
    }

    fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.path);
        {
            let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        if now == Stamp::Missing {
            tracing::warn!(path = %self.path.display(), "geoip database file is gone; keeping the loaded one");
            return false;
        }
        match load(&self.path, self.kind) {
            Ok(reader) => {
                tracing::info!(
                    path = %self.path.display(),
                    database_type = %reader.metadata().database_type,
                    build_epoch = reader.metadata().build_epoch,
                    "geoip database reloaded"
                );
                self.reader.store(Some(Arc::new(reader)));
                self.warned.store(false, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot reload geoip database; keeping the previous one");
                false
            }
        }
    }
}

/// Reads, parses and fully verifies a database, and checks it is of the expected kind.
fn load(path: &Path, kind: Kind) -> Result<Reader<Vec<u8>>, EnrichError> {
    let bytes = std::fs::read(path).map_err(|source| EnrichError::GeoIpRead { path: path.to_owned(), source })?;
    let invalid = |source| EnrichError::GeoIpInvalid { path: path.to_owned(), source };
    let reader = Reader::from_source(bytes).map_err(invalid)?;
    let found = &reader.metadata().database_type;
    if !kind.accepts(found) {
        return Err(EnrichError::GeoIpWrongKind {
            path: path.to_owned(),
            found: found.clone(),
            expected: kind.expected(),
        });
    }
    // Walks the whole search tree and data section: catches the corruptions `from_source`
    // cannot see (bad pointers, cycles) before the database serves a single lookup.
    reader.verify().map_err(invalid)?;
    Ok(reader)
}

// Only the fields Vigie keeps are decoded; the decoder skips the rest of each record.
#[derive(Deserialize)]
struct LocationRecord<'a> {
    #[serde(borrow, default)]
    country: Option<CountryRecord<'a>>,
    #[serde(borrow, default)]
    city: Option<CityRecord<'a>>,
}

#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow, default)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow, default)]
    fr: Option<&'a str>,
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

impl LocationRecord<'_> {
    /// The country where the address is located (not where its block is registered, which
    /// is what ECS `source.geo` means); the city in French for the city's staff, else in English.
    fn fields(&self) -> (Option<String>, Option<String>) {
        let country = self.country.as_ref().and_then(|c| c.iso_code).map(str::to_owned);
        let city = self.city.as_ref().and_then(|c| c.names.as_ref()).and_then(|n| n.fr.or(n.en)).map(str::to_owned);
        (country, city)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A file of the shared GeoIP test data (MaxMind's own test databases).
    pub(crate) fn data(name: &str) -> PathBuf {
        let dir = std::env::var_os("VIGIE_SHARED_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")));
        dir.join("geoip").join(name)
    }

    /// Replaces `target` the way geoipupdate does: write beside it, then rename over it.
    pub(crate) fn replace_atomically(from: &Path, target: &Path) {
        let tmp = target.with_extension("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, target).unwrap();
    }

    fn config(location: Option<&str>, asn: Option<&str>) -> GeoIpConfig {
        GeoIpConfig { location: location.map(data), asn: asn.map(data), optional: false }
    }

    fn city_and_asn() -> GeoIp {
        GeoIp::open(&config(Some("GeoLite2-City-Test.mmdb"), Some("GeoLite2-ASN-Test.mmdb"))).unwrap()
    }

    #[track_caller]
    fn check(geo: &GeoIp, ip: &str, country: Option<&str>, city: Option<&str>, asn: Option<(u32, &str)>) {
        let info = geo.lookup(ip.parse().unwrap());
        let expected = GeoInfo {
            country: country.map(str::to_owned),
            city: city.map(str::to_owned),
            as_number: asn.map(|a| a.0),
            as_organization: asn.map(|a| a.1.to_owned()),
        };
        assert_eq!(info, expected, "{ip}");
    }

    #[test]
    fn known_test_addresses_resolve() {
        let geo = city_and_asn();
        // From GeoLite2-City-Test.json / GeoLite2-ASN-Test.json.
        check(&geo, "81.2.69.142", Some("GB"), Some("Londres"), None);
        check(&geo, "81.2.69.170", Some("GB"), Some("Londres"), None);
        // No French name in the record: the English one.
        check(&geo, "2.125.160.217", Some("GB"), Some("Boxford"), None);
        check(&geo, "89.160.20.130", Some("SE"), Some("Linköping"), Some((29518, "Bredband2 AB")));
        // A City record without city, and an ASN record without organisation.
        let bhutan = geo.lookup("67.43.156.1".parse().unwrap());
        assert_eq!(
            bhutan,
            GeoInfo { country: Some("BT".into()), city: None, as_number: Some(35908), as_organization: None }
        );
        check(&geo, "2001:218::1", Some("JP"), None, None);
        check(&geo, "1.0.0.1", None, None, Some((15169, "Google Inc.")));
        check(&geo, "1.128.0.1", None, None, Some((1221, "Telstra Pty Ltd")));
        check(&geo, "2001:1700::1", None, None, Some((6730, "Sunrise Communications AG")));
        // An IPv4-mapped IPv6 address (dual-stack sockets log them) is the IPv4 address.
        check(&geo, "::ffff:81.2.69.142", Some("GB"), Some("Londres"), None);
        assert_eq!(geo.lookup_errors(), 0);
    }

    #[test]
    fn a_country_database_gives_no_city() {
        let geo = GeoIp::open(&config(Some("GeoLite2-Country-Test.mmdb"), None)).unwrap();
        check(&geo, "81.2.69.142", Some("GB"), None, None);
        check(&geo, "1.0.0.1", None, None, None);
    }

    #[test]
    fn special_purpose_addresses_are_not_looked_up() {
        let geo = city_and_asn();
        for ip in [
            "10.20.0.5",
            "192.168.1.1",
            "172.16.0.1",
            "127.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "100.64.1.1",
            "169.254.1.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_routable(ip.parse::<IpAddr>().unwrap().to_canonical()), "{ip}");
            check(&geo, ip, None, None, None);
        }
        for ip in ["81.2.69.142", "8.8.8.8", "2001:218::1", "100.128.0.1", "198.20.0.1"] {
            assert!(is_routable(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn enrich_fills_only_empty_fields() {
        let geo = city_and_asn();
        let mut event = Event { source_ip: Some("81.2.69.142".parse().unwrap()), ..Event::default() };
        geo.enrich(&mut event);
        assert_eq!(event.source_country.as_deref(), Some("GB"));
        assert_eq!(event.source_city.as_deref(), Some("Londres"));
        assert_eq!(event.source_as_number, None);

        // What the log said wins (a firewall that writes the country itself).
        let mut event = Event {
            source_ip: Some("81.2.69.142".parse().unwrap()),
            source_country: Some("FR".into()),
            ..Event::default()
        };
        geo.enrich(&mut event);
        assert_eq!(event.source_country.as_deref(), Some("FR"));
        assert_eq!(event.source_city.as_deref(), Some("Londres"));

        let mut no_ip = Event::default();
        geo.enrich(&mut no_ip);
        assert_eq!(no_ip, Event::default());
    }

    #[test]
    fn a_missing_database_is_a_clear_error_unless_optional() {
        let missing =
            GeoIpConfig { location: Some("/nonexistent/GeoLite2-City.mmdb".into()), asn: None, optional: false };
        let err = GeoIp::open(&missing).unwrap_err();
        assert!(matches!(err, EnrichError::GeoIpRead { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("/nonexistent/GeoLite2-City.mmdb"), "{message}");
        assert!(message.contains("geoipupdate"), "{message}");

        let geo = GeoIp::open(&GeoIpConfig { optional: true, ..missing }).unwrap();
        check(&geo, "81.2.69.142", None, None, None);

        assert!(matches!(GeoIp::open(&GeoIpConfig::default()), Err(EnrichError::GeoIpNothingConfigured)));
    }

    #[test]
    fn an_optional_database_is_picked_up_when_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("GeoLite2-ASN.mmdb");
        let geo = GeoIp::open(&GeoIpConfig { location: None, asn: Some(path.clone()), optional: true }).unwrap();
        check(&geo, "1.0.0.1", None, None, None);
        assert_eq!(geo.reload_if_changed(), 0);
        std::fs::copy(data("GeoLite2-ASN-Test.mmdb"), &path).unwrap();
        assert_eq!(geo.reload_if_changed(), 1);
        check(&geo, "1.0.0.1", None, None, Some((15169, "Google Inc.")));
    }

    #[test]
    fn a_database_of_the_wrong_kind_is_refused() {
        let err = GeoIp::open(&config(Some("GeoLite2-ASN-Test.mmdb"), None)).unwrap_err();
        assert!(matches!(&err, EnrichError::GeoIpWrongKind { found, .. } if found == "GeoLite2-ASN"), "{err:?}");
        assert!(err.to_string().contains("City or Country"), "{err}");
        let err = GeoIp::open(&config(None, Some("GeoLite2-City-Test.mmdb"))).unwrap_err();
        assert!(matches!(err, EnrichError::GeoIpWrongKind { .. }), "{err:?}");
        let err = GeoIp::open(&config(Some("GeoIP2-Anonymous-IP-Test.mmdb"), None)).unwrap_err();
        assert!(matches!(err, EnrichError::GeoIpWrongKind { .. }), "{err:?}");
    }

    const CORRUPT: [&str; 3] = [
        "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        "MaxMind-DB-test-broken-pointers-24.mmdb",
        "MaxMind-DB-test-broken-search-tree-24.mmdb",
    ];

    #[test]
    fn corrupt_databases_are_refused_at_open() {
        for name in CORRUPT {
            let err = GeoIp::open(&config(Some(name), None)).unwrap_err();
            assert!(
                matches!(err, EnrichError::GeoIpInvalid { .. } | EnrichError::GeoIpWrongKind { .. }),
                "{name}: {err:?}"
            );
            assert!(err.to_string().contains(name), "{err}");
        }
        // The kind check must not be what saves us: a corrupt City database fails verification.
        let err = GeoIp::open(&config(Some(CORRUPT[0]), None)).unwrap_err();
        assert!(matches!(err, EnrichError::GeoIpInvalid { .. }), "{err:?}");
    }

    /// Addresses spread over the whole IPv4 and IPv6 spaces, deterministic.
    fn spread(n: u32) -> impl Iterator<Item = IpAddr> {
        (0..n).map(|i| {
            let x = i.wrapping_mul(2_654_435_761);
            if i % 4 == 3 {
                IpAddr::V6(Ipv6Addr::from((u128::from(x) << 96) | u128::from(i)))
            } else {
                IpAddr::V4(Ipv4Addr::from(x))
            }
        })
    }

    #[test]
    fn lookups_on_corrupt_databases_answer_empty_without_panicking() {
        // Bypass the verification done at open, as if a corruption had slipped through, and
        // hammer the lookup path: every answer must be an error (counted) or empty, never a panic.
        let mut looked_up = 0;
        for name in CORRUPT {
            let bytes = std::fs::read(data(name)).unwrap();
            let Ok(reader) = Reader::from_source(bytes) else { continue };
            let db = Database {
                kind: Kind::Location,
                path: data(name),
                reader: ArcSwapOption::new(Some(Arc::new(reader))),
                seen: Mutex::new(Stamp::Missing),
                warned: AtomicBool::new(false),
                lookup_errors: AtomicU64::new(0),
            };
            let geo = GeoIp { location: Some(db), asn: None };
            let mut answered = 0;
            for ip in spread(4000) {
                let info = geo.lookup(ip);
                answered += usize::from(info != GeoInfo::default());
            }
            looked_up += 1;
            assert!(geo.lookup_errors() > 0, "{name}: no lookup reported the corruption");
            // These test databases hold no `country.iso_code`/`city.names`: nothing real to find.
            assert_eq!(answered, 0, "{name}");
        }
        assert!(looked_up >= 1, "every corrupt file failed to parse; the lookup path went untested");
    }

    #[test]
    fn a_replaced_database_is_reloaded_and_a_bad_one_keeps_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("GeoLite2-City.mmdb");
        std::fs::copy(data("GeoLite2-Country-Test.mmdb"), &path).unwrap();
        let geo = GeoIp::open(&GeoIpConfig { location: Some(path.clone()), asn: None, optional: false }).unwrap();
        check(&geo, "81.2.69.142", Some("GB"), None, None);
        assert_eq!(geo.reload_if_changed(), 0, "unchanged file");

        replace_atomically(&data("GeoLite2-City-Test.mmdb"), &path);
        assert_eq!(geo.reload_if_changed(), 1);
        check(&geo, "81.2.69.142", Some("GB"), Some("Londres"), None);
        assert_eq!(geo.reload_if_changed(), 0);

        // Overwritten in place with a corrupt file: refused, the loaded database keeps serving.
        std::fs::copy(data(CORRUPT[0]), &path).unwrap();
        assert_eq!(geo.reload_if_changed(), 0);
        check(&geo, "81.2.69.142", Some("GB"), Some("Londres"), None);
        // Gone: same.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(geo.reload_if_changed(), 0);
        check(&geo, "81.2.69.142", Some("GB"), Some("Londres"), None);

        std::fs::copy(data("GeoLite2-Country-Test.mmdb"), &path).unwrap();
        assert_eq!(geo.reload_if_changed(), 1);
        check(&geo, "81.2.69.142", Some("GB"), None, None);
    }

    #[test]
    fn config_rejects_unknown_keys() {
        let ok: GeoIpConfig = serde_json::from_str(r#"{"location": "/a.mmdb", "optional": true}"#).unwrap();
        assert_eq!(ok, GeoIpConfig { location: Some("/a.mmdb".into()), asn: None, optional: true });
        assert!(serde_json::from_str::<GeoIpConfig>(r#"{"city": "/a.mmdb"}"#).is_err());
    }
}
