//! Which school a client address belongs to: the schools' networks, matched by longest prefix.
//!
//! The table comes from a CSV kept by the city's IT staff (header
//! `uai,nom,email_directeur,reseaux`; `reseaux` is a list of CIDRs separated by spaces or
//! semicolons), or from the demo city. A network may contain another (a district network and
//! one school's subnet inside it): the most specific one wins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::error::EnrichError;
use crate::event::Event;

/// One school of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchoolEntry {
    /// The national school code (UAI): 7 digits and a check letter.
    pub uai: String,
    pub name: String,
    pub director_email: String,
    pub networks: Vec<IpNet>,
}

/// The schools and their networks, with a longest-prefix index.
#[derive(Debug, Clone, Default)]
pub struct Schools {
    entries: Vec<SchoolEntry>,
    v4: PrefixTable,
    v6: PrefixTable,
}

impl Schools {
    /// Loads the schools CSV at `path` (UTF-8, comma- or semicolon-delimited).
    pub fn load(path: &Path) -> Result<Schools, EnrichError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| EnrichError::SchoolsRead { path: name.clone(), source })?;
        Schools::from_csv(&name, &bytes)
    }

    /// Parses a schools CSV; `name` is how errors refer to it.
    pub fn from_csv(name: &str, bytes: &[u8]) -> Result<Schools, EnrichError> {
        let bad = |line: u64, field: Option<&'static str>, problem: String| EnrichError::SchoolsLine {
            path: name.to_owned(),
            line,
            field,
            problem,
        };
        // Spreadsheets export with a byte-order mark, and in French locales with `;` between
        // fields (the `reseaux` list then uses spaces, or is quoted).
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let delimiter = if first_line.contains(&b';') && !first_line.contains(&b',') { b';' } else { b',' };
        let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).trim(csv::Trim::All).from_reader(bytes);

        let header = reader.byte_headers().map_err(|e| csv_error(name, bytes, &e))?.clone();
        let column = |wanted: &'static str| {
            header.iter().position(|h| h.eq_ignore_ascii_case(wanted.as_bytes())).ok_or_else(|| {
                bad(1, None, format!("the header has no `{wanted}` column; expected `uai,nom,email_directeur,reseaux`"))
            })
        };
        let columns = [column("uai")?, column("nom")?, column("email_directeur")?, column("reseaux")?];

        let mut schools = Schools::default();
        let mut lines = Vec::new();
        let mut uais: HashMap<String, u64> = HashMap::new();
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(csv_error(name, bytes, &e)),
            }
            let line = record.position().map_or(0, |p| line_at(bytes, p.byte()));
            let mut fields = [""; 4];
            for ((slot, &index), field) in fields.iter_mut().zip(&columns).zip(COLUMNS) {
                let raw = record.get(index).unwrap_or_default();
                *slot = std::str::from_utf8(raw).map_err(|_| {
                    bad(
                        line,
                        Some(field),
                        "is not valid UTF-8; the file was probably saved as Latin-1/Windows-1252, \
                         save it again as « CSV UTF-8 »"
                            .into(),
                    )
                })?;
            }
            let [uai, nom, email, reseaux] = fields;
            let uai = uai.to_ascii_uppercase();
            check_uai(&uai).map_err(|problem| bad(line, Some("uai"), problem))?;
            if let Some(first) = uais.insert(uai.clone(), line) {
                return Err(bad(line, Some("uai"), format!("school {uai} is already listed on line {first}")));
            }
            if nom.is_empty() {
                return Err(bad(line, Some("nom"), "is empty; give the school's name".into()));
            }
            if !is_plausible_email(email) {
                return Err(bad(line, Some("email_directeur"), format!("`{email}` is not an email address")));
            }
            let mut networks = Vec::new();
            for cidr in reseaux.split([' ', ';', '\t']).filter(|s| !s.is_empty()) {
                networks.push(parse_network(cidr).map_err(|problem| bad(line, Some("reseaux"), problem))?);
            }
            let entry = SchoolEntry { uai, name: nom.to_owned(), director_email: email.to_owned(), networks };
            schools.push(entry).map_err(|(net, other)| {
                let owner = &schools.entries[other];
                bad(
                    line,
                    Some("reseaux"),
                    format!(
                        "network {net} is already the network of {} (line {}); a network belongs to one school",
                        owner.uai, lines[other]
                    ),
                )
            })?;
            lines.push(line);
        }
        Ok(schools)
    }

    /// The demo city's 188 schools, each with its /28 (see [`crate::source::demo::schools`]).
    pub fn from_demo() -> Schools {
        let mut schools = Schools::default();
        for school in crate::source::demo::schools() {
            let network = IpNet::new(IpAddr::V4(school.network), 28).expect("28 is a valid IPv4 prefix length");
            let entry = SchoolEntry {
                uai: school.uai,
                name: school.name,
                director_email: school.director_email,
                networks: vec![network],
            };
            if schools.push(entry).is_err() {
                unreachable!("the demo schools have distinct networks");
            }
        }
        schools
    }

    /// The school whose most specific network contains `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&SchoolEntry> {
        let index = match ip.to_canonical() {
            IpAddr::V4(v4) => self.v4.lookup(u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => self.v6.lookup(u128::from(v6), 128),
        }?;
        self.entries.get(index)
    }

    /// Fills `school_uai` and `school_name` from `source_ip`, unless the event already has a school.
    pub fn enrich(&self, event: &mut Event) {
        if event.school_uai.is_some() {
            return;
        }
        if let Some(school) = event.source_ip.and_then(|ip| self.lookup(ip)) {
            event.school_uai = Some(school.uai.clone());
            event.school_name = Some(school.name.clone());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &SchoolEntry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a school; on a network already taken, returns it and the index of its owner.
    fn push(&mut self, entry: SchoolEntry) -> Result<(), (IpNet, usize)> {
        let index = self.entries.len();
        for net in &entry.networks {
            let taken = match net {
                IpNet::V4(n) => self.v4.insert(u128::from(u32::from(n.network())), n.prefix_len(), 32, index),
                IpNet::V6(n) => self.v6.insert(u128::from(n.network()), n.prefix_len(), 128, index),
            };
            if let Some(other) = taken {
                return Err((*net, other));
            }
        }
        self.entries.push(entry);
        Ok(())
    }
}

const COLUMNS: [&str; 4] = ["uai", "nom", "email_directeur", "reseaux"];

/// The 1-based line of the record csv reports at byte `offset`. On CRLF files csv's position
/// (and its line counter) points at the end of the previous line, before the `\n` and any
/// blank lines: skip those to reach the record itself.
fn line_at(bytes: &[u8], offset: u64) -> u64 {
    let mut start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
    while bytes.get(start).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
        start += 1;
    }
    1 + bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64
}

fn csv_error(name: &str, bytes: &[u8], e: &csv::Error) -> EnrichError {
    let line = e.position().map_or(0, |p| line_at(bytes, p.byte()));
    let problem = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("has {len} fields where the header has {expected_len}; quote a field that contains the delimiter")
        }
        _ => e.to_string(),
    };
    EnrichError::SchoolsLine { path: name.to_owned(), line, field: None, problem }
}

/// Check letters of the UAI: the 7-digit number modulo 23 indexes this alphabet (no I, O, Q).
const UAI_LETTERS: &[u8; 23] = b"ABCDEFGHJKLMNPRSTUVWXYZ";

fn check_uai(uai: &str) -> Result<(), String> {
    let bytes = uai.as_bytes();
    if bytes.len() != 8 || !bytes[..7].iter().all(u8::is_ascii_digit) || !bytes[7].is_ascii_uppercase() {
        return Err(format!("`{uai}` is not a UAI (7 digits and a letter, like 0692011L)"));
    }
    let number: u32 = uai[..7].parse().map_err(|_| format!("`{uai}` is not a UAI"))?;
    let expected = UAI_LETTERS[(number % 23) as usize] as char;
    if bytes[7] as char != expected {
        return Err(format!("`{uai}` has a wrong check letter (expected {expected}); check the code"));
    }
    Ok(())
}

fn is_plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.contains('@') && !email.contains(char::is_whitespace)
        }
        None => false,
    }
}

fn parse_network(cidr: &str) -> Result<IpNet, String> {
    let net: IpNet =
        cidr.parse().map_err(|_| format!("`{cidr}` is not a network in CIDR notation (like 10.20.0.16/28)"))?;
    if net.addr() != net.network() {
        return Err(format!("`{cidr}` has host bits set; the network is {}", net.trunc()));
    }
    Ok(net)
}

/// Longest-prefix match: one hash map per prefix length in use, longest first. A district
/// uses a handful of lengths, so a lookup is a few hash probes.
#[derive(Debug, Clone, Default)]
struct PrefixTable {
    by_len: Vec<(u8, HashMap<u128, usize>)>,
}

/// The `len` leading bits of a `width`-bit address.
fn key(bits: u128, len: u8, width: u8) -> u128 {
    bits.checked_shr(u32::from(width - len)).unwrap_or(0)
}

impl PrefixTable {
    /// Inserts; on a prefix already present, returns its owner and inserts nothing.
    fn insert(&mut self, bits: u128, len: u8, width: u8, value: usize) -> Option<usize> {
        let position = match self.by_len.iter().position(|(l, _)| *l <= len) {
            Some(p) if self.by_len[p].0 == len => p,
            Some(p) => {
                self.by_len.insert(p, (len, HashMap::new()));
                p
            }
            None => {
                self.by_len.push((len, HashMap::new()));
                self.by_len.len() - 1
            }
        };
        let map = &mut self.by_len[position].1;
        match map.entry(key(bits, len, width)) {
            std::collections::hash_map::Entry::Occupied(o) => Some(*o.get()),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(value);
                None
            }
        }
    }

    fn lookup(&self, bits: u128, width: u8) -> Option<usize> {
        self.by_len.iter().find_map(|(len, map)| map.get(&key(bits, *len, width)).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "uai,nom,email_directeur,reseaux\n";

    fn csv(body: &str) -> Result<Schools, EnrichError> {
        Schools::from_csv("ecoles.csv", format!("{HEADER}{body}").as_bytes())
    }

    #[track_caller]
    fn check(schools: &Schools, ip: &str, expected: Option<&str>) {
        let found = schools.lookup(ip.parse().unwrap()).map(|s| s.uai.as_str());
        assert_eq!(found, expected, "{ip}");
    }

    #[track_caller]
    fn check_error(body: &str, expected: &str) {
        let err = csv(body).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }

    #[test]
    fn the_longest_prefix_wins() {
        let schools = csv("0692011L,Secteur Nord,ce.nord@ac-exemple.fr,10.20.0.0/16\n\
             0692018U,École élémentaire Jean Jaurès,ce.0692018u@ac-exemple.fr,10.20.3.0/24;10.20.3.128/25\n\
             0692025B,École maternelle Victor Hugo,ce.0692025b@ac-exemple.fr,10.20.3.192/28 2a01:e0a:1:2::/64\n")
        .unwrap();
        assert_eq!(schools.len(), 3);
        check(&schools, "10.20.9.9", Some("0692011L"));
        check(&schools, "10.20.3.1", Some("0692018U"));
        check(&schools, "10.20.3.129", Some("0692018U"));
        check(&schools, "10.20.3.200", Some("0692025B"));
        check(&schools, "10.20.3.207", Some("0692025B"));
        check(&schools, "10.20.3.208", Some("0692018U"));
        check(&schools, "2a01:e0a:1:2::beef", Some("0692025B"));
        check(&schools, "::ffff:10.20.3.200", Some("0692025B"));
        check(&schools, "2a01:e0a:1:3::1", None);
        check(&schools, "10.21.0.1", None);
        check(&schools, "81.2.69.142", None);
        let school = schools.lookup("10.20.3.1".parse().unwrap()).unwrap();
        assert_eq!(school.name, "École élémentaire Jean Jaurès");
        assert_eq!(school.director_email, "ce.0692018u@ac-exemple.fr");
    }

    #[test]
    fn default_routes_and_host_routes() {
        let schools = csv("0692011L,Partout,a@b.fr,0.0.0.0/0 ::/0\n\
             0692018U,Un poste,c@d.fr,10.0.0.1/32 2001:db8::1/128\n")
        .unwrap();
        check(&schools, "10.0.0.1", Some("0692018U"));
        check(&schools, "10.0.0.2", Some("0692011L"));
        check(&schools, "2001:db8::1", Some("0692018U"));
        check(&schools, "2001:db8::2", Some("0692011L"));
    }

    #[test]
    fn enrich_fills_the_school() {
        let schools = csv("0692018U,École Jules Ferry,ce@ac-exemple.fr,10.20.0.16/28\n").unwrap();
        let mut event = Event { source_ip: Some("10.20.0.17".parse().unwrap()), ..Event::default() };
        schools.enrich(&mut event);
        assert_eq!(event.school_uai.as_deref(), Some("0692018U"));
        assert_eq!(event.school_name.as_deref(), Some("École Jules Ferry"));
        let mut elsewhere = Event { source_ip: Some("10.20.0.32".parse().unwrap()), ..Event::default() };
        schools.enrich(&mut elsewhere);
        assert_eq!(elsewhere.school_uai, None);
    }

    #[test]
    fn spreadsheet_exports_are_accepted() {
        // BOM, `;` between fields, CRLF, padding, lowercase UAI, a school without a network.
        let text = "\u{feff}UAI;Nom;Email_Directeur;Reseaux\r\n \
                    0692018u ; École Émile Zola ; ce@ac-exemple.fr ; 10.20.0.16/28 10.20.0.32/28 \r\n\
                    0692025B;École sans réseau;ce2@ac-exemple.fr;\r\n";
        let schools = Schools::from_csv("ecoles.csv", text.as_bytes()).unwrap();
        assert_eq!(schools.len(), 2);
        check(&schools, "10.20.0.40", Some("0692018U"));
        assert_eq!(schools.iter().next().unwrap().name, "École Émile Zola");
        assert!(schools.iter().nth(1).unwrap().networks.is_empty());
    }

    #[test]
    fn bad_lines_name_the_file_line_and_field() {
        check_error(
            "0692018U,A,a@b.fr,10.20.0.16/28\n0692025B,B,b@b.fr,10.20.0.300/28\n",
            "schools file ecoles.csv, line 3, field `reseaux`: `10.20.0.300/28` is not a network in CIDR notation (like 10.20.0.16/28)",
        );
        check_error(
            "0692018U,A,a@b.fr,10.20.0.17/28\n",
            "schools file ecoles.csv, line 2, field `reseaux`: `10.20.0.17/28` has host bits set; the network is 10.20.0.16/28",
        );
        check_error(
            "0692018U,A,a@b.fr,10.20.0.16/28\n0692025B,B,b@b.fr,10.20.0.16/28\n",
            "schools file ecoles.csv, line 3, field `reseaux`: network 10.20.0.16/28 is already the network of 0692018U (line 2); a network belongs to one school",
        );
        check_error(
            "0692018X,A,a@b.fr,\n",
            "schools file ecoles.csv, line 2, field `uai`: `0692018X` has a wrong check letter (expected U); check the code",
        );
        check_error(
            "69201,A,a@b.fr,\n",
            "schools file ecoles.csv, line 2, field `uai`: `69201` is not a UAI (7 digits and a letter, like 0692011L)",
        );
        check_error(
            "0692018U,A,a@b.fr,\n0692018U,B,b@b.fr,\n",
            "schools file ecoles.csv, line 3, field `uai`: school 0692018U is already listed on line 2",
        );
        check_error(
            "0692018U,,a@b.fr,\n",
            "schools file ecoles.csv, line 2, field `nom`: is empty; give the school's name",
        );
        check_error(
            "0692018U,A,directeur,\n",
            "schools file ecoles.csv, line 2, field `email_directeur`: `directeur` is not an email address",
        );
        check_error(
            "0692018U,A,a@b.fr\n",
            "schools file ecoles.csv, line 2: has 3 fields where the header has 4; quote a field that contains the delimiter",
        );
        let err = Schools::from_csv("ecoles.csv", b"uai,nom,reseaux\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "schools file ecoles.csv, line 1: the header has no `email_directeur` column; expected `uai,nom,email_directeur,reseaux`"
        );
    }

    #[test]
    fn line_numbers_count_crlf_lines_and_a_bom() {
        let text =
            "\u{feff}uai;nom;email_directeur;reseaux\r\n0692018U;A;a@b.fr;\r\n\r\n0692025B;B;b@b.fr;10.0.0.1/8\r\n";
        let err = Schools::from_csv("ecoles.csv", text.as_bytes()).unwrap_err();
        assert!(matches!(err, EnrichError::SchoolsLine { line: 4, field: Some("reseaux"), .. }), "{err:?}");
    }

    #[test]
    fn latin1_is_refused_with_advice() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"0692018U,\xc9cole,a@b.fr,\n");
        let err = Schools::from_csv("ecoles.csv", &bytes).unwrap_err();
        assert!(matches!(err, EnrichError::SchoolsLine { line: 2, field: Some("nom"), .. }), "{err:?}");
        assert!(err.to_string().contains("CSV UTF-8"), "{err}");
    }

    #[test]
    fn load_reads_a_file_and_reports_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ecoles.csv");
        std::fs::write(&path, format!("{HEADER}0692018U,École,a@b.fr,10.20.0.16/28\n")).unwrap();
        let schools = Schools::load(&path).unwrap();
        check(&schools, "10.20.0.20", Some("0692018U"));
        let err = Schools::load(&dir.path().join("absent.csv")).unwrap_err();
        assert!(matches!(err, EnrichError::SchoolsRead { .. }));
        assert!(err.to_string().contains("absent.csv"), "{err}");
    }

    #[test]
    fn the_demo_table_attributes_school_5() {
        let schools = Schools::from_demo();
        let demo = crate::source::demo::schools();
        assert_eq!(schools.len(), 188);
        let fifth = &demo[4];
        let o = fifth.network.octets();
        for host in [0, 1, 14, 15] {
            let ip = format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3] + host);
            check(&schools, &ip, Some(fifth.uai.as_str()));
        }
        check(&schools, &format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3] + 16), Some(demo[5].uai.as_str()));
        check(&schools, "10.99.0.1", None);
        // Every demo UAI passes the CSV's check, so the demo table could be exported as a CSV.
        for school in schools.iter() {
            check_uai(&school.uai).unwrap();
        }
    }
}
