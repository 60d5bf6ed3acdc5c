//! The rule engine: per-pipeline sliding windows and suppression, fed one event at a time.
//!
//! The event's own `@timestamp` is the clock: replaying a day of logs gives the detections
//! the live run gave, and tests never sleep. State is bounded: at most `max_keys` offender
//! keys are tracked across all rules (the least recently seen is evicted and counted), a
//! count window keeps at most `count` timestamps and a distinct window at most `count`
//! values, since the rule fires, and forgets, as soon as either reaches `count`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use collector::Event;
use jiff::Timestamp;

use crate::detection::Detection;
use crate::field::EventView;
use crate::rules::{Kind, Rule, RuleSet};

/// How many offender keys an engine tracks by default, across all rules. A key costs a few
/// hundred bytes plus its window, so this stays in the tens of megabytes even under a
/// distributed scan, while being well above the ENT's real population of client addresses.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Idle keys examined for expiry per event: enough to keep up with the arrival of new keys,
/// small enough that one event never pays for a large sweep.
const EXPIRE_PER_EVENT: usize = 8;

/// Counters for the dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    /// Offender keys currently tracked.
    pub tracked_keys: usize,
    /// Keys dropped because the cap was reached (their windows were lost: a sign that the
    /// cap is too low or that a very wide scan is under way).
    pub evicted_keys: u64,
    /// Keys dropped because their window and suppression had both run out.
    pub expired_keys: u64,
}

/// Per-pipeline rule state. Not shared: each analyzer task owns one.
#[derive(Debug)]
pub struct Engine {
    rules: Arc<RuleSet>,
    index: HashMap<Arc<str>, usize>,
    states: HashMap<Arc<str>, HashMap<String, KeyState>>,
    /// Keys by last activity, oldest first: the eviction and expiry order.
    lru: BTreeMap<(Timestamp, u64), (Arc<str>, String)>,
    seq: u64,
    max_keys: usize,
    stats: EngineStats,
    latest: Timestamp,
}

#[derive(Debug)]
struct KeyState {
    lru: (Timestamp, u64),
    quiet_until: Option<Timestamp>,
    window: Window,
}

#[derive(Debug)]
enum Window {
    Empty,
    /// Timestamps of matching events, oldest first.
    Times(VecDeque<Timestamp>),
    /// Hash of each distinct value, with the last time it was seen.
    Values(HashMap<u64, Timestamp>),
}

impl Engine {
    pub fn new(rules: Arc<RuleSet>) -> Engine {
        Engine::with_max_keys(rules, DEFAULT_MAX_KEYS)
    }

    /// An engine tracking at most `max_keys` offender keys (at least 1).
    pub fn with_max_keys(rules: Arc<RuleSet>, max_keys: usize) -> Engine {
        let mut engine = Engine {
            rules: Arc::new(RuleSet::default()),
            index: HashMap::new(),
            states: HashMap::new(),
            lru: BTreeMap::new(),
            seq: 0,
            max_keys: max_keys.max(1),
            stats: EngineStats::default(),
            latest: Timestamp::UNIX_EPOCH,
        };
        engine.replace_rules(rules);
        engine
    }

    /// Swaps the rule set (a reload). Windows and suppressions of rules whose id is still
    /// present are kept, so a reload neither forgets a brute force half-way nor re-alerts on
    /// an offender already reported; those of removed rules are dropped.
    pub fn replace_rules(&mut self, rules: Arc<RuleSet>) {
        self.index = rules.rules().iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        let index = &self.index;
        self.states.retain(|id, _| index.contains_key(id));
        self.lru.retain(|_, (id, _)| index.contains_key(id));
        self.stats.tracked_keys = self.lru.len();
        tracing::info!(rules = rules.len(), kept_keys = self.lru.len(), "analyzer rules replaced");
        self.rules = rules;
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Runs every rule on `event`; returns what fired, in rule order.
    pub fn observe(&mut self, event: &Event) -> Vec<Detection> {
        let view = EventView::new(event);
        let ts = event.timestamp;
        self.latest = self.latest.max(ts);
        let rules = Arc::clone(&self.rules);
        let mut out = Vec::new();
        for rule in rules.rules() {
            let Some(fragment) = rule.matches(&view) else { continue };
            let Some(key) = rule.key(&view) else {
                tracing::trace!(rule = %rule.id, event = %event.id, "event lacks the offender fields");
                continue;
            };
            let distinct = rule.distinct_value(&view).map(|v| hash(&v));
            if matches!(rule.kind, Kind::Threshold { distinct: Some(_), .. }) && distinct.is_none() {
                continue;
            }
            let state = self.touch(rule, &key, ts);
            if state.quiet_until.is_some_and(|q| ts < q) {
                continue;
            }
            let evidence = match rule.kind {
                Kind::Signature => match &fragment {
                    Some(f) => f.describe(),
                    None => rule.title.clone(),
                },
                Kind::Threshold { count, window, .. } => {
                    let cutoff = ts - window;
                    let n = match distinct {
                        None => state.window.record_time(ts, cutoff, count as usize),
                        Some(h) => state.window.record_value(h, ts, cutoff),
                    };
                    if n < count as usize {
                        continue;
                    }
                    state.window = Window::Empty;
                    rule.threshold_evidence(n)
                }
            };
            if !rule.suppress.is_zero() {
                state.quiet_until = Some(ts + rule.suppress);
            }
            tracing::debug!(rule = %rule.id, key = %key, event = %event.id, "rule fired");
            out.push(detection(rule, event, key, evidence));
        }
        self.expire();
        out
    }

    /// The state of `key` under `rule`, created if new (evicting the least recently seen
    /// key at the cap), and marked as seen at `ts`.
    fn touch(&mut self, rule: &Rule, key: &str, ts: Timestamp) -> &mut KeyState {
        self.seq += 1;
        let seq = self.seq;
        let exists = self.states.get(&rule.id).is_some_and(|m| m.contains_key(key));
        if !exists {
            while self.lru.len() >= self.max_keys {
                let Some(((_, _), (id, old))) = self.lru.pop_first() else { break };
                if let Some(m) = self.states.get_mut(&id) {
                    m.remove(&old);
                }
                self.stats.evicted_keys += 1;
                tracing::debug!(rule = %id, key = %old, max_keys = self.max_keys, "analyzer key evicted");
            }
        }
        let keys = self.states.entry(rule.id.clone()).or_default();
        let state = keys.entry(key.to_owned()).or_insert_with(|| KeyState {
            lru: (ts, 0),
            quiet_until: None,
            window: Window::Empty,
        });
        if exists {
            self.lru.remove(&state.lru);
        }
        // Out-of-order events must not make a key look older than it is.
        state.lru = (state.lru.0.max(ts), seq);
        self.lru.insert(state.lru, (rule.id.clone(), key.to_owned()));
        self.stats.tracked_keys = self.lru.len();
        state
    }

    /// Drops the oldest keys whose window and suppression have both run out.
    fn expire(&mut self) {
        for _ in 0..EXPIRE_PER_EVENT {
            let Some((&(last, seq), (id, key))) = self.lru.first_key_value() else { break };
            let window = match self.index.get(id).map(|&i| self.rules.rules()[i].kind) {
                Some(Kind::Threshold { window, .. }) => window,
                _ => jiff::SignedDuration::ZERO,
            };
            let quiet = self.states.get(id).and_then(|m| m.get(key)).and_then(|s| s.quiet_until);
            let idle = last + window <= self.latest && quiet.is_none_or(|q| q <= self.latest);
            if !idle {
                break;
            }
            let (id, key) = self.lru.remove(&(last, seq)).unwrap_or_default();
            if let Some(m) = self.states.get_mut(&id) {
                m.remove(&key);
            }
            self.stats.expired_keys += 1;
        }
        self.stats.tracked_keys = self.lru.len();
    }
}

impl Window {
    /// Records an event at `ts`; returns how many of the last `cap` events are newer than
    /// `cutoff`. Keeping only `cap` timestamps is exact: the rule fires at `cap`.
    fn record_time(&mut self, ts: Timestamp, cutoff: Timestamp, cap: usize) -> usize {
        if !matches!(self, Window::Times(_)) {
            *self = Window::Times(VecDeque::new());
        }
        let Window::Times(times) = self else { unreachable!("set just above") };
        let at = times.partition_point(|t| *t <= ts);
        times.insert(at, ts);
        while times.front().is_some_and(|t| *t <= cutoff) {
            times.pop_front();
        }
        while times.len() > cap {
            times.pop_front();
        }
        times.len()
    }

    /// Records value `h` seen at `ts`; returns how many distinct values were seen after `cutoff`.
    fn record_value(&mut self, h: u64, ts: Timestamp, cutoff: Timestamp) -> usize {
        if !matches!(self, Window::Values(_)) {
            *self = Window::Values(HashMap::new());
        }
        let Window::Values(values) = self else { unreachable!("set just above") };
        let seen = values.entry(h).or_insert(ts);
        *seen = (*seen).max(ts);
        values.retain(|_, t| *t > cutoff);
        values.len()
    }
}

/// Distinct values are kept as 64-bit hashes: a path or a user agent can be long and chosen
/// by an attacker, a hash is 8 bytes. `DefaultHasher::new()` is fixed-key SipHash, so the
/// same input counts the same on every run.
fn hash(v: &str) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

fn detection(rule: &Rule, event: &Event, key: String, evidence: String) -> Detection {
    Detection {
        id: format!("{}:{}", rule.id, event.id),
        rule: rule.id.to_string(),
        title: rule.title.clone(),
        description: rule.description.clone(),
        severity: rule.severity,
        cctp_class: rule.cctp_class,
        mitre: rule.mitre.clone(),
        timestamp: event.timestamp,
        source_ip: event.source_ip,
        user_name: event.user_name.clone(),
        key,
        evidence,
        event_id: event.id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use collector::EventId;

    const RULES: &str = r#"
version: 1
rules:
  - id: t.fail
    kind: threshold
    title: Échecs
    description: Des échecs.
    severity: warning
    cctp_class: securite_mineure
    when:
      - field: http.response.status_code
        equals: [401]
    offender: [source.ip]
    suppress: 10m
    threshold: { count: 3, window: 1m }
    evidence: "{count} échecs de connexion en {window}"
  - id: t.scan
    kind: threshold
    title: Balayage
    description: Des 404.
    severity: warning
    cctp_class: securite_mineure
    when:
      - field: http.response.status_code
        equals: [404]
    offender: [source.ip]
    suppress: 0s
    threshold: { count: 3, distinct: url.path, window: 1m }
  - id: t.sig
    kind: signature
    title: Sonde
    description: Une sonde.
    severity: info
    cctp_class: securite_mineure
    when:
      - field: url.path
        contains: [/.env]
    offender: [source.ip]
    suppress: 5m
"#;

    fn rules(text: &str) -> Arc<RuleSet> {
        Arc::new(RuleSet::from_yaml("t.yml", text).unwrap())
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_744_029_000 + secs).unwrap()
    }

    fn ev(n: u64, secs: i64, ip: &str, status: u16, path: &str) -> Event {
        Event {
            id: EventId::at("t", n),
            timestamp: at(secs),
            source_ip: Some(ip.parse().unwrap()),
            http_status: Some(status),
            url_path: Some(path.into()),
            ..Event::default()
        }
    }

    /// Feeds `(secs, ip, status, path)` events and returns `rule@event-seconds` per firing.
    fn run(engine: &mut Engine, events: &[(i64, &str, u16, &str)]) -> Vec<String> {
        let mut fired = Vec::new();
        for (n, (secs, ip, status, path)) in events.iter().enumerate() {
            for d in engine.observe(&ev(n as u64, *secs, ip, *status, path)) {
                fired.push(format!("{}@{secs}", d.rule));
            }
        }
        fired
    }

    #[test]
    fn a_count_window_slides() {
        let mut e = Engine::new(rules(RULES));
        let a = "192.0.2.1";
        // Three failures, but the first is 60 s before the third: out of the window.
        assert!(run(&mut e, &[(0, a, 401, "/"), (30, a, 401, "/"), (60, a, 401, "/")]).is_empty());
        // The fourth brings three inside (30, 60, 61].
        assert_eq!(run(&mut e, &[(61, a, 401, "/")]), ["t.fail@61"]);
    }

    #[test]
    fn suppression_silences_the_key_then_counting_restarts() {
        let mut e = Engine::new(rules(RULES));
        let (a, b) = ("192.0.2.1", "192.0.2.2");
        let burst = |t0: i64, ip| [(t0, ip, 401, "/"), (t0 + 1, ip, 401, "/"), (t0 + 2, ip, 401, "/")];
        assert_eq!(run(&mut e, &burst(0, a)), ["t.fail@2"]);
        // Same key within 10 min: quiet; another key is not affected.
        assert!(run(&mut e, &burst(100, a)).is_empty());
        assert_eq!(run(&mut e, &burst(100, b)), ["t.fail@102"]);
        // After the suppression window, a fresh burst fires again (events inside the quiet
        // time were not counted: the first two alone would not fire).
        assert!(run(&mut e, &[(602, a, 401, "/"), (603, a, 401, "/")]).is_empty());
        assert_eq!(run(&mut e, &[(604, a, 401, "/")]), ["t.fail@604"]);
    }

    #[test]
    fn distinct_counts_values_not_events() {
        let mut e = Engine::new(rules(RULES));
        let a = "198.51.100.7";
        let same = [(0, a, 404, "/x"), (1, a, 404, "/x"), (2, a, 404, "/x"), (3, a, 404, "/y")];
        assert!(run(&mut e, &same).is_empty());
        assert_eq!(run(&mut e, &[(4, a, 404, "/z")]), ["t.scan@4"]);
        // No suppression (0s), but the window restarted: three new paths are needed.
        assert!(run(&mut e, &[(5, a, 404, "/1"), (6, a, 404, "/2")]).is_empty());
        assert_eq!(run(&mut e, &[(7, a, 404, "/3")]), ["t.scan@7"]);
        // Old values leave the window.
        assert!(run(&mut e, &[(100, a, 404, "/p"), (200, a, 404, "/q"), (300, a, 404, "/r")]).is_empty());
    }

    #[test]
    fn detections_carry_deterministic_ids_and_french_evidence() {
        let mut e = Engine::new(rules(RULES));
        let mut fired = Vec::new();
        for n in 0..3 {
            fired.extend(e.observe(&ev(n, n as i64, "192.0.2.1", 401, "/login")));
        }
        let d = &fired[0];
        assert_eq!(d.id, "t.fail:t:2");
        assert_eq!(d.key, "source.ip=192.0.2.1");
        assert_eq!(d.evidence, "3 échecs de connexion en 1 min");
        assert_eq!(d.timestamp, at(2));
        let sig = e.observe(&ev(9, 10, "192.0.2.1", 404, "/%2eenv/../.env"));
        assert_eq!(sig.len(), 1);
        assert_eq!(sig[0].evidence, "url.path contient « /.env » : « /.env/../.env »");
        // Replaying the same events in a fresh engine yields the same ids.
        let mut replay = Engine::new(rules(RULES));
        let again: Vec<Detection> =
            (0..3).flat_map(|n| replay.observe(&ev(n, n as i64, "192.0.2.1", 401, "/login"))).collect();
        assert_eq!(again, fired);
    }

    #[test]
    fn the_key_cap_evicts_the_oldest_and_counts() {
        let mut e = Engine::with_max_keys(rules(RULES), 2);
        let (a, b, c) = ("192.0.2.1", "192.0.2.2", "192.0.2.3");
        run(&mut e, &[(0, a, 401, "/"), (1, a, 401, "/"), (2, b, 401, "/"), (3, a, 401, "/")]);
        // a fired at 3 and is suppressed; b is the least recently seen.
        assert_eq!(e.stats(), EngineStats { tracked_keys: 2, evicted_keys: 0, expired_keys: 0 });
        run(&mut e, &[(4, c, 401, "/")]);
        assert_eq!(e.stats().evicted_keys, 1);
        assert_eq!(e.stats().tracked_keys, 2);
        // b's first failure was forgotten: two more do not reach three.
        assert!(run(&mut e, &[(5, b, 401, "/"), (6, b, 401, "/")]).is_empty());
        assert_eq!(e.stats().evicted_keys, 2, "b came back and pushed out the oldest");
    }

    #[test]
    fn idle_keys_expire() {
        let mut e = Engine::new(rules(RULES));
        run(&mut e, &[(0, "192.0.2.1", 401, "/"), (1, "192.0.2.2", 404, "/a")]);
        assert_eq!(e.stats().tracked_keys, 2);
        // An hour later both windows (1 min) are over and neither key is suppressed.
        run(&mut e, &[(3600, "192.0.2.3", 200, "/")]);
        assert_eq!(e.stats(), EngineStats { tracked_keys: 0, evicted_keys: 0, expired_keys: 2 });
    }

    #[test]
    fn a_reload_keeps_the_state_of_kept_ids_only() {
        let mut e = Engine::new(rules(RULES));
        let a = "192.0.2.1";
        run(&mut e, &[(0, a, 401, "/"), (1, a, 401, "/"), (2, a, 404, "/1"), (3, a, 404, "/2")]);
        // Reload: t.fail kept (threshold unchanged), t.scan renamed.
        let text = RULES.replace("id: t.scan", "id: t.scan2");
        e.replace_rules(rules(&text));
        assert_eq!(e.rules().len(), 3);
        assert_eq!(run(&mut e, &[(4, a, 401, "/")]), ["t.fail@4"], "the window survived");
        assert!(run(&mut e, &[(5, a, 404, "/3")]).is_empty(), "the renamed rule starts afresh");
        // Suppression survives a reload too.
        e.replace_rules(rules(RULES));
        assert!(run(&mut e, &[(6, a, 401, "/"), (7, a, 401, "/"), (8, a, 401, "/")]).is_empty());
    }

    #[test]
    fn out_of_order_events_count_in_their_place() {
        let mut e = Engine::new(rules(RULES));
        let a = "192.0.2.1";
        // 50 arrives after 59; with 0 it would be out of (59-60, 59], so all three count.
        assert_eq!(run(&mut e, &[(10, a, 401, "/"), (59, a, 401, "/"), (50, a, 401, "/")]), ["t.fail@50"]);
    }

    #[test]
    fn events_without_the_offender_field_are_not_attributed() {
        let mut e = Engine::new(rules(RULES));
        let mut event = ev(1, 0, "192.0.2.1", 404, "/.env");
        event.source_ip = None;
        assert!(e.observe(&event).is_empty());
        assert_eq!(e.stats().tracked_keys, 0);
    }
}
