//! The `online` store kind: an online table (online-sink's) holds one row per unique key,
//! the merge strategy's winner over every version of the key after its last tombstone,
//! whatever the versions' dates, with `_date` the winner's date.
//!
//! What the table must hold is computed from raw/ by the verifier's own decoding and merge
//! query ([`crate::expected`], never online-sink's rank or copydog's merge): every raw
//! record up to the positions the sink stored with its rows (`_onepipe_offsets` of its
//! group), so that records the sink has not applied yet are not counted against it. The
//! tombstones are the raw records with a key and no value when the topic's metadata allows
//! deletes; their Kafka key (a JSON array of the unique key's values, in order) is read
//! here and typed as the key's columns. Then the table's checks per `_date`, by SQL as a
//! warehouse's, are compared with the expected rows', and a differing date is narrowed to
//! keys by the warehouse drill-down.
//!
//! When raw/ does not hold every record up to the sink's positions yet (copycat buffers
//! before it writes a file), the check says `lag` and compares nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    UInt32Array,
};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, Schema};
use object_store::ObjectStore;
use onepipe_client::SchemaRegistry;
use onepipe_core::metadata::TopicMetadata;
use onepipe_tables::names::{ONLINE_OFFSETS_TABLE, qualified};
use sqlx::Row;

use crate::checks::{self, Accumulator, CheckValues, agree};
use crate::error::{Error, Result};
use crate::expected::{
    self, ExpectedView, ONLINE_DATE_COLUMN, TOMBSTONE_OFFSET, TOMBSTONE_PARTITION,
};
use crate::verify::{ALL_DATES, DatasetReport, KeyDiff, Line, OK, Warehouse};
use crate::warehouse::{self, Db};

/// An online table to compare: a warehouse connection plus the sink's consumer group,
/// whose stored offsets say how far it has applied the topic.
pub struct Online {
    pub store: Warehouse,
    pub group: String,
}

/// The consumer group online-sink uses unless told otherwise.
pub const DEFAULT_GROUP: &str = "onepipe-online-sink";

/// A typed value of a unique-key column, as a tombstone's Kafka key gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum KeyValue {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// The values of a tombstone's Kafka key (a JSON array, one element per unique-key field,
/// in the metadata's order), typed as the key columns `types`; why not, when they do not
/// fit (online-sink sends such a tombstone to its dead-letter topic).
fn tombstone_key(key: &[u8], types: &[DataType]) -> std::result::Result<Vec<KeyValue>, String> {
    let v: serde_json::Value = serde_json::from_slice(key).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Array(items) = v else {
        return Err("not a JSON array".to_string());
    };
    if items.len() != types.len() {
        return Err(format!(
            "{} values for a key of {} fields",
            items.len(),
            types.len()
        ));
    }
    items
        .iter()
        .zip(types)
        .map(|(item, t)| match (t, item) {
            (DataType::Utf8, serde_json::Value::String(s)) => Ok(KeyValue::Text(s.clone())),
            (DataType::Int64, serde_json::Value::Number(n)) => n
                .as_i64()
                .map(KeyValue::Int)
                .ok_or("not a long".to_string()),
            (DataType::Int32, serde_json::Value::Number(n)) => n
                .as_i64()
                .filter(|n| i32::try_from(*n).is_ok())
                .map(KeyValue::Int)
                .ok_or("not an int".to_string()),
            (DataType::Boolean, serde_json::Value::Bool(b)) => Ok(KeyValue::Bool(*b)),
            (t, item) => Err(format!("{item} for a {t} key column")),
        })
        .collect()
}

/// The tombstones table [`ExpectedView::online_for_each`] takes: one row per unique key,
/// its last tombstone's position. Tombstones whose key does not fit are left out (they
/// delete nothing).
fn tombstones_table(
    view: &ExpectedView,
    meta: &TopicMetadata,
    fields: &[Field],
) -> Result<Option<RecordBatch>> {
    if !meta.deletes {
        return Ok(None);
    }
    let mut key_fields = Vec::new();
    for k in &meta.unique_key {
        let f = fields
            .iter()
            .find(|f| f.name() == k)
            .ok_or_else(|| Error::KeyNotTopLevel { key: k.clone() })?;
        if !matches!(
            f.data_type(),
            DataType::Utf8 | DataType::Int32 | DataType::Int64 | DataType::Boolean
        ) {
            return Err(Error::Online {
                reason: format!(
                    "unique key field {k:?} is {}: tombstones are matched on text, integer \
                     and boolean keys only",
                    f.data_type()
                ),
            });
        }
        key_fields.push(Field::new(k, f.data_type().clone(), true));
    }
    let types: Vec<DataType> = key_fields.iter().map(|f| f.data_type().clone()).collect();
    let mut last: BTreeMap<Vec<KeyValue>, (i32, i64)> = BTreeMap::new();
    for (key, at) in view.tombstones() {
        if let Ok(values) = tombstone_key(key, &types) {
            let e = last.entry(values).or_insert(at);
            *e = (*e).max(at);
        }
    }
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, t) in types.iter().enumerate() {
        let values = last.keys().map(|k| &k[i]);
        let column: ArrayRef = match t {
            DataType::Utf8 => {
                let mut b = StringBuilder::new();
                for v in values {
                    if let KeyValue::Text(s) = v {
                        b.append_value(s);
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Int64 => {
                let mut b = Int64Builder::new();
                for v in values {
                    if let KeyValue::Int(n) = v {
                        b.append_value(*n);
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Int32 => {
                let mut b = Int32Builder::new();
                for v in values {
                    if let KeyValue::Int(n) = v {
                        b.append_value(*n as i32);
                    }
                }
                Arc::new(b.finish())
            }
            _ => {
                let mut b = BooleanBuilder::new();
                for v in values {
                    if let KeyValue::Bool(x) = v {
                        b.append_value(*x);
                    }
                }
                Arc::new(b.finish())
            }
        };
        columns.push(column);
    }
    let mut partitions = Int32Builder::new();
    let mut offsets = Int64Builder::new();
    for (p, o) in last.values() {
        partitions.append_value(*p);
        offsets.append_value(*o);
    }
    columns.push(Arc::new(partitions.finish()));
    columns.push(Arc::new(offsets.finish()));
    key_fields.push(Field::new(TOMBSTONE_PARTITION, DataType::Int32, false));
    key_fields.push(Field::new(TOMBSTONE_OFFSET, DataType::Int64, false));
    Ok(Some(RecordBatch::try_new(
        Arc::new(Schema::new(key_fields)),
        columns,
    )?))
}

/// The next offset per partition the sink's group stored for `topic`.
pub async fn stored_offsets(
    db: &Db,
    schema: &str,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>> {
    let rows = match db {
        Db::Postgres(pool) => {
            let table = qualified(Some(schema), ONLINE_OFFSETS_TABLE);
            let sql = format!(
                "SELECT \"partition\", next_offset FROM {table} WHERE group_id = $1 AND topic = $2"
            );
            sqlx::query(&sql)
                .bind(group)
                .bind(topic)
                .fetch_all(pool)
                .await
                .map_err(Error::sql(&table))?
                .iter()
                .map(|r| Ok((r.try_get::<i32, _>(0)?, r.try_get::<i64, _>(1)?)))
                .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
                .map_err(Error::sql(&table))?
        }
        Db::Sqlite(pool) => {
            let table = qualified(None, ONLINE_OFFSETS_TABLE);
            let sql = format!(
                "SELECT \"partition\", next_offset FROM {table} WHERE group_id = ?1 AND topic = ?2"
            );
            sqlx::query(&sql)
                .bind(group)
                .bind(topic)
                .fetch_all(pool)
                .await
                .map_err(Error::sql(&table))?
                .iter()
                .map(|r| Ok((r.try_get::<i64, _>(0)? as i32, r.try_get::<i64, _>(1)?)))
                .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
                .map_err(Error::sql(&table))?
        }
    };
    Ok(rows.into_iter().collect())
}

/// Splits a batch of winners by their date column (`YYYY-MM-DD`).
fn by_date(batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>> {
    let dates = batch
        .column_by_name(ONLINE_DATE_COLUMN)
        .ok_or_else(|| Error::Online {
            reason: "the online view's rows have no date column".to_string(),
        })?
        .as_primitive::<arrow::datatypes::Date32Type>()
        .clone();
    let mut rows: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
    for i in 0..dates.len() {
        rows.entry(dates.value(i)).or_default().push(i as u32);
    }
    rows.into_iter()
        .map(|(day, idx)| {
            let date = dates
                .value_as_date(idx[0] as usize)
                .map_or_else(|| day.to_string(), |d| d.to_string());
            Ok((date, take_record_batch(batch, &UInt32Array::from(idx))?))
        })
        .collect()
}

/// Checks `topic`'s table in the online store `online` against the winners computed from
/// raw/ up to the sink's stored offsets. The report's lines are the online table's
/// values (store: its name) and the expected ones (store: `NAME (expected)`), per date,
/// and the positions compared (date `(all)`, check `applied offsets`).
pub async fn check(
    store: Arc<dyn ObjectStore>,
    registry: &SchemaRegistry,
    topic: &str,
    online: &Online,
    options: &expected::Options,
    max_keys: usize,
) -> Result<DatasetReport> {
    let w = &online.store;
    let t = registry.topic(topic).await?;
    let meta = t.metadata.clone();
    let fields = crate::verify::clean_fields(topic, &t.latest.schema)?;
    let mut report = DatasetReport {
        dataset: topic.to_string(),
        ..DatasetReport::default()
    };
    let expected_name = format!("{} (expected)", w.name);
    let line = |date: &str, store: &str, check: &str, value: String, verdict: &str| Line {
        dataset: topic.to_string(),
        date: date.to_string(),
        store: store.to_string(),
        check: check.to_string(),
        value,
        verdict: verdict.to_string(),
    };

    let next = stored_offsets(&w.db, &w.schema, &online.group, topic).await?;
    if next.is_empty() {
        return Err(Error::Online {
            reason: format!(
                "group {:?} has stored no offsets of {topic} in {} (has online-sink applied it?)",
                online.group, w.name
            ),
        });
    }
    let watermarks: BTreeMap<String, i64> =
        next.iter().map(|(p, n)| (p.to_string(), n - 1)).collect();
    let files = expected::raw_files(store.as_ref(), topic, &watermarks).await?;
    let mut archived: BTreeMap<i32, i64> = BTreeMap::new();
    for f in &files {
        let e = archived.entry(f.partition).or_insert(-1);
        *e = (*e).max(f.last_offset);
    }
    let applied = next
        .iter()
        .map(|(p, n)| format!("{p}:{n}"))
        .collect::<Vec<_>>()
        .join(" ");
    let behind: Vec<String> = next
        .iter()
        .filter(|(p, n)| archived.get(p).copied().unwrap_or(-1) < **n - 1)
        .map(|(p, n)| {
            format!(
                "{p}: raw/ holds up to offset {}, the sink applied up to {}",
                archived.get(p).copied().unwrap_or(-1),
                n - 1
            )
        })
        .collect();
    if !behind.is_empty() {
        // The sink is ahead of the archive: nothing to compare with yet.
        report.lines.push(line(
            ALL_DATES,
            &w.name,
            "applied offsets",
            format!("{applied} (raw/ behind: {})", behind.join("; ")),
            "lag",
        ));
        return Ok(report);
    }
    report
        .lines
        .push(line(ALL_DATES, &w.name, "applied offsets", applied, OK));

    let mut view = ExpectedView::new_online(registry, topic, options).await?;
    view.decode(store.as_ref(), registry, &files, &watermarks, None)
        .await?;
    let tombstones = tombstones_table(&view, &meta, &fields)?;

    // The expected checks per date, from the winners.
    let mut expected: BTreeMap<String, Accumulator> = BTreeMap::new();
    view.online_for_each(tombstones.clone(), |batch| {
        for (date, rows) in by_date(batch)? {
            expected
                .entry(date)
                .or_insert_with(|| Accumulator::new(&meta))
                .add(&rows)?;
        }
        Ok(())
    })
    .await?;
    let mut want: BTreeMap<String, CheckValues> = BTreeMap::new();
    for (date, acc) in expected {
        want.insert(date, acc.finish()?);
    }
    let have = warehouse::checks(&w.db, &w.schema, &meta, &fields).await?;

    let float_sums = checks::float_sums(&meta, &fields);
    let dates: BTreeSet<&String> = want.keys().chain(have.keys()).collect();
    let mut differing = Vec::new();
    let empty = CheckValues::new();
    for date in dates {
        let (ours, theirs) = (want.get(date), have.get(date));
        let before = report.mismatches;
        match theirs {
            None => {
                report.lines.push(line(
                    date,
                    &w.name,
                    "rows",
                    "(date absent)".into(),
                    "MISMATCH",
                ));
                report.mismatches += 1;
            }
            Some(theirs) => {
                let reference = ours.unwrap_or(&empty);
                // A store that cannot compute a check (SQLite: no MD5) leaves it out.
                for (name, value) in theirs {
                    let ok = reference
                        .get(name)
                        .is_some_and(|r| agree(r, value, float_sums.contains(name)));
                    if !ok {
                        report.mismatches += 1;
                    }
                    report.lines.push(line(
                        date,
                        &w.name,
                        name,
                        value.clone(),
                        if ok { OK } else { "MISMATCH" },
                    ));
                }
            }
        }
        for (name, value) in ours.unwrap_or(&empty) {
            report
                .lines
                .push(line(date, &expected_name, name, value.clone(), OK));
        }
        if report.mismatches > before {
            differing.push(date.clone());
        }
    }

    // Name the keys of each differing date: its expected rows' key hashes against the
    // table's, by the warehouse drill-down.
    for date in differing {
        let mut reference: HashMap<String, i64> = HashMap::new();
        view.online_for_each(tombstones.clone(), |batch| {
            for (d, rows) in by_date(batch)? {
                if d == date {
                    checks::add_keyed_hashes(&mut reference, &rows, &meta)?;
                }
            }
            Ok(())
        })
        .await?;
        let found =
            crate::verify::drill_down(w, &meta, &fields, &date, &reference, max_keys).await?;
        report
            .keys
            .extend(found.into_iter().map(|(key, problem)| KeyDiff {
                dataset: topic.to_string(),
                date: date.clone(),
                store: w.name.clone(),
                key,
                problem,
            }));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstone_keys_are_typed_as_the_key_columns() {
        assert_eq!(
            tombstone_key(br#"["a", 7]"#, &[DataType::Utf8, DataType::Int64]).unwrap(),
            vec![KeyValue::Text("a".into()), KeyValue::Int(7)]
        );
        assert_eq!(
            tombstone_key(b"[true]", &[DataType::Boolean]).unwrap(),
            vec![KeyValue::Bool(true)]
        );
        for (key, types) in [
            (&b"a"[..], vec![DataType::Utf8]),
            (br#"["a"]"#, vec![DataType::Utf8, DataType::Int64]),
            (b"[1]", vec![DataType::Utf8]),
            (b"[4294967296]", vec![DataType::Int32]),
            (br#"{"id":"a"}"#, vec![DataType::Utf8]),
        ] {
            assert!(tombstone_key(key, &types).is_err(), "{key:?}");
        }
    }
}
