//! Slack ingress: signatures, url_verification, and every payload sample Slack publishes.
use serde_json::{json, Value};

use threadql_testkit::{fixtures, spawn_app, TestApp};

fn json_files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(json_files_under(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn assert_not_server_error(response: &reqwest::Response, description: &str) {
    let status = response.status();
    assert!(
        status.is_success() || status.is_client_error(),
        "{description}: got {status}"
    );
}

async fn accepted_count(app: &TestApp) -> u64 {
    let metrics = app.metrics().await;
    metrics
        .lines()
        .filter(|l| l.starts_with("threadql_slack_requests_total") && l.contains("outcome=\"accepted\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[actix_rt::test]
async fn every_slack_payload_sample_is_acknowledged_and_none_produces_a_reply() {
    // Arrange
    let app = spawn_app().await;
    let events = json_files_under(&fixtures().join("events"));
    let backend = json_files_under(&fixtures().join("app-backend"));
    assert!(
        events.len() >= 90 && backend.len() >= 9,
        "samples missing: {} events, {} app-backend",
        events.len(),
        backend.len()
    );

    // Act: events as published, and again as a complete event_callback with a unique event id.
    for (i, path) in events.iter().enumerate() {
        let sample: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let response = app.post_event(&sample).await;
        assert_not_server_error(&response, &path.display().to_string());
        let mut as_callback = sample.clone();
        as_callback["type"] = json!("event_callback");
        as_callback["event_id"] = json!(format!("EvSample{i}"));
        let response = app.post_event(&as_callback).await;
        assert_not_server_error(&response, &format!("{} as event_callback", path.display()));
    }
    for path in &backend {
        let sample: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let response = if path.to_string_lossy().contains("slash-commands") {
            let body = threadql_testkit::as_form(&sample);
            app.post_signed(
                "/slack/commands",
                "application/x-www-form-urlencoded",
                body.into_bytes(),
                &[],
            )
            .await
        } else {
            let body = serde_urlencoded::to_string([("payload", sample.to_string())]).unwrap();
            app.post_signed(
                "/slack/interactions",
                "application/x-www-form-urlencoded",
                body.into_bytes(),
                &[],
            )
            .await
        };
        assert_not_server_error(&response, &path.display().to_string());
    }

    // Assert: nothing reached a thread, so nothing can be posted.
    assert_eq!(accepted_count(&app).await, 0, "{}", app.metrics().await);
    assert_eq!(app.slack.all_posts().await, 0);
}

#[actix_rt::test]
async fn forged_stale_and_unsigned_requests_get_401() {
    let app = spawn_app().await;
    let body = br#"{"type":"url_verification","challenge":"abc"}"#.to_vec();
    let now = chrono::Utc::now().timestamp();
    let signature = threadql::slack::verify::sign(
        &threadql_testkit::SIGNING_SECRET.to_string().into(),
        &now.to_string(),
        &body,
    );
    let stale_ts = (now - 301).to_string();
    let stale_signature =
        threadql::slack::verify::sign(&threadql_testkit::SIGNING_SECRET.to_string().into(), &stale_ts, &body);
    let forged = threadql::slack::verify::sign(&"not-the-secret".to_string().into(), &now.to_string(), &body);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no headers", vec![]),
        (
            "forged signature",
            vec![
                ("x-slack-request-timestamp", now.to_string()),
                ("x-slack-signature", forged),
            ],
        ),
        (
            "stale timestamp",
            vec![
                ("x-slack-request-timestamp", stale_ts),
                ("x-slack-signature", stale_signature),
            ],
        ),
        ("signature without timestamp", vec![("x-slack-signature", signature)]),
    ];
    for endpoint in ["/slack/events", "/slack/interactions", "/slack/commands"] {
        for (description, headers) in &cases {
            let mut request = app.client.post(format!("{}{endpoint}", app.address)).body(body.clone());
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 401, "{endpoint}: {description}");
        }
    }
    // Refusals are counted under the same endpoint names as accepted requests.
    let metrics = app.metrics().await;
    for endpoint in ["events", "interactions", "commands"] {
        let line = format!("threadql_slack_requests_total{{endpoint=\"{endpoint}\",outcome=\"unauthorized\"}} 4");
        assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    }
    assert!(!metrics.contains("endpoint=\"/slack/"), "a path as a label:\n{metrics}");
}

#[actix_rt::test]
async fn url_verification_echoes_the_challenge() {
    let app = spawn_app().await;
    let response = app.post_event(&json!({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"})).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
}

#[actix_rt::test]
async fn health_readiness_and_metrics_endpoints_answer() {
    let app = spawn_app().await;
    for (path, needle) in [
        ("/healthz", "ok"),
        ("/readyz", "state_store"),
        ("/metrics", "threadql_live_threads"),
    ] {
        let response = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
}
