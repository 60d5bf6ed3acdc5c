//! What the events mean: a rule engine that turns normalised events into detections.
//!
//! Rules are plain YAML files (`rules/*.yml`), compiled once into a [`RuleSet`] (regex sets,
//! Aho-Corasick automata, parsed durations); an [`Engine`] holds the per-pipeline sliding
//! windows and suppressions and turns each [`collector::Event`] into zero or more
//! [`Detection`]s. The analyzer does no network I/O and reads nothing but rule files; its
//! clock is the events' own `@timestamp`.

mod availability;
mod blocklist;
mod detection;
mod engine;
mod error;
mod field;
mod french;
mod replay;
mod rule_test;
mod rules;
mod saturation;

pub use availability::{
    CCTP_REQUIRED_RATIO, DayVerdict, InvalidMonth, MonthReport, Outage, OutageChange, OutageTracker, ServiceWindow,
    daily, monthly,
};
pub use blocklist::{BlockEntry, BlockList, BlockListError, BlockOutcome, BlockPolicy, parse_allow_list};
pub use detection::{CctpClass, Deadline, Detection, Severity};
pub use engine::{DEFAULT_MAX_KEYS, Engine, EngineStats};
pub use error::{RuleError, RuleProblem};
pub use french::{format_date_fr, month_fr, weekday_fr};
pub use replay::{ReplaySummary, analyze_reader, detection_json, parse_lines};
pub use rule_test::{TestFailure, TestReport, run_rule_tests};
pub use rules::{RuleMatch, RuleSet};
pub use saturation::{Labels, MemorySeries, Point, SaturationEngine, SaturationRule, SaturationRules, SeriesSource};
