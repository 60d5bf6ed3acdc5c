//! The rule engine: per-pipeline sliding windows and suppression, fed one event at a time.
//!
//! The event's own `@timestamp` is the clock: replaying a day of logs gives the detections
//! the live run gave, and tests never sleep. State is bounded: at most `max_keys` offender
//! keys are tracked across all rules (the least recently seen is evicted and counted), a
//! count window keeps at most `count` timestamps and a distinct window at most `count`
//! values, since the rule fires, and forgets, as soon as either reaches `count`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use collector::Event;
use jiff::Timestamp;

use crate::detection::Detection;
use crate::field::{EventView, Fields};
use crate::rules::{Hit, HitKey, Hits, KeyRef, Kind, Rule, RuleSet};

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
///
/// A tracked key lives in a slot; each rule maps its keys to their slot (an address as the
/// address itself, other keys as their text). The eviction
/// and expiry order — by last activity, oldest first — is a min-heap of
/// `(last activity, sequence number, slot)` in which an entry is dropped lazily: touching a
/// key pushes a new entry, and the old one, whose sequence number no longer matches its
/// slot's, is skipped when it reaches the top. An event thus costs no allocation for a key
/// already tracked, and no search of an ordered map.
#[derive(Debug)]
pub struct Engine {
    rules: Arc<RuleSet>,
    /// Per rule, in the order of `rules`: the slot of each offender key.
    keys: Vec<RuleKeys>,
    slots: Vec<Slot>,
    /// Slots free for reuse.
    free: Vec<usize>,
    lru: BinaryHeap<Reverse<(Timestamp, u64, usize)>>,
    /// Keys tracked (slots in use).
    live: usize,
    seq: u64,
    max_keys: usize,
    stats: EngineStats,
    latest: Timestamp,
    /// The hits of the event being observed, in a buffer reused from event to event.
    hits: Hits,
}

#[derive(Debug)]
struct Slot {
    /// The rule's index in the rule set; `None` for a free slot.
    rule: Option<usize>,
    key: SlotKey,
    state: KeyState,
}

/// The slots of one rule's keys.
#[derive(Debug, Default)]
struct RuleKeys {
    /// Keys of a single address (`source.ip=...`): an address hashes and compares faster
    /// than its text, which is written only when the rule fires.
    ips: HashMap<IpAddr, usize>,
    text: HashMap<Box<str>, usize>,
}

impl RuleKeys {
    fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.ips.values().chain(self.text.values()).copied()
    }
}

/// A tracked offender key, as [`HitKey`] gives it.
#[derive(Debug)]
enum SlotKey {
    Ip(IpAddr),
    Text(Box<str>),
}

impl SlotKey {
    fn as_ref(&self) -> KeyRef<'_> {
        match self {
            SlotKey::Ip(ip) => KeyRef::Ip(*ip),
            SlotKey::Text(text) => KeyRef::Text(text),
        }
    }
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
            keys: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            lru: BinaryHeap::new(),
            live: 0,
            seq: 0,
            max_keys: max_keys.max(1),
            stats: EngineStats::default(),
            latest: Timestamp::UNIX_EPOCH,
            hits: Hits::default(),
        };
        engine.replace_rules(rules);
        engine
    }

    /// Swaps the rule set (a reload). Windows and suppressions of rules whose id is still
    /// present are kept, so a reload neither forgets a brute force half-way nor re-alerts on
    /// an offender already reported; those of removed rules are dropped.
    pub fn replace_rules(&mut self, rules: Arc<RuleSet>) {
        let index: HashMap<&str, usize> = rules.ids().enumerate().map(|(i, id)| (id, i)).collect();
        let mut keys: Vec<RuleKeys> = (0..rules.len()).map(|_| RuleKeys::default()).collect();
        for (old, ids) in std::mem::take(&mut self.keys).into_iter().enumerate() {
            let kept = index.get(self.rules.rules()[old].id.as_ref()).copied();
            for slot in ids.slots() {
                match kept {
                    Some(new) => self.slots[slot].rule = Some(new),
                    // The whole map of the removed rule goes below.
                    None => self.free_slot(slot),
                }
            }
            if let Some(new) = kept {
                keys[new] = ids;
            }
        }
        self.keys = keys;
        self.stats.tracked_keys = self.live;
        tracing::info!(rules = rules.len(), kept_keys = self.live, "analyzer rules replaced");
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
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        self.rules.evaluate(&EventView::new(Fields::of_event(event)), &mut hits);
        let mut out = Vec::new();
        self.apply(event.timestamp, &hits.hits, &hits.text, |rule, key, evidence| {
            tracing::debug!(rule = %rule.id, key = %key, event = %event.id, "rule fired");
            out.push(Detection {
                id: format!("{}:{}", rule.id, event.id),
                event_id: event.id.clone(),
                user_name: event.user_name.clone(),
                ..detection(rule, event.timestamp, event.source_ip, key, evidence)
            });
        });
        self.hits = hits;
        out
    }

    /// The stateful half of [`Engine::observe`]: counts the `hits` of an event at `ts`
    /// ([`RuleSet::evaluate`]'s, their keys in `text`) in the windows, and calls `fired`
    /// with each rule that fires, its offender key and its evidence, in rule order.
    pub(crate) fn apply(
        &mut self,
        ts: Timestamp,
        hits: &[Hit],
        text: &str,
        mut fired: impl FnMut(&Rule, String, String),
    ) {
        self.latest = self.latest.max(ts);
        let rules = Arc::clone(&self.rules);
        for hit in hits {
            let rule = &rules.rules()[hit.rule];
            let key = match &hit.key {
                HitKey::Ip(ip) => KeyRef::Ip(*ip),
                HitKey::Text(range) => KeyRef::Text(&text[range.clone()]),
            };
            if let Some(evidence) = self.record(hit.rule, rule, ts, key, hit) {
                fired(rule, rule.key_text(key), evidence);
            }
        }
        self.expire();
    }

    /// Counts a match of `rule` (at `index`) for `key`; the evidence if the rule fires.
    fn record(&mut self, index: usize, rule: &Rule, ts: Timestamp, key: KeyRef<'_>, hit: &Hit) -> Option<String> {
        let distinct = hit.distinct;
        if matches!(rule.kind, Kind::Threshold { distinct: Some(_), .. }) && distinct.is_none() {
            return None;
        }
        let state = self.touch(index, key, ts);
        if state.quiet_until.is_some_and(|q| ts < q) {
            return None;
        }
        let evidence = match rule.kind {
            Kind::Signature => match &hit.fragment {
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
                    return None;
                }
                state.window = Window::Empty;
                rule.threshold_evidence(n)
            }
        };
        if !rule.suppress.is_zero() {
            state.quiet_until = Some(ts + rule.suppress);
        }
        Some(evidence)
    }

    /// The state of `key` under the rule at `index`, created if new (evicting the least
    /// recently seen key at the cap), and marked as seen at `ts`.
    fn touch(&mut self, index: usize, key: KeyRef<'_>, ts: Timestamp) -> &mut KeyState {
        self.seq += 1;
        let seq = self.seq;
        let found = match key {
            KeyRef::Ip(ip) => self.keys[index].ips.get(&ip),
            KeyRef::Text(text) => self.keys[index].text.get(text),
        };
        let slot = match found {
            Some(&slot) => slot,
            None => {
                while self.live >= self.max_keys {
                    let Some((_, oldest)) = self.pop_oldest() else { break };
                    // A live slot always has its rule.
                    if tracing::enabled!(tracing::Level::DEBUG)
                        && let Some(rule) = self.slots[oldest].rule.map(|r| &self.rules.rules()[r])
                    {
                        // The key as detections write it (`source.ip=…`), not the bare address.
                        let key = rule.key_text(self.slots[oldest].key.as_ref());
                        tracing::debug!(rule = rule.id.as_ref(), %key, max_keys = self.max_keys, "analyzer key evicted");
                    }
                    self.release(oldest);
                    self.stats.evicted_keys += 1;
                }
                let state = KeyState { lru: (ts, 0), quiet_until: None, window: Window::Empty };
                let owned = match key {
                    KeyRef::Ip(ip) => SlotKey::Ip(ip),
                    KeyRef::Text(text) => SlotKey::Text(text.into()),
                };
                let slot = Slot { rule: Some(index), key: owned, state };
                let slot = match self.free.pop() {
                    Some(free) => {
                        self.slots[free] = slot;
                        free
                    }
                    None => {
                        self.slots.push(slot);
                        self.slots.len() - 1
                    }
                };
                match key {
                    KeyRef::Ip(ip) => self.keys[index].ips.insert(ip, slot),
                    KeyRef::Text(text) => self.keys[index].text.insert(text.into(), slot),
                };
                self.live += 1;
                slot
            }
        };
        let state = &mut self.slots[slot].state;
        // Out-of-order events must not make a key look older than it is.
        state.lru = (state.lru.0.max(ts), seq);
        self.lru.push(Reverse((state.lru.0, seq, slot)));
        self.stats.tracked_keys = self.live;
        if self.lru.len() > 2 * self.live + 1024 {
            self.compact();
        }
        &mut self.slots[slot].state
    }

    /// The least recently seen key's activity and slot, left in place, after dropping the
    /// heap entries that no longer describe a tracked key.
    fn oldest(&mut self) -> Option<((Timestamp, u64), usize)> {
        while let Some(&Reverse((last, seq, slot))) = self.lru.peek() {
            let s = &self.slots[slot];
            if s.rule.is_some() && s.state.lru == (last, seq) {
                return Some(((last, seq), slot));
            }
            self.lru.pop();
        }
        None
    }

    /// Like [`Engine::oldest`], and takes its entry off the heap.
    fn pop_oldest(&mut self) -> Option<((Timestamp, u64), usize)> {
        let oldest = self.oldest()?;
        self.lru.pop();
        Some(oldest)
    }

    /// Forgets the key in `slot` (its heap entries go stale).
    fn release(&mut self, slot: usize) {
        if let Some(rule) = self.slots[slot].rule {
            let keys = &mut self.keys[rule];
            match &self.slots[slot].key {
                SlotKey::Ip(ip) => keys.ips.remove(ip),
                SlotKey::Text(text) => keys.text.remove(text),
            };
            self.free_slot(slot);
        }
    }

    /// Marks `slot` free, without looking at its rule's key map.
    fn free_slot(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        if s.rule.take().is_some() {
            s.key = SlotKey::Text(Box::default());
            s.state.window = Window::Empty;
            self.free.push(slot);
            self.live -= 1;
        }
    }

    /// Rebuilds the heap from the tracked keys, dropping its stale entries: it never holds
    /// more than about twice as many entries as there are keys.
    fn compact(&mut self) {
        let live = self.slots.iter().enumerate().filter(|(_, s)| s.rule.is_some());
        self.lru = live.map(|(i, s)| Reverse((s.state.lru.0, s.state.lru.1, i))).collect();
    }

    /// Drops the oldest keys whose window and suppression have both run out.
    fn expire(&mut self) {
        for _ in 0..EXPIRE_PER_EVENT {
            let Some(((last, _), slot)) = self.oldest() else { break };
            let s = &self.slots[slot];
            let window = match s.rule.map(|r| self.rules.rules()[r].kind) {
                Some(Kind::Threshold { window, .. }) => window,
                _ => jiff::SignedDuration::ZERO,
            };
            let quiet = s.state.quiet_until;
            let idle = last + window <= self.latest && quiet.is_none_or(|q| q <= self.latest);
            if !idle {
                break;
            }
            self.lru.pop();
            self.release(slot);
            self.stats.expired_keys += 1;
        }
        self.stats.tracked_keys = self.live;
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

/// A detection of `rule` on an event at `timestamp` from `source_ip`, without the event's
/// id and user (the caller's, who knows the event: the detection's `id`, `event_id` and
/// `user_name` are left empty here).
pub(crate) fn detection(
    rule: &Rule,
    timestamp: Timestamp,
    source_ip: Option<IpAddr>,
    key: String,
    evidence: String,
) -> Detection {
    Detection {
        id: String::new(),
        rule: rule.id.to_string(),
        title: rule.title.clone(),
        description: rule.description.clone(),
        severity: rule.severity,
        cctp_class: rule.cctp_class,
        mitre: rule.mitre.clone(),
        timestamp,
        source_ip,
        user_name: None,
        key,
        evidence,
        event_id: collector::EventId::default(),
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
    fn an_evicted_key_is_logged_as_detections_write_it() {
        #[derive(Clone, Default)]
        struct Log(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Log {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut e = Engine::with_max_keys(rules(RULES), 1);
            run(&mut e, &[(0, "192.0.2.1", 401, "/"), (1, "192.0.2.2", 401, "/")]);
        });
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("analyzer key evicted"), "{text}");
        assert!(text.contains("key=source.ip=192.0.2.1"), "{text}");
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
