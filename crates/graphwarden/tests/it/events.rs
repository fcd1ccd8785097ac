//! `graphwarden events`: the log's hash chain checked from the command line, tampering found and
//! named, and a token looked up by fingerprint without the log holding it.

use crate::support::{Gw, fake_token};

/// Edit the database behind graphwarden's back, triggers dropped first.
pub fn tamper(gw: &Gw, statements: &[&str]) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", gw.db_path().display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for s in [
            "DROP TRIGGER events_no_update",
            "DROP TRIGGER events_no_delete",
        ]
        .iter()
        .chain(statements)
        {
            sqlx::query(s).execute(&mut conn).await.unwrap();
        }
    });
}

#[test]
fn verify_passes_then_names_the_edited_and_the_deleted_event() {
    let gw = Gw::with_app();
    let kept = fake_token();
    gw.add_token("kept", &kept, &[]).ok();
    gw.add_token("other", &fake_token(), &[]).ok();
    gw.run(&["token", "remove", "other", "--yes"]).ok();

    let out = gw.run(&["events", "verify"]).ok();
    assert!(
        out.stdout
            .contains("The event log is intact: 4 event(s) chained."),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Head: event #4, hash "));
    let report: serde_json::Value =
        serde_json::from_str(&gw.run(&["events", "verify", "--json"]).ok().stdout).unwrap();
    assert_eq!(report["events"], 4);
    assert_eq!(report["problems"], serde_json::json!([]));

    let list = gw.run(&["events", "list", "--json"]).ok().stdout;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["action"], "token.removed", "newest first");

    // Someone with the database but not the key rewrites who added `kept`, and removes the
    // trace of `other` being removed.
    tamper(
        &gw,
        &[
            "UPDATE events SET actor = 'nobody' WHERE action = 'token.added' AND token_alias = 'kept'",
            "DELETE FROM events WHERE action = 'token.removed'",
        ],
    );
    let out = gw.run(&["events", "verify"]);
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert!(out.stdout.contains("TAMPERED"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("event #2 was changed after it was written"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("events at the end were deleted"),
        "{}",
        out.stdout
    );
    let report: serde_json::Value =
        serde_json::from_str(&gw.run(&["events", "verify", "--json"]).stdout).unwrap();
    assert_eq!(report["problems"][0]["problem"], "edited");
    assert_eq!(report["problems"][0]["event_id"], 2);
}

#[test]
fn find_answers_whether_a_token_was_ever_stored_by_fingerprint() {
    let gw = Gw::with_app();
    let kept = fake_token();
    let gone = fake_token();
    gw.add_token("kept", &kept, &[]).ok();
    gw.add_token("gone", &gone, &[]).ok();
    gw.run(&["token", "remove", "gone", "--yes"]).ok();

    let out = gw.run_with_stdin(&["events", "find", "--token", "-"], &kept);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(
        out.stdout.contains("stored here as `kept`"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("token.added"));

    let out = gw.run_with_stdin(
        &["events", "find", "--token", "-", "--json"],
        &format!("{gone}\n"),
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    let found: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(found["known"], true);
    assert_eq!(found["stored_as"], serde_json::Value::Null);
    assert_eq!(found["events"][0]["token"], "gone");

    let out = gw.run_with_stdin(&["events", "find", "--token", "-"], &fake_token());
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert!(out.stdout.contains("never stored here"));

    // Neither the answers nor the database hold either token.
    for text in [out.transcript(), gw.logical_dump()] {
        assert!(!text.contains(&kept) && !text.contains(&gone));
    }
}
