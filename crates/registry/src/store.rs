//! Schemas, subject versions, compatibility levels and topic metadata in SQL, through
//! one code path for SQLite (`sqlite://path`, the embedded default) and PostgreSQL
//! (`postgres://…`, shared by several registry replicas).
//!
//! Global schema ids belong to a schema's Parsing Canonical Form: registering the same
//! schema under another subject gives the same id. Ids come from an identity column
//! (AUTOINCREMENT on SQLite) and are never reused. Checking rules (compatibility,
//! metadata against the schema) is the caller's job; this module only stores.

use onepipe_core::metadata::{Compatibility, TopicMetadata};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::{Error, Result};

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i64,
    pub id: i64,
    pub schema: String,
    pub deleted: bool,
}

/// A topic metadata change: `metadata` is `None` when the topic was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicChange {
    pub seq: i64,
    pub topic: String,
    pub metadata: Option<TopicMetadata>,
}

/// Which version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(i64),
}

impl std::str::FromStr for VersionSpec {
    type Err = Error;

    /// `latest`, `-1` (Confluent's alias for latest) or a positive number.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "latest" | "-1" => Ok(VersionSpec::Latest),
            _ => match s.parse::<i64>() {
                Ok(n) if n > 0 => Ok(VersionSpec::Number(n)),
                _ => Err(Error::InvalidVersion(s.to_string())),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

const GLOBAL: &str = "";

impl Store {
    /// Connects to `sqlite://path` (created if missing) or `postgres://…` and applies the
    /// migrations.
    pub async fn open(url: &str) -> Result<Self> {
        install_default_drivers();
        let bad = |reason: &str| Error::DatabaseUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (connect_url, sqlite) = if let Some(rest) = url.strip_prefix("sqlite://") {
            if rest.is_empty() {
                return Err(bad("no path: expected sqlite://path/to/registry.db"));
            }
            let path = rest.split('?').next().unwrap_or(rest);
            if let Some(parent) = std::path::Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| bad(&format!("cannot create {}: {e}", parent.display())))?;
            }
            let sep = if rest.contains('?') { '&' } else { '?' };
            let with_mode = if rest.contains("mode=") {
                url.to_string()
            } else {
                format!("{url}{sep}mode=rwc")
            };
            (with_mode, true)
        } else if url.starts_with("sqlite:") {
            (url.to_string(), true)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), false)
        } else {
            return Err(bad(
                "expected sqlite://path or postgres://user:password@host:port/db",
            ));
        };
        // One writer at a time is all SQLite does; a single connection also keeps
        // an in-memory database (sqlite::memory:) one database.
        let max = if sqlite { 1 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(&connect_url)
            .await?;
        if sqlite {
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        } else {
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        }
        Ok(Store { pool })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// The id of a canonical form, if any subject ever registered it.
    pub async fn id_of(&self, canonical: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT id FROM schemas WHERE canonical = $1")
            .bind(canonical)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<i64, _>(0)))
    }

    /// The schema text of a global id.
    pub async fn schema_by_id(&self, id: i64) -> Result<String> {
        let row = sqlx::query("SELECT schema_text FROM schemas WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.get::<String, _>(0))
            .ok_or(Error::SchemaNotFound(id))
    }

    /// The live version of `subject` that holds `canonical`, if any.
    pub async fn find_in_subject(
        &self,
        subject: &str,
        canonical: &str,
    ) -> Result<Option<SubjectVersion>> {
        let row = sqlx::query(
            "SELECT v.subject, v.version, v.schema_id, s.schema_text, v.deleted \
             FROM subject_versions v JOIN schemas s ON s.id = v.schema_id \
             WHERE v.subject = $1 AND s.canonical = $2 AND v.deleted = 0 \
             ORDER BY v.version LIMIT 1",
        )
        .bind(subject)
        .bind(canonical)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| version_from_row(&r)))
    }

    /// Adds `schema` as the next version of `subject` (the id is shared with every other
    /// subject holding the same canonical form). Returns `None` when another writer took
    /// the version number first: the caller re-checks and tries again.
    /// The version number the next registration under `subject` takes: one above every
    /// version it ever had, soft-deleted ones included.
    pub async fn next_version(&self, subject: &str) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM subject_versions WHERE subject = $1",
        )
        .bind(subject)
        .fetch_one(&self.pool)
        .await?
        .get(0))
    }

    /// Inserts the schema as exactly `version` of `subject` (compare and insert): `None`
    /// when that version is taken already, by another registration that got there first.
    pub async fn insert_version(
        &self,
        subject: &str,
        canonical: &str,
        schema: &str,
        version: i64,
    ) -> Result<Option<SubjectVersion>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO schemas (canonical, schema_text) VALUES ($1, $2) ON CONFLICT (canonical) DO NOTHING")
            .bind(canonical)
            .bind(schema)
            .execute(&mut *tx)
            .await?;
        let id: i64 = sqlx::query("SELECT id FROM schemas WHERE canonical = $1")
            .bind(canonical)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        let next = version;
        let inserted = sqlx::query(
            "INSERT INTO subject_versions (subject, version, schema_id, deleted) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (subject, version) DO NOTHING",
        )
        .bind(subject)
        .bind(next)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        let stored: String = self.schema_by_id(id).await?;
        Ok(Some(SubjectVersion {
            subject: subject.to_string(),
            version: next,
            id,
            schema: stored,
            deleted: false,
        }))
    }

    /// One version of a subject; soft-deleted ones only with `include_deleted`.
    pub async fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        include_deleted: bool,
    ) -> Result<SubjectVersion> {
        let versions = self.versions(subject, include_deleted).await?;
        let wanted = match spec {
            VersionSpec::Latest => versions.last().copied(),
            VersionSpec::Number(n) => versions.contains(&n).then_some(n),
        };
        let Some(version) = wanted else {
            return Err(match spec {
                VersionSpec::Number(version) => Error::VersionNotFound {
                    subject: subject.to_string(),
                    version,
                },
                VersionSpec::Latest => Error::SubjectNotFound(subject.to_string()),
            });
        };
        let row = sqlx::query(
            "SELECT v.subject, v.version, v.schema_id, s.schema_text, v.deleted \
             FROM subject_versions v JOIN schemas s ON s.id = v.schema_id \
             WHERE v.subject = $1 AND v.version = $2",
        )
        .bind(subject)
        .bind(version)
        .fetch_one(&self.pool)
        .await?;
        Ok(version_from_row(&row))
    }

    /// Every version of a subject in order, schema included; live ones unless `include_deleted`.
    pub async fn all_versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<SubjectVersion>> {
        let rows = sqlx::query(
            "SELECT v.subject, v.version, v.schema_id, s.schema_text, v.deleted \
             FROM subject_versions v JOIN schemas s ON s.id = v.schema_id \
             WHERE v.subject = $1 AND (v.deleted = 0 OR $2 = 1) ORDER BY v.version",
        )
        .bind(subject)
        .bind(i64::from(include_deleted))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(version_from_row).collect())
    }

    /// Version numbers of a subject in order. A subject with none is not found.
    pub async fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT version FROM subject_versions WHERE subject = $1 AND (deleted = 0 OR $2 = 1) ORDER BY version",
        )
        .bind(subject)
        .bind(i64::from(include_deleted))
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_string()));
        }
        Ok(rows.iter().map(|r| r.get::<i64, _>(0)).collect())
    }

    /// Subjects with at least one version (live ones unless `include_deleted`), sorted.
    pub async fn subjects(&self, include_deleted: bool) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT subject FROM subject_versions WHERE deleted = 0 OR $1 = 1 ORDER BY subject",
        )
        .bind(i64::from(include_deleted))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }

    /// `(subject, version)` pairs that hold a schema id.
    pub async fn subjects_of_id(&self, id: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT subject, version FROM subject_versions WHERE schema_id = $1 AND deleted = 0 ORDER BY subject, version",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
            .collect())
    }

    /// Soft-deletes one version, or with `permanent` removes a soft-deleted one.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i64> {
        let v = self.version(subject, spec, permanent).await?;
        if permanent {
            if !v.deleted {
                return Err(Error::NotSoftDeleted {
                    subject: subject.to_string(),
                    version: v.version,
                });
            }
            sqlx::query("DELETE FROM subject_versions WHERE subject = $1 AND version = $2")
                .bind(subject)
                .bind(v.version)
                .execute(&self.pool)
                .await?;
        } else {
            sqlx::query(
                "UPDATE subject_versions SET deleted = 1 WHERE subject = $1 AND version = $2",
            )
            .bind(subject)
            .bind(v.version)
            .execute(&self.pool)
            .await?;
        }
        Ok(v.version)
    }

    /// Soft-deletes every live version of a subject (or removes every soft-deleted one
    /// with `permanent`), returning the version numbers.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        for v in self.all_versions(subject, permanent).await? {
            if permanent && !v.deleted {
                return Err(Error::NotSoftDeleted {
                    subject: subject.to_string(),
                    version: v.version,
                });
            }
            out.push(v.version);
        }
        if out.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_string()));
        }
        let sql = if permanent {
            "DELETE FROM subject_versions WHERE subject = $1"
        } else {
            "UPDATE subject_versions SET deleted = 1 WHERE subject = $1"
        };
        sqlx::query(sql).bind(subject).execute(&self.pool).await?;
        if permanent {
            sqlx::query("DELETE FROM compatibility WHERE subject = $1")
                .bind(subject)
                .execute(&self.pool)
                .await?;
        }
        Ok(out)
    }

    /// The level set for a subject (`None`: the global level), or the global one.
    pub async fn compatibility(&self, subject: Option<&str>) -> Result<Option<Compatibility>> {
        let row = sqlx::query("SELECT level FROM compatibility WHERE subject = $1")
            .bind(subject.unwrap_or(GLOBAL))
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let level: String = r.get(0);
                let parsed = level
                    .parse()
                    .map_err(|e| Error::Corrupt(format!("compatibility level: {e}")))?;
                Ok(Some(parsed))
            }
        }
    }

    /// The level that applies to `subject`: its own, else the global one, else BACKWARD.
    pub async fn effective_compatibility(&self, subject: &str) -> Result<Compatibility> {
        if let Some(c) = self.compatibility(Some(subject)).await? {
            return Ok(c);
        }
        Ok(self.compatibility(None).await?.unwrap_or_default())
    }

    pub async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO compatibility (subject, level) VALUES ($1, $2) \
             ON CONFLICT (subject) DO UPDATE SET level = excluded.level",
        )
        .bind(subject.unwrap_or(GLOBAL))
        .bind(level.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a level, returning what it was.
    pub async fn delete_compatibility(
        &self,
        subject: Option<&str>,
    ) -> Result<Option<Compatibility>> {
        let old = self.compatibility(subject).await?;
        sqlx::query("DELETE FROM compatibility WHERE subject = $1")
            .bind(subject.unwrap_or(GLOBAL))
            .execute(&self.pool)
            .await?;
        Ok(old)
    }

    /// Stores topic metadata. With `create`, a topic that exists is refused; without,
    /// a topic that does not exist is.
    pub async fn put_topic(&self, meta: &TopicMetadata, create: bool) -> Result<i64> {
        let json =
            serde_json::to_string(meta).map_err(|e| Error::InvalidMetadata(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        let affected = if create {
            sqlx::query("INSERT INTO topics (topic, metadata) VALUES ($1, $2) ON CONFLICT (topic) DO NOTHING")
        } else {
            sqlx::query("UPDATE topics SET metadata = $2 WHERE topic = $1")
        }
        .bind(&meta.topic)
        .bind(&json)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if affected == 0 {
            tx.rollback().await?;
            return Err(if create {
                Error::TopicExists(meta.topic.clone())
            } else {
                Error::TopicNotFound(meta.topic.clone())
            });
        }
        let seq = record_change(&mut tx, &meta.topic, Some(&json)).await?;
        tx.commit().await?;
        Ok(seq)
    }

    pub async fn topic(&self, topic: &str) -> Result<TopicMetadata> {
        let row = sqlx::query("SELECT metadata FROM topics WHERE topic = $1")
            .bind(topic)
            .fetch_optional(&self.pool)
            .await?;
        let row = row.ok_or_else(|| Error::TopicNotFound(topic.to_string()))?;
        parse_metadata(&row.get::<String, _>(0))
    }

    pub async fn topics(&self) -> Result<Vec<TopicMetadata>> {
        let rows = sqlx::query("SELECT metadata FROM topics ORDER BY topic")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(parse_metadata(&r.get::<String, _>(0))?);
        }
        Ok(out)
    }

    /// Topics whose metadata names `subject`.
    pub async fn topics_of_subject(&self, subject: &str) -> Result<Vec<TopicMetadata>> {
        let mut out = self.topics().await?;
        out.retain(|t| t.subject == subject);
        Ok(out)
    }

    pub async fn delete_topic(&self, topic: &str) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let affected = sqlx::query("DELETE FROM topics WHERE topic = $1")
            .bind(topic)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if affected == 0 {
            tx.rollback().await?;
            return Err(Error::TopicNotFound(topic.to_string()));
        }
        let seq = record_change(&mut tx, topic, None).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Changes after `seq`, oldest first: what a watcher has not seen yet.
    pub async fn topic_changes_since(&self, seq: i64) -> Result<Vec<TopicChange>> {
        let rows = sqlx::query(
            "SELECT seq, topic, metadata FROM topic_changes WHERE seq > $1 ORDER BY seq",
        )
        .bind(seq)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let metadata = match r.get::<Option<String>, _>(2) {
                Some(json) => Some(parse_metadata(&json)?),
                None => None,
            };
            out.push(TopicChange {
                seq: r.get(0),
                topic: r.get(1),
                metadata,
            });
        }
        Ok(out)
    }

    /// The newest change number (0 when there is none).
    pub async fn last_change(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM topic_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get(0))
    }
}

async fn record_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    topic: &str,
    json: Option<&str>,
) -> Result<i64> {
    let row =
        sqlx::query("INSERT INTO topic_changes (topic, metadata) VALUES ($1, $2) RETURNING seq")
            .bind(topic)
            .bind(json)
            .fetch_one(&mut **tx)
            .await?;
    Ok(row.get(0))
}

fn version_from_row(r: &sqlx::any::AnyRow) -> SubjectVersion {
    SubjectVersion {
        subject: r.get(0),
        version: r.get(1),
        id: r.get(2),
        schema: r.get(3),
        deleted: r.get::<i64, _>(4) != 0,
    }
}

fn parse_metadata(json: &str) -> Result<TopicMetadata> {
    serde_json::from_str(json).map_err(|e| Error::Corrupt(format!("topic metadata: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn behaviour_suite_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("onepipe-registry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/registry.db", dir.display());
        let store = Store::open(&url).await.unwrap();
        crate::test_suite::run(&store).await;
        // Reopening keeps the data and does not re-run migrations.
        drop(store);
        let again = Store::open(&url).await.unwrap();
        assert_eq!(
            again.subjects(false).await.unwrap(),
            vec!["a-value", "b-value", "race-value"]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn bad_urls_are_named() {
        for url in ["mysql://x", "sqlite://", "registry.db"] {
            let err = Store::open(url).await.unwrap_err().to_string();
            assert!(err.contains(url), "{err}");
        }
    }

    #[test]
    fn version_specs() {
        assert_eq!(
            "latest".parse::<VersionSpec>().unwrap(),
            VersionSpec::Latest
        );
        assert_eq!("-1".parse::<VersionSpec>().unwrap(), VersionSpec::Latest);
        assert_eq!("3".parse::<VersionSpec>().unwrap(), VersionSpec::Number(3));
        for bad in ["0", "-2", "x", ""] {
            assert!(
                matches!(bad.parse::<VersionSpec>(), Err(Error::InvalidVersion(_))),
                "{bad}"
            );
        }
    }
}
