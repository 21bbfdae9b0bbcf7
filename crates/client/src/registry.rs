//! A caching gRPC client of the onepipe registry.
//!
//! Schemas by id and pinned subject versions never change once registered, so they
//! are cached for good. A topic's metadata and its latest schema version can change:
//! they are cached for a short time (`ttl`) and dropped early when the registry's
//! watch stream reports a change to the topic.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use apache_avro::Schema;
use onepipe_core::metadata::TopicMetadata;
use onepipe_proto::registry::v1 as pb;
use onepipe_proto::registry::v1::registry_client::RegistryClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Code, Request};

use crate::error::{Error, Result};

/// How to reach the registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Bearer token (the registry's read or admin token) when it requires one.
    pub token: Option<String>,
    /// PEM of the CA that signed the registry's certificate, for `https://` URLs.
    pub tls_ca_pem: Option<String>,
    /// How long topic metadata and latest versions are trusted without asking again.
    pub ttl: Duration,
    /// Follow the registry's topic watch stream to drop changed topics early.
    pub watch: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            token: None,
            tls_ca_pem: None,
            ttl: Duration::from_secs(10),
            watch: true,
        }
    }
}

/// One registered schema version, parsed.
#[derive(Debug)]
pub struct RegisteredSchema {
    pub subject: String,
    pub version: i64,
    pub id: u32,
    pub schema: Schema,
}

/// A topic as a producer needs it: its metadata and its latest schema.
#[derive(Debug)]
pub struct Topic {
    pub metadata: TopicMetadata,
    pub latest: Arc<RegisteredSchema>,
}

/// A cheap-to-clone handle on the registry with caches shared by all clones.
#[derive(Clone)]
pub struct SchemaRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    client: RegistryClient<Channel>,
    token: Option<String>,
    ttl: Duration,
    by_id: RwLock<HashMap<u32, Arc<Schema>>>,
    versions: RwLock<HashMap<(String, i64), Arc<RegisteredSchema>>>,
    topics: RwLock<HashMap<String, (Instant, Arc<Topic>)>>,
}

impl SchemaRegistry {
    /// A client of the registry at `url` (`http://host:port` or `https://…`). The
    /// connection is made on first use, so a registry that is down yet fails the first
    /// call (with [`Error::Registry`]), not this one.
    pub fn connect(url: &str, opts: RegistryOptions) -> Result<Self> {
        let connect_error = |message: String| Error::Connect {
            url: url.to_string(),
            message,
        };
        let mut endpoint = Channel::from_shared(url.to_string())
            .map_err(|e| connect_error(format!("not a valid URL: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if url.starts_with("https://") {
            let Some(pem) = &opts.tls_ca_pem else {
                return Err(connect_error(
                    "the URL is https: the CA certificate (--tls-ca) is needed".to_string(),
                ));
            };
            onepipe_core::tls::install_provider();
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                .map_err(|e| connect_error(e.to_string()))?;
        }
        let inner = Arc::new(Inner {
            url: url.to_string(),
            client: RegistryClient::new(endpoint.connect_lazy()),
            token: opts.token,
            ttl: opts.ttl,
            by_id: RwLock::default(),
            versions: RwLock::default(),
            topics: RwLock::default(),
        });
        if opts.watch {
            tokio::spawn(watch(Arc::downgrade(&inner)));
        }
        Ok(SchemaRegistry { inner })
    }

    /// The registry's URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The schema with this global id; cached for good.
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>> {
        if let Some(s) = read(&self.inner.by_id).get(&id) {
            return Ok(s.clone());
        }
        let reply = self
            .client()
            .get_schema(self.request(pb::GetSchemaRequest { id: id.into() }))
            .await
            .map_err(|s| match s.code() {
                Code::NotFound => Error::UnknownSchemaId(id),
                _ => registry_error(s),
            })?
            .into_inner();
        let schema = Arc::new(parse(&reply.schema, &format!("schema id {id}"))?);
        write(&self.inner.by_id).insert(id, schema.clone());
        Ok(schema)
    }

    /// A pinned version of a subject; cached for good.
    pub async fn version(&self, subject: &str, version: i64) -> Result<Arc<RegisteredSchema>> {
        let key = (subject.to_string(), version);
        if let Some(s) = read(&self.inner.versions).get(&key) {
            return Ok(s.clone());
        }
        let v = self.fetch_version(subject, version).await?;
        write(&self.inner.versions).insert(key, v.clone());
        Ok(v)
    }

    /// The topic's metadata and latest schema, at most `ttl` old.
    pub async fn topic(&self, topic: &str) -> Result<Arc<Topic>> {
        if let Some((at, t)) = read(&self.inner.topics).get(topic)
            && at.elapsed() < self.inner.ttl
        {
            return Ok(t.clone());
        }
        let pb_meta = self
            .client()
            .get_topic(self.request(pb::GetTopicRequest {
                topic: topic.to_string(),
            }))
            .await
            .map_err(|s| match s.code() {
                Code::NotFound => Error::UnknownTopic(topic.to_string()),
                _ => registry_error(s),
            })?
            .into_inner();
        let metadata = TopicMetadata::try_from(pb_meta).map_err(|e| Error::BadRegistryData {
            what: format!("metadata of topic {topic:?}"),
            message: e.to_string(),
        })?;
        let latest = self.fetch_version(&metadata.subject, -1).await?;
        let t = Arc::new(Topic { metadata, latest });
        write(&self.inner.topics).insert(topic.to_string(), (Instant::now(), t.clone()));
        Ok(t)
    }

    /// Forgets what is cached about a topic, so the next call asks the registry.
    pub fn invalidate(&self, topic: &str) {
        write(&self.inner.topics).remove(topic);
    }

    /// The names of every registered topic.
    pub async fn topic_names(&self) -> Result<Vec<String>> {
        let reply = self
            .client()
            .list_topics(self.request(pb::ListTopicsRequest {}))
            .await
            .map_err(registry_error)?
            .into_inner();
        Ok(reply.topics.into_iter().map(|t| t.topic).collect())
    }

    /// Whether the registry answers (for readiness checks).
    pub async fn ping(&self) -> Result<()> {
        self.client()
            .list_subjects(self.request(pb::ListSubjectsRequest {
                include_deleted: false,
            }))
            .await
            .map_err(registry_error)?;
        Ok(())
    }

    async fn fetch_version(&self, subject: &str, version: i64) -> Result<Arc<RegisteredSchema>> {
        let reply = self
            .client()
            .get_subject_version(self.request(pb::GetSubjectVersionRequest {
                subject: subject.to_string(),
                version,
                include_deleted: false,
            }))
            .await
            .map_err(|s| match s.code() {
                Code::NotFound => Error::UnknownVersion {
                    subject: subject.to_string(),
                    version,
                },
                _ => registry_error(s),
            })?
            .into_inner();
        let what = format!("subject {subject:?} version {}", reply.version);
        let id = u32::try_from(reply.id).map_err(|_| Error::BadRegistryData {
            what: what.clone(),
            message: format!("schema id {} is outside 0..2^32", reply.id),
        })?;
        let schema = parse(&reply.schema, &what)?;
        write(&self.inner.by_id)
            .entry(id)
            .or_insert_with(|| Arc::new(schema.clone()));
        Ok(Arc::new(RegisteredSchema {
            subject: reply.subject,
            version: reply.version,
            id,
            schema,
        }))
    }

    /// The registry's topic changes after `after_seq` (0: every topic there is, then each
    /// change as it happens), until the stream ends or fails.
    pub async fn watch_topics(&self, after_seq: i64) -> Result<TopicWatch> {
        let stream = self
            .client()
            .watch_topics(self.request(pb::WatchTopicsRequest { after_seq }))
            .await
            .map_err(registry_error)?
            .into_inner();
        Ok(TopicWatch(stream))
    }

    fn client(&self) -> RegistryClient<Channel> {
        self.inner.client.clone()
    }

    fn request<T>(&self, msg: T) -> Request<T> {
        authorized(msg, self.inner.token.as_deref())
    }
}

/// One change to the registry's topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicEvent {
    /// Where the change is in the registry's change log; watch again after it to go on.
    pub seq: i64,
    pub topic: String,
    /// `false` when the topic was deleted.
    pub present: bool,
}

/// The stream of [`SchemaRegistry::watch_topics`].
pub struct TopicWatch(tonic::Streaming<pb::TopicEvent>);

impl TopicWatch {
    /// The next change; `None` when the registry ended the stream.
    pub async fn next(&mut self) -> Result<Option<TopicEvent>> {
        match self.0.message().await {
            Ok(Some(e)) => Ok(Some(TopicEvent {
                seq: e.seq,
                present: e.metadata.is_some(),
                topic: e.topic,
            })),
            Ok(None) => Ok(None),
            Err(s) => Err(registry_error(s)),
        }
    }
}

fn authorized<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = token
        && let Ok(v) = format!("Bearer {t}").parse()
    {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// Follows the registry's topic changes for as long as a client is alive, dropping
/// changed topics from the cache; reconnects after errors.
async fn watch(inner: Weak<Inner>) {
    let mut after_seq = 0;
    loop {
        let (mut client, token) = match inner.upgrade() {
            Some(i) => (i.client.clone(), i.token.clone()),
            None => return,
        };
        let started = client
            .watch_topics(authorized(
                pb::WatchTopicsRequest { after_seq },
                token.as_deref(),
            ))
            .await;
        if let Ok(stream) = started {
            let mut stream = stream.into_inner();
            while let Ok(Some(event)) = stream.message().await {
                let Some(i) = inner.upgrade() else { return };
                after_seq = event.seq;
                write(&i.topics).remove(&event.topic);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn registry_error(s: tonic::Status) -> Error {
    match s.code() {
        Code::Unavailable => Error::Registry(format!("unavailable ({})", s.message())),
        Code::Unauthenticated | Code::PermissionDenied => {
            Error::Registry(format!("access refused: {}", s.message()))
        }
        _ => Error::Registry(s.message().to_string()),
    }
}

fn parse(text: &str, what: &str) -> Result<Schema> {
    Schema::parse_str(text).map_err(|e| Error::BadRegistryData {
        what: what.to_string(),
        message: e.to_string(),
    })
}

// A poisoned lock only means another thread panicked while holding a cache; the
// maps stay consistent (single inserts and removes), so keep using them.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
