//! monitoring/: every metric the alerts and the dashboard name is one threadql exports, checked
//! against a real scrape taken after traffic, and that scrape passes `promtool check metrics`.
//! `/metrics` moves to its own listener with `THREADQL_METRICS_LISTEN`.
use std::collections::BTreeSet;
use std::path::Path;

use threadql_testkit::{app_mention, new_channel, new_ts, spawn_app, spawn_app_with};

/// Series the end-to-end run below must have moved off zero: each new family is wired where its
/// event happens, not only registered (every known series starts at zero).
const MOVED_BY_THIS_TRAFFIC: &[&str] = &[
    r#"threadql_slack_requests_total{endpoint="events",outcome="accepted"}"#,
    r#"threadql_slack_requests_total{endpoint="events",outcome="unauthorized"}"#,
    r#"threadql_thread_activations_total{source="new"}"#,
    "threadql_thread_activation_seconds_count",
    r#"threadql_turns_total{intent="ask",outcome="answered"}"#,
    r#"threadql_turn_seconds_count{intent="ask"}"#,
    r#"threadql_snapshot_writes_total{outcome="saved"}"#,
    "threadql_snapshot_batch_size_count",
    "threadql_snapshot_write_seconds_count",
    r#"threadql_warehouse_queries_total{engine="sqlite",outcome="ok"}"#,
    r#"threadql_query_seconds_count{engine="sqlite",outcome="ok"}"#,
    r#"threadql_warehouse_rows_total{engine="sqlite"}"#,
    r#"threadql_slack_api_calls_total{method="chat.postMessage",outcome="ok"}"#,
];

/// The value of one series in a scrape (`name{labels}` exactly as exposed).
fn value_of(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// Metric names in a rules file or dashboard: `threadql_*` and `process_*` words, and `up`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
    for word in words {
        if word.starts_with("threadql_") || word.starts_with("process_") {
            names.insert(word.to_string());
        }
    }
    names
}

fn sample_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[actix_rt::test]
async fn every_metric_in_the_alerts_and_the_dashboard_is_in_a_real_scrape() {
    // Arrange: a question answered end to end, a forged request, an unknown path.
    let app = spawn_app().await;
    let (channel, root) = (new_channel(), new_ts());
    let response = app
        .post_event(&app_mention("EvMon1", &channel, &root, "revenue by region last month"))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    app.slack.wait_for_posts(&channel, &root, 1).await;
    let forged = app
        .client
        .post(format!("{}/slack/events", app.address))
        .header("x-slack-request-timestamp", chrono::Utc::now().timestamp().to_string())
        .header("x-slack-signature", "v0=forged")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    app.client
        .get(format!("{}/no-such-path", app.address))
        .send()
        .await
        .unwrap();

    // Act: the turn is counted once it is over, which is after its answer is posted.
    app.wait_until_idle().await;
    let scrape = app.metrics().await;

    // Assert
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exported = sample_names(&scrape);
    for file in ["monitoring/alerts.yml", "monitoring/grafana/threadql.json"] {
        let text = std::fs::read_to_string(root_dir.join(file)).unwrap();
        let names = metric_names(&text);
        assert!(names.len() > 5, "{file}: too few metric names found: {names:?}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{file} names {name}, which is not in the scrape:\n{scrape}"
            );
        }
    }
    for series in MOVED_BY_THIS_TRAFFIC {
        let value = value_of(&scrape, series);
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{series} is {value:?} after an answered question:\n{scrape}"
        );
    }
    assert_promtool_accepts(&scrape);
}

#[actix_rt::test]
async fn metrics_are_served_only_on_their_own_listener_when_one_is_configured() {
    // Arrange
    let app = spawn_app_with(&[("THREADQL_METRICS_LISTEN", "127.0.0.1:0".to_string())]).await;
    assert_ne!(app.metrics_address, app.address, "a listener of its own");

    // Act
    let on_main = app.client.get(format!("{}/metrics", app.address)).send().await.unwrap();
    let on_own = app
        .client
        .get(format!("{}/metrics", app.metrics_address))
        .send()
        .await
        .unwrap();
    let health_on_own = app
        .client
        .get(format!("{}/healthz", app.metrics_address))
        .send()
        .await
        .unwrap();
    let health_on_main = app.client.get(format!("{}/healthz", app.address)).send().await.unwrap();

    // Assert
    assert_eq!(on_main.status().as_u16(), 404, "/metrics is not on the public listener");
    assert_eq!(on_own.status().as_u16(), 200);
    let scrape = on_own.text().await.unwrap();
    assert!(scrape.contains("# HELP threadql_live_threads "), "{scrape}");
    assert_eq!(
        health_on_own.status().as_u16(),
        404,
        "the metrics listener serves /metrics only"
    );
    assert_eq!(health_on_main.status().as_u16(), 200);
}

#[actix_rt::test]
async fn metrics_stay_on_the_main_listener_by_default() {
    let app = spawn_app().await;
    assert_eq!(app.metrics_address, app.address);
    let response = app.client.get(format!("{}/metrics", app.address)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.text().await.unwrap().contains("# HELP threadql_turns_total "));
}

/// `promtool check metrics` prints nothing for a clean exposition (it lints names, HELP and
/// units). Skipped, saying so, where promtool is not installed; CI installs it.
fn assert_promtool_accepts(scrape: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("SKIPPED promtool check metrics: promtool is not installed (apt-get install prometheus)");
        return;
    };
    child.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.trim().is_empty(),
        "promtool check metrics reported:\n{report}"
    );
}
