//! Following log files through logrotate: every line archived once, none replaced by the
//! lines of the next file.

use std::io::Write;
use std::time::Duration;

use crate::support::{Running, free_port, sample};

fn line(n: u32) -> String {
    format!(
        "192.0.2.{n} - - [07/Apr/2025:14:30:{:02} +0200] \"GET /ent/classe/ HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\"\n",
        n % 60
    )
}

#[test]
fn a_rotated_file_and_its_successor_are_both_archived_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let live = logs.join("access.log");
    std::fs::write(&live, (1..=3).map(line).collect::<String>()).unwrap();
    let http = free_port();
    let config = dir.path().join("vigie.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ndir = \"data\"\n\n[server]\nlisten = \"127.0.0.1:{http}\"\n\n[pipeline]\ncommit_interval = \"200ms\"\n\n\
             [[sources]]\nid = \"web\"\nkind = \"file\"\npath = \"logs/*.log\"\nformat = \"apache_combined\"\n\n\
             [analyzer]\nrules = \"{}\"\n\n[alerting]\non_call = [\"astreinte@ville.fr\"]\n",
            concat!(env!("CARGO_MANIFEST_DIR"), "/rules")
        ),
    )
    .unwrap();
    let mut vigie = Running::run(&config, &format!("127.0.0.1:{http}"));
    let archived = |n: f64| {
        move |v: &Running| {
            v.get("/metrics").is_some_and(|(_, m)| sample(&m, "vigie_archive_records_total", "").unwrap_or(0.0) >= n)
        }
    };
    vigie.wait_for("the first file archived", Duration::from_secs(60), archived(3.0));

    // logrotate: rename, create; the server writes a last line to the old file, then the new one.
    std::fs::rename(&live, logs.join("access.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("access.log.1"))
        .unwrap()
        .write_all(line(4).as_bytes())
        .unwrap();
    std::fs::write(&live, (5..=6).map(line).collect::<String>()).unwrap();
    vigie.wait_for("both files archived", Duration::from_secs(60), archived(6.0));
    vigie.terminate();
    let status = vigie.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}; log:\n{}", vigie.log());

    let stats = crate::crash::archive_stats(&dir.path().join("data"));
    assert_eq!(stats["documents"], 6, "every line once, none replaced: {stats}");
    assert_eq!(stats["duplicate_ids"], 0);
}
