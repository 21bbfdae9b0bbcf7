//! The SQL the loader sends, generated from the table's columns: pure functions, so
//! every statement (Redshift's too, which has no server here) is covered by tests.

use chrono::NaiveDate;

use onepipe_tables::names::{literal, qualified, quote, redshift_literal};
use onepipe_tables::types::{Column, DATE, Dialect};

/// The table recording what each date holds.
pub const LOADS_TABLE: &str = "_onepipe_loads";
/// Redshift's staging table (temporary, one per session).
pub const STAGE_TABLE: &str = "_onepipe_stage";

/// A table to load a dataset into.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub dialect: Dialect,
    /// `None` on SQLite, which has no schemas.
    pub schema: Option<String>,
    pub name: String,
}

impl Table {
    pub fn qualified(&self) -> String {
        qualified(self.schema.as_deref(), &self.name)
    }

    pub fn loads(&self) -> String {
        qualified(self.schema.as_deref(), LOADS_TABLE)
    }

    fn column_defs(&self, columns: &[Column]) -> Vec<String> {
        let mut defs: Vec<String> = columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), c.kind.sql_type(self.dialect)))
            .collect();
        defs.push(format!("{} date NOT NULL", quote(DATE)));
        defs
    }

    /// `CREATE TABLE IF NOT EXISTS` with every column; Redshift sorts by `_date`.
    pub fn create(&self, columns: &[Column]) -> String {
        let mut sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.qualified(),
            self.column_defs(columns).join(", ")
        );
        if self.dialect == Dialect::Redshift {
            sql.push_str(&format!(" SORTKEY ({})", quote(DATE)));
        }
        sql
    }

    /// The index the per-date delete uses (Redshift has none: it sorts by `_date`).
    pub fn create_index(&self) -> Option<String> {
        let index = onepipe_tables::names::sql_name(&format!("{}__date", self.name));
        match self.dialect {
            Dialect::Redshift => None,
            Dialect::Postgres => Some(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                quote(&index),
                self.qualified(),
                quote(DATE)
            )),
            Dialect::Sqlite => Some(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                quote(&index),
                quote(&self.name),
                quote(DATE)
            )),
        }
    }

    pub fn add_column(&self, column: &Column) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            self.qualified(),
            quote(&column.name),
            column.kind.sql_type(self.dialect)
        )
    }

    pub fn create_loads(&self) -> String {
        let (date, ts, text, now) = match self.dialect {
            Dialect::Sqlite => ("text", "text", "text", "CURRENT_TIMESTAMP"),
            Dialect::Postgres => ("date", "timestamp with time zone", "text", "now()"),
            Dialect::Redshift => (
                "date",
                "timestamp with time zone",
                "character varying(1024)",
                "getdate()",
            ),
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\"dataset\" {text} NOT NULL, \"date\" {date} NOT NULL, \
             \"manifest\" bigint NOT NULL, \"version\" bigint NOT NULL, \"rows\" bigint NOT NULL, \
             \"schema_id\" bigint NOT NULL, \"loaded_at\" {ts} NOT NULL DEFAULT {now}, \
             PRIMARY KEY (\"dataset\", \"date\"))",
            self.loads()
        )
    }

    /// `(date as text, version)` of every loaded date of a dataset; binds the dataset.
    pub fn select_loads(&self) -> String {
        format!(
            "SELECT CAST(\"date\" AS {}), \"version\", \"manifest\" FROM {} WHERE \"dataset\" = {}",
            if self.dialect == Dialect::Redshift {
                "varchar(10)"
            } else {
                "text"
            },
            self.loads(),
            self.param(1)
        )
    }

    /// The version a date holds; binds dataset and date.
    pub fn select_load(&self) -> String {
        format!(
            "SELECT \"version\" FROM {} WHERE \"dataset\" = {} AND \"date\" = {}",
            self.loads(),
            self.param(1),
            self.date_param(2)
        )
    }

    /// Records a load; binds dataset, date, manifest, version, rows, schema id.
    pub fn upsert_load(&self) -> String {
        let now = if self.dialect == Dialect::Sqlite {
            "CURRENT_TIMESTAMP"
        } else {
            "now()"
        };
        format!(
            "INSERT INTO {} (\"dataset\", \"date\", \"manifest\", \"version\", \"rows\", \
             \"schema_id\", \"loaded_at\") VALUES ({}, {}, {}, {}, {}, {}, {now}) \
             ON CONFLICT (\"dataset\", \"date\") DO UPDATE SET \"manifest\" = excluded.\"manifest\", \
             \"version\" = excluded.\"version\", \"rows\" = excluded.\"rows\", \
             \"schema_id\" = excluded.\"schema_id\", \"loaded_at\" = excluded.\"loaded_at\"",
            self.loads(),
            self.param(1),
            self.date_param(2),
            self.param(3),
            self.param(4),
            self.param(5),
            self.param(6)
        )
    }

    /// Deletes a date's rows; binds the date.
    pub fn delete_date(&self) -> String {
        format!(
            "DELETE FROM {} WHERE {} = {}",
            self.qualified(),
            quote(DATE),
            self.date_param(1)
        )
    }

    /// A date parameter, bound as `YYYY-MM-DD` text.
    fn date_param(&self, n: usize) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            _ => format!("CAST(${n} AS date)"),
        }
    }

    fn param(&self, n: usize) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            _ => format!("${n}"),
        }
    }

    fn column_list(columns: &[Column]) -> String {
        let mut names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
        names.push(quote(DATE));
        names.join(", ")
    }

    /// PostgreSQL: the rows of a date in COPY text format, `_date` last.
    pub fn copy_from_stdin(&self, columns: &[Column]) -> String {
        format!(
            "COPY {} ({}) FROM STDIN",
            self.qualified(),
            Self::column_list(columns)
        )
    }

    /// SQLite: one multi-row INSERT of `rows` rows (`?` placeholders).
    pub fn insert_rows(&self, columns: &[Column], rows: usize) -> String {
        let one = format!("({})", vec!["?"; columns.len() + 1].join(", "));
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            self.qualified(),
            Self::column_list(columns),
            vec![one.as_str(); rows].join(", ")
        )
    }

    /// Redshift: one date's whole load, in order, to run in one transaction.
    /// The staging table has exactly the clean files' columns in their order (COPY
    /// from Parquet matches columns by position), `_schema_id` included; nested columns
    /// are `super`, filled by `SERIALIZETOJSON`. One COPY per file the manifest names
    /// (the full key as the prefix), so nothing else under the folder is read.
    pub fn redshift_load(&self, load: &RedshiftLoad<'_>) -> Vec<String> {
        let table = self.qualified();
        let stage = quote(STAGE_TABLE);
        let date = format!("DATE {}", redshift_literal(&load.date.to_string()));
        let mut stage_defs: Vec<String> = load
            .columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), c.kind.sql_type(Dialect::Redshift)))
            .collect();
        stage_defs.push(format!(
            "{} bigint",
            quote(onepipe_tables::types::SCHEMA_ID)
        ));
        let nested = load
            .columns
            .iter()
            .any(|c| matches!(c.kind, onepipe_tables::types::Kind::Json(_)));
        let mut sql = vec![
            format!("LOCK {table}"),
            format!("DROP TABLE IF EXISTS {stage}"),
            format!("CREATE TEMP TABLE {stage} ({})", stage_defs.join(", ")),
        ];
        for url in &load.files {
            sql.push(format!(
                "COPY {stage} FROM {} IAM_ROLE {} FORMAT AS PARQUET{}",
                redshift_literal(url),
                redshift_literal(load.iam_role),
                if nested { " SERIALIZETOJSON" } else { "" }
            ));
        }
        let names: Vec<String> = load.columns.iter().map(|c| quote(&c.name)).collect();
        sql.push(format!(
            "DELETE FROM {table} WHERE {} = {date}",
            quote(DATE)
        ));
        sql.push(format!(
            "INSERT INTO {table} ({}, {}) SELECT {}, {date} FROM {stage}",
            names.join(", "),
            quote(DATE),
            names.join(", ")
        ));
        sql.push(format!(
            "DELETE FROM {} WHERE \"dataset\" = {} AND \"date\" = {date}",
            self.loads(),
            redshift_literal(load.dataset)
        ));
        sql.push(format!(
            "INSERT INTO {} (\"dataset\", \"date\", \"manifest\", \"version\", \"rows\", \
             \"schema_id\", \"loaded_at\") VALUES ({}, {date}, {}, {}, {}, {}, getdate())",
            self.loads(),
            redshift_literal(load.dataset),
            load.manifest,
            load.version,
            load.rows,
            load.schema_id
        ));
        sql.push(format!("DROP TABLE {stage}"));
        sql
    }

    /// Redshift: the staged row count, checked against the manifest before the swap.
    pub fn redshift_count_stage(&self) -> String {
        format!("SELECT count(*) FROM {}", quote(STAGE_TABLE))
    }
}

/// One date's load on Redshift.
#[derive(Debug, Clone)]
pub struct RedshiftLoad<'a> {
    pub dataset: &'a str,
    pub date: NaiveDate,
    pub columns: &'a [Column],
    /// `s3://bucket/key` of every file the manifest names for the date.
    pub files: Vec<String>,
    pub iam_role: &'a str,
    pub manifest: u64,
    pub version: u32,
    pub rows: u64,
    pub schema_id: u32,
}

/// `CREATE SCHEMA IF NOT EXISTS "name"`.
pub fn create_schema(schema: &str) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema))
}

/// A date as a SQL literal (for logs and Redshift).
pub fn date_literal(date: NaiveDate) -> String {
    literal(&date.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use onepipe_tables::types::{Kind, Shape, Unit};

    fn cols() -> Vec<Column> {
        vec![
            Column {
                name: "order".into(),
                source: "Order".into(),
                kind: Kind::Text,
            },
            Column {
                name: "items".into(),
                source: "items".into(),
                kind: Kind::Json(Shape::List(Box::new(Shape::Leaf))),
            },
            Column {
                name: "_kafka_timestamp".into(),
                source: "_kafka_timestamp".into(),
                kind: Kind::Timestamp(Unit::Millis, true),
            },
        ]
    }

    fn table(dialect: Dialect) -> Table {
        Table {
            dialect,
            schema: (dialect != Dialect::Sqlite).then(|| "Mart-1".to_string()),
            name: "shop_orders".into(),
        }
    }

    #[test]
    fn postgres_statements() {
        let t = table(Dialect::Postgres);
        assert_eq!(
            t.create(&cols()),
            "CREATE TABLE IF NOT EXISTS \"Mart-1\".\"shop_orders\" (\"order\" text, \"items\" jsonb, \
             \"_kafka_timestamp\" timestamp with time zone, \"_date\" date NOT NULL)"
        );
        assert_eq!(
            t.copy_from_stdin(&cols()),
            "COPY \"Mart-1\".\"shop_orders\" (\"order\", \"items\", \"_kafka_timestamp\", \"_date\") FROM STDIN"
        );
        assert_eq!(
            t.delete_date(),
            "DELETE FROM \"Mart-1\".\"shop_orders\" WHERE \"_date\" = CAST($1 AS date)"
        );
        assert_eq!(
            t.add_column(&cols()[1]),
            "ALTER TABLE \"Mart-1\".\"shop_orders\" ADD COLUMN \"items\" jsonb"
        );
        assert_eq!(
            t.create_index().unwrap(),
            "CREATE INDEX IF NOT EXISTS \"shop_orders__date\" ON \"Mart-1\".\"shop_orders\" (\"_date\")"
        );
        assert!(t.upsert_load().starts_with(
            "INSERT INTO \"Mart-1\".\"_onepipe_loads\" (\"dataset\", \"date\", \"manifest\", \
             \"version\", \"rows\", \"schema_id\", \"loaded_at\") VALUES ($1, CAST($2 AS date), $3, $4, $5, $6, now()) \
             ON CONFLICT (\"dataset\", \"date\") DO UPDATE"
        ));
        assert!(
            t.create_loads()
                .contains("PRIMARY KEY (\"dataset\", \"date\")")
        );
        assert_eq!(
            create_schema("a\"b"),
            "CREATE SCHEMA IF NOT EXISTS \"a\"\"b\""
        );
    }

    #[test]
    fn sqlite_statements() {
        let t = table(Dialect::Sqlite);
        assert_eq!(
            t.create(&cols()),
            "CREATE TABLE IF NOT EXISTS \"shop_orders\" (\"order\" text, \"items\" json, \
             \"_kafka_timestamp\" timestamptz, \"_date\" date NOT NULL)"
        );
        assert_eq!(
            t.insert_rows(&cols(), 2),
            "INSERT INTO \"shop_orders\" (\"order\", \"items\", \"_kafka_timestamp\", \"_date\") \
             VALUES (?, ?, ?, ?), (?, ?, ?, ?)"
        );
        assert_eq!(
            t.delete_date(),
            "DELETE FROM \"shop_orders\" WHERE \"_date\" = ?1"
        );
        assert!(t.create_loads().contains("\"date\" text NOT NULL"));
    }

    #[test]
    fn redshift_load_statements() {
        let t = table(Dialect::Redshift);
        assert_eq!(
            t.create(&cols()),
            "CREATE TABLE IF NOT EXISTS \"Mart-1\".\"shop_orders\" (\"order\" character varying(65535), \
             \"items\" super, \"_kafka_timestamp\" timestamp with time zone, \"_date\" date NOT NULL) \
             SORTKEY (\"_date\")"
        );
        assert_eq!(t.create_index(), None);
        let columns = cols();
        let load = RedshiftLoad {
            dataset: "shop.orders",
            date: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
            columns: &columns,
            files: vec![
                "s3://bucket/pre/clean/shop.orders/date=2026-11-24/v00000003/part-00000.parquet"
                    .into(),
                "s3://bucket/pre/clean/shop.orders/date=2026-11-24/v00000003/part-00001.parquet"
                    .into(),
            ],
            iam_role: "arn:aws:iam::123456789012:role/loader",
            manifest: 12,
            version: 3,
            rows: 81234,
            schema_id: 7,
        };
        let sql = t.redshift_load(&load);
        let want = [
            "LOCK \"Mart-1\".\"shop_orders\"",
            "DROP TABLE IF EXISTS \"_onepipe_stage\"",
            "CREATE TEMP TABLE \"_onepipe_stage\" (\"order\" character varying(65535), \"items\" super, \
             \"_kafka_timestamp\" timestamp with time zone, \"_schema_id\" bigint)",
            "COPY \"_onepipe_stage\" FROM 's3://bucket/pre/clean/shop.orders/date=2026-11-24/v00000003/part-00000.parquet' \
             IAM_ROLE 'arn:aws:iam::123456789012:role/loader' FORMAT AS PARQUET SERIALIZETOJSON",
            "COPY \"_onepipe_stage\" FROM 's3://bucket/pre/clean/shop.orders/date=2026-11-24/v00000003/part-00001.parquet' \
             IAM_ROLE 'arn:aws:iam::123456789012:role/loader' FORMAT AS PARQUET SERIALIZETOJSON",
            "DELETE FROM \"Mart-1\".\"shop_orders\" WHERE \"_date\" = DATE '2026-11-24'",
            "INSERT INTO \"Mart-1\".\"shop_orders\" (\"order\", \"items\", \"_kafka_timestamp\", \"_date\") \
             SELECT \"order\", \"items\", \"_kafka_timestamp\", DATE '2026-11-24' FROM \"_onepipe_stage\"",
            "DELETE FROM \"Mart-1\".\"_onepipe_loads\" WHERE \"dataset\" = 'shop.orders' AND \"date\" = DATE '2026-11-24'",
            "INSERT INTO \"Mart-1\".\"_onepipe_loads\" (\"dataset\", \"date\", \"manifest\", \"version\", \
             \"rows\", \"schema_id\", \"loaded_at\") VALUES ('shop.orders', DATE '2026-11-24', 12, 3, 81234, 7, getdate())",
            "DROP TABLE \"_onepipe_stage\"",
        ];
        assert_eq!(sql, want);
        // Without nested columns there is nothing to serialise.
        let flat = &columns[..1];
        let sql = t.redshift_load(&RedshiftLoad {
            columns: flat,
            files: vec!["s3://b/k'x.parquet".into()],
            ..load
        });
        assert_eq!(
            sql[3],
            "COPY \"_onepipe_stage\" FROM 's3://b/k''x.parquet' IAM_ROLE \
             'arn:aws:iam::123456789012:role/loader' FORMAT AS PARQUET"
        );
        assert_eq!(
            t.redshift_count_stage(),
            "SELECT count(*) FROM \"_onepipe_stage\""
        );
    }
}
