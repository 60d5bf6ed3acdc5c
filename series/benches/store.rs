//! Series store: ingestion speed (samples per second on one core) and memory per series.
//!
//! `cargo bench -p series` prints, besides criterion's timings, the bytes held per series once
//! every head is full (the worst case between two chunk seals) and the on-disk bytes per sample.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use series::{SeriesStore, StoreConfig};

const T0: i64 = 1_744_012_800_000;
const STEP: i64 = 15_000;

/// A realistic scrape: 1000 series (a node_exporter-sized target), labels like the host scraper's.
fn keys(n: usize) -> Vec<(String, Vec<(String, String)>)> {
    (0..n)
        .map(|i| {
            let name = format!("host_metric_{}", i % 50);
            let labels = vec![("target".to_owned(), "host".to_owned()), ("device".to_owned(), format!("sd{}", i / 50))];
            (name, labels)
        })
        .collect()
}

fn ingest(c: &mut Criterion) {
    let keys = keys(1000);
    let mut group = c.benchmark_group("series");
    group.throughput(Throughput::Elements(keys.len() as u64));
    let store = SeriesStore::in_memory(StoreConfig::default());
    let mut round = 0i64;
    group.bench_function("append one scrape of 1000 series", |b| {
        b.iter(|| {
            round += 1;
            for (i, (name, labels)) in keys.iter().enumerate() {
                // A gauge wandering a little, as most do.
                let v = 1000.0 + ((round * 7 + i as i64) % 13) as f64;
                black_box(store.append(name, labels, T0 + round * STEP, v));
            }
        })
    });
    group.finish();

    // Memory: 1000 series with full heads (119 samples each, one short of a seal).
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = SeriesStore::open(&dir.path().join("series.sqlite"), StoreConfig::default()).expect("store");
    for r in 0..(119 + 120 * 4) {
        for (i, (name, labels)) in keys.iter().enumerate() {
            let v = 1000.0 + ((r * 7 + i as i64) % 13) as f64;
            disk.append(name, labels, T0 + r * STEP, v);
        }
        if r % 40 == 0 {
            disk.flush().expect("flush");
        }
    }
    disk.flush().expect("flush");
    let stats = disk.stats();
    let file = std::fs::metadata(dir.path().join("series.sqlite")).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.path().join("series.sqlite-wal")).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "series store: {} series, {} bytes in memory per series (full heads), {:.2} bytes on disk per sample",
        stats.series,
        stats.memory_bytes / stats.series.max(1),
        file as f64 / stats.samples_appended.max(1) as f64
    );
}

criterion_group!(benches, ingest);
criterion_main!(benches);
