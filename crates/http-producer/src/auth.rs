//! API keys with per-topic produce permissions, read from a JSON file:
//!
//! ```json
//! [
//!   {"name": "checkout", "key": "k-3f9a…", "topics": ["orders", "payments.*"]},
//!   {"name": "loadtest", "key": "k-77c1…", "topics": ["*"]}
//! ]
//! ```
//!
//! A topic pattern is a topic name, or a prefix ending in `*`. Keys are sent as
//! `Authorization: Bearer KEY` or `X-API-Key: KEY`.

use onepipe_core::secret::Secret;
use serde::Deserialize;

use crate::error::{Error, Result};

/// One key and what it may produce to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Who holds the key (logged and counted, never the key itself).
    pub name: String,
    pub key: String,
    pub topics: Vec<String>,
}

/// The configured keys; when there are none, every request is allowed.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

/// Why a request may not produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No key, or one that is not configured.
    Unauthenticated(String),
    /// A known key without permission for the topic.
    Forbidden(String),
}

impl ApiKeys {
    /// Reads and checks a keys file.
    pub fn from_file(path: &str) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::ReadApiKeys {
            path: path.to_string(),
            error,
        })?;
        Self::parse(&text).map_err(|e| Error::ApiKeysFile {
            path: path.to_string(),
            error: Box::new(e),
        })
    }

    pub fn parse(text: &str) -> Result<Self> {
        let keys: Vec<ApiKey> = serde_json::from_str(text).map_err(Error::ApiKeysJson)?;
        for (i, k) in keys.iter().enumerate() {
            let name = || k.name.clone();
            if k.key.len() < 16 {
                return Err(Error::ShortKey {
                    entry: i,
                    name: name(),
                });
            }
            if keys[..i].iter().any(|other| other.key == k.key) {
                return Err(Error::DuplicateKey {
                    entry: i,
                    name: name(),
                });
            }
            for t in &k.topics {
                if t.is_empty() || t[..t.len() - 1].contains('*') {
                    return Err(Error::TopicPattern {
                        entry: i,
                        name: name(),
                        pattern: t.clone(),
                    });
                }
            }
        }
        Ok(ApiKeys { keys })
    }

    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks `presented` (the key from the request, if any) for producing to `topic`;
    /// returns the key's name.
    pub fn check(&self, presented: Option<&str>, topic: &str) -> Result<Option<&str>, Denied> {
        if !self.enabled() {
            return Ok(None);
        }
        let Some(presented) = presented else {
            return Err(Denied::Unauthenticated(
                "an API key is required: send `Authorization: Bearer KEY` or `X-API-Key: KEY`"
                    .to_string(),
            ));
        };
        // Every key is compared, so the time taken does not say which one matched.
        let presented = Secret::new(presented);
        let mut found = None;
        for k in &self.keys {
            if presented.matches(&k.key) && found.is_none() {
                found = Some(k);
            }
        }
        let Some(key) = found else {
            return Err(Denied::Unauthenticated(
                "the API key is not valid".to_string(),
            ));
        };
        if key.topics.iter().any(|p| matches(p, topic)) {
            Ok(Some(&key.name))
        } else {
            Err(Denied::Forbidden(format!(
                "the API key {:?} may not produce to topic {topic:?}",
                key.name
            )))
        }
    }
}

fn matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => pattern == topic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &str = r#"[
        {"name": "checkout", "key": "0123456789abcdef", "topics": ["orders", "pay.*"]},
        {"name": "all", "key": "fedcba9876543210", "topics": ["*"]}
    ]"#;

    #[test]
    fn keys_allow_their_topics_only() {
        let keys = ApiKeys::parse(KEYS).unwrap();
        assert_eq!(
            keys.check(Some("0123456789abcdef"), "orders"),
            Ok(Some("checkout"))
        );
        assert_eq!(
            keys.check(Some("0123456789abcdef"), "pay.refunds"),
            Ok(Some("checkout"))
        );
        assert!(matches!(
            keys.check(Some("0123456789abcdef"), "orders2"),
            Err(Denied::Forbidden(_))
        ));
        assert_eq!(keys.check(Some("fedcba9876543210"), "x"), Ok(Some("all")));
        assert!(matches!(
            keys.check(Some("nope"), "orders"),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(
            keys.check(None, "orders"),
            Err(Denied::Unauthenticated(_))
        ));
        assert_eq!(ApiKeys::default().check(None, "orders"), Ok(None));
    }

    #[test]
    fn bad_files_are_refused_with_the_entry_named() {
        for (text, expected) in [
            (
                r#"[{"name":"a","key":"short","topics":[]}]"#,
                "shorter than 16",
            ),
            (
                r#"[{"name":"a","key":"0123456789abcdef","topics":["a*b"]}]"#,
                "prefix ending in *",
            ),
            (
                r#"[{"name":"a","key":"0123456789abcdef","topics":[]},
                   {"name":"b","key":"0123456789abcdef","topics":[]}]"#,
                "used twice",
            ),
            (
                r#"[{"name":"a","key":"0123456789abcdef","topic":[]}]"#,
                "unknown field",
            ),
            ("{", "expected a sequence"),
        ] {
            let err = ApiKeys::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
