//! Who may see what, end to end: roles from threadql.toml, Slack user groups, the channel's
//! audience (members, guests, Slack Connect) read from the fake Slack, answers kept from a
//! channel some member may not see, "Why this result?", and clicks checked against the clicker.
use serde_json::{json, Value};
use sqlx::Row;

use threadql_testkit::{
    app_mention, button_click, button_value, direct_channel, new_channel, new_ts, post_text, spawn_app_with,
    thread_reply, TestApp, TEAM,
};

const ALICE: &str = "U0ALICE01";
/// In the analysts role through the @finance user group.
const CAROL: &str = "U0CAROL01";
/// In the sales role: no `orders.total`.
const BOB: &str = "U0BOB0001";

/// The demo model with roles: analysts read everything, sales read no order totals; guests and
/// members of other organisations read nothing.
fn threadql_toml() -> String {
    let model = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/interpret/demo_model.toml")).unwrap();
    format!(
        r#"{model}

[[roles]]
name = "analysts"
members = ["{ALICE}", "@finance"]
tables = ["*"]

[[roles]]
name = "sales"
members = ["{BOB}"]
tables = ["orders", "customers", "products", "order_items"]
deny_columns = ["orders.total"]

[access]
default_role = "none"
external = "none"
"#
    )
}

async fn governed_app() -> (TestApp, tempfile::TempDir) {
    governed_app_with(&[]).await
}

async fn governed_app_with(overrides: &[(&str, String)]) -> (TestApp, tempfile::TempDir) {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("threadql.toml");
    std::fs::write(&path, threadql_toml()).unwrap();
    let mut overrides = overrides.to_vec();
    overrides.push(("THREADQL_CONFIG", path.display().to_string()));
    let app = spawn_app_with(&overrides).await;
    app.slack.set_group("finance", &[CAROL]);
    (app, folder)
}

/// What the state store's audit trail says about `action`, oldest first.
async fn audited(app: &TestApp, action: &str) -> Vec<String> {
    let mut connection = app.database.connect().await;
    sqlx::query("SELECT detail FROM audit_logs WHERE action = $1 ORDER BY id")
        .bind(action)
        .fetch_all(&mut connection)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.get::<String, _>("detail"))
        .collect()
}

/// A member-joined event for `user` in `channel`, from Slack's sample.
fn member_joined(channel: &str, user: &str) -> Value {
    let mut envelope = threadql_testkit::fixture("events/MemberJoinedChannelPayload.json");
    envelope["team_id"] = json!(TEAM);
    envelope["event_id"] = json!(format!("EvJ{}", new_ts()));
    envelope["event"]["user"] = json!(user);
    envelope["event"]["channel"] = json!(channel);
    envelope["event"]["team"] = json!(TEAM);
    envelope
}

fn as_user(mut payload: Value, user: &str) -> Value {
    payload["user"]["id"] = json!(user);
    payload
}

/// The direct messages `user` has from the bot once the server has nothing left to do.
async fn direct_messages(app: &TestApp, user: &str) -> Vec<Value> {
    app.wait_until_idle().await;
    app.slack.direct_messages(user).await
}

#[actix_rt::test]
async fn an_answer_everyone_in_the_channel_may_see_is_posted_there() {
    let (app, _config) = governed_app().await;
    let (channel, root) = (new_channel(), new_ts());
    // Carol is an analyst through the @finance user group.
    app.slack.set_channel(&channel, &[ALICE, CAROL], false);

    app.post_event(&app_mention("EvG1", &channel, &root, "revenue by region last month"))
        .await;

    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(
        button_value(&posts[0], "show_sql").is_some(),
        "an answer: {:#}",
        posts[0]
    );
    assert!(app.slack.direct_messages(ALICE).await.is_empty());
    let checked = audited(&app, "audience_checked").await;
    assert_eq!(checked, ["everyone in the channel may see it"]);
}

#[actix_rt::test]
async fn an_answer_a_member_may_not_see_goes_to_the_asker_with_a_note_in_the_thread() {
    let (app, _config) = governed_app().await;
    let (channel, root) = (new_channel(), new_ts());
    app.slack.set_channel(&channel, &[ALICE, BOB], false);

    app.post_event(&app_mention("EvG2", &channel, &root, "revenue by region last month"))
        .await;

    // The thread gets a note without the data; Alice gets the answer directly.
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    let note = post_text(&posts[0]);
    assert!(
        note.contains("orders.total") && note.contains("I sent it to you directly"),
        "{note}"
    );
    assert!(
        !note.contains("EMEA") && !note.contains('$'),
        "no data in the note: {note}"
    );
    let direct = direct_messages(&app, ALICE).await;
    assert_eq!(direct.len(), 1, "{direct:#?}");
    let answer = post_text(&direct[0]);
    assert!(answer.contains("EMEA"), "the answer, by DM: {answer}");
    assert_eq!(direct[0]["channel"], direct_channel(ALICE).as_str());
    let withheld = audited(&app, "answer_withheld").await;
    assert_eq!(withheld, ["1 member of the channel may not see orders.total"]);
}

#[actix_rt::test]
async fn under_warn_the_answer_is_posted_and_the_audience_it_should_not_reach_is_audited() {
    let (app, _config) = governed_app_with(&[("THREADQL_AUDIENCE_CHECK", "warn".into())]).await;
    let (channel, root) = (new_channel(), new_ts());
    app.slack.set_channel(&channel, &[ALICE, BOB], false);

    app.post_event(&app_mention("EvW1", &channel, &root, "revenue by region last month"))
        .await;

    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(button_value(&posts[0], "show_sql").is_some(), "posted in the channel");
    assert!(direct_messages(&app, ALICE).await.is_empty());
    let checked = audited(&app, "audience_checked").await;
    assert_eq!(checked, ["1 member of the channel may not see orders.total"]);
}

#[actix_rt::test]
async fn in_a_slack_connect_channel_members_of_other_organisations_count_as_external() {
    let (app, _config) = governed_app().await;
    let (channel, root) = (new_channel(), new_ts());
    // The partner's user is listed as an analyst by id: being external still counts first.
    let partner = "U0PARTNER1";
    app.slack.set_external(partner, "T0PARTNER");
    // More members than one page of conversations.members.
    let mut members: Vec<String> = (0..250).map(|n| format!("U0CROWD{n:03}")).collect();
    app.slack.set_group(
        "finance",
        &members
            .iter()
            .map(String::as_str)
            .chain([CAROL, partner])
            .collect::<Vec<_>>(),
    );
    members.push(ALICE.to_string());
    members.push(partner.to_string());
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    app.slack.set_channel(&channel, &members, true);

    app.post_event(&app_mention("EvG3", &channel, &root, "orders by region last month"))
        .await;

    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    let note = post_text(&posts[0]);
    assert!(note.contains("shared channel"), "{note}");
    assert_eq!(direct_messages(&app, ALICE).await.len(), 1);
    let withheld = audited(&app, "answer_withheld").await;
    assert_eq!(withheld.len(), 1);
    assert!(
        withheld[0].starts_with("1 member of the channel") && withheld[0].contains("shared with another organisation"),
        "only the partner is kept out: {withheld:?}"
    );
    let pages = app.slack.requests("/api/conversations.members").await.len();
    assert!(pages >= 2, "the members were read page by page ({pages} calls)");
}

#[actix_rt::test]
async fn a_member_who_joins_between_two_answers_counts_for_the_next_one() {
    let (app, _config) = governed_app().await;
    let (channel, root) = (new_channel(), new_ts());
    app.slack.set_channel(&channel, &[ALICE, CAROL], false);
    app.post_event(&app_mention("EvG4", &channel, &root, "revenue by region last month"))
        .await;
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(button_value(&posts[0], "show_sql").is_some(), "posted in the channel");

    // Bob joins; Slack says so.
    app.slack.join_channel(&channel, BOB);
    let response = app.post_event(&member_joined(&channel, BOB)).await;
    assert_eq!(response.status().as_u16(), 200);
    app.post_event(&thread_reply("EvG5", &channel, &root, &new_ts(), "only EMEA"))
        .await;

    let posts = app.slack.wait_for_posts(&channel, &root, 2).await;
    assert!(
        post_text(&posts[1]).contains("I sent it to you directly"),
        "{}",
        post_text(&posts[1])
    );
    assert_eq!(direct_messages(&app, ALICE).await.len(), 1);
}

#[actix_rt::test]
async fn a_click_runs_with_the_rights_of_whoever_clicked() {
    let (app, _config) = governed_app().await;
    let (channel, root) = (new_channel(), new_ts());
    app.slack.set_channel(&channel, &[ALICE, CAROL], false);
    app.post_event(&app_mention("EvG6", &channel, &root, "revenue by region last month"))
        .await;
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    let version = button_value(&posts[0], "export_csv").unwrap();
    app.slack.join_channel(&channel, BOB);
    app.post_event(&member_joined(&channel, BOB)).await;

    // Bob, who may not read order totals, clicks Export CSV on Alice's answer.
    app.click(&as_user(button_click(&channel, "export_csv", &version), BOB))
        .await;

    let posts = app.slack.wait_for_posts(&channel, &root, 2).await;
    app.wait_until_idle().await;
    let refusal = post_text(&posts[1]);
    assert!(refusal.contains("orders.total"), "{refusal}");
    assert!(app.slack.uploads().await.is_empty(), "no file was made for Bob");
    let refused = audited(&app, "permission_refused").await;
    assert!(refused[0].contains("sales"), "{refused:?}");

    // Alice, who may, gets the export; Bob is in the channel, so it comes to her directly.
    app.click(&button_click(&channel, "export_csv", &version)).await;
    let posts = app.slack.wait_for_posts(&channel, &root, 3).await;
    assert!(post_text(&posts[2]).contains("I sent it to you directly"));
    app.wait_until_idle().await;
    let uploads = app.slack.completed_uploads().await;
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert_eq!(uploads[0].get("channel_id"), Some(&direct_channel(ALICE)));
    assert_eq!(uploads[0].get("thread_ts"), None, "a file in a DM, not in the thread");
}

#[actix_rt::test]
async fn why_this_result_shows_the_asker_roles_policies_audience_and_the_sql_hash() {
    let (app, _config) = governed_app().await;
    let (channel, root) = (new_channel(), new_ts());
    app.slack.set_channel(&channel, &[ALICE, CAROL], false);
    app.post_event(&app_mention("EvG7", &channel, &root, "revenue by region last month"))
        .await;
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    let version = button_value(&posts[0], "why_this_result").expect("the answer has a Why this result? button");

    app.click(&button_click(&channel, "why_this_result", &version)).await;

    app.wait_until_idle().await;
    let ephemerals = app.slack.ephemerals().await;
    let shown = ephemerals
        .iter()
        .find(|e| post_text(e).contains("Why this result?"))
        .unwrap_or_else(|| panic!("no Why this result? for the asker: {ephemerals:#?}"));
    assert_eq!(shown["user"], ALICE);
    let text = post_text(shown);
    assert!(text.contains("Your roles: analysts"), "{text}");
    assert!(text.contains("Audience: everyone in the channel may see it"), "{text}");
    let hash = text
        .split('`')
        .find(|part| part.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no SQL hash: {text}"));
    let applied = audited(&app, "policy_applied").await;
    assert!(
        applied[0].ends_with(hash),
        "the audit row carries the same hash: {applied:?}"
    );
    assert_eq!(
        app.slack.wait_for_posts(&channel, &root, 1).await.len(),
        1,
        "nothing else in the thread"
    );
}

#[actix_rt::test]
async fn someone_added_to_a_user_group_is_granted_its_role_once_slack_says_so() {
    let (app, _config) = governed_app().await;
    let dana = "U0DANA001";
    let (channel, root) = (new_channel(), new_ts());
    app.slack.set_channel(&channel, &[dana], false);
    let mut mention = app_mention("EvG8", &channel, &root, "orders by region last month");
    mention["event"]["user"] = json!(dana);
    app.post_event(&mention).await;
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(
        post_text(&posts[0]).contains("no threadql role"),
        "{}",
        post_text(&posts[0])
    );

    // Dana joins @finance; Slack sends subteam_members_changed.
    app.slack.set_group("finance", &[CAROL, dana]);
    let mut changed = threadql_testkit::fixture("events/SubteamMembersChangedPayload.json");
    changed["team_id"] = json!(TEAM);
    changed["event_id"] = json!("EvG9");
    changed["event"]["added_users"] = json!([dana]);
    assert_eq!(app.post_event(&changed).await.status().as_u16(), 200);
    let root = new_ts();
    let mut mention = app_mention("EvG10", &channel, &root, "orders by region last month");
    mention["event"]["user"] = json!(dana);
    app.post_event(&mention).await;

    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(
        button_value(&posts[0], "show_sql").is_some(),
        "answered: {}",
        post_text(&posts[0])
    );
}

#[actix_rt::test]
async fn a_role_edited_in_threadql_toml_applies_without_a_restart() {
    let (app, config) = governed_app().await;
    let channel = new_channel();
    app.slack.set_channel(&channel, &[BOB], false);
    let ask_as_bob = |n: usize| {
        let root = new_ts();
        let mut mention = app_mention(&format!("EvR{n}"), &channel, &root, "revenue by region last month");
        mention["event"]["user"] = json!(BOB);
        (root, mention)
    };
    let (root, mention) = ask_as_bob(0);
    app.post_event(&mention).await;
    // Revenue is built on orders.total: the rules interpreter does not offer it to sales.
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    let refused = post_text(&posts[0]);
    assert!(
        refused.contains("didn't understand \"revenue\"") && !refused.contains("Metrics: revenue"),
        "{refused}"
    );

    // The data team lets sales read order totals.
    let widened = threadql_toml().replace("deny_columns = [\"orders.total\"]", "");
    std::fs::write(config.path().join("threadql.toml"), widened).unwrap();

    // The file is polled every two seconds: ask until the new role answers (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for n in 1.. {
        let (root, mention) = ask_as_bob(n);
        app.post_event(&mention).await;
        let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
        if button_value(&posts[0], "show_sql").is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the edited role never applied");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
