//! `threadql installations list|rekey`: the workspaces threadql was installed into through
//! Slack's OAuth flow (issue 15), kept in DATABASE_URL.
use anyhow::Context;

use crate::config::Config;
use crate::slack::install::{InstallationListing, InstallationStore};

/// The store of the configured OAuth app; an error says what to set when it is not one.
fn store(config: &Config) -> anyhow::Result<InstallationStore> {
    let installs = config.installs.as_ref().context(
        "no OAuth app configured: set SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and THREADQL_ENCRYPTION_KEY \
         (with one SLACK_BOT_TOKEN there are no installations)",
    )?;
    crate::startup::installation_store(config, installs)
}

/// Prints every installation: team (or org), name, state, bot user, token expiry, scopes.
pub async fn list(config: &Config) -> anyhow::Result<()> {
    let installations = store(config)?.list().await?;
    if installations.is_empty() {
        println!("No installations yet: open /slack/install on the server to add threadql to a workspace.");
        return Ok(());
    }
    for installation in &installations {
        println!("{}", line(installation));
    }
    Ok(())
}

/// One installation on one line, without any token.
fn line(installation: &InstallationListing) -> String {
    let state = match (installation.active, &installation.inactive_reason) {
        (true, _) if installation.has_bot_token => "active".to_string(),
        (true, _) => "active, no token".to_string(),
        (false, Some(reason)) => format!("inactive ({reason})"),
        (false, None) => "inactive".to_string(),
    };
    let scope = if installation.is_enterprise_install {
        "org-wide"
    } else {
        "workspace"
    };
    let expires = installation
        .bot_token_expires_at
        .map(|at| format!("token expires {}", at.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_else(|| "token does not expire".to_string());
    format!(
        "{}\t{}\t{scope}\t{state}\tbot {}\t{expires}\tinstalled {}\tscopes {}",
        installation.identity,
        installation.team_name,
        installation.bot_user_id,
        installation.installed_at.format("%Y-%m-%d"),
        installation.bot_scopes.join(","),
    )
}

/// Seals every token again with THREADQL_ENCRYPTION_KEY (after a rotation, with the old key as
/// THREADQL_ENCRYPTION_KEY_PREVIOUS), then the previous key can go.
pub async fn rekey(config: &Config) -> anyhow::Result<()> {
    let resealed = store(config)?.rekey().await?;
    println!(
        "Re-sealed {resealed} token(s) with the current key; THREADQL_ENCRYPTION_KEY_PREVIOUS is no longer needed."
    );
    Ok(())
}
