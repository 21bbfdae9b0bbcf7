//! Avro schema compatibility: can a reader schema read data written with a writer
//! schema? The verdicts follow the Avro specification's "Schema Resolution" section
//! as Apache Avro's own checker (Java `SchemaCompatibility`) applies it, and every
//! problem is reported, each located by a JSON pointer into the reader schema.
//!
//! [`check`] compares one reader with one writer; [`check_level`] applies a Confluent
//! compatibility level to a candidate schema and the existing versions of a subject.
//!
//! Where this checker differs from Java's on purpose:
//! - decimals: Java ignores logical types entirely. The spec says two decimals match
//!   only if their scales and precisions match, and a changed scale silently rescales
//!   every value, so a different scale, or a reader precision smaller than the writer's,
//!   is a [`IncompatibilityKind::TypeMismatch`]. A wider reader precision loses nothing
//!   and stays compatible. Decimal against a plain `bytes`/`fixed` compares the
//!   underlying types, as in Java.
//! - when no branch of a reader union can read a writer type, the union is reported
//!   as [`IncompatibilityKind::MissingUnionBranch`] as in Java, and if one reader branch
//!   is the same kind of type (same record/enum/fixed name, or both arrays or maps), its
//!   own problems are reported too, under that branch (`/fields/0/type/1/...`): the
//!   usual case is an optional record whose real problem is a field inside it.
//! - a named type used several times is reported at every place it is used; Java's
//!   memo repeats the first place.
//! - a reader field that matches writer fields both by name and by alias uses the one
//!   matched by name, where Java throws.
//! - a reader field missing from the writer, without a default, is always
//!   [`IncompatibilityKind::ReaderFieldMissingDefaultValue`]; Java checks an enum
//!   field with a default symbol against the whole writer record instead, which is
//!   incompatible too but as a type mismatch.

use std::collections::HashMap;
use std::fmt;

use apache_avro::Schema;
use apache_avro::schema::{
    Aliases, EnumSchema, FixedSchema, InnerDecimalSchema, Name, RecordField, RecordSchema,
    UuidSchema,
};
use onepipe_core::metadata::Compatibility;

/// One reason the reader cannot read data written with the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// JSON pointer into the READER schema where the problem is, e.g. "/fields/2/type",
    /// "/items", "/values", "/symbols", "/size", "/name", "" for the root.
    pub location: String,
    pub kind: IncompatibilityKind,
    /// A sentence, lowercase start, e.g. `reader type "string" cannot read writer type "long"`.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncompatibilityKind {
    NameMismatch,
    FixedSizeMismatch,
    MissingEnumSymbols,
    ReaderFieldMissingDefaultValue,
    TypeMismatch,
    MissingUnionBranch,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let location = if self.location.is_empty() {
            "/"
        } else {
            self.location.as_str()
        };
        write!(f, "{location}: {}", self.message)
    }
}

/// Every incompatibility found (empty = compatible). `reader` reads data written with `writer`.
pub fn check(reader: &Schema, writer: &Schema) -> Vec<Incompatibility> {
    let mut checker = Checker {
        reader_names: named_types(reader),
        writer_names: named_types(writer),
        memo: HashMap::new(),
    };
    checker.check(reader, writer)
}

/// Confluent's meaning of a level, given the candidate (new) schema and the existing
/// versions (oldest first; only live versions).
/// BACKWARD: new reads latest; FORWARD: latest reads new; FULL: both; *_TRANSITIVE:
/// against every existing version; NONE: nothing.
/// Returns the messages, each prefixed with the version and the direction that failed.
pub fn check_level(
    level: Compatibility,
    candidate: &Schema,
    existing: &[(i32, Schema)],
) -> Vec<String> {
    let (backward, forward, transitive) = match level {
        Compatibility::None => return Vec::new(),
        Compatibility::Backward => (true, false, false),
        Compatibility::BackwardTransitive => (true, false, true),
        Compatibility::Forward => (false, true, false),
        Compatibility::ForwardTransitive => (false, true, true),
        Compatibility::Full => (true, true, false),
        Compatibility::FullTransitive => (true, true, true),
    };
    let against = if transitive {
        existing
    } else {
        &existing[existing.len().saturating_sub(1)..]
    };
    let mut messages = Vec::new();
    for (version, schema) in against {
        if backward {
            for problem in check(candidate, schema) {
                messages.push(format!(
                    "version {version}: the new schema cannot read data written with it: {problem}"
                ));
            }
        }
        if forward {
            // Locations here point into the existing version, which is the reader.
            for problem in check(schema, candidate) {
                messages.push(format!(
                    "version {version}: it cannot read data written with the new schema: {problem}"
                ));
            }
        }
    }
    messages
}

/// What a schema is on the wire: logical types are reduced to the type they annotate
/// (the resolution rules only look at that) and references to the named type they name.
#[derive(Clone, Copy)]
enum Shape<'a> {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(&'a Schema),
    Map(&'a Schema),
    Union(&'a [Schema]),
    Record(&'a RecordSchema),
    Enum(&'a EnumSchema),
    Fixed(&'a FixedSchema),
    /// A reference to a type not defined in the schema (e.g. one from another subject).
    Unresolved(&'a Name),
}

impl Shape<'_> {
    fn describe(&self) -> String {
        let plain = match self {
            Shape::Null => "null",
            Shape::Boolean => "boolean",
            Shape::Int => "int",
            Shape::Long => "long",
            Shape::Float => "float",
            Shape::Double => "double",
            Shape::Bytes => "bytes",
            Shape::String => "string",
            Shape::Array(_) => "array",
            Shape::Map(_) => "map",
            Shape::Union(_) => "union",
            Shape::Record(r) => return format!("record \"{}\"", full_name(&r.name)),
            Shape::Enum(e) => return format!("enum \"{}\"", full_name(&e.name)),
            Shape::Fixed(f) => return format!("fixed \"{}\"", full_name(&f.name)),
            Shape::Unresolved(n) => return format!("unknown type \"{}\"", full_name(n)),
        };
        format!("\"{plain}\"")
    }
}

type NamedTypes<'a> = HashMap<String, Shape<'a>>;

fn full_name(name: &Name) -> String {
    name.fullname(None)
}

/// Every named type defined in `schema`, by full name and by alias (the parser turns
/// a use of either into a `Schema::Ref`).
fn named_types(schema: &Schema) -> NamedTypes<'_> {
    let mut names = HashMap::new();
    collect_named(schema, &mut names);
    names
}

fn collect_named<'a>(schema: &'a Schema, names: &mut NamedTypes<'a>) {
    fn register<'a>(names: &mut NamedTypes<'a>, name: &Name, aliases: &Aliases, shape: Shape<'a>) {
        names.entry(full_name(name)).or_insert(shape);
        for alias in aliases.iter().flatten() {
            names.entry(alias.fullname(None)).or_insert(shape);
        }
    }
    match schema {
        Schema::Record(record) => {
            register(names, &record.name, &record.aliases, Shape::Record(record));
            for field in &record.fields {
                collect_named(&field.schema, names);
            }
        }
        Schema::Enum(e) => register(names, &e.name, &e.aliases, Shape::Enum(e)),
        Schema::Fixed(fixed) | Schema::Duration(fixed) | Schema::Uuid(UuidSchema::Fixed(fixed)) => {
            register(names, &fixed.name, &fixed.aliases, Shape::Fixed(fixed));
        }
        Schema::Decimal(decimal) => {
            if let InnerDecimalSchema::Fixed(fixed) = &decimal.inner {
                register(names, &fixed.name, &fixed.aliases, Shape::Fixed(fixed));
            }
        }
        Schema::Array(array) => collect_named(&array.items, names),
        Schema::Map(map) => collect_named(&map.types, names),
        Schema::Union(union) => {
            for variant in union.variants() {
                collect_named(variant, names);
            }
        }
        _ => {}
    }
}

fn shape<'a>(schema: &'a Schema, names: &NamedTypes<'a>) -> Shape<'a> {
    match schema {
        Schema::Null => Shape::Null,
        Schema::Boolean => Shape::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Shape::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Shape::Long,
        Schema::Float => Shape::Float,
        Schema::Double => Shape::Double,
        Schema::Bytes | Schema::BigDecimal | Schema::Uuid(UuidSchema::Bytes) => Shape::Bytes,
        Schema::String | Schema::Uuid(UuidSchema::String) => Shape::String,
        Schema::Uuid(UuidSchema::Fixed(fixed)) | Schema::Fixed(fixed) | Schema::Duration(fixed) => {
            Shape::Fixed(fixed)
        }
        Schema::Decimal(decimal) => match &decimal.inner {
            InnerDecimalSchema::Bytes => Shape::Bytes,
            InnerDecimalSchema::Fixed(fixed) => Shape::Fixed(fixed),
        },
        Schema::Array(array) => Shape::Array(&array.items),
        Schema::Map(map) => Shape::Map(&map.types),
        Schema::Union(union) => Shape::Union(union.variants()),
        Schema::Record(record) => Shape::Record(record),
        Schema::Enum(e) => Shape::Enum(e),
        Schema::Ref { name } => match names.get(&full_name(name)) {
            Some(found) => *found,
            None => Shape::Unresolved(name),
        },
    }
}

/// Java's `schemaNameEquals`: the unqualified names are equal, or the writer's full
/// name is one of the reader's aliases (which the parser has already qualified).
fn names_match(reader: &Name, reader_aliases: &Aliases, writer: &Name) -> bool {
    if reader.name() == writer.name() {
        return true;
    }
    let writer_full = full_name(writer);
    for alias in reader_aliases.iter().flatten() {
        if alias.fullname(None) == writer_full {
            return true;
        }
    }
    false
}

fn problem(location: &str, kind: IncompatibilityKind, message: String) -> Incompatibility {
    Incompatibility {
        location: location.to_string(),
        kind,
        message,
    }
}

/// Results are built bottom-up with locations relative to the schema being checked;
/// each caller prefixes the step it took into the reader.
fn relocate(problems: Vec<Incompatibility>, prefix: &str, out: &mut Vec<Incompatibility>) {
    for mut p in problems {
        p.location.insert_str(0, prefix);
        out.push(p);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum NamedKind {
    Record,
    Enum,
    Fixed,
}

struct Checker<'a> {
    reader_names: NamedTypes<'a>,
    writer_names: NamedTypes<'a>,
    /// Named pairs already checked (their problems, relative to the pair) or being
    /// checked (`None`): re-entering a pair means a recursive type, which is taken
    /// as compatible there since its problems are reported where the pair started.
    memo: HashMap<(NamedKind, String, String), Option<Vec<Incompatibility>>>,
}

impl<'a> Checker<'a> {
    fn check(&mut self, reader: &'a Schema, writer: &'a Schema) -> Vec<Incompatibility> {
        let r = shape(reader, &self.reader_names);
        let w = shape(writer, &self.writer_names);
        let mut out = self.check_shapes(reader, writer, r, w);
        if let (Schema::Decimal(rd), Schema::Decimal(wd)) = (reader, writer) {
            if rd.scale != wd.scale {
                out.push(problem(
                    "",
                    IncompatibilityKind::TypeMismatch,
                    format!(
                        "reader decimal scale {} differs from writer decimal scale {}",
                        rd.scale, wd.scale
                    ),
                ));
            }
            if rd.precision < wd.precision {
                out.push(problem(
                    "",
                    IncompatibilityKind::TypeMismatch,
                    format!(
                        "reader decimal precision {} is smaller than writer decimal precision {}",
                        rd.precision, wd.precision
                    ),
                ));
            }
        }
        out
    }

    fn check_shapes(
        &mut self,
        reader: &'a Schema,
        writer: &'a Schema,
        r: Shape<'a>,
        w: Shape<'a>,
    ) -> Vec<Incompatibility> {
        use IncompatibilityKind::*;
        let mut out = Vec::new();
        match (r, w) {
            (Shape::Union(reader_branches), Shape::Union(writer_branches)) => {
                for (j, writer_branch) in writer_branches.iter().enumerate() {
                    let wb = shape(writer_branch, &self.writer_names);
                    let what = format!("writer union branch {j} (type {})", wb.describe());
                    self.union_reads(reader_branches, writer_branch, &what, &mut out);
                }
            }
            // Every branch the writer may have used must be readable.
            (_, Shape::Union(writer_branches)) => {
                for (j, writer_branch) in writer_branches.iter().enumerate() {
                    for mut p in self.check(reader, writer_branch) {
                        p.message.push_str(&format!(" (writer union branch {j})"));
                        out.push(p);
                    }
                }
            }
            (Shape::Union(reader_branches), _) => {
                let what = format!("writer type {}", w.describe());
                self.union_reads(reader_branches, writer, &what, &mut out);
            }
            (Shape::Null, Shape::Null)
            | (Shape::Boolean, Shape::Boolean)
            | (Shape::Int, Shape::Int)
            | (Shape::Long, Shape::Long | Shape::Int)
            | (Shape::Float, Shape::Float | Shape::Long | Shape::Int)
            | (Shape::Double, Shape::Double | Shape::Float | Shape::Long | Shape::Int)
            | (Shape::Bytes | Shape::String, Shape::Bytes | Shape::String) => {}
            (Shape::Array(reader_items), Shape::Array(writer_items)) => {
                let nested = self.check(reader_items, writer_items);
                relocate(nested, "/items", &mut out);
            }
            (Shape::Map(reader_values), Shape::Map(writer_values)) => {
                let nested = self.check(reader_values, writer_values);
                relocate(nested, "/values", &mut out);
            }
            (Shape::Record(rr), Shape::Record(wr)) => {
                let key = (NamedKind::Record, full_name(&rr.name), full_name(&wr.name));
                out = self.memoized(key, |c| c.check_record(rr, wr));
            }
            (Shape::Enum(re), Shape::Enum(we)) => {
                let key = (NamedKind::Enum, full_name(&re.name), full_name(&we.name));
                out = self.memoized(key, |_| check_enum(re, we));
            }
            (Shape::Fixed(rf), Shape::Fixed(wf)) => {
                let key = (NamedKind::Fixed, full_name(&rf.name), full_name(&wf.name));
                out = self.memoized(key, |_| check_fixed(rf, wf));
            }
            // Nothing is known of a type defined elsewhere but its name.
            (Shape::Unresolved(rn), Shape::Unresolved(wn)) if rn == wn => {}
            _ => out.push(problem(
                "",
                TypeMismatch,
                format!(
                    "reader type {} cannot read writer type {}",
                    r.describe(),
                    w.describe()
                ),
            )),
        }
        out
    }

    /// A reader union reads a (non-union) writer type if any branch does, as Java decides.
    fn union_reads(
        &mut self,
        reader_branches: &'a [Schema],
        writer: &'a Schema,
        what: &str,
        out: &mut Vec<Incompatibility>,
    ) {
        for branch in reader_branches {
            if self.check(branch, writer).is_empty() {
                return;
            }
        }
        out.push(problem(
            "",
            IncompatibilityKind::MissingUnionBranch,
            format!("reader union has no branch that can read {what}"),
        ));
        // Say why the branch that was meant to read it cannot.
        let w = shape(writer, &self.writer_names);
        for (k, branch) in reader_branches.iter().enumerate() {
            if same_family(shape(branch, &self.reader_names), w) {
                let nested = self.check(branch, writer);
                relocate(nested, &format!("/{k}"), out);
                return;
            }
        }
    }

    fn memoized(
        &mut self,
        key: (NamedKind, String, String),
        check: impl FnOnce(&mut Self) -> Vec<Incompatibility>,
    ) -> Vec<Incompatibility> {
        match self.memo.get(&key) {
            Some(Some(done)) => return done.clone(),
            Some(None) => return Vec::new(),
            None => {}
        }
        self.memo.insert(key.clone(), None);
        let result = check(self);
        self.memo.insert(key, Some(result.clone()));
        result
    }

    fn check_record(
        &mut self,
        reader: &'a RecordSchema,
        writer: &'a RecordSchema,
    ) -> Vec<Incompatibility> {
        let mut out = Vec::new();
        if !names_match(&reader.name, &reader.aliases, &writer.name) {
            out.push(name_mismatch("record", &reader.name, &writer.name));
        }
        for (i, reader_field) in reader.fields.iter().enumerate() {
            match writer_field(writer, reader_field) {
                Some(writer_field) => {
                    let nested = self.check(&reader_field.schema, &writer_field.schema);
                    relocate(nested, &format!("/fields/{i}/type"), &mut out);
                }
                None if reader_field.default.is_none() => out.push(problem(
                    &format!("/fields/{i}"),
                    IncompatibilityKind::ReaderFieldMissingDefaultValue,
                    format!(
                        "reader field \"{}\" has no default value and the writer has no such field",
                        reader_field.name
                    ),
                )),
                // The default fills it in.
                None => {}
            }
        }
        out
    }
}

/// The writer field a reader field reads: by name, else by one of the reader field's
/// aliases (the writer's own field aliases play no part, as in Java).
fn writer_field<'w>(
    writer: &'w RecordSchema,
    reader_field: &RecordField,
) -> Option<&'w RecordField> {
    for field in &writer.fields {
        if field.name == reader_field.name {
            return Some(field);
        }
    }
    for alias in &reader_field.aliases {
        for field in &writer.fields {
            if &field.name == alias {
                return Some(field);
            }
        }
    }
    None
}

fn check_enum(reader: &EnumSchema, writer: &EnumSchema) -> Vec<Incompatibility> {
    let mut out = Vec::new();
    if !names_match(&reader.name, &reader.aliases, &writer.name) {
        out.push(name_mismatch("enum", &reader.name, &writer.name));
    }
    // Since Avro 1.9 a reader default symbol stands in for any unknown writer symbol.
    if reader.default.is_none() {
        let mut missing = Vec::new();
        for symbol in &writer.symbols {
            if !reader.symbols.contains(symbol) {
                missing.push(format!("\"{symbol}\""));
            }
        }
        if !missing.is_empty() {
            out.push(problem(
                "/symbols",
                IncompatibilityKind::MissingEnumSymbols,
                format!(
                    "reader enum has no default symbol and lacks writer symbols {}",
                    missing.join(", ")
                ),
            ));
        }
    }
    out
}

fn check_fixed(reader: &FixedSchema, writer: &FixedSchema) -> Vec<Incompatibility> {
    let mut out = Vec::new();
    if !names_match(&reader.name, &reader.aliases, &writer.name) {
        out.push(name_mismatch("fixed", &reader.name, &writer.name));
    }
    if reader.size != writer.size {
        out.push(problem(
            "/size",
            IncompatibilityKind::FixedSizeMismatch,
            format!(
                "reader fixed size {} differs from writer fixed size {}",
                reader.size, writer.size
            ),
        ));
    }
    out
}

fn name_mismatch(what: &str, reader: &Name, writer: &Name) -> Incompatibility {
    problem(
        "/name",
        IncompatibilityKind::NameMismatch,
        format!(
            "reader {what} \"{}\" has neither the name nor an alias of writer {what} \"{}\"",
            full_name(reader),
            full_name(writer)
        ),
    )
}

/// Whether a reader union branch is the one meant for a writer type that it cannot
/// read, so that its own problems are worth reporting.
fn same_family(reader: Shape<'_>, writer: Shape<'_>) -> bool {
    match (reader, writer) {
        (Shape::Record(r), Shape::Record(w)) => names_match(&r.name, &r.aliases, &w.name),
        (Shape::Enum(r), Shape::Enum(w)) => names_match(&r.name, &r.aliases, &w.name),
        (Shape::Fixed(r), Shape::Fixed(w)) => names_match(&r.name, &r.aliases, &w.name),
        (Shape::Array(_), Shape::Array(_)) | (Shape::Map(_), Shape::Map(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::IncompatibilityKind::*;
    use super::*;

    /// A record named `name` with the given field list (JSON objects, comma separated).
    fn rec(name: &str, fields: &str) -> String {
        format!(r#"{{"type":"record","name":"{name}","fields":[{fields}]}}"#)
    }

    fn field(name: &str, ty: &str) -> String {
        format!(r#"{{"name":"{name}","type":{ty}}}"#)
    }

    fn enm(name: &str, symbols: &str) -> String {
        format!(r#"{{"type":"enum","name":"{name}","symbols":[{symbols}]}}"#)
    }

    fn q(s: &str) -> String {
        format!("\"{s}\"")
    }

    struct Case {
        name: &'static str,
        reader: String,
        writer: String,
        /// Empty: compatible. Otherwise every (location, kind) expected, in any order.
        expected: Vec<(&'static str, IncompatibilityKind)>,
    }

    fn case(
        name: &'static str,
        reader: impl Into<String>,
        writer: impl Into<String>,
        expected: &[(&'static str, IncompatibilityKind)],
    ) -> Case {
        Case {
            name,
            reader: reader.into(),
            writer: writer.into(),
            expected: expected.to_vec(),
        }
    }

    const OK: &[(&str, IncompatibilityKind)] = &[];
    const ROOT_MISMATCH: &[(&str, IncompatibilityKind)] = &[("", TypeMismatch)];

    fn primitive_cases() -> Vec<Case> {
        // (reader, writer, readable) — the spec's promotions and nothing else.
        let pairs: &[(&str, &str, bool)] = &[
            ("null", "null", true),
            ("boolean", "boolean", true),
            ("int", "int", true),
            ("long", "long", true),
            ("float", "float", true),
            ("double", "double", true),
            ("bytes", "bytes", true),
            ("string", "string", true),
            ("long", "int", true),
            ("float", "int", true),
            ("float", "long", true),
            ("double", "int", true),
            ("double", "long", true),
            ("double", "float", true),
            ("string", "bytes", true),
            ("bytes", "string", true),
            ("int", "long", false),
            ("int", "float", false),
            ("int", "double", false),
            ("long", "float", false),
            ("long", "double", false),
            ("float", "double", false),
            ("string", "long", false),
            ("long", "string", false),
            ("int", "string", false),
            ("bytes", "int", false),
            ("double", "string", false),
            ("boolean", "int", false),
            ("int", "boolean", false),
            ("long", "boolean", false),
            ("null", "int", false),
            ("int", "null", false),
            ("string", "null", false),
            ("boolean", "string", false),
        ];
        let mut cases = Vec::new();
        for (reader, writer, readable) in pairs {
            let expected = if *readable { OK } else { ROOT_MISMATCH };
            cases.push(case("primitive", q(reader), q(writer), expected));
        }
        cases
    }

    fn cases() -> Vec<Case> {
        let int_a = field("a", r#""int""#);
        let long_a = field("a", r#""long""#);
        let b_str = field("b", r#""string""#);
        let b_str_default = r#"{"name":"b","type":"string","default":"x"}"#;
        let inner_a = rec("Inner", &int_a);
        let inner_ab = rec("Inner", &format!("{int_a},{b_str}"));
        let list = |value: &str, extra: &str| {
            format!(
                r#"{{"type":"record","name":"LongList","fields":[{{"name":"value","type":"{value}"}},{{"name":"next","type":["null","LongList"]}}{extra}]}}"#
            )
        };
        let tree = |extra: &str| {
            format!(
                r#"{{"type":"record","name":"Tree","fields":[{{"name":"value","type":"int"}},{{"name":"children","type":{{"type":"array","items":"Tree"}}}}{extra}]}}"#
            )
        };
        let decimal = |precision: u32, scale: u32| {
            format!(
                r#"{{"type":"bytes","logicalType":"decimal","precision":{precision},"scale":{scale}}}"#
            )
        };
        let fixed =
            |name: &str, size: u32| format!(r#"{{"type":"fixed","name":"{name}","size":{size}}}"#);
        let logical = |ty: &str, lt: &str| format!(r#"{{"type":"{ty}","logicalType":"{lt}"}}"#);
        let array = |items: &str| format!(r#"{{"type":"array","items":{items}}}"#);
        let map = |values: &str| format!(r#"{{"type":"map","values":{values}}}"#);

        let mut cases = primitive_cases();
        cases.extend([
            // Complex against primitive and each other.
            case("array vs int", array(r#""int""#), q("int"), ROOT_MISMATCH),
            case("int vs array", q("int"), array(r#""int""#), ROOT_MISMATCH),
            case(
                "map vs array",
                map(r#""int""#),
                array(r#""int""#),
                ROOT_MISMATCH,
            ),
            case(
                "record vs string",
                rec("R", &int_a),
                q("string"),
                ROOT_MISMATCH,
            ),
            case(
                "enum vs string",
                enm("E", r#""A""#),
                q("string"),
                ROOT_MISMATCH,
            ),
            case(
                "string vs enum",
                q("string"),
                enm("E", r#""A""#),
                ROOT_MISMATCH,
            ),
            case("fixed vs bytes", fixed("F", 4), q("bytes"), ROOT_MISMATCH),
            case("bytes vs fixed", q("bytes"), fixed("F", 4), ROOT_MISMATCH),
            case(
                "record vs enum",
                rec("R", &int_a),
                enm("R", r#""A""#),
                ROOT_MISMATCH,
            ),
        ]);
        cases.extend([
            // Arrays.
            case(
                "array long reads int",
                array(r#""long""#),
                array(r#""int""#),
                OK,
            ),
            case(
                "array int reads long",
                array(r#""int""#),
                array(r#""long""#),
                &[("/items", TypeMismatch)],
            ),
            case(
                "array string reads bytes",
                array(r#""string""#),
                array(r#""bytes""#),
                OK,
            ),
            case(
                "array of arrays narrowed",
                array(&array(r#""int""#)),
                array(&array(r#""long""#)),
                &[("/items/items", TypeMismatch)],
            ),
            case(
                "array of records",
                array(&rec("R", &int_a)),
                array(&rec("R", &long_a)),
                &[("/items/fields/0/type", TypeMismatch)],
            ),
            case(
                "array of optional reads array",
                array(r#"["null","int"]"#),
                array(r#""int""#),
                OK,
            ),
            case(
                "array of fixed size",
                array(&fixed("F", 4)),
                array(&fixed("F", 8)),
                &[("/items/size", FixedSizeMismatch)],
            ),
        ]);
        cases.extend([
            // Maps.
            case("map long reads int", map(r#""long""#), map(r#""int""#), OK),
            case(
                "map int reads long",
                map(r#""int""#),
                map(r#""long""#),
                &[("/values", TypeMismatch)],
            ),
            case(
                "map double reads float",
                map(r#""double""#),
                map(r#""float""#),
                OK,
            ),
            case(
                "map of maps string bytes",
                map(&map(r#""string""#)),
                map(&map(r#""bytes""#)),
                OK,
            ),
            case(
                "map of maps int string",
                map(&map(r#""int""#)),
                map(&map(r#""string""#)),
                &[("/values/values", TypeMismatch)],
            ),
            case(
                "map of record with added defaulted field",
                map(&rec("R", &format!("{int_a},{b_str_default}"))),
                map(&rec("R", &int_a)),
                OK,
            ),
            case(
                "map of record with added required field",
                map(&rec("R", &format!("{int_a},{b_str}"))),
                map(&rec("R", &int_a)),
                &[("/values/fields/1", ReaderFieldMissingDefaultValue)],
            ),
            case(
                "map vs map of array",
                map(r#""int""#),
                map(&array(r#""int""#)),
                &[("/values", TypeMismatch)],
            ),
        ]);
        cases.extend([
            // Records.
            case("same record", rec("R", &int_a), rec("R", &int_a), OK),
            case("empty records", rec("R", ""), rec("R", ""), OK),
            case("empty reader ignores writer fields", rec("R", ""), rec("R", &format!("{int_a},{b_str}")), OK),
            case("reader adds defaulted field", rec("R", &format!("{int_a},{b_str_default}")), rec("R", &int_a), OK),
            case(
                "reader adds required field",
                rec("R", &format!("{int_a},{b_str}")),
                rec("R", &int_a),
                &[("/fields/1", ReaderFieldMissingDefaultValue)],
            ),
            case("reader drops a field", rec("R", &int_a), rec("R", &format!("{int_a},{b_str}")), OK),
            case(
                "reader adds optional field with null default",
                rec("R", &format!(r#"{int_a},{{"name":"b","type":["null","string"],"default":null}}"#)),
                rec("R", &int_a),
                OK,
            ),
            case(
                "reader adds optional field without default",
                rec("R", &format!(r#"{int_a},{{"name":"b","type":["null","string"]}}"#)),
                rec("R", &int_a),
                &[("/fields/1", ReaderFieldMissingDefaultValue)],
            ),
            case("field promoted", rec("R", &long_a), rec("R", &int_a), OK),
            case("field narrowed", rec("R", &int_a), rec("R", &long_a), &[("/fields/0/type", TypeMismatch)]),
            case(
                "field renamed without alias",
                rec("R", &field("c", r#""int""#)),
                rec("R", &int_a),
                &[("/fields/0", ReaderFieldMissingDefaultValue)],
            ),
            case(
                "field renamed with reader alias",
                rec("R", r#"{"name":"c","type":"int","aliases":["a"]}"#),
                rec("R", &int_a),
                OK,
            ),
            case(
                "field renamed with alias and narrowed",
                rec("R", r#"{"name":"c","type":"int","aliases":["a"]}"#),
                rec("R", &long_a),
                &[("/fields/0/type", TypeMismatch)],
            ),
            case("field renamed with default", rec("R", r#"{"name":"c","type":"int","default":0}"#), rec("R", &int_a), OK),
            case(
                "writer field alias is not used",
                rec("R", &field("c", r#""int""#)),
                rec("R", r#"{"name":"a","type":"int","aliases":["c"]}"#),
                &[("/fields/0", ReaderFieldMissingDefaultValue)],
            ),
            case(
                "field name wins over alias",
                rec("R", r#"{"name":"a","type":"int","aliases":["b"]}"#),
                rec("R", &format!("{int_a},{b_str}")),
                OK,
            ),
            case("fields reordered", rec("R", &format!("{b_str},{int_a}")), rec("R", &format!("{int_a},{b_str}")), OK),
            case("record name mismatch", rec("R", &int_a), rec("S", &int_a), &[("/name", NameMismatch)]),
            case(
                "record reader alias",
                r#"{"type":"record","name":"R","aliases":["S"],"fields":[{"name":"a","type":"int"}]}"#,
                rec("S", &int_a),
                OK,
            ),
            case(
                "record writer alias is not used",
                rec("R", &int_a),
                r#"{"type":"record","name":"S","aliases":["R"],"fields":[{"name":"a","type":"int"}]}"#,
                &[("/name", NameMismatch)],
            ),
            case(
                "namespace change only, java compares short names",
                r#"{"type":"record","name":"R","namespace":"a","fields":[{"name":"a","type":"int"}]}"#,
                r#"{"type":"record","name":"R","namespace":"b","fields":[{"name":"a","type":"int"}]}"#,
                OK,
            ),
            case(
                "qualified reader alias",
                r#"{"type":"record","name":"b.New","aliases":["a.Old"],"fields":[]}"#,
                r#"{"type":"record","name":"a.Old","fields":[]}"#,
                OK,
            ),
            case(
                "short reader alias takes reader namespace",
                r#"{"type":"record","name":"New","namespace":"b","aliases":["Old"],"fields":[]}"#,
                r#"{"type":"record","name":"Old","namespace":"a","fields":[]}"#,
                &[("/name", NameMismatch)],
            ),
            case(
                "short reader alias in same namespace",
                r#"{"type":"record","name":"New","namespace":"a","aliases":["Old"],"fields":[]}"#,
                r#"{"type":"record","name":"Old","namespace":"a","fields":[]}"#,
                OK,
            ),
            case(
                "record name and field both wrong",
                rec("R", &int_a),
                rec("S", &long_a),
                &[("/name", NameMismatch), ("/fields/0/type", TypeMismatch)],
            ),
            case(
                "nested record field missing default",
                rec("Outer", &field("inner", &inner_ab)),
                rec("Outer", &field("inner", &inner_a)),
                &[("/fields/0/type/fields/1", ReaderFieldMissingDefaultValue)],
            ),
            case(
                "nested record field type",
                rec("Outer", &field("inner", &rec("Inner", &format!(r#"{int_a},{{"name":"b","type":"int"}}"#)))),
                rec("Outer", &field("inner", &inner_ab)),
                &[("/fields/0/type/fields/1/type", TypeMismatch)],
            ),
            case(
                "nested record promoted",
                rec("Outer", &field("inner", &rec("Inner", &long_a))),
                rec("Outer", &field("inner", &inner_a)),
                OK,
            ),
            case(
                "named type reused is reported at each use",
                rec("Outer", &format!(r#"{},{}"#, field("x", &rec("Inner", &int_a)), field("y", r#""Inner""#))),
                rec("Outer", &format!(r#"{},{}"#, field("x", &rec("Inner", &long_a)), field("y", r#""Inner""#))),
                &[("/fields/0/type/fields/0/type", TypeMismatch), ("/fields/1/type/fields/0/type", TypeMismatch)],
            ),
            case(
                "added record field with record default",
                rec("R", &format!(r#"{int_a},{{"name":"p","type":{},"default":{{"a":1}}}}"#, rec("P", &int_a))),
                rec("R", &int_a),
                OK,
            ),
            case(
                "several problems at once",
                rec("R", &format!("{int_a},{b_str},{}", field("c", &enm("E", r#""X""#)))),
                rec("R", &format!("{long_a},{}", field("c", &enm("E", r#""X","Y""#)))),
                &[
                    ("/fields/0/type", TypeMismatch),
                    ("/fields/1", ReaderFieldMissingDefaultValue),
                    ("/fields/2/type/symbols", MissingEnumSymbols),
                ],
            ),
        ]);
        cases.extend([
            // Enums.
            case(
                "same enum",
                enm("E", r#""A","B""#),
                enm("E", r#""A","B""#),
                OK,
            ),
            case(
                "reader adds symbol",
                enm("E", r#""A","B","C""#),
                enm("E", r#""A","B""#),
                OK,
            ),
            case(
                "reader lacks symbol",
                enm("E", r#""A""#),
                enm("E", r#""A","B""#),
                &[("/symbols", MissingEnumSymbols)],
            ),
            case(
                "reader lacks symbol but has default",
                r#"{"type":"enum","name":"E","symbols":["A","U"],"default":"U"}"#,
                enm("E", r#""A","B""#),
                OK,
            ),
            case(
                "writer default does not help",
                enm("E", r#""A""#),
                r#"{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}"#,
                &[("/symbols", MissingEnumSymbols)],
            ),
            case(
                "enum name mismatch",
                enm("E", r#""A""#),
                enm("F", r#""A""#),
                &[("/name", NameMismatch)],
            ),
            case(
                "enum name and symbols",
                enm("E", r#""A""#),
                enm("F", r#""A","B""#),
                &[("/name", NameMismatch), ("/symbols", MissingEnumSymbols)],
            ),
            case(
                "enum reader alias",
                r#"{"type":"enum","name":"E","aliases":["F"],"symbols":["A"]}"#,
                enm("F", r#""A""#),
                OK,
            ),
            case(
                "symbols reordered",
                enm("E", r#""B","A""#),
                enm("E", r#""A","B""#),
                OK,
            ),
            case(
                "enum field lacks symbol",
                rec("R", &field("e", &enm("E", r#""A""#))),
                rec("R", &field("e", &enm("E", r#""A","B""#))),
                &[("/fields/0/type/symbols", MissingEnumSymbols)],
            ),
            case(
                "enum vs fixed",
                enm("E", r#""A""#),
                fixed("E", 1),
                ROOT_MISMATCH,
            ),
        ]);
        cases.extend([
            // Fixed.
            case("same fixed", fixed("F", 16), fixed("F", 16), OK),
            case(
                "fixed size",
                fixed("F", 16),
                fixed("F", 8),
                &[("/size", FixedSizeMismatch)],
            ),
            case(
                "fixed name",
                fixed("F", 16),
                fixed("G", 16),
                &[("/name", NameMismatch)],
            ),
            case(
                "fixed name and size",
                fixed("F", 16),
                fixed("G", 8),
                &[("/name", NameMismatch), ("/size", FixedSizeMismatch)],
            ),
            case(
                "fixed reader alias",
                r#"{"type":"fixed","name":"F","aliases":["G"],"size":4}"#,
                fixed("G", 4),
                OK,
            ),
            case(
                "fixed field size",
                rec("R", &field("f", &fixed("F", 4))),
                rec("R", &field("f", &fixed("F", 2))),
                &[("/fields/0/type/size", FixedSizeMismatch)],
            ),
        ]);
        cases.extend([
            // Unions.
            case(
                "optional reads plain",
                r#"["null","string"]"#,
                q("string"),
                OK,
            ),
            case(
                "plain reads optional",
                q("string"),
                r#"["null","string"]"#,
                ROOT_MISMATCH,
            ),
            case(
                "union reordered",
                r#"["string","null"]"#,
                r#"["null","string"]"#,
                OK,
            ),
            case(
                "reader union lacks writer branch",
                r#"["null","string"]"#,
                r#"["null","string","int"]"#,
                &[("", MissingUnionBranch)],
            ),
            case(
                "reader union adds branch",
                r#"["null","string","int"]"#,
                r#"["null","string"]"#,
                OK,
            ),
            case(
                "union branch promoted",
                r#"["null","long"]"#,
                r#"["null","int"]"#,
                OK,
            ),
            case(
                "union branch narrowed",
                r#"["null","int"]"#,
                r#"["null","long"]"#,
                &[("", MissingUnionBranch)],
            ),
            case(
                "plain reads union of promotable",
                q("long"),
                r#"["int","long"]"#,
                OK,
            ),
            case(
                "plain cannot read one writer branch",
                q("int"),
                r#"["int","long"]"#,
                ROOT_MISMATCH,
            ),
            case(
                "plain cannot read two writer branches",
                q("int"),
                r#"["null","int","string"]"#,
                &[("", TypeMismatch), ("", TypeMismatch)],
            ),
            case(
                "union reads promotable plain",
                r#"["null","double"]"#,
                q("float"),
                OK,
            ),
            case(
                "union has no branch for plain",
                r#"["null","int"]"#,
                q("string"),
                &[("", MissingUnionBranch)],
            ),
            case("union reads null", r#"["null","string"]"#, q("null"), OK),
            case(
                "union without null",
                r#"["int","string"]"#,
                q("null"),
                &[("", MissingUnionBranch)],
            ),
            case(
                "string reads string or bytes",
                q("string"),
                r#"["string","bytes"]"#,
                OK,
            ),
            case("single branch unions", r#"["bytes"]"#, r#"["string"]"#, OK),
            case(
                "union of string reads bytes branch",
                r#"["null","string"]"#,
                r#"["null","bytes"]"#,
                OK,
            ),
            case(
                "optional field made required",
                rec("R", &field("a", r#""string""#)),
                rec(
                    "R",
                    r#"{"name":"a","type":["null","string"],"default":null}"#,
                ),
                &[("/fields/0/type", TypeMismatch)],
            ),
            case(
                "required field made optional",
                rec(
                    "R",
                    r#"{"name":"a","type":["null","string"],"default":null}"#,
                ),
                rec("R", &field("a", r#""string""#)),
                OK,
            ),
            case(
                "optional record with required new field",
                rec("Outer", &field("inner", &format!(r#"["null",{inner_ab}]"#))),
                rec("Outer", &field("inner", &format!(r#"["null",{inner_a}]"#))),
                &[
                    ("/fields/0/type", MissingUnionBranch),
                    ("/fields/0/type/1/fields/1", ReaderFieldMissingDefaultValue),
                ],
            ),
            case(
                "optional record reads plain record",
                rec("Outer", &field("inner", &format!(r#"["null",{inner_a}]"#))),
                rec("Outer", &field("inner", &inner_a)),
                OK,
            ),
            case(
                "union of records picks by name",
                format!(r#"[{},{}]"#, rec("A", &int_a), rec("B", &b_str)),
                rec("B", &b_str),
                OK,
            ),
            case(
                "union of records without writer name",
                format!(r#"[{},{}]"#, rec("A", &int_a), rec("B", &b_str)),
                rec("C", &b_str),
                &[("", MissingUnionBranch)],
            ),
            case(
                "optional array reads array",
                format!(r#"["null",{}]"#, array(r#""long""#)),
                array(r#""int""#),
                OK,
            ),
            case(
                "optional map narrowed",
                format!(r#"["null",{}]"#, map(r#""int""#)),
                format!(r#"["null",{}]"#, map(r#""long""#)),
                &[("", MissingUnionBranch), ("/1/values", TypeMismatch)],
            ),
            case(
                "enum reads single branch union",
                enm("E", r#""A""#),
                format!("[{}]", enm("E", r#""A""#)),
                OK,
            ),
            case(
                "plain record reads optional record",
                rec("R", &int_a),
                format!(r#"["null",{}]"#, rec("R", &int_a)),
                ROOT_MISMATCH,
            ),
        ]);
        cases.extend([
            // Recursive types.
            case("same linked list", list("long", ""), list("long", ""), OK),
            case("linked list promoted", list("long", ""), list("int", ""), OK),
            case("linked list narrowed", list("int", ""), list("long", ""), &[("/fields/0/type", TypeMismatch)]),
            case(
                "linked list with required new field",
                list("long", r#",{"name":"tag","type":"string"}"#),
                list("long", ""),
                &[("/fields/2", ReaderFieldMissingDefaultValue)],
            ),
            case(
                "linked list with defaulted new field",
                list("long", r#",{"name":"tag","type":"string","default":""}"#),
                list("long", ""),
                OK,
            ),
            case(
                "mutually recursive",
                r#"{"type":"record","name":"A","fields":[{"name":"b","type":["null",{"type":"record","name":"B","fields":[{"name":"a","type":["null","A"]}]}]}]}"#,
                r#"{"type":"record","name":"A","fields":[{"name":"b","type":["null",{"type":"record","name":"B","fields":[{"name":"a","type":["null","A"]}]}]}]}"#,
                OK,
            ),
            case(
                "tree with required new field",
                tree(r#",{"name":"label","type":"string"}"#),
                tree(""),
                &[("/fields/2", ReaderFieldMissingDefaultValue)],
            ),
            case("tree reads same tree", tree(""), tree(""), OK),
        ]);
        cases.extend([
            // Logical types compare as the type they annotate.
            case("date reads int", logical("int", "date"), q("int"), OK),
            case("int reads date", q("int"), logical("int", "date"), OK),
            case("date reads long", logical("int", "date"), q("long"), ROOT_MISMATCH),
            case("long reads date", q("long"), logical("int", "date"), OK),
            case("timestamp-millis reads long", logical("long", "timestamp-millis"), q("long"), OK),
            case(
                "timestamp-millis reads timestamp-micros",
                logical("long", "timestamp-millis"),
                logical("long", "timestamp-micros"),
                OK,
            ),
            case("time-micros reads long", logical("long", "time-micros"), q("long"), OK),
            case("time-millis reads long", logical("int", "time-millis"), q("long"), ROOT_MISMATCH),
            case("local-timestamp-millis reads int", logical("long", "local-timestamp-millis"), q("int"), OK),
            case("double reads timestamp-millis", q("double"), logical("long", "timestamp-millis"), OK),
            case("uuid reads string", logical("string", "uuid"), q("string"), OK),
            case("string reads uuid", q("string"), logical("string", "uuid"), OK),
            case("uuid reads bytes", logical("string", "uuid"), q("bytes"), OK),
            case("uuid reads long", logical("string", "uuid"), q("long"), ROOT_MISMATCH),
            case("decimal reads bytes", decimal(10, 2), q("bytes"), OK),
            case("bytes reads decimal", q("bytes"), decimal(10, 2), OK),
            case("same decimal", decimal(10, 2), decimal(10, 2), OK),
            case("decimal scale changed", decimal(10, 2), decimal(10, 3), ROOT_MISMATCH),
            case("decimal precision widened", decimal(12, 2), decimal(10, 2), OK),
            case("decimal precision narrowed", decimal(8, 2), decimal(10, 2), ROOT_MISMATCH),
            case(
                "decimal fixed reads fixed",
                r#"{"type":"fixed","name":"D","size":8,"logicalType":"decimal","precision":10,"scale":2}"#,
                fixed("D", 8),
                OK,
            ),
            case(
                "decimal fixed size",
                r#"{"type":"fixed","name":"D","size":8,"logicalType":"decimal","precision":10,"scale":2}"#,
                r#"{"type":"fixed","name":"D","size":16,"logicalType":"decimal","precision":10,"scale":2}"#,
                &[("/size", FixedSizeMismatch)],
            ),
            case("decimal reads string", decimal(10, 2), q("string"), OK),
            case(
                "duration reads fixed 12",
                r#"{"type":"fixed","name":"D","size":12,"logicalType":"duration"}"#,
                fixed("D", 12),
                OK,
            ),
            case("array of dates reads longs", array(&logical("int", "date")), array(r#""long""#), &[("/items", TypeMismatch)]),
            case(
                "decimal field scale changed",
                rec("R", &field("d", &decimal(10, 2))),
                rec("R", &field("d", &decimal(10, 4))),
                &[("/fields/0/type", TypeMismatch)],
            ),
        ]);
        cases
    }

    fn parse(json: &str, case: &str) -> Schema {
        Schema::parse_str(json)
            .unwrap_or_else(|e| panic!("case {case:?}: cannot parse {json}: {e}"))
    }

    #[test]
    fn table() {
        let cases = cases();
        assert!(cases.len() >= 110, "only {} cases", cases.len());
        let mut failures = Vec::new();
        for c in &cases {
            let reader = parse(&c.reader, c.name);
            let writer = parse(&c.writer, c.name);
            let found = check(&reader, &writer);
            let mut got: Vec<(String, String)> = Vec::new();
            for p in &found {
                got.push((p.location.clone(), format!("{:?}", p.kind)));
                assert!(
                    p.message
                        .chars()
                        .next()
                        .is_some_and(|ch| !ch.is_uppercase())
                        && !p.message.ends_with('.'),
                    "case {:?}: message style: {}",
                    c.name,
                    p.message
                );
            }
            let mut want: Vec<(String, String)> = Vec::new();
            for (location, kind) in &c.expected {
                want.push((location.to_string(), format!("{kind:?}")));
            }
            got.sort();
            want.sort();
            if got != want {
                failures.push(format!(
                    "case {:?}\n  reader {}\n  writer {}\n  want {want:?}\n  got  {found:#?}",
                    c.name, c.reader, c.writer
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn messages_and_display() {
        let found = check(&parse(r#""string""#, "m"), &parse(r#""long""#, "m"));
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].message,
            r#"reader type "string" cannot read writer type "long""#
        );
        assert_eq!(
            found[0].to_string(),
            r#"/: reader type "string" cannot read writer type "long""#
        );

        let reader = parse(
            &rec(
                "R",
                &format!("{},{}", field("a", r#""int""#), field("b", r#""int""#)),
            ),
            "m",
        );
        let writer = parse(&rec("R", &field("a", r#""int""#)), "m");
        let found = check(&reader, &writer);
        assert_eq!(
            found[0].to_string(),
            r#"/fields/1: reader field "b" has no default value and the writer has no such field"#
        );

        let found = check(&parse(r#""int""#, "m"), &parse(r#"["int","string"]"#, "m"));
        assert_eq!(
            found[0].message,
            r#"reader type "int" cannot read writer type "string" (writer union branch 1)"#
        );
    }

    fn level_schemas() -> Vec<(i32, Schema)> {
        // v1 has only `a`; v2 adds `b` with a default; v3 drops it again.
        vec![
            (1, parse(&rec("R", &field("a", r#""int""#)), "v1")),
            (
                2,
                parse(
                    &rec(
                        "R",
                        r#"{"name":"a","type":"int"},{"name":"b","type":"string","default":""}"#,
                    ),
                    "v2",
                ),
            ),
            (3, parse(&rec("R", &field("a", r#""int""#)), "v3")),
        ]
    }

    #[test]
    fn levels() {
        let existing = level_schemas();
        // Adds a required field `b` of type int: v2 wrote `b` as a string.
        let adds_required = parse(
            &rec(
                "R",
                r#"{"name":"a","type":"int"},{"name":"b","type":"int"}"#,
            ),
            "c",
        );
        // Adds `b` as an int with a default: only v2 (string `b`) breaks it.
        let adds_defaulted = parse(
            &rec(
                "R",
                r#"{"name":"a","type":"int"},{"name":"b","type":"int","default":0}"#,
            ),
            "c",
        );
        // Drops `a`, which every version requires with no default.
        let drops_a = parse(&rec("R", r#"{"name":"c","type":"int","default":0}"#), "c");

        assert!(check_level(Compatibility::None, &drops_a, &existing).is_empty());
        assert!(check_level(Compatibility::FullTransitive, &drops_a, &[]).is_empty());

        // Backward: the candidate reads v3 only.
        let messages = check_level(Compatibility::Backward, &adds_required, &existing);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].starts_with("version 3: the new schema cannot read"),
            "{}",
            messages[0]
        );
        assert!(messages[0].ends_with(
            r#"/fields/1: reader field "b" has no default value and the writer has no such field"#
        ));
        assert!(check_level(Compatibility::Backward, &adds_defaulted, &existing).is_empty());

        // Backward transitive catches v2's string `b`, which v3 no longer has.
        let messages = check_level(
            Compatibility::BackwardTransitive,
            &adds_defaulted,
            &existing,
        );
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].starts_with("version 2: "), "{}", messages[0]);
        assert!(messages[0].contains("/fields/1/type: "), "{}", messages[0]);

        // Forward: v3 reads the candidate; dropping `a` breaks it, adding fields does not.
        let messages = check_level(Compatibility::Forward, &drops_a, &existing);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].starts_with(
            "version 3: it cannot read data written with the new schema: /fields/0: "
        ));
        assert!(check_level(Compatibility::Forward, &adds_required, &existing).is_empty());

        // Forward transitive: v2 reads the candidate's int `b` as a string.
        let messages = check_level(Compatibility::ForwardTransitive, &adds_defaulted, &existing);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].starts_with("version 2: it cannot read"),
            "{}",
            messages[0]
        );
        assert!(check_level(Compatibility::Forward, &adds_defaulted, &existing).is_empty());

        // Full: both directions against v3.
        assert!(check_level(Compatibility::Full, &adds_defaulted, &existing).is_empty());
        let messages = check_level(Compatibility::Full, &adds_required, &existing);
        assert_eq!(messages.len(), 1, "{messages:?}");
        // Dropping `a` (the candidate defaults its own field) only breaks v3 as reader.
        let messages = check_level(Compatibility::Full, &drops_a, &existing);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].starts_with("version 3: it cannot read"),
            "{}",
            messages[0]
        );
        let both_ways = parse(&rec("R", r#"{"name":"a","type":"long"}"#), "c");
        let messages = check_level(Compatibility::Full, &both_ways, &existing);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].starts_with("version 3: it cannot read"),
            "{}",
            messages[0]
        );
        // Against v2 (`b` a string) an int `b` fails both ways.
        let messages = check_level(Compatibility::Full, &adds_required, &existing[..2]);
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0].starts_with("version 2: the new schema cannot read"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].starts_with("version 2: it cannot read"),
            "{}",
            messages[1]
        );

        // Full transitive: both directions against v2 break; v1 and v3 are fine.
        let messages = check_level(Compatibility::FullTransitive, &adds_defaulted, &existing);
        assert_eq!(messages.len(), 2, "{messages:?}");
        for message in &messages {
            assert!(message.starts_with("version 2: "), "{message}");
        }
    }
}
