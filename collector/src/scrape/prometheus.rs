//! Parser for the Prometheus text exposition format (version 0.0.4), also reading the OpenMetrics
//! additions a Prometheus server accepts in it (exemplars, `# EOF`, timestamps in seconds).
//!
//! Specification: <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>
//! and <https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md>.

use std::collections::{BTreeMap, BTreeSet};

use super::Sample;

/// The type a `# TYPE` line gives a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// Everything a page of Prometheus text said: the samples in order, and the declared types and help.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, MetricType>,
    pub help: BTreeMap<String, String>,
}

/// A line that does not follow the format; `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PromParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole page. The first malformed line stops the parse: a half-read page would give
/// dashboards silently missing series.
pub fn parse_prometheus_text(text: &str) -> Result<Exposition, PromParseError> {
    let mut parser = PageParser::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        parser.line(line).map_err(|message| PromParseError { line: i + 1, message })?;
    }
    Ok(parser.out)
}

#[derive(Default)]
struct PageParser {
    out: Exposition,
    /// Families that already have samples: a `# TYPE` for them must come first.
    families_with_samples: BTreeSet<String>,
}

impl PageParser {
    fn line(&mut self, line: &str) -> Result<(), String> {
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            return Ok(());
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            return self.comment(comment);
        }
        let sample = parse_sample(trimmed)?;
        let family = self.family_of(&sample.name);
        match self.out.types.get(family) {
            Some(MetricType::Histogram) if sample.name.ends_with("_bucket") => {
                let le = label(&sample, "le").ok_or("histogram bucket without an `le` label")?;
                parse_value(le).map_err(|_| format!("invalid `le` label value `{le}`"))?;
            }
            Some(MetricType::Summary) if sample.name == family => {
                let q = label(&sample, "quantile").ok_or("summary sample without a `quantile` label")?;
                parse_value(q).map_err(|_| format!("invalid `quantile` label value `{q}`"))?;
            }
            _ => {}
        }
        let family = family.to_owned();
        self.families_with_samples.insert(family);
        self.out.samples.push(sample);
        Ok(())
    }

    /// The family a sample belongs to: `x_bucket`, `x_sum`, `x_count` belong to histogram/summary `x`.
    fn family_of<'n>(&self, name: &'n str) -> &'n str {
        if self.out.types.contains_key(name) {
            return name;
        }
        for suffix in ["_bucket", "_sum", "_count", "_total", "_created", "_gsum", "_gcount"] {
            if let Some(base) = name.strip_suffix(suffix) {
                let fits = match self.out.types.get(base) {
                    Some(MetricType::Histogram) => suffix != "_total",
                    Some(MetricType::Summary) => matches!(suffix, "_sum" | "_count" | "_created"),
                    // OpenMetrics counters are declared without `_total`.
                    Some(MetricType::Counter) => matches!(suffix, "_total" | "_created"),
                    _ => false,
                };
                if fits {
                    return base;
                }
            }
        }
        name
    }

    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let rest = comment.trim_start_matches([' ', '\t']);
        let (keyword, rest) = split_token(rest);
        match keyword {
            "HELP" => {
                let (name, text) = split_token(rest);
                check_metric_name(name)?;
                let text = unescape_help(text)?;
                if self.out.help.insert(name.to_owned(), text).is_some() {
                    return Err(format!("second HELP line for metric `{name}`"));
                }
            }
            "TYPE" => {
                let (name, kind) = split_token(rest);
                check_metric_name(name)?;
                let kind = match kind.trim_end() {
                    "counter" => MetricType::Counter,
                    "gauge" | "info" | "stateset" => MetricType::Gauge,
                    "histogram" | "gaugehistogram" => MetricType::Histogram,
                    "summary" => MetricType::Summary,
                    "untyped" | "unknown" => MetricType::Untyped,
                    other => return Err(format!("unknown metric type `{other}` for `{name}`")),
                };
                if self.families_with_samples.contains(name) {
                    return Err(format!("TYPE line for `{name}` after its samples; it must come first"));
                }
                if self.out.types.insert(name.to_owned(), kind).is_some() {
                    return Err(format!("second TYPE line for metric `{name}`"));
                }
            }
            // Any other comment, including OpenMetrics' `# EOF` and `# UNIT`, carries nothing we keep.
            _ => {}
        }
        Ok(())
    }
}

fn label<'s>(sample: &'s Sample, name: &str) -> Option<&'s str> {
    sample.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Splits off the first whitespace-separated token; the rest has its leading blanks removed.
fn split_token(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], s[i..].trim_start_matches([' ', '\t'])),
        None => (s, ""),
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit()
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => Err("missing metric name".to_owned()),
        Some(c) if is_name_start(c) && chars.all(is_name_char) => Ok(()),
        Some(_) => Err(format!("invalid metric name `{name}`")),
    }
}

fn unescape_help(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(other) => return Err(format!("invalid escape `\\{other}` in HELP text")),
            None => return Err("HELP text ends with a lone `\\`".to_owned()),
        }
    }
    Ok(out)
}

/// A cursor over one sample line.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Skips blanks; says whether there were any.
    fn blanks(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.bump();
        }
        &self.s[start..self.pos]
    }

    fn token(&mut self) -> &'a str {
        self.take_while(|c| c != ' ' && c != '\t')
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn expect(&mut self, want: char) -> Result<(), String> {
        match self.bump() {
            Some(c) if c == want => Ok(()),
            Some(c) => Err(format!("expected `{want}`, found `{c}` at column {}", self.pos)),
            None => Err(format!("expected `{want}`, found end of line")),
        }
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let mut cur = Cursor { s: line, pos: 0 };
    let name = cur.take_while(is_name_char);
    if name.is_empty() {
        return Err(format!("expected a metric name, found `{}`", cur.peek().unwrap_or(' ')));
    }
    check_metric_name(name)?;
    let blank_before = cur.blanks();
    let has_labels = cur.peek() == Some('{');
    let labels = if has_labels { parse_labels(&mut cur)? } else { Vec::new() };
    let blank_after = cur.blanks();
    if cur.at_end() {
        return Err(format!("missing value for `{name}`"));
    }
    if !has_labels && !blank_before && !blank_after {
        return Err(format!("expected a space after metric name `{name}`"));
    }
    let value_token = cur.token();
    let value = parse_value(value_token).map_err(|_| format!("invalid value `{value_token}`"))?;
    let mut sample = Sample { name: name.to_owned(), labels, value, timestamp_ms: None };
    cur.blanks();
    if cur.at_end() {
        return Ok(sample);
    }
    if cur.peek() != Some('#') {
        let ts = cur.token();
        sample.timestamp_ms = Some(parse_timestamp(ts)?);
        cur.blanks();
        if cur.at_end() {
            return Ok(sample);
        }
    }
    skip_exemplar(&mut cur)?;
    Ok(sample)
}

/// `{name="value",...}` with optional spaces and an optional trailing comma.
fn parse_labels(cur: &mut Cursor<'_>) -> Result<Vec<(String, String)>, String> {
    cur.expect('{')?;
    let mut labels: Vec<(String, String)> = Vec::new();
    loop {
        cur.blanks();
        if cur.peek() == Some('}') {
            cur.bump();
            return Ok(labels);
        }
        let name = cur.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("invalid label name at column {}", cur.pos + 1));
        }
        cur.blanks();
        cur.expect('=')?;
        cur.blanks();
        cur.expect('"')?;
        let mut value = String::new();
        loop {
            match cur.bump() {
                None => return Err(format!("unterminated value of label `{name}`")),
                Some('"') => break,
                Some('\\') => match cur.bump() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    Some(c) => return Err(format!("invalid escape `\\{c}` in value of label `{name}`")),
                    None => return Err(format!("unterminated value of label `{name}`")),
                },
                Some(c) => value.push(c),
            }
        }
        if labels.iter().any(|(k, _)| k == name) {
            return Err(format!("duplicate label `{name}`"));
        }
        labels.push((name.to_owned(), value));
        cur.blanks();
        match cur.bump() {
            Some(',') => {}
            Some('}') => return Ok(labels),
            Some(c) => return Err(format!("expected `,` or `}}` after label `{name}`, found `{c}`")),
            None => return Err("unterminated label set".to_owned()),
        }
    }
}

/// Values are Go floats: decimal or exponent notation, `NaN`, `+Inf`, `-Inf`.
pub(crate) fn parse_value(token: &str) -> Result<f64, std::num::ParseFloatError> {
    match token {
        "NaN" | "nan" => Ok(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        _ => token.parse::<f64>(),
    }
}

/// Milliseconds in the Prometheus format; OpenMetrics writes seconds with a fraction instead.
fn parse_timestamp(token: &str) -> Result<i64, String> {
    if let Ok(ms) = token.parse::<i64>() {
        return Ok(ms);
    }
    match token.parse::<f64>() {
        Ok(secs) if secs.is_finite() && token.contains(['.', 'e', 'E']) => Ok((secs * 1000.0).round() as i64),
        _ => Err(format!("invalid timestamp `{token}`")),
    }
}

/// OpenMetrics exemplar: `# {trace_id="…"} 0.67 [timestamp]`. Checked for shape, then dropped:
/// nothing downstream stores trace references.
fn skip_exemplar(cur: &mut Cursor<'_>) -> Result<(), String> {
    let rest = &cur.s[cur.pos..];
    let unexpected = || format!("unexpected text `{rest}` after the sample; an exemplar starts with `# {{`");
    if cur.bump() != Some('#') {
        return Err(unexpected());
    }
    cur.blanks();
    if cur.peek() != Some('{') {
        return Err(unexpected());
    }
    parse_labels(cur)?;
    cur.blanks();
    let value = cur.token();
    parse_value(value).map_err(|_| format!("invalid exemplar value `{value}`"))?;
    cur.blanks();
    if !cur.at_end() {
        let ts = cur.token();
        ts.parse::<f64>().map_err(|_| format!("invalid exemplar timestamp `{ts}`"))?;
    }
    cur.blanks();
    if cur.at_end() { Ok(()) } else { Err("unexpected text after the exemplar".to_owned()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = r#"# A comment that is neither HELP nor TYPE.
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values: backslash, double-quote, and line feed.
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# HELP temperature_celsius Help with \\ backslash and \n newline.
# TYPE temperature_celsius gauge
temperature_celsius{room="a"} -Inf
temperature_celsius{room="b"} NaN
temperature_celsius { room = "c" , } -1.5e-3

# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444 # {trace_id="KOO5S4vxi0o"} 0.067 1520879607.789
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
# TYPE queue_depth untyped
queue_depth{queue="mail",  } 7
# TYPE om_events counter
om_events_total 5 1520879607.789
# EOF
"#;

    fn s(name: &str, labels: &[(&str, &str)], value: f64, ts: Option<i64>) -> Sample {
        Sample {
            name: name.to_owned(),
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            value,
            timestamp_ms: ts,
        }
    }

    #[test]
    fn parses_every_type_and_edge_case() {
        let e = parse_prometheus_text(FIXTURE).unwrap();
        let expected = vec![
            s("http_requests_total", &[("method", "post"), ("code", "200")], 1027.0, Some(1_395_066_363_000)),
            s("http_requests_total", &[("method", "post"), ("code", "400")], 3.0, Some(1_395_066_363_000)),
            s(
                "msdos_file_access_time_seconds",
                &[("path", r"C:\DIR\FILE.TXT"), ("error", "Cannot find file:\n\"FILE.TXT\"")],
                1.458255915e9,
                None,
            ),
            s("metric_without_timestamp_and_labels", &[], 12.47, None),
            s("something_weird", &[("problem", "division by zero")], f64::INFINITY, Some(-3_982_045)),
            s("temperature_celsius", &[("room", "a")], f64::NEG_INFINITY, None),
            // NaN != NaN: compared separately below.
            s("temperature_celsius", &[("room", "b")], 0.0, None),
            s("temperature_celsius", &[("room", "c")], -1.5e-3, None),
            s("http_request_duration_seconds_bucket", &[("le", "0.05")], 24054.0, None),
            s("http_request_duration_seconds_bucket", &[("le", "0.1")], 33444.0, None),
            s("http_request_duration_seconds_bucket", &[("le", "+Inf")], 144_320.0, None),
            s("http_request_duration_seconds_sum", &[], 53423.0, None),
            s("http_request_duration_seconds_count", &[], 144_320.0, None),
            s("rpc_duration_seconds", &[("quantile", "0.01")], 3102.0, None),
            s("rpc_duration_seconds", &[("quantile", "0.99")], 76656.0, None),
            s("rpc_duration_seconds_sum", &[], 1.7560473e7, None),
            s("rpc_duration_seconds_count", &[], 2693.0, None),
            s("queue_depth", &[("queue", "mail")], 7.0, None),
            s("om_events_total", &[], 5.0, Some(1_520_879_607_789)),
        ];
        assert_eq!(e.samples.len(), expected.len());
        for (got, want) in e.samples.iter().zip(&expected) {
            if want.name == "temperature_celsius" && want.labels[0].1 == "b" {
                assert!(got.value.is_nan(), "{got:?}");
                assert_eq!((&got.name, &got.labels), (&want.name, &want.labels));
            } else {
                assert_eq!(got, want);
            }
        }
        assert_eq!(e.types["http_requests_total"], MetricType::Counter);
        assert_eq!(e.types["temperature_celsius"], MetricType::Gauge);
        assert_eq!(e.types["http_request_duration_seconds"], MetricType::Histogram);
        assert_eq!(e.types["rpc_duration_seconds"], MetricType::Summary);
        assert_eq!(e.types["queue_depth"], MetricType::Untyped);
        assert_eq!(e.help["temperature_celsius"], "Help with \\ backslash and \n newline.");
        assert_eq!(e.help["http_requests_total"], "The total number of HTTP requests.");
    }

    #[test]
    fn accepts_crlf_and_empty_input() {
        let e = parse_prometheus_text("a 1\r\nb{x=\"y\"} 2\r\n").unwrap();
        assert_eq!(e.samples, vec![s("a", &[], 1.0, None), s("b", &[("x", "y")], 2.0, None)]);
        assert!(parse_prometheus_text("").unwrap().samples.is_empty());
    }

    fn check_error(text: &str, line: usize, needle: &str) {
        let err = parse_prometheus_text(text).unwrap_err();
        assert_eq!(err.line, line, "{text:?}: {err}");
        assert!(err.to_string().contains(needle), "{text:?}: {err}");
        assert!(err.to_string().starts_with(&format!("line {line}: ")), "{err}");
    }

    #[test]
    fn malformed_lines_name_their_line() {
        check_error("ok 1\n9bad 1\n", 2, "invalid metric name `9bad`");
        check_error("{a=\"b\"} 1\n", 1, "expected a metric name");
        check_error("ok 1\nno_value\n", 2, "missing value");
        check_error("x abc\n", 1, "invalid value `abc`");
        check_error("x{a=\"b\"}\n", 1, "missing value");
        check_error("x-1\n", 1, "expected a space after metric name `x`");
        check_error("x{a=\"1\" 2\n", 1, "expected `,` or `}`");
        check_error("x{a=\"1} 2\n", 1, "unterminated value");
        check_error("x{a=\"\\t\"} 2\n", 1, "invalid escape");
        check_error("x{a=\"1\",a=\"2\"} 2\n", 1, "duplicate label `a`");
        check_error("x{1a=\"1\"} 2\n", 1, "invalid label name");
        check_error("x{a=1} 2\n", 1, "expected `\"`");
        check_error("x 1 notatime\n", 1, "invalid timestamp");
        check_error("x 1 2 garbage\n", 1, "exemplar starts with `# {`");
        check_error("x 1 # {a=\"b\"} nope\n", 1, "invalid exemplar value");
        check_error("\n\n# TYPE x sometype\n", 3, "unknown metric type `sometype`");
        check_error("# TYPE x gauge\n# TYPE x gauge\n", 2, "second TYPE");
        check_error("# HELP x a\n# HELP x b\n", 2, "second HELP");
        check_error("x 1\n# TYPE x gauge\n", 2, "after its samples");
        check_error("# TYPE h histogram\nh_bucket 1\n", 2, "without an `le` label");
        check_error("# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", 2, "invalid `le`");
        check_error("# TYPE q summary\nq 1\n", 2, "without a `quantile` label");
        check_error("# HELP x bad \\q escape\n", 1, "invalid escape");
        check_error("# TYPE 1x gauge\n", 1, "invalid metric name");
    }
}
