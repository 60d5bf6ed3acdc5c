//! Errors in rule files and rule test files, each naming the file, the line and what to do.

use std::path::PathBuf;

/// A problem in a rule file or a rule test file. Loading a directory reports every problem
/// at once ([`RuleError::Many`]) so that an operator fixes them in one pass.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("cannot read {path}: {source}; check that the path exists and is readable")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir}: no rule file (*.yml or *.yaml) found; point the configuration at the rules/ directory")]
    NoRules { dir: PathBuf },
    #[error("{file}:{line}:{column}: {message}; fix the YAML (the format is described in rules/README.md)")]
    Syntax { file: String, line: usize, column: usize, message: String },
    /// A rule (or a rule test) that is well-formed YAML but says something impossible.
    #[error("{0}")]
    Invalid(Box<RuleProblem>),
    #[error("{} problems:\n{}", .0.len(), list(.0))]
    Many(Vec<RuleError>),
}

/// Where a rule file is wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: rule `{rule}`, key `{key}`: {problem}; {hint}")]
pub struct RuleProblem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The rule id (or, in a test file, the test name).
    pub rule: String,
    pub key: String,
    pub problem: String,
    pub hint: String,
}

fn list(errors: &[RuleError]) -> String {
    errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n")
}

impl RuleError {
    /// One error as is, several as [`RuleError::Many`] (flattened).
    pub(crate) fn collect(errors: Vec<RuleError>) -> Option<RuleError> {
        let mut flat = Vec::with_capacity(errors.len());
        for e in errors {
            match e {
                RuleError::Many(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => None,
            1 => flat.pop(),
            _ => Some(RuleError::Many(flat)),
        }
    }

    pub(crate) fn syntax(file: &str, err: &serde_yaml_ng::Error) -> RuleError {
        let (line, column) = err.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
        RuleError::Syntax { file: file.to_owned(), line, column, message: err.to_string() }
    }
}

/// Finds where a rule (and one of its keys) is written, so that a validation error can name
/// a line: serde does not keep positions once a value is deserialised, but rule ids are unique
/// and keys sit under their rule, which is enough to point an operator at the right place.
pub(crate) fn locate(text: &str, rule_id: &str, key: &str) -> (usize, usize) {
    locate_item(text, "id", rule_id, key)
}

/// [`locate`] for any list of items told apart by `header` (`id` for rules, `name` for tests).
pub(crate) fn locate_item(text: &str, header: &str, item: &str, key: &str) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let head = format!("{header}:");
    let header_value = |l: &str| {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        t.strip_prefix(head.as_str()).map(|v| v.trim().trim_matches(['"', '\'']).to_owned())
    };
    let Some(start) = lines.iter().position(|l| header_value(l).as_deref() == Some(item)) else {
        return (1, 1);
    };
    let column_of = |l: &str, needle: &str| l.find(needle).map_or(1, |c| c + 1);
    let needle = format!("{key}:");
    let in_flow = format!("{{ {needle}");
    for (i, l) in lines.iter().enumerate().skip(start) {
        if i > start && header_value(l).is_some() && l.trim_start().starts_with("- ") {
            break;
        }
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        if t.starts_with(&needle) || t.starts_with(&in_flow) {
            return (i + 1, column_of(l, &needle));
        }
    }
    (start + 1, column_of(lines[start], &head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_the_key_under_its_rule() {
        let text = "version: 1\nrules:\n  - id: a\n    suppress: 1m\n  - id: b\n    title: x\n    suppress: 2m\n";
        assert_eq!(locate(text, "b", "suppress"), (7, 5));
        assert_eq!(locate(text, "a", "suppress"), (4, 5));
        // A key the rule does not have: the rule's own line.
        assert_eq!(locate(text, "b", "window"), (5, 5));
        assert_eq!(locate(text, "zzz", "window"), (1, 1));
    }

    #[test]
    fn many_is_flattened_and_listed() {
        let e = |m: &str| RuleError::Syntax { file: "f.yml".into(), line: 1, column: 2, message: m.into() };
        let all = RuleError::collect(vec![e("a"), RuleError::Many(vec![e("b"), e("c")])]).unwrap();
        let RuleError::Many(inner) = &all else { panic!("expected many, got {all}") };
        assert_eq!(inner.len(), 3);
        assert!(all.to_string().starts_with("3 problems:\n  - f.yml:1:2: a"), "{all}");
        assert!(RuleError::collect(vec![]).is_none());
    }
}
