//! What was observed: sources, parsers and the normalised event every later stage consumes.

mod deadletter;
mod duration;
mod enrich;
mod event;
mod normalize;
pub mod parse;
mod pipe;
pub mod probe;
mod scrape;
pub mod source;
mod state;
mod telemetry;
pub mod watch;

pub use deadletter::DeadLetter;
pub use duration::{DURATION_HINT, parse_duration};
pub use enrich::{
    EnrichError, Enricher, GeoInfo, GeoIp, GeoIpConfig, RoleMap, SchoolEntry, Schools, run_geoip_reloader,
};
pub use event::{Category, Event, EventId, JsonId, LineEvent};
pub use normalize::{Normalizer, run_normalize};
pub use pipe::{AckStatus, AckToken, AckWaiter, Batch, RawRecord};
pub use probe::{CertificateInfo, DemoEnt, HttpCheck, Probe, ProbeKind, ProbeResult, run_probe};
pub use scrape::{
    Exposition, MetricType, PromParseError, Sample, Scrape, ScrapeError, Target, parse_prometheus_text,
    render_prometheus_text, scrape,
};
pub use state::{StateError, open_sqlite};
pub use telemetry::{Health, PipelineMetrics};
