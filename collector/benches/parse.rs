//! Parser throughput on real lines: the 10,000 real Apache combined lines of the shared data,
//! and the Elastic iptables and pfSense fixtures (the lines `bench/parse.sh` repeats).
//!
//! Run with `cargo bench -p collector --bench parse` (set `VIGIE_SHARED_DATA` if the shared
//! data is not at `../shared/data` beside the workspace). Criterion prints the time per
//! batch of lines and the throughput in bytes per second, for each format both ways: the
//! owned `Event` of `Parser::parse` (what the pipeline gets), and the ECS JSON of
//! `Parser::parse_to_ecs_json` (what `vigie parse` writes).

use std::hint::black_box;
use std::path::PathBuf;

use collector::parse::{Format, ParseContext, Parser};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn shared_lines(rel: &str) -> Vec<String> {
    let dir = std::env::var_os("VIGIE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")));
    let path = dir.join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

fn context() -> ParseContext {
    ParseContext {
        now: "2025-04-07T12:30:00Z".parse().unwrap(),
        time_zone: jiff::tz::TimeZone::get("Europe/Paris").unwrap(),
    }
}

fn bench_format(c: &mut Criterion, group: &str, lines: &[String], formats: &[(&str, Format)]) {
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let ctx = context();
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Bytes(bytes as u64));
    for (name, format) in formats {
        let parser = Parser::new(format).unwrap();
        group.bench_function(*name, |b| {
            b.iter(|| {
                let mut ok = 0usize;
                for line in lines {
                    ok += usize::from(parser.parse(black_box(line), &ctx).is_ok());
                }
                ok
            })
        });
        let mut json = Vec::with_capacity(4 * bytes);
        let mut id = collector::JsonId::new("bench");
        id.set_line(1);
        group.bench_function(format!("{name}_json"), |b| {
            b.iter(|| {
                json.clear();
                let mut ok = 0usize;
                for line in lines {
                    ok += usize::from(parser.parse_to_ecs_json(black_box(line), &ctx, &id, &mut json).is_ok());
                }
                ok
            })
        });
    }
    group.finish();
}

fn bench_apache(c: &mut Criterion) {
    let lines = shared_lines("real/apache_combined_semicomplete_2015.log");
    bench_format(c, "apache_real_10k", &lines, &[("combined", Format::ApacheCombined), ("auto", Format::Auto)]);
}

fn bench_firewalls(c: &mut Criterion) {
    const PIPELINE: &str = "data_stream/log/_dev/test/pipeline";
    let netfilter = shared_lines(&format!("peer/elastic-integrations/iptables/{PIPELINE}/test-iptables-raw.log"));
    bench_format(c, "netfilter_elastic", &netfilter, &[("netfilter", Format::Netfilter)]);
    let filterlog = shared_lines(&format!("peer/elastic-integrations/pfsense/{PIPELINE}/test-pfsense-bsd.log"));
    bench_format(c, "filterlog_elastic", &filterlog, &[("filterlog", Format::Filterlog)]);
}

criterion_group!(benches, bench_apache, bench_firewalls);
criterion_main!(benches);
