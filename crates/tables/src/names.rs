//! Warehouse names from topic and field names, and how they are quoted.
//!
//! A table name is the topic lower-cased with every character outside `[a-z0-9_]`
//! replaced by `_`, so that analysts can write it unquoted. A column is named exactly
//! after its Avro field (Avro names are `[A-Za-z_][A-Za-z0-9_]*`, so upper case survives
//! and needs quotes in SQL). The loader quotes every identifier it writes, so SQL
//! keywords (`order`, `select`) and leading digits are safe. PostgreSQL cuts identifiers
//! at 63 bytes; a longer name keeps its first 54 characters and gets `_` and 8 hex digits
//! of a hash of the whole name, so two long names stay apart and the cut is stable.

/// online-sink's table of applied positions, one row per consumer group, topic and
/// partition: `(group_id text, topic text, "partition" integer, next_offset bigint)`,
/// updated in the same transaction as the rows (the verifier reads it to know how far an
/// online table goes).
pub const ONLINE_OFFSETS_TABLE: &str = "_onepipe_offsets";

/// The most bytes PostgreSQL keeps of an identifier.
pub const MAX_IDENTIFIER: usize = 63;

/// The column name for an Avro field name: the name itself, cut like [`sql_name`] when
/// longer than PostgreSQL keeps.
pub fn column_name(field: &str) -> String {
    if field.len() <= MAX_IDENTIFIER {
        return field.to_string();
    }
    let cut = field.char_indices().nth(54).map_or(field.len(), |(i, _)| i);
    format!("{}_{:08x}", &field[..cut], fnv1a(field.as_bytes()))
}

/// The table name for a topic name.
pub fn sql_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if mapped.len() <= MAX_IDENTIFIER {
        return mapped;
    }
    format!("{}_{:08x}", &mapped[..54], fnv1a(name.as_bytes()))
}

/// FNV-1a, 32 bits: small, stable across releases and platforms.
fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// `"name"`, with inner double quotes doubled.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `"schema"."name"`, or `"name"` without a schema (SQLite).
pub fn qualified(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(s) => format!("{}.{}", quote(s), quote(name)),
        None => quote(name),
    }
}

/// A SQL string literal: single quotes doubled (standard-conforming strings).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A string literal for Redshift, where a backslash in a literal is an escape character.
pub fn redshift_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_case_and_safe() {
        assert_eq!(sql_name("page_views"), "page_views");
        assert_eq!(sql_name("Shop.Orders-v2"), "shop_orders_v2");
        assert_eq!(sql_name("select"), "select");
        assert_eq!(sql_name("2fa.events"), "2fa_events");
        assert_eq!(sql_name("ünïcode"), "_n_code");
        assert_eq!(sql_name("userId"), "userid");
        assert_eq!(column_name("userId"), "userId");
        let long = format!("F{}", "x".repeat(80));
        assert_eq!(column_name(&long).len(), MAX_IDENTIFIER);
        assert!(column_name(&long).starts_with("Fxxx"));
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        let a = "a".repeat(100);
        let b = format!("{}b", "a".repeat(99));
        let (na, nb) = (sql_name(&a), sql_name(&b));
        assert_eq!(na.len(), MAX_IDENTIFIER);
        assert_eq!(nb.len(), MAX_IDENTIFIER);
        assert_ne!(na, nb);
        assert_eq!(na, sql_name(&a));
        assert_eq!(sql_name(&"x".repeat(63)), "x".repeat(63));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("order"), "\"order\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified(Some("Mart"), "t"), "\"Mart\".\"t\"");
        assert_eq!(qualified(None, "t"), "\"t\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(redshift_literal("a\\'b"), "'a\\\\''b'");
    }
}
