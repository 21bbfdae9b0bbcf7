//! `onepipe query`: ad-hoc SQL over the clean archive with DataFusion. Every topic with a
//! manifest is a table (named as warehouse-loader names warehouse tables: lower-cased,
//! characters outside `[a-z0-9_]` replaced by `_`) over exactly the files its newest manifest names — never
//! a glob, so superseded versions and orphans of crashed runs are never read.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::path::Path;
use onepipe_archive::layout::CLEAN_ROOT;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The topics that have a clean archive (a `clean/{topic}/` folder).
async fn topics(store: &dyn ObjectStore) -> anyhow::Result<Vec<String>> {
    let listing = store
        .list_with_delimiter(Some(&Path::from(CLEAN_ROOT)))
        .await
        .context("listing clean/")?;
    Ok(listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.parts().next_back().map(|s| s.as_ref().to_string()))
        .collect())
}

/// Runs `sql` over the clean archive at `object_store` and prints the result.
pub async fn run(
    sql: &str,
    object_store: &str,
    only: &[String],
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let store = onepipe_core::store::open(object_store)?;
    let ctx = SessionContext::new();
    let base = url::Url::parse("onepipe://archive/").expect("a valid url");
    ctx.register_object_store(&base, store.clone());
    let mut registered = Vec::new();
    for topic in topics(store.as_ref()).await? {
        if !only.is_empty() && !only.contains(&topic) {
            continue;
        }
        let Some(m) = onepipe_archive::manifest::latest(store.as_ref(), &topic).await? else {
            continue;
        };
        let mut urls = Vec::new();
        for entry in m.dates.values() {
            for f in &entry.files {
                urls.push(ListingTableUrl::parse(format!("onepipe://archive/{f}"))?);
            }
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
            .with_context(|| format!("reading the schema of {topic}"))?;
        let name = onepipe_tables::names::sql_name(&topic);
        ctx.register_table(name.as_str(), Arc::new(ListingTable::try_new(config)?))?;
        registered.push(name);
    }
    if registered.is_empty() {
        bail!("no topic has a clean archive under {object_store} (has copydog run?)");
    }
    let df = ctx
        .sql(sql)
        .await
        .with_context(|| format!("the query (tables: {})", registered.join(", ")))?;
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
