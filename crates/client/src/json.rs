//! Plain JSON ↔ Avro mapping.
//!
//! Producers write records as the JSON people naturally write, not as the
//! Avro JSON encoding (which wraps every union value and spells bytes as
//! ISO-8859-1 strings). [`from_json`] checks such a value against the topic's
//! schema, collects every mismatch with its JSON path, and builds the Avro
//! value; [`to_json`] is the inverse used by consumers.
//!
//! | Avro type | JSON accepted | JSON produced by `to_json` |
//! |---|---|---|
//! | `null`, `boolean`, `string` | themselves | themselves |
//! | `int` | integer within 32 bits | integer |
//! | `long` | integer within 64 bits | integer |
//! | `float`, `double` | any number (not a string) | number (non-finite → `null`) |
//! | `bytes` | base64 string (standard alphabet, padded) | base64 string |
//! | `fixed` | base64 string of exactly `size` bytes | base64 string |
//! | `enum` | one of the symbols | the symbol |
//! | `array` | array | array |
//! | `map` | object with any keys | object |
//! | `record` | object; missing fields take their default | object with every field |
//! | `[null, T]` (either order) | `null` or a value of `T` | `null` or the plain value |
//! | other unions | the value of the one branch it fits, or `{"<branch>": value}` | `{"<branch>": value}` (`null` stays `null`) |
//! | `timestamp-millis/micros/nanos` | RFC 3339 with offset, or integer since the epoch | RFC 3339 UTC with `Z` and 3/6/9 fraction digits |
//! | `local-timestamp-*` | RFC 3339 without offset, or integer | same, without `Z` |
//! | `date` | `"YYYY-MM-DD"` or integer days since 1970-01-01 | `"YYYY-MM-DD"` |
//! | `time-millis/micros` | `"HH:MM:SS[.fff]"` or integer since midnight | `"HH:MM:SS.fff"` / `"HH:MM:SS.ffffff"` |
//! | `decimal(p, s)` | string like `"12.50"` (≤ `s` fraction digits, ≤ `p` digits) or an integer | string with exactly `s` fraction digits |
//! | `big-decimal` | decimal string or integer | decimal string |
//! | `uuid` | `"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"` (hex) | lowercase UUID |
//! | `duration` | `{"months": m, "days": d, "millis": ms}` (unsigned 32-bit each) | same |
//!
//! Timestamps and dates must lie in years 0001 through 9999 (UTC), the range every store
//! holds ([`crate::ranges`]); others are refused with their value and path.
//!
//! Union branch names (the `<branch>` wrapper keys) are the primitive type
//! name, `array`, `map`, or the full name of a named type. Logical types use
//! the name of the type they are stored as (`long` for timestamps, `int` for
//! dates, `bytes` or the fixed's name for decimals, `string` for string UUIDs).
//! A union other than `[null, T]` first looks for the wrapper form (a one-key
//! object whose key names a branch); otherwise the value must fit exactly one
//! branch, and when it fits several (`["int", "long"]` and `5`) the wrapper
//! is required. When it fits none and only one branch has the right JSON
//! shape, that branch's own errors are reported.
//!
//! Errors carry a JSON path: `$` is the whole value, `.field` a record field,
//! `[3]` an array item and `["key"]` a map value or the inside of a union
//! wrapper (keys are always quoted in brackets, even simple ones like
//! `["en"]`, so they cannot be mistaken for record fields). Missing and unknown fields
//! are reported at the path of the record that lacks or has them.
//!
//! Record field defaults are read as the Avro specification writes them
//! (bytes as ISO-8859-1 strings, a union default belongs to the first branch).

use std::collections::HashMap;
use std::fmt::Write as _;

use apache_avro::schema::{
    DecimalSchema, InnerDecimalSchema, Name, NamesRef, NamespaceRef, RecordSchema, ResolvedSchema,
    UnionSchema, UuidSchema,
};
use apache_avro::types::Value;
use apache_avro::{Days, Decimal, Duration, Millis, Months, Schema};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value as Json;

use crate::error::Error;
use crate::ranges;

/// One reason a JSON value does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// Where the problem is, like `$.items[3].price`.
    pub path: String,
    /// What is wrong, as a lowercase sentence.
    pub message: String,
}

/// How strict [`from_json`] is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Ignore object keys that are not fields of the record instead of
    /// reporting them. Off by default so that typos in field names surface.
    pub allow_unknown_fields: bool,
}

/// A schema with its named types resolved once, for mapping many values.
pub struct Mapper<'s> {
    schema: &'s Schema,
    resolved: Result<ResolvedSchema<'s>, apache_avro::Error>,
    empty: NamesRef<'s>,
}

impl<'s> Mapper<'s> {
    pub fn new(schema: &'s Schema) -> Self {
        Mapper {
            schema,
            resolved: ResolvedSchema::try_from(schema),
            empty: HashMap::new(),
        }
    }

    fn names(&self) -> &NamesRef<'s> {
        self.resolved
            .as_ref()
            .map_or(&self.empty, |r| r.get_names())
    }

    /// The resolved schema (for building an Avro datum writer once).
    pub fn resolved(&self) -> Option<&ResolvedSchema<'s>> {
        self.resolved.as_ref().ok()
    }

    /// See [`from_json`].
    pub fn from_json(&self, value: &Json, opts: &Options) -> Result<Value, Vec<FieldError>> {
        if let Err(e) = &self.resolved {
            return Err(vec![FieldError {
                path: "$".to_string(),
                message: format!("the schema cannot be used: {e}"),
            }]);
        }
        let conv = Converter {
            names: self.names(),
            opts,
        };
        let mut errors = Vec::new();
        match conv.convert(value, self.schema, None, "$", Mode::Input, &mut errors) {
            Some(v) if errors.is_empty() => Ok(v),
            _ if errors.is_empty() => Err(vec![FieldError {
                path: "$".to_string(),
                message: "the value cannot be converted".to_string(),
            }]),
            _ => Err(errors),
        }
    }

    /// See [`to_json`].
    pub fn to_json(&self, value: &Value) -> Json {
        value_to_json(value, self.schema, self.names(), None)
    }

    /// See [`field_json`].
    pub fn field_json(&self, value: &Value, path: &str) -> Result<Json, Error> {
        let names = self.names();
        let (mut schema, mut ns) = resolve_ref(names, self.schema, None)?;
        let mut value = value;
        for name in path.split('.') {
            // Step into the taken branch of a union (an optional record on the way).
            if let (Value::Union(index, inner), Schema::Union(union)) = (value, schema) {
                let branch =
                    union
                        .variants()
                        .get(*index as usize)
                        .ok_or_else(|| Error::NoUnionBranch {
                            path: path.to_string(),
                            index: *index,
                        })?;
                (schema, ns) = resolve_ref(names, branch, ns)?;
                value = inner;
            }
            if matches!(value, Value::Null) {
                return Ok(Json::Null);
            }
            let (Value::Record(fields), Schema::Record(record)) = (value, schema) else {
                return Err(Error::NotInRecord {
                    path: path.to_string(),
                    field: name.to_string(),
                });
            };
            let Some(&pos) = record.lookup.get(name) else {
                return Err(Error::NoSchemaField {
                    path: path.to_string(),
                    field: name.to_string(),
                });
            };
            let field = &record.fields[pos];
            value = fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .ok_or_else(|| Error::NoValueField {
                    path: path.to_string(),
                    field: name.to_string(),
                })?;
            (schema, ns) = resolve_ref(names, &field.schema, ns)?;
        }
        Ok(value_to_json(value, schema, names, ns))
    }
}

/// Converts a JSON value to an Avro value of `schema`, collecting every error
/// (not just the first).
pub fn from_json(value: &Json, schema: &Schema, opts: &Options) -> Result<Value, Vec<FieldError>> {
    Mapper::new(schema).from_json(value, opts)
}

/// Encodes the JSON record as an Avro binary datum (what `apache_avro::to_avro_datum` writes)
/// after [`from_json`]; errors as there.
pub fn encode(value: &Json, schema: &Schema, opts: &Options) -> Result<Vec<u8>, Vec<FieldError>> {
    let avro = from_json(value, schema, opts)?;
    // from_json only builds values the schema accepts, so this is a safety net.
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|writer| writer.write_value_to_vec(avro))
        .map_err(|e| {
            vec![FieldError {
                path: "$".to_string(),
                message: format!("cannot encode the value: {e}"),
            }]
        })
}

/// Avro value back to plain JSON using the same mapping (for consumers and
/// tests): `to_json(from_json(x)) == x` for canonical inputs.
///
/// Values that do not match the schema are converted as well as possible
/// rather than rejected, since a consumer would rather see them than nothing.
pub fn to_json(value: &Value, schema: &Schema) -> Json {
    Mapper::new(schema).to_json(value)
}

/// The plain JSON of the field at a dotted `path` (`customer.id`) inside a record value,
/// for building Kafka keys. A `null` optional record on the way gives `null`; a path
/// that is not in the schema gives an error naming it.
pub fn field_json(value: &Value, schema: &Schema, path: &str) -> Result<Json, Error> {
    Mapper::new(schema).field_json(value, path)
}

/// Field defaults in a schema follow the Avro JSON encoding, user input the
/// plain mapping; the few types where they differ look at this.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Input,
    Default,
}

struct Converter<'a> {
    names: &'a NamesRef<'a>,
    opts: &'a Options,
}

fn err(errors: &mut Vec<FieldError>, path: &str, message: String) -> Option<Value> {
    push(errors, at(path, message))
}

/// Records a field error; the conversion of that value failed.
fn push(errors: &mut Vec<FieldError>, error: FieldError) -> Option<Value> {
    errors.push(error);
    None
}

/// A field error at `path`.
fn at(path: &str, message: String) -> FieldError {
    FieldError {
        path: path.to_string(),
        message,
    }
}

/// Describes the JSON found in an error message without dumping whole objects.
fn found(value: &Json) -> String {
    match value {
        Json::Array(_) => "an array".to_string(),
        Json::Object(_) => "an object".to_string(),
        Json::String(s) if s.chars().count() > 40 => {
            let short: String = s.chars().take(40).collect();
            format!("{}…", Json::String(short))
        }
        other => other.to_string(),
    }
}

/// Path segment for a map key or union wrapper key: always bracketed and
/// quoted so it cannot be confused with a record field.
pub(crate) fn key_segment(key: &str) -> String {
    format!("[{}]", Json::String(key.to_string()))
}

impl<'a> Converter<'a> {
    /// Follows `Schema::Ref` to the named schema and tells the namespace that
    /// relative names inside it are resolved against.
    fn deref(
        &self,
        schema: &'a Schema,
        ns: NamespaceRef<'a>,
    ) -> Result<(&'a Schema, NamespaceRef<'a>), Error> {
        resolve_ref(self.names, schema, ns)
    }

    fn convert(
        &self,
        json: &Json,
        schema: &'a Schema,
        ns: NamespaceRef<'a>,
        path: &str,
        mode: Mode,
        errors: &mut Vec<FieldError>,
    ) -> Option<Value> {
        let (schema, ns) = match self.deref(schema, ns) {
            Ok(found) => found,
            Err(e) => return err(errors, path, e.to_string()),
        };
        let mismatch = |errors: &mut Vec<FieldError>| {
            err(
                errors,
                path,
                format!("expected {}, found {}", describe(schema), found(json)),
            )
        };
        match schema {
            Schema::Null => match json {
                Json::Null => Some(Value::Null),
                _ => mismatch(errors),
            },
            Schema::Boolean => match json {
                Json::Bool(b) => Some(Value::Boolean(*b)),
                _ => mismatch(errors),
            },
            Schema::String => match json {
                Json::String(s) => Some(Value::String(s.clone())),
                _ => mismatch(errors),
            },
            Schema::Int => {
                match integer(json, schema, i64::from(i32::MIN), i64::from(i32::MAX), path) {
                    Ok(i) => i32::try_from(i).ok().map(Value::Int),
                    Err(e) => push(errors, e),
                }
            }
            Schema::Long => match integer(json, schema, i64::MIN, i64::MAX, path) {
                Ok(i) => Some(Value::Long(i)),
                Err(e) => push(errors, e),
            },
            Schema::Float => match json.as_f64() {
                // Rounding is what a float field is for; overflowing to infinity is not.
                Some(f) if (f as f32).is_finite() => Some(Value::Float(f as f32)),
                Some(_) => err(
                    errors,
                    path,
                    format!(
                        "expected {}, found {} (out of range)",
                        describe(schema),
                        found(json)
                    ),
                ),
                None => mismatch(errors),
            },
            Schema::Double => match json.as_f64() {
                Some(f) => Some(Value::Double(f)),
                None => mismatch(errors),
            },
            Schema::Bytes => match self.bytes(json, schema, mode, path) {
                Ok(b) => Some(Value::Bytes(b)),
                Err(e) => push(errors, e),
            },
            Schema::Fixed(fixed) => match self.bytes(json, schema, mode, path) {
                Ok(b) if b.len() == fixed.size => Some(Value::Fixed(fixed.size, b)),
                Ok(b) => err(
                    errors,
                    path,
                    format!(
                        "{} decodes to {} bytes, fixed {} holds exactly {}",
                        found(json),
                        b.len(),
                        fixed.name.fullname(None),
                        fixed.size
                    ),
                ),
                Err(e) => push(errors, e),
            },
            Schema::Enum(en) => match json {
                Json::String(s) => match en.symbols.iter().position(|sym| sym == s) {
                    Some(i) => u32::try_from(i).ok().map(|i| Value::Enum(i, s.clone())),
                    None => err(
                        errors,
                        path,
                        format!(
                            "{} is not one of the symbols {}",
                            found(json),
                            en.symbols.join(", ")
                        ),
                    ),
                },
                _ => mismatch(errors),
            },
            Schema::Array(array) => match json {
                Json::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    let mut ok = true;
                    for (i, item) in items.iter().enumerate() {
                        let item_path = format!("{path}[{i}]");
                        match self.convert(item, &array.items, ns, &item_path, mode, errors) {
                            Some(v) => out.push(v),
                            None => ok = false,
                        }
                    }
                    ok.then_some(Value::Array(out))
                }
                _ => mismatch(errors),
            },
            Schema::Map(map) => match json {
                Json::Object(entries) => {
                    let mut out = HashMap::with_capacity(entries.len());
                    let mut ok = true;
                    for (key, item) in entries {
                        let item_path = format!("{path}{}", key_segment(key));
                        match self.convert(item, &map.types, ns, &item_path, mode, errors) {
                            Some(v) => {
                                out.insert(key.clone(), v);
                            }
                            None => ok = false,
                        }
                    }
                    ok.then_some(Value::Map(out))
                }
                _ => mismatch(errors),
            },
            Schema::Record(record) => match json {
                Json::Object(object) => self.record(object, record, path, mode, errors),
                _ => mismatch(errors),
            },
            Schema::Union(union) => self.union(json, union, ns, path, mode, errors),
            Schema::Decimal(decimal) => match self.decimal(json, decimal, mode, path) {
                Ok(d) => Some(Value::Decimal(d)),
                Err(e) => push(errors, e),
            },
            Schema::BigDecimal => {
                let text = match json {
                    Json::String(s) => Some(s.clone()),
                    Json::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
                    _ => None,
                };
                match text.map(|t| t.parse::<apache_avro::BigDecimal>()) {
                    Some(Ok(d)) => Some(Value::BigDecimal(d)),
                    _ => mismatch(errors),
                }
            }
            Schema::Uuid(_) => match json.as_str().and_then(parse_uuid) {
                Some(u) => Some(Value::Uuid(u)),
                None => mismatch(errors),
            },
            Schema::Date => {
                let days = match json {
                    Json::String(s) => match parse_date(s) {
                        Some(days) => days,
                        None => return mismatch(errors),
                    },
                    _ => {
                        match integer(json, schema, i64::from(i32::MIN), i64::from(i32::MAX), path)
                        {
                            Ok(i) => i,
                            Err(e) => return push(errors, e),
                        }
                    }
                };
                if !ranges::date_in_range(days) {
                    return err(errors, path, ranges::date_message(days));
                }
                i32::try_from(days).ok().map(Value::Date)
            }
            Schema::TimeMillis => match self.time(json, schema, 3, path) {
                Ok(t) => i32::try_from(t).ok().map(Value::TimeMillis),
                Err(e) => push(errors, e),
            },
            Schema::TimeMicros => match self.time(json, schema, 6, path) {
                Ok(t) => Some(Value::TimeMicros(t)),
                Err(e) => push(errors, e),
            },
            Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => match timestamp(json, schema, path) {
                Ok(t) => Some(match schema {
                    Schema::TimestampMillis => Value::TimestampMillis(t),
                    Schema::TimestampMicros => Value::TimestampMicros(t),
                    Schema::TimestampNanos => Value::TimestampNanos(t),
                    Schema::LocalTimestampMillis => Value::LocalTimestampMillis(t),
                    Schema::LocalTimestampMicros => Value::LocalTimestampMicros(t),
                    _ => Value::LocalTimestampNanos(t),
                }),
                Err(e) => push(errors, e),
            },
            Schema::Duration(_) => match duration(json) {
                Some(d) => Some(Value::Duration(d)),
                None => mismatch(errors),
            },
            Schema::Ref { name } => err(
                errors,
                path,
                format!(
                    "the schema refers to the unknown type {}",
                    name.fullname(None)
                ),
            ),
        }
    }

    fn bytes(
        &self,
        json: &Json,
        schema: &Schema,
        mode: Mode,
        path: &str,
    ) -> Result<Vec<u8>, FieldError> {
        let Json::String(s) = json else {
            return Err(at(
                path,
                format!("expected {}, found {}", describe(schema), found(json)),
            ));
        };
        if mode == Mode::Default {
            // The Avro specification writes default bytes as code points 0-255.
            let mut out = Vec::with_capacity(s.len());
            for c in s.chars() {
                match u8::try_from(u32::from(c)) {
                    Ok(b) => out.push(b),
                    Err(_) => {
                        return Err(at(
                            path,
                            format!("default {} is not a byte string", found(json)),
                        ));
                    }
                }
            }
            return Ok(out);
        }
        BASE64.decode(s).map_err(|_| {
            at(
                path,
                format!(
                    "expected {}, found {} (not padded standard base64)",
                    describe(schema),
                    found(json)
                ),
            )
        })
    }

    fn record(
        &self,
        object: &serde_json::Map<String, Json>,
        record: &'a RecordSchema,
        path: &str,
        mode: Mode,
        errors: &mut Vec<FieldError>,
    ) -> Option<Value> {
        let ns = record.name.namespace();
        let mut ok = true;
        let mut out = Vec::with_capacity(record.fields.len());
        for field in &record.fields {
            let field_path = format!("{path}.{}", field.name);
            let value = match (object.get(&field.name), &field.default) {
                (Some(v), _) => self.convert(v, &field.schema, ns, &field_path, mode, errors),
                (None, Some(default)) => {
                    let mut default_errors = Vec::new();
                    let v = self.convert(
                        default,
                        &field.schema,
                        ns,
                        &field_path,
                        Mode::Default,
                        &mut default_errors,
                    );
                    for e in default_errors {
                        errors.push(FieldError {
                            path: e.path,
                            message: format!("the schema's default is invalid: {}", e.message),
                        });
                    }
                    v
                }
                (None, None) => err(
                    errors,
                    path,
                    format!(
                        "missing required field {}",
                        Json::String(field.name.clone())
                    ),
                ),
            };
            match value {
                Some(v) => out.push((field.name.clone(), v)),
                None => ok = false,
            }
        }
        if !self.opts.allow_unknown_fields {
            for key in object.keys() {
                if !record.lookup.contains_key(key) {
                    ok = false;
                    err(
                        errors,
                        path,
                        format!("unknown field {}", Json::String(key.clone())),
                    );
                }
            }
        }
        ok.then_some(Value::Record(out))
    }

    fn union(
        &self,
        json: &Json,
        union: &'a UnionSchema,
        ns: NamespaceRef<'a>,
        path: &str,
        mode: Mode,
        errors: &mut Vec<FieldError>,
    ) -> Option<Value> {
        let variants = union.variants();
        let null_index = variants.iter().position(|v| matches!(v, Schema::Null));
        if mode == Mode::Default {
            // The specification ties a union's default to its first branch.
            let first = variants.first()?;
            let v = self.convert(json, first, ns, path, mode, errors)?;
            return Some(Value::Union(0, Box::new(v)));
        }
        if let (Some(null_index), 2) = (null_index, variants.len()) {
            let other = 1 - null_index;
            if json.is_null() {
                return Some(Value::Union(to_u32(null_index), Box::new(Value::Null)));
            }
            let mut plain_errors = Vec::new();
            if let Some(v) = self.convert(json, &variants[other], ns, path, mode, &mut plain_errors)
            {
                return Some(Value::Union(to_u32(other), Box::new(v)));
            }
            if let Some((index, inner)) = self.wrapper(json, variants, ns)
                && index == other
            {
                let v = self.convert(inner, &variants[other], ns, path, mode, errors)?;
                return Some(Value::Union(to_u32(other), Box::new(v)));
            }
            errors.append(&mut plain_errors);
            return None;
        }

        if let Some((index, inner)) = self.wrapper(json, variants, ns) {
            let inner_path = format!(
                "{path}{}",
                key_segment(&self.branch_name(&variants[index], ns))
            );
            let v = self.convert(inner, &variants[index], ns, &inner_path, mode, errors)?;
            return Some(Value::Union(to_u32(index), Box::new(v)));
        }
        let mut fits = Vec::new();
        let mut shaped = Vec::new();
        for (i, variant) in variants.iter().enumerate() {
            let mut trial = Vec::new();
            match self.convert(json, variant, ns, path, mode, &mut trial) {
                Some(v) => fits.push((i, v)),
                None => {
                    if self.same_shape(json, variant, ns) {
                        shaped.push(trial);
                    }
                }
            }
        }
        let names: Vec<String> = variants.iter().map(|v| self.branch_name(v, ns)).collect();
        match fits.len() {
            1 => {
                let (i, v) = fits.swap_remove(0);
                Some(Value::Union(to_u32(i), Box::new(v)))
            }
            0 if shaped.len() == 1 => {
                errors.append(&mut shaped.swap_remove(0));
                None
            }
            0 => err(
                errors,
                path,
                format!(
                    "expected one of the union branches {}, found {}",
                    names.join(", "),
                    found(json)
                ),
            ),
            _ => {
                let several: Vec<&str> = fits.iter().map(|(i, _)| names[*i].as_str()).collect();
                err(
                    errors,
                    path,
                    format!(
                        "{} fits several union branches ({}); wrap it as {{\"{}\": ...}} to choose one",
                        found(json),
                        several.join(", "),
                        several[0]
                    ),
                )
            }
        }
    }

    /// Recognises the Avro JSON form `{"<branch name>": value}`.
    fn wrapper<'j>(
        &self,
        json: &'j Json,
        variants: &'a [Schema],
        ns: NamespaceRef<'a>,
    ) -> Option<(usize, &'j Json)> {
        let Json::Object(object) = json else {
            return None;
        };
        if object.len() != 1 {
            return None;
        }
        let (key, inner) = object.iter().next()?;
        let index = variants
            .iter()
            .position(|v| self.branch_name(v, ns) == *key)?;
        Some((index, inner))
    }

    fn branch_name(&self, schema: &'a Schema, ns: NamespaceRef<'a>) -> String {
        match self.deref(schema, ns) {
            Ok((schema, _)) => branch_name(schema),
            Err(_) => "unknown".to_string(),
        }
    }

    /// Whether the JSON has the kind of shape the branch takes, so that a
    /// failure inside it is worth reporting in detail.
    fn same_shape(&self, json: &Json, schema: &'a Schema, ns: NamespaceRef<'a>) -> bool {
        let Ok((schema, _)) = self.deref(schema, ns) else {
            return false;
        };
        match json {
            Json::Null => matches!(schema, Schema::Null),
            Json::Bool(_) => matches!(schema, Schema::Boolean),
            Json::Array(_) => matches!(schema, Schema::Array(_)),
            Json::Object(_) => matches!(
                schema,
                Schema::Record(_) | Schema::Map(_) | Schema::Duration(_)
            ),
            // Strings and numbers fit too many types for a guess to help.
            Json::Number(_) | Json::String(_) => false,
        }
    }

    fn decimal(
        &self,
        json: &Json,
        decimal: &DecimalSchema,
        mode: Mode,
        path: &str,
    ) -> Result<Decimal, FieldError> {
        let kind = format!("decimal({}, {})", decimal.precision, decimal.scale);
        if mode == Mode::Default {
            let bytes = self.bytes(json, &Schema::Bytes, mode, path)?;
            return Ok(Decimal::from(bytes));
        }
        let text = match json {
            Json::String(s) => s.clone(),
            Json::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => {
                return Err(at(
                    path,
                    format!(
                        "expected a decimal string like \"12.50\" ({kind}), found {}",
                        found(json)
                    ),
                ));
            }
        };
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let (int_part, frac_part) = match rest.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (rest, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_part) || frac_part.is_some_and(|f| !all_digits(f)) {
            return Err(at(
                path,
                format!(
                    "expected a decimal string like \"12.50\" ({kind}), found {}",
                    found(json)
                ),
            ));
        }
        let frac = frac_part.unwrap_or("");
        if frac.len() > decimal.scale {
            return Err(at(
                path,
                format!(
                    "{} has {} fraction digits, {kind} allows {}",
                    found(json),
                    frac.len(),
                    decimal.scale
                ),
            ));
        }
        let mut unscaled = String::with_capacity(int_part.len() + decimal.scale);
        unscaled.push_str(int_part.trim_start_matches('0'));
        unscaled.push_str(frac);
        for _ in frac.len()..decimal.scale {
            unscaled.push('0');
        }
        let significant = unscaled.trim_start_matches('0');
        if significant.len() > decimal.precision {
            return Err(at(
                path,
                format!(
                    "{} has {} digits, {kind} allows {}",
                    found(json),
                    significant.len(),
                    decimal.precision
                ),
            ));
        }
        let bytes = digits_to_twos_complement(negative, significant);
        if let InnerDecimalSchema::Fixed(fixed) = &decimal.inner
            && bytes.len() > fixed.size
        {
            return Err(at(
                path,
                format!(
                    "{} does not fit in the {} bytes of {kind}",
                    found(json),
                    fixed.size
                ),
            ));
        }
        Ok(Decimal::from(bytes))
    }

    fn time(
        &self,
        json: &Json,
        schema: &Schema,
        digits: u32,
        path: &str,
    ) -> Result<i64, FieldError> {
        let per_second = 10_i64.pow(digits);
        let day = 86_400 * per_second;
        let value = match json {
            Json::String(s) => parse_time(s, digits),
            _ => Some(integer(json, schema, 0, day - 1, path)?),
        };
        value.ok_or_else(|| {
            at(
                path,
                format!("expected {}, found {}", describe(schema), found(json)),
            )
        })
    }
}

fn to_u32(index: usize) -> u32 {
    // Unions with more than u32::MAX branches cannot be parsed in the first place.
    u32::try_from(index).unwrap_or(u32::MAX)
}

fn resolve_ref<'a>(
    names: &NamesRef<'a>,
    schema: &'a Schema,
    ns: NamespaceRef<'a>,
) -> Result<(&'a Schema, NamespaceRef<'a>), Error> {
    let schema = match schema {
        Schema::Ref { name } => {
            let full = name.fully_qualified_name(ns);
            match names.get(full.as_ref()) {
                Some(target) => *target,
                None => return Err(Error::UnknownType(full.fullname(None))),
            }
        }
        other => other,
    };
    let ns = match named(schema) {
        Some(name) => name.namespace(),
        None => ns,
    };
    Ok((schema, ns))
}

fn named(schema: &Schema) -> Option<&Name> {
    match schema {
        Schema::Record(r) => Some(&r.name),
        Schema::Enum(e) => Some(&e.name),
        Schema::Fixed(f) | Schema::Duration(f) => Some(&f.name),
        Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Fixed(f),
            ..
        })
        | Schema::Uuid(UuidSchema::Fixed(f)) => Some(&f.name),
        _ => None,
    }
}

/// The key of the Avro JSON union wrapper for a branch.
fn branch_name(schema: &Schema) -> String {
    if let Some(name) = named(schema) {
        return name.fullname(None);
    }
    let name = match schema {
        Schema::Null => "null",
        Schema::Boolean => "boolean",
        Schema::Int | Schema::Date | Schema::TimeMillis => "int",
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long",
        Schema::Float => "float",
        Schema::Double => "double",
        Schema::Bytes
        | Schema::Decimal(_)
        | Schema::BigDecimal
        | Schema::Uuid(UuidSchema::Bytes) => "bytes",
        Schema::Array(_) => "array",
        Schema::Map(_) => "map",
        Schema::Union(_) => "union",
        _ => "string",
    };
    name.to_string()
}

/// The expected type in words, for error messages.
fn describe(schema: &Schema) -> String {
    match schema {
        Schema::Null => "null".to_string(),
        Schema::Boolean => "a boolean".to_string(),
        Schema::Int => "an int (32-bit)".to_string(),
        Schema::Long => "a long (64-bit)".to_string(),
        Schema::Float => "a number (float)".to_string(),
        Schema::Double => "a number (double)".to_string(),
        Schema::Bytes => "a base64 string (bytes)".to_string(),
        Schema::String => "a string".to_string(),
        Schema::Array(_) => "an array".to_string(),
        Schema::Map(_) => "an object (map)".to_string(),
        Schema::Union(_) => "a union value".to_string(),
        Schema::Record(r) => format!("an object (record {})", r.name.fullname(None)),
        Schema::Enum(e) => format!("a string (enum {})", e.name.fullname(None)),
        Schema::Fixed(f) => format!(
            "a base64 string (fixed {}, {} bytes)",
            f.name.fullname(None),
            f.size
        ),
        Schema::Decimal(d) => format!("a decimal string (decimal({}, {}))", d.precision, d.scale),
        Schema::BigDecimal => "a decimal string (big-decimal)".to_string(),
        Schema::Uuid(_) => {
            "a uuid string like \"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx\"".to_string()
        }
        Schema::Date => "a date \"YYYY-MM-DD\" or days since 1970-01-01".to_string(),
        Schema::TimeMillis => {
            "a time \"HH:MM:SS[.fff]\" or milliseconds since midnight".to_string()
        }
        Schema::TimeMicros => {
            "a time \"HH:MM:SS[.ffffff]\" or microseconds since midnight".to_string()
        }
        Schema::TimestampMillis => {
            "an RFC 3339 timestamp with offset or epoch milliseconds".to_string()
        }
        Schema::TimestampMicros => {
            "an RFC 3339 timestamp with offset or epoch microseconds".to_string()
        }
        Schema::TimestampNanos => {
            "an RFC 3339 timestamp with offset or epoch nanoseconds".to_string()
        }
        Schema::LocalTimestampMillis => {
            "an RFC 3339 timestamp without offset or milliseconds".to_string()
        }
        Schema::LocalTimestampMicros => {
            "an RFC 3339 timestamp without offset or microseconds".to_string()
        }
        Schema::LocalTimestampNanos => {
            "an RFC 3339 timestamp without offset or nanoseconds".to_string()
        }
        Schema::Duration(_) => {
            "an object {\"months\", \"days\", \"millis\"} (duration)".to_string()
        }
        Schema::Ref { name } => format!("a value of {}", name.fullname(None)),
    }
}

/// An integer in `[min, max]`; the message says whether the JSON was not an
/// integer at all or just too large.
fn integer(
    json: &Json,
    schema: &Schema,
    min: i64,
    max: i64,
    path: &str,
) -> Result<i64, FieldError> {
    let Json::Number(n) = json else {
        return Err(at(
            path,
            format!("expected {}, found {}", describe(schema), found(json)),
        ));
    };
    match n.as_i64() {
        Some(i) if (min..=max).contains(&i) => Ok(i),
        Some(_) => Err(at(
            path,
            format!("expected {}, found {n} (out of range)", describe(schema)),
        )),
        None if n.is_u64() => Err(at(
            path,
            format!("expected {}, found {n} (out of range)", describe(schema)),
        )),
        None => Err(at(
            path,
            format!("expected {}, found {n}", describe(schema)),
        )),
    }
}

fn duration(json: &Json) -> Option<Duration> {
    let Json::Object(object) = json else {
        return None;
    };
    if object.len() != 3 {
        return None;
    }
    let part = |key: &str| {
        object
            .get(key)
            .and_then(Json::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    Some(Duration::new(
        Months::new(part("months")?),
        Days::new(part("days")?),
        Millis::new(part("millis")?),
    ))
}

fn parse_uuid(s: &str) -> Option<apache_avro::Uuid> {
    let groups: Vec<&str> = s.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    if groups.len() != lengths.len() {
        return None;
    }
    for (group, len) in groups.iter().zip(lengths) {
        if group.len() != len || !group.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
    }
    apache_avro::Uuid::parse_str(s).ok()
}

/// Two's complement big-endian bytes of a decimal digit string, the way Avro
/// stores the unscaled value of a `decimal`. Works on bytes so precision is
/// not limited to 128 bits.
fn digits_to_twos_complement(negative: bool, digits: &str) -> Vec<u8> {
    let mut magnitude: Vec<u8> = Vec::new();
    for d in digits.bytes() {
        let mut carry = u32::from(d - b'0');
        for byte in magnitude.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            magnitude.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    if magnitude.first().is_none_or(|b| b & 0x80 != 0) {
        magnitude.insert(0, 0);
    }
    if negative {
        negate(&mut magnitude);
    }
    magnitude
}

fn negate(bytes: &mut [u8]) {
    let mut carry = true;
    for byte in bytes.iter_mut().rev() {
        let (v, overflow) = (!*byte).overflowing_add(u8::from(carry));
        *byte = v;
        carry = carry && overflow;
    }
}

/// The decimal digits of a two's complement big-endian integer.
fn twos_complement_to_digits(bytes: &[u8]) -> (bool, String) {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude = bytes.to_vec();
    if negative {
        negate(&mut magnitude);
    }
    let mut digits = Vec::new();
    while magnitude.iter().any(|b| *b != 0) {
        let mut remainder = 0_u32;
        for byte in magnitude.iter_mut() {
            let v = (remainder << 8) | u32::from(*byte);
            *byte = (v / 10) as u8;
            remainder = v % 10;
        }
        digits.push(b'0' + remainder as u8);
    }
    digits.reverse();
    let text = String::from_utf8(digits).unwrap_or_default();
    (negative, text)
}

fn decimal_to_string(decimal: &Decimal, scale: usize) -> String {
    let bytes = Vec::<u8>::try_from(decimal).unwrap_or_default();
    let (negative, digits) = twos_complement_to_digits(&bytes);
    let mut padded = String::new();
    for _ in digits.len()..=scale {
        padded.push('0');
    }
    padded.push_str(&digits);
    let (int_part, frac) = padded.split_at(padded.len() - scale);
    let sign = if negative { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac}")
    }
}

// Calendar arithmetic on the proleptic Gregorian calendar, counting in eras of
// 400 years (146 097 days) so leap years fall out of integer division.

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12; // March = 0, so February is last
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads exactly `len` ASCII digits at `pos`.
fn digits_at(s: &[u8], pos: usize, len: usize) -> Option<i64> {
    let part = s.get(pos..pos + len)?;
    let mut v = 0_i64;
    for b in part {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(b - b'0');
    }
    Some(v)
}

/// `YYYY-MM-DD` to days since 1970-01-01.
fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (
        digits_at(b, 0, 4)?,
        digits_at(b, 5, 2)?,
        digits_at(b, 8, 2)?,
    );
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// `HH:MM:SS[.f+]` to units of 10^-digits seconds since midnight; `None` when
/// malformed or more precise than the unit.
fn parse_time(s: &str, digits: u32) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m, sec) = (
        digits_at(b, 0, 2)?,
        digits_at(b, 3, 2)?,
        digits_at(b, 6, 2)?,
    );
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let per_second = 10_i64.pow(digits);
    let mut units = ((h * 60 + m) * 60 + sec) * per_second;
    let rest = &b[8..];
    if !rest.is_empty() {
        let frac = rest.strip_prefix(b".")?;
        let len = u32::try_from(frac.len()).ok()?;
        if len == 0 || len > digits {
            return None;
        }
        let value = digits_at(frac, 0, frac.len())?;
        units += value * 10_i64.pow(digits - len);
    }
    Some(units)
}

/// Timestamp as RFC 3339 or an integer in the schema's unit, within the range every store
/// holds ([`ranges`]).
fn timestamp(json: &Json, schema: &Schema, path: &str) -> Result<i64, FieldError> {
    let (unit, local) = match schema {
        Schema::TimestampMillis => (ranges::Unit::Millis, false),
        Schema::TimestampMicros => (ranges::Unit::Micros, false),
        Schema::TimestampNanos => (ranges::Unit::Nanos, false),
        Schema::LocalTimestampMillis => (ranges::Unit::Millis, true),
        Schema::LocalTimestampMicros => (ranges::Unit::Micros, true),
        _ => (ranges::Unit::Nanos, true),
    };
    let t = unchecked_timestamp(json, schema, path, unit.digits(), local)?;
    if !ranges::timestamp_in_range(t, unit) {
        return Err(at(path, ranges::timestamp_message(t, unit, local)));
    }
    Ok(t)
}

fn unchecked_timestamp(
    json: &Json,
    schema: &Schema,
    path: &str,
    digits: u32,
    local: bool,
) -> Result<i64, FieldError> {
    let Json::String(s) = json else {
        return integer(json, schema, i64::MIN, i64::MAX, path);
    };
    let mismatch = || {
        at(
            path,
            format!("expected {}, found {}", describe(schema), found(json)),
        )
    };
    let b = s.as_bytes();
    if b.len() < 19 || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(mismatch());
    }
    let days = parse_date(&s[..10]).ok_or_else(mismatch)?;
    // Split the time of day from the offset: the offset starts at Z, + or -.
    let tail = &s[11..];
    let offset_at = tail.find(['Z', 'z', '+', '-']).unwrap_or(tail.len());
    let (time, offset) = tail.split_at(offset_at);
    let per_second = 10_i64.pow(digits);
    let units = match parse_time(time, digits) {
        Some(units) => units,
        None if parse_time(time, 9).is_some() => {
            return Err(at(
                path,
                format!(
                    "{} is more precise than {} fraction digits",
                    found(json),
                    digits
                ),
            ));
        }
        None => return Err(mismatch()),
    };
    let offset_seconds = match (offset, local) {
        ("", true) => 0,
        (_, true) => {
            return Err(at(
                path,
                format!(
                    "expected a local timestamp without offset, found {}",
                    found(json)
                ),
            ));
        }
        ("", false) => {
            return Err(at(
                path,
                format!(
                    "expected an RFC 3339 timestamp with offset (like \"Z\" or \"+01:00\"), found {}",
                    found(json)
                ),
            ));
        }
        ("Z" | "z", false) => 0,
        (o, false) => {
            let ob = o.as_bytes();
            if ob.len() != 6 || ob[3] != b':' {
                return Err(mismatch());
            }
            let (oh, om) = (
                digits_at(ob, 1, 2).ok_or_else(mismatch)?,
                digits_at(ob, 4, 2).ok_or_else(mismatch)?,
            );
            if oh > 23 || om > 59 {
                return Err(mismatch());
            }
            let sign = if ob[0] == b'-' { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
    };
    days.checked_mul(86_400)
        .and_then(|s| s.checked_sub(offset_seconds))
        .and_then(|s| s.checked_mul(per_second))
        .and_then(|u| u.checked_add(units))
        .ok_or_else(|| {
            at(
                path,
                format!("{} is out of range for {}", found(json), describe(schema)),
            )
        })
}

pub(crate) fn format_timestamp(units: i64, digits: u32, zulu: bool) -> String {
    let per_second = 10_i64.pow(digits);
    let seconds = units.div_euclid(per_second);
    let fraction = units.rem_euclid(per_second);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{}",
        format_time(second_of_day * per_second + fraction, digits)
    );
    if zulu {
        out.push('Z');
    }
    out
}

fn format_time(units: i64, digits: u32) -> String {
    let per_second = 10_i64.pow(digits);
    let seconds = units.div_euclid(per_second);
    let fraction = units.rem_euclid(per_second);
    let mut out = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    let _ = write!(out, ".{fraction:0width$}", width = digits as usize);
    out
}

pub(crate) fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn value_to_json(
    value: &Value,
    schema: &Schema,
    names: &NamesRef<'_>,
    ns: NamespaceRef<'_>,
) -> Json {
    let (schema, ns) = match resolve_ref(names, schema, ns) {
        Ok(found) => found,
        Err(_) => return plain(value),
    };
    match (value, schema) {
        (Value::Union(index, inner), Schema::Union(union)) => {
            let Some(branch) = union.variants().get(*index as usize) else {
                return plain(inner);
            };
            let json = value_to_json(inner, branch, names, ns);
            if matches!(**inner, Value::Null) || union_is_optional(union) {
                json
            } else {
                let name = match resolve_ref(names, branch, ns) {
                    Ok((resolved, _)) => branch_name(resolved),
                    Err(_) => "unknown".to_string(),
                };
                let mut object = serde_json::Map::new();
                object.insert(name, json);
                Json::Object(object)
            }
        }
        (Value::Record(fields), Schema::Record(record)) => {
            let mut object = serde_json::Map::new();
            for (name, field_value) in fields {
                let json = match record.lookup.get(name).and_then(|i| record.fields.get(*i)) {
                    Some(field) => value_to_json(field_value, &field.schema, names, ns),
                    None => plain(field_value),
                };
                object.insert(name.clone(), json);
            }
            Json::Object(object)
        }
        (Value::Array(items), Schema::Array(array)) => Json::Array(
            items
                .iter()
                .map(|item| value_to_json(item, &array.items, names, ns))
                .collect(),
        ),
        (Value::Map(entries), Schema::Map(map)) => {
            // Sorted keys make the output stable whatever the HashMap order.
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            let mut object = serde_json::Map::new();
            for key in keys {
                if let Some(v) = entries.get(key) {
                    object.insert(key.clone(), value_to_json(v, &map.types, names, ns));
                }
            }
            Json::Object(object)
        }
        (Value::Decimal(d), Schema::Decimal(decimal)) => {
            Json::String(decimal_to_string(d, decimal.scale))
        }
        (Value::Date(d), _) => Json::String(format_date(i64::from(*d))),
        (Value::Int(d), Schema::Date) => Json::String(format_date(i64::from(*d))),
        (Value::TimeMillis(t) | Value::Int(t), Schema::TimeMillis) => {
            Json::String(format_time(i64::from(*t), 3))
        }
        (Value::TimeMicros(t) | Value::Long(t), Schema::TimeMicros) => {
            Json::String(format_time(*t, 6))
        }
        (Value::TimestampMillis(t), _) | (Value::Long(t), Schema::TimestampMillis) => {
            Json::String(format_timestamp(*t, 3, true))
        }
        (Value::TimestampMicros(t), _) | (Value::Long(t), Schema::TimestampMicros) => {
            Json::String(format_timestamp(*t, 6, true))
        }
        (Value::TimestampNanos(t), _) | (Value::Long(t), Schema::TimestampNanos) => {
            Json::String(format_timestamp(*t, 9, true))
        }
        (Value::LocalTimestampMillis(t), _) | (Value::Long(t), Schema::LocalTimestampMillis) => {
            Json::String(format_timestamp(*t, 3, false))
        }
        (Value::LocalTimestampMicros(t), _) | (Value::Long(t), Schema::LocalTimestampMicros) => {
            Json::String(format_timestamp(*t, 6, false))
        }
        (Value::LocalTimestampNanos(t), _) | (Value::Long(t), Schema::LocalTimestampNanos) => {
            Json::String(format_timestamp(*t, 9, false))
        }
        (Value::Enum(_, symbol), _) => Json::String(symbol.clone()),
        _ => plain(value),
    }
}

fn union_is_optional(union: &UnionSchema) -> bool {
    let variants = union.variants();
    variants.len() == 2 && variants.iter().any(|v| matches!(v, Schema::Null))
}

/// Schema-independent conversion for leaves and for values that do not match
/// their schema.
fn plain(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Long(i) => Json::from(*i),
        Value::Float(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number)
        }
        Value::Double(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Bytes(b) | Value::Fixed(_, b) => Json::String(BASE64.encode(b)),
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Union(_, inner) => plain(inner),
        Value::Array(items) => Json::Array(items.iter().map(plain).collect()),
        Value::Map(entries) => {
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            let mut object = serde_json::Map::new();
            for key in keys {
                if let Some(v) = entries.get(key) {
                    object.insert(key.clone(), plain(v));
                }
            }
            Json::Object(object)
        }
        Value::Record(fields) => {
            let mut object = serde_json::Map::new();
            for (name, v) in fields {
                object.insert(name.clone(), plain(v));
            }
            Json::Object(object)
        }
        Value::Date(d) => Json::String(format_date(i64::from(*d))),
        Value::Decimal(d) => Json::String(decimal_to_string(d, 0)),
        Value::BigDecimal(d) => Json::String(d.to_string()),
        Value::TimeMillis(t) => Json::String(format_time(i64::from(*t), 3)),
        Value::TimeMicros(t) => Json::String(format_time(*t, 6)),
        Value::TimestampMillis(t) => Json::String(format_timestamp(*t, 3, true)),
        Value::TimestampMicros(t) => Json::String(format_timestamp(*t, 6, true)),
        Value::TimestampNanos(t) => Json::String(format_timestamp(*t, 9, true)),
        Value::LocalTimestampMillis(t) => Json::String(format_timestamp(*t, 3, false)),
        Value::LocalTimestampMicros(t) => Json::String(format_timestamp(*t, 6, false)),
        Value::LocalTimestampNanos(t) => Json::String(format_timestamp(*t, 9, false)),
        Value::Duration(d) => serde_json::json!({
            "months": u32::from(d.months()),
            "days": u32::from(d.days()),
            "millis": u32::from(d.millis()),
        }),
        Value::Uuid(u) => Json::String(u.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(text: &str) -> Schema {
        Schema::parse_str(text).expect("test schema parses")
    }

    fn field_errors(expected: &[(&str, &str)]) -> Vec<FieldError> {
        expected
            .iter()
            .map(|(path, message)| FieldError {
                path: (*path).to_string(),
                message: (*message).to_string(),
            })
            .collect()
    }

    const COLOR: &str =
        r#"{"type": "enum", "name": "Color", "namespace": "shop", "symbols": ["RED", "GREEN"]}"#;
    const PAIR: &str = r#"{"type": "fixed", "name": "Pair", "namespace": "shop", "size": 2}"#;
    const USER: &str = r#"{"type": "record", "name": "User", "namespace": "shop", "fields": [
        {"name": "name", "type": "string"},
        {"name": "age", "type": "int", "default": 18}
    ]}"#;
    const TWO_RECORDS: &str = r#"[
        {"type": "record", "name": "A", "namespace": "shop", "fields": [{"name": "x", "type": "int"}]},
        {"type": "record", "name": "B", "namespace": "shop", "fields": [{"name": "x", "type": "int"}]}
    ]"#;
    const DECIMAL: &str =
        r#"{"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}"#;

    enum Expect {
        Ok(Value),
        Err(Vec<(&'static str, &'static str)>),
    }

    fn ok(v: Value) -> Expect {
        Expect::Ok(v)
    }

    fn fail(errors: &[(&'static str, &'static str)]) -> Expect {
        Expect::Err(errors.to_vec())
    }

    fn union(index: u32, v: Value) -> Value {
        Value::Union(index, Box::new(v))
    }

    fn record(fields: &[(&str, Value)]) -> Value {
        Value::Record(
            fields
                .iter()
                .map(|(name, v)| ((*name).to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn table() {
        let user_ref = r#"{"type": "record", "name": "Pair2", "namespace": "shop", "fields": [
            {"name": "left", "type": {"type": "record", "name": "Point", "fields": [{"name": "x", "type": "int"}]}},
            {"name": "right", "type": "Point"}
        ]}"#;
        let uuid = "550e8400-e29b-41d4-a716-446655440000";
        let cases: Vec<(&str, String, Json, bool, Expect)> = vec![
            ("null", r#""null""#.into(), json!(null), false, ok(Value::Null)),
            ("boolean", r#""boolean""#.into(), json!(true), false, ok(Value::Boolean(true))),
            ("string", r#""string""#.into(), json!("hi"), false, ok(Value::String("hi".into()))),
            ("int", r#""int""#.into(), json!(42), false, ok(Value::Int(42))),
            (
                "int out of range",
                r#""int""#.into(),
                json!(3_000_000_000_i64),
                false,
                fail(&[("$", "expected an int (32-bit), found 3000000000 (out of range)")]),
            ),
            (
                "int not integral",
                r#""int""#.into(),
                json!(1.5),
                false,
                fail(&[("$", "expected an int (32-bit), found 1.5")]),
            ),
            ("long", r#""long""#.into(), json!(3_000_000_000_i64), false, ok(Value::Long(3_000_000_000))),
            (
                "long as string",
                r#""long""#.into(),
                json!("7"),
                false,
                fail(&[("$", r#"expected a long (64-bit), found "7""#)]),
            ),
            ("double from integer", r#""double""#.into(), json!(3), false, ok(Value::Double(3.0))),
            (
                "double as string",
                r#""double""#.into(),
                json!("12,50"),
                false,
                fail(&[("$", r#"expected a number (double), found "12,50""#)]),
            ),
            ("float", r#""float""#.into(), json!(1.5), false, ok(Value::Float(1.5))),
            (
                "float out of range",
                r#""float""#.into(),
                json!(1e40),
                false,
                fail(&[("$", "expected a number (float), found 1e+40 (out of range)")]),
            ),
            ("bytes", r#""bytes""#.into(), json!("AAEC"), false, ok(Value::Bytes(vec![0, 1, 2]))),
            (
                "bytes unpadded",
                r#""bytes""#.into(),
                json!("AAE"),
                false,
                fail(&[(
                    "$",
                    r#"expected a base64 string (bytes), found "AAE" (not padded standard base64)"#,
                )]),
            ),
            ("fixed", PAIR.into(), json!("AAE="), false, ok(Value::Fixed(2, vec![0, 1]))),
            (
                "fixed wrong size",
                PAIR.into(),
                json!("AAEC"),
                false,
                fail(&[("$", r#""AAEC" decodes to 3 bytes, fixed shop.Pair holds exactly 2"#)]),
            ),
            ("enum", COLOR.into(), json!("GREEN"), false, ok(Value::Enum(1, "GREEN".into()))),
            (
                "enum unknown symbol",
                COLOR.into(),
                json!("Blue"),
                false,
                fail(&[("$", r#""Blue" is not one of the symbols RED, GREEN"#)]),
            ),
            (
                "enum not a string",
                COLOR.into(),
                json!(5),
                false,
                fail(&[("$", "expected a string (enum shop.Color), found 5")]),
            ),
            (
                "array",
                r#"{"type": "array", "items": "int"}"#.into(),
                json!([1, 2]),
                false,
                ok(Value::Array(vec![Value::Int(1), Value::Int(2)])),
            ),
            (
                "array item path",
                r#"{"type": "array", "items": "int"}"#.into(),
                json!([1, "2", true]),
                false,
                fail(&[
                    ("$[1]", r#"expected an int (32-bit), found "2""#),
                    ("$[2]", "expected an int (32-bit), found true"),
                ]),
            ),
            (
                "array given object",
                r#"{"type": "array", "items": "int"}"#.into(),
                json!({"a": 1}),
                false,
                fail(&[("$", "expected an array, found an object")]),
            ),
            (
                "map",
                r#"{"type": "map", "values": "long"}"#.into(),
                json!({"a b": 1}),
                false,
                ok(Value::Map(HashMap::from([("a b".to_string(), Value::Long(1))]))),
            ),
            (
                "map value path",
                r#"{"type": "map", "values": "long"}"#.into(),
                json!({"ok": 1, "bad key": null}),
                false,
                fail(&[("$[\"bad key\"]", "expected a long (64-bit), found null")]),
            ),
            (
                "record with default",
                USER.into(),
                json!({"name": "ann"}),
                false,
                ok(record(&[("name", Value::String("ann".into())), ("age", Value::Int(18))])),
            ),
            (
                "record missing field",
                USER.into(),
                json!({"age": 3}),
                false,
                fail(&[("$", r#"missing required field "name""#)]),
            ),
            (
                "record unknown field",
                USER.into(),
                json!({"name": "ann", "nick": "a"}),
                false,
                fail(&[("$", r#"unknown field "nick""#)]),
            ),
            (
                "record unknown field allowed",
                USER.into(),
                json!({"name": "ann", "age": 30, "nick": "a"}),
                true,
                ok(record(&[("name", Value::String("ann".into())), ("age", Value::Int(30))])),
            ),
            (
                "record given number",
                USER.into(),
                json!(5),
                false,
                fail(&[("$", "expected an object (record shop.User), found 5")]),
            ),
            (
                "nested record path",
                format!(r#"{{"type": "record", "name": "Order", "namespace": "shop", "fields": [{{"name": "user", "type": {USER}}}]}}"#),
                json!({"user": {"name": 1}}),
                false,
                fail(&[("$.user.name", "expected a string, found 1")]),
            ),
            (
                "named type reference",
                user_ref.into(),
                json!({"left": {"x": 1}, "right": {"x": 2}}),
                false,
                ok(record(&[
                    ("left", record(&[("x", Value::Int(1))])),
                    ("right", record(&[("x", Value::Int(2))])),
                ])),
            ),
            (
                "named type reference error",
                user_ref.into(),
                json!({"left": {"x": 1}, "right": 2}),
                false,
                fail(&[("$.right", "expected an object (record shop.Point), found 2")]),
            ),
            ("optional null", r#"["null", "string"]"#.into(), json!(null), false, ok(union(0, Value::Null))),
            (
                "optional value, null last",
                r#"["string", "null"]"#.into(),
                json!("x"),
                false,
                ok(union(0, Value::String("x".into()))),
            ),
            (
                "optional wrapper form",
                r#"["null", "string"]"#.into(),
                json!({"string": "x"}),
                false,
                ok(union(1, Value::String("x".into()))),
            ),
            (
                "optional reports the inner error",
                r#"["null", "double"]"#.into(),
                json!("12,50"),
                false,
                fail(&[("$", r#"expected a number (double), found "12,50""#)]),
            ),
            ("union single fit", r#"["int", "string"]"#.into(), json!(5), false, ok(union(0, Value::Int(5)))),
            (
                "union only long fits",
                r#"["int", "long"]"#.into(),
                json!(3_000_000_000_i64),
                false,
                ok(union(1, Value::Long(3_000_000_000))),
            ),
            (
                "union ambiguous",
                r#"["int", "long"]"#.into(),
                json!(5),
                false,
                fail(&[(
                    "$",
                    r#"5 fits several union branches (int, long); wrap it as {"int": ...} to choose one"#,
                )]),
            ),
            ("union wrapper", r#"["int", "long"]"#.into(), json!({"long": 5}), false, ok(union(1, Value::Long(5)))),
            (
                "union of records by full name",
                TWO_RECORDS.into(),
                json!({"shop.B": {"x": 1}}),
                false,
                ok(union(1, record(&[("x", Value::Int(1))]))),
            ),
            (
                "union wrapper inner error path",
                TWO_RECORDS.into(),
                json!({"shop.B": {"x": "1"}}),
                false,
                fail(&[("$[\"shop.B\"].x", r#"expected an int (32-bit), found "1""#)]),
            ),
            (
                "union of records ambiguous",
                TWO_RECORDS.into(),
                json!({"x": 1}),
                false,
                fail(&[(
                    "$",
                    r#"an object fits several union branches (shop.A, shop.B); wrap it as {"shop.A": ...} to choose one"#,
                )]),
            ),
            (
                "union fits none",
                r#"["int", "string"]"#.into(),
                json!(true),
                false,
                fail(&[("$", "expected one of the union branches int, string, found true")]),
            ),
            (
                "union reports the one branch of the right shape",
                format!(r#"["string", {USER}]"#),
                json!({"name": 5}),
                false,
                fail(&[("$.name", "expected a string, found 5")]),
            ),
            (
                "timestamp-millis utc",
                r#"{"type": "long", "logicalType": "timestamp-millis"}"#.into(),
                json!("2026-11-24T10:00:00Z"),
                false,
                ok(Value::TimestampMillis(1_795_514_400_000)),
            ),
            (
                "timestamp-millis with offset",
                r#"{"type": "long", "logicalType": "timestamp-millis"}"#.into(),
                json!("2026-11-24T11:00:00.5+01:00"),
                false,
                ok(Value::TimestampMillis(1_795_514_400_500)),
            ),
            (
                "timestamp-millis integer",
                r#"{"type": "long", "logicalType": "timestamp-millis"}"#.into(),
                json!(1_795_514_400_000_i64),
                false,
                ok(Value::TimestampMillis(1_795_514_400_000)),
            ),
            (
                "timestamp without offset",
                r#"{"type": "long", "logicalType": "timestamp-millis"}"#.into(),
                json!("2026-11-24T10:00:00"),
                false,
                fail(&[(
                    "$",
                    r#"expected an RFC 3339 timestamp with offset (like "Z" or "+01:00"), found "2026-11-24T10:00:00""#,
                )]),
            ),
            (
                "timestamp too precise",
                r#"{"type": "long", "logicalType": "timestamp-millis"}"#.into(),
                json!("2026-11-24T10:00:00.1234Z"),
                false,
                fail(&[("$", r#""2026-11-24T10:00:00.1234Z" is more precise than 3 fraction digits"#)]),
            ),
            (
                "timestamp-micros",
                r#"{"type": "long", "logicalType": "timestamp-micros"}"#.into(),
                json!("1969-12-31T23:59:59.999999Z"),
                false,
                ok(Value::TimestampMicros(-1)),
            ),
            (
                "timestamp-nanos",
                r#"{"type": "long", "logicalType": "timestamp-nanos"}"#.into(),
                json!("1970-01-01T00:00:01.000000001Z"),
                false,
                ok(Value::TimestampNanos(1_000_000_001)),
            ),
            (
                "local-timestamp-millis",
                r#"{"type": "long", "logicalType": "local-timestamp-millis"}"#.into(),
                json!("2026-11-24T10:00:00"),
                false,
                ok(Value::LocalTimestampMillis(1_795_514_400_000)),
            ),
            (
                "local timestamp with offset",
                r#"{"type": "long", "logicalType": "local-timestamp-micros"}"#.into(),
                json!("2026-11-24T10:00:00Z"),
                false,
                fail(&[("$", r#"expected a local timestamp without offset, found "2026-11-24T10:00:00Z""#)]),
            ),
            (
                "date",
                r#"{"type": "int", "logicalType": "date"}"#.into(),
                json!("2026-11-24"),
                false,
                ok(Value::Date(20_781)),
            ),
            (
                "date integer",
                r#"{"type": "int", "logicalType": "date"}"#.into(),
                json!(-1),
                false,
                ok(Value::Date(-1)),
            ),
            (
                "date invalid day",
                r#"{"type": "int", "logicalType": "date"}"#.into(),
                json!("2026-02-29"),
                false,
                fail(&[("$", r#"expected a date "YYYY-MM-DD" or days since 1970-01-01, found "2026-02-29""#)]),
            ),
            (
                "time-millis",
                r#"{"type": "int", "logicalType": "time-millis"}"#.into(),
                json!("10:30:00.25"),
                false,
                ok(Value::TimeMillis(37_800_250)),
            ),
            (
                "time-micros integer",
                r#"{"type": "long", "logicalType": "time-micros"}"#.into(),
                json!(1_000_000),
                false,
                ok(Value::TimeMicros(1_000_000)),
            ),
            (
                "time-millis out of range",
                r#"{"type": "int", "logicalType": "time-millis"}"#.into(),
                json!(86_400_000),
                false,
                fail(&[(
                    "$",
                    r#"expected a time "HH:MM:SS[.fff]" or milliseconds since midnight, found 86400000 (out of range)"#,
                )]),
            ),
            ("decimal", DECIMAL.into(), json!("12.5"), false, ok(Value::Decimal(Decimal::from(vec![0x04, 0xE2])))),
            (
                "decimal negative",
                DECIMAL.into(),
                json!("-1.5"),
                false,
                ok(Value::Decimal(Decimal::from(vec![0xFF, 0x6A]))),
            ),
            ("decimal integer", DECIMAL.into(), json!(12), false, ok(Value::Decimal(Decimal::from(vec![0x04, 0xB0])))),
            (
                "decimal too many fraction digits",
                DECIMAL.into(),
                json!("12.505"),
                false,
                fail(&[("$", r#""12.505" has 3 fraction digits, decimal(4, 2) allows 2"#)]),
            ),
            (
                "decimal too many digits",
                DECIMAL.into(),
                json!("123.45"),
                false,
                fail(&[("$", r#""123.45" has 5 digits, decimal(4, 2) allows 4"#)]),
            ),
            (
                "decimal from float",
                DECIMAL.into(),
                json!(12.5),
                false,
                fail(&[("$", r#"expected a decimal string like "12.50" (decimal(4, 2)), found 12.5"#)]),
            ),
            (
                "decimal on fixed",
                r#"{"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 10, "scale": 2}"#.into(),
                json!("-0.01"),
                false,
                ok(Value::Decimal(Decimal::from(vec![0xFF]))),
            ),
            (
                "big-decimal",
                r#"{"type": "bytes", "logicalType": "big-decimal"}"#.into(),
                json!("-12.50"),
                false,
                ok(Value::BigDecimal(
                    "-12.50".parse().expect("valid big decimal"),
                )),
            ),
            (
                "uuid",
                r#"{"type": "string", "logicalType": "uuid"}"#.into(),
                json!(uuid),
                false,
                ok(Value::Uuid(apache_avro::Uuid::parse_str(uuid).expect("valid uuid"))),
            ),
            (
                "uuid not canonical",
                r#"{"type": "string", "logicalType": "uuid"}"#.into(),
                json!("550e8400e29b41d4a716446655440000"),
                false,
                fail(&[(
                    "$",
                    r#"expected a uuid string like "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", found "550e8400e29b41d4a716446655440000""#,
                )]),
            ),
            (
                "duration",
                r#"{"type": "fixed", "name": "Span", "size": 12, "logicalType": "duration"}"#.into(),
                json!({"months": 1, "days": 2, "millis": 3}),
                false,
                ok(Value::Duration(Duration::new(Months::new(1), Days::new(2), Millis::new(3)))),
            ),
        ];
        assert!(cases.len() >= 40, "only {} cases", cases.len());
        for (name, schema_text, input, allow_unknown_fields, expect) in cases {
            let schema = schema(&schema_text);
            let opts = Options {
                allow_unknown_fields,
            };
            let got = from_json(&input, &schema, &opts);
            match expect {
                Expect::Ok(expected) => {
                    assert_eq!(got, Ok(expected.clone()), "case {name}");
                    let bytes = encode(&input, &schema, &opts)
                        .unwrap_or_else(|e| panic!("case {name}: encode failed: {e:?}"));
                    let decoded = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
                        .build()
                        .and_then(|r| r.read_value(&mut bytes.as_slice()))
                        .unwrap_or_else(|e| panic!("case {name}: decode failed: {e}"));
                    assert_eq!(decoded, expected, "case {name}: decoded value");
                }
                Expect::Err(expected) => {
                    assert_eq!(got, Err(field_errors(&expected)), "case {name}");
                    assert_eq!(
                        encode(&input, &schema, &opts),
                        Err(field_errors(&expected)),
                        "case {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn timestamps_and_dates_outside_years_1_to_9999_are_refused() {
        let range = "outside 0001-01-01..9999-12-31 (the range every store holds)";
        let ts = |unit: &str| format!(r#"{{"type": "long", "logicalType": "{unit}"}}"#);
        let date = || r#"{"type": "int", "logicalType": "date"}"#.to_string();
        // (logical type, JSON input, the value it is, or the message naming it)
        let cases: Vec<(String, Json, Result<Value, String>)> = vec![
            (
                ts("timestamp-millis"),
                json!(-62_135_596_800_000_i64),
                Ok(Value::TimestampMillis(-62_135_596_800_000)),
            ),
            (
                ts("timestamp-millis"),
                json!(253_402_300_799_999_i64),
                Ok(Value::TimestampMillis(253_402_300_799_999)),
            ),
            (
                ts("timestamp-millis"),
                json!("0001-01-01T00:00:00Z"),
                Ok(Value::TimestampMillis(-62_135_596_800_000)),
            ),
            (
                ts("timestamp-millis"),
                json!("9999-12-31T23:59:59.999Z"),
                Ok(Value::TimestampMillis(253_402_300_799_999)),
            ),
            (
                ts("timestamp-millis"),
                json!(-62_135_596_800_001_i64),
                Err(format!(
                    "timestamp-millis -62135596800001 is 0000-12-31T23:59:59.999Z, {range}"
                )),
            ),
            (
                ts("timestamp-millis"),
                json!(253_402_300_800_000_i64),
                Err(format!(
                    "timestamp-millis 253402300800000 is 10000-01-01T00:00:00.000Z, {range}"
                )),
            ),
            (
                ts("timestamp-millis"),
                json!(i64::MAX),
                Err(format!(
                    "timestamp-millis 9223372036854775807 is 292278994-08-17T07:12:55.807Z, {range}"
                )),
            ),
            (
                ts("timestamp-millis"),
                json!(i64::MIN),
                Err(format!(
                    "timestamp-millis -9223372036854775808 is -292275055-05-16T16:47:04.192Z, {range}"
                )),
            ),
            (
                ts("timestamp-millis"),
                json!("0001-01-01T00:30:00+01:00"),
                Err(format!(
                    "timestamp-millis -62135598600000 is 0000-12-31T23:30:00.000Z, {range}"
                )),
            ),
            (
                ts("timestamp-millis"),
                json!("9999-12-31T23:30:00-01:00"),
                Err(format!(
                    "timestamp-millis 253402302600000 is 10000-01-01T00:30:00.000Z, {range}"
                )),
            ),
            (
                ts("timestamp-micros"),
                json!(253_402_300_799_999_999_i64),
                Ok(Value::TimestampMicros(253_402_300_799_999_999)),
            ),
            (
                ts("timestamp-micros"),
                json!(-62_135_596_800_000_000_i64),
                Ok(Value::TimestampMicros(-62_135_596_800_000_000)),
            ),
            (
                ts("timestamp-micros"),
                json!(253_402_300_800_000_000_i64),
                Err(format!(
                    "timestamp-micros 253402300800000000 is 10000-01-01T00:00:00.000000Z, {range}"
                )),
            ),
            (
                ts("timestamp-micros"),
                json!(-62_135_596_800_000_001_i64),
                Err(format!(
                    "timestamp-micros -62135596800000001 is 0000-12-31T23:59:59.999999Z, {range}"
                )),
            ),
            // Every 64-bit count of nanoseconds is between 1677 and 2262.
            (
                ts("timestamp-nanos"),
                json!(i64::MAX),
                Ok(Value::TimestampNanos(i64::MAX)),
            ),
            (
                ts("local-timestamp-nanos"),
                json!(i64::MIN),
                Ok(Value::LocalTimestampNanos(i64::MIN)),
            ),
            (
                ts("local-timestamp-millis"),
                json!("0000-12-31T23:59:59"),
                Err(format!(
                    "local-timestamp-millis -62135596801000 is 0000-12-31T23:59:59.000, {range}"
                )),
            ),
            (
                ts("local-timestamp-millis"),
                json!(253_402_300_799_999_i64),
                Ok(Value::LocalTimestampMillis(253_402_300_799_999)),
            ),
            (
                ts("local-timestamp-micros"),
                json!(i64::MAX),
                Err(format!(
                    "local-timestamp-micros 9223372036854775807 is 294247-01-10T04:00:54.775807, {range}"
                )),
            ),
            (date(), json!(-719_162), Ok(Value::Date(-719_162))),
            (date(), json!(2_932_896), Ok(Value::Date(2_932_896))),
            (date(), json!("0001-01-01"), Ok(Value::Date(-719_162))),
            (date(), json!("9999-12-31"), Ok(Value::Date(2_932_896))),
            (
                date(),
                json!(-719_163),
                Err(format!("date -719163 is 0000-12-31, {range}")),
            ),
            (
                date(),
                json!(2_932_897),
                Err(format!("date 2932897 is 10000-01-01, {range}")),
            ),
            (
                date(),
                json!("0000-12-31"),
                Err(format!("date -719163 is 0000-12-31, {range}")),
            ),
            (
                date(),
                json!(i32::MAX),
                Err(format!("date 2147483647 is 5881580-07-11, {range}")),
            ),
            (
                date(),
                json!(i32::MIN),
                Err(format!("date -2147483648 is -5877641-06-23, {range}")),
            ),
        ];
        for (schema_text, input, expect) in cases {
            let s = schema(&schema_text);
            let got = from_json(&input, &s, &Options::default());
            match expect {
                Ok(v) => assert_eq!(got, Ok(v), "{schema_text} {input}"),
                Err(message) => assert_eq!(
                    got,
                    Err(vec![FieldError {
                        path: "$".into(),
                        message
                    }]),
                    "{schema_text} {input}"
                ),
            }
        }

        // Inside a record the error names the field path; an optional field too.
        let order = schema(
            r#"{"type": "record", "name": "Order", "fields": [
                {"name": "order", "type": {"type": "record", "name": "Inner", "fields": [
                    {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                    {"name": "shipped_at", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}], "default": null},
                    {"name": "days", "type": {"type": "array", "items": {"type": "int", "logicalType": "date"}}}
                ]}}
            ]}"#,
        );
        let errors = from_json(
            &json!({"order": {"created_at": 253_402_300_800_000_i64, "shipped_at": i64::MIN, "days": [0, i32::MAX]}}),
            &order,
            &Options::default(),
        )
        .unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                format!(
                    "$.order.created_at: timestamp-millis 253402300800000 is 10000-01-01T00:00:00.000Z, {range}"
                ),
                format!(
                    "$.order.shipped_at: timestamp-micros -9223372036854775808 is -290308-12-21T19:59:05.224192Z, {range}"
                ),
                format!("$.order.days[1]: date 2147483647 is 5881580-07-11, {range}"),
            ]
        );
    }

    #[test]
    fn collects_every_error_in_a_record() {
        let schema = schema(&format!(
            r#"{{"type": "record", "name": "Order", "namespace": "shop", "fields": [
                {{"name": "id", "type": "long"}},
                {{"name": "kind", "type": {COLOR}}},
                {{"name": "user", "type": {USER}}},
                {{"name": "items", "type": {{"type": "array", "items": {{
                    "type": "record", "name": "Item", "fields": [{{"name": "price", "type": "double"}}]
                }}}}}}
            ]}}"#
        ));
        let input = json!({
            "kind": "Blue",
            "user": 5,
            "items": [{"price": 1}, {"price": 2.5}, {"price": 3}, {"price": "12,50"}],
            "extra": true
        });
        let got = from_json(&input, &schema, &Options::default());
        assert_eq!(
            got,
            Err(field_errors(&[
                ("$", r#"missing required field "id""#),
                ("$.kind", r#""Blue" is not one of the symbols RED, GREEN"#),
                ("$.user", "expected an object (record shop.User), found 5"),
                (
                    "$.items[3].price",
                    r#"expected a number (double), found "12,50""#
                ),
                ("$", r#"unknown field "extra""#),
            ]))
        );
        let rendered: Vec<String> = got
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            rendered[3],
            r#"$.items[3].price: expected a number (double), found "12,50""#
        );
    }

    #[test]
    fn schema_defaults_use_avro_encoding() {
        let schema = schema(
            r#"{"type": "record", "name": "D", "fields": [
                {"name": "raw", "type": "bytes", "default": "\u00ff\u0001"},
                {"name": "choice", "type": ["int", "string"], "default": 4},
                {"name": "note", "type": ["null", "string"], "default": null}
            ]}"#,
        );
        let got = from_json(&json!({}), &schema, &Options::default());
        assert_eq!(
            got,
            Ok(record(&[
                ("raw", Value::Bytes(vec![0xff, 1])),
                ("choice", union(0, Value::Int(4))),
                ("note", union(0, Value::Null)),
            ]))
        );
    }

    #[test]
    fn round_trip_every_type() {
        let schema = schema(&format!(
            r#"{{"type": "record", "name": "Everything", "namespace": "shop", "fields": [
                {{"name": "n", "type": "null"}},
                {{"name": "b", "type": "boolean"}},
                {{"name": "i", "type": "int"}},
                {{"name": "l", "type": "long"}},
                {{"name": "f", "type": "float"}},
                {{"name": "d", "type": "double"}},
                {{"name": "bytes", "type": "bytes"}},
                {{"name": "s", "type": "string"}},
                {{"name": "fixed", "type": {PAIR}}},
                {{"name": "color", "type": {COLOR}}},
                {{"name": "other_color", "type": "Color"}},
                {{"name": "list", "type": {{"type": "array", "items": "string"}}}},
                {{"name": "counts", "type": {{"type": "map", "values": "int"}}}},
                {{"name": "user", "type": {USER}}},
                {{"name": "maybe", "type": ["null", "User"]}},
                {{"name": "absent", "type": ["null", "string"]}},
                {{"name": "either", "type": ["int", "long", "string"]}},
                {{"name": "ts_ms", "type": {{"type": "long", "logicalType": "timestamp-millis"}}}},
                {{"name": "ts_us", "type": {{"type": "long", "logicalType": "timestamp-micros"}}}},
                {{"name": "ts_ns", "type": {{"type": "long", "logicalType": "timestamp-nanos"}}}},
                {{"name": "lts_ms", "type": {{"type": "long", "logicalType": "local-timestamp-millis"}}}},
                {{"name": "lts_us", "type": {{"type": "long", "logicalType": "local-timestamp-micros"}}}},
                {{"name": "lts_ns", "type": {{"type": "long", "logicalType": "local-timestamp-nanos"}}}},
                {{"name": "day", "type": {{"type": "int", "logicalType": "date"}}}},
                {{"name": "t_ms", "type": {{"type": "int", "logicalType": "time-millis"}}}},
                {{"name": "t_us", "type": {{"type": "long", "logicalType": "time-micros"}}}},
                {{"name": "price", "type": {DECIMAL}}},
                {{"name": "big", "type": {{"type": "fixed", "name": "Big", "size": 20, "logicalType": "decimal", "precision": 40, "scale": 3}}}},
                {{"name": "bigd", "type": {{"type": "bytes", "logicalType": "big-decimal"}}}},
                {{"name": "id", "type": {{"type": "string", "logicalType": "uuid"}}}},
                {{"name": "span", "type": {{"type": "fixed", "name": "Span", "size": 12, "logicalType": "duration"}}}}
            ]}}"#
        ));
        let input = json!({
            "n": null,
            "b": true,
            "i": -7,
            "l": 9_007_199_254_740_993_i64,
            "f": 1.5,
            "d": 2.25,
            "bytes": "AAEC/w==",
            "s": "héllo",
            "fixed": "AAE=",
            "color": "RED",
            "other_color": "GREEN",
            "list": ["a", "b"],
            "counts": {"a": 1, "b": 2},
            "user": {"name": "ann", "age": 30},
            "maybe": {"name": "bob", "age": 40},
            "absent": null,
            "either": {"long": 5},
            "ts_ms": "2026-11-24T10:00:00.123Z",
            "ts_us": "1969-12-31T23:59:59.999999Z",
            "ts_ns": "2026-11-24T10:00:00.123456789Z",
            "lts_ms": "2026-11-24T10:00:00.000",
            "lts_us": "2026-11-24T10:00:00.000001",
            "lts_ns": "2026-11-24T10:00:00.000000001",
            "day": "2024-02-29",
            "t_ms": "23:59:59.999",
            "t_us": "00:00:00.000001",
            "price": "-12.50",
            "big": "-1234567890123456789012345678901234567.890",
            "bigd": "-12.50",
            "id": "550e8400-e29b-41d4-a716-446655440000",
            "span": {"months": 1, "days": 2, "millis": 3}
        });
        let value = from_json(&input, &schema, &Options::default())
            .unwrap_or_else(|e| panic!("from_json failed: {e:?}"));
        let bytes = encode(&input, &schema, &Options::default())
            .unwrap_or_else(|e| panic!("encode failed: {e:?}"));
        let decoded = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .and_then(|r| r.read_value(&mut bytes.as_slice()))
            .unwrap_or_else(|e| panic!("decode failed: {e}"));
        assert_eq!(decoded, value);
        assert_eq!(to_json(&decoded, &schema), input);
        assert_eq!(to_json(&value, &schema), input);
    }

    #[test]
    fn calendar_arithmetic_round_trips() {
        let mut days = -800_000;
        while days <= 800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            days += 97;
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(20_781), (2026, 11, 24));
    }

    #[test]
    fn field_error_display() {
        let e = FieldError {
            path: "$.items[3].price".into(),
            message: "expected a number (double), found \"12,50\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "$.items[3].price: expected a number (double), found \"12,50\""
        );
    }
}
