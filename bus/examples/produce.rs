//! Producer throughput, for `bench/kafka.sh`: produces N events (the shape of a real ENT
//! request, 200 client addresses) with Vigie's producer settings and prints one JSON line.
//!
//! ```sh
//! cargo run --release -p bus --example produce -- 127.0.0.1:9092 bench.events 100000 [payload.bin]
//! ```
//! With a fourth argument, the binary payload of one event is written there, so that the
//! reference producer (Python confluent-kafka) sends messages of the same size.

use std::time::Instant;

use bus::{BusMetrics, EVENT_CODEC, KafkaSettings, Publisher};
use collector::{AckToken, Batch, Category, Event, EventId};

fn event(n: u64) -> Event {
    Event {
        id: EventId::at("bench", n * 180),
        timestamp: jiff::Timestamp::now(),
        utc_offset_seconds: Some(3600),
        dataset: "apache.access".into(),
        category: Category::Web,
        source_ip: Some(format!("198.51.100.{}", n % 200 + 1).parse().expect("an address")),
        http_method: Some("GET".into()),
        http_version: Some("1.1".into()),
        http_status: Some(200),
        destination_bytes: Some(n % 5000),
        url_path: Some(format!("/ent/page/{n}")),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into()),
        original: format!(
            "198.51.100.{} - - [26/Nov/2026:01:00:00 +0100] \"GET /ent/page/{n} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\"",
            n % 200 + 1,
            n % 5000
        ),
        ..Event::default()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, count, rest @ ..] = args.as_slice() else {
        return Err("usage: produce BROKERS TOPIC COUNT [PAYLOAD_FILE]".into());
    };
    let count: u64 = count.parse()?;
    if let Some(path) = rest.first() {
        let mut payload = Vec::new();
        bus::encode_event(&event(1), bus::Encoding::Binary, &mut payload)?;
        std::fs::write(path, payload)?;
    }
    let settings = KafkaSettings::new(brokers);
    let publisher = Publisher::new(&settings, BusMetrics::default())?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(bus::run_publisher(publisher, topic.clone(), EVENT_CODEC, rx));
    let started = Instant::now();
    let mut waiters = Vec::new();
    let mut n = 0;
    while n < count {
        let size = 512.min(count - n);
        let items: Vec<Event> = (n..n + size).map(event).collect();
        let (token, waiter) = AckToken::new();
        tx.send(Batch::new(items, token)).await?;
        waiters.push(waiter);
        n += size;
    }
    drop(tx);
    let mut delivered = true;
    for waiter in waiters {
        delivered &= waiter.wait().await == collector::AckStatus::Delivered;
    }
    task.await??;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"producer\": \"vigie (rdkafka)\", \"messages\": {count}, \"seconds\": {secs:.3}, \"per_second\": {:.0}, \"all_acknowledged\": {delivered}}}",
        count as f64 / secs
    );
    Ok(())
}
