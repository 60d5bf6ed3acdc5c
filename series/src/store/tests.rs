use super::*;

const T0: i64 = 1_743_000_000_000; // 2025-03-26T14:40:00Z, a multiple of 5 min
const STEP: i64 = 15_000;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn small() -> StoreConfig {
    StoreConfig { chunk_samples: 8, ..StoreConfig::default() }
}

#[test]
fn range_and_instant_queries_cover_head_sealed_and_flushed_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = SeriesStore::open(&dir.path().join("series.sqlite"), small()).unwrap();
    let a = labels(&[("target", "host"), ("mountpoint", "/")]);
    let b = labels(&[("target", "host"), ("mountpoint", "/var")]);
    for i in 0..30 {
        assert!(store.append("host_filesystem_avail_bytes", &a, T0 + i * STEP, 1000.0 - i as f64));
        assert!(store.append("host_filesystem_avail_bytes", &b, T0 + i * STEP, 5.0));
        if i == 17 {
            store.flush().unwrap();
        }
    }
    let all = store.range("host_filesystem_avail_bytes", &[], T0, T0 + 29 * STEP).unwrap();
    assert_eq!(all.len(), 2);
    let root = all.iter().find(|r| r.series.label("mountpoint") == Some("/")).unwrap();
    assert_eq!(root.points.len(), 30);
    assert_eq!(root.points[0], Point { t: T0, v: 1000.0 });
    assert_eq!(root.points[29], Point { t: T0 + 29 * STEP, v: 971.0 });
    // A window inside the series, by label.
    let var = store
        .range("host_filesystem_avail_bytes", &labels(&[("mountpoint", "/var")]), T0 + 5 * STEP, T0 + 9 * STEP)
        .unwrap();
    assert_eq!(var.len(), 1);
    assert_eq!(
        var[0].points.iter().map(|p| p.t).collect::<Vec<_>>(),
        (5..=9).map(|i| T0 + i * STEP).collect::<Vec<_>>()
    );
    // Instant: the latest at or before `at`, within the lookback.
    let at = T0 + 10 * STEP + 7_000;
    let v = store
        .instant("host_filesystem_avail_bytes", &labels(&[("mountpoint", "/")]), at, Duration::from_secs(300))
        .unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].point, Point { t: T0 + 10 * STEP, v: 990.0 });
    let stale =
        store.instant("host_filesystem_avail_bytes", &[], T0 + 29 * STEP + 301_000, Duration::from_secs(300)).unwrap();
    assert!(stale.is_empty());
    assert!(store.range("nope", &[], T0, T0 + 1_000_000).unwrap().is_empty());
    assert_eq!(store.names(), ["host_filesystem_avail_bytes"]);
}

#[test]
fn out_of_order_samples_are_dropped_and_counted() {
    let store = SeriesStore::in_memory(small());
    assert!(store.append("m", &[], T0, 1.0));
    assert!(!store.append("m", &[], T0, 2.0));
    assert!(!store.append("m", &[], T0 - 1, 2.0));
    assert!(store.append("m", &[], T0 + 1, 3.0));
    let s = store.stats();
    assert_eq!((s.series, s.samples_appended, s.samples_out_of_order), (1, 2, 2));
    // Labels are a set: their order does not make another series.
    assert!(store.append("m2", &labels(&[("a", "1"), ("b", "2")]), T0, 1.0));
    assert!(!store.append("m2", &labels(&[("b", "2"), ("a", "1")]), T0, 1.0));
}

#[test]
fn rollups_keep_min_max_avg_per_five_minutes() {
    let store = SeriesStore::in_memory(small());
    // Two buckets: 20 samples in the first (0..19), 5 in the second.
    for i in 0..25 {
        store.append("cpu", &[], T0 + i * STEP, i as f64);
    }
    // A NaN neither poisons min/max nor counts.
    store.append("cpu", &[], T0 + 25 * STEP, f64::NAN);
    let r = store.rollups("cpu", &[], T0, T0 + ROLLUP_MS).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].rollups,
        [
            Rollup { t: T0, min: 0.0, max: 19.0, avg: 9.5, count: 20 },
            Rollup { t: T0 + ROLLUP_MS, min: 20.0, max: 24.0, avg: 22.0, count: 5 },
        ]
    );
}

#[test]
fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("series.sqlite");
    let l = labels(&[("probe", "ent")]);
    {
        let store = SeriesStore::open(&path, small()).unwrap();
        for i in 0..21 {
            store.append("probe_success", &l, T0 + i * STEP, f64::from(i % 2 == 0));
        }
        store.flush().unwrap();
    }
    let store = SeriesStore::open(&path, small()).unwrap();
    assert_eq!(store.stats().series, 1);
    let r = store.range("probe_success", &l, T0, T0 + 100 * STEP).unwrap();
    assert_eq!(r[0].points.len(), 21);
    // The series continues: older timestamps are refused, the current bucket goes on.
    assert!(!store.append("probe_success", &l, T0 + 20 * STEP, 1.0));
    assert!(store.append("probe_success", &l, T0 + 21 * STEP, 1.0));
    store.flush().unwrap();
    let rollups = store.rollups("probe_success", &l, T0, T0 + ROLLUP_MS).unwrap();
    // 0..19 in the first bucket (10 ones), 20 and 21 in the second.
    assert_eq!(rollups[0].rollups[0], Rollup { t: T0, min: 0.0, max: 1.0, avg: 0.5, count: 20 });
    assert_eq!(rollups[0].rollups[1], Rollup { t: T0 + ROLLUP_MS, min: 1.0, max: 1.0, avg: 1.0, count: 2 });
    let r = store.range("probe_success", &l, T0, T0 + 100 * STEP).unwrap();
    assert_eq!(r[0].points.len(), 22);
}

#[test]
fn compaction_drops_raw_after_48h_and_rollups_after_13_months() {
    let store = SeriesStore::in_memory(small());
    for i in 0..16 {
        store.append("m", &[], T0 + i * STEP, 1.0);
    }
    store.flush().unwrap();
    let two_days_later = T0 + 48 * 3_600_000 + 16 * STEP;
    let (chunks, rollups) = store.compact(two_days_later).unwrap();
    assert_eq!((chunks, rollups), (2, 0));
    assert!(store.range("m", &[], T0, two_days_later).unwrap().is_empty());
    assert_eq!(store.rollups("m", &[], T0, two_days_later).unwrap()[0].rollups.len(), 1);
    let (_, rollups) = store.compact(T0 + 397 * 86_400_000).unwrap();
    assert_eq!(rollups, 1);
    assert!(store.rollups("m", &[], T0, two_days_later).unwrap().is_empty());
}

#[test]
fn a_newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("series.sqlite");
    drop(SeriesStore::open(&path, small()).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = SeriesStore::open(&path, small()).unwrap_err().to_string();
    assert!(err.contains("newer"), "{err}");
}

#[test]
fn memory_per_series_stays_small() {
    let store = SeriesStore::in_memory(StoreConfig::default());
    for s in 0..100 {
        let l = labels(&[("target", "host"), ("device", &format!("eth{s}"))]);
        for i in 0..119 {
            store.append("host_network_receive_bytes_total", &l, T0 + i * STEP, (i * 1500) as f64);
        }
    }
    store.flush().unwrap();
    let per_series = store.stats().memory_bytes / 100;
    // A full head of 119 counter samples (half an hour at 15 s), its key and index entry:
    // under 2 KiB (Prometheus's head needs about 3 KiB a series).
    assert!(per_series < 2048, "{per_series} bytes per series");
}
