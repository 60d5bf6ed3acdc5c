//! `vigie parse` on real files and on standard input.

use std::io::Write;
use std::process::Stdio;

use crate::support::{shared_data, vigie};

#[test]
fn every_real_apache_line_parses() {
    let file = shared_data().join("real/apache_combined_semicomplete_2015.log");
    let out = vigie().args(["parse", "--format", "apache_combined"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let objects: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 10_000);
    let errors: Vec<_> = objects.iter().filter(|o| o.get("error").is_some()).collect();
    assert!(errors.is_empty(), "{} lines did not parse, first: {}", errors.len(), errors[0]);
    assert!(objects.iter().all(|o| o["source"]["ip"].is_string() && o["@timestamp"].is_string()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("10000 lines, 10000 parsed, 0 could not be parsed"), "{stderr}");
}

#[test]
fn bad_lines_are_reported_and_do_not_fail_the_run() {
    let mut child = vigie()
        .args(["parse", "--format", "netfilter"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"Jan  8 03:37:09 host kernel: DROP: IN=eth0 OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=81.2.69.143 DST=172.16.54.114 LEN=52 TOS=0x00 PREC=0x00 TTL=115 ID=15743 DF PROTO=TCP SPT=17805 DPT=445 WINDOW=8192 RES=0x00 SYN URGP=0\n\
              garbage\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["destination"]["port"], 445);
    assert_eq!(lines[0]["network"]["transport"], "tcp");
    assert_eq!(lines[1]["error"]["line"], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 lines, 1 parsed, 1 could not be parsed"));
}

#[test]
fn a_missing_file_is_an_error() {
    let out = vigie().args(["parse", "--format", "auto", "/nonexistent.log"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent.log"));
}
