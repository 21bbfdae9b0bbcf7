//! The SQL online-sink sends, generated from a table's columns: pure functions, so every
//! statement is covered by tests.
//!
//! An online table is the dataset's warehouse table (`onepipe_tables`: the same names and
//! types, the Kafka columns, `_date`) with a primary key on the unique key and one more
//! column, `_onepipe_rank`: the row's rank under the topic's merge rule
//! (`onepipe_archive::rank`). The upsert updates a row only when the new version's rank
//! is higher, so the rule is applied in the statement itself.

use onepipe_tables::names::{qualified, quote};
use onepipe_tables::types::{Column, DATE, Dialect, Kind, OFFSET, PARTITION};

/// The column holding each row's merge rank.
pub const RANK: &str = "_onepipe_rank";
/// The table of applied positions: one row per consumer group, topic and partition.
pub const OFFSETS_TABLE: &str = onepipe_tables::names::ONLINE_OFFSETS_TABLE;

/// One dataset's online table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub dialect: Dialect,
    /// `None` on SQLite.
    pub schema: Option<String>,
    pub name: String,
    /// Column names of the unique key, in the metadata's order.
    pub key: Vec<String>,
}

/// The columns of an online table for a schema's columns: those, `_date`, the rank.
pub fn table_columns(columns: &[Column]) -> Vec<Column> {
    let mut out = columns.to_vec();
    for (name, kind) in [(DATE, Kind::Date), (RANK, Kind::Bytes)] {
        out.push(Column {
            name: name.to_string(),
            source: name.to_string(),
            kind,
        });
    }
    out
}

fn column_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Table {
    pub fn qualified(&self) -> String {
        qualified(self.schema.as_deref(), &self.name)
    }

    pub fn offsets(&self) -> String {
        qualified(self.schema.as_deref(), OFFSETS_TABLE)
    }

    fn key_list(&self) -> String {
        self.key
            .iter()
            .map(|k| quote(k))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `CREATE TABLE IF NOT EXISTS` with every column (from [`table_columns`]) and the
    /// primary key on the unique key.
    pub fn create(&self, columns: &[Column]) -> String {
        let defs: Vec<String> = columns
            .iter()
            .map(|c| {
                let not_null = c.name == DATE || c.name == RANK;
                format!(
                    "{} {}{}",
                    quote(&c.name),
                    c.kind.sql_type(self.dialect),
                    if not_null { " NOT NULL" } else { "" }
                )
            })
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            self.qualified(),
            defs.join(", "),
            self.key_list()
        )
    }

    pub fn add_column(&self, column: &Column) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            self.qualified(),
            quote(&column.name),
            column.kind.sql_type(self.dialect)
        )
    }

    /// PostgreSQL: the session's staging table for one batch, dropped at commit.
    pub fn create_stage(&self) -> String {
        format!(
            "CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP",
            quote(&self.stage()),
            self.qualified()
        )
    }

    fn stage(&self) -> String {
        format!("_onepipe_stage_{}", self.name)
    }

    /// PostgreSQL: the batch's rows into the staging table, COPY text format.
    pub fn copy_to_stage(&self, columns: &[Column]) -> String {
        format!(
            "COPY {} ({}) FROM STDIN",
            quote(&self.stage()),
            column_list(columns)
        )
    }

    /// What an upsert does on a key already there: every column from the new version,
    /// only when its rank is higher.
    fn on_conflict(&self, columns: &[Column]) -> String {
        let sets: Vec<String> = columns
            .iter()
            .filter(|c| !self.key.contains(&c.name))
            .map(|c| format!("{0} = excluded.{0}", quote(&c.name)))
            .collect();
        format!(
            "ON CONFLICT ({}) DO UPDATE SET {} WHERE excluded.{rank} > {}.{rank}",
            self.key_list(),
            sets.join(", "),
            self.qualified(),
            rank = quote(RANK)
        )
    }

    /// PostgreSQL: the staged rows into the table by the merge rule.
    pub fn upsert_from_stage(&self, columns: &[Column]) -> String {
        let list = column_list(columns);
        format!(
            "INSERT INTO {} ({list}) SELECT {list} FROM {} {}",
            self.qualified(),
            quote(&self.stage()),
            self.on_conflict(columns)
        )
    }

    /// SQLite: `rows` rows (`?` placeholders) into the table by the merge rule.
    pub fn upsert_rows(&self, columns: &[Column], rows: usize) -> String {
        let one = format!("({})", vec!["?"; columns.len()].join(", "));
        format!(
            "INSERT INTO {} ({}) VALUES {} {}",
            self.qualified(),
            column_list(columns),
            vec![one.as_str(); rows].join(", "),
            self.on_conflict(columns)
        )
    }

    /// A tombstone: deletes the key's row when it is from before the tombstone's Kafka
    /// position (a version after it is a new row). Binds the key's values, then the
    /// tombstone's partition and offset.
    pub fn delete_key(&self) -> String {
        let mut n = 0;
        let mut param = || {
            n += 1;
            match self.dialect {
                Dialect::Sqlite => format!("?{n}"),
                _ => format!("${n}"),
            }
        };
        let mut conds: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("{} = {}", quote(k), param()))
            .collect();
        conds.push(format!(
            "({}, {}) < ({}, {})",
            quote(PARTITION),
            quote(OFFSET),
            param(),
            param()
        ));
        format!(
            "DELETE FROM {} WHERE {}",
            self.qualified(),
            conds.join(" AND ")
        )
    }

    pub fn create_offsets(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (group_id text NOT NULL, topic text NOT NULL, \
             \"partition\" integer NOT NULL, next_offset bigint NOT NULL, \
             PRIMARY KEY (group_id, topic, \"partition\"))",
            self.offsets()
        )
    }

    fn params(&self, n: usize) -> Vec<String> {
        (1..=n)
            .map(|i| match self.dialect {
                Dialect::Sqlite => format!("?{i}"),
                _ => format!("${i}"),
            })
            .collect()
    }

    /// The stored next offsets of a group and topic: (partition, next offset).
    pub fn select_offsets(&self) -> String {
        let p = self.params(2);
        format!(
            "SELECT \"partition\", next_offset FROM {} WHERE group_id = {} AND topic = {}",
            self.offsets(),
            p[0],
            p[1]
        )
    }

    /// The first batch of a partition: binds group, topic, partition, next offset.
    /// Inserts nothing (0 rows) when another sink stored one first.
    pub fn insert_offset(&self) -> String {
        let p = self.params(4);
        format!(
            "INSERT INTO {} (group_id, topic, \"partition\", next_offset) VALUES ({}, {}, {}, {}) \
             ON CONFLICT DO NOTHING",
            self.offsets(),
            p[0],
            p[1],
            p[2],
            p[3]
        )
    }

    /// Later batches: binds the new next offset, group, topic, partition, and the next
    /// offset this sink read last. Updates nothing (0 rows) when another sink moved it.
    pub fn advance_offset(&self) -> String {
        let p = self.params(5);
        format!(
            "UPDATE {} SET next_offset = {} WHERE group_id = {} AND topic = {} AND \"partition\" = {} \
             AND next_offset = {}",
            self.offsets(),
            p[0],
            p[1],
            p[2],
            p[3],
            p[4]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onepipe_tables::types::{Kind, Unit};

    fn table(dialect: Dialect) -> Table {
        Table {
            dialect,
            schema: (dialect != Dialect::Sqlite).then(|| "online".to_string()),
            name: "orders".into(),
            key: vec!["id".into()],
        }
    }

    fn columns() -> Vec<Column> {
        let c = |n: &str, kind| Column {
            name: n.into(),
            source: n.into(),
            kind,
        };
        table_columns(&[
            c("id", Kind::Text),
            c("version", Kind::Long),
            c("_kafka_partition", Kind::Int),
            c("_kafka_offset", Kind::Long),
            c("_kafka_timestamp", Kind::Timestamp(Unit::Millis, true)),
        ])
    }

    #[test]
    fn create_has_the_key_and_the_rank() {
        assert_eq!(
            table(Dialect::Postgres).create(&columns()),
            "CREATE TABLE IF NOT EXISTS \"online\".\"orders\" (\"id\" text, \"version\" bigint, \
             \"_kafka_partition\" integer, \"_kafka_offset\" bigint, \"_kafka_timestamp\" \
             timestamp with time zone, \"_date\" date NOT NULL, \"_onepipe_rank\" bytea NOT NULL, \
             PRIMARY KEY (\"id\"))"
        );
        assert!(
            table(Dialect::Sqlite)
                .create(&columns())
                .contains("\"_onepipe_rank\" blob NOT NULL")
        );
    }

    #[test]
    fn upsert_updates_only_a_higher_rank_and_never_the_key() {
        let sql = table(Dialect::Postgres).upsert_from_stage(&columns());
        assert!(sql.starts_with(
            "INSERT INTO \"online\".\"orders\" (\"id\", \"version\", \"_kafka_partition\""
        ));
        assert!(sql.contains("FROM \"_onepipe_stage_orders\" ON CONFLICT (\"id\") DO UPDATE SET \"version\" = excluded.\"version\""));
        assert!(!sql.contains("\"id\" = excluded"));
        assert!(sql.ends_with(
            "WHERE excluded.\"_onepipe_rank\" > \"online\".\"orders\".\"_onepipe_rank\""
        ));
        let sql = table(Dialect::Sqlite).upsert_rows(&columns(), 2);
        assert!(sql.contains("VALUES (?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?) ON CONFLICT"));
        assert!(sql.ends_with("WHERE excluded.\"_onepipe_rank\" > \"orders\".\"_onepipe_rank\""));
    }

    #[test]
    fn tombstones_delete_only_older_rows() {
        assert_eq!(
            table(Dialect::Postgres).delete_key(),
            "DELETE FROM \"online\".\"orders\" WHERE \"id\" = $1 AND (\"_kafka_partition\", \
             \"_kafka_offset\") < ($2, $3)"
        );
        assert_eq!(
            table(Dialect::Sqlite).delete_key(),
            "DELETE FROM \"orders\" WHERE \"id\" = ?1 AND (\"_kafka_partition\", \
             \"_kafka_offset\") < (?2, ?3)"
        );
    }

    #[test]
    fn offsets_move_only_from_where_this_sink_read_them() {
        let t = table(Dialect::Postgres);
        assert!(t.advance_offset().ends_with("AND next_offset = $5"));
        assert!(t.insert_offset().ends_with("ON CONFLICT DO NOTHING"));
        assert!(
            t.create_offsets()
                .contains("PRIMARY KEY (group_id, topic, \"partition\")")
        );
    }
}
