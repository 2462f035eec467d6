//! `threadql model`: prints the semantic model in use (configured, derived from the warehouse,
//! or both) as threadql.toml, so a team can start its own model from it.
use std::io::Write;

use anyhow::Context;

use crate::config::{Config, WarehouseSource};

/// Connects to the warehouse, builds the model as the server does and prints it.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let warehouse = crate::startup::connect_warehouse(config).await?;
    let loaded = crate::interpret::load::load_model(config, warehouse.as_ref(), config.query_timeout).await?;
    let text = loaded.model.to_toml().context("Failed to write the model as TOML")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", header(config))?;
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Comment lines saying where the model comes from and how to use it.
fn header(config: &Config) -> String {
    let warehouse = match &config.warehouse {
        WarehouseSource::Demo(path) => format!("the demo data set ({})", path.display()),
        WarehouseSource::Url(url) => url.to_string(),
        WarehouseSource::Snowflake(snowflake) => snowflake.to_string(),
    };
    let source = match &config.model_path {
        Some(path) => format!(
            "{}, completed with the tables it does not describe, derived from the warehouse schema.",
            path.display()
        ),
        None if matches!(config.warehouse, WarehouseSource::Demo(_)) => {
            "The built-in demo model, completed with the tables it does not describe.".to_string()
        }
        None => "Derived from the warehouse schema (no threadql.toml).".to_string(),
    };
    let source = match &config.dbt_project {
        Some(project) => format!(
            "{source}\n# With the dbt project {} (threadql.toml wins per name).",
            project.display()
        ),
        None => source,
    };
    format!(
        "# The semantic model threadql uses over {warehouse}.\n\
         # {source}\n\
         # Save it as threadql.toml (or point THREADQL_CONFIG at it) and edit it: the tables it\n\
         # describes are used as written and no longer derived.\n"
    )
}
