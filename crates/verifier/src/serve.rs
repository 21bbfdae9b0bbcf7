//! `verifier serve`: a round of checks on an interval, exported on /metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onepipe_core::admin::{self, Metrics};

use crate::error::{Error, Result};
use crate::lag::{self, GroupLag};
use crate::report::{Stores, check_all};
use crate::verify::DatasetReport;

/// Checks every dataset the registry lists each `interval` and sets the metrics of the
/// results, serving /healthz, /readyz and /metrics on `admin_listen`, until SIGINT or
/// SIGTERM. `/readyz` answers 200 once the latest round could list the datasets (a
/// registry that refuses the verifier's token leaves it checking nothing).
pub async fn serve(stores: &Stores, interval: Duration, admin_listen: &str) -> Result<()> {
    let metrics = Metrics::new();
    let listener = tokio::net::TcpListener::bind(admin_listen)
        .await
        .map_err(|error| Error::Bind {
            addr: admin_listen.to_string(),
            error,
        })?;
    let listed: Arc<Mutex<Result<(), String>>> = Arc::new(Mutex::new(Err(
        "the first round has not listed the datasets yet".into(),
    )));
    let seen = listed.clone();
    let ready: admin::ReadyCheck = Arc::new(move || {
        let answer = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map_err(admin::NotReady::from);
        Box::pin(async move { answer })
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut rx = stopped.clone();
    let server = tokio::spawn(admin::serve(
        listener,
        admin::router(ready, metrics.clone(), None),
        "admin",
        async move {
            let _ = rx.wait_for(|s| *s).await;
        },
    ));
    tokio::spawn(async move {
        admin::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let mut stopped = stopped;
    loop {
        let datasets = match stores.registry.topic_names().await {
            Ok(d) => {
                *listed.lock().unwrap_or_else(|p| p.into_inner()) = Ok(());
                d
            }
            Err(e) => {
                let why = format!(
                    "listing the datasets of the registry at {} failed: {e}",
                    stores.registry.url()
                );
                tracing::warn!(error = %why, "nothing checked this round");
                *listed.lock().unwrap_or_else(|p| p.into_inner()) = Err(why);
                Vec::new()
            }
        };
        let (reports, errors) = check_all(stores, &datasets, 0).await;
        set_check_metrics(&metrics, &reports, &errors);
        if let Some(options) = &stores.lag
            && let Ok(groups) = lag::lags(options, &stores.registry).await
        {
            set_lag_metrics(&metrics, groups);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
    server.await?.map_err(Error::Admin)
}

/// Mismatched dates per dataset, store and check, and how many things could not be
/// checked.
fn set_check_metrics(metrics: &Metrics, reports: &[DatasetReport], errors: &[String]) {
    for r in reports {
        let mut per: BTreeMap<(String, String, String), f64> = BTreeMap::new();
        for l in &r.lines {
            let e = per
                .entry((l.dataset.clone(), l.store.clone(), l.check.clone()))
                .or_default();
            if l.verdict == "MISMATCH" {
                *e += 1.0;
            }
        }
        for ((d, s, c), n) in per {
            metrics.set(
                "onepipe_verifier_mismatched_dates",
                "Dates whose check value in the store differs from the clean archive's",
                &[("dataset", &d), ("store", &s), ("check", &c)],
                n,
            );
        }
    }
    metrics.set(
        "onepipe_verifier_errors",
        "Datasets or stores that could not be checked in the last round",
        &[],
        (errors.len() + reports.iter().map(|r| r.errors.len()).sum::<usize>()) as f64,
    );
}

/// Status per group and lag per partition.
fn set_lag_metrics(metrics: &Metrics, groups: Vec<GroupLag>) {
    for g in groups {
        let code = match g.status {
            lag::Status::Ok => 0.0,
            lag::Status::Warn => 1.0,
            lag::Status::Stalled => 2.0,
            lag::Status::Stopped => 3.0,
        };
        metrics.set(
            "onepipe_verifier_group_status",
            "0 OK, 1 WARN, 2 STALLED, 3 STOPPED",
            &[("group", &g.group)],
            code,
        );
        for p in g.partitions {
            metrics.set(
                "onepipe_verifier_consumer_lag",
                "End offset minus committed offset",
                &[
                    ("group", &g.group),
                    ("topic", &p.topic),
                    ("partition", &p.partition.to_string()),
                ],
                p.lag as f64,
            );
        }
    }
}
