//! The registry's rules on top of the store: schemas are parsed and checked for
//! compatibility before they get a version, topic metadata is checked against the
//! subject's schema, and a new schema version that would break a topic's metadata
//! (drops a unique-key field, changes its type) is refused. The gRPC and REST layers
//! both call this, so they answer the same.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apache_avro::Schema;
use onepipe_core::metadata::{Compatibility, TopicMetadata};

use crate::metrics as m;
use crate::store::{Store, SubjectVersion, VersionSpec};
use crate::{Error, Result};
use onepipe_core::admin::Metrics;
use onepipe_schema::compat;

/// How often a registration is retried when other replicas keep taking the next version.
const REGISTER_ATTEMPTS: usize = 20;

pub struct Registry {
    store: Store,
    metrics: Metrics,
    /// Ids are immutable, so a schema once read is served from memory for good.
    by_id: RwLock<HashMap<i64, Arc<str>>>,
}

/// Parses an Avro schema, naming what is wrong when it is not one.
pub fn parse_schema(text: &str) -> Result<Schema> {
    Ok(onepipe_schema::parse(text)?)
}

/// What makes two registrations "the same schema" ([`onepipe_schema::identity_key`]).
pub fn identity_key(schema: &Schema) -> Result<String> {
    Ok(onepipe_schema::identity_key(schema)?)
}

impl Registry {
    pub fn new(store: Store) -> Self {
        Registry {
            store,
            metrics: Metrics::new(),
            by_id: RwLock::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Sets the gauges read from the database; called before each scrape.
    pub async fn refresh_metrics(&self) -> Result<()> {
        let subjects = self.store.subjects(false).await?.len();
        let topics = self.store.topics().await?.len();
        self.metrics
            .set(m::SUBJECTS, m::SUBJECTS_HELP, &[], subjects as f64);
        self.metrics
            .set(m::TOPICS, m::TOPICS_HELP, &[], topics as f64);
        Ok(())
    }

    fn refused(&self, reason: &str) {
        self.metrics.inc(
            m::REGISTRATIONS_REFUSED,
            m::REGISTRATIONS_REFUSED_HELP,
            &[("reason", reason)],
            1,
        );
    }

    /// Registers `text` under `subject`: the existing version when the same schema is
    /// there, else a new version after the compatibility and metadata checks.
    pub async fn register(&self, subject: &str, text: &str) -> Result<SubjectVersion> {
        if subject.trim().is_empty() {
            return Err(Error::InvalidSchema("subject must not be empty".into()));
        }
        let schema = parse_schema(text).inspect_err(|_| self.refused("invalid_schema"))?;
        let key = identity_key(&schema)?;
        for _ in 0..REGISTER_ATTEMPTS {
            if let Some(existing) = self.store.find_in_subject(subject, &key).await? {
                return Ok(existing);
            }
            // The version number is taken before the checks and inserted exactly: a
            // registration that another replica beat to it checks again against what that
            // one registered, so no version is ever stored unchecked against its predecessor.
            let next = self.store.next_version(subject).await?;
            let problems = self.compatibility_problems(subject, &schema, None).await?;
            if !problems.is_empty() {
                self.refused("incompatible");
                return Err(Error::Incompatible {
                    subject: subject.to_string(),
                    level: self.store.effective_compatibility(subject).await?,
                    reasons: problems,
                });
            }
            for meta in self.store.topics_of_subject(subject).await? {
                let broken = metadata_problems(&meta, &schema);
                if !broken.is_empty() {
                    self.refused("breaks_topic_metadata");
                    return Err(Error::InvalidSchema(format!(
                        "the new schema would break the metadata of topic {:?}: {}",
                        meta.topic,
                        broken.join("; ")
                    )));
                }
            }
            if let Some(v) = self.store.insert_version(subject, &key, text, next).await? {
                tracing::info!(subject, version = v.version, id = v.id, "schema registered");
                self.metrics
                    .inc(m::SCHEMAS_REGISTERED, m::SCHEMAS_REGISTERED_HELP, &[], 1);
                return Ok(v);
            }
        }
        Err(Error::Corrupt(format!(
            "could not take a version number for {subject:?} in {REGISTER_ATTEMPTS} attempts"
        )))
    }

    /// The live version of `subject` that holds this schema.
    pub async fn lookup(&self, subject: &str, text: &str) -> Result<SubjectVersion> {
        let key = identity_key(&parse_schema(text)?)?;
        match self.store.find_in_subject(subject, &key).await? {
            Some(v) => Ok(v),
            None => {
                // Tell "no such subject" apart from "not in this subject".
                self.store.versions(subject, false).await?;
                Err(Error::SchemaNotInSubject(subject.to_string()))
            }
        }
    }

    /// Why `candidate` may not become the next version of `subject` under its level
    /// (empty: it may). With `against`, only that one version is checked, in the
    /// directions the level names.
    pub async fn compatibility_problems(
        &self,
        subject: &str,
        candidate: &Schema,
        against: Option<VersionSpec>,
    ) -> Result<Vec<String>> {
        let level = self.store.effective_compatibility(subject).await?;
        let versions = match against {
            Some(spec) => vec![self.store.version(subject, spec, false).await?],
            None => match self.store.all_versions(subject, false).await {
                Ok(v) => v,
                Err(Error::SubjectNotFound(_)) => Vec::new(),
                Err(e) => return Err(e),
            },
        };
        let mut existing = Vec::with_capacity(versions.len());
        for v in versions {
            let parsed = parse_schema(&v.schema)
                .map_err(|e| Error::Corrupt(format!("{subject} version {}: {e}", v.version)))?;
            existing.push((v.version as i32, parsed));
        }
        // Checking one chosen version is what the transitive levels do for every one.
        let level = match (against, level) {
            (Some(_), Compatibility::BackwardTransitive) => Compatibility::Backward,
            (Some(_), Compatibility::ForwardTransitive) => Compatibility::Forward,
            (Some(_), Compatibility::FullTransitive) => Compatibility::Full,
            (_, l) => l,
        };
        Ok(compat::check_level(level, candidate, &existing))
    }

    /// The schema text of a global id, from memory after the first read.
    pub async fn schema_by_id(&self, id: i64) -> Result<Arc<str>> {
        if let Some(s) = self
            .by_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(s.clone());
        }
        let text: Arc<str> = self.store.schema_by_id(id).await?.into();
        self.by_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, text.clone());
        Ok(text)
    }

    /// Stores metadata for a new topic (`create`) or replaces an existing one, after
    /// checking it against the latest schema of its subject.
    pub async fn put_topic(&self, meta: &TopicMetadata, create: bool) -> Result<i64> {
        meta.validate()
            .map_err(|e| Error::InvalidMetadata(e.to_string()))?;
        let latest = match self
            .store
            .version(&meta.subject, VersionSpec::Latest, false)
            .await
        {
            Ok(v) => v,
            Err(Error::SubjectNotFound(s)) => {
                return Err(Error::InvalidMetadata(format!(
                    "subject {s:?} has no schema: register one before the topic metadata"
                )));
            }
            Err(e) => return Err(e),
        };
        let schema = parse_schema(&latest.schema)?;
        let problems = metadata_problems(meta, &schema);
        if !problems.is_empty() {
            return Err(Error::InvalidMetadata(problems.join("; ")));
        }
        self.store.put_topic(meta, create).await
    }
}

pub use onepipe_schema::metadata_problems;

#[cfg(test)]
mod tests {
    use super::*;
    use onepipe_core::metadata::Check;

    const ORDERS_V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
        {"name":"id","type":"string"},
        {"name":"version","type":"long"},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"amount","type":"double"},
        {"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"id","type":"long"}]}},
        {"name":"clock","type":{"type":"map","values":"long"}},
        {"name":"note","type":["null","string"],"default":null}
    ]}"#;

    async fn registry() -> Registry {
        Registry::new(Store::open("sqlite::memory:").await.unwrap())
    }

    fn meta() -> TopicMetadata {
        let mut m = TopicMetadata::new("orders", vec!["id".into(), "customer.id".into()]);
        m.sort_key = vec!["at".into(), "note".into()];
        m.partition_time = Some("at".into());
        m.merge = "max_by(version)".parse().unwrap();
        m.checks = vec!["sum(amount)".parse().unwrap(), Check::RowChecksum];
        m
    }

    #[test]
    fn metadata_fits_schema() {
        let schema = parse_schema(ORDERS_V1).unwrap();
        assert_eq!(metadata_problems(&meta(), &schema), Vec::<String>::new());
        let mut m = meta();
        m.merge = "vector_clock(clock)".parse().unwrap();
        assert_eq!(metadata_problems(&m, &schema), Vec::<String>::new());
    }

    #[test]
    fn metadata_problems_are_named() {
        let schema = parse_schema(ORDERS_V1).unwrap();
        let mut m = meta();
        m.unique_key = vec![
            "nope".into(),
            "note".into(),
            "amount".into(),
            "customer.zip".into(),
            "id.x".into(),
        ];
        m.partition_time = Some("amount".into());
        m.merge = "vector_clock(version)".parse().unwrap();
        m.checks = vec!["sum(id)".parse().unwrap()];
        let p = metadata_problems(&m, &schema);
        let expected = [
            r#"unique_key field "nope": no field "nope" in record shop.Order"#,
            r#"unique_key field "note" must not be nullable"#,
            r#"unique_key field "amount" is double, expected"#,
            r#"unique_key field "customer.zip": no field "zip" in "customer""#,
            r#"unique_key field "id.x": "id" is not a record"#,
            r#"partition_time field "amount" is double, expected a timestamp"#,
            r#"merge vector_clock field "version" is long, expected a map of long"#,
            r#"sum field "id" is string"#,
        ];
        assert_eq!(p.len(), expected.len(), "{p:#?}");
        for (got, want) in p.iter().zip(expected) {
            assert!(
                got.starts_with(want),
                "{got:?} does not start with {want:?}"
            );
        }
    }

    #[tokio::test]
    async fn register_reuses_identical_schemas_and_refuses_incompatible_ones() {
        let r = registry().await;
        let v1 = r.register("orders-value", ORDERS_V1).await.unwrap();
        // Whitespace and key order do not make a new schema.
        let reformatted = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(ORDERS_V1).unwrap(),
        )
        .unwrap();
        assert_eq!(r.register("orders-value", &reformatted).await.unwrap(), v1);
        assert_eq!(&*r.schema_by_id(v1.id).await.unwrap(), ORDERS_V1);

        // Adding a field with a default is BACKWARD compatible.
        let v2_text = ORDERS_V1.replace(
            r#"{"name":"note""#,
            r#"{"name":"coupon","type":"string","default":""},{"name":"note""#,
        );
        let v2 = r.register("orders-value", &v2_text).await.unwrap();
        assert_eq!(v2.version, 2);
        assert_ne!(v2.id, v1.id);

        // Adding one without a default is not.
        let bad = ORDERS_V1.replace(
            r#"{"name":"note""#,
            r#"{"name":"coupon2","type":"string"},{"name":"note""#,
        );
        match r.register("orders-value", &bad).await {
            Err(Error::Incompatible { reasons, level, .. }) => {
                assert_eq!(level, Compatibility::Backward);
                assert!(
                    reasons
                        .iter()
                        .any(|m| m.contains("coupon2") || m.contains("/fields/")),
                    "{reasons:?}"
                );
            }
            other => panic!("expected incompatible, got {other:?}"),
        }
        assert!(matches!(
            r.register("orders-value", "{not json").await,
            Err(Error::InvalidSchema(_))
        ));
    }

    #[tokio::test]
    async fn schema_changes_that_break_topic_metadata_are_refused() {
        let r = registry().await;
        r.store()
            .set_compatibility(None, Compatibility::None)
            .await
            .unwrap();
        r.register("orders-value", ORDERS_V1).await.unwrap();
        r.put_topic(&meta(), true).await.unwrap();
        assert!(matches!(
            r.put_topic(&meta(), true).await,
            Err(Error::TopicExists(_))
        ));

        let id_as_long = ORDERS_V1.replace(
            r#"{"name":"id","type":"string"}"#,
            r#"{"name":"id","type":"double"}"#,
        );
        let err = r
            .register("orders-value", &id_as_long)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("topic \"orders\"") && err.contains("unique_key field \"id\""),
            "{err}"
        );

        let mut m = meta();
        m.unique_key = vec!["missing".into()];
        let err = r.put_topic(&m, false).await.unwrap_err().to_string();
        assert!(err.contains("no field \"missing\""), "{err}");

        let orphan = TopicMetadata::new("orphan", vec!["id".into()]);
        let err = r.put_topic(&orphan, true).await.unwrap_err().to_string();
        assert!(err.contains("has no schema"), "{err}");
    }
}
