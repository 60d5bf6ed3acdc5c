//! Rule files: raw YAML structures, validated and compiled into typed matchers before anything runs.
//!
//! The format (one file per family under `rules/`, documented in `rules/README.md`):
//!
//! ```yaml
//! version: 1
//! rules:
//!   - id: web.sqli
//!     kind: signature            # or threshold
//!     title: Tentative d'injection SQL
//!     description: ...
//!     severity: critical         # info | warning | critical
//!     cctp_class: securite_majeure_code_propre
//!     mitre: T1190
//!     when:                      # every condition must hold
//!       - field: event.category
//!         equals: [web]
//!       - fields: [url.path, url.query]   # any of the fields may match
//!         regex: ['(?i)union\s+select']   # or contains: [...], equals: [...], exists: true
//!         not: false
//!     offender: [source.ip]      # the group key
//!     suppress: 10m              # stay quiet for that key after firing
//!     threshold:                 # threshold rules only
//!       count: 10
//!       distinct: url.path       # optional: count distinct values instead of events
//!       window: 5m
//!     evidence: "{count} échecs de connexion en {window}"   # threshold rules only
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use jiff::SignedDuration;
use regex::{Regex, RegexSet};
use serde::Deserialize;

use crate::detection::{CctpClass, Severity};
use crate::error::{RuleError, RuleProblem, locate};
use crate::field::{CATEGORIES, EventView, FIELD_NAMES, Field, Fields, Text, category_index, category_name};

/// The only rule-file format this analyzer reads.
const FORMAT_VERSION: u32 = 1;
/// Windows longer than this would keep per-offender state for too long to stay bounded in
/// memory; day-scale trends belong to the series analysis, not to event windows.
const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(24);
/// How much of a matched value a detection quotes.
const EVIDENCE_CONTEXT: usize = 160;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: u32,
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    kind: RawKind,
    title: String,
    description: String,
    severity: Severity,
    cctp_class: CctpClass,
    #[serde(default)]
    mitre: Option<String>,
    #[serde(default)]
    when: Vec<RawCondition>,
    offender: Vec<String>,
    suppress: String,
    #[serde(default)]
    threshold: Option<RawThreshold>,
    #[serde(default)]
    evidence: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Signature,
    Threshold,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    count: u32,
    #[serde(default)]
    distinct: Option<String>,
    window: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    equals: Option<Vec<serde_yaml_ng::Value>>,
    #[serde(default)]
    contains: Option<Vec<String>>,
    #[serde(default)]
    regex: Option<Vec<String>>,
    #[serde(default)]
    exists: Option<bool>,
    #[serde(default)]
    not: bool,
}

/// A compiled, immutable set of rules. Share it behind an `Arc` between engines.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// For each event category (see [`CATEGORIES`]), the indexes of the rules whose
    /// conditions can hold for an event of that category, in rule order: most rules begin
    /// with `event.category equals [web]`, and an event need not be shown to the others.
    by_category: [Vec<usize>; CATEGORIES.len()],
}

/// A rule whose per-event conditions hold for an event (see [`RuleSet::matching`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    pub rule: String,
    /// The offender key, as in [`crate::Detection::key`].
    pub key: String,
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) id: Arc<str>,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) severity: Severity,
    pub(crate) cctp_class: CctpClass,
    pub(crate) mitre: Option<String>,
    conditions: Vec<Condition>,
    offender: Vec<Field>,
    pub(crate) kind: Kind,
    pub(crate) suppress: SignedDuration,
    evidence: Option<String>,
}

impl Rule {
    /// True for a rule whose conditions only test the kind of event (category, dataset).
    fn counts_every_event(&self) -> bool {
        self.conditions.iter().all(|c| c.fields.iter().all(|f| matches!(f, Field::Category | Field::Dataset)))
    }

    /// Whether the rule's conditions on `event.category` alone let an event of `category`
    /// through (the other conditions are not looked at).
    fn admits(&self, category: collector::Category) -> bool {
        let name = category_name(category);
        self.conditions.iter().filter(|c| c.on_category).all(|c| match &c.matcher {
            Matcher::Equals(options) => options.iter().any(|o| o.eq_ignore_ascii_case(name)) != c.negate,
            // Every event has a category, so `exists: true` always holds.
            Matcher::Exists(want) => *want != c.negate,
            Matcher::Contains { .. } | Matcher::Regex { .. } => true,
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Signature,
    Threshold { count: u32, distinct: Option<Field>, window: SignedDuration },
}

#[derive(Debug)]
struct Condition {
    fields: Vec<Field>,
    matcher: Matcher,
    negate: bool,
    /// A test of `event.category` alone: [`RuleSet::candidates`] answers it (see
    /// [`Rule::admits`]), so [`Rule::matches`] does not test it again.
    on_category: bool,
    /// Per field (same order as `fields`, empty when none): where the condition's patterns
    /// sit in the field's combined scan, when the rule set has one (see [`attach_scans`]).
    scans: Vec<Option<Scan>>,
}

/// One pass over a field's value that tells, for every text condition on that field across
/// the rule set, which of its patterns can match: most values (a benign request) contain
/// none of the literals that a match of any pattern must contain, and then no pattern is
/// searched at all; otherwise only the patterns whose literal is there are.
#[derive(Debug)]
struct Scan {
    literals: Arc<Literals>,
    /// The condition's patterns among the literals' patterns, in its written order.
    patterns: std::ops::Range<usize>,
    /// The same patterns as a set: a value none of them can match is rejected at once.
    mask: Patterns,
}

/// The most patterns one field's [`Literals`] can stand for.
const MAX_PATTERNS: usize = 256;

/// A set of at most [`MAX_PATTERNS`] pattern numbers.
pub(crate) type Patterns = [u64; MAX_PATTERNS / 64];

fn has(set: &Patterns, i: usize) -> bool {
    set[i / 64] & (1 << (i % 64)) != 0
}

fn add(set: &mut Patterns, i: usize) {
    set[i / 64] |= 1 << (i % 64);
}

/// The shortest literal of a [`Literals::packed`] search: with shorter ones, Teddy finds
/// candidates at almost every byte and gains nothing.
const MIN_PACKED_LITERAL: usize = 3;
/// The longest value the packed search lower-cases (on the stack); longer ones go to the
/// automaton alone.
const MAX_PACKED_VALUE: usize = 512;

/// The literals one pattern needs (see [`needed_literals`]), or `None` when it has none.
type Needed = Option<Vec<Vec<u8>>>;

/// The literals a field's patterns need: every match of a pattern contains one of its
/// literals (ASCII case-insensitively), so a pattern none of whose literals is in the value
/// cannot match it.
#[derive(Debug)]
pub(crate) struct Literals {
    /// Every literal of every pattern, ASCII case-insensitive.
    ac: AhoCorasick,
    /// The same literals, lower-cased, in a SIMD search (Teddy) of the lower-cased value,
    /// when they are long enough for it to pay: it tells far faster than `ac` that none is
    /// there (the common case), then `ac` says which are. The literals of a user agent's
    /// scan are; a path's (`<`, `'`, `;`) are not.
    packed: Option<aho_corasick::packed::Searcher>,
    /// Per literal of `ac`, the patterns it is a literal of.
    owners: Vec<Patterns>,
    /// The patterns without such literals: always searched.
    always: Patterns,
}

impl Literals {
    /// `needed[i]`: the literals of pattern `i`, or `None` when it has none (it is always
    /// searched). `None` when the patterns are too many or the automaton cannot be built.
    fn new(needed: &[Needed]) -> Option<Literals> {
        if needed.len() > MAX_PATTERNS {
            return None;
        }
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut owners: Vec<Patterns> = Vec::new();
        let mut always = Patterns::default();
        for (i, needed) in needed.iter().enumerate() {
            let Some(needed) = needed else {
                add(&mut always, i);
                continue;
            };
            for literal in needed {
                let literal = literal.to_ascii_lowercase();
                let at = match literals.iter().position(|l| *l == literal) {
                    Some(at) => at,
                    None => {
                        literals.push(literal);
                        owners.push(Patterns::default());
                        literals.len() - 1
                    }
                };
                add(&mut owners[at], i);
            }
        }
        let ac = AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .ascii_case_insensitive(true)
            .build(&literals)
            .ok()?;
        let long = literals.iter().all(|l| l.len() >= MIN_PACKED_LITERAL);
        let packed = if long { aho_corasick::packed::Searcher::new(&literals) } else { None };
        Some(Literals { ac, packed, owners, always })
    }

    /// The patterns that can match `value`: those with a literal in it, and the others.
    pub(crate) fn candidates(&self, value: &str) -> Patterns {
        let mut set = self.always;
        if let Some(packed) = &self.packed
            && value.len() <= MAX_PACKED_VALUE
        {
            let mut lower = [0; MAX_PACKED_VALUE];
            let lower = &mut lower[..value.len()];
            lower.copy_from_slice(value.as_bytes());
            lower.make_ascii_lowercase();
            if packed.find(&lower[..]).is_none() {
                return set;
            }
        }
        for m in self.ac.find_overlapping_iter(value) {
            for (word, owners) in set.iter_mut().zip(&self.owners[m.pattern().as_usize()]) {
                *word |= owners;
            }
        }
        set
    }
}

/// What every match of the regex `pattern` must contain, one of the literals (as the regex
/// crate finds them for its own prefilters: all the ways a match can begin, or all the ways
/// it can end, whichever are the longer), or `None` when it has no such literals.
fn needed_literals(pattern: &str) -> Needed {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let hir = regex_syntax::ParserBuilder::new().build().parse(pattern).ok()?;
    let mut best: Option<Vec<Vec<u8>>> = None;
    for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
        let seq = Extractor::new().kind(kind).extract(&hir);
        let Some(literals) = seq.literals() else { continue };
        let mut found: Vec<Vec<u8>> = literals.iter().map(|l| l.as_bytes().to_ascii_lowercase()).collect();
        // An empty literal is in every value: no use.
        if found.iter().any(Vec::is_empty) {
            continue;
        }
        found.sort();
        found.dedup();
        let shortest = |l: &[Vec<u8>]| l.iter().map(Vec::len).min().unwrap_or(usize::MAX);
        if best.as_ref().is_none_or(|b| shortest(&found) > shortest(b)) {
            best = Some(found);
        }
    }
    best
}

#[derive(Debug)]
enum Matcher {
    /// Case-insensitive equality with one of the values.
    Equals(Vec<String>),
    /// Case-insensitive substring search, all needles at once.
    Contains {
        ac: AhoCorasick,
        needles: Vec<String>,
    },
    /// Regular expressions; the set answers "any?" in one pass, the list finds the fragment.
    /// The regex crate runs in linear time, so a hostile request cannot stall the engine.
    Regex {
        set: RegexSet,
        each: Vec<Regex>,
    },
    Exists(bool),
}

/// The part of an event that made a signature match.
#[derive(Debug)]
pub(crate) struct Fragment {
    field: Field,
    matched: String,
    value: String,
}

impl Fragment {
    pub(crate) fn describe(&self) -> String {
        let matched = sanitize(&self.matched, EVIDENCE_CONTEXT);
        if self.matched.len() == self.value.len() {
            format!("{} : « {matched} »", self.field.name())
        } else {
            let value = sanitize(&self.value, EVIDENCE_CONTEXT);
            format!("{} contient « {matched} » : « {value} »", self.field.name())
        }
    }
}

/// Cuts to `max` characters and escapes control characters: evidence ends up in emails and
/// dashboards, and an attacker chooses these bytes (log injection, ASVS V16.4.1).
fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 4));
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl Condition {
    /// Whether the condition holds, and for a positive text match, what matched.
    fn eval(&self, view: &EventView<'_>) -> (bool, Option<Fragment>) {
        let mut hit = None;
        for (i, &field) in self.fields.iter().enumerate() {
            let value = view.value(field);
            let found = match (self.scans.get(i).and_then(Option::as_ref), value.as_deref()) {
                (Some(scan), Some(v)) => {
                    let candidates = view.scanned(field, &scan.literals, v);
                    self.matcher.test_scanned(field, v, candidates, scan.patterns.clone(), &scan.mask)
                }
                (_, v) => self.matcher.test(field, v),
            };
            if let Some(found) = found {
                hit = Some(found);
                break;
            }
        }
        match (hit, self.negate) {
            (Some(fragment), false) => (true, fragment),
            (None, true) => (true, None),
            _ => (false, None),
        }
    }
}

impl Matcher {
    /// `Some(fragment)` when the value matches (the fragment only for text searches).
    fn test(&self, field: Field, value: Option<&str>) -> Option<Option<Fragment>> {
        let fragment = |v: &str, m: &str| Fragment { field, matched: m.to_owned(), value: v.to_owned() };
        match self {
            Matcher::Exists(want) => {
                let present = value.is_some_and(|v| !v.is_empty());
                (present == *want).then_some(None)
            }
            Matcher::Equals(options) => {
                let v = value?;
                options.iter().any(|o| o.eq_ignore_ascii_case(v)).then_some(None)
            }
            Matcher::Contains { ac, .. } => {
                let v = value?;
                let m = ac.find(v)?;
                Some(Some(fragment(v, &v[m.range()])))
            }
            Matcher::Regex { set, each } => {
                let v = value?;
                let first = set.matches(v).into_iter().next()?;
                let m = each[first].find(v).map_or("", |m| m.as_str());
                Some(Some(fragment(v, m)))
            }
        }
    }
}

impl Matcher {
    /// [`Matcher::test`] of a value whose scan is done: `candidates` tells which patterns of
    /// the field's literals can match, the condition's own being `patterns`. The fragment is
    /// the one `test` gives: the first of the condition's regexes that matches, or the
    /// leftmost-longest needle.
    fn test_scanned(
        &self,
        field: Field,
        v: &str,
        candidates: &Patterns,
        patterns: std::ops::Range<usize>,
        mask: &Patterns,
    ) -> Option<Option<Fragment>> {
        let fragment = |m: &str| Fragment { field, matched: m.to_owned(), value: v.to_owned() };
        if candidates.iter().zip(mask).all(|(c, m)| c & m == 0) {
            return None;
        }
        let mut possible = patterns.clone().filter(|&i| has(candidates, i)).map(|i| i - patterns.start).peekable();
        match self {
            Matcher::Regex { each, .. } => possible.find_map(|i| each[i].find(v)).map(|m| Some(fragment(m.as_str()))),
            Matcher::Contains { ac, .. } => {
                // A needle is its own literal: one that is there matches.
                possible.peek()?;
                let m = ac.find(v)?;
                Some(Some(fragment(&v[m.range()])))
            }
            Matcher::Equals(_) | Matcher::Exists(_) => self.test(field, Some(v)),
        }
    }
}

/// Gives every positive text condition on a field that two or more conditions search a place in
/// that field's [`Literals`]. A needle is its own literal, ASCII case-insensitive as the
/// Aho-Corasick search is (a list with a non-ASCII needle keeps its own search); a regex's
/// literals are those [`needed_literals`] finds. A field whose literals cannot be built (too
/// many patterns) keeps one search per condition. Either way each condition answers as it
/// would on its own.
fn attach_scans(rules: &mut [Rule]) {
    type User = (usize, usize, usize, std::ops::Range<usize>);
    let mut per_field: Vec<(Field, Vec<Needed>, Vec<User>)> = Vec::new();
    for (r, rule) in rules.iter().enumerate() {
        for (c, condition) in rule.conditions.iter().enumerate() {
            // A negated condition (`not: true`) usually excludes what benign requests hold
            // (static files): in the scan, its literals would be found in most values and
            // have every pattern of the field searched. It searches on its own, after the
            // rule's other conditions.
            if condition.negate {
                continue;
            }
            let needed: Vec<Needed> = match &condition.matcher {
                Matcher::Regex { set, .. } => set.patterns().iter().map(|p| needed_literals(p)).collect(),
                Matcher::Contains { needles, .. } if needles.iter().all(|n| n.is_ascii()) => {
                    needles.iter().map(|n| Some(vec![n.as_bytes().to_vec()])).collect()
                }
                _ => continue,
            };
            for (i, &field) in condition.fields.iter().enumerate() {
                let at = match per_field.iter().position(|(f, _, _)| *f == field) {
                    Some(at) => at,
                    None => {
                        per_field.push((field, Vec::new(), Vec::new()));
                        per_field.len() - 1
                    }
                };
                let (_, all, users) = &mut per_field[at];
                let start = all.len();
                all.extend(needed.iter().cloned());
                users.push((r, c, i, start..all.len()));
            }
        }
    }
    for (field, needed, users) in per_field {
        if users.len() < 2 {
            continue;
        }
        let Some(literals) = Literals::new(&needed) else {
            tracing::debug!(field = field.name(), patterns = needed.len(), "no combined scan for this field");
            continue;
        };
        let literals = Arc::new(literals);
        for (r, c, i, range) in users {
            let condition = &mut rules[r].conditions[c];
            if condition.scans.is_empty() {
                condition.scans = condition.fields.iter().map(|_| None).collect();
            }
            let mut mask = Patterns::default();
            range.clone().for_each(|p| add(&mut mask, p));
            condition.scans[i] = Some(Scan { literals: Arc::clone(&literals), patterns: range, mask });
        }
    }
}

impl Rule {
    /// Whether every condition holds; the fragment is the first text match, for evidence.
    /// Only for a rule among the [`RuleSet::candidates`] of the event's category: the tests
    /// of the category alone are left to that list.
    pub(crate) fn matches(&self, view: &EventView<'_>) -> Option<Option<Fragment>> {
        let mut fragment = None;
        for condition in self.conditions.iter().filter(|c| !c.on_category) {
            let (ok, found) = condition.eval(view);
            if !ok {
                return None;
            }
            if fragment.is_none() {
                fragment = found;
            }
        }
        Some(fragment)
    }

    /// The offender key, or `None` when the event lacks one of the fields: such an event
    /// cannot be attributed, so it cannot count against anybody.
    pub(crate) fn key(&self, view: &EventView<'_>) -> Option<String> {
        let mut key = String::new();
        self.append_key(view, &mut key).then_some(key)
    }

    /// Appends the offender key to `key` and says whether the event has one (when it has
    /// none, `key` may hold part of it: the caller truncates it back).
    fn append_key(&self, view: &EventView<'_>, key: &mut String) -> bool {
        for (i, &field) in self.offender.iter().enumerate() {
            let Some(value) = view.raw(field).filter(|v| !v.is_empty()) else {
                return false;
            };
            if i > 0 {
                key.push(',');
            }
            key.push_str(field.name());
            key.push('=');
            key.push_str(&value);
        }
        true
    }

    /// The offender field when the rule's offender is that one address (see [`HitKey::Ip`]).
    fn ip_offender(&self) -> Option<Field> {
        match self.offender[..] {
            [field @ (Field::SourceIp | Field::DestinationIp)] => Some(field),
            _ => None,
        }
    }

    /// The offender key as [`crate::Detection::key`] writes it: `field=value` pairs.
    pub(crate) fn key_text(&self, key: KeyRef<'_>) -> String {
        match (key, self.offender.first()) {
            (KeyRef::Ip(ip), Some(field)) => format!("{}={ip}", field.name()),
            (KeyRef::Ip(ip), None) => ip.to_string(),
            (KeyRef::Text(text), _) => text.to_owned(),
        }
    }

    pub(crate) fn distinct_value<'v>(&self, view: &'v EventView<'_>) -> Option<Text<'v>> {
        match self.kind {
            Kind::Threshold { distinct: Some(field), .. } => view.value(field),
            _ => None,
        }
    }

    /// The evidence sentence of a threshold rule once it fires.
    pub(crate) fn threshold_evidence(&self, count: usize) -> String {
        let Kind::Threshold { distinct, window, .. } = self.kind else {
            return String::new();
        };
        let default = match distinct {
            Some(_) => "{count} valeurs distinctes de {distinct} en {window}",
            None => "{count} événements en {window}",
        };
        self.evidence
            .as_deref()
            .unwrap_or(default)
            .replace("{count}", &count.to_string())
            .replace("{window}", &french_duration(window))
            .replace("{distinct}", distinct.map_or("", Field::name))
    }
}

/// What the rules' per-event conditions found in events: the stateless half of
/// [`crate::Engine::observe`], which can run on any thread (`vigie analyze` runs it on the
/// parsing threads); the engine then counts each hit in its windows, in event order.
#[derive(Debug, Default)]
pub(crate) struct Hits {
    pub(crate) hits: Vec<Hit>,
    /// The text of the hits' offender keys, one after the other: one buffer for many
    /// events rather than a string per hit.
    pub(crate) text: String,
}

/// One rule whose conditions hold for an event.
#[derive(Debug)]
pub(crate) struct Hit {
    /// The rule's index in the rule set.
    pub(crate) rule: usize,
    pub(crate) key: HitKey,
    /// For a threshold counting distinct values: the value's hash, `None` when the event
    /// lacks the value (it then counts for nothing).
    pub(crate) distinct: Option<u64>,
    /// For a signature: what matched, for its evidence.
    pub(crate) fragment: Option<Fragment>,
}

/// A hit's offender key.
#[derive(Debug)]
pub(crate) enum HitKey {
    /// The key of a rule whose offender is one address: the address.
    Ip(IpAddr),
    /// Any other key: where its text is in [`Hits::text`].
    Text(std::ops::Range<usize>),
}

/// An offender key as the engine looks it up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyRef<'a> {
    Ip(IpAddr),
    Text(&'a str),
}

impl Hits {
    pub(crate) fn clear(&mut self) {
        self.hits.clear();
        self.text.clear();
    }
}

/// Distinct values are kept as 64-bit hashes: a path or a user agent can be long and chosen
/// by an attacker, a hash is 8 bytes. `DefaultHasher::new()` is fixed-key SipHash, so the
/// same input counts the same on every run.
fn hash(v: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

impl RuleSet {
    /// Appends to `out` a hit for every rule whose conditions hold for the event of `view`
    /// and that can attribute it (the event has the offender fields), in rule order.
    pub(crate) fn evaluate(&self, view: &EventView<'_>, out: &mut Hits) {
        for &index in self.candidates(view.event.category) {
            let rule = &self.rules[index];
            let Some(fragment) = rule.matches(view) else { continue };
            let key = match rule.ip_offender() {
                Some(field) => view.ip(field).map(HitKey::Ip),
                None => {
                    let start = out.text.len();
                    let found = rule.append_key(view, &mut out.text);
                    if !found {
                        out.text.truncate(start);
                    }
                    found.then_some(HitKey::Text(start..out.text.len()))
                }
            };
            let Some(key) = key else {
                tracing::trace!(rule = %rule.id, event = %view.event.id, "event lacks the offender fields");
                continue;
            };
            let distinct = rule.distinct_value(view).map(|v| hash(&v));
            let fragment = if matches!(rule.kind, Kind::Signature) { fragment } else { None };
            out.hits.push(Hit { rule: index, key, distinct, fragment });
        }
    }

    /// Loads every `*.yml` / `*.yaml` file of `dir` (not the `*.test.yml` rule tests), in
    /// name order, and reports every problem of every file at once.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleError> {
        let mut files = rule_files(dir)?;
        files.retain(|p| !is_test_file(p));
        if files.is_empty() {
            return Err(RuleError::NoRules { dir: dir.to_owned() });
        }
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        let mut first_seen: HashMap<Arc<str>, String> = HashMap::new();
        for path in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(source) => {
                    errors.push(RuleError::Io { path, source });
                    continue;
                }
            };
            let name = path.display().to_string();
            match compile_file(&name, &text) {
                Ok(file_rules) => {
                    for rule in file_rules {
                        if let Some(first) = first_seen.get(&rule.id) {
                            let (line, column) = locate(&text, &rule.id, "id");
                            errors.push(RuleError::Invalid(Box::new(RuleProblem {
                                file: name.clone(),
                                line,
                                column,
                                rule: rule.id.to_string(),
                                key: "id".into(),
                                problem: format!("the id is already used in {first}"),
                                hint: "give every rule a unique id".into(),
                            })));
                            continue;
                        }
                        first_seen.insert(rule.id.clone(), name.clone());
                        rules.push(rule);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        match RuleError::collect(errors) {
            Some(e) => Err(e),
            None => {
                tracing::info!(dir = %dir.display(), rules = rules.len(), "rules loaded");
                Ok(RuleSet::new(rules))
            }
        }
    }

    /// Compiles the rules of one file; `file_name` only names the file in errors.
    pub fn from_yaml(file_name: &str, text: &str) -> Result<RuleSet, RuleError> {
        compile_file(file_name, text).map(RuleSet::new)
    }
    fn new(mut rules: Vec<Rule>) -> RuleSet {
        attach_scans(&mut rules);
        let by_category =
            CATEGORIES.map(|c| rules.iter().enumerate().filter(|(_, r)| r.admits(c)).map(|(i, _)| i).collect());
        RuleSet { rules, by_category }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule ids, in load order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_ref())
    }

    /// The rules whose per-event conditions hold for `event`, with the offender key, before
    /// any window or suppression: what a threshold rule would count, what a signature would
    /// flag. Used to explain a rule and to compare with peers that judge line by line.
    /// Like [`RuleSet::matching`], without the volume rules whose conditions only say what
    /// kind of event it is (a flood rule counts every request): the lines that say something
    /// on their own, as `fail2ban-regex` lists matched lines.
    pub fn matching_lines(&self, event: &collector::Event) -> Vec<RuleMatch> {
        let view = EventView::new(Fields::of_event(event));
        self.candidates(event.category)
            .iter()
            .map(|&i| &self.rules[i])
            .filter(|r| !r.counts_every_event())
            .filter(|r| r.matches(&view).is_some())
            .filter_map(|r| Some(RuleMatch { rule: r.id.to_string(), key: r.key(&view)? }))
            .collect()
    }

    pub fn matching(&self, event: &collector::Event) -> Vec<RuleMatch> {
        let view = EventView::new(Fields::of_event(event));
        self.candidates(event.category)
            .iter()
            .map(|&i| &self.rules[i])
            .filter(|r| r.matches(&view).is_some())
            .filter_map(|r| Some(RuleMatch { rule: r.id.to_string(), key: r.key(&view)? }))
            .collect()
    }

    pub(crate) fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The indexes of the rules that can match an event of `category`, in rule order.
    pub(crate) fn candidates(&self, category: collector::Category) -> &[usize] {
        &self.by_category[category_index(category)]
    }
}

/// The rules of one file, compiled; `file_name` only names the file in errors.
fn compile_file(file_name: &str, text: &str) -> Result<Vec<Rule>, RuleError> {
    // Saturation rules (`kind: saturation`) read series, not events: their file is
    // compiled by [`crate::SaturationRules`], and holds no event rule.
    match crate::saturation::file_kind(text) {
        crate::saturation::FileKind::Saturation => {
            crate::SaturationRules::from_yaml(file_name, text)?;
            return Ok(Vec::new());
        }
        crate::saturation::FileKind::Mixed => {
            return Err(RuleError::Syntax {
                file: file_name.to_owned(),
                line: 1,
                column: 1,
                message: "this file mixes `kind: saturation` rules with event rules; put the saturation \
                          rules in a file of their own (rules/saturation.yml)"
                    .into(),
            });
        }
        crate::saturation::FileKind::Events => {}
    }
    let raw: RawFile = serde_yaml_ng::from_str(text).map_err(|e| RuleError::syntax(file_name, &e))?;
    if raw.version != FORMAT_VERSION {
        let (line, column) = text.lines().position(|l| l.starts_with("version:")).map_or((1, 1), |i| (i + 1, 1));
        return Err(RuleError::Syntax {
            file: file_name.to_owned(),
            line,
            column,
            message: format!(
                "rule format version {} is not supported (this vigie reads version {FORMAT_VERSION})",
                raw.version
            ),
        });
    }
    let mut errors = Vec::new();
    let mut rules = Vec::with_capacity(raw.rules.len());
    let mut ids: HashMap<String, ()> = HashMap::new();
    for raw_rule in raw.rules {
        let id = raw_rule.id.clone();
        let mut ctx = Ctx { file: file_name, text, rule: &id, errors: &mut errors };
        if ids.insert(raw_rule.id.clone(), ()).is_some() {
            ctx.error("id", "the id is used twice in this file", "give every rule a unique id");
            continue;
        }
        if let Some(rule) = compile(raw_rule, &mut ctx) {
            rules.push(rule);
        }
    }
    match RuleError::collect(errors) {
        Some(e) => Err(e),
        None => Ok(rules),
    }
}

pub(crate) fn rule_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, RuleError> {
    let io = |source| RuleError::Io { path: dir.to_owned(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

pub(crate) fn is_test_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".test.yml") || n.ends_with(".test.yaml"))
}

/// Where errors of the rule being compiled go.
struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    rule: &'a str,
    errors: &'a mut Vec<RuleError>,
}

impl Ctx<'_> {
    fn error(&mut self, key: &str, problem: impl Into<String>, hint: impl Into<String>) {
        let (line, column) = locate(self.text, self.rule, key);
        self.errors.push(RuleError::Invalid(Box::new(RuleProblem {
            file: self.file.to_owned(),
            line,
            column,
            rule: self.rule.to_owned(),
            key: key.to_owned(),
            problem: problem.into(),
            hint: hint.into(),
        })));
    }

    fn field(&mut self, key: &str, name: &str) -> Option<Field> {
        let field = Field::parse(name);
        if field.is_none() {
            let known: Vec<&str> = FIELD_NAMES.iter().map(|(n, _)| *n).collect();
            self.error(key, format!("unknown field `{name}`"), format!("use one of: {}", known.join(", ")));
        }
        field
    }

    fn duration(&mut self, key: &str, text: &str) -> Option<SignedDuration> {
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(problem) => {
                self.error(key, problem, "write a number and a unit: 30s, 5m, 1h or 1d");
                None
            }
        }
    }
}

fn compile(raw: RawRule, ctx: &mut Ctx<'_>) -> Option<Rule> {
    let before = ctx.errors.len();
    let id_ok = !raw.id.is_empty()
        && raw.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    if !id_ok {
        ctx.error("id", format!("`{}` is not a valid rule id", raw.id), "use lowercase letters, digits, `.` and `-`");
    }
    if raw.title.trim().is_empty() {
        ctx.error("title", "the title is empty", "write a short French title for the city's staff");
    }
    if raw.description.trim().is_empty() {
        ctx.error("description", "the description is empty", "say in French what the rule detects and why");
    }
    if let Some(m) = &raw.mitre {
        let ok = m.len() >= 5
            && m.starts_with('T')
            && m[1..5].chars().all(|c| c.is_ascii_digit())
            && (m.len() == 5 || (m.len() == 9 && &m[5..6] == "." && m[6..].chars().all(|c| c.is_ascii_digit())));
        if !ok {
            ctx.error("mitre", format!("`{m}` is not an ATT&CK technique id"), "write it as T1190 or T1110.003");
        }
    }
    if raw.offender.is_empty() {
        ctx.error("offender", "no offender field", "name the fields that identify the offender, e.g. [source.ip]");
    }
    let offender: Vec<Field> = raw.offender.iter().filter_map(|f| ctx.field("offender", f)).collect();
    let suppress = ctx.duration("suppress", &raw.suppress);

    let written = raw.when.len();
    let mut conditions = Vec::with_capacity(written);
    for c in raw.when {
        if let Some(c) = compile_condition(c, ctx) {
            conditions.push(c);
        }
    }
    // Comparisons first, text searches after: an event that fails a cheap test is never
    // searched. Only positive text searches give a fragment, and they keep their written
    // order, so the evidence is the one the written order gives.
    conditions.sort_by_key(|c| matches!(c.matcher, Matcher::Contains { .. } | Matcher::Regex { .. }));

    let kind = match (raw.kind, raw.threshold) {
        (RawKind::Signature, None) => {
            let positive = conditions.iter().any(|c| !c.negate && !matches!(c.matcher, Matcher::Exists(_)));
            // A condition that failed to compile was reported already.
            if !positive && conditions.len() == written {
                ctx.error(
                    "when",
                    "a signature needs at least one positive equals, contains or regex condition",
                    "otherwise it would fire on every event",
                );
            }
            if raw.evidence.is_some() {
                ctx.error(
                    "evidence",
                    "a signature's evidence is the matched fragment",
                    "remove `evidence`, or make the rule a threshold",
                );
            }
            Some(Kind::Signature)
        }
        (RawKind::Signature, Some(_)) => {
            ctx.error("threshold", "a signature has no threshold", "set `kind: threshold` or remove `threshold`");
            None
        }
        (RawKind::Threshold, None) => {
            ctx.error("kind", "a threshold rule needs a `threshold` section", "add threshold: {count, window}");
            None
        }
        (RawKind::Threshold, Some(t)) => {
            if t.count == 0 {
                ctx.error("count", "the count must be at least 1", "set the number of events that fires the rule");
            }
            let distinct = t.distinct.as_deref().and_then(|d| ctx.field("distinct", d));
            let window = ctx.duration("window", &t.window);
            if let Some(w) = window
                && (w.is_zero() || w > MAX_WINDOW)
            {
                ctx.error("window", format!("window {} is out of range", t.window), "use a window between 1s and 1d");
            }
            if let Some(e) = &raw.evidence {
                let mut rest = e.replace("{count}", "").replace("{window}", "");
                if distinct.is_some() {
                    rest = rest.replace("{distinct}", "");
                }
                if rest.contains('{') {
                    ctx.error(
                        "evidence",
                        format!("unknown placeholder in `{e}`"),
                        "use {count}, {window} and, with `distinct`, {distinct}",
                    );
                }
            }
            window.map(|window| Kind::Threshold { count: t.count, distinct, window })
        }
    };

    if ctx.errors.len() > before {
        return None;
    }
    Some(Rule {
        id: raw.id.into(),
        title: raw.title,
        description: raw.description.trim().to_owned(),
        severity: raw.severity,
        cctp_class: raw.cctp_class,
        mitre: raw.mitre,
        conditions,
        offender,
        kind: kind?,
        suppress: suppress?,
        evidence: raw.evidence,
    })
}

fn compile_condition(raw: RawCondition, ctx: &mut Ctx<'_>) -> Option<Condition> {
    let names: Vec<String> = match (raw.field, raw.fields) {
        (Some(f), None) => vec![f],
        (None, Some(fs)) if !fs.is_empty() => fs,
        _ => {
            ctx.error("when", "a condition names its field(s)", "write either `field: x` or `fields: [x, y]`");
            return None;
        }
    };
    let fields: Vec<Field> = names.iter().filter_map(|n| ctx.field("field", n)).collect();
    let given = [raw.equals.is_some(), raw.contains.is_some(), raw.regex.is_some(), raw.exists.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        ctx.error(
            "when",
            format!("the condition on {} needs exactly one test", names.join(", ")),
            "use one of equals, contains, regex or exists (write two conditions to combine them)",
        );
        return None;
    }
    let matcher = if let Some(values) = raw.equals {
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            match v {
                serde_yaml_ng::Value::String(s) => out.push(s),
                serde_yaml_ng::Value::Number(n) => out.push(n.to_string()),
                serde_yaml_ng::Value::Bool(b) => out.push(b.to_string()),
                other => {
                    ctx.error("equals", format!("`{other:?}` is not a plain value"), "list strings or numbers");
                    return None;
                }
            }
        }
        Matcher::Equals(out)
    } else if let Some(needles) = raw.contains {
        if needles.iter().any(|n| n.is_empty()) {
            ctx.error("contains", "an empty string matches everything", "remove it");
            return None;
        }
        // A DFA: bigger than the default NFA, but the needle lists are short and every
        // event's URL, query and user agent go through them (the analyzer's hot loop).
        let ac = AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .ascii_case_insensitive(true)
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&needles);
        match ac {
            Ok(ac) => Matcher::Contains { ac, needles },
            Err(e) => {
                ctx.error("contains", e.to_string(), "shorten the list");
                return None;
            }
        }
    } else if let Some(patterns) = raw.regex {
        let mut each = Vec::with_capacity(patterns.len());
        for p in &patterns {
            match Regex::new(p) {
                Ok(r) => each.push(r),
                Err(e) => {
                    ctx.error("regex", format!("invalid regex `{p}`: {e}"), "fix the pattern (Rust regex syntax)");
                    return None;
                }
            }
        }
        let set = RegexSet::new(&patterns).ok()?;
        Matcher::Regex { set, each }
    } else {
        Matcher::Exists(raw.exists.unwrap_or(true))
    };
    if fields.len() != names.len() {
        return None;
    }
    let on_category = fields == [Field::Category] && matches!(matcher, Matcher::Equals(_) | Matcher::Exists(_));
    Some(Condition { fields, matcher, negate: raw.not, on_category, scans: Vec::new() })
}

/// Parses `30s`, `5m`, `1h`, `1d` as every configuration file of Vigie does
/// ([`collector::parse_duration`]; `0s` is allowed and means "none").
pub(crate) fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let d = collector::parse_duration(text)?;
    SignedDuration::try_from(d).map_err(|_| format!("`{}` is too long", text.trim()))
}

/// `5 min`, `1 h 30 min`, `30 s`, `1 j`: how a duration reads in a French evidence sentence.
pub(crate) fn french_duration(d: SignedDuration) -> String {
    let total = d.as_secs();
    let (days, rest) = (total / 86_400, total % 86_400);
    let (hours, rest) = (rest / 3600, rest % 3600);
    let (minutes, seconds) = (rest / 60, rest % 60);
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days} j"));
    }
    if hours > 0 {
        parts.push(format!("{hours} h"));
    }
    if minutes > 0 {
        parts.push(format!("{minutes} min"));
    }
    if seconds > 0 || parts.is_empty() {
        parts.push(format!("{seconds} s"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version: 1
rules:
  - id: t.sqli
    kind: signature
    title: Injection SQL
    description: Une injection.
    severity: critical
    cctp_class: securite_majeure_code_propre
    mitre: T1190
    when:
      - fields: [url.path, url.query]
        regex: ['(?i)union\s+select']
    offender: [source.ip]
    suppress: 10m
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
    suppress: 30m
    threshold: { count: 3, distinct: url.path, window: 1m }
    evidence: "{count} chemins absents en {window}"
"#;

    #[test]
    fn a_good_file_compiles() {
        let set = RuleSet::from_yaml("good.yml", GOOD).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.ids().collect::<Vec<_>>(), ["t.sqli", "t.scan"]);
        let Kind::Threshold { count, distinct, window } = set.rules()[1].kind else { panic!() };
        assert_eq!((count, distinct, window), (3, Some(Field::UrlPath), SignedDuration::from_mins(1)));
        assert_eq!(set.rules()[1].threshold_evidence(3), "3 chemins absents en 1 min");
    }

    #[test]
    fn matching_decodes_and_keys() {
        let set = RuleSet::from_yaml("good.yml", GOOD).unwrap();
        let event = collector::Event {
            source_ip: Some("203.0.113.9".parse().unwrap()),
            url_query: Some("id=1%2527%2520UNION%2520SELECT%25201".into()),
            ..Default::default()
        };
        let m = set.matching(&event);
        assert_eq!(m, [RuleMatch { rule: "t.sqli".into(), key: "source.ip=203.0.113.9".into() }]);
    }

    fn error_of(text: &str) -> String {
        RuleSet::from_yaml("bad.yml", text).unwrap_err().to_string()
    }

    #[test]
    fn an_unknown_key_names_the_line() {
        let text = GOOD.replace("    mitre: T1190\n", "    mitre: T1190\n    severty: info\n");
        let e = error_of(&text);
        assert!(e.starts_with("bad.yml:11:5: rules[0]: unknown field `severty`"), "{e}");
        assert!(e.contains("severty"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_with_rule_key_and_hint() {
        let text = GOOD
            .replace("suppress: 10m", "suppress: 10 minutes")
            .replace("distinct: url.path", "distinct: url.pathh")
            .replace("regex: ['(?i)union\\s+select']", "regex: ['(?i)union(']");
        let e = error_of(&text);
        assert!(e.starts_with("3 problems:"), "{e}");
        assert!(e.contains("bad.yml:15:5: rule `t.sqli`, key `suppress`: `10 minutes` has no unit"), "{e}");
        assert!(e.contains("rule `t.sqli`, key `regex`: invalid regex"), "{e}");
        assert!(e.contains("rule `t.scan`, key `distinct`: unknown field `url.pathh`; use one of:"), "{e}");
    }

    #[test]
    fn structural_mistakes_are_refused() {
        let e = error_of(&GOOD.replace("kind: threshold", "kind: signature"));
        assert!(e.contains("a signature has no threshold"), "{e}");
        let e = error_of(&GOOD.replace("version: 1", "version: 2"));
        assert!(e.starts_with("bad.yml:2:1: rule format version 2 is not supported"), "{e}");
        let e = error_of(&GOOD.replace("id: t.scan", "id: t.sqli"));
        assert!(e.contains("the id is used twice"), "{e}");
        let e = error_of(&GOOD.replace("mitre: T1190", "mitre: 1190"));
        assert!(e.contains("key `mitre`"), "{e}");
        let e = error_of(&GOOD.replace("{count} chemins", "{nombre} chemins"));
        assert!(e.contains("unknown placeholder"), "{e}");
        let e = error_of(&GOOD.replace("window: 1m", "window: 2d"));
        assert!(e.contains("out of range"), "{e}");
        let e = error_of(&GOOD.replace("severity: critical", "severity: high"));
        assert!(e.starts_with("bad.yml:"), "{e}");
        assert!(e.contains("unknown variant `high`"), "{e}");
    }

    #[test]
    fn load_dir_skips_tests_and_reports_duplicates_across_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yml"), GOOD).unwrap();
        std::fs::write(dir.path().join("a.test.yml"), "not: [a rule file").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        assert_eq!(RuleSet::load_dir(dir.path()).unwrap().len(), 2);
        std::fs::write(dir.path().join("b.yaml"), GOOD).unwrap();
        std::fs::write(dir.path().join("c.yml"), "version: 1\nrules: 3\n").unwrap();
        let e = RuleSet::load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.starts_with("3 problems:"), "{e}");
        assert!(e.contains("b.yaml:4:5: rule `t.sqli`, key `id`: the id is already used in"), "{e}");
        assert!(e.contains("c.yml:2:"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(RuleSet::load_dir(empty.path()), Err(RuleError::NoRules { .. })));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), SignedDuration::from_secs(90));
        assert_eq!(parse_duration("1d").unwrap(), SignedDuration::from_hours(24));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(french_duration(SignedDuration::from_secs(5400)), "1 h 30 min");
        assert_eq!(french_duration(SignedDuration::from_secs(30)), "30 s");
        assert_eq!(french_duration(SignedDuration::from_hours(24)), "1 j");
    }

    #[test]
    fn a_combined_scan_answers_as_each_condition_would() {
        let rule = |id: &str, test: &str| {
            format!(
                "  - id: {id}\n    kind: signature\n    title: T\n    description: D.\n    severity: info\n    \
                 cctp_class: securite_mineure\n    when:\n      - fields: [url.path, url.query]\n        {test}\n    \
                 offender: [source.ip]\n    suppress: 0s\n"
            )
        };
        let text = format!(
            "version: 1\nrules:\n{}{}{}{}",
            rule("t.dots", "contains: ['../', 'WIN.INI']"),
            rule("t.env", r"regex: ['(?i)\.env$', 'secret', '(?i)env']"),
            rule("t.accent", "contains: ['été/']"),
            rule("t.never", "regex: ['^zzz$']"),
        );
        let set = RuleSet::from_yaml("t.yml", &text).unwrap();
        let scanned: Vec<bool> = set
            .rules()
            .iter()
            .map(|r| !r.conditions[0].scans.is_empty() && r.conditions[0].scans.iter().all(Option::is_some))
            .collect();
        assert_eq!(scanned, [true, true, false, true], "a non-ASCII needle list keeps its own search");
        let check = |path: &str, query: &str, expected: &[(&str, &str)]| {
            let event = collector::Event {
                source_ip: Some("192.0.2.1".parse().unwrap()),
                url_path: Some(path.into()),
                url_query: Some(query.into()),
                ..Default::default()
            };
            let view = EventView::new(Fields::of_event(&event));
            let got: Vec<(String, String)> = set
                .rules()
                .iter()
                .filter_map(|r| Some((r.id.to_string(), r.matches(&view)?.map(|f| f.describe()).unwrap_or_default())))
                .collect();
            let expected: Vec<(String, String)> =
                expected.iter().map(|(r, e)| (r.to_string(), e.to_string())).collect();
            assert_eq!(got, expected, "{path}?{query}");
        };
        check("/a/b", "x=1", &[]);
        check(
            "/%2e%2e/.ENV",
            "f=..\\win.ini",
            &[
                ("t.dots", "url.path contient « ../ » : « /../.ENV »"),
                ("t.env", "url.path contient « .ENV » : « /../.ENV »"),
            ],
        );
        // The first pattern of the condition that matches gives the fragment, as its own set would.
        check("/docs", "k=Secret-env", &[("t.env", "url.query contient « env » : « k=Secret-env »")]);
        check("/x", "k=secret", &[("t.env", "url.query contient « secret » : « k=secret »")]);
        check("/x", "f=win.ini", &[("t.dots", "url.query contient « win.ini » : « f=win.ini »")]);
        check("/%C3%A9t%C3%A9/", "", &[("t.accent", "url.path contient « été/ » : « /été/ »")]);
    }

    #[test]
    fn a_regex_is_skipped_only_when_none_of_its_literals_is_there() {
        // Under (?i), `s` also matches `ſ` (U+017F) and `k` the Kelvin sign (U+212A): their
        // literals are kept apart, not lowered into the ASCII ones.
        let patterns = [r"(?i)\bsleep\s*\(", r"(?i)benchmark", r"\$\(\s*[a-z]+", r"(?i)\.(css|js)$", r"[a-z]+\d"];
        let needed: Vec<_> = patterns.iter().map(|p| needed_literals(p)).collect();
        assert!(needed[4].is_none(), "a pattern without literals is always searched");
        let literals = Literals::new(&needed).unwrap();
        let mut only_the_last = Patterns::default();
        add(&mut only_the_last, 4);
        assert_eq!(literals.candidates("/blog/article-12"), only_the_last);
        for value in
            ["x=SLEEP (1)", "x=\u{17f}leep(1)", "BENCHMAR\u{212a}", "$(id)", "/a.JS", "/a.css?", "a1", "", "\u{17f}"]
        {
            let candidates = literals.candidates(value);
            for (i, p) in patterns.iter().enumerate() {
                if Regex::new(p).unwrap().is_match(value) {
                    assert!(has(&candidates, i), "{p} matches {value:?}");
                }
            }
        }
    }

    #[test]
    fn long_literals_are_searched_lower_cased_then_by_the_automaton() {
        let needles = ["sqlmap", "nikto", "() {"];
        let needed: Vec<_> = needles.iter().map(|n| Some(vec![n.as_bytes().to_vec()])).collect();
        let literals = Literals::new(&needed).unwrap();
        let found =
            |value: &str| (0..needles.len()).filter(|&i| has(&literals.candidates(value), i)).collect::<Vec<_>>();
        let long = format!("{}NiKtO", "a".repeat(MAX_PACKED_VALUE));
        assert_eq!(found("Mozilla/5.0 (X11; Linux x86_64)"), [] as [usize; 0]);
        assert_eq!(found("SQLMap/1.8 () { :; }"), [0, 2]);
        assert_eq!(found("nIkTo"), [1]);
        assert_eq!(found("ni"), [] as [usize; 0]);
        assert_eq!(found(&long), [1], "a value too long for the packed search goes to the automaton");
    }

    #[test]
    fn candidates_follow_the_category_conditions() {
        let rule = |id: &str, category: &str| {
            format!(
                "  - id: {id}\n    kind: signature\n    title: T\n    description: D.\n    severity: info\n    \
                 cctp_class: securite_mineure\n    when:\n{category}      - field: url.path\n        contains: [x]\n    \
                 offender: [source.ip]\n    suppress: 0s\n"
            )
        };
        let text = format!(
            "version: 1\nrules:\n{}{}{}{}{}",
            rule("t.web", "      - field: event.category\n        equals: [WEB]\n"),
            rule("t.any", ""),
            rule("t.not-web", "      - field: event.category\n        equals: [web]\n        not: true\n"),
            rule("t.two", "      - field: event.category\n        equals: [network, diagnostic]\n"),
            rule("t.none", "      - field: event.category\n        exists: false\n"),
        );
        let set = RuleSet::from_yaml("t.yml", &text).unwrap();
        let ids = |c| set.candidates(c).iter().map(|&i| set.rules()[i].id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(collector::Category::Web), ["t.web", "t.any"]);
        assert_eq!(ids(collector::Category::Network), ["t.any", "t.not-web", "t.two"]);
        assert_eq!(ids(collector::Category::Diagnostic), ["t.any", "t.not-web", "t.two"]);
        let event = collector::Event {
            category: collector::Category::Network,
            source_ip: Some("192.0.2.1".parse().unwrap()),
            url_path: Some("/x".into()),
            ..Default::default()
        };
        let matched: Vec<String> = set.matching(&event).into_iter().map(|m| m.rule).collect();
        assert_eq!(matched, ["t.any", "t.not-web", "t.two"]);
    }

    #[test]
    fn evidence_is_sanitized() {
        let f = Fragment { field: Field::UrlQuery, matched: "<script>".into(), value: "a=\n<script>".into() };
        assert_eq!(f.describe(), "url.query contient « <script> » : « a=\\n<script> »");
        assert_eq!(sanitize(&"x".repeat(200), 3), "xxx…");
    }
}
