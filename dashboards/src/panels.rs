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
    /// A series of the metric series store.
    #[serde(default)]
    pub series: Option<String>,
    /// A metric of Vigie's `/metrics`, shown as its current values.
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub threshold_label: Option<String>,
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
