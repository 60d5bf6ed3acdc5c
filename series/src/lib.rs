//! Measurements over time: the metric series store (raw samples for 48 h, 5-minute rollups for
//! 13 months), the outages the probes saw with the month's availability computed from them, and
//! the metrics stage that scrapes, probes, stores and evaluates the saturation rules.
//!
//! The dashboards read through [`SeriesStore::instant`], [`SeriesStore::range`],
//! [`SeriesStore::rollups`] and [`availability_month`]; alerting hears of outages through the
//! [`ProbeOutageChange`] broadcast of [`MetricsStage`].

mod chunk;
pub mod config;
mod outages;
mod run;
mod store;

pub use outages::{
    AvailabilityDay, AvailabilityError, AvailabilityMonth, AvailabilityOutage, OutageStore, ProbeOutage,
    ProbeOutageChange, availability_month, parse_month,
};
pub use run::{ClamavWatch, MetricsConfig, MetricsStage, ProbeSchedule, ScrapeTarget};
pub use store::{
    InstantValue, Labels, Point, ROLLUP_MS, RangeSeries, Rollup, RollupSeries, SeriesError, SeriesKey, SeriesStore,
    StoreConfig, StoreStats,
};
