//! The wire format, measured: JSON against postcard (binary) on the 10,000 real Apache lines
//! of the shared fixtures, parsed into events. Prints the payload sizes, then times encoding
//! and decoding of the whole set with each encoding.
//!
//! ```sh
//! cargo bench -p bus --bench wire
//! ```

use std::hint::black_box;
use std::path::PathBuf;

use bus::{Encoding, decode_event, encode_event};
use collector::Event;
use collector::parse::{Format, ParseContext, Parser};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn events() -> Vec<Event> {
    let data = std::env::var_os("VIGIE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let path = data.join("real/apache_combined_semicomplete_2015.log");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parser = Parser::new(&Format::ApacheCombined).expect("a known format");
    let ctx = ParseContext { now: jiff::Timestamp::now(), time_zone: jiff::tz::TimeZone::UTC };
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let mut event = parser.parse(line, &ctx).ok()?;
            event.id = collector::EventId::at("real", n as u64);
            Some(event)
        })
        .collect()
}

fn encoded(events: &[Event], encoding: Encoding) -> Vec<Vec<u8>> {
    events
        .iter()
        .map(|e| {
            let mut buf = Vec::new();
            encode_event(e, encoding, &mut buf).expect("encodes");
            buf
        })
        .collect()
}

fn wire(c: &mut Criterion) {
    let events = events();
    for encoding in [Encoding::Json, Encoding::Binary] {
        let bytes: usize = encoded(&events, encoding).iter().map(Vec::len).sum();
        println!(
            "wire size {encoding:?}: {} events, {bytes} bytes, {:.1} bytes/event",
            events.len(),
            bytes as f64 / events.len() as f64
        );
    }
    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, encoding) in [("json", Encoding::Json), ("binary", Encoding::Binary)] {
        group.bench_function(format!("encode/{name}"), |b| {
            let mut buf = Vec::with_capacity(1024);
            b.iter(|| {
                for e in &events {
                    encode_event(e, encoding, &mut buf).expect("encodes");
                    black_box(&buf);
                }
            })
        });
        let messages = encoded(&events, encoding);
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                for m in &messages {
                    black_box(decode_event(m).expect("decodes"));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, wire);
criterion_main!(benches);
