//! The kind of ENT user (`eleve`, `parent`, `enseignant`, `personnel`), read from the account name where the platform encodes it.
//!
//! Nothing is guessed by default: a real ENT's naming scheme must be configured. The demo
//! city's scheme ([`RoleMap::demo`]) is: `prenom.nom.ens` for teachers, `prenom.nom.par` for
//! parents, and `prenom.nom` for pupils.

use serde::Deserialize;

use crate::event::Event;

/// Account-name suffixes → role, plus the role of accounts matching no suffix.
///
/// In a configuration file:
///
/// ```toml
/// [roles]
/// suffixes = { ".ens" = "enseignant", ".par" = "parent" }
/// otherwise = "eleve"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMap {
    /// Suffix of the account name (compared case-insensitively) → role. When several match,
    /// the longest wins.
    #[serde(default)]
    pub suffixes: std::collections::BTreeMap<String, String>,
    /// The role of an authenticated account matching no suffix; `None` leaves it unset.
    #[serde(default)]
    pub otherwise: Option<String>,
}

impl RoleMap {
    /// The demo city's naming scheme: `.ens` → `enseignant`, `.par` → `parent`, else `eleve`.
    pub fn demo() -> RoleMap {
        RoleMap {
            suffixes: [(".ens", "enseignant"), (".par", "parent")]
                .into_iter()
                .map(|(s, r)| (s.to_owned(), r.to_owned()))
                .collect(),
            otherwise: Some("eleve".to_owned()),
        }
    }

    /// The role of account `user`, if the map says one.
    pub fn role_of(&self, user: &str) -> Option<&str> {
        let lower = user.to_lowercase();
        self.suffixes
            .iter()
            .filter(|(suffix, _)| lower.ends_with(&suffix.to_lowercase()))
            .max_by_key(|(suffix, _)| suffix.len())
            .map(|(_, role)| role.as_str())
            .or(self.otherwise.as_deref())
    }

    /// Sets `user_role` from `user_name`, unless the log already gave a role. Anonymous
    /// requests (`-` in access logs, or no user) get no role.
    pub fn apply(&self, event: &mut Event) {
        if event.user_role.is_some() {
            return;
        }
        let Some(user) = event.user_name.as_deref().map(str::trim) else { return };
        if user.is_empty() || user == "-" {
            return;
        }
        event.user_role = self.role_of(user).map(str::to_owned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(map: &RoleMap, user: Option<&str>, expected: Option<&str>) {
        let mut event = Event { user_name: user.map(str::to_owned), ..Event::default() };
        map.apply(&mut event);
        assert_eq!(event.user_role.as_deref(), expected, "{user:?}");
    }

    #[test]
    fn demo_scheme() {
        let demo = RoleMap::demo();
        check(&demo, Some("marie.dupont.ens"), Some("enseignant"));
        check(&demo, Some("Marie.Dupont.ENS"), Some("enseignant"));
        check(&demo, Some("paul.martin.par"), Some("parent"));
        check(&demo, Some("lea.petit"), Some("eleve"));
        check(&demo, Some("-"), None);
        check(&demo, Some(""), None);
        check(&demo, None, None);
    }

    #[test]
    fn nothing_is_guessed_without_configuration() {
        check(&RoleMap::default(), Some("marie.dupont.ens"), None);
    }

    #[test]
    fn the_longest_suffix_wins_and_the_log_wins_over_the_map() {
        let map: RoleMap =
            serde_json::from_str(r#"{"suffixes": {".ens": "enseignant", ".dir.ens": "personnel"}}"#).unwrap();
        check(&map, Some("jean.durand.dir.ens"), Some("personnel"));
        check(&map, Some("jean.durand.ens"), Some("enseignant"));
        check(&map, Some("lea.petit"), None);

        let mut event =
            Event { user_name: Some("jean.durand.ens".into()), user_role: Some("parent".into()), ..Event::default() };
        map.apply(&mut event);
        assert_eq!(event.user_role.as_deref(), Some("parent"));
    }

    #[test]
    fn config_rejects_unknown_keys() {
        assert!(serde_json::from_str::<RoleMap>(r#"{"default": "eleve"}"#).is_err());
        let map: RoleMap = serde_json::from_str(r#"{"otherwise": "eleve"}"#).unwrap();
        assert_eq!(map.role_of("x"), Some("eleve"));
    }
}
