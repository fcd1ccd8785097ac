//! The store's integration tests: one conformance suite, run on SQLite always and on PostgreSQL
//! when `GRAPHWARDEN_TEST_DATABASE_URL` is set, plus what only SQLite has (files, locks).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod sqlite_file;

/// Run each named conformance test against both backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store = graphwarden_testkit::TestStore::sqlite();
                    crate::conformance::$name(&store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(store) = graphwarden_testkit::TestStore::postgres().await else {
                        return;
                    };
                    crate::conformance::$name(&store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    init_refuses_a_second_time,
    apps_round_trip,
    app_with_tokens_cannot_be_removed,
    tokens_round_trip_with_every_field,
    the_same_token_twice_is_refused_with_its_alias,
    taken_alias_unknown_app_and_unknown_parent_are_refused,
    bad_input_changes_nothing,
    list_filters,
    removing_a_parent_keeps_the_child,
    reveal_records_an_event_first,
    event_log_is_append_only,
    plaintext_never_reaches_the_database,
    wrong_master_key_is_refused_and_writes_nothing,
    swapped_ciphertext_does_not_decrypt,
    rotation_interrupted_and_rerun_keeps_every_secret,
    rotation_while_writers_keep_working,
    master_key_rotation_rewraps_the_keyring,
    secret_holding_types_redact_their_debug,
    inspections_update_the_token_and_log_each_change,
    keyset_pages_walk_every_token_once_in_order,
    api_keys_are_shown_once_hashed_and_revocable,
    jobs_keep_their_next_run_and_one_claimant,
    alert_state_outbox_and_silences_round_trip,
    call_records_and_rollups_round_trip_and_prune,
    pacing_state_is_shared_between_instances,
    event_chain_holds_under_concurrent_writers,
    event_chain_names_edits_deletions_and_truncation,
    event_chain_catches_a_cut_tail_a_forged_row_and_a_forged_head,
    a_secret_is_found_in_the_log_by_fingerprint_only,
    audits_are_stored_compared_in_order_and_pruned,
    users_round_trip_with_hashed_passwords,
);
