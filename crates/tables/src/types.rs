//! Table columns from an Avro schema: the type mapping.
//!
//! | Avro | PostgreSQL | SQLite | Redshift |
//! |---|---|---|---|
//! | `boolean` | `boolean` | `boolean` (0/1) | `boolean` |
//! | `int` | `integer` | `integer` | `integer` |
//! | `long` | `bigint` | `bigint` | `bigint` |
//! | `float` | `real` | `real` | `real` |
//! | `double` | `double precision` | `double precision` | `double precision` |
//! | `string`, `enum`, `uuid`, `big-decimal` | `text` | `text` | `varchar(65535)` |
//! | `bytes`, `fixed` | `bytea` | `blob` | `varbyte(1024000)` |
//! | `date` | `date` | `date` (text `YYYY-MM-DD`) | `date` |
//! | `time-millis/micros` | `time` | `time` (text) | `time` |
//! | `timestamp-millis/micros/nanos` | `timestamptz` | `timestamptz` (text, UTC, `Z`) | `timestamptz` |
//! | `local-timestamp-*` | `timestamp` | `timestamp` (text) | `timestamp` |
//! | `decimal(p, s)` | `numeric(p,s)` | `text` (exact digits) | `numeric(p,s)` |
//! | record, array, map, other unions, `duration` | `jsonb` | `json` (text) | `super` |
//! | `[null, T]` | as `T` | as `T` | as `T` |
//!
//! Every data column is nullable: the schema, not the table, guarantees non-null, and a
//! field dropped by a later schema must leave its column able to take NULL.
//! Nested values are JSON as the client's `to_json` writes them (bytes base64, decimals
//! as strings, timestamps RFC 3339, other unions `{"branch": value}`).

use std::collections::HashMap;

use apache_avro::Schema as Avro;
use apache_avro::schema::{DecimalSchema, Name, NamespaceRef, ResolvedSchema, UuidSchema};

use crate::error::{Error, Result};
use crate::names::column_name;

/// The columns every table has after the schema's fields.
pub const PARTITION: &str = "_kafka_partition";
pub const OFFSET: &str = "_kafka_offset";
pub const TIMESTAMP: &str = "_kafka_timestamp";
pub const DATE: &str = "_date";
/// In clean files, not in warehouse tables.
pub const SCHEMA_ID: &str = "_schema_id";

/// Which SQL dialect a warehouse speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
    Redshift,
}

/// The time unit of a timestamp or time column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Millis,
    Micros,
    Nanos,
}

/// What a column holds, independent of the warehouse.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Text,
    Bytes,
    Date,
    Time(Unit),
    /// UTC instant (`true`) or local date-time (`false`).
    Timestamp(Unit, bool),
    Decimal(u8, i8),
    Json(Shape),
}

/// How a nested value renders as JSON: Arrow types say everything except whether a
/// struct stands for a record or a union (which renders as `{"branch": value}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Leaf,
    Record(Vec<Shape>),
    Union(Vec<Shape>),
    List(Box<Shape>),
    Map(Box<Shape>),
}

/// One column of a dataset's table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column name in the warehouse.
    pub name: String,
    /// The column name in clean files (the Avro field name, or the `_kafka_*` name).
    pub source: String,
    pub kind: Kind,
}

impl Kind {
    /// The SQL type, spelt as the warehouse reports it back (PostgreSQL's `format_type`).
    pub fn sql_type(&self, dialect: Dialect) -> String {
        use Dialect::*;
        let s = match (self, dialect) {
            (Kind::Boolean, _) => "boolean",
            (Kind::Int, _) => "integer",
            (Kind::Long, _) => "bigint",
            (Kind::Float, _) => "real",
            (Kind::Double, _) => "double precision",
            (Kind::Text, Redshift) => "character varying(65535)",
            (Kind::Text, _) => "text",
            (Kind::Bytes, Postgres) => "bytea",
            (Kind::Bytes, Sqlite) => "blob",
            (Kind::Bytes, Redshift) => "varbyte(1024000)",
            (Kind::Date, _) => "date",
            (Kind::Time(_), Sqlite) => "time",
            (Kind::Time(_), _) => "time without time zone",
            (Kind::Timestamp(_, true), Sqlite) => "timestamptz",
            (Kind::Timestamp(_, false), Sqlite) => "timestamp",
            (Kind::Timestamp(_, true), _) => "timestamp with time zone",
            (Kind::Timestamp(_, false), _) => "timestamp without time zone",
            (Kind::Decimal(_, _), Sqlite) => "text",
            (Kind::Decimal(p, s), _) => return format!("numeric({p},{s})"),
            (Kind::Json(_), Postgres) => "jsonb",
            (Kind::Json(_), Sqlite) => "json",
            (Kind::Json(_), Redshift) => "super",
        };
        s.to_string()
    }
}

/// The same type in two spellings (`int8` and `bigint`, `varchar` and `character varying`).
pub fn same_type(a: &str, b: &str) -> bool {
    canonical(a) == canonical(b)
}

fn canonical(t: &str) -> String {
    let t = t.trim().to_ascii_lowercase();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    let (base, args) = match t.find('(') {
        Some(i) => (t[..i].trim().to_string(), t[i..].replace(' ', "")),
        None => (t.clone(), String::new()),
    };
    let base = match base.as_str() {
        "int8" => "bigint",
        "int" | "int4" => "integer",
        "float8" | "float" => "double precision",
        "float4" => "real",
        "bool" => "boolean",
        "timestamptz" => "timestamp with time zone",
        "timestamp" => "timestamp without time zone",
        "time" => "time without time zone",
        "varchar" => "character varying",
        "decimal" => "numeric",
        other => other,
    };
    format!("{base}{args}")
}

/// The columns of a table for a record schema: one per top-level field, then the Kafka
/// columns and `_date`. Errors name the field that cannot be mapped.
pub fn columns(schema: &Avro) -> Result<Vec<Column>> {
    let resolver = Resolver::new(schema)?;
    let (root, ns) = resolver.deref(schema, None)?;
    let Avro::Record(record) = root else {
        return Err(Error::NotARecord);
    };
    let mut out: Vec<Column> = Vec::new();
    for field in &record.fields {
        let kind = resolver.kind(&field.schema, ns).map_err(|e| Error::Field {
            field: field.name.clone(),
            reason: Box::new(e),
        })?;
        out.push(Column {
            name: column_name(&field.name),
            source: field.name.clone(),
            kind,
        });
    }
    let reserved = [PARTITION, OFFSET, TIMESTAMP, DATE, SCHEMA_ID];
    for c in &out {
        if reserved.contains(&c.name.as_str()) {
            return Err(Error::ReservedColumn {
                field: c.source.clone(),
                column: c.name.clone(),
            });
        }
    }
    for (i, a) in out.iter().enumerate() {
        if let Some(b) = out[..i].iter().find(|b| b.name == a.name) {
            return Err(Error::SameColumn {
                first: b.source.clone(),
                second: a.source.clone(),
                column: a.name.clone(),
            });
        }
    }
    for (name, kind) in [
        (PARTITION, Kind::Int),
        (OFFSET, Kind::Long),
        (TIMESTAMP, Kind::Timestamp(Unit::Millis, true)),
    ] {
        out.push(Column {
            name: name.to_string(),
            source: name.to_string(),
            kind,
        });
    }
    Ok(out)
}

struct Resolver {
    names: HashMap<Name, Avro>,
}

impl Resolver {
    fn new(schema: &Avro) -> Result<Self> {
        let resolved = ResolvedSchema::try_from(schema).map_err(Error::Avro)?;
        let names = resolved
            .get_names()
            .iter()
            .map(|(k, v)| (k.clone(), (*v).clone()))
            .collect();
        Ok(Resolver { names })
    }

    fn deref<'a>(
        &'a self,
        schema: &'a Avro,
        ns: NamespaceRef<'a>,
    ) -> Result<(&'a Avro, NamespaceRef<'a>)> {
        let schema = match schema {
            Avro::Ref { name } => {
                let full = name.fully_qualified_name(ns);
                self.names
                    .get(full.as_ref())
                    .ok_or_else(|| Error::UnknownType(full.fullname(None)))?
            }
            other => other,
        };
        let ns = match schema {
            Avro::Record(r) => r.name.namespace(),
            Avro::Enum(e) => e.name.namespace(),
            Avro::Fixed(f) | Avro::Duration(f) => f.name.namespace(),
            _ => ns,
        };
        Ok((schema, ns))
    }

    fn kind(&self, schema: &Avro, ns: NamespaceRef<'_>) -> Result<Kind> {
        let (schema, ns) = self.deref(schema, ns)?;
        Ok(match schema {
            Avro::Null => Kind::Text,
            Avro::Boolean => Kind::Boolean,
            Avro::Int => Kind::Int,
            Avro::Long => Kind::Long,
            Avro::Float => Kind::Float,
            Avro::Double => Kind::Double,
            Avro::String | Avro::Enum(_) | Avro::BigDecimal => Kind::Text,
            Avro::Uuid(UuidSchema::String) => Kind::Text,
            // A uuid stored as bytes or fixed is read as its string form by copydog.
            Avro::Uuid(_) => Kind::Text,
            Avro::Bytes | Avro::Fixed(_) => Kind::Bytes,
            Avro::Date => Kind::Date,
            Avro::TimeMillis => Kind::Time(Unit::Millis),
            Avro::TimeMicros => Kind::Time(Unit::Micros),
            Avro::TimestampMillis => Kind::Timestamp(Unit::Millis, true),
            Avro::TimestampMicros => Kind::Timestamp(Unit::Micros, true),
            Avro::TimestampNanos => Kind::Timestamp(Unit::Nanos, true),
            Avro::LocalTimestampMillis => Kind::Timestamp(Unit::Millis, false),
            Avro::LocalTimestampMicros => Kind::Timestamp(Unit::Micros, false),
            Avro::LocalTimestampNanos => Kind::Timestamp(Unit::Nanos, false),
            Avro::Decimal(d) => decimal(d)?,
            Avro::Union(u) => {
                let non_null: Vec<&Avro> =
                    u.variants().iter().filter(|v| **v != Avro::Null).collect();
                match non_null[..] {
                    [only] => self.kind(only, ns)?,
                    _ => Kind::Json(self.shape(schema, ns)?),
                }
            }
            Avro::Record(_) | Avro::Array(_) | Avro::Map(_) | Avro::Duration(_) => {
                Kind::Json(self.shape(schema, ns)?)
            }
            Avro::Ref { .. } => return Err(Error::UnresolvedReference),
        })
    }

    fn shape(&self, schema: &Avro, ns: NamespaceRef<'_>) -> Result<Shape> {
        let (schema, ns) = self.deref(schema, ns)?;
        Ok(match schema {
            Avro::Record(r) => {
                let mut fields = Vec::with_capacity(r.fields.len());
                for f in &r.fields {
                    fields.push(self.shape(&f.schema, ns)?);
                }
                Shape::Record(fields)
            }
            Avro::Array(a) => Shape::List(Box::new(self.shape(&a.items, ns)?)),
            Avro::Map(m) => Shape::Map(Box::new(self.shape(&m.types, ns)?)),
            Avro::Union(u) => {
                let non_null: Vec<&Avro> =
                    u.variants().iter().filter(|v| **v != Avro::Null).collect();
                if let [only] = non_null[..] {
                    return self.shape(only, ns);
                }
                let mut branches = Vec::with_capacity(non_null.len());
                for v in non_null {
                    branches.push(self.shape(v, ns)?);
                }
                Shape::Union(branches)
            }
            Avro::Duration(_) => Shape::Record(vec![Shape::Leaf; 3]),
            _ => Shape::Leaf,
        })
    }
}

fn decimal(d: &DecimalSchema) -> Result<Kind> {
    let p = u8::try_from(d.precision).map_err(|_| Error::DecimalPrecision(d.precision))?;
    let s = i8::try_from(d.scale).map_err(|_| Error::DecimalScale(d.scale))?;
    if p > 38 {
        return Err(Error::DecimalPrecision(d.precision));
    }
    Ok(Kind::Decimal(p, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
        {"name":"Order_ID","type":"string"},
        {"name":"n","type":"long"},
        {"name":"i","type":"int"},
        {"name":"f","type":"float"},
        {"name":"d","type":"double"},
        {"name":"ok","type":"boolean"},
        {"name":"raw","type":"bytes"},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"local","type":{"type":"long","logicalType":"local-timestamp-micros"}},
        {"name":"day","type":{"type":"int","logicalType":"date"}},
        {"name":"total","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
        {"name":"status","type":{"type":"enum","name":"S","symbols":["A","B"]}},
        {"name":"id","type":{"type":"string","logicalType":"uuid"}},
        {"name":"note","type":["null","string"],"default":null},
        {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item",
            "fields":[{"name":"sku","type":"string"},{"name":"qty","type":"int"}]}}},
        {"name":"clock","type":{"type":"map","values":"long"}},
        {"name":"either","type":["null","int","string"],"default":null},
        {"name":"ship","type":["null","Item"],"default":null},
        {"name":"select","type":"string"}
    ]}"#;

    #[test]
    fn the_documented_mapping() {
        let schema = Avro::parse_str(SCHEMA).unwrap();
        let cols = columns(&schema).unwrap();
        let pg: Vec<(String, String)> = cols
            .iter()
            .map(|c| (c.name.clone(), c.kind.sql_type(Dialect::Postgres)))
            .collect();
        let want = [
            ("Order_ID", "text"),
            ("n", "bigint"),
            ("i", "integer"),
            ("f", "real"),
            ("d", "double precision"),
            ("ok", "boolean"),
            ("raw", "bytea"),
            ("at", "timestamp with time zone"),
            ("local", "timestamp without time zone"),
            ("day", "date"),
            ("total", "numeric(10,2)"),
            ("status", "text"),
            ("id", "text"),
            ("note", "text"),
            ("items", "jsonb"),
            ("clock", "jsonb"),
            ("either", "jsonb"),
            ("ship", "jsonb"),
            ("select", "text"),
            ("_kafka_partition", "integer"),
            ("_kafka_offset", "bigint"),
            ("_kafka_timestamp", "timestamp with time zone"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(pg, want);
        assert_eq!(cols[0].source, "Order_ID");
        assert_eq!(
            cols[16].kind,
            Kind::Json(Shape::Union(vec![Shape::Leaf, Shape::Leaf]))
        );
        assert_eq!(
            cols[17].kind,
            Kind::Json(Shape::Record(vec![Shape::Leaf, Shape::Leaf]))
        );
        let sqlite: Vec<String> = cols
            .iter()
            .map(|c| c.kind.sql_type(Dialect::Sqlite))
            .collect();
        assert_eq!(sqlite[6], "blob");
        assert_eq!(sqlite[10], "text");
        assert_eq!(sqlite[14], "json");
        let rs: Vec<String> = cols
            .iter()
            .map(|c| c.kind.sql_type(Dialect::Redshift))
            .collect();
        assert_eq!(rs[0], "character varying(65535)");
        assert_eq!(rs[6], "varbyte(1024000)");
        assert_eq!(rs[14], "super");
    }

    #[test]
    fn clashing_fields_are_refused() {
        let s = Avro::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"_date","type":"long"}]}"#,
        )
        .unwrap();
        assert!(columns(&s).unwrap_err().to_string().contains("_date"));
        let long = "x".repeat(70);
        let s = Avro::parse_str(&format!(
            r#"{{"type":"record","name":"R","fields":[{{"name":"{long}a","type":"long"}},
            {{"name":"{long}b","type":"long"}}]}}"#
        ))
        .unwrap();
        let cols = columns(&s).unwrap();
        assert_ne!(cols[0].name, cols[1].name, "cut names stay apart");
    }

    #[test]
    fn type_spellings() {
        assert!(same_type("int8", "bigint"));
        assert!(same_type("NUMERIC(10, 2)", "numeric(10,2)"));
        assert!(same_type("timestamptz", "timestamp with time zone"));
        assert!(same_type("varchar(65535)", "character varying(65535)"));
        assert!(!same_type("numeric(10,2)", "numeric(12,2)"));
        assert!(!same_type("bigint", "text"));
    }
}
