//! Parser throughput on the 10,000 real Apache combined lines of the shared data.
//!
//! Run with `cargo bench -p collector --bench parse` (set `VIGIE_SHARED_DATA` if the shared
//! data is not at `../shared/data` beside the workspace). Criterion prints the time per
//! batch of 10,000 lines and the throughput in bytes per second.

use std::hint::black_box;
use std::path::PathBuf;

use collector::parse::{Format, ParseContext, Parser};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn real_lines() -> Vec<String> {
    let dir = std::env::var_os("VIGIE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")));
    let path = dir.join("real/apache_combined_semicomplete_2015.log");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(str::to_owned).collect()
}

fn bench_apache(c: &mut Criterion) {
    let lines = real_lines();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let ctx = ParseContext { now: "2025-04-07T12:30:00Z".parse().unwrap(), time_zone: jiff::tz::TimeZone::UTC };
    let mut group = c.benchmark_group("apache_real_10k");
    group.throughput(Throughput::Bytes(bytes as u64));
    for (name, format) in [("combined", Format::ApacheCombined), ("auto", Format::Auto)] {
        let parser = Parser::new(&format).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut ok = 0usize;
                for line in &lines {
                    ok += usize::from(parser.parse(black_box(line), &ctx).is_ok());
                }
                ok
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_apache);
criterion_main!(benches);
