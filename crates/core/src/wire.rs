//! The Kafka record formats every onepipe topic uses.
//!
//! The value is the Confluent wire format: a `0x00` magic byte, the schema id as a
//! 4-byte big-endian integer, then the Avro binary datum. Every tool that speaks it
//! (kcat, Kafka Connect converters, confluent-kafka clients) reads onepipe topics as
//! they are. The key is the unique-key values as a compact JSON array, so all versions
//! of one entity land in one partition.

/// The first byte of every framed value.
pub const MAGIC_BYTE: u8 = 0;

/// Magic byte plus the 4-byte schema id.
pub const HEADER_LEN: usize = 5;

/// Why a buffer is not a framed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty record value: expected magic byte 0x00, schema id and Avro datum")]
    Empty,
    #[error("wrong magic byte 0x{0:02x}: expected 0x00 (not a schema-registry framed value)")]
    BadMagic(u8),
    #[error(
        "short header: {0} bytes, a framed value starts with 5 (magic byte and 4-byte schema id)"
    )]
    ShortHeader(usize),
}

/// Frames an Avro datum for schema `schema_id`.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + datum.len());
    frame_into(schema_id, datum, &mut out);
    out
}

/// Appends the framed datum to `out`, for callers that reuse a buffer.
pub fn frame_into(schema_id: u32, datum: &[u8], out: &mut Vec<u8>) {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
}

/// Splits a framed value into its schema id and Avro datum.
pub fn unframe(value: &[u8]) -> Result<(u32, &[u8]), WireError> {
    let Some(&magic) = value.first() else {
        return Err(WireError::Empty);
    };
    if magic != MAGIC_BYTE {
        return Err(WireError::BadMagic(magic));
    }
    if value.len() < HEADER_LEN {
        return Err(WireError::ShortHeader(value.len()));
    }
    let id = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
    Ok((id, &value[HEADER_LEN..]))
}

/// The Kafka key of a record: its unique-key values as a compact JSON array (`["acct-7",42]`).
pub fn encode_key(values: &[serde_json::Value]) -> Vec<u8> {
    // Serializing a slice of JSON values cannot fail.
    serde_json::to_vec(values).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn typed_errors() {
        assert_eq!(unframe(&[]), Err(WireError::Empty));
        assert_eq!(unframe(&[1, 0, 0, 0, 1]), Err(WireError::BadMagic(1)));
        assert_eq!(unframe(&[0, 0, 0]), Err(WireError::ShortHeader(3)));
        assert_eq!(unframe(&[0]), Err(WireError::ShortHeader(1)));
    }

    #[test]
    fn header_is_big_endian() {
        assert_eq!(frame(0x0102_0304, b"x"), vec![0, 1, 2, 3, 4, b'x']);
        assert_eq!(unframe(&[0, 0, 0, 0, 7]), Ok((7, &[][..])));
    }

    #[test]
    fn key_is_compact_json_array() {
        let key = encode_key(&[json!("acct-7"), json!(42)]);
        assert_eq!(key, br#"["acct-7",42]"#);
    }

    proptest! {
        #[test]
        fn unframe_inverts_frame(id: u32, datum: Vec<u8>) {
            let framed = frame(id, &datum);
            prop_assert_eq!(unframe(&framed), Ok((id, &datum[..])));
        }

        #[test]
        fn unframe_never_panics(bytes: Vec<u8>) {
            let _ = unframe(&bytes);
        }
    }
}
