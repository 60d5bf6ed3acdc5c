//! Events per second through the default rule set (the engine's hot path: dispatch by
//! category, field scans, offender keys, windows): on a mix shaped like ENT traffic, and on
//! the 10,000 real Apache lines of shared/data/real, parsed once before timing.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use analyzer::{Engine, RuleSet};
use collector::parse::{Format, ParseContext, Parser};
use collector::{Category, Event, EventId};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Mostly ordinary page views from school addresses, some logins, some 404s, a few attacks
/// and blocked packets: every rule family gets work, most events match only filters.
fn traffic(n: usize) -> Vec<Event> {
    let start: jiff::Timestamp = "2025-04-07T07:00:00Z".parse().unwrap();
    (0..n)
        .map(|i| {
            let mut e = Event {
                id: EventId::at("bench", i as u64),
                timestamp: start + jiff::SignedDuration::from_millis(i as i64 * 5),
                dataset: "apache.access".into(),
                category: Category::Web,
                source_ip: Some(format!("10.{}.{}.1", (i / 7) % 188, i % 13).parse().unwrap()),
                http_method: Some("GET".into()),
                http_status: Some(200),
                url_path: Some(format!("/blog/ecole-{}/article-{}", i % 188, i % 50)),
                url_query: Some("page=2&tri=date".into()),
                user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36".into()),
                observer_hostname: Some(format!("web{}", i % 2)),
                ..Event::default()
            };
            match i % 100 {
                0..=4 => {
                    e.http_method = Some("POST".into());
                    e.url_path = Some("/auth/login".into());
                    e.user_name = Some(format!("eleve{}", i % 997));
                }
                5..=9 => {
                    e.http_status = Some(404);
                    e.url_path = Some(format!("/ancien/{}", i % 31));
                }
                10 => e.url_query = Some("id=1%27%20UNION%20SELECT%20NULL--".into()),
                11 => e.user_agent = Some("sqlmap/1.7.2#stable".into()),
                12..=14 => {
                    e.category = Category::Network;
                    e.dataset = "iptables.log".into();
                    e.action = Some("block".into());
                    e.destination_port = Some((i % 1024) as u16);
                    e.url_path = None;
                    e.url_query = None;
                }
                _ => {}
            }
            e
        })
        .collect()
}

/// The real Apache combined log of shared/data (VIGIE_SHARED_DATA, or ../shared/data beside
/// the repository), parsed; the bench on it is skipped, with a note, where it is absent.
fn real_events() -> Option<Vec<Event>> {
    let base = std::env::var_os("VIGIE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")));
    let path = base.join("real/apache_combined_semicomplete_2015.log");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("{} not found: skipping the real-log benchmark", path.display());
        return None;
    };
    let parser = Parser::new(&Format::ApacheCombined).expect("apache parser");
    let ctx = ParseContext { now: "2025-04-07T12:30:00Z".parse().unwrap(), time_zone: jiff::tz::TimeZone::UTC };
    let events = text
        .lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let mut event = parser.parse(line, &ctx).ok()?;
            event.id = EventId::at("real", n as u64 + 1);
            Some(event)
        })
        .collect();
    Some(events)
}

fn run(rules: &Arc<RuleSet>, events: &[Event]) -> usize {
    let mut engine = Engine::new(Arc::clone(rules));
    let mut fired = 0;
    for e in events {
        fired += engine.observe(black_box(e)).len();
    }
    fired
}

fn engine(c: &mut Criterion) {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules"));
    let rules = Arc::new(RuleSet::load_dir(dir).expect("default rules"));
    let events = traffic(10_000);
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("default_rules_10k_events", |b| b.iter(|| run(&rules, &events)));
    if let Some(real) = real_events() {
        group.throughput(Throughput::Elements(real.len() as u64));
        group.bench_function("default_rules_real_apache_2015", |b| b.iter(|| run(&rules, &real)));
    }
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
