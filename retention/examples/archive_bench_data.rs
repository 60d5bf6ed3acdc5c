//! The synthetic records of `bench/archive.sh`, written twice: Apache combined lines (what
//! `vigie archive ingest` reads, what `rg` scans and `zstd` compresses) and NDJSON of the fields
//! the archive keeps (what tantivy-cli indexes), plus a sample of client addresses to search.
//!
//! `cargo run --release -p retention --example archive_bench_data -- [--only log|ndjson] N LOG NDJSON IPS [DAYS]`
//!
//! `--only` writes one of the two files (the other path still names the records, so the two
//! halves of a split run are the same records as one run): at 100M records the raw log and the
//! NDJSON take ~50 GB together, and the bench needs them one after the other.
//!
//! N records spread evenly over DAYS days (default 365) from 2024-04-08, from 20,000 client addresses in
//! 10.0.0.0/12 and 50,000 accounts; a fifth of the requests delete a blog article (its id is in
//! the path, which the archive must not keep). Deterministic: the same N writes the same files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

/// SplitMix64: a small, well-mixed deterministic generator (no dependency for bench data).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

const AGENTS: [&str; 2] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
];
/// Method, path (`{}` is the line number) and the operation the default route table names.
const ROUTES: [(&str, &str, &str); 5] = [
    ("GET", "/blog/", "consultation"),
    ("POST", "/login_check", "connexion"),
    ("GET", "/logout", "déconnexion"),
    ("GET", "/messagerie/", "consultation"),
    ("POST", "/blog/gestion/article/{}/supprimer", "suppression"),
];

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let only = match args.iter().position(|a| a == "--only") {
        Some(at) if at + 1 < args.len() => {
            let which = args.remove(at + 1);
            args.remove(at);
            match which.as_str() {
                "log" => Only::Log,
                "ndjson" => Only::Ndjson,
                other => {
                    eprintln!("--only takes log or ndjson, not {other:?}");
                    return ExitCode::FAILURE;
                }
            }
        }
        Some(_) => {
            eprintln!("--only takes log or ndjson");
            return ExitCode::FAILURE;
        }
        None => Only::Both,
    };
    let (n, log_path, ndjson_path, ips_path, days) = match &args[..] {
        [n, log, nd, ips] => (n, log, nd, ips, "365"),
        [n, log, nd, ips, days] => (n, log, nd, ips, days.as_str()),
        _ => {
            eprintln!("usage: archive_bench_data [--only log|ndjson] N LOG NDJSON IPS [DAYS]");
            return ExitCode::FAILURE;
        }
    };
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("N must be a number of records");
        return ExitCode::FAILURE;
    };
    let Ok(days @ 1..) = days.parse::<u64>() else {
        eprintln!("DAYS must be a number of days, at least 1");
        return ExitCode::FAILURE;
    };
    match write(n, days, only, log_path, ndjson_path, ips_path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("archive_bench_data: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which of the two record files to write.
#[derive(Clone, Copy, PartialEq)]
enum Only {
    Both,
    Log,
    Ndjson,
}

/// A buffered file, or nothing when that half of the records is not wanted.
fn output(path: &str, wanted: bool) -> std::io::Result<Box<dyn Write>> {
    Ok(if wanted {
        Box::new(BufWriter::with_capacity(1 << 20, File::create(path)?))
    } else {
        Box::new(std::io::sink())
    })
}

fn write(n: u64, days: u64, only: Only, log_path: &str, ndjson_path: &str, ips_path: &str) -> std::io::Result<()> {
    let mut rng = Rng(7);
    let start: jiff::Timestamp = "2024-04-08T00:00:00Z".parse().expect("valid timestamp");
    let ips: Vec<String> =
        (0..20_000).map(|_| std::net::Ipv4Addr::from(0x0A00_0000 + rng.below(1 << 20) as u32).to_string()).collect();
    let mut log = output(log_path, only != Only::Ndjson)?;
    let mut nd = output(ndjson_path, only != Only::Log)?;
    let span = days * 86_400;
    let (mut second, mut stamp) = (u64::MAX, String::new());
    for i in 0..n {
        let s = (u128::from(i) * u128::from(span) / u128::from(n)) as u64;
        if s != second {
            second = s;
            let t = start + jiff::SignedDuration::from_secs(s as i64);
            stamp = t.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string();
        }
        let ip = &ips[rng.below(ips.len() as u64) as usize];
        let user = rng.below(50_000);
        let (method, path, op) = ROUTES[rng.below(ROUTES.len() as u64) as usize];
        let path = path.replace("{}", &i.to_string());
        let ua = AGENTS[(i % 2) as usize];
        let size = 200 + rng.below(89_800);
        writeln!(
            log,
            "{ip} - eleve{user} [{stamp}] \"{method} {path} HTTP/1.1\" 200 {size} \"https://ent.ville.fr/\" \"{ua}\""
        )?;
        let ns = (start.as_second() + s as i64) as i128 * 1_000_000_000;
        writeln!(
            nd,
            "{{\"event_id\": \"{log_path}:{}\", \"timestamp_ns\": {ns}, \"source_ip\": \"{ip}\", \"protocol\": \"HTTP/1.1\", \
             \"operation\": \"{op}\", \"user_name\": \"eleve{user}\", \"user_agent\": \"{ua}\", \"status\": 200, \
             \"observer\": \"ent.ville.fr\"}}",
            i + 1
        )?;
    }
    log.flush()?;
    nd.flush()?;
    // 50 distinct addresses to search for.
    let mut sample: Vec<&String> = Vec::new();
    while sample.len() < 50 {
        let ip = &ips[rng.below(ips.len() as u64) as usize];
        if !sample.contains(&ip) {
            sample.push(ip);
        }
    }
    let mut out = BufWriter::new(File::create(ips_path)?);
    for ip in sample {
        writeln!(out, "{ip}")?;
    }
    out.flush()
}
