//! One round of checks over datasets and consumer groups, and its report: tables or JSON,
//! and the exit code of `verifier check`.

use std::io::{self, Write};
use std::sync::Arc;

use object_store::ObjectStore;
use onepipe_client::SchemaRegistry;

use crate::archived::{self, KafkaOptions};
use crate::error::Result;
use crate::expected;
use crate::lag::{self, GroupLag, LagOptions};
use crate::verify::{CheckOptions, DatasetReport, Warehouse, check_dataset_with};

/// The stores compared, and where consumer lag is read.
pub struct Stores {
    /// Where raw/ and clean/ live.
    pub store: Arc<dyn ObjectStore>,
    pub registry: SchemaRegistry,
    pub warehouses: Vec<Warehouse>,
    /// Online tables (online-sink's), each checked against raw/ up to its stored offsets.
    pub online: Vec<crate::online::Online>,
    /// Kafka, to check that the raw archive holds every record it has.
    pub kafka: Option<KafkaOptions>,
    /// Kafka and the groups whose lag is reported (none without Kafka).
    pub lag: Option<LagOptions>,
    /// Memory and local disk for the archive checks.
    pub expected: expected::Options,
    /// Check every date, not only those changed since the last verdicts.
    pub full: bool,
}

/// What one round found.
pub struct Round {
    pub reports: Vec<DatasetReport>,
    /// Datasets that could not be checked at all (`dataset: why`).
    pub errors: Vec<String>,
    /// Consumer lag per group (empty without Kafka).
    pub lags: Result<Vec<GroupLag>>,
}

impl Round {
    /// Checks `datasets` in every store (naming up to `max_keys` differing keys per store
    /// and date), then samples consumer lag.
    pub async fn check(stores: &Stores, datasets: &[String], max_keys: usize) -> Round {
        let (reports, errors) = check_all(stores, datasets, max_keys).await;
        let lags = match &stores.lag {
            Some(options) => lag::lags(options, &stores.registry).await,
            None => Ok(Vec::new()),
        };
        Round {
            reports,
            errors,
            lags,
        }
    }

    /// Check values that differ, over every dataset.
    pub fn mismatches(&self) -> usize {
        self.reports.iter().map(|r| r.mismatches).sum()
    }

    /// Everything that could not be checked: datasets, then stores, then consumer lag.
    pub fn all_errors(&self) -> Vec<String> {
        self.errors
            .iter()
            .cloned()
            .chain(self.reports.iter().flat_map(|r| r.errors.clone()))
            .chain(self.lags.as_ref().err().map(ToString::to_string))
            .collect()
    }

    /// 0 when every store agrees, 1 on a mismatch, 2 when something could not be checked.
    pub fn exit_code(&self) -> u8 {
        if !self.all_errors().is_empty() {
            2
        } else if self.mismatches() > 0 {
            1
        } else {
            0
        }
    }

    /// The report as `verifier check --json` prints it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "lines": self.reports.iter().flat_map(|r| r.lines.clone()).collect::<Vec<_>>(),
            "keys": self.reports.iter().flat_map(|r| r.keys.clone()).collect::<Vec<_>>(),
            "lag": self.lags.as_ref().ok(),
            "errors": self.all_errors(),
            "mismatches": self.mismatches(),
        })
    }

    /// The report as tables: check values, differing keys, consumer lag, errors and the
    /// verdict.
    pub fn write_tables(&self, out: &mut impl Write) -> io::Result<()> {
        let errors = self.all_errors();
        writeln!(
            out,
            "{:<28} {:<10} {:<12} {:<28} {:>22}  verdict",
            "dataset", "date", "store", "check", "value"
        )?;
        for r in &self.reports {
            for l in &r.lines {
                writeln!(
                    out,
                    "{:<28} {:<10} {:<12} {:<28} {:>22}  {}",
                    l.dataset, l.date, l.store, l.check, l.value, l.verdict
                )?;
            }
        }
        for r in &self.reports {
            let dataset = &r.dataset;
            if dataset.is_empty() || (r.checked.is_empty() && r.dates_skipped == 0) {
                continue;
            }
            writeln!(
                out,
                "\n{dataset}: {} dates checked, {} unchanged since their last ok verdict",
                r.checked.len(),
                r.dates_skipped
            )?;
            for c in &r.checked {
                let version = c.clean_version.map_or("not in clean/".to_string(), |v| {
                    format!("clean version {v}")
                });
                writeln!(out, "  {}: {version} ({})", c.date, c.reason)?;
            }
        }
        let keys: Vec<_> = self.reports.iter().flat_map(|r| r.keys.iter()).collect();
        if !keys.is_empty() {
            writeln!(
                out,
                "\nkeys that differ (clean archive is the reference; store kafka: in Kafka, not in raw/):"
            )?;
            for k in keys {
                writeln!(
                    out,
                    "  {} {} {}: {} {}",
                    k.dataset, k.date, k.store, k.problem, k.key
                )?;
            }
        }
        if let Ok(lags) = &self.lags
            && !lags.is_empty()
        {
            writeln!(out, "\nconsumer lag:")?;
            for g in lags {
                writeln!(
                    out,
                    "  group {} {} (members {}, total lag {})",
                    g.group, g.status, g.members, g.total_lag
                )?;
                for p in &g.partitions {
                    writeln!(
                        out,
                        "    {}/{}: committed {} end {} lag {}",
                        p.topic, p.partition, p.committed, p.end, p.lag
                    )?;
                }
            }
        }
        for e in &errors {
            writeln!(out, "could not check: {e}")?;
        }
        let mismatches = self.mismatches();
        writeln!(
            out,
            "\n{}",
            if !errors.is_empty() {
                "verdict: COULD NOT CHECK everything".to_string()
            } else if mismatches > 0 {
                format!("verdict: MISMATCH ({mismatches} check values differ)")
            } else {
                "verdict: all stores agree".to_string()
            }
        )
    }
}

/// Checks every dataset in every store, and against Kafka when it is given; returns the
/// reports and, per dataset that could not be checked, why.
pub async fn check_all(
    stores: &Stores,
    datasets: &[String],
    max_keys: usize,
) -> (Vec<DatasetReport>, Vec<String>) {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for d in datasets {
        tracing::info!(dataset = %d, "checking");
        let options = CheckOptions {
            max_keys,
            expected: stores.expected.clone(),
            full: stores.full,
            key_index_bytes: None,
        };
        match check_dataset_with(
            stores.store.clone(),
            &stores.registry,
            d,
            &stores.warehouses,
            &options,
        )
        .await
        {
            Ok(r) => reports.push(r),
            Err(e) => errors.push(format!("{d}: {e}")),
        }
        for o in &stores.online {
            match crate::online::check(
                stores.store.clone(),
                &stores.registry,
                d,
                o,
                &stores.expected,
                max_keys,
            )
            .await
            {
                Ok(r) => reports.push(r),
                Err(e) => errors.push(format!("{d} in {}: {e}", o.store.name)),
            }
        }
        if let Some(kafka) = &stores.kafka {
            match archived::check(stores.store.clone(), &stores.registry, d, kafka, max_keys).await
            {
                Ok(r) => reports.push(r),
                Err(e) => errors.push(format!("{d} in Kafka against raw/: {e}")),
            }
        }
    }
    (reports, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::lag::{PartitionLag, Status};
    use crate::verify::{KeyDiff, Line};

    fn line(verdict: &str) -> Line {
        Line {
            dataset: "orders".into(),
            date: "2026-11-24".into(),
            store: "raw".into(),
            check: "rows".into(),
            value: "3".into(),
            verdict: verdict.into(),
        }
    }

    fn round(mismatches: usize, errors: Vec<String>, lags: Result<Vec<GroupLag>>) -> Round {
        Round {
            reports: vec![DatasetReport {
                lines: vec![line(if mismatches > 0 { "MISMATCH" } else { "ok" })],
                keys: vec![KeyDiff {
                    dataset: "orders".into(),
                    date: "2026-11-24".into(),
                    store: "raw".into(),
                    key: "o1".into(),
                    problem: "missing".into(),
                }],
                mismatches,
                errors: Vec::new(),
                ..DatasetReport::default()
            }],
            errors,
            lags,
        }
    }

    fn tables(r: &Round) -> String {
        let mut out = Vec::new();
        r.write_tables(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tables_and_exit_codes() {
        let lag = GroupLag {
            group: "copycat".into(),
            status: Status::Ok,
            members: 1,
            total_lag: 0,
            partitions: vec![PartitionLag {
                topic: "orders".into(),
                partition: 0,
                committed: 5,
                end: 5,
                lag: 0,
            }],
        };
        let ok = round(0, Vec::new(), Ok(vec![lag]));
        assert_eq!(ok.exit_code(), 0);
        assert_eq!(
            tables(&ok),
            format!(
                "{:<28} {:<10} {:<12} {:<28} {:>22}  verdict\n\
                 {:<28} {:<10} {:<12} {:<28} {:>22}  ok\n\
                 \nkeys that differ (clean archive is the reference; store kafka: in Kafka, not in raw/):\n  \
                 orders 2026-11-24 raw: missing o1\n\
                 \nconsumer lag:\n  group copycat OK (members 1, total lag 0)\n    \
                 orders/0: committed 5 end 5 lag 0\n\
                 \nverdict: all stores agree\n",
                "dataset",
                "date",
                "store",
                "check",
                "value",
                "orders",
                "2026-11-24",
                "raw",
                "rows",
                "3"
            )
        );

        let mismatch = round(2, Vec::new(), Ok(Vec::new()));
        assert_eq!(mismatch.exit_code(), 1);
        assert!(tables(&mismatch).ends_with("\nverdict: MISMATCH (2 check values differ)\n"));

        let failed = round(2, vec!["orders: no manifest".into()], Err(Error::NotSqlite));
        assert_eq!(failed.exit_code(), 2);
        let text = tables(&failed);
        assert!(
            text.ends_with(
                "could not check: orders: no manifest\n\
                 could not check: keys() is for SQLite warehouses\n\
                 \nverdict: COULD NOT CHECK everything\n"
            ),
            "{text}"
        );
        let doc = failed.json();
        assert_eq!(doc["mismatches"], 2);
        assert_eq!(doc["lag"], serde_json::Value::Null);
        assert_eq!(
            doc["errors"],
            serde_json::json!(["orders: no manifest", "keys() is for SQLite warehouses"])
        );
    }
}
