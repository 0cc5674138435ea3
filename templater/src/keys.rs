//! The map of the templater's KV keys, the one module that formats and parses them.
//!
//! - Deploy settings, written by the deploy CLI and watched by every edge:
//!   `<prefix>/<service>/active|canary|previous`, and `<prefix>/<service>/promotion` while
//!   `templater promote` walks the service (the edges publish its traffic every second then).
//! - The edges' own records, kept *outside* the settings tree so that an edge writing them
//!   never wakes the other edges' settings watch: `<prefix>-templater/status/<edge>` (what the
//!   edge runs with, its last install and error) and `<prefix>-templater/installed/<service>/<edge>`
//!   (the plan that edge has live for the service, and the settings index it acknowledges),
//!   `<prefix>-templater/traffic/<service>/<edge>` (that edge's per-colour traffic counters for
//!   the service) and `<prefix>-templater/history/<service>` (the bounded deploy history).
//!
//! Service names are key segments ([`rules::key_segment`]): a `/` in a name never adds a level.

use swarmgate_consul::rules;

/// A field of a service's deploy settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Active,
    Canary,
    Previous,
    Promotion,
}

impl Field {
    fn as_str(self) -> &'static str {
        match self {
            Field::Active => "active",
            Field::Canary => "canary",
            Field::Previous => "previous",
            Field::Promotion => "promotion",
        }
    }

    fn parse(raw: &str) -> Option<Field> {
        Some(match raw {
            "active" => Field::Active,
            "canary" => Field::Canary,
            "previous" => Field::Previous,
            "promotion" => Field::Promotion,
            _ => return None,
        })
    }
}

/// The templater's keys under one `--kv-prefix`, normalised once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// The prefix without leading or trailing slashes.
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (slashes around it are ignored); an empty prefix is refused.
    pub fn new(prefix: &str) -> Result<Keys, String> {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            return Err("--kv-prefix must not be empty".into());
        }
        Ok(Keys {
            prefix: prefix.to_string(),
        })
    }

    /// The prefix as given, normalised (for messages and ACL hints).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>/`: every service's settings (what the edges watch).
    pub fn settings_dir(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// `<prefix>/<service>/<field>`.
    pub fn setting(&self, service: &str, field: Field) -> String {
        format!(
            "{}/{}/{}",
            self.prefix,
            rules::key_segment(service),
            field.as_str()
        )
    }

    /// `(service, field)` of a settings key; `None` for any other key.
    pub fn parse_setting(&self, key: &str) -> Option<(String, Field)> {
        let rest = key.strip_prefix(&self.settings_dir())?;
        let (service, field) = rest.split_once('/')?;
        Some((rules::parse_key_segment(service)?, Field::parse(field)?))
    }

    /// `<prefix>-templater/`: every edge's records.
    pub fn records_dir(&self) -> String {
        format!("{}-templater/", self.prefix)
    }

    /// `<prefix>-templater/status/`.
    pub fn status_dir(&self) -> String {
        format!("{}status/", self.records_dir())
    }

    /// `<prefix>-templater/status/<edge>`.
    pub fn status(&self, edge: &str) -> String {
        format!("{}{edge}", self.status_dir())
    }

    /// The edge of a status key.
    pub fn parse_status(&self, key: &str) -> Option<String> {
        let edge = key.strip_prefix(&self.status_dir())?;
        (!edge.is_empty() && !edge.contains('/')).then(|| edge.to_string())
    }

    /// `<prefix>-templater/installed/`.
    pub fn installed_root(&self) -> String {
        format!("{}installed/", self.records_dir())
    }

    /// `<prefix>-templater/installed/<service>/`: every edge's record for one service.
    pub fn installed_dir(&self, service: &str) -> String {
        format!("{}{}/", self.installed_root(), rules::key_segment(service))
    }

    /// `<prefix>-templater/installed/<service>/<edge>`.
    pub fn installed(&self, service: &str, edge: &str) -> String {
        format!("{}{edge}", self.installed_dir(service))
    }

    /// `(service, edge)` of an installed-plan key.
    pub fn parse_installed(&self, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix(&self.installed_root())?;
        let (service, edge) = rest.split_once('/')?;
        if edge.is_empty() || edge.contains('/') {
            return None;
        }
        Some((rules::parse_key_segment(service)?, edge.to_string()))
    }

    /// `<prefix>-templater/traffic/`.
    pub fn traffic_root(&self) -> String {
        format!("{}traffic/", self.records_dir())
    }

    /// `<prefix>-templater/traffic/<service>/`: every edge's traffic record for one service.
    pub fn traffic_dir(&self, service: &str) -> String {
        format!("{}{}/", self.traffic_root(), rules::key_segment(service))
    }

    /// `<prefix>-templater/traffic/<service>/<edge>`.
    pub fn traffic(&self, service: &str, edge: &str) -> String {
        format!("{}{edge}", self.traffic_dir(service))
    }

    /// `(service, edge)` of a traffic key.
    pub fn parse_traffic(&self, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix(&self.traffic_root())?;
        let (service, edge) = rest.split_once('/')?;
        if edge.is_empty() || edge.contains('/') {
            return None;
        }
        Some((rules::parse_key_segment(service)?, edge.to_string()))
    }

    /// `<prefix>-templater/history/<service>`: the service's deploy history.
    pub fn history(&self, service: &str) -> String {
        format!(
            "{}history/{}",
            self.records_dir(),
            rules::key_segment(service)
        )
    }

    /// Where releases before the records moved kept them: `<prefix>/_templater/<edge>/`.
    pub fn legacy_dir(&self, edge: &str) -> String {
        format!("{}/_templater/{edge}/", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = Keys::new("/deploy/").expect("prefix");
        let key = k.setting("web", Field::Canary);
        assert_eq!(key, "deploy/web/canary");
        assert_eq!(k.parse_setting(&key), Some(("web".into(), Field::Canary)));
        let key = k.installed("svc/v1", "edge1");
        assert_eq!(key, "deploy-templater/installed/svc%2Fv1/edge1");
        assert_eq!(
            k.parse_installed(&key),
            Some(("svc/v1".into(), "edge1".into()))
        );
        assert_eq!(k.parse_status(&k.status("edge1")).as_deref(), Some("edge1"));
        assert_eq!(k.parse_setting("deploy/web/installed/x"), None);
        assert_eq!(k.parse_setting("deploy/_templater/e/status"), None);
        assert_eq!(k.parse_installed(&k.status("edge1")), None);
        let key = k.traffic("svc/v1", "edge1");
        assert_eq!(key, "deploy-templater/traffic/svc%2Fv1/edge1");
        assert_eq!(
            k.parse_traffic(&key),
            Some(("svc/v1".into(), "edge1".into()))
        );
        assert_eq!(k.parse_traffic(&k.installed("web", "e")), None);
        assert_eq!(k.history("web"), "deploy-templater/history/web");
        let key = k.setting("web", Field::Promotion);
        assert_eq!(
            k.parse_setting(&key),
            Some(("web".into(), Field::Promotion))
        );
    }

    #[test]
    fn records_live_outside_the_settings_tree() {
        let k = Keys::new("deploy").expect("prefix");
        assert!(!k.status("e").starts_with(&k.settings_dir()));
        assert!(!k.installed("web", "e").starts_with(&k.settings_dir()));
        assert!(!k.traffic("web", "e").starts_with(&k.settings_dir()));
        assert!(!k.history("web").starts_with(&k.settings_dir()));
        assert!(Keys::new("/").is_err());
    }
}
