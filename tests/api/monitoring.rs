//! monitoring/: every metric the alerts and the dashboard name is one threadql exports, checked
//! against a real scrape taken after traffic, and that scrape passes `promtool check metrics`.
use std::collections::BTreeSet;
use std::path::Path;

use threadql_testkit::{app_mention, new_channel, new_ts, spawn_app};

/// Families this test's traffic cannot produce (no OPENAI_API_KEY, no Socket Mode): a labelled
/// family appears in a scrape only once a series exists. Each must still be declared in
/// src/metrics.rs, which the test checks.
const NOT_PRODUCED_BY_THIS_TRAFFIC: &[&str] = &[
    "threadql_llm_completions_total",
    "threadql_llm_tokens_total",
    "threadql_llm_request_seconds",
    "threadql_llm_retries_total",
    "threadql_socket_mode_reconnects_total",
];

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

/// The family a sample name belongs to (`x_bucket`, `x_count`, `x_sum` are the histogram `x`).
fn family(name: &str) -> &str {
    ["_bucket", "_count", "_sum"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut scrape = app.metrics().await;
    while !(scrape.contains("threadql_turns_total{") && scrape.lines().any(|line| line == "threadql_backlog 0")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the turn is not over after 20 s:\n{scrape}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        scrape = app.metrics().await;
    }

    // Assert
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let declared = std::fs::read_to_string(root_dir.join("src/metrics.rs")).unwrap();
    let exported = sample_names(&scrape);
    for file in ["monitoring/alerts.yml", "monitoring/grafana/threadql.json"] {
        let text = std::fs::read_to_string(root_dir.join(file)).unwrap();
        let names = metric_names(&text);
        assert!(names.len() > 5, "{file}: too few metric names found: {names:?}");
        for name in names {
            if NOT_PRODUCED_BY_THIS_TRAFFIC.contains(&family(&name)) {
                assert!(
                    declared.contains(&format!("\"{}\"", family(&name))),
                    "{file} names {name}, which src/metrics.rs does not declare"
                );
                continue;
            }
            assert!(
                exported.contains(&name),
                "{file} names {name}, which is not in the scrape:\n{scrape}"
            );
        }
    }
    assert_promtool_accepts(&scrape);
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
