//! gRPC messages, clients and servers generated from `proto/` at build time
//! (generated code is not committed).
//!
//! ```no_run
//! use onepipe_proto::registry::v1::registry_client::RegistryClient;
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = RegistryClient::connect("http://127.0.0.1:8090").await?;
//! # Ok(()) }
//! ```

pub mod registry {
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("onepipe.registry.v1");
    }
}

mod convert {
    //! Topic metadata between its wire form and `onepipe_core`'s type, in one place.
    use onepipe_core::metadata::TopicMetadata;

    use crate::registry::v1 as pb;

    impl From<&TopicMetadata> for pb::TopicMetadata {
        fn from(m: &TopicMetadata) -> Self {
            pb::TopicMetadata {
                topic: m.topic.clone(),
                subject: m.subject.clone(),
                owner: m.owner.clone(),
                description: m.description.clone(),
                compatibility: m.compatibility.to_string(),
                unique_key: m.unique_key.clone(),
                sort_key: m.sort_key.clone(),
                partition_time: m.partition_time.clone().unwrap_or_default(),
                merge: m.merge.to_string(),
                checks: m.checks.iter().map(ToString::to_string).collect(),
                deletes: m.deletes,
            }
        }
    }

    impl TryFrom<pb::TopicMetadata> for TopicMetadata {
        type Error = onepipe_core::Error;

        /// Empty fields take DESIGN.md's defaults (subject `<topic>-value`, BACKWARD,
        /// `first_seen`, the Kafka timestamp).
        fn try_from(m: pb::TopicMetadata) -> Result<Self, Self::Error> {
            let mut out = TopicMetadata::new(m.topic, m.unique_key);
            if !m.subject.is_empty() {
                out.subject = m.subject;
            }
            out.owner = m.owner;
            out.description = m.description;
            if !m.compatibility.is_empty() {
                out.compatibility = m.compatibility.parse()?;
            }
            out.sort_key = m.sort_key;
            out.partition_time = Some(m.partition_time).filter(|p| !p.is_empty());
            if !m.merge.is_empty() {
                out.merge = m.merge.parse()?;
            }
            for c in m.checks {
                out.checks.push(c.parse()?);
            }
            out.deletes = m.deletes;
            Ok(out)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip_and_defaults() {
            let mut m = TopicMetadata::new("orders", vec!["id".into()]);
            m.merge = "max_by(v)".parse().unwrap();
            m.partition_time = Some("at".into());
            m.checks = vec!["sum(amount)".parse().unwrap()];
            m.deletes = true;
            let wire = pb::TopicMetadata::from(&m);
            assert_eq!(TopicMetadata::try_from(wire).unwrap(), m);

            let sparse = pb::TopicMetadata {
                topic: "orders".into(),
                unique_key: vec!["id".into()],
                ..Default::default()
            };
            assert_eq!(
                TopicMetadata::try_from(sparse).unwrap(),
                TopicMetadata::new("orders", vec!["id".into()])
            );
            let bad = pb::TopicMetadata {
                merge: "latest".into(),
                ..Default::default()
            };
            assert!(TopicMetadata::try_from(bad).is_err());
        }
    }
}
