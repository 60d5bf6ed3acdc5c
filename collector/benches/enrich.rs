//! Enrichment throughput: events per second through GeoIP/ASN lookups and school attribution.
//!
//! Run with `cargo bench -p collector --bench enrich` (set `VIGIE_SHARED_DATA` if the shared
//! data is not at `../shared/data` beside the workspace). Uses MaxMind's small test databases:
//! the search depth, hence the cost per lookup, is close to the real ones'; the mix is the demo
//! city's (three quarters of the traffic from school networks, the rest from public addresses).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use collector::{Enricher, Event, GeoIp, GeoIpConfig, RoleMap, Schools};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn geoip_file(name: &str) -> PathBuf {
    let dir = std::env::var_os("VIGIE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")));
    dir.join("geoip").join(name)
}

/// 10,000 events: school addresses, known test addresses and random public ones.
fn events() -> Vec<Event> {
    let schools = collector::source::demo::schools();
    let known = ["81.2.69.142", "89.160.20.130", "2.125.160.217", "1.0.0.1", "2001:218::1", "67.43.156.1"];
    (0u32..10_000)
        .map(|i| {
            let x = i.wrapping_mul(2_654_435_761);
            let ip: IpAddr = match i % 4 {
                0..=2 => {
                    let o = schools[(x as usize) % schools.len()].network.octets();
                    IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3] + 1 + (x % 14) as u8))
                }
                _ if i % 8 == 3 => known[(x as usize) % known.len()].parse().unwrap(),
                _ => IpAddr::V4(Ipv4Addr::from(x | 0x0100_0000)),
            };
            let user = ["lea.petit", "marie.dupont.ens", "paul.martin.par"][(i % 3) as usize];
            Event { source_ip: Some(ip), user_name: Some(user.to_owned()), ..Event::default() }
        })
        .collect()
}

fn bench_enrich(c: &mut Criterion) {
    let geo = GeoIp::open(&GeoIpConfig {
        location: Some(geoip_file("GeoLite2-City-Test.mmdb")),
        asn: Some(geoip_file("GeoLite2-ASN-Test.mmdb")),
        optional: false,
    })
    .unwrap();
    let enricher = Enricher::new(Some(geo), Some(Schools::from_demo()), Some(RoleMap::demo()));
    let events = events();
    let mut group = c.benchmark_group("enrich_10k");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("geoip_schools_roles", |b| {
        b.iter_batched_ref(
            || events.clone(),
            |batch| enricher.enrich_all(black_box(batch)),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_enrich);
criterion_main!(benches);
