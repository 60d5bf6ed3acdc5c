//! Archive throughput (records appended and committed per second) and search latency.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use retention::{Archive, ArchiveQuery, ConnectionRecord};

const START: &str = "2025-04-07T06:00:00Z";

/// `n` plausible ENT records, one every 10 ms, from 2,000 clients behind 50 school NATs.
fn records(n: usize, offset: usize) -> Vec<ConnectionRecord> {
    let start: Timestamp = START.parse().unwrap();
    (offset..offset + n)
        .map(|i| ConnectionRecord {
            event_id: format!("apache-main:{}", i * 180),
            timestamp: start + SignedDuration::from_millis(i as i64 * 10),
            utc_offset_seconds: Some(7200),
            dataset: "apache.access".into(),
            source_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 20, (i % 50) as u8, 1))),
            source_port: Some(20_000 + (i % 40_000) as u16),
            destination_ip: None,
            destination_port: Some(443),
            protocol: Some("HTTP/1.1".into()),
            operation: if i % 7 == 0 { "création" } else { "consultation" }.into(),
            user_name: Some(format!("eleve{}", i % 2_000)),
            user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0".into()),
            status: Some(200),
            duration_ns: Some(12_000_000),
            school_uai: Some(format!("0{:06}X", i % 188)),
            observer: Some("web1".into()),
            user_category: Some("eleve".into()),
            content_id: None,
            session_duration_s: None,
            recipients: Vec::new(),
        })
        .collect()
}

fn append_commit(c: &mut Criterion) {
    let batch = records(10_000, 0);
    let mut group = c.benchmark_group("archive");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.sample_size(10);
    group.bench_function("append_commit_10k", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let mut archive = Archive::open(dir.path()).unwrap();
                archive.append(&batch).unwrap();
                archive.commit().unwrap();
                dir
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn search(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut archive = Archive::open(dir.path()).unwrap();
    for chunk in 0..10 {
        archive.append(&records(10_000, chunk * 10_000)).unwrap();
        archive.commit().unwrap();
    }
    let from: Timestamp = START.parse().unwrap();
    let query = ArchiveQuery {
        from,
        to: from + SignedDuration::from_hours(1),
        source_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 20, 7, 1))),
        limit: 100,
        ..ArchiveQuery::default()
    };
    let mut group = c.benchmark_group("archive");
    group.bench_function("search_ip_100k", |b| b.iter(|| black_box(archive.search(&query).unwrap())));
    let by_ip_port = ArchiveQuery { source_port: Some(20_007), ..query.clone() };
    group.bench_function("search_ip_port_100k", |b| b.iter(|| black_box(archive.search(&by_ip_port).unwrap())));
    group.finish();
}

criterion_group!(benches, append_commit, search);
criterion_main!(benches);
