//! Avro schemas and values as Arrow types and columns, as DESIGN.md maps them:
//! record→struct, array→list, map→map, `[null, T]`→nullable T, enum→utf8,
//! fixed/bytes→binary, decimal→decimal128, timestamp logical types→timestamp.
//!
//! Other unions become a struct with one nullable field per branch (named like the
//! JSON mapping's branch names), of which exactly one is set. Map entries are sorted
//! by key so that the same records always give the same bytes.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema as Avro;
use apache_avro::schema::{
    DecimalSchema, InnerDecimalSchema, Name, NamespaceRef, ResolvedSchema, UuidSchema,
};
use apache_avro::types::Value;
use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int32Array, Int64Array, ListArray, MapArray, NullArray, StringArray, StructArray,
    Time32MillisecondArray, Time64MicrosecondArray, TimestampMicrosecondArray,
    TimestampNanosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, TimeUnit};

use crate::error::{Error, Result};

/// An Avro schema with its named types, ready to map values of it.
pub struct Mapping {
    root: Avro,
    names: HashMap<Name, Avro>,
}

impl Mapping {
    pub fn new(schema: &Avro) -> Result<Self> {
        let resolved = ResolvedSchema::try_from(schema).map_err(Error::Names)?;
        let names = resolved
            .get_names()
            .iter()
            .map(|(k, v)| (k.clone(), (*v).clone()))
            .collect();
        Ok(Mapping {
            root: schema.clone(),
            names,
        })
    }

    pub fn schema(&self) -> &Avro {
        &self.root
    }

    /// The Arrow fields of the top-level record's fields.
    pub fn fields(&self) -> Result<Fields> {
        let (schema, ns) = self.deref(&self.root, None)?;
        let Avro::Record(record) = schema else {
            return Err(Error::NotARecord);
        };
        let mut out = Vec::new();
        for f in &record.fields {
            let (dt, nullable) = self.data_type(&f.schema, ns)?;
            out.push(Field::new(&f.name, dt, nullable));
        }
        Ok(Fields::from(out))
    }

    /// One Arrow column per top-level field from record values of the schema.
    pub fn columns(&self, records: &[&Value]) -> Result<Vec<ArrayRef>> {
        let (schema, ns) = self.deref(&self.root, None)?;
        let Avro::Record(record) = schema else {
            return Err(Error::NotARecord);
        };
        let fields = self.fields()?;
        let mut out = Vec::with_capacity(record.fields.len());
        for (i, f) in record.fields.iter().enumerate() {
            let values: Vec<&Value> = records.iter().map(|r| field_of(r, i)).collect();
            let array = self
                .build(&values, &f.schema, ns, fields[i].data_type())
                .map_err(|e| Error::field(&f.name, e))?;
            out.push(array);
        }
        Ok(out)
    }

    /// A column of `rows` copies of a top-level field's default, `None` when the field
    /// has no default (or no such field exists).
    pub fn default_column(&self, name: &str, rows: usize) -> Result<Option<ArrayRef>> {
        let (schema, ns) = self.deref(&self.root, None)?;
        let Avro::Record(record) = schema else {
            return Ok(None);
        };
        let Some(field) = record.fields.iter().find(|f| f.name == name) else {
            return Ok(None);
        };
        let Some(default) = &field.default else {
            return Ok(None);
        };
        let value = Value::try_from(default.clone())
            .and_then(|v| v.resolve_schemata(&field.schema, vec![&self.root]))
            .map_err(|error| Error::BadDefault {
                field: name.to_string(),
                error,
            })?;
        let (dt, _) = self.data_type(&field.schema, ns)?;
        let values = vec![&value; rows];
        self.build(&values, &field.schema, ns, &dt).map(Some)
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

    /// The Arrow type of an Avro schema and whether it can be null.
    fn data_type(&self, schema: &Avro, ns: NamespaceRef<'_>) -> Result<(DataType, bool)> {
        let (schema, ns) = self.deref(schema, ns)?;
        let ms = |unit| DataType::Timestamp(unit, Some("UTC".into()));
        let dt = match schema {
            Avro::Null => return Ok((DataType::Null, true)),
            Avro::Boolean => DataType::Boolean,
            Avro::Int => DataType::Int32,
            Avro::Long => DataType::Int64,
            Avro::Float => DataType::Float32,
            Avro::Double => DataType::Float64,
            Avro::Bytes | Avro::Fixed(_) => DataType::Binary,
            Avro::String | Avro::Enum(_) | Avro::Uuid(_) | Avro::BigDecimal => DataType::Utf8,
            Avro::Date => DataType::Date32,
            Avro::TimeMillis => DataType::Time32(TimeUnit::Millisecond),
            Avro::TimeMicros => DataType::Time64(TimeUnit::Microsecond),
            // Milliseconds are stored as microseconds, the unit of Delta's and Spark's
            // TIMESTAMP (and of PostgreSQL's).
            Avro::TimestampMillis => ms(TimeUnit::Microsecond),
            Avro::TimestampMicros => ms(TimeUnit::Microsecond),
            Avro::TimestampNanos => ms(TimeUnit::Nanosecond),
            Avro::LocalTimestampMillis => DataType::Timestamp(TimeUnit::Microsecond, None),
            Avro::LocalTimestampMicros => DataType::Timestamp(TimeUnit::Microsecond, None),
            Avro::LocalTimestampNanos => DataType::Timestamp(TimeUnit::Nanosecond, None),
            Avro::Decimal(d) => decimal_type(d)?,
            Avro::Duration(_) => DataType::Struct(duration_fields()),
            Avro::Array(a) => {
                let (item, nullable) = self.data_type(&a.items, ns)?;
                DataType::List(Arc::new(Field::new("item", item, nullable)))
            }
            Avro::Map(m) => {
                let (value, nullable) = self.data_type(&m.types, ns)?;
                DataType::Map(
                    Arc::new(Field::new(
                        "entries",
                        DataType::Struct(Fields::from(vec![
                            Field::new("key", DataType::Utf8, false),
                            Field::new("value", value, nullable),
                        ])),
                        false,
                    )),
                    false,
                )
            }
            Avro::Record(r) => {
                let mut fields = Vec::new();
                for f in &r.fields {
                    let (dt, nullable) = self.data_type(&f.schema, ns)?;
                    fields.push(Field::new(&f.name, dt, nullable));
                }
                DataType::Struct(Fields::from(fields))
            }
            Avro::Union(u) => {
                let variants = u.variants();
                let non_null: Vec<&Avro> = variants.iter().filter(|v| **v != Avro::Null).collect();
                let has_null = non_null.len() < variants.len();
                if let [only] = non_null[..] {
                    let (dt, _) = self.data_type(only, ns)?;
                    return Ok((dt, true));
                }
                let mut fields = Vec::new();
                for v in non_null {
                    let (dt, _) = self.data_type(v, ns)?;
                    fields.push(Field::new(self.branch_name(v, ns)?, dt, true));
                }
                return Ok((DataType::Struct(Fields::from(fields)), has_null));
            }
            Avro::Ref { .. } => return Err(Error::UnresolvedReference),
        };
        Ok((dt, false))
    }

    fn branch_name(&self, schema: &Avro, ns: NamespaceRef<'_>) -> Result<String> {
        let (schema, _) = self.deref(schema, ns)?;
        Ok(match schema {
            Avro::Record(r) => r.name.fullname(None),
            Avro::Enum(e) => e.name.fullname(None),
            Avro::Fixed(f) | Avro::Duration(f) => f.name.fullname(None),
            Avro::Array(_) => "array".to_string(),
            Avro::Map(_) => "map".to_string(),
            Avro::Int | Avro::Date | Avro::TimeMillis => "int".to_string(),
            Avro::Long
            | Avro::TimeMicros
            | Avro::TimestampMillis
            | Avro::TimestampMicros
            | Avro::TimestampNanos
            | Avro::LocalTimestampMillis
            | Avro::LocalTimestampMicros
            | Avro::LocalTimestampNanos => "long".to_string(),
            Avro::String | Avro::Uuid(UuidSchema::String) => "string".to_string(),
            Avro::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Fixed(f),
                ..
            }) => f.name.fullname(None),
            Avro::Uuid(UuidSchema::Fixed(f)) => f.name.fullname(None),
            Avro::Bytes | Avro::Decimal(_) | Avro::BigDecimal | Avro::Uuid(_) => {
                "bytes".to_string()
            }
            other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
        })
    }

    fn build(
        &self,
        values: &[&Value],
        schema: &Avro,
        ns: NamespaceRef<'_>,
        dt: &DataType,
    ) -> Result<ArrayRef> {
        let (schema, ns) = self.deref(schema, ns)?;
        let mismatch = |v: &Value| Error::Mismatch {
            value: format!("{v:?}"),
            data_type: dt.clone(),
        };
        macro_rules! prim {
            ($array:ty, $($pat:pat => $out:expr),+) => {{
                let mut out = Vec::with_capacity(values.len());
                for v in values {
                    out.push(match v {
                        Value::Null => None,
                        $($pat => Some($out),)+
                        other => return Err(mismatch(other)),
                    });
                }
                Arc::new(<$array>::from(out)) as ArrayRef
            }};
        }
        let array: ArrayRef = match (schema, dt) {
            (Avro::Null, _) => Arc::new(NullArray::new(values.len())),
            (Avro::Boolean, _) => prim!(BooleanArray, Value::Boolean(b) => *b),
            (Avro::Int, _) => prim!(Int32Array, Value::Int(i) => *i),
            (Avro::Long, _) => prim!(Int64Array, Value::Long(i) => *i),
            (Avro::Float, _) => prim!(Float32Array, Value::Float(f) => *f),
            (Avro::Double, _) => prim!(Float64Array, Value::Double(f) => *f),
            (Avro::Bytes | Avro::Fixed(_), _) => {
                let mut out: Vec<Option<&[u8]>> = Vec::with_capacity(values.len());
                for v in values {
                    out.push(match v {
                        Value::Null => None,
                        Value::Bytes(b) | Value::Fixed(_, b) => Some(b),
                        other => return Err(mismatch(other)),
                    });
                }
                Arc::new(BinaryArray::from(out))
            }
            (Avro::String | Avro::Enum(_) | Avro::Uuid(_) | Avro::BigDecimal, _) => {
                let mut out: Vec<Option<String>> = Vec::with_capacity(values.len());
                for v in values {
                    out.push(match v {
                        Value::Null => None,
                        Value::String(s) | Value::Enum(_, s) => Some(s.clone()),
                        Value::Uuid(u) => Some(u.to_string()),
                        Value::BigDecimal(d) => Some(d.to_string()),
                        other => return Err(mismatch(other)),
                    });
                }
                Arc::new(StringArray::from(out))
            }
            (Avro::Date, _) => prim!(Date32Array, Value::Date(d) => *d),
            (Avro::TimeMillis, _) => prim!(Time32MillisecondArray, Value::TimeMillis(t) => *t),
            (Avro::TimeMicros, _) => prim!(Time64MicrosecondArray, Value::TimeMicros(t) => *t),
            (Avro::TimestampMillis | Avro::LocalTimestampMillis, DataType::Timestamp(_, tz)) => {
                let mut out = Vec::with_capacity(values.len());
                for v in values {
                    out.push(match v {
                        Value::Null => None,
                        Value::TimestampMillis(t) | Value::LocalTimestampMillis(t) => {
                            Some(millis_to_micros(*t)?)
                        }
                        other => return Err(mismatch(other)),
                    });
                }
                with_tz(Arc::new(TimestampMicrosecondArray::from(out)), tz)
            }
            (Avro::TimestampMicros | Avro::LocalTimestampMicros, DataType::Timestamp(_, tz)) => {
                let a = prim!(TimestampMicrosecondArray,
                    Value::TimestampMicros(t) => *t, Value::LocalTimestampMicros(t) => *t);
                with_tz(a, tz)
            }
            (Avro::TimestampNanos | Avro::LocalTimestampNanos, DataType::Timestamp(_, tz)) => {
                let a = prim!(TimestampNanosecondArray,
                    Value::TimestampNanos(t) => *t, Value::LocalTimestampNanos(t) => *t);
                with_tz(a, tz)
            }
            (Avro::Decimal(d), DataType::Decimal128(p, s)) => {
                let mut out = Vec::with_capacity(values.len());
                for v in values {
                    out.push(match v {
                        Value::Null => None,
                        Value::Decimal(x) => Some(decimal_i128(x)?),
                        other => return Err(mismatch(other)),
                    });
                }
                let _ = d;
                Arc::new(Decimal128Array::from(out).with_precision_and_scale(*p, *s)?)
            }
            (Avro::Duration(_), DataType::Struct(fields)) => {
                let mut parts: [Vec<Option<i64>>; 3] = Default::default();
                let mut valid = Vec::with_capacity(values.len());
                for v in values {
                    match v {
                        Value::Duration(d) => {
                            parts[0].push(Some(u32::from(d.months()).into()));
                            parts[1].push(Some(u32::from(d.days()).into()));
                            parts[2].push(Some(u32::from(d.millis()).into()));
                            valid.push(true);
                        }
                        Value::Null => {
                            parts.iter_mut().for_each(|p| p.push(None));
                            valid.push(false);
                        }
                        other => return Err(mismatch(other)),
                    }
                }
                let children: Vec<ArrayRef> = parts
                    .into_iter()
                    .map(|p| Arc::new(Int64Array::from(p)) as ArrayRef)
                    .collect();
                Arc::new(StructArray::try_new(
                    fields.clone(),
                    children,
                    nulls(&valid),
                )?)
            }
            (Avro::Array(a), DataType::List(item)) => {
                let mut offsets = Vec::with_capacity(values.len() + 1);
                offsets.push(0i32);
                let mut items: Vec<&Value> = Vec::new();
                let mut valid = Vec::with_capacity(values.len());
                for v in values {
                    match v {
                        Value::Array(xs) => {
                            items.extend(xs.iter());
                            valid.push(true);
                        }
                        Value::Null => valid.push(false),
                        other => return Err(mismatch(other)),
                    }
                    offsets.push(i32::try_from(items.len()).map_err(|_| Error::TooLong("list"))?);
                }
                let child = self.build(&items, &a.items, ns, item.data_type())?;
                Arc::new(ListArray::try_new(
                    item.clone(),
                    OffsetBuffer::new(offsets.into()),
                    child,
                    nulls(&valid),
                )?)
            }
            (Avro::Map(m), DataType::Map(entries, _)) => {
                let DataType::Struct(entry_fields) = entries.data_type() else {
                    return Err(Error::MapEntries);
                };
                let mut offsets = Vec::with_capacity(values.len() + 1);
                offsets.push(0i32);
                let mut keys: Vec<&str> = Vec::new();
                let mut items: Vec<&Value> = Vec::new();
                let mut valid = Vec::with_capacity(values.len());
                for v in values {
                    match v {
                        Value::Map(kv) => {
                            let mut sorted: Vec<(&String, &Value)> = kv.iter().collect();
                            sorted.sort_by(|a, b| a.0.cmp(b.0));
                            for (k, x) in sorted {
                                keys.push(k);
                                items.push(x);
                            }
                            valid.push(true);
                        }
                        Value::Null => valid.push(false),
                        other => return Err(mismatch(other)),
                    }
                    offsets.push(i32::try_from(keys.len()).map_err(|_| Error::TooLong("map"))?);
                }
                let value_array = self.build(&items, &m.types, ns, entry_fields[1].data_type())?;
                let key_array: ArrayRef = Arc::new(StringArray::from(keys));
                let entries_array =
                    StructArray::try_new(entry_fields.clone(), vec![key_array, value_array], None)?;
                Arc::new(MapArray::try_new(
                    entries.clone(),
                    OffsetBuffer::new(offsets.into()),
                    entries_array,
                    nulls(&valid),
                    false,
                )?)
            }
            (Avro::Record(r), DataType::Struct(fields)) => {
                let mut valid = Vec::with_capacity(values.len());
                for v in values {
                    match v {
                        Value::Record(_) => valid.push(true),
                        Value::Null => valid.push(false),
                        other => return Err(mismatch(other)),
                    }
                }
                let mut children = Vec::with_capacity(r.fields.len());
                for (i, f) in r.fields.iter().enumerate() {
                    let vs: Vec<&Value> = values.iter().map(|v| field_of(v, i)).collect();
                    children.push(
                        self.build(&vs, &f.schema, ns, fields[i].data_type())
                            .map_err(|e| Error::field(&f.name, e))?,
                    );
                }
                Arc::new(StructArray::try_new(
                    fields.clone(),
                    children,
                    nulls(&valid),
                )?)
            }
            (Avro::Union(u), dt) => {
                let variants = u.variants();
                let non_null: Vec<(usize, &Avro)> = variants
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v != Avro::Null)
                    .collect();
                if let [(_, only)] = non_null[..] {
                    let inner: Vec<&Value> = values.iter().map(|v| unwrap_union(v)).collect();
                    return self.build(&inner, only, ns, dt);
                }
                let DataType::Struct(fields) = dt else {
                    return Err(Error::UnionType(dt.clone()));
                };
                let mut children = Vec::with_capacity(non_null.len());
                for (k, (index, branch)) in non_null.iter().enumerate() {
                    let vs: Vec<&Value> = values
                        .iter()
                        .map(|v| match v {
                            Value::Union(i, inner) if *i as usize == *index => inner.as_ref(),
                            _ => &Value::Null,
                        })
                        .collect();
                    children.push(self.build(&vs, branch, ns, fields[k].data_type())?);
                }
                let valid: Vec<bool> = values
                    .iter()
                    .map(|v| !matches!(unwrap_union(v), Value::Null))
                    .collect();
                Arc::new(StructArray::try_new(
                    fields.clone(),
                    children,
                    nulls(&valid),
                )?)
            }
            (other, dt) => {
                return Err(Error::NoMapping {
                    schema: format!("{other:?}"),
                    data_type: dt.clone(),
                });
            }
        };
        Ok(array)
    }
}

fn field_of(record: &Value, i: usize) -> &Value {
    match record {
        Value::Record(fields) => fields.get(i).map_or(&Value::Null, |(_, v)| v),
        _ => &Value::Null,
    }
}

fn unwrap_union(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

fn nulls(valid: &[bool]) -> Option<NullBuffer> {
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid.to_vec()))
    }
}

/// A millisecond timestamp in microseconds; every timestamp of years 0001-9999 (the range
/// decoding lets through) fits.
pub fn millis_to_micros(ms: i64) -> Result<i64> {
    ms.checked_mul(1000).ok_or_else(|| Error::Mismatch {
        value: format!("timestamp {ms} ms since the epoch (too far from it for microseconds)"),
        data_type: DataType::Timestamp(TimeUnit::Microsecond, None),
    })
}

fn with_tz(array: ArrayRef, tz: &Option<Arc<str>>) -> ArrayRef {
    use arrow::array::Array;
    match tz {
        Some(tz) => {
            let data = array.to_data();
            let dt = match data.data_type() {
                DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, Some(tz.clone())),
                other => other.clone(),
            };
            match data.into_builder().data_type(dt).build() {
                Ok(d) => arrow::array::make_array(d),
                Err(_) => array,
            }
        }
        None => array,
    }
}

fn decimal_type(d: &DecimalSchema) -> Result<DataType> {
    let p = u8::try_from(d.precision).map_err(|_| Error::DecimalPrecision(d.precision))?;
    let s = i8::try_from(d.scale).map_err(|_| Error::DecimalScale(d.scale))?;
    if p > 38 {
        return Err(Error::DecimalPrecision(d.precision));
    }
    Ok(DataType::Decimal128(p, s))
}

fn decimal_i128(d: &apache_avro::Decimal) -> Result<i128> {
    let bytes = <Vec<u8>>::try_from(d).map_err(Error::DecimalValue)?;
    if bytes.len() > 16 {
        return Err(Error::WideDecimal);
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut full = [if negative { 0xff } else { 0 }; 16];
    full[16 - bytes.len()..].copy_from_slice(&bytes);
    Ok(i128::from_be_bytes(full))
}

fn duration_fields() -> Fields {
    Fields::from(vec![
        Field::new("months", DataType::Int64, false),
        Field::new("days", DataType::Int64, false),
        Field::new("millis", DataType::Int64, false),
    ])
}

/// A decimal with exactly `scale` fraction digits (as PostgreSQL prints numeric(p, s)).
pub fn decimal_text(v: i128, scale: i8) -> String {
    if scale <= 0 {
        let zeros = "0".repeat(scale.unsigned_abs() as usize);
        return if v == 0 {
            "0".to_string()
        } else {
            format!("{v}{zeros}")
        };
    }
    let scale = scale as usize;
    let digits = v.unsigned_abs().to_string();
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if v < 0 { "-" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::Schema as ArrowSchema;
    use onepipe_client::json::{Options, from_json};
    use serde_json::json;

    const SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
        {"name":"id","type":"string"},
        {"name":"n","type":"long"},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"day","type":{"type":"int","logicalType":"date"}},
        {"name":"total","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
        {"name":"status","type":{"type":"enum","name":"S","symbols":["A","B"]}},
        {"name":"note","type":["null","string"],"default":null},
        {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item",
            "fields":[{"name":"sku","type":"string"},{"name":"qty","type":"int"}]}}},
        {"name":"clock","type":{"type":"map","values":"long"}},
        {"name":"either","type":["null","int","string"],"default":null},
        {"name":"ship","type":["null","Item"],"default":null}
    ]}"#;

    #[test]
    fn records_become_typed_columns() {
        let schema = Avro::parse_str(SCHEMA).unwrap();
        let m = Mapping::new(&schema).unwrap();
        let values: Vec<Value> = [
            json!({"id":"a","n":1,"at":"2026-11-24T10:00:00Z","day":"2026-11-24","total":"12.50",
                   "status":"B","note":"hi","items":[{"sku":"x","qty":2}],"clock":{"b":2,"a":1},
                   "either":{"string":"s"},"ship":{"sku":"y","qty":1}}),
            json!({"id":"b","n":2,"at":0,"day":0,"total":"-0.01","status":"A","items":[],
                   "clock":{},"either":5}),
        ]
        .iter()
        .map(|j| from_json(j, &schema, &Options::default()).unwrap())
        .collect();
        let refs: Vec<&Value> = values.iter().collect();
        let fields = m.fields().unwrap();
        let batch = RecordBatch::try_new(
            Arc::new(ArrowSchema::new(fields)),
            m.columns(&refs).unwrap(),
        )
        .unwrap();
        assert_eq!(batch.num_rows(), 2);
        let total = batch
            .column(4)
            .as_primitive::<arrow::datatypes::Decimal128Type>();
        assert_eq!((total.value(0), total.value(1)), (1250, -1));
        // timestamp-millis is stored in microseconds.
        assert_eq!(
            batch.column(2).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let at = batch
            .column(2)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!((at.value(0), at.value(1)), (1_795_514_400_000_000, 0));
        assert!(batch.column(6).is_null(1));
        let clock = batch.column(8).as_map();
        let keys = clock.value(0);
        let keys = keys.column(0).as_string::<i32>();
        assert_eq!((keys.value(0), keys.value(1)), ("a", "b"));
        let either = batch.column(9).as_struct();
        assert_eq!(either.column_names(), ["int", "string"]);
        assert!(either.column(0).is_null(0) && either.column(1).is_valid(0));
        assert!(batch.column(10).is_null(1));
    }
}
