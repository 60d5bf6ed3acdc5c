//! Panel definitions as data: `dashboards/panels/*.toml` are built in, and the operator adds
//! files in `server.panels_dir`, read at start, to add panels without recompiling.

use std::path::{Path, PathBuf};

/// The panel files compiled in.
const BUILT_IN: &[(&str, &str)] = &[
    ("saturation.toml", include_str!("../panels/saturation.toml")),
    ("sante.toml", include_str!("../panels/sante.toml")),
];

/// The panel-file format this code reads.
const PANELS_FORMAT: u32 = 1;

/// One panel.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    pub id: String,
    /// The page it is shown on: `saturation` or `sante`.
    pub page: String,
    /// Its French title.
    pub title: String,
    #[serde(default)]
    pub unit: String,
    /// A series of the metric series store: `name` or `name{label="value",…}`.
    #[serde(default)]
    pub series: Option<String>,
    /// How several matching series are folded into one line (`sum`, `min`, `max`).
    #[serde(default)]
    pub combine: crate::services::Combine,
    /// Each value is multiplied by this (bytes to gigabytes, a ratio to a percentage).
    #[serde(default = "one")]
    pub scale: f64,
    /// Draw a dashed linear forecast up to where the line would cross the threshold (at most
    /// seven days ahead): the disk-full ETA.
    #[serde(default)]
    pub forecast: bool,
    /// A metric of Vigie's `/metrics`, shown as its current values.
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub threshold_label: Option<String>,
}

fn one() -> f64 {
    1.0
}

/// How far ahead a forecast may reach.
const FORECAST_HORIZON: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 7);

/// The least-squares line through `points` continued from the last point until it reaches
/// `threshold` (or the horizon if it never does within it); empty when there are fewer than
/// three points, the line is flat, or it moves away from the threshold.
pub(crate) fn linear_forecast(
    points: &[(jiff::Timestamp, f64)],
    threshold: Option<f64>,
) -> Vec<(jiff::Timestamp, f64)> {
    let (Some(first), Some(&(last_t, _))) = (points.first(), points.last()) else { return Vec::new() };
    if points.len() < 3 {
        return Vec::new();
    }
    // Seconds since the first point keep the sums well conditioned.
    let xs: Vec<f64> = points.iter().map(|(t, _)| t.duration_since(first.0).as_secs_f64()).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, (_, y)) in xs.iter().zip(points) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    if sxx == 0.0 || !sxy.is_finite() {
        return Vec::new();
    }
    let slope = sxy / sxx;
    let at = |x: f64| my + slope * (x - mx);
    let x_last = *xs.last().unwrap_or(&0.0);
    let start = (last_t, at(x_last));
    let horizon = FORECAST_HORIZON.as_secs_f64();
    let reach = match threshold {
        Some(t) if (t - start.1) * slope > 0.0 => ((t - start.1) / slope).min(horizon),
        Some(_) => return Vec::new(),
        None if slope != 0.0 => horizon,
        None => return Vec::new(),
    };
    let Ok(end) = last_t.checked_add(jiff::SignedDuration::from_secs_f64(reach)) else { return Vec::new() };
    vec![start, (end, at(x_last + reach))]
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PanelFile {
    format: u32,
    #[serde(default)]
    panel: Vec<Panel>,
}

/// A panel file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn parse(path: &Path, text: &str, out: &mut Vec<Panel>) -> Result<(), PanelError> {
    let invalid = |message: String| PanelError::Invalid { path: path.to_owned(), message };
    let file: PanelFile = toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
    if file.format != PANELS_FORMAT {
        return Err(invalid(format!(
            "format = {} is not supported; this Vigie reads format = {PANELS_FORMAT}",
            file.format
        )));
    }
    for p in file.panel {
        if !matches!(p.page.as_str(), "saturation" | "sante") {
            return Err(invalid(format!(
                "panel `{}`: page must be \"saturation\" or \"sante\", not \"{}\"",
                p.id, p.page
            )));
        }
        if p.series.is_some() == p.metric.is_some() {
            return Err(invalid(format!("panel `{}`: give exactly one of `series` and `metric`", p.id)));
        }
        if out.iter().any(|q| q.id == p.id) {
            return Err(invalid(format!("panel id `{}` is used twice; ids must be unique", p.id)));
        }
        out.push(p);
    }
    Ok(())
}

/// The built-in panels, then those of `dir`'s `*.toml` files in name order.
pub fn load_panels(dir: Option<&Path>) -> Result<Vec<Panel>, PanelError> {
    let mut out = Vec::new();
    for (name, text) in BUILT_IN {
        parse(Path::new(name), text, &mut out)?;
    }
    if let Some(dir) = dir {
        let read = |source| PanelError::Read { path: dir.to_owned(), source };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        for path in files {
            let text =
                std::fs::read_to_string(&path).map_err(|source| PanelError::Read { path: path.clone(), source })?;
            parse(&path, &text, &mut out)?;
        }
    }
    Ok(out)
}

/// The current values of `metric` (with `_total` for counters) in an exposition: label text and value.
pub(crate) fn current_values(exp: &collector::Exposition, metric: &str) -> Vec<(String, f64)> {
    exp.samples
        .iter()
        .filter(|s| s.name == metric || s.name.strip_suffix("_total") == Some(metric))
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(_, v)| v.clone()).collect();
            (labels.join(", "), s.value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filling_disk_is_forecast_to_the_threshold_and_a_flat_one_is_not() {
        let t0: jiff::Timestamp = "2025-04-07T12:00:00Z".parse().unwrap();
        let hour = |h: i64| t0.checked_add(jiff::SignedDuration::from_hours(h)).unwrap();
        // 50 % then 1 point an hour: 100 % is 50 hours after the last point (hour 2).
        let filling = [(hour(0), 50.0), (hour(1), 51.0), (hour(2), 52.0)];
        let f = linear_forecast(&filling, Some(100.0));
        assert_eq!(f.len(), 2);
        assert_eq!(f[0], (hour(2), 52.0));
        assert_eq!(f[1].0, hour(50));
        assert!((f[1].1 - 100.0).abs() < 1e-9, "{f:?}");
        // Too slow to reach the threshold within seven days: drawn to the horizon only.
        let slow = [(hour(0), 10.0), (hour(1), 10.01), (hour(2), 10.02)];
        assert_eq!(linear_forecast(&slow, Some(100.0))[1].0, hour(2 + 24 * 7));
        // Flat, draining, or too short: nothing to forecast.
        assert!(linear_forecast(&[(hour(0), 5.0), (hour(1), 5.0), (hour(2), 5.0)], Some(100.0)).is_empty());
        assert!(linear_forecast(&[(hour(0), 60.0), (hour(1), 55.0), (hour(2), 50.0)], Some(100.0)).is_empty());
        assert!(linear_forecast(&filling[..2], Some(100.0)).is_empty());
    }

    #[test]
    fn built_in_panels_load_and_an_operator_file_adds_one() {
        let built_in = load_panels(None).unwrap();
        assert!(built_in.iter().any(|p| p.id == "bandwidth" && p.threshold == Some(15.0)));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("extra.toml"),
            "format = 1\n[[panel]]\nid = \"swap\"\npage = \"saturation\"\ntitle = \"Swap\"\nseries = \"host_swap_percent\"\n",
        )
        .unwrap();
        let all = load_panels(Some(dir.path())).unwrap();
        assert_eq!(all.len(), built_in.len() + 1);
        assert_eq!(all.last().unwrap().title, "Swap");
    }

    #[test]
    fn bad_panel_files_name_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let check = |text: &str, expected: &str| {
            std::fs::write(dir.path().join("bad.toml"), text).unwrap();
            let e = load_panels(Some(dir.path())).unwrap_err().to_string();
            assert!(e.contains("bad.toml") && e.contains(expected), "{e}");
        };
        check("format = 1\n[[panel]]\nid = \"x\"\npage = \"saturation\"\ntitle = \"X\"\n", "exactly one of");
        check("format = 2\n", "format = 1");
        check(
            "format = 1\n[[panel]]\nid = \"cpu\"\npage = \"saturation\"\ntitle = \"X\"\nmetric = \"m\"\n",
            "used twice",
        );
        check("format = 1\n[[panel]]\nid = \"y\"\npage = \"accueil\"\ntitle = \"X\"\nmetric = \"m\"\n", "page must be");
        check("format = 1\n[[panel]]\nid = \"z\"\npage = \"sante\"\ntitel = \"X\"\n", "titel");
    }
}
