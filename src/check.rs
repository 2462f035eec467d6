//! `threadql check`: validates the configuration and reaches each configured dependency,
//! naming the variable and the cause of any failure.
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::config::{Config, WarehouseSource, DATABASE_URL, OPENAI_BASE_URL, REDIS_URL, SLACK_API_URL, WAREHOUSE_URL};
use crate::metrics::Metrics;
use crate::slack::web_api::SlackWebApi;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Prints one line per dependency; returns whether all are reachable.
pub async fn run(config: &Config) -> bool {
    let mut all_ok = true;
    let mut report = |name: &str, outcome: Result<String, String>| match outcome {
        Ok(detail) => println!("ok    {name:<16} {detail}"),
        Err(cause) => {
            all_ok = false;
            println!("FAIL  {name:<16} {cause}");
        }
    };

    let store = within(async {
        let store = crate::store::connect_and_migrate(config.database_url.expose())
            .await
            .map_err(|e| format!("{e:#}"))?;
        store.ping().await.map_err(|e| format!("{e:#}"))?;
        Ok("reachable, migrations applied".to_string())
    })
    .await;
    report(DATABASE_URL, store);

    let warehouse = within(async {
        if let WarehouseSource::Demo(path) = &config.warehouse {
            if !path.exists() {
                return Ok(format!("demo data set will be generated at {}", path.display()));
            }
        }
        let warehouse = crate::startup::connect_warehouse(config)
            .await
            .map_err(|e| format!("{e:#}"))?;
        warehouse.ping().await.map_err(|e| e.to_string())?;
        let tables = warehouse.schema().await.map_err(|e| e.to_string())?.len();
        Ok(format!("reachable, {tables} tables"))
    })
    .await;
    report(WAREHOUSE_URL, warehouse);

    match &config.slack.bot_token {
        Some(token) => {
            let outcome = within(async {
                let metrics = Metrics::new().map_err(|e| e.to_string())?;
                let api = SlackWebApi::new(&config.slack.api_url, token, metrics).map_err(|e| format!("{e:#}"))?;
                let user = api.bot_user_id().await.map_err(|e| e.to_string())?;
                Ok(format!("auth.test ok, bot user {user}"))
            })
            .await;
            report(SLACK_API_URL, outcome);
        }
        None => match &config.installs {
            // Installed through OAuth: the installations open with the configured key.
            Some(installs) => {
                let outcome = within(async {
                    let store = crate::startup::installation_store(config, installs).map_err(|e| format!("{e:#}"))?;
                    let listed = store.list().await.map_err(|e| e.to_string())?;
                    let active = listed.iter().filter(|installation| installation.active).count();
                    Ok(format!(
                        "installed through OAuth: {} installation(s), {active} active",
                        listed.len()
                    ))
                })
                .await;
                report("SLACK_CLIENT_ID", outcome);
            }
            None => println!("skip  {SLACK_API_URL:<16} SLACK_BOT_TOKEN is not set"),
        },
    }

    match &config.redis_url {
        Some(url) => {
            let outcome = within(async {
                let client = redis::Client::open(url.expose()).map_err(|e| e.to_string())?;
                let mut connection = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| e.to_string())?;
                let pong: String = redis::cmd("PING")
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(pong)
            })
            .await;
            report(REDIS_URL, outcome);
        }
        None => println!("skip  {REDIS_URL:<16} not set: limits and dedupe stay in process"),
    }

    match &config.openai {
        Some(openai) => {
            let outcome = within(async {
                // The interpreter's own client (reqwest 0.13, its TLS set-up), so `check`
                // reaches the model exactly as `serve` will.
                let client = crate::interpret::llm::http_client(std::time::Duration::from_secs(10))
                    .map_err(|e| format!("{e:#}"))?;
                let response = client
                    .get(format!("{}/models", openai.base_url.as_str().trim_end_matches('/')))
                    .bearer_auth(openai.api_key.expose_secret())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if response.status().is_success() {
                    Ok(format!("reachable, model {}", openai.model))
                } else {
                    Err(format!("answered HTTP {}", response.status()))
                }
            })
            .await;
            report(OPENAI_BASE_URL, outcome);
        }
        None => println!("skip  {OPENAI_BASE_URL:<16} OPENAI_API_KEY is not set: the rules interpreter answers"),
    }
    all_ok
}

async fn within(check: impl std::future::Future<Output = Result<String, String>>) -> Result<String, String> {
    tokio::time::timeout(TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {TIMEOUT:?}")))
}
