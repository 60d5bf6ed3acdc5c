//! Charts drawn on the server as SVG: readable without JavaScript, no third-party code, colours
//! from the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies),
//! and every chart labelled for screen readers.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use maud::{Markup, html};

/// Blue, for the main series.
pub(crate) const BLUE: &str = "#0072B2";
/// Vermillion, for breaches and critical.
pub(crate) const RED: &str = "#D55E00";
/// Bluish green, for "up".
pub(crate) const GREEN: &str = "#009E73";
/// Orange, for warnings.
pub(crate) const ORANGE: &str = "#E69F00";
/// Grey, for information and axes.
pub(crate) const GREY: &str = "#6b6b6b";

/// A number as French readers write it: `12 345`, `98,7`.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let (int, frac) = if (v - v.round()).abs() < 1e-9 || v.abs() >= 100.0 {
        (format!("{:.0}", v.abs()), String::new())
    } else {
        let s = format!("{:.1}", v.abs());
        let (i, f) = s.split_once('.').unwrap_or((&s, ""));
        (i.to_owned(), format!(",{f}"))
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push('\u{202f}');
        }
        grouped.push(c);
    }
    format!("{}{grouped}{frac}", if v < 0.0 { "-" } else { "" })
}

/// Horizontal bars with their label and value: one row each.
pub(crate) fn bars(label: &str, rows: &[(String, f64, &'static str)], unit: &str) -> Markup {
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max).max(1.0);
    let row_h = 24.0;
    let height = row_h * rows.len() as f64 + 8.0;
    let (label_w, bar_w) = (260.0, 420.0);
    html! {
        svg.chart role="img" aria-label=(label) viewBox={"0 0 " (label_w + bar_w + 110.0) " " (height)} width="100%" {
            title { (label) }
            @for (i, (name, value, color)) in rows.iter().enumerate() {
                @let y = 4.0 + i as f64 * row_h;
                text x=(label_w - 8.0) y=(y + 16.0) text-anchor="end" font-size="13" fill="#1b1b1b" { (truncate(name, 38)) }
                rect x=(label_w) y=(y + 3.0) width=(((value / max) * bar_w).max(1.0)) height=(row_h - 8.0) fill=(color) rx="2" {}
                text x=(label_w + ((value / max) * bar_w).max(1.0) + 6.0) y=(y + 16.0) font-size="13" fill="#1b1b1b" { (num(*value)) " " (unit) }
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

/// Vertical columns, one per labelled point (days of a month…).
pub(crate) fn columns(label: &str, points: &[(String, f64)], unit: &str) -> Markup {
    let (w, h, left, bottom) = (760.0, 220.0, 56.0, 36.0);
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max).max(1.0);
    let n = points.len().max(1) as f64;
    let step = (w - left - 8.0) / n;
    let plot_h = h - bottom - 10.0;
    html! {
        svg.chart role="img" aria-label=(label) viewBox={"0 0 " (w) " " (h)} width="100%" {
            title { (label) }
            line x1=(left) y1=(h - bottom) x2=(w - 4.0) y2=(h - bottom) stroke=(GREY) {}
            text x=(left - 6.0) y="18" text-anchor="end" font-size="11" fill=(GREY) { (num(max)) }
            text x=(left - 6.0) y=(h - bottom) text-anchor="end" font-size="11" fill=(GREY) { "0" }
            text x="4" y="12" font-size="11" fill=(GREY) { (unit) }
            @for (i, (name, value)) in points.iter().enumerate() {
                @let bh = (value / max) * plot_h;
                @let x = left + i as f64 * step;
                rect x=(x + step * 0.15) y=(h - bottom - bh) width=(step * 0.7) height=(bh.max(0.5)) fill=(BLUE) {
                    title { (name) " : " (num(*value)) " " (unit) }
                }
                @if points.len() <= 12 || i % (points.len() / 10).max(1) == 0 {
                    text x=(x + step / 2.0) y=(h - bottom + 16.0) text-anchor="middle" font-size="11" fill="#1b1b1b" { (name) }
                }
            }
        }
    }
}

/// A time series between `from` and `to`, with an optional dashed forecast and threshold line.
#[allow(clippy::too_many_arguments)]
pub(crate) fn line(
    label: &str,
    points: &[(Timestamp, f64)],
    forecast: &[(Timestamp, f64)],
    threshold: Option<(f64, &str)>,
    from: Timestamp,
    to: Timestamp,
    unit: &str,
    tz: &TimeZone,
) -> Markup {
    let (w, h, left, bottom) = (760.0, 220.0, 56.0, 30.0);
    let end = forecast.last().map_or(to, |p| p.0.max(to));
    let span = (end.as_second() - from.as_second()).max(1) as f64;
    let max =
        points.iter().chain(forecast).map(|p| p.1).chain(threshold.map(|t| t.0)).fold(0.0_f64, f64::max).max(1.0) * 1.1;
    let x = |t: Timestamp| left + (t.as_second() - from.as_second()) as f64 / span * (w - left - 8.0);
    let y = |v: f64| h - bottom - v / max * (h - bottom - 10.0);
    let path = |pts: &[(Timestamp, f64)]| {
        pts.iter()
            .enumerate()
            .map(|(i, (t, v))| format!("{}{:.1},{:.1}", if i == 0 { "M" } else { "L" }, x(*t), y(*v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let hour = |t: Timestamp| {
        let z = t.to_zoned_datetime(tz.clone());
        format!("{:02}/{:02} {:02} h {:02}", z.day(), z.month(), z.hour(), z.minute())
    };
    html! {
        svg.chart role="img" aria-label=(label) viewBox={"0 0 " (w) " " (h)} width="100%" {
            title { (label) }
            line x1=(left) y1=(h - bottom) x2=(w - 4.0) y2=(h - bottom) stroke=(GREY) {}
            line x1=(left) y1="10" x2=(left) y2=(h - bottom) stroke=(GREY) {}
            text x=(left - 6.0) y="18" text-anchor="end" font-size="11" fill=(GREY) { (num(max)) }
            text x=(left - 6.0) y=(h - bottom) text-anchor="end" font-size="11" fill=(GREY) { "0" }
            text x="4" y="12" font-size="11" fill=(GREY) { (unit) }
            text x=(left) y=(h - 8.0) font-size="11" fill=(GREY) { (hour(from)) }
            text x=(w - 8.0) y=(h - 8.0) text-anchor="end" font-size="11" fill=(GREY) { (hour(end)) }
            @if let Some((t, name)) = threshold {
                line x1=(left) y1=(y(t)) x2=(w - 8.0) y2=(y(t)) stroke=(RED) stroke-dasharray="6 4" {}
                text x=(w - 10.0) y=(y(t) - 4.0) text-anchor="end" font-size="11" fill=(RED) { (name) " (" (num(t)) " " (unit) ")" }
            }
            @if let Some((t, v)) = points.last() {
                path d=(path(points)) fill="none" stroke=(BLUE) stroke-width="2" {}
                // The latest value as a dot: visible even when the series has one point so far.
                circle cx=(format!("{:.1}", x(*t))) cy=(format!("{:.1}", y(*v))) r="3.5" fill=(BLUE) {}
            }
            @if !forecast.is_empty() {
                path d=(path(forecast)) fill="none" stroke=(ORANGE) stroke-width="2" stroke-dasharray="4 4" {}
            }
        }
    }
}

/// One day's contractual window as a bar, with its outages drawn in red.
pub(crate) fn window(label: &str, start: Timestamp, end: Timestamp, outages: &[(Timestamp, Timestamp)]) -> Markup {
    let (w, h) = (600.0, 18.0);
    let span = (end.as_second() - start.as_second()).max(1) as f64;
    let x = |t: Timestamp| ((t.as_second() - start.as_second()) as f64 / span * w).clamp(0.0, w);
    html! {
        svg.timeline role="img" aria-label=(label) viewBox={"0 0 " (w) " " (h)} width="100%" preserveAspectRatio="none" {
            title { (label) }
            rect x="0" y="2" width=(w) height=(h - 4.0) fill=(GREEN) {}
            @for (a, b) in outages {
                rect x=(x(*a)) y="0" width=((x(*b) - x(*a)).max(1.5)) height=(h) fill=(RED) {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_numbers() {
        assert_eq!(num(12345.0), "12\u{202f}345");
        assert_eq!(num(98.75), "98,8");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-1500.0), "-1\u{202f}500");
        assert_eq!(num(f64::NAN), "—");
    }

    #[test]
    fn charts_carry_labels_and_escape_text() {
        let svg =
            bars("Détections", &[("<script>".into(), 3.0, RED), ("web.sqli".into(), 6.0, BLUE)], "").into_string();
        assert!(svg.contains("aria-label=\"Détections\""));
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
        assert!(svg.contains("width=\"420\""), "the largest bar spans the width: {svg}");
        let t0: Timestamp = "2025-04-07T04:00:00Z".parse().unwrap();
        let t1: Timestamp = "2025-04-08T01:00:00Z".parse().unwrap();
        let svg = window("lundi", t0, t1, &[(t0, t0.checked_add(jiff::SignedDuration::from_hours(21)).unwrap())])
            .into_string();
        assert!(svg.contains(&format!("fill=\"{RED}\"")) && svg.contains("width=\"600\""), "{svg}");
    }
}
