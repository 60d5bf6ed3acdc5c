//! The requisition search of `bench/archive.sh` in a long-lived process, as the requisition web
//! page runs it: one [`Requisitions`] desk kept for the whole run, then one audited search per
//! client address over the whole year. Prints the wall time of each search in seconds, one a
//! line, to standard output.
//!
//! `cargo run --release -p retention --example archive_search_bench -- ARCHIVE AUDIT KEY IPS N`
//!
//! ARCHIVE is the archive directory (`<data>/archive`), AUDIT the audit log to append to, KEY
//! the signing key, IPS a file of addresses (one a line, as `archive_bench_data` writes them),
//! N how many of them to search for. The first search of the desk opens the days it needs (the
//! first line printed); the desk keeps the sealed days open, so the next ones find them open.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use retention::{ArchiveKey, Requisition, RequisitionQuery, Requisitions, Scope};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [archive, audit, key, ips, n] = &args[..] else {
        eprintln!("usage: archive_search_bench ARCHIVE AUDIT KEY IPS N");
        return ExitCode::FAILURE;
    };
    let Ok(n) = n.parse::<usize>() else {
        eprintln!("N must be a number of searches");
        return ExitCode::FAILURE;
    };
    match run(&PathBuf::from(archive), &PathBuf::from(audit), &PathBuf::from(key), &PathBuf::from(ips), n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("archive_search_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(archive: &Path, audit: &Path, key: &Path, ips: &Path, n: usize) -> Result<(), String> {
    let key = ArchiveKey::load(key).map_err(|e| e.to_string())?;
    let ips = std::fs::read_to_string(ips).map_err(|e| format!("{}: {e}", ips.display()))?;
    let desk = Requisitions::new(archive, audit, key, "banc d'essai");
    let requisition = Requisition {
        authority: "Banc d essai".into(),
        procedure_number: "BENCH-1".into(),
        legal_basis: "art. 60-1 CPP".into(),
        date: "2025-04-10".parse().map_err(|e| format!("{e}"))?,
    };
    let from = "2024-04-01T00:00:00Z".parse().map_err(|e| format!("{e}"))?;
    let to = "2025-05-01T00:00:00Z".parse().map_err(|e| format!("{e}"))?;
    for line in ips.lines().take(n) {
        let ip = line.trim().parse().map_err(|e| format!("{line}: {e}"))?;
        let query = RequisitionQuery { scope: Scope::Ip { ip, port: None }, from, to };
        let start = Instant::now();
        let page = desk.search(&requisition, "bench", &query, 0, 10_000).map_err(|e| e.to_string())?;
        let seconds = start.elapsed().as_secs_f64();
        if page.records.is_empty() {
            return Err(format!("no record for {ip}: the archive is not the bench's"));
        }
        println!("{seconds:.6}");
    }
    Ok(())
}
