//! `onepipe query`: ad-hoc SQL over the clean archive with DataFusion. Every topic with a
//! clean table is a table (named as warehouse-loader names warehouse tables: lower-cased,
//! characters outside `[a-z0-9_]` replaced by `_`) over exactly the files of one version of
//! its Delta table (the current one, or the one `--as-of` names) — never a glob, so
//! superseded versions and orphans of crashed runs are never read. An archive that copydog
//! has not published as a Delta table yet is read from its newest manifest.

use std::io::Write;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::path::Path;
use onepipe_archive::delta::{self, AsOf};
use onepipe_archive::layout::CLEAN_ROOT;

use crate::error::{Error, Result};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The topics that have a clean archive (a `clean/{topic}/` folder).
async fn topics(store: &dyn ObjectStore) -> Result<Vec<String>> {
    let listing = store
        .list_with_delimiter(Some(&Path::from(CLEAN_ROOT)))
        .await
        .map_err(Error::ListClean)?;
    Ok(listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.parts().next_back().map(|s| s.as_ref().to_string()))
        .collect())
}

/// The clean files a reader reads at one version of a topic's table.
#[derive(Debug)]
pub struct CleanFiles {
    /// Which version it is, for messages: "Delta version 3", "manifest 2".
    pub what: String,
    /// Each date's files, as paths from the object store's root.
    pub dates: std::collections::BTreeMap<NaiveDate, Vec<String>>,
}

/// The files of `topic`'s clean table at `as_of`: from its Delta log, or, before copydog
/// has published one, from its newest manifest. `Ok(None)`: no clean archive. Says on
/// stderr when a manifest is newer than the Delta table (a run stopped between its
/// manifest and its Delta commit; the next run publishes it).
pub async fn clean_files(
    store: &Arc<dyn ObjectStore>,
    topic: &str,
    as_of: AsOf,
) -> Result<Option<CleanFiles>> {
    if let Some(t) = delta::files(store.clone(), topic, as_of).await? {
        if as_of == AsOf::Latest
            && let Some(&newest) = onepipe_archive::manifest::list(store.as_ref(), topic)
                .await?
                .last()
            && t.manifest.is_some_and(|m| m < newest)
        {
            eprintln!(
                "warning: {topic}: manifest {newest} is not in the Delta table yet (it holds manifest {}); reading Delta version {} until copydog publishes it",
                t.manifest.unwrap_or(0),
                t.version
            );
        }
        return Ok(Some(CleanFiles {
            what: format!("Delta version {}", t.version),
            dates: t.dates,
        }));
    }
    if as_of != AsOf::Latest {
        return Err(Error::NoDeltaLog {
            topic: topic.to_string(),
        });
    }
    let Some(m) = onepipe_archive::manifest::latest(store.as_ref(), topic).await? else {
        return Ok(None);
    };
    Ok(Some(CleanFiles {
        what: format!("manifest {}", m.number),
        dates: m.dates.into_iter().map(|(d, e)| (d, e.files)).collect(),
    }))
}

/// Runs `sql` over the clean archive at `object_store` and prints the result.
pub async fn run(
    sql: &str,
    object_store: &str,
    only: &[String],
    as_of: AsOf,
    format: Format,
    out: &mut impl Write,
) -> Result<()> {
    if let AsOf::Version(version) = as_of
        && only.len() != 1
    {
        return Err(Error::VersionNeedsOneTopic { version });
    }
    let store = onepipe_core::store::open(object_store)?;
    let ctx = SessionContext::new();
    let base = url::Url::parse("onepipe://archive/").expect("a valid url");
    ctx.register_object_store(&base, store.clone());
    let mut registered = Vec::new();
    for topic in topics(store.as_ref()).await? {
        if !only.is_empty() && !only.contains(&topic) {
            continue;
        }
        let Some(view) = clean_files(&store, &topic, as_of).await? else {
            continue;
        };
        let mut urls = Vec::new();
        for f in view.dates.values().flatten() {
            urls.push(ListingTableUrl::parse(format!("onepipe://archive/{f}"))?);
        }
        if urls.is_empty() {
            continue;
        }
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .infer_schema(&ctx.state())
            .await
            .map_err(|error| Error::TableSchema {
                topic: topic.clone(),
                error,
            })?;
        let name = onepipe_tables::names::sql_name(&topic);
        ctx.register_table(name.as_str(), Arc::new(ListingTable::try_new(config)?))?;
        registered.push(name);
    }
    if registered.is_empty() {
        return Err(Error::NoCleanArchive {
            object_store: object_store.to_string(),
        });
    }
    // The error is printed once: DataFusion's errors also return what they print as
    // their source.
    let df = ctx.sql(sql).await.map_err(|error| Error::Query {
        tables: registered.join(", "),
        error,
    })?;
    let batches: Vec<RecordBatch> = df.collect().await?;
    match format {
        Format::Table => writeln!(out, "{}", pretty_format_batches(&batches)?)?,
        Format::Csv => {
            let mut w = datafusion::arrow::csv::Writer::new(&mut *out);
            for b in &batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in &batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::NaiveDate;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use object_store::{ObjectStoreExt, PutPayload};
    use onepipe_archive::manifest::{self, DateEntry, Manifest};

    use super::*;

    /// A clean archive in a fresh temporary folder: topic `visits`, one file of three
    /// rows. Returns the folder and its `file://` URL.
    async fn archive() -> (std::path::PathBuf, String) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("onepipe-cli-query-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("file://{}", dir.display());
        let store = onepipe_core::store::open(&url).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let mut parquet = Vec::new();
        let mut w = ArrowWriter::try_new(&mut parquet, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let file = "clean/visits/date=2026-11-24/v1.parquet";
        store
            .put(&Path::from(file), PutPayload::from(parquet))
            .await
            .unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let m = Manifest {
            number: 1,
            topic: "visits".into(),
            created_at: chrono::Utc::now(),
            schema_id: 1,
            watermarks: BTreeMap::new(),
            dates: BTreeMap::from([(
                date,
                DateEntry {
                    version: 1,
                    rows: 3,
                    files: vec![file.into()],
                    checks: BTreeMap::new(),
                    merge_conflicts: 0,
                },
            )]),
            rejected: Default::default(),
            format: manifest::CLEAN_FORMAT,
        };
        assert!(manifest::commit(store.as_ref(), &m).await.unwrap());
        (dir, url)
    }

    #[tokio::test]
    async fn queries_the_clean_archive_and_names_an_unknown_column_once() {
        let (dir, url) = archive().await;
        let mut out = Vec::new();
        run(
            "SELECT count(*) AS n FROM visits",
            &url,
            &[],
            AsOf::Latest,
            Format::Csv,
            &mut out,
        )
        .await
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "n\n3\n");

        let e = run(
            "SELECT nope FROM visits",
            &url,
            &[],
            AsOf::Latest,
            Format::Csv,
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Query { .. }), "{e:?}");
        // As `main` prints it, and as anyhow prints a chain.
        let printed = crate::error::report(&e);
        assert!(
            printed.starts_with("the query (tables: visits): "),
            "{printed}"
        );
        assert_eq!(printed.matches("nope").count(), 1, "{printed}");
        let chained = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(chained.matches("nope").count(), 1, "{chained}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
