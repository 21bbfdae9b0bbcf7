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
        for l in r
            .lines
            .iter()
            .filter(|l| l.date != crate::verify::ALL_DATES)
        {
            let e = per
                .entry((l.dataset.clone(), l.store.clone(), l.check.clone()))
                .or_default();
            if l.verdict == "MISMATCH" {
                *e += 1.0;
            }
        }
        for l in r
            .lines
            .iter()
            .filter(|l| l.date == crate::verify::ALL_DATES)
        {
            if let Ok(n) = l.value.parse::<f64>() {
                metrics.set(
                    "onepipe_verifier_rejected_records",
                    "Raw records that are no clean row: copydog's count (store clean) and the \
                     verifier's own (store raw)",
                    &[("dataset", &l.dataset), ("store", &l.store)],
                    n,
                );
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
    let now = chrono::Utc::now();
    for r in reports {
        let dataset = &r.dataset;
        if dataset.is_empty() {
            continue;
        }
        metrics.set(
            "onepipe_verifier_dates_checked",
            "Dates checked in the last round (changed since their last verdict)",
            &[("dataset", dataset)],
            r.checked.len() as f64,
        );
        metrics.set(
            "onepipe_verifier_dates_skipped",
            "Dates not checked in the last round: unchanged since their last ok verdict",
            &[("dataset", dataset)],
            r.dates_skipped as f64,
        );
        for (date, v) in &r.verdicts {
            metrics.set(
                "onepipe_verifier_date_verdict",
                "The last verdict of a date: 0 ok, 1 mismatch",
                &[("dataset", dataset), ("date", date)],
                if v.verdict == crate::verify::OK {
                    0.0
                } else {
                    1.0
                },
            );
            let age = chrono::DateTime::parse_from_rfc3339(&v.checked_at).map_or(f64::NAN, |t| {
                (now - t.to_utc()).num_milliseconds() as f64 / 1000.0
            });
            metrics.set(
                "onepipe_verifier_date_verdict_age_seconds",
                "Seconds since the last verdict of a date was reached",
                &[("dataset", dataset), ("date", date)],
                age,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdicts::DateVerdict;
    use crate::verify::CheckedDate;

    #[test]
    fn metrics_say_how_many_dates_were_checked_and_skipped_and_how_old_verdicts_are() {
        let metrics = Metrics::new();
        let verdict = |v: &str, at: &str| DateVerdict {
            verdict: v.into(),
            checked_at: at.into(),
            ..DateVerdict::default()
        };
        let an_hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let report = DatasetReport {
            dataset: "orders".into(),
            checked: vec![CheckedDate {
                date: "2026-11-25".into(),
                clean_version: Some(4),
                reason: "clean version".into(),
            }],
            dates_skipped: 2,
            verdicts: [
                ("2026-11-24".to_string(), verdict("ok", &an_hour_ago)),
                ("2026-11-25".to_string(), verdict("MISMATCH", &an_hour_ago)),
            ]
            .into(),
            ..DatasetReport::default()
        };
        set_check_metrics(&metrics, &[report], &[]);
        let text = metrics.render();
        assert!(
            text.contains(r#"onepipe_verifier_dates_checked{dataset="orders"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"onepipe_verifier_dates_skipped{dataset="orders"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"onepipe_verifier_date_verdict{dataset="orders",date="2026-11-25"} 1"#),
            "{text}"
        );
        let age: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"onepipe_verifier_date_verdict_age_seconds{dataset="orders",date="2026-11-24"} "#)
            })
            .unwrap_or_else(|| panic!("{text}"))
            .parse()
            .unwrap();
        assert!((3590.0..3700.0).contains(&age), "{age}");
    }
}
