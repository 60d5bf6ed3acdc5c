//! The two exposition formats of `/metrics`, chosen by the client's `Accept` header, as the
//! official Prometheus client libraries do.
//!
//! `prometheus-client` encodes OpenMetrics only. A counter family there is named without its
//! `_total` suffix (`# HELP vigie_alerts_fired …`, sample `vigie_alerts_fired_total 3`) and the
//! page ends with `# EOF`. Prometheus asks for OpenMetrics and reads it; but a client that asks
//! for nothing in particular (curl, `promtool check metrics`, older scrapers) expects the classic
//! text format 0.0.4, where the HELP and TYPE lines name the sample itself — read as 0.0.4, every
//! OpenMetrics counter is an untyped metric without HELP. [`text_format`] rewrites the one
//! encoding into the other.

/// The content type of each format.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub(crate) const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether the client prefers OpenMetrics: it lists `application/openmetrics-text` with a quality
/// at least that of any other type it accepts. No header, `*/*` or `text/plain` get the text format.
pub(crate) fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let mut openmetrics: Option<f32> = None;
    let mut others: f32 = 0.0;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .and_then(|(_, v)| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if media == "application/openmetrics-text" {
            openmetrics = Some(openmetrics.map_or(q, |best| best.max(q)));
        } else if !media.is_empty() {
            others = others.max(q);
        }
    }
    openmetrics.is_some_and(|q| q > 0.0 && q >= others)
}

/// Rewrites an OpenMetrics page (as `prometheus-client` encodes it) into the text format 0.0.4:
/// counter families take their samples' `_total` name, info families become gauges named
/// `…_info`, `unknown` becomes `untyped`; `# UNIT`, `# EOF`, `_created` samples and exemplars
/// (which 0.0.4 cannot carry) are dropped, and timestamps go from seconds to milliseconds.
pub(crate) fn text_format(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The family being copied: its OpenMetrics name and type.
    let mut family = String::new();
    let mut kind = String::new();
    // prometheus-client writes HELP before TYPE: a HELP line waits for its family's TYPE, which
    // gives its 0.0.4 name.
    let mut help: Option<(String, String)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (keyword, name, tail) = (words.next().unwrap_or(""), words.next().unwrap_or(""), words.next());
            match keyword {
                "HELP" => {
                    flush_help(&mut out, help.take(), None);
                    // 0.0.4 escapes only `\` and newlines in HELP; OpenMetrics also escapes `"`.
                    help = Some((name.to_owned(), tail.unwrap_or("").replace("\\\"", "\"")));
                }
                "TYPE" => {
                    family = name.to_owned();
                    kind = tail.unwrap_or("unknown").trim().to_owned();
                    let (renamed, text_kind) = text_family(&family, &kind);
                    match help.take() {
                        Some((n, text)) if n == family => flush_help(&mut out, Some((n, text)), Some(&renamed)),
                        other => flush_help(&mut out, other, None),
                    }
                    out.push_str(&format!("# TYPE {renamed} {text_kind}\n"));
                }
                // UNIT and EOF have no 0.0.4 form; the unit is already in the name.
                _ => {}
            }
            continue;
        }
        flush_help(&mut out, help.take(), None);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, labels, rest)) = split_sample(line) else {
            // Not a sample prometheus-client writes; keep it rather than hide it.
            out.push_str(line);
            out.push('\n');
            continue;
        };
        if kind == "counter" && name == format!("{family}_created") {
            continue;
        }
        // Drop an exemplar (` # {…} value [timestamp]`) after the value.
        let rest = rest.split(" # ").next().unwrap_or(rest).trim();
        let mut fields = rest.split_whitespace();
        let value = fields.next().unwrap_or("");
        out.push_str(name);
        out.push_str(labels);
        out.push(' ');
        out.push_str(value);
        if let Some(ts) = fields.next().and_then(|t| t.parse::<f64>().ok()) {
            out.push_str(&format!(" {}", (ts * 1000.0).round() as i64));
        }
        out.push('\n');
    }
    flush_help(&mut out, help, None);
    out
}

/// The 0.0.4 name and type of an OpenMetrics family.
fn text_family(name: &str, kind: &str) -> (String, &'static str) {
    match kind {
        "counter" => (format!("{name}_total"), "counter"),
        "gauge" => (name.to_owned(), "gauge"),
        "histogram" => (name.to_owned(), "histogram"),
        "summary" => (name.to_owned(), "summary"),
        "info" => (format!("{name}_info"), "gauge"),
        _ => (name.to_owned(), "untyped"),
    }
}

/// Writes a waiting HELP line, under its family's 0.0.4 name when known.
fn flush_help(out: &mut String, help: Option<(String, String)>, renamed: Option<&str>) {
    if let Some((name, text)) = help {
        out.push_str(&format!("# HELP {} {text}\n", renamed.unwrap_or(&name)));
    }
}

/// Splits `name{labels} rest` (labels may be absent; quoted values may hold any character).
fn split_sample(line: &str) -> Option<(&str, &str, &str)> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    if !line[name_end..].starts_with('{') {
        return Some((name, "", &line[name_end..]));
    }
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line[name_end..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => {
                let end = name_end + i + 1;
                return Some((name, &line[name_end..end], &line[end..]));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_gets_openmetrics_and_plain_clients_get_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;\
                          q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some("text/plain, application/openmetrics-text;q=0.5")));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
    }

    #[test]
    fn counters_take_their_total_name_and_openmetrics_only_lines_go() {
        let om = "# HELP vigie_alerts_fired Alerts that started \\\"firing\\\".\n\
                  # TYPE vigie_alerts_fired counter\n\
                  vigie_alerts_fired_total{rule=\"a}b # c\"} 3 # {trace_id=\"x\"} 1.0 1700000000.5\n\
                  vigie_alerts_fired_created 1700000000.0\n\
                  # HELP vigie_lag_seconds Lag.\n\
                  # TYPE vigie_lag_seconds gauge\n\
                  # UNIT vigie_lag_seconds seconds\n\
                  vigie_lag_seconds 2 1700000000.25\n\
                  # HELP vigie_build Build.\n\
                  # TYPE vigie_build info\n\
                  vigie_build_info{version=\"1\"} 1\n\
                  # EOF\n";
        assert_eq!(
            text_format(om),
            "# HELP vigie_alerts_fired_total Alerts that started \"firing\".\n\
             # TYPE vigie_alerts_fired_total counter\n\
             vigie_alerts_fired_total{rule=\"a}b # c\"} 3\n\
             # HELP vigie_lag_seconds Lag.\n\
             # TYPE vigie_lag_seconds gauge\n\
             vigie_lag_seconds 2 1700000000250\n\
             # HELP vigie_build_info Build.\n\
             # TYPE vigie_build_info gauge\n\
             vigie_build_info{version=\"1\"} 1\n"
        );
    }
}
