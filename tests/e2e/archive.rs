//! `vigie archive …`: backfill survives `kill -9`, the archive never holds the content
//! consulted, and a requisition goes from search to signed export to audit log.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::vigie;

/// `n` Apache combined lines over three days, every one with a client address.
fn write_log(path: &Path, n: usize, tag: &str) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let day = 5 + (i * 3 / n);
        let (h, m, s) = ((i / 3600) % 24, (i / 60) % 60, i % 60);
        let ip = format!("10.{}.{}.{}", (i / 65536) % 256, (i / 256) % 256, i % 256);
        let (method, path) = match i % 5 {
            0 => ("POST", "/login_check".to_owned()),
            1 => ("POST", format!("/blog/gestion/article/{i}/supprimer")),
            _ => ("GET", format!("/eleves/{tag}PATH{i}/bulletin?q={tag}QUERY{i}")),
        };
        writeln!(
            out,
            "{ip} - eleve{} [{day:02}/Apr/2025:{h:02}:{m:02}:{s:02} +0200] \"{method} {path} HTTP/1.1\" 200 512 \"https://ent.example/{tag}REF{i}\" \"Mozilla/5.0\"",
            i % 500
        )
        .unwrap();
    }
    out.flush().unwrap();
}

fn stats_documents(data: &Path) -> u64 {
    let out = vigie().args(["archive", "stats", "--data"]).arg(data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["duplicate_ids"], 0, "{json}");
    json["documents"].as_u64().unwrap()
}

fn ingest(data: &Path, files: &[&Path], extra: &[&str]) -> std::process::Command {
    let mut cmd = vigie();
    cmd.args(["archive", "ingest", "--format", "apache_combined", "--data"]).arg(data).args(extra).args(files);
    cmd
}

#[test]
fn a_bulk_ingest_killed_mid_way_then_rerun_holds_every_line_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let lines = 300_000;
    write_log(&log, lines, "K");
    let data = dir.path().join("data");
    let mut child = ingest(&data, &[&log], &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Wait until a first commit made a day directory, then kill -9 while it is still running.
    let deadline = Instant::now() + Duration::from_secs(120);
    let archive = data.join("archive");
    loop {
        let committed = std::fs::read_dir(&archive)
            .map(|d| d.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().starts_with("2025-")))
            .unwrap_or(false);
        if committed {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the ingest ended before a first commit was seen");
        assert!(Instant::now() < deadline, "no day directory after two minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.try_wait().unwrap().is_none(), "the ingest must still be running when killed");
    std::process::Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed: {status:?}");
    let partial = stats_documents(&data);
    assert!(partial < lines as u64, "killed mid-way: {partial} of {lines}");

    let out = ingest(&data, &[&log], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stats_documents(&data), lines as u64);
}

#[test]
fn no_path_query_or_referrer_byte_reaches_any_archive_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    write_log(&log, 2_000, "ZQXW");
    let data = dir.path().join("data");
    let key = dir.path().join("archive.key");
    let out = vigie().args(["archive", "keygen", "--key"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Sealed too (manifests, chain), so that every kind of archive file is checked.
    let out = ingest(&data, &[&log], &["--key", key.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stats_documents(&data), 2_000);
    let mut files = 0;
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&path).unwrap();
            for banned in ["ZQXW", "bulletin", "eleves/", "ent.example", "login_check", "supprimer"] {
                assert!(
                    !bytes.windows(banned.len()).any(|w| w == banned.as_bytes()),
                    "`{banned}` found in {}",
                    path.display()
                );
            }
        }
    }
    assert!(files > 10, "{files} files checked");
    // What is kept instead: the operation and, for the deletion, the article id.
    let out = vigie()
        .args(["archive", "verify", "--data"])
        .arg(&data)
        .arg("--public-key")
        .arg(retention_pub(&key))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

fn retention_pub(key: &Path) -> std::path::PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    s.into()
}

#[test]
fn a_requisition_searches_exports_and_is_audited_and_verify_names_a_broken_day() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    write_log(&log, 3_000, "R");
    let data = dir.path().join("data");
    let key = dir.path().join("archive.key");
    assert!(vigie().args(["archive", "keygen", "--key"]).arg(&key).output().unwrap().status.success());
    assert!(ingest(&data, &[&log], &["--key", key.to_str().unwrap()]).output().unwrap().status.success());
    let requisition = "Parquet de Lyon;PV 2025/42;art. 60-1 CPP;2025-04-10";
    let base = |cmd: &str| {
        let mut c = vigie();
        c.args(["archive", cmd, "--data"]).arg(&data).arg("--key").arg(&key);
        c
    };
    // Without a requisition reference: refused by clap, nothing searched.
    let out = base("search").args(["--ip", "10.0.0.7", "--operator", "Mme Legrand"]).output().unwrap();
    assert!(!out.status.success());
    let out = base("search")
        .args(["--ip", "10.0.0.7", "--from", "2025-04-01", "--to", "2025-05-01"])
        .args(["--requisition", requisition, "--operator", "Mme Legrand"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["source_ip"], "10.0.0.7");
    assert_eq!(records[0]["user_name"], "eleve7");

    let export = dir.path().join("export.csv");
    let out = base("export")
        .args(["--user", "eleve1", "--from", "2025-04-01", "--to", "2025-05-01"])
        .args(["--requisition", requisition, "--operator", "Mme Legrand", "--out"])
        .arg(&export)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(text.contains("# record_count: 6") && text.contains("PV 2025/42"), "{text}");
    // Every record of eleve1 is a deletion of an article (i % 5 == 1 and i % 500 == 1).
    assert_eq!(
        text.lines().filter(|l| l.contains(",suppression,") && l.contains("blog_article:")).count(),
        6,
        "{text}"
    );

    let out = vigie()
        .args(["archive", "audit", "--data"])
        .arg(&data)
        .arg("--key")
        .arg(&key)
        .args(["--operator", "DPO"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let actions: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["search", "export", "audit-read"]);

    // A flipped byte in a sealed day: verify fails and names that day.
    let day = data.join("archive/2025-04-06/index");
    let file = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "store"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let out = vigie()
        .args(["archive", "verify", "--data"])
        .arg(&data)
        .arg("--public-key")
        .arg(retention_pub(&key))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("archive day 2025-04-06 is broken"), "{stderr}");
    assert!(!stderr.contains("2025-04-05") && !stderr.contains("2025-04-07"), "{stderr}");
}
