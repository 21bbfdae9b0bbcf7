//! Durations, sizes and `KEY=VALUE` options written one way on every service's command
//! line: `500ms`, `30s`, `5m`, `2h`, `7d`; `4096`, `64KiB`, `256MB`, `1GiB` (KB, MB and GB
//! are read as powers of 1024 like KiB, MiB and GiB, as memory sizes usually mean).
//!
//! ```
//! use std::time::Duration;
//! use onepipe_core::units::{parse_bytes, parse_duration};
//!
//! assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
//! assert_eq!(parse_bytes("256MB").unwrap(), 256 << 20);
//! ```

use std::time::Duration;

/// A value on the command line that is not what its flag takes; the text says what is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadValue(String);

/// `500ms`, `30s`, `5m`, `2h`, `7d`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, BadValue> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| {
        BadValue(format!(
            "{s:?} is not a duration like 500ms, 30s, 5m, 2h or 7d"
        ))
    })?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| BadValue(format!("{s:?} is too long")))
    };
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" | "min" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        other => Err(BadValue(format!(
            "{s:?}: unknown unit {other:?}; use ms, s, m, h or d"
        ))),
    }
}

/// A byte count: `1048576`, `64KiB`, `256MB`, `1GiB` (also `k`, `M`, `G`).
pub fn parse_bytes(s: &str) -> Result<usize, BadValue> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: usize = n.parse().map_err(|_| {
        BadValue(format!(
            "{s:?} is not a size like 4096, 64KiB, 256MB or 1GiB"
        ))
    })?;
    let mult: usize = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        other => {
            return Err(BadValue(format!(
                "{s:?}: unknown unit {other:?}; use B, KiB, MiB or GiB"
            )));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| BadValue(format!("{s:?} is too large")))
}

/// `KEY=VALUE`, as `--kafka-option` takes it (spaces around either are dropped).
pub fn parse_key_value(s: &str) -> Result<(String, String), BadValue> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| BadValue(format!("{s:?} is not KEY=VALUE")))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(BadValue(format!("{s:?} has no key before '='")));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert!(parse_duration("2w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("9999999999999999d").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("64KiB").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("128MiB").unwrap(), 128 << 20);
        assert_eq!(parse_bytes("256MB").unwrap(), 256 << 20);
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("2g").unwrap(), 2 << 30);
        assert!(parse_bytes("1TiB").is_err());
        assert!(parse_bytes("MB").is_err());
        assert!(parse_bytes("99999999999999999999G").is_err());
    }

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value(" security.protocol = SASL_SSL ").unwrap(),
            ("security.protocol".into(), "SASL_SSL".into())
        );
        assert_eq!(
            parse_key_value("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
