//! The parse stage: raw records in, normalised events out, rejects to the dead-letter files.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::tz::TimeZone;
use tokio::sync::mpsc;

use crate::deadletter::DeadLetter;
use crate::enrich::Enricher;
use crate::event::{Event, EventId};
use crate::parse::{ParseContext, Parser};
use crate::pipe::{Batch, RawRecord};
use crate::telemetry::PipelineMetrics;

const STAGE: &str = "parse";

/// Parsers by source id, plus where rejects go.
#[derive(Debug)]
pub struct Normalizer {
    parsers: HashMap<Arc<str>, Parser>,
    time_zone: TimeZone,
    dead_letter: DeadLetter,
    enricher: Option<Arc<Enricher>>,
    metrics: PipelineMetrics,
}

impl Normalizer {
    pub fn new(time_zone: TimeZone, dead_letter: DeadLetter, metrics: PipelineMetrics) -> Normalizer {
        Normalizer { parsers: HashMap::new(), time_zone, dead_letter, enricher: None, metrics }
    }

    /// Events are enriched (GeoIP, school, role) right after parsing.
    pub fn with_enricher(mut self, enricher: Arc<Enricher>) -> Normalizer {
        self.enricher = Some(enricher);
        self
    }

    /// Lines of `source` are parsed with `parser`.
    pub fn add_source(&mut self, source: &str, parser: Parser) {
        self.parsers.insert(source.into(), parser);
    }

    /// Parses one batch. Rejected lines are written (durably) to the dead-letter file before
    /// this returns, so the batch's acknowledgement can cover them.
    pub fn normalize(&mut self, records: &[RawRecord]) -> std::io::Result<Vec<Event>> {
        let ctx = ParseContext { now: jiff::Timestamp::now(), time_zone: self.time_zone.clone() };
        let mut events = Vec::with_capacity(records.len());
        let mut rejected = false;
        for record in records {
            let outcome = match self.parsers.get(&record.source) {
                Some(parser) => parser.parse(&record.line, &ctx).map_err(|e| (e.expected().to_owned(), e.to_string())),
                None => Err(("no parser".to_owned(), format!("no parser is configured for source {}", record.source))),
            };
            match outcome {
                Ok(mut event) => {
                    event.id = match &record.file {
                        Some(file) => EventId::in_file(&record.source, file, record.position),
                        None => EventId::at(&record.source, record.position),
                    };
                    events.push(event);
                }
                Err((kind, reason)) => {
                    self.metrics.parse_failure(&record.source, &kind);
                    self.dead_letter.push(record, &reason)?;
                    rejected = true;
                }
            }
        }
        if rejected {
            self.dead_letter.sync()?;
        }
        if let Some(enricher) = &self.enricher {
            enricher.enrich_all(&mut events);
        }
        Ok(events)
    }
}

/// Runs the parse stage until its input closes.
pub async fn run_normalize(
    mut normalizer: Normalizer,
    mut input: mpsc::Receiver<Batch<RawRecord>>,
    output: mpsc::Sender<Batch<Event>>,
) -> std::io::Result<()> {
    while let Some(batch) = input.recv().await {
        normalizer.metrics.queue_depth(STAGE, input.len());
        normalizer.metrics.stage_in(STAGE, batch.items.len());
        let events = match normalizer.normalize(&batch.items) {
            Ok(events) => events,
            Err(e) => {
                // Returning drops the batch unacknowledged: the source will replay it.
                tracing::error!(error = %e, "cannot write the dead-letter file; stopping the parse stage");
                return Err(e);
            }
        };
        normalizer.metrics.stage_out(STAGE, events.len());
        // A batch comes from one source, so its newest event tells that source's lag.
        if let (Some(newest), Some(first)) = (events.iter().map(|e| e.timestamp).max(), batch.items.first()) {
            let lag = jiff::Timestamp::now().duration_since(newest).as_secs();
            normalizer.metrics.source_lag(&first.source, lag);
        }
        if output.send(Batch::new(events, batch.ack)).await.is_err() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::{RoleMap, Schools};
    use crate::parse::Format;

    #[test]
    fn parsed_events_get_their_id_and_enrichment_and_rejects_go_to_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let enricher = Arc::new(Enricher::new(None, Some(Schools::from_demo()), Some(RoleMap::demo())));
        let mut normalizer =
            Normalizer::new(TimeZone::UTC, DeadLetter::new(dir.path()).unwrap(), PipelineMetrics::default())
                .with_enricher(enricher);
        normalizer.add_source("web", Parser::new(&Format::ApacheCombined).unwrap());
        let school = &crate::source::demo::schools()[5];
        let ip = std::net::Ipv4Addr::from(u32::from(school.network) + 3);
        let records = [
            RawRecord {
                source: "web".into(),
                position: 0,
                file: Some("3fa2c1d09b7e".into()),
                line: format!(
                    "{ip} - lea.martin.ens [07/Apr/2025:14:30:00 +0200] \"GET /ent/classe/ HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\""
                ),
            },
            RawRecord { source: "web".into(), position: 120, file: None, line: "not apache".into() },
        ];
        let events = normalizer.normalize(&records).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].id.as_str(), "web:3fa2c1d09b7e:0", "the file's tag is in the id");
        assert_eq!(events[0].school_uai.as_deref(), Some(school.uai.as_str()));
        assert_eq!(events[0].user_role.as_deref(), Some("enseignant"));
        let dead = std::fs::read_to_string(dir.path().join("web.jsonl")).unwrap();
        assert!(dead.contains("\"position\":120"), "{dead}");
    }
}
