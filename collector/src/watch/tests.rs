use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Time, date};
use jiff::tz::TimeZone;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn paris() -> TimeZone {
    TimeZone::get("Europe/Paris").unwrap()
}

fn watch(dir: &std::path::Path) -> BackupWatch {
    BackupWatch {
        location: dir.to_owned(),
        days: 15,
        min_ratio: 0.5,
        due_by: Time::constant(6, 0, 0, 0),
        time_zone: paris(),
    }
}

fn write(dir: &std::path::Path, name: &str, bytes: usize) {
    std::fs::write(dir.join(name), vec![b'x'; bytes]).unwrap();
}

#[test]
fn fifteen_good_days() {
    let dir = tempfile::tempdir().unwrap();
    for d in 1..=20 {
        write(dir.path(), &format!("ent-2025-04-{d:02}.sql.gz"), 1000 + d);
    }
    // Wednesday 16 April 2025, 07:00 in Paris: D-1 is the 15th, D-15 the 1st.
    let now: Timestamp = "2025-04-16T07:00:00+02:00".parse().unwrap();
    let r = check_backups(&watch(dir.path()), now);
    assert_eq!(r.error, None);
    assert_eq!(r.days.len(), 15);
    assert_eq!((r.days[0].date, r.days[0].days_ago, r.days[0].bytes), (date(2025, 4, 15), 1, 1015));
    assert_eq!(r.days[14].date, date(2025, 4, 1));
    assert!(r.days.iter().all(|d| d.status == BackupDayStatus::Ok), "{:#?}", r.days);
    assert_eq!(r.missing, 0);
    let samples = r.samples();
    let get = |n: &str| samples.iter().find(|s| s.name == n).unwrap();
    assert_eq!(get("backup_days_missing").value, 0.0);
    assert_eq!(get("backup_days_ok").value, 15.0);
    assert_eq!(get("backup_last_bytes").value, 1015.0);
    assert_eq!(get("backup_days_ok").labels, [("location".to_owned(), dir.path().display().to_string())]);
}

#[test]
fn missing_empty_and_shrunk_days_and_a_late_yesterday() {
    let dir = tempfile::tempdir().unwrap();
    for d in 1..=14 {
        match d {
            5 => {}                                             // missing
            8 => write(dir.path(), "ent-20250408.tar", 0),      // empty
            11 => write(dir.path(), "ent_2025_04_11.tar", 300), // shrunk: 300 < 0.5 × 1000
            12 => {
                // Two dumps of one day add up; a directory counts as its files.
                std::fs::create_dir(dir.path().join("2025-04-12")).unwrap();
                write(&dir.path().join("2025-04-12"), "ent.sql", 600);
                write(&dir.path().join("2025-04-12"), "moodle.sql", 600);
            }
            _ => write(dir.path(), &format!("ent-2025-04-{d:02}.sql.gz"), 1000),
        }
    }
    // 05:30 on the 15th: D-1 (the 14th) is there; at 07:00 on the 16th, D-1 (the 15th) is late.
    let w = watch(dir.path());
    let early = check_backups(&w, "2025-04-15T05:30:00+02:00".parse().unwrap());
    let status = |r: &BackupReport, day: i8| r.days.iter().find(|d| d.date == date(2025, 4, day)).unwrap().status;
    assert_eq!(status(&early, 5), BackupDayStatus::Missing);
    assert_eq!(status(&early, 8), BackupDayStatus::Empty);
    assert_eq!(status(&early, 11), BackupDayStatus::Shrunk { ratio: 0.3 });
    assert_eq!(status(&early, 12), BackupDayStatus::Ok);
    assert_eq!(status(&early, 14), BackupDayStatus::Ok);
    // The 15 days before the 15th reach back to 31 March: 31 March is missing too.
    assert_eq!(early.days.last().unwrap().date, date(2025, 3, 31));
    assert_eq!(early.missing, 4);
    let before_due = check_backups(&w, "2025-04-16T05:59:00+02:00".parse().unwrap());
    assert_eq!(status(&before_due, 15), BackupDayStatus::Pending);
    let late = check_backups(&w, "2025-04-16T06:00:00+02:00".parse().unwrap());
    assert_eq!(status(&late, 15), BackupDayStatus::Missing);
    assert_eq!(late.missing, before_due.missing + 1);
    let json = serde_json::to_value(&late.days[4]).unwrap();
    assert_eq!(json["status"], "shrunk");
    assert_eq!(json["ratio"], 0.3);
    assert_eq!(json["date"], "2025-04-11");
}

#[test]
fn an_unreadable_location_is_every_day_missing_with_the_reason() {
    let r =
        check_backups(&watch(std::path::Path::new("/nonexistent/backups")), "2025-04-16T07:00:00Z".parse().unwrap());
    assert!(r.error.as_deref().unwrap().starts_with("cannot read /nonexistent/backups: "), "{:?}", r.error);
    assert_eq!(r.missing, 15);
    assert!(r.samples().iter().any(|s| s.name == "backup_watch_up" && s.value == 0.0));
}

#[test]
fn dates_in_file_names() {
    let d = backup::date_in_name_for_tests;
    assert_eq!(d("ent-2025-04-07.sql.gz"), Some(date(2025, 4, 7)));
    assert_eq!(d("20250407.tar"), Some(date(2025, 4, 7)));
    assert_eq!(d("db_2025_04_07_0300.sql"), Some(date(2025, 4, 7)));
    assert_eq!(d("v12025040712.bin"), None);
    assert_eq!(d("ent-2025-13-07.sql"), None);
    assert_eq!(d("backup.tar"), None);
}

#[test]
fn clamd_version_replies() {
    let (v, at) = parse_clamd_version("ClamAV 1.0.7/27580/Mon Apr  7 08:24:02 2025\0", &paris()).unwrap();
    assert_eq!(v, 27580);
    assert_eq!(at, "2025-04-07T08:24:02+02:00".parse::<Timestamp>().unwrap());
    let e = parse_clamd_version("ClamAV 1.0.7", &paris()).unwrap_err();
    assert!(e.contains("no signature database"), "{e}");
    assert!(parse_clamd_version("UNKNOWN COMMAND", &paris()).unwrap_err().contains("not a clamd VERSION reply"));
}

#[test]
fn freshclam_log_last_up_to_date_line() {
    let log = "\
--------------------------------------
Sun Apr  6 20:00:01 2025 -> ClamAV update process started at Sun Apr  6 20:00:01 2025
Sun Apr  6 20:00:02 2025 -> daily.cld database is up-to-date (version: 27579, sigs: 2073000, f-level: 90, builder: raynman)
Mon Apr  7 08:00:05 2025 -> daily.cvd updated (version: 27580, sigs: 2073400, f-level: 90, builder: raynman)
Mon Apr  7 08:00:06 2025 -> main.cvd database is up-to-date (version: 62, sigs: 6647427, f-level: 90, builder: sigmgr)
Mon Apr  7 20:00:01 2025 -> ERROR: Can't connect to port 443 of host database.clamav.net
";
    let (at, version) = parse_freshclam_log(log, &paris()).unwrap();
    assert_eq!(at, "2025-04-07T08:00:05+02:00".parse::<Timestamp>().unwrap());
    assert_eq!(version, Some(27580));
    assert_eq!(parse_freshclam_log("nothing here\n", &paris()), None);
}

/// A clamd stand-in: answers `zVERSION\0` with `reply` and a NUL, as clamd does.
async fn fake_clamd(reply: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut cmd = Vec::new();
                let mut b = [0u8; 64];
                while !cmd.contains(&0) {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => cmd.extend_from_slice(&b[..n]),
                    }
                }
                assert_eq!(cmd, b"zVERSION\0");
                let _ = s.write_all(format!("{reply}\0").as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn clamd_over_tcp_gives_the_signature_age() {
    let addr = fake_clamd("ClamAV 1.0.7/27580/Mon Apr  7 08:24:02 2025").await;
    let max_age = Duration::from_secs(2 * 86_400);
    let s = check_clamav("web1", &ClamavSource::Tcp(addr), max_age, &paris(), Duration::from_secs(5)).await;
    assert_eq!(s.error, None);
    assert_eq!(s.version, Some(27580));
    let now: Timestamp = "2025-04-10T08:24:02+02:00".parse().unwrap();
    assert_eq!(s.age(now), Some(Duration::from_secs(3 * 86_400)));
    let samples = s.samples(now);
    let get = |n: &str| samples.iter().find(|x| x.name == n).map(|x| x.value);
    assert_eq!(get("clamav_signature_age_seconds"), Some(259_200.0));
    assert_eq!(get("clamav_signature_max_age_seconds"), Some(172_800.0));
    assert_eq!(get("clamav_up"), Some(1.0));
    assert!(samples.iter().all(|x| x.labels == [("server".to_owned(), "web1".to_owned())]));
}

#[tokio::test]
async fn clamd_over_a_unix_socket_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clamd.ctl");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut b = [0u8; 64];
        let _ = s.read(&mut b).await;
        let _ = s.write_all(b"ClamAV 1.4.2/27600/Sun Apr 27 10:00:00 2025\0").await;
    });
    let s =
        check_clamav("web2", &ClamavSource::Unix(path), Duration::from_secs(86_400), &paris(), Duration::from_secs(5))
            .await;
    assert_eq!((s.version, s.error), (Some(27600), None));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = check_clamav(
        "web3",
        &ClamavSource::Tcp(format!("127.0.0.1:{port}")),
        Duration::from_secs(86_400),
        &paris(),
        Duration::from_secs(5),
    )
    .await;
    assert!(down.error.as_deref().unwrap().starts_with(&format!("clamd at 127.0.0.1:{port}: ")), "{:?}", down.error);
    assert!(
        down.samples("2025-04-10T00:00:00Z".parse().unwrap()).iter().any(|x| x.name == "clamav_up" && x.value == 0.0)
    );
    let missing = check_clamav(
        "web4",
        &ClamavSource::FreshclamLog("/nonexistent/freshclam.log".into()),
        Duration::from_secs(86_400),
        &paris(),
        Duration::from_secs(5),
    )
    .await;
    assert!(missing.error.unwrap().starts_with("cannot read /nonexistent/freshclam.log: "));
}
