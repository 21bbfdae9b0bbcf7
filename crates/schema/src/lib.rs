//! Avro schema rules of onepipe, shared by the registry (which enforces them) and the CLI
//! (which checks before it provisions): parsing, the identity of a schema, compatibility
//! between versions ([`compat`]) and whether a topic's metadata fits its schema.
//!
//! ```
//! use onepipe_core::metadata::TopicMetadata;
//!
//! let schema = onepipe_schema::parse(r#"{"type":"record","name":"T","fields":[{"name":"id","type":"string"}]}"#).unwrap();
//! let meta = TopicMetadata::new("t", vec!["id".into()]);
//! assert!(onepipe_schema::metadata_problems(&meta, &schema).is_empty());
//! ```

pub mod compat;
pub mod error;

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, ResolvedSchema};
use onepipe_core::metadata::{Check, MergeStrategy, TopicMetadata};

pub use error::{Error, Result};

/// Parses an Avro schema, naming what is wrong when it is not one
/// ([`Error::InvalidSchema`]).
pub fn parse(text: &str) -> Result<Schema> {
    Schema::parse_str(text).map_err(Error::InvalidSchema)
}

/// What makes two registrations "the same schema": the parsed schema written back as
/// compact JSON. Unlike the Parsing Canonical Form it keeps defaults, aliases and
/// logical types, which change how data is read; whitespace and key order do not count.
pub fn identity_key(schema: &Schema) -> Result<String> {
    serde_json::to_string(schema).map_err(Error::Identity)
}

/// What is wrong with `meta` given the schema its subject holds: every referenced field
/// must exist with a type fit for its role.
pub fn metadata_problems(meta: &TopicMetadata, schema: &Schema) -> Vec<String> {
    let names: HashMap<Name, &Schema> = match ResolvedSchema::try_from(schema) {
        Ok(r) => r.get_names().clone(),
        Err(e) => return vec![format!("schema: {e}")],
    };
    let mut problems = Vec::new();
    let mut need =
        |role: &str, path: &str, fits: fn(&Schema) -> bool, wanted: &str, nullable_ok: bool| {
            match field_at(schema, &names, path) {
                Err(e) => problems.push(format!("{role} field {path:?}: {e}")),
                Ok(t) => {
                    let (inner, nullable) = strip_null(t);
                    if nullable && !nullable_ok {
                        problems.push(format!("{role} field {path:?} must not be nullable"));
                    } else if !fits(resolve(inner, &names)) {
                        problems.push(format!(
                            "{role} field {path:?} is {}, expected {wanted}",
                            type_name(inner)
                        ));
                    }
                }
            }
        };
    for p in &meta.unique_key {
        need(
            "unique_key",
            p,
            is_key_type,
            "a string, int, long, bytes, enum, fixed, uuid, date or timestamp",
            false,
        );
    }
    for p in &meta.sort_key {
        need(
            "sort_key",
            p,
            is_scalar,
            "a scalar (not a record, array or map)",
            true,
        );
    }
    if let Some(p) = &meta.partition_time {
        need(
            "partition_time",
            p,
            is_time,
            "a timestamp or date logical type",
            false,
        );
    }
    match &meta.merge {
        MergeStrategy::FirstSeen => {}
        MergeStrategy::MaxBy(p) => need(
            "merge max_by",
            p,
            is_number,
            "an int, long, float, double, date or timestamp",
            false,
        ),
        MergeStrategy::VectorClock(p) => {
            need("merge vector_clock", p, is_clock, "a map of long", false)
        }
    }
    for c in &meta.checks {
        match c {
            Check::Sum(p) => need(
                "sum",
                p,
                is_summable,
                "an int, long, float, double or decimal",
                true,
            ),
            Check::Min(p) | Check::Max(p) => need(
                "min/max",
                p,
                is_scalar,
                "a scalar (not a record, array or map)",
                true,
            ),
            Check::CountDistinctUniqueKey | Check::RowChecksum => {}
        }
    }
    problems
}

fn resolve<'a>(s: &'a Schema, names: &HashMap<Name, &'a Schema>) -> &'a Schema {
    match s {
        Schema::Ref { name } => names.get(name).copied().unwrap_or(s),
        _ => s,
    }
}

/// `["null", T]` and `[T, "null"]` are a nullable T.
fn strip_null(s: &Schema) -> (&Schema, bool) {
    if let Schema::Union(u) = s {
        let non_null: Vec<&Schema> = u
            .variants()
            .iter()
            .filter(|v| !matches!(v, Schema::Null))
            .collect();
        if non_null.len() == 1 && u.variants().len() == 2 {
            return (non_null[0], true);
        }
    }
    (s, false)
}

/// The type of the field at a dotted path, walking through (nullable) records.
fn field_at<'a>(
    root: &'a Schema,
    names: &HashMap<Name, &'a Schema>,
    path: &str,
) -> Result<&'a Schema> {
    let mut current = root;
    let mut walked = String::new();
    for part in path.split('.') {
        let (inner, _) = strip_null(resolve(current, names));
        let Schema::Record(r) = resolve(inner, names) else {
            return Err(Error::NotARecord {
                path: walked,
                field: part.to_string(),
            });
        };
        let Some(&i) = r.lookup.get(part) else {
            return Err(if walked.is_empty() {
                Error::NoField {
                    field: part.to_string(),
                    record: r.name.fullname(None),
                }
            } else {
                Error::NoFieldIn {
                    field: part.to_string(),
                    path: walked,
                }
            });
        };
        current = &r.fields[i].schema;
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(part);
    }
    Ok(current)
}

fn type_name(s: &Schema) -> String {
    match s {
        Schema::Ref { name } => name.fullname(None),
        Schema::Union(_) => "a union".to_string(),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
    }
}

fn is_time(s: &Schema) -> bool {
    matches!(
        s,
        Schema::Date
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
    )
}

fn is_key_type(s: &Schema) -> bool {
    is_time(s)
        || matches!(
            s,
            Schema::String
                | Schema::Int
                | Schema::Long
                | Schema::Bytes
                | Schema::Enum(_)
                | Schema::Fixed(_)
                | Schema::Uuid(_)
        )
}

fn is_number(s: &Schema) -> bool {
    is_time(s)
        || matches!(
            s,
            Schema::Int | Schema::Long | Schema::Float | Schema::Double
        )
}

fn is_summable(s: &Schema) -> bool {
    matches!(
        s,
        Schema::Int
            | Schema::Long
            | Schema::Float
            | Schema::Double
            | Schema::Decimal(_)
            | Schema::BigDecimal
    )
}

fn is_scalar(s: &Schema) -> bool {
    !matches!(
        s,
        Schema::Record(_) | Schema::Array(_) | Schema::Map(_) | Schema::Union(_) | Schema::Null
    )
}

fn is_clock(s: &Schema) -> bool {
    matches!(s, Schema::Map(m) if matches!(*m.types, Schema::Long))
}
