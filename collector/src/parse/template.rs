//! The engine behind configurable access logs: a compiled template (from an Apache
//! `LogFormat` or an Nginx `log_format`) is a list of literals and typed fields, matched
//! against a line with a small, bounded backtracking search.
//!
//! Why backtracking: a field ends where the next literal starts, but the literal (often a
//! single space) can also occur inside the field (`[10/Oct/2000:13:55:36 -0700]`,
//! `"10.0.0.2, 10.0.0.1"`). Each field knows what its text may look like (digits, an
//! address, a time), so the matcher tries the shortest candidate first and moves to the
//! next occurrence of the literal when the field's text is not plausible. A step budget
//! bounds the work on hostile input.

use std::borrow::Cow;

use jiff::Timestamp;
use smallvec::SmallVec;

use super::ParseContext;
use super::common::{self, ParseError, address_and_port, dash_none, ip, unescape};
use crate::Category;
use crate::event::LineEvent;

/// What a template field means, and therefore where its value goes in the [`crate::Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Field {
    /// Client address (`%h`, `%a`, `$remote_addr`): an IP, or a name when the server resolves
    /// names; an optional `:port` is accepted (some front ends log `ip:port`).
    ClientHost,
    ClientPort,
    /// The server's port (`%p`, `$server_port`) → `destination.port`.
    ServerPort,
    /// The virtual host (`%v`, `%V`, `$host`) → `observer.hostname`.
    ServerName,
    /// `%v:%p` written as one token in Debian's `vhost_combined`.
    ServerIp,
    User,
    /// Matched and dropped (`%l`, cookies, environment variables, ...).
    Ignore,
    /// Matched and dropped, a single word (`%l`, the identd name).
    IgnoreToken,
    /// `%t`: `[10/Oct/2000:13:55:36 -0700]`, brackets included.
    TimeClfBracketed,
    /// `$time_local`: the same without brackets.
    TimeClf,
    /// `$time_iso8601`.
    TimeIso8601,
    /// Seconds since the epoch, possibly fractional (`$msec`, `%{sec}t`).
    TimeEpochSeconds,
    TimeEpochMillis,
    TimeEpochMicros,
    /// `%{FORMAT}t`: a strftime format, in the server's local time unless it has `%z`.
    TimeStrftime(String),
    /// `%r`, `$request`: `GET /path?query HTTP/1.1`.
    Request,
    Method,
    /// `%U`, `$uri`: the path without the query.
    Path,
    /// `$request_uri`: path and query.
    PathWithQuery,
    /// `%q` (with its leading `?`), `$args` (without).
    Query,
    Protocol,
    Status,
    /// Response body bytes (`%b`, `%B`, `$body_bytes_sent`).
    BytesBody,
    /// Response bytes on the wire, headers included (`%O`, `$bytes_sent`); wins over the
    /// body size when both are logged.
    BytesSent,
    /// Request bytes on the wire (`%I`, `$request_length`).
    BytesReceived,
    DurationMicros,
    DurationMillis,
    DurationSeconds,
    /// Fractional seconds with millisecond resolution (`$request_time`).
    DurationSecondsFrac,
    Referrer,
    UserAgent,
}

impl Field {
    /// Whether `text` could be this field's value; used to steer the backtracking search.
    /// For a time field the parsed instant comes back too, so that it is not parsed twice.
    fn plausible(&self, text: &str) -> Plausible {
        let decimal = |t: &str| {
            t == "-"
                || (!t.is_empty()
                    && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                    && t.bytes().filter(|&b| b == b'.').count() <= 1)
        };
        let token = |t: &str| !t.is_empty() && !t.bytes().any(|b| b == b' ' || b == b'\t');
        let time = |parsed: Result<(&str, (Timestamp, i32)), _>| match parsed {
            Ok(("", at)) => Plausible::Time(at),
            _ => Plausible::No,
        };
        let yes = |ok: bool| if ok { Plausible::Yes } else { Plausible::No };
        match self {
            Field::Status
            | Field::ClientPort
            | Field::ServerPort
            | Field::BytesBody
            | Field::BytesSent
            | Field::BytesReceived
            | Field::DurationMicros
            | Field::DurationMillis
            | Field::DurationSeconds
            | Field::TimeEpochMillis
            | Field::TimeEpochMicros => yes(digits_or_dash(text)),
            Field::DurationSecondsFrac | Field::TimeEpochSeconds => yes(decimal(text)),
            Field::ClientHost
            | Field::ServerIp
            | Field::Method
            | Field::Protocol
            | Field::User
            | Field::IgnoreToken => yes(token(text)),
            Field::TimeClfBracketed => match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                Some(inner) if !inner.is_empty() => time(common::clf_time(inner)),
                _ => Plausible::No,
            },
            Field::TimeClf => time(common::clf_time(text)),
            Field::TimeIso8601 => time(common::rfc3339(text)),
            Field::TimeStrftime(fmt) => yes(text == "-" || jiff::fmt::strtime::parse(fmt.as_bytes(), text).is_ok()),
            _ => Plausible::Yes,
        }
    }

    /// Fields whose value is a single token with no spaces: they may directly precede another
    /// field (`%h%l` is unusual but legal), and their extent is then the token.
    fn is_token(&self) -> bool {
        !matches!(
            self,
            Field::Request
                | Field::Referrer
                | Field::UserAgent
                | Field::Ignore
                | Field::TimeClfBracketed
                | Field::TimeClf
                | Field::TimeStrftime(_)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Literal(String),
    /// A field and the directive it came from (`%>s`, `$status`), for error messages.
    Field(Field, String),
}

/// A compiled access-log template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    items: Vec<Item>,
    /// For each item, how many fields come before it: a field's span is kept at that index
    /// (literals have none; a span per item spilled `combined`'s 18 items to the heap on
    /// every line).
    slots: Vec<usize>,
    fields: usize,
    dataset: &'static str,
    /// Whether the template is one of the shapes [`Template::parse_clf`] reads by hand.
    shape: Shape,
}

/// The Common Log Format family, matched by a dedicated pass before the general search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Any other template: the general search only.
    General,
    /// Apache's `%h %l %u %t "%r" %>s %b`.
    Common,
    /// Apache's `common` then ` "%{Referer}i" "%{User-Agent}i"`.
    Combined,
    /// Nginx's `combined`: `$remote_addr - $remote_user [$time_local] "$request" $status
    /// $body_bytes_sent "$http_referer" "$http_user_agent"`, the same bytes as Apache's when
    /// the identd field is `-` (which Nginx writes as a literal).
    NginxCombined,
}

/// One item a [`Shape`] expects: a literal, or a field (whatever its directive).
enum Want {
    L(&'static str),
    F(Field),
}

impl Shape {
    /// The shape of merged template items.
    fn of(items: &[Item]) -> Shape {
        use Field::*;
        use Want::{F, L};
        let common = [
            F(ClientHost),
            L(" "),
            F(IgnoreToken),
            L(" "),
            F(User),
            L(" "),
            F(TimeClfBracketed),
            L(" \""),
            F(Request),
            L("\" "),
            F(Status),
            L(" "),
            F(BytesBody),
        ];
        let quoted_pair = [L(" \""), F(Referrer), L("\" \""), F(UserAgent), L("\"")];
        let nginx = [
            F(ClientHost),
            L(" - "),
            F(User),
            L(" ["),
            F(TimeClf),
            L("] \""),
            F(Request),
            L("\" "),
            F(Status),
            L(" "),
            F(BytesBody),
        ];
        let is = |wanted: &[&[Want]]| {
            let mut items = items.iter();
            wanted.iter().flat_map(|part| part.iter()).all(|want| match (items.next(), want) {
                (Some(Item::Literal(l)), L(w)) => l == w,
                (Some(Item::Field(f, _)), F(w)) => f == w,
                _ => false,
            }) && items.next().is_none()
        };
        if is(&[&common]) {
            Shape::Common
        } else if is(&[&common, &quoted_pair]) {
            Shape::Combined
        } else if is(&[&nginx, &quoted_pair]) {
            Shape::NginxCombined
        } else {
            Shape::General
        }
    }
}

/// Length of a bracketed CLF time as servers write it: `[10/Oct/2000:13:55:36 -0700]`.
const CLF_BRACKETED: usize = 28;

/// How many candidate field extents one line may try before the matcher gives up; real lines
/// need a few dozen at most.
const STEP_BUDGET: u32 = 4096;

/// What [`Field::plausible`] found.
enum Plausible {
    No,
    Yes,
    /// A time field's text, already parsed.
    Time((Timestamp, i32)),
}

/// One field's matched text, and its instant when it is a time field.
#[derive(Clone, Copy, Default)]
struct Span<'a> {
    text: &'a str,
    time: Option<(Timestamp, i32)>,
}

struct Search<'a> {
    line: &'a str,
    /// One per field (see [`Template::slots`]): inline for any preset (9 for `combined`).
    spans: SmallVec<[Span<'a>; 16]>,
    budget: u32,
    /// Set on the second pass over a line that did not match: the matcher then also tracks
    /// the furthest point reached and what was expected there, for the error message. The
    /// first pass skips that bookkeeping, which is most of the cost of a match.
    diagnose: bool,
    furthest: (usize, String),
}

impl Search<'_> {
    fn note(&mut self, pos: usize, expected: impl FnOnce() -> String) {
        if self.diagnose && pos >= self.furthest.0 {
            self.furthest = (pos, expected());
        }
    }
}

impl Template {
    pub(crate) fn new(items: Vec<Item>, dataset: &'static str) -> Self {
        // Merge adjacent literals so each field is followed by at most one literal.
        let mut merged: Vec<Item> = Vec::with_capacity(items.len());
        for item in items {
            match (merged.last_mut(), item) {
                (Some(Item::Literal(prev)), Item::Literal(next)) => prev.push_str(&next),
                (_, Item::Literal(l)) if l.is_empty() => {}
                (_, item) => merged.push(item),
            }
        }
        let mut fields = 0;
        let slots = merged
            .iter()
            .map(|item| {
                let slot = fields;
                fields += usize::from(matches!(item, Item::Field(..)));
                slot
            })
            .collect();
        let shape = Shape::of(&merged);
        Template { items: merged, slots, fields, dataset, shape }
    }

    /// The spans of a search over this template: one per field, all empty.
    fn empty_spans<'a>(&self) -> SmallVec<[Span<'a>; 16]> {
        smallvec::smallvec![Span::default(); self.fields]
    }

    /// The field items, in order: what the spans are of.
    fn field_items(&self) -> impl Iterator<Item = (&Field, &String)> {
        self.items.iter().filter_map(|item| match item {
            Item::Field(field, directive) => Some((field, directive)),
            Item::Literal(_) => None,
        })
    }

    #[cfg(test)]
    pub(crate) fn items(&self) -> &[Item] {
        &self.items
    }

    pub(crate) fn dataset(&self) -> &'static str {
        self.dataset
    }

    /// Matches `line` (without its line terminator) against the template and builds the event.
    pub(crate) fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Result<LineEvent<'a>, ParseError> {
        if self.shape != Shape::General
            && let Some(event) = self.parse_clf(line, ctx)
        {
            return Ok(event);
        }
        self.parse_general(line, ctx)
    }

    /// The event of a `common` or `combined` line (Apache's, or Nginx's) read by hand, field
    /// after field: what
    /// [`Template::parse_general`] builds, at half its cost (its search and its per-field
    /// dispatch serve every template). `None` wherever the general search might see the
    /// line otherwise: a backslash (an escape to undo or to skip), a blank that is not a
    /// single space between fields, a literal not right where a field's first candidate
    /// ends, a field that its first candidate does not fit, a number out of range. The
    /// general search then decides, errors and all; a test holds the two to the same event
    /// on every line this pass takes.
    pub(super) fn parse_clf<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<LineEvent<'a>> {
        let text = line.trim_end_matches(['\r', '\n']);
        let bytes = text.as_bytes();
        if memchr::memchr(b'\\', bytes).is_some() {
            return None;
        }
        // `%h %l %u `: tokens, each up to the first space (the first candidate of a token
        // field), neither empty nor holding a tab.
        let mut pos = 0;
        let mut token = || {
            let start = pos;
            let end = start + bytes[start..].iter().position(|&b| b == b' ' || b == b'\t')?;
            if end == start || bytes[end] != b' ' {
                return None;
            }
            pos = end + 1;
            Some(&text[start..end])
        };
        let host = token()?;
        let ident = token()?;
        let user = token()?;
        // Nginx writes the identd field as a literal `-`.
        if self.shape == Shape::NginxCombined && ident != "-" {
            return None;
        }
        // `[10/Oct/2000:13:55:36 -0700] "`: the fixed shape only, whose first ` "` is the one
        // after the bracket.
        let time = bytes.get(pos..pos + CLF_BRACKETED + 2)?;
        if time[0] != b'[' || &time[CLF_BRACKETED - 1..] != b"] \"" {
            return None;
        }
        let at = match common::clf_time(&text[pos + 1..pos + CLF_BRACKETED - 1]) {
            Ok(("", at)) => at,
            _ => return None,
        };
        pos += CLF_BRACKETED + 2;
        // `%r" `: up to the first quote, which must be followed by a space.
        let quote = pos + memchr::memchr(b'"', &bytes[pos..])?;
        if bytes.get(quote + 1) != Some(&b' ') {
            return None;
        }
        let request = &text[pos..quote];
        pos = quote + 2;
        // `%>s `, then `%b`: up to the end (common) or to ` "` (combined).
        let status_end = pos + bytes[pos..].iter().position(|&b| b == b' ')?;
        let status = &text[pos..status_end];
        pos = status_end + 1;
        let size_end = match self.shape {
            Shape::Combined | Shape::NginxCombined => {
                let space = pos + bytes[pos..].iter().position(|&b| b == b' ')?;
                (bytes.get(space + 1) == Some(&b'"')).then_some(space)?
            }
            _ => bytes.len(),
        };
        let size = &text[pos..size_end];
        if !digits_or_dash(status) || !digits_or_dash(size) {
            return None;
        }
        let mut ev = self.empty_event(line, ctx);
        if self.shape != Shape::Common {
            // `"%{Referer}i" "%{User-Agent}i"`: each up to the first quote, the referrer's
            // followed by ` "`, the user agent's ending the line.
            pos = size_end + 2;
            let quote = pos + memchr::memchr(b'"', &bytes[pos..])?;
            if bytes.get(quote + 1..quote + 3) != Some(b" \"") {
                return None;
            }
            let referrer = &text[pos..quote];
            pos = quote + 3;
            // A line cut inside its user agent has no closing quote: what was logged is kept.
            let end = match memchr::memchr(b'"', &bytes[pos..]) {
                Some(quote) if pos + quote + 1 == bytes.len() => pos + quote,
                Some(_) => return None,
                None => bytes.len(),
            };
            ev.http_referrer = dash_none(referrer).map(Cow::Borrowed);
            ev.user_agent = dash_none(&text[pos..end]).map(Cow::Borrowed);
        }
        if let Some(host) = dash_none(host) {
            let (addr, port) = address_and_port(host);
            if let Some(addr) = addr {
                ev.source_ip = Some(addr);
                ev.source_port = port;
            }
        }
        ev.user_name = dash_none(user).map(Cow::Borrowed);
        set_time(&mut ev, at);
        apply_request(request, true, &mut ev);
        ev.http_status = number(status).ok()?;
        ev.destination_bytes = number(size).ok()?;
        Some(ev)
    }

    /// The event of `line` before any field is applied: this template's dataset, the line, and
    /// `now` until a time field says otherwise.
    fn empty_event<'a>(&self, line: &'a str, ctx: &ParseContext) -> LineEvent<'a> {
        LineEvent {
            dataset: Cow::Borrowed(self.dataset),
            category: Category::Web,
            original: Cow::Borrowed(line),
            timestamp: ctx.now,
            ..LineEvent::default()
        }
    }

    /// [`Template::parse`] by the general search.
    pub(super) fn parse_general<'a>(&self, line: &'a str, ctx: &ParseContext) -> Result<LineEvent<'a>, ParseError> {
        let text = line.trim_end_matches(['\r', '\n']);
        let mut search = Search {
            line: text,
            spans: self.empty_spans(),
            budget: STEP_BUDGET,
            diagnose: false,
            furthest: (0, String::new()),
        };
        let matched = self.first_path(&mut search) || {
            // A field needs a longer candidate than its first plausible one: the full search,
            // from the start and with the whole budget.
            search.budget = STEP_BUDGET;
            self.matches(0, 0, &mut search)
        };
        if !matched {
            // Match again, noting where and why it failed this time.
            search.budget = STEP_BUDGET;
            search.diagnose = true;
            search.furthest = (0, String::from("the start of the line"));
            let matched = self.matches(0, 0, &mut search);
            debug_assert!(!matched, "the diagnosing pass matches like the first one");
            let (pos, expected) = search.furthest;
            return Err(ParseError::at(self.dataset, text, pos, expected));
        }
        let mut ev = self.empty_event(line, ctx);
        let mut body_bytes = None;
        let mut sent_bytes = None;
        // A line without a backslash has no escape to undo in any field: one search of the
        // line instead of one per quoted field.
        let plain = memchr::memchr(b'\\', text.as_bytes()).is_none();
        for ((field, directive), span) in self.field_items().zip(&search.spans) {
            if let Some(at) = span.time {
                set_time(&mut ev, at);
                continue;
            }
            // The span is a slice of `text`: its offset gives the error column.
            let offset = span.text.as_ptr() as usize - text.as_ptr() as usize;
            apply(field, span.text, plain, &mut ev, ctx, &mut body_bytes, &mut sent_bytes)
                .map_err(|what| ParseError::at(self.dataset, text, offset, format!("{what} for {directive}")))?;
        }
        ev.destination_bytes = sent_bytes.or(body_bytes);
        Ok(ev)
    }

    /// The first path [`Template::matches`] explores, walked in a loop: each field takes its
    /// first plausible candidate and the walk never goes back. Nearly every real line matches
    /// on that path; the depth-first search then finds the very same spans (it tries the
    /// same candidates in the same order and returns on the first full match), only through
    /// one recursive call per item. False when the path fails anywhere (the line may still
    /// match further on: the caller runs the full search), or when the steps run out.
    fn first_path(&self, search: &mut Search<'_>) -> bool {
        let line = search.line;
        let mut pos = 0;
        for (idx, item) in self.items.iter().enumerate() {
            let rest = &line[pos..];
            match item {
                Item::Literal(lit) => {
                    if has_prefix(rest.as_bytes(), lit.as_bytes()) {
                        pos += lit.len();
                    } else {
                        // The truncated last quoted field `matches` accepts.
                        return rest.is_empty() && idx + 1 == self.items.len() && idx > 0 && lit == "\"";
                    }
                }
                Item::Field(field, _) => {
                    let mut found = None;
                    for end in self.ends(idx, field, rest) {
                        if search.budget == 0 {
                            return false;
                        }
                        search.budget -= 1;
                        match field.plausible(&rest[..end]) {
                            Plausible::No => continue,
                            Plausible::Yes => found = Some((end, None)),
                            Plausible::Time(at) => found = Some((end, Some(at))),
                        }
                        break;
                    }
                    let Some((end, time)) = found else { return false };
                    search.spans[self.slots[idx]] = Span { text: &rest[..end], time };
                    pos += end;
                }
            }
        }
        pos == line.len()
    }

    /// Where field `idx` may end in `rest` (the line from the field's start): the
    /// candidates, shortest first.
    #[inline(always)]
    fn ends<'r>(&'r self, idx: usize, field: &Field, rest: &'r str) -> Ends<'r, impl Iterator<Item = usize> + 'r> {
        let quoted = idx > 0 && matches!(&self.items[idx - 1], Item::Literal(l) if l.ends_with('"'));
        match self.items.get(idx + 1) {
            None => Ends::One(Some(rest.len())),
            // Inside quotes Apache and Nginx escape `"`, so the field ends at the
            // first unescaped quote: no need (and no right) to look further.
            Some(Item::Literal(next)) if quoted && next.starts_with('"') => {
                let first = Occurrences::new(rest, "\"").next();
                let last_item = idx + 2 == self.items.len();
                Ends::One(match first {
                    Some(at) if has_prefix(&rest.as_bytes()[at..], next.as_bytes()) => Some(at),
                    None if last_item && next == "\"" => Some(rest.len()),
                    _ => None,
                })
            }
            // A token field's text is a few bytes (`-`, a status, an address): its literal is
            // looked for byte by byte, where a vector search costs more to set up.
            Some(Item::Literal(next)) if field.is_token() => Ends::Literal(Occurrences::near(rest, next)),
            Some(Item::Literal(next)) => Ends::Literal(Occurrences::new(rest, next)),
            Some(Item::Field(..)) if field.is_token() => {
                Ends::One(Some(memchr::memchr2(b' ', b'\t', rest.as_bytes()).unwrap_or(rest.len())))
            }
            // Two free-text fields side by side: try every split, shortest first.
            Some(Item::Field(..)) => Ends::Every(rest.char_indices().map(|(i, _)| i).chain(Some(rest.len()))),
        }
    }

    /// Tries to match items `idx..` at byte `pos`; on success `search.spans` holds each
    /// field's text.
    fn matches(&self, idx: usize, pos: usize, search: &mut Search<'_>) -> bool {
        let line = search.line;
        let rest = &line[pos..];
        let Some(item) = self.items.get(idx) else {
            if rest.is_empty() {
                return true;
            }
            search.note(pos, || "the end of the line".to_owned());
            return false;
        };
        match item {
            Item::Literal(lit) => {
                if has_prefix(rest.as_bytes(), lit.as_bytes()) {
                    self.matches(idx + 1, pos + lit.len(), search)
                } else if rest.is_empty() && idx + 1 == self.items.len() && idx > 0 && lit == "\"" {
                    // A line cut inside its last quoted field (a truncated user agent): keep
                    // what was logged rather than lose the request.
                    true
                } else {
                    search.note(pos, || format!("{lit:?}"));
                    false
                }
            }
            Item::Field(field, directive) => {
                for end in self.ends(idx, field, rest) {
                    if search.budget == 0 {
                        search.note(pos, || "a line this template can match without excessive backtracking".to_owned());
                        return false;
                    }
                    search.budget -= 1;
                    let candidate = &rest[..end];
                    let time = match field.plausible(candidate) {
                        Plausible::No => {
                            search.note(pos, || describe(field, directive));
                            continue;
                        }
                        Plausible::Yes => None,
                        Plausible::Time(at) => Some(at),
                    };
                    search.spans[self.slots[idx]] = Span { text: candidate, time };
                    if self.matches(idx + 1, pos + end, search) {
                        return true;
                    }
                }
                search.note(pos, || describe(field, directive));
                false
            }
        }
    }
}

/// Where a field may end: the candidates the matcher tries, shortest first.
enum Ends<'a, E> {
    /// At most one candidate.
    One(Option<usize>),
    /// Each occurrence of the literal that follows the field.
    Literal(Occurrences<'a>),
    /// Every character boundary.
    Every(E),
}

impl<E: Iterator<Item = usize>> Iterator for Ends<'_, E> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            Ends::One(at) => at.take(),
            Ends::Literal(occurrences) => occurrences.next(),
            Ends::Every(boundaries) => boundaries.next(),
        }
    }
}

/// Offsets in `haystack` where `needle` starts, skipping backslash escapes (`\"` inside a
/// quoted field is not the closing quote).
struct Occurrences<'a> {
    haystack: &'a str,
    needle: &'a [u8],
    /// Where the search resumes.
    i: usize,
    /// Search byte by byte rather than with `memchr` (the needle is expected close by).
    near: bool,
}

impl<'a> Occurrences<'a> {
    fn new(haystack: &'a str, needle: &'a str) -> Self {
        Occurrences { haystack, needle: needle.as_bytes(), i: 0, near: false }
    }

    /// The same occurrences, for a needle expected within a few bytes.
    fn near(haystack: &'a str, needle: &'a str) -> Self {
        Occurrences { near: true, ..Occurrences::new(haystack, needle) }
    }
}

impl Iterator for Occurrences<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let bytes = self.haystack.as_bytes();
        let Some(&first) = self.needle.first() else {
            // An empty literal matches at every character boundary outside an escape.
            while self.i <= bytes.len() {
                let at = self.i;
                if at < bytes.len() && bytes[at] == b'\\' {
                    self.i += 2;
                    continue;
                }
                self.i += 1;
                if self.haystack.is_char_boundary(at) {
                    return Some(at);
                }
            }
            return None;
        };
        while self.i < bytes.len() {
            // Jump straight to the next candidate: the literal's first byte, or an escape.
            let found = if self.near {
                bytes[self.i..].iter().position(|&b| b == first || b == b'\\')
            } else {
                memchr::memchr2(first, b'\\', &bytes[self.i..])
            };
            let at = self.i + found?;
            if bytes[at] == b'\\' && first != b'\\' {
                self.i = at + 2;
                continue;
            }
            self.i = at + 1;
            // `first` starts a UTF-8 character (the literal is a str), so `at` is a boundary.
            if has_prefix(&bytes[at..], self.needle) {
                return Some(at);
            }
        }
        None
    }
}

/// `haystack.starts_with(needle)` for the short literals of a template (a space, `" "`), byte
/// by byte: no `memcmp` call for two bytes, on the matcher's hottest test.
#[inline(always)]
fn has_prefix(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len() && haystack.iter().zip(needle).all(|(a, b)| a == b)
}

/// Whether `text` is `-` or decimal digits: what a numeric field may hold.
fn digits_or_dash(text: &str) -> bool {
    text == "-" || (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
}

fn describe(field: &Field, directive: &str) -> String {
    let what = match field {
        Field::Status => "an HTTP status code",
        Field::ClientPort | Field::ServerPort => "a port number",
        Field::BytesBody | Field::BytesSent | Field::BytesReceived => "a byte count or -",
        Field::DurationMicros | Field::DurationMillis | Field::DurationSeconds | Field::DurationSecondsFrac => {
            "a duration"
        }
        Field::TimeClfBracketed => "a time such as [10/Oct/2000:13:55:36 -0700]",
        Field::TimeClf => "a time such as 10/Oct/2000:13:55:36 -0700",
        Field::TimeIso8601 => "an ISO 8601 time",
        Field::TimeEpochSeconds | Field::TimeEpochMillis | Field::TimeEpochMicros => "a time since the epoch",
        Field::TimeStrftime(_) => "a time in the configured format",
        Field::ClientHost | Field::ServerIp => "an address",
        _ => "a value",
    };
    format!("{what} for {directive}")
}

fn number<T: std::str::FromStr>(text: &str) -> Result<Option<T>, &'static str> {
    match dash_none(text) {
        None => Ok(None),
        Some(t) => t.parse().map(Some).map_err(|_| "a number in range"),
    }
}

fn apply<'a>(
    field: &Field,
    text: &'a str,
    plain: bool,
    ev: &mut LineEvent<'a>,
    ctx: &ParseContext,
    body_bytes: &mut Option<u64>,
    sent_bytes: &mut Option<u64>,
) -> Result<(), &'static str> {
    // `plain`: the line has no backslash, so no field has an escape to undo.
    let unescape = |t: &'a str| if plain { Cow::Borrowed(t) } else { unescape(t) };
    match field {
        Field::ClientHost => {
            if let Some(t) = dash_none(text) {
                let (addr, port) = address_and_port(t);
                if let Some(addr) = addr {
                    ev.source_ip = Some(addr);
                    if port.is_some() {
                        ev.source_port = port;
                    }
                }
            }
        }
        Field::ClientPort => ev.source_port = number(text)?,
        Field::ServerPort => ev.destination_port = number(text)?,
        Field::ServerName => ev.observer_hostname = dash_none(text).map(Cow::Borrowed),
        Field::ServerIp => ev.destination_ip = dash_none(text).and_then(ip),
        Field::User => ev.user_name = dash_none(text).map(unescape),
        Field::Ignore | Field::IgnoreToken => {}
        Field::TimeClfBracketed => {
            set_time(ev, common::clf_time(&text[1..text.len() - 1]).map_err(|_| "a valid time")?.1)
        }
        Field::TimeClf => set_time(ev, common::clf_time(text).map_err(|_| "a valid time")?.1),
        Field::TimeIso8601 => set_time(ev, common::rfc3339(text).map_err(|_| "a valid time")?.1),
        Field::TimeEpochSeconds => {
            if let Some(t) = dash_none(text) {
                let secs: f64 = t.parse().map_err(|_| "seconds since the epoch")?;
                let ts = Timestamp::from_millisecond((secs * 1000.0).round() as i64).map_err(|_| "a time in range")?;
                set_time(ev, (ts, 0));
            }
        }
        Field::TimeEpochMillis | Field::TimeEpochMicros => {
            if let Some(v) = number::<i64>(text)? {
                let ts = if *field == Field::TimeEpochMillis {
                    Timestamp::from_millisecond(v)
                } else {
                    Timestamp::from_microsecond(v)
                };
                set_time(ev, (ts.map_err(|_| "a time in range")?, 0));
            }
        }
        Field::TimeStrftime(fmt) => {
            if dash_none(text).is_some() {
                let tm =
                    jiff::fmt::strtime::parse(fmt.as_bytes(), text).map_err(|_| "a time in the configured format")?;
                if let Ok(ts) = tm.to_timestamp() {
                    let off = tm.offset().map_or(0, |o| o.seconds());
                    set_time(ev, (ts, off));
                } else if let Ok(dt) = tm.to_datetime() {
                    // No offset in the format: Apache wrote the server's local time.
                    let zoned = dt.to_zoned_datetime(ctx.time_zone.clone()).map_err(|_| "a time in range")?;
                    set_time(ev, (zoned.timestamp(), zoned.offset().seconds()));
                }
                // A format with only part of a date (`%{%H}t`) adds nothing usable.
            }
        }
        Field::Request => apply_request(text, plain, ev),
        Field::Method => ev.http_method = dash_none(text).map(Cow::Borrowed),
        Field::Path => ev.url_path = dash_none(text).map(unescape),
        Field::PathWithQuery => {
            if let Some(t) = dash_none(text) {
                match unescape(t) {
                    Cow::Borrowed(t) => apply_target(t, ev, Cow::Borrowed),
                    Cow::Owned(t) => apply_target(&t, ev, |s| Cow::Owned(s.to_owned())),
                }
            }
        }
        Field::Query => {
            let q = text.strip_prefix('?').unwrap_or(text);
            ev.url_query = dash_none(q).map(unescape);
        }
        Field::Protocol => {
            ev.http_version = dash_none(text).map(|p| Cow::Borrowed(p.strip_prefix("HTTP/").unwrap_or(p)))
        }
        Field::Status => ev.http_status = number(text)?,
        Field::BytesBody => *body_bytes = number(text)?,
        Field::BytesSent => *sent_bytes = number(text)?,
        Field::BytesReceived => ev.source_bytes = number(text)?,
        Field::DurationMicros => ev.duration_ns = number::<u64>(text)?.map(|v| v.saturating_mul(1_000)),
        Field::DurationMillis => ev.duration_ns = number::<u64>(text)?.map(|v| v.saturating_mul(1_000_000)),
        Field::DurationSeconds => ev.duration_ns = number::<u64>(text)?.map(|v| v.saturating_mul(1_000_000_000)),
        Field::DurationSecondsFrac => {
            if let Some(t) = dash_none(text) {
                let secs: f64 = t.parse().map_err(|_| "a duration in seconds")?;
                ev.duration_ns = Some((secs * 1e9).round() as u64);
            }
        }
        Field::Referrer => ev.http_referrer = dash_none(text).map(unescape),
        Field::UserAgent => ev.user_agent = dash_none(text).map(unescape),
    }
    Ok(())
}

fn set_time(ev: &mut LineEvent<'_>, (ts, off): (Timestamp, i32)) {
    ev.timestamp = ts;
    ev.utc_offset_seconds = Some(off);
}

/// Splits a request line `METHOD target [PROTOCOL]` into the event's HTTP and URL fields.
///
/// Lines that are not requests (`-` for a 408, TLS bytes sent to a plain port, an empty
/// string) are kept as the original only: the status still says what happened.
fn apply_request<'a>(text: &'a str, plain: bool, ev: &mut LineEvent<'a>) {
    let Some(t) = dash_none(text) else { return };
    // The fields are slices of the request, borrowed from the line unless it had escapes.
    match if plain { Cow::Borrowed(t) } else { unescape(t) } {
        Cow::Borrowed(t) => apply_unescaped_request(t, ev, Cow::Borrowed),
        Cow::Owned(t) => apply_unescaped_request(&t, ev, |s| Cow::Owned(s.to_owned())),
    }
}

/// [`apply_request`] on the unescaped request `t`; `keep` makes an event field of a slice of it.
fn apply_unescaped_request<'t, 'a>(t: &'t str, ev: &mut LineEvent<'a>, keep: impl Fn(&'t str) -> Cow<'a, str>) {
    let Some(space) = memchr::memchr(b' ', t.as_bytes()) else { return };
    let (method, rest) = (&t[..space], &t[space + 1..]);
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_') {
        return;
    }
    ev.http_method = Some(keep(method));
    // The target may itself contain spaces (Apache logs the line as received), so the
    // protocol is the last word when it looks like one.
    let target = match memchr::memrchr(b' ', rest.as_bytes()).map(|at| (&rest[..at], &rest[at + 1..])) {
        Some((target, proto)) if proto.starts_with("HTTP/") => {
            ev.http_version = Some(keep(&proto["HTTP/".len()..]));
            target
        }
        _ => rest,
    };
    apply_target(target, ev, keep);
}

/// `url.path` and `url.query` from a request target: origin form (`/a?b`), absolute form
/// (`http://host/a?b`, proxies) or authority form (`host:443`, CONNECT).
fn apply_target<'t, 'a>(target: &'t str, ev: &mut LineEvent<'a>, keep: impl Fn(&'t str) -> Cow<'a, str>) {
    let (path, query) = match memchr::memchr(b'?', target.as_bytes()) {
        Some(at) => (&target[..at], Some(&target[at + 1..])),
        None => (target, None),
    };
    // Origin form, nearly every line: no scheme to look for.
    let absolute = if path.starts_with('/') { None } else { path.split_once("://") };
    let path = match absolute {
        Some((scheme, after))
            if scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.') =>
        {
            after.find('/').map_or("/", |i| &after[i..])
        }
        _ => path,
    };
    ev.url_path = (!path.is_empty()).then(|| keep(path));
    ev.url_query = query.map(keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(field: Field) -> Item {
        Item::Field(field, "%x".to_owned())
    }
    fn l(s: &str) -> Item {
        Item::Literal(s.to_owned())
    }

    fn ctx() -> ParseContext {
        crate::parse::test_context("UTC")
    }

    #[test]
    fn occurrences_skip_escaped_quotes() {
        let v: Vec<_> = Occurrences::new(r#"a\" b" c"#, "\" ").collect();
        assert_eq!(v, vec![5]);
        let v: Vec<_> = Occurrences::new("x y z", " ").collect();
        assert_eq!(v, vec![1, 3]);
    }

    proptest::proptest! {
        /// Searched byte by byte or with `memchr`: the same occurrences, escapes skipped alike.
        #[test]
        fn near_occurrences_are_the_occurrences(haystack in r#"[ a"\\é-]{0,30}"#, needle in r#"|[ "\\]|" "|\\ |é"#) {
            let far: Vec<_> = Occurrences::new(&haystack, &needle).collect();
            let near: Vec<_> = Occurrences::near(&haystack, &needle).collect();
            proptest::prop_assert_eq!(near, far);
        }
    }

    #[test]
    fn backtracks_past_spaces_inside_a_field() {
        // A forwarded-for list with spaces, followed by the client address.
        let t = Template::new(
            vec![f(Field::Ignore), l(" "), f(Field::ClientHost), l(" "), f(Field::Status)],
            "nginx.access",
        );
        let ev = t.parse("10.0.0.2, 10.0.0.1 192.0.2.7 200", &ctx()).unwrap();
        // Shortest first would give the ignored field "10.0.0.2,", but then "192.0.2.7 200"
        // is no status: the matcher backtracks until every field is plausible.
        assert_eq!(ev.source_ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(ev.http_status, Some(200));
    }

    #[test]
    fn error_names_the_directive_and_column() {
        let t = Template::new(
            vec![f(Field::ClientHost), l(" "), Item::Field(Field::Status, "%>s".to_owned())],
            "apache.access",
        );
        let err = t.parse("1.2.3.4 abc", &ctx()).unwrap_err();
        assert_eq!(err.column(), 9);
        assert_eq!(err.expected(), "an HTTP status code for %>s");
    }

    #[test]
    fn budget_stops_pathological_lines() {
        let items: Vec<Item> = (0..12).flat_map(|_| [f(Field::Ignore), l(" ")]).chain([f(Field::Status)]).collect();
        let t = Template::new(items, "apache.access");
        let line = "a ".repeat(40) + "x";
        let err = t.parse(&line, &ctx()).unwrap_err();
        assert!(!err.expected().is_empty());
    }

    /// Whether the first path and the full search match `line`; when both do, the fields'
    /// spans (offset, text, time) must be the same.
    fn both_walks(t: &Template, line: &str) -> (bool, bool) {
        let new_search = || Search {
            line,
            spans: t.empty_spans(),
            budget: STEP_BUDGET,
            diagnose: false,
            furthest: (0, String::new()),
        };
        let field_spans = |search: &Search<'_>| {
            search
                .spans
                .iter()
                .map(|s| (s.text.as_ptr() as usize - line.as_ptr() as usize, s.text.to_owned(), s.time))
                .collect::<Vec<_>>()
        };
        let mut first = new_search();
        let first_matched = t.first_path(&mut first);
        let mut full = new_search();
        let full_matched = t.matches(0, 0, &mut full);
        if first_matched && full_matched {
            assert_eq!(field_spans(&first), field_spans(&full), "{line:?}");
        }
        (first_matched, full_matched)
    }

    #[test]
    fn the_first_path_gives_up_where_the_search_backtracks() {
        let forwarded = Template::new(
            vec![f(Field::Ignore), l(" "), f(Field::ClientHost), l(" "), f(Field::Status)],
            "nginx.access",
        );
        assert_eq!(both_walks(&forwarded, "10.0.0.2, 10.0.0.1 192.0.2.7 200"), (false, true));
        assert_eq!(both_walks(&forwarded, "10.0.0.1 192.0.2.7 200"), (true, true));
        let combined = crate::parse::apache::compile(crate::parse::apache::COMBINED).unwrap();
        let line =
            r#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /a\"b HTTP/1.1" 200 203023 "-" "Mozilla/5.0 (X11)""#;
        assert_eq!(both_walks(&combined, line), (true, true));
        // A truncated user agent: accepted on the first path as by the search.
        assert_eq!(both_walks(&combined, &line[..line.len() - 3]), (true, true));
        assert_eq!(both_walks(&combined, "not a log line"), (false, false));
    }

    proptest::proptest! {
        /// Access lines whose fields hold spaces, quotes and backslashes: the first path
        /// matches only lines the full search matches, with the same spans (`both_walks`).
        #[test]
        fn the_first_path_is_the_searchs_first_match(
            host in r"(1\.2\.3\.4|::1|-|a b|1\.2\.3\.4:80)",
            user in r"(-|frank|a b|\\)",
            time in r"(\[10/Oct/2000:13:55:36 -0700\]|\[10/Oct/2000:13:55:36\]|\[x y\]|-)",
            request in r#"([A-Z /?=.]|HTTP/1\.[01]|\\"|\\\\|"|" ){0,8}"#,
            status in r"(200|-|2 0|x)",
            bytes in r"(2326|-| )",
            referrer in r#"([a-z :/]|\\"|"|" "|-){0,6}"#,
            agent in r#"([a-zA-Z (;)]|\\"|"|" ){0,8}"#,
            cut in 0usize..4,
            forwarded_list in r"(10\.0\.0\.[0-9](, | )){0,3}",
        ) {
            let line = format!(r#"{host} - {user} {time} "{request}" {status} {bytes} "{referrer}" "{agent}""#);
            let line = &line[..line.len() - cut.min(line.len())];
            let combined = crate::parse::apache::compile(crate::parse::apache::COMBINED).unwrap();
            let (first, full) = both_walks(&combined, line);
            proptest::prop_assert!(!first || full, "{:?}", line);
            let forwarded = Template::new(
                vec![f(Field::Ignore), l(" "), f(Field::ClientHost), l(" "), f(Field::Status), l(" \""), f(Field::UserAgent), l("\"")],
                "nginx.access",
            );
            let line = format!(r#"{forwarded_list}{host} {status} "{agent}""#);
            let (first, full) = both_walks(&forwarded, &line);
            proptest::prop_assert!(!first || full, "{:?}", line);
        }
    }

    #[test]
    fn request_forms() {
        let mut ev = LineEvent::default();
        apply_request("GET /a b?x=1 HTTP/1.1", true, &mut ev);
        assert_eq!(
            (ev.http_method.as_deref(), ev.url_path.as_deref(), ev.url_query.as_deref()),
            (Some("GET"), Some("/a b"), Some("x=1"))
        );
        assert_eq!(ev.http_version.as_deref(), Some("1.1"));
        let mut ev = LineEvent::default();
        apply_request("GET http://example.com/p?q HTTP/1.0", true, &mut ev);
        assert_eq!((ev.url_path.as_deref(), ev.url_query.as_deref()), (Some("/p"), Some("q")));
        let mut ev = LineEvent::default();
        apply_request(r"\x16\x03\x01", false, &mut ev);
        assert_eq!(ev.http_method, None);
        let mut ev = LineEvent::default();
        apply_request("GET /old", false, &mut ev);
        assert_eq!((ev.url_path.as_deref(), ev.http_version.as_deref()), (Some("/old"), None));
    }

    /// The templates of [`Shape::Common`], [`Shape::Combined`] and [`Shape::NginxCombined`],
    /// and one of the general shape.
    fn clf_templates() -> [Template; 4] {
        let common = crate::parse::apache::compile(crate::parse::apache::COMMON).unwrap();
        let combined = crate::parse::apache::compile(crate::parse::apache::COMBINED).unwrap();
        let nginx = crate::parse::nginx::compile(crate::parse::nginx::COMBINED).unwrap();
        let vhost = crate::parse::apache::compile(crate::parse::apache::VHOST_COMBINED).unwrap();
        [common, combined, nginx, vhost]
    }

    #[test]
    fn the_clf_presets_have_their_shape() {
        let [common, combined, nginx, vhost] = clf_templates();
        assert_eq!(
            (common.shape, combined.shape, nginx.shape, vhost.shape),
            (Shape::Common, Shape::Combined, Shape::NginxCombined, Shape::General)
        );
        // The same format written by hand (other header case) is recognised too.
        let custom =
            crate::parse::apache::compile(r#"%h %l %u %t "%r" %>s %b "%{referer}i" "%{user-agent}i""#).unwrap();
        assert_eq!(custom.shape, Shape::Combined);
        let with_duration = crate::parse::apache::compile(r#"%h %l %u %t "%r" %>s %b %D"#).unwrap();
        assert_eq!(with_duration.shape, Shape::General);
    }

    #[test]
    fn the_clf_pass_reads_ordinary_lines_and_leaves_the_odd_ones() {
        let [common, combined, nginx, _] = clf_templates();
        let line = r#"192.0.2.7 - jean.dupont [07/Apr/2025:14:30:00 +0200] "GET /blog/article/12?x=1 HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11)""#;
        let ev = combined.parse_clf(line, &ctx()).expect("an ordinary line takes the pass");
        assert_eq!(ev.source_ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(ev.user_name.as_deref(), Some("jean.dupont"));
        assert_eq!(ev.timestamp.to_string(), "2025-04-07T12:30:00Z");
        assert_eq!(ev.utc_offset_seconds, Some(7200));
        assert_eq!((ev.url_path.as_deref(), ev.url_query.as_deref()), (Some("/blog/article/12"), Some("x=1")));
        assert_eq!((ev.http_status, ev.destination_bytes), (Some(200), Some(512)));
        assert_eq!((ev.http_referrer.as_deref(), ev.user_agent.as_deref()), (None, Some("Mozilla/5.0 (X11)")));
        assert_eq!(Ok(ev.clone()), combined.parse_general(line, &ctx()));
        // Nginx's `combined` is the same line, with its own dataset.
        let from_nginx = nginx.parse_clf(line, &ctx()).expect("Nginx's combined takes the pass");
        assert_eq!(from_nginx, LineEvent { dataset: "nginx.access".into(), ..ev });
        assert_eq!(Ok(from_nginx), nginx.parse_general(line, &ctx()));
        let with_ident = line.replacen(" - ", " ident ", 1);
        assert_eq!(nginx.parse_clf(&with_ident, &ctx()), None);
        let common_line = r#"::1 - - [07/Apr/2025:14:30:00 +0200] "-" 408 -"#;
        let ev = common.parse_clf(common_line, &ctx()).expect("a 408 line takes the pass");
        assert_eq!((ev.http_method, ev.http_status, ev.destination_bytes), (None, Some(408), None));
        // A line cut inside its user agent keeps what was logged, as the general search does.
        let cut = r#"192.0.2.7 - - [07/Apr/2025:14:30:00 +0200] "GET / HTTP/1.1" 200 5 "-" "curl"#;
        let ev = combined.parse_clf(cut, &ctx()).expect("a truncated user agent takes the pass");
        assert_eq!(ev.user_agent.as_deref(), Some("curl"));
        assert_eq!(Ok(ev), combined.parse_general(cut, &ctx()));
        // Left to the general search: an escape, a status out of range, text after the user agent.
        for odd in [
            r#"192.0.2.7 - - [07/Apr/2025:14:30:00 +0200] "GET /\"x HTTP/1.1" 200 5 "-" "curl""#,
            r#"192.0.2.7 - - [07/Apr/2025:14:30:00 +0200] "GET / HTTP/1.1" 70000 5 "-" "curl""#,
            r#"192.0.2.7 - - [07/Apr/2025:14:30:00 +0200] "GET / HTTP/1.1" 200 5 "-" "curl" x"#,
        ] {
            assert_eq!(combined.parse_clf(odd, &ctx()), None, "{odd}");
        }
    }

    /// Lines of the CLF family built from pieces, many of them off the shape where the
    /// general search and a hand-written pass could disagree: blanks, quotes and brackets
    /// inside fields, escapes, truncations, out-of-range numbers, other time shapes.
    fn clf_like_line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        // Mostly ordinary pieces, so that many whole lines are ordinary too; now and then an
        // odd one or random printable text.
        let pick = |good: &'static [&'static str], odd: &'static [&'static str]| {
            prop_oneof![
                40 => proptest::sample::select(good).prop_map(str::to_owned),
                2 => proptest::sample::select(odd).prop_map(str::to_owned),
                1 => "[ -~\t]{0,6}",
            ]
        };
        let host = pick(
            &["83.149.9.216", "::1", "192.0.2.1:5050", "[2001:db8::1]:443", "www.example.fr", "-"],
            &["", "a\tb", "1.2.3.4 5", "999.1.1.1", "[::1", "é"],
        );
        let ident = pick(&["-", "x"], &["", "a b", "\"", "[x]"]);
        let user = pick(&["-", "frank", "é"], &["jean dupont", "[x]", "", "\"a\""]);
        let time = pick(
            &["[17/May/2015:10:05:03 +0000]", "[10/Oct/2000:13:55:36 -0700]", "[29/Feb/2024:23:59:59 +1400]"],
            &[
                "[10/Oct/2000:13:55:36 +02:00]",
                "[1/Oct/2000:13:55:36 -0700]",
                "[10/Oct/2000:13:55:36 -0700",
                "[31/Feb/2000:13:55:36 -0700]",
                "[10/oct/2000:13:55:36 -0700]",
                "[10/Oct/2000:13:55:36 -0700] \"",
                "[31/Dec/9999:23:59:59 -2559]",
            ],
        );
        let request = pick(
            &[
                "\"GET / HTTP/1.1\"",
                "\"-\"",
                "\"GET /a b?c=d HTTP/1.0\"",
                "\"POST http://h/p?q HTTP/2.0\"",
                "\"CONNECT host:443 HTTP/1.1\"",
                "\"GET /old\"",
            ],
            &["\"\"", "\"GET /\\\"x HTTP/1.1\"", "\"GET /a\" b HTTP/1.1\"", "\"\\x16\\x03\"", "\"GET /\tx\""],
        );
        let status = pick(&["200", "404", "-"], &["99999", "abc", "2 00", "", "65536"]);
        let size = pick(&["1234", "-", "0"], &["", "99999999999999999999999", "12a", "0 \"", "+5"]);
        let referrer = pick(&["\"-\"", "\"http://x/\""], &["\"a\" \"b\"", "\"\"", "\"a\\\"b\"", "\"a\"b\""]);
        let agent = pick(&["\"Mozilla/5.0 (X)\"", "\"-\""], &["\"a\"b\"", "\"trunc", "\"x\" extra", "\"\"", "\"\t\""]);
        let blank = pick(&[" "], &["  ", "\t", ""]);
        let end = pick(&["", "\r"], &["\n", " ", "\r\n"]);
        ((host, ident, user, time, request), (status, size, referrer, agent), proptest::collection::vec(blank, 8), end)
            .prop_map(|((host, ident, user, time, request), (status, size, referrer, agent), b, end)| {
                format!(
                    "{host}{}{ident}{}{user}{}{time}{}{request}{}{status}{}{size}{}{referrer}{}{agent}{end}",
                    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
                )
            })
    }

    /// Whenever the dedicated pass reads a line, the general search builds the very same
    /// event from it; on the others [`Template::parse`] is the general search. The lines are
    /// drawn with a fixed seed, and the test also checks that the pass both took and left
    /// many of them, so that the comparison is not vacuous.
    #[test]
    fn the_clf_pass_builds_what_the_general_search_builds() {
        use proptest::strategy::{Strategy, ValueTree};
        use proptest::test_runner::{Config, TestRng, TestRunner};
        let [common, combined, nginx, _] = clf_templates();
        let mut runner =
            TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(Config::default().rng_algorithm));
        let lines = clf_like_line();
        let (mut taken, mut left) = (0, 0);
        for _ in 0..20_000 {
            let line = lines.new_tree(&mut runner).unwrap().current();
            // Also every prefix cut at a quote or a blank, which makes `common` lines of
            // `combined` ones and truncates fields.
            let cuts = line.match_indices(['"', ' ']).map(|(at, _)| at).chain([line.len()]);
            for text in cuts.map(|at| &line[..at]) {
                for template in [&common, &combined, &nginx] {
                    match template.parse_clf(text, &ctx()) {
                        Some(ev) => {
                            taken += 1;
                            assert_eq!(Ok(ev), template.parse_general(text, &ctx()), "{text:?}");
                        }
                        None => left += 1,
                    }
                }
            }
        }
        assert!(taken > 5_000 && left > 5_000, "{taken} lines taken, {left} left");
    }
}
