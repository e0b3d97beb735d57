//! The Longhouse end-to-end suite (custom harness, libtest-mimic).
//!
//! `cargo test -p longhouse-e2e` runs every case against the target named by
//! `LONGHOUSE_TARGET` (default `native-memory`). Cases that use a shared
//! deployment get one per distinct `TargetOptions`, started on first use and
//! stopped when the run ends; cases that stop or restart servers start their
//! own. Server logs go to `target/e2e-logs/`.
//!
//! Test names are `<protocol area>::<what is checked>`; see each module for
//! the PROTOCOL.md section it covers.

mod api;
mod broadcast;
mod closes;
mod config;
mod connect;
mod edge;
mod errors;
mod events;
mod faults;
mod hostile;
mod http;
mod info;
mod keepalive;
mod leases;
mod ops;
mod reasons;
mod resume;
mod shutdown;
mod state;
mod support;
mod trust;
mod webhooks;
mod welcome;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use longhouse_e2e::{Capability, Ctx, Suite, TargetOptions};

type CaseFn = for<'a> fn(&'a Ctx) -> Pin<Box<dyn Future<Output = Result<()>> + 'a>>;

/// Which deployment a case runs on.
// `TargetOptions` is a few hundred bytes, and `Uses` is `Copy`, made once
// a case: boxing the variant would lose `Copy` and save nothing that counts.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy)]
enum Uses {
    /// The deployment shared by all cases with these options.
    Shared(TargetOptions),
    /// None: the case starts (and stops) what it needs.
    Own,
}

struct Case {
    name: String,
    uses: Uses,
    needs: &'static [Capability],
    run: CaseFn,
}

/// `case!(module::function, uses)` or `case!(module::function, uses, [caps])`.
macro_rules! case {
    ($f:path, $uses:expr) => {
        case!($f, $uses, [])
    };
    ($f:path, $uses:expr, [$($cap:expr),*]) => {{
        fn run(cx: &Ctx) -> Pin<Box<dyn Future<Output = Result<()>> + '_>> {
            Box::pin($f(cx))
        }
        Case {
            name: stringify!($f).replace(' ', ""),
            uses: $uses,
            needs: &[$($cap),*],
            run,
        }
    }};
}

/// No case may take longer than this, whatever the server does.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Cases mostly wait on the network, so run more of them at once than there
/// are cores (`--test-threads` overrides).
const DEFAULT_THREADS: usize = 8;

fn cases() -> Vec<Case> {
    use Capability::*;
    const DEFAULT: Uses = Uses::Shared(TargetOptions::DEFAULT);
    const SHORT: Uses = Uses::Shared(TargetOptions::SHORT_LEASE);
    vec![
        // 1. Connecting
        case!(connect::encoded_slash_and_slash_are_the_same_space, DEFAULT),
        case!(connect::plus_in_path_stays_plus, DEFAULT),
        case!(connect::path_is_percent_decoded_exactly_once, DEFAULT),
        case!(connect::malformed_percent_in_path_is_invalid, DEFAULT),
        case!(connect::path_decoding_to_invalid_utf8_is_invalid, DEFAULT),
        case!(
            connect::query_plus_is_a_space_and_percent_2b_is_plus,
            DEFAULT
        ),
        case!(connect::query_first_repeated_parameter_wins, DEFAULT),
        case!(connect::query_unknown_parameters_are_ignored, DEFAULT),
        case!(connect::query_empty_value_is_the_same_as_absent, DEFAULT),
        case!(connect::identity_characters_round_trip_exactly, DEFAULT),
        case!(connect::space_characters_are_kept_exactly, DEFAULT),
        case!(connect::space_of_128_characters_ok_129_invalid, DEFAULT),
        case!(connect::identity_of_256_characters_ok_257_invalid, DEFAULT),
        case!(connect::control_characters_are_invalid, DEFAULT),
        case!(
            connect::id_of_64_allowed_characters_ok_else_invalid,
            DEFAULT
        ),
        case!(
            connect::join_checks_run_space_then_identity_then_id,
            DEFAULT
        ),
        case!(connect::bad_join_stores_nothing_and_nobody_sees_it, DEFAULT),
        case!(http::plain_get_health_is_200_ok, DEFAULT),
        case!(http::websocket_upgrade_to_health_is_a_space, DEFAULT),
        case!(http::other_plain_get_is_404_or_426, DEFAULT),
        // Issue 7: the demo page and operating the native server
        case!(
            ops::demo_page_and_client_script_are_served,
            DEFAULT,
            [DemoPage]
        ),
        case!(ops::roster_as_json_lists_who_is_present, DEFAULT),
        case!(ops::roster_request_checks_the_space, DEFAULT),
        case!(
            ops::metrics_count_presence_messages_and_errors,
            Uses::Own,
            [NativeOps]
        ),
        case!(
            ops::log_format_json_writes_json_lines,
            Uses::Own,
            [NativeOps]
        ),
        case!(
            ops::json_logs_carry_the_connection_span_and_no_query,
            Uses::Own,
            [NativeOps]
        ),
        // 2. The welcome
        case!(welcome::first_message_is_the_roster_including_self, DEFAULT),
        case!(welcome::fresh_id_is_lowercase_uuid_v4, DEFAULT),
        case!(welcome::joined_at_is_rfc3339_utc_milliseconds, DEFAULT),
        case!(welcome::messages_have_the_spec_shape, DEFAULT),
        // 3. Events to others
        case!(
            events::remote_join_reaches_every_other_client_never_the_subject,
            DEFAULT
        ),
        case!(events::remote_leave_reaches_every_other_client, DEFAULT),
        case!(events::fifty_concurrent_joins_and_leaves_converge, DEFAULT),
        case!(events::spaces_are_independent, DEFAULT),
        // 4. Leases
        case!(
            leases::ping_every_third_of_ttl_keeps_lease_past_two_ttls,
            SHORT
        ),
        case!(leases::ping_with_extra_fields_renews, SHORT),
        case!(
            leases::expiry_sends_expired_then_close_4000_and_leave,
            SHORT
        ),
        case!(leases::expiry_leave_within_one_second_of_lease_end, SHORT),
        case!(leases::expiry_counts_from_last_ping, SHORT),
        case!(leases::lost_after_a_ping_expires_from_the_ping, SHORT),
        case!(leases::non_ping_messages_do_not_renew, SHORT),
        case!(leases::pinging_client_outlives_others_talking, SHORT),
        case!(leases::clean_close_leaves_at_once, DEFAULT),
        case!(leases::lost_connection_keeps_lease_until_expiry, SHORT),
        case!(leases::server_close_1009_ends_lease_at_once, DEFAULT),
        // 5. Resuming
        case!(
            resume::within_lease_same_identity_gets_same_id_and_joined_at_silently,
            DEFAULT
        ),
        case!(resume::resume_renews_the_lease, SHORT),
        case!(resume::after_lost_connection_is_silent, DEFAULT),
        case!(
            resume::after_expiry_is_an_ordinary_join_keeping_the_id,
            SHORT
        ),
        case!(
            resume::unknown_id_is_an_ordinary_join_keeping_the_id,
            DEFAULT
        ),
        case!(
            resume::live_id_of_another_identity_is_invalid_id_1008,
            DEFAULT
        ),
        case!(resume::after_clean_close_the_id_is_free, DEFAULT),
        // 6. Errors (one per row)
        case!(errors::no_space_is_space_id_required_1008, DEFAULT),
        case!(errors::no_identity_is_no_identity_parameter_1008, DEFAULT),
        case!(errors::out_of_limits_is_invalid_1008, DEFAULT),
        case!(errors::non_utf8_text_frame_closes_1007, DEFAULT),
        case!(errors::not_json_is_unparsable_and_stays_open, DEFAULT),
        case!(
            errors::json_without_known_action_is_unrecognized_and_stays_open,
            DEFAULT
        ),
        case!(
            errors::binary_frame_is_not_supported_and_stays_open,
            DEFAULT
        ),
        case!(errors::message_over_max_bytes_is_too_large_1009, DEFAULT),
        case!(
            errors::fragmented_message_over_max_bytes_is_too_large_1009,
            DEFAULT
        ),
        case!(errors::message_of_exactly_max_bytes_is_accepted, DEFAULT),
        case!(errors::fragmented_message_is_reassembled, DEFAULT),
        case!(
            errors::max_message_bytes_setting_is_honoured,
            Uses::Shared(TargetOptions::DEFAULT.with_max_message_bytes(1024))
        ),
        case!(
            errors::id_held_by_another_identity_is_invalid_id_1008,
            DEFAULT
        ),
        // Closes finish: close frame to end of connection (RFC 6455 7.1.1)
        case!(closes::refused_join_ends_the_connection_at_once, DEFAULT),
        case!(
            closes::id_held_by_another_ends_the_connection_at_once,
            DEFAULT
        ),
        case!(
            closes::message_too_large_ends_the_connection_at_once,
            DEFAULT
        ),
        case!(closes::client_close_ends_the_connection_at_once, DEFAULT),
        case!(closes::replaced_connection_ends, DEFAULT),
        case!(closes::expired_connection_ends, SHORT),
        // 7. Keepalive and shutdown
        case!(
            keepalive::server_sends_ping_every_keepalive_ms,
            Uses::Shared(TargetOptions::DEFAULT.with_keepalive_ms(200)),
            [Keepalive]
        ),
        case!(
            keepalive::keepalive_ms_0_sends_no_ping,
            Uses::Shared(TargetOptions::DEFAULT.with_keepalive_ms(0))
        ),
        case!(
            shutdown::sigterm_closes_sockets_1012_and_exits_0,
            Uses::Own,
            [Signals]
        ),
        case!(
            shutdown::sigint_closes_sockets_1012_and_exits_0,
            Uses::Own,
            [Signals]
        ),
        case!(
            shutdown::memory_store_clients_come_back_with_their_ids_as_joins,
            Uses::Own,
            [Signals, MemoryStore]
        ),
        // The edge target (issue 4)
        case!(edge::exact_pings_do_not_wake_the_object, DEFAULT, [Edge]),
        case!(
            edge::space_keeps_working_after_the_object_hibernates,
            Uses::Shared(TargetOptions::DEFAULT.with_ttl_ms(15_000)),
            [Edge]
        ),
        case!(
            edge::presence_survives_a_restart_of_wrangler_dev,
            Uses::Own,
            [Edge]
        ),
        case!(
            edge::webhook_events_made_before_a_restart_are_delivered_after_it,
            Uses::Own,
            [Edge, Webhooks]
        ),
        case!(
            edge::held_update_is_sent_by_an_alarm_when_due_and_only_then,
            Uses::Own,
            [Edge]
        ),
        case!(
            edge::runtime_keeps_a_hibernatable_socket_closed_from_an_alarm_open,
            Uses::Own,
            [Edge]
        ),
        // Faults of a Redis-backed deployment (issue 3)
        case!(
            faults::redis_restarted_empty_under_connected_clients,
            Uses::Own,
            [Redis]
        ),
        case!(
            faults::sigkill_instance_leaves_reach_the_other_within_ttl,
            Uses::Own,
            [DurableStore, ManyInstances, Signals]
        ),
        case!(
            faults::sigterm_instance_clients_resume_on_the_other,
            Uses::Own,
            [DurableStore, ManyInstances, Signals]
        ),
        case!(
            faults::subscription_killed_while_events_flow,
            Uses::Own,
            [Redis]
        ),
        case!(faults::join_is_one_evalsha, Uses::Own, [Redis]),
        // Issue 10: data lost under connected instances, skewed clocks, a
        // flooded subscription
        case!(
            faults::history::flushall_under_connected_clients,
            Uses::Own,
            [Redis]
        ),
        case!(
            faults::clock::skewed_instance_expires_by_the_stores_clock,
            Uses::Own,
            [Redis, ManyInstances]
        ),
        case!(
            faults::flood::subscription_flood_resyncs_and_loses_nothing,
            Uses::Own,
            [Redis]
        ),
        // Issue 5: trust and abuse
        case!(trust::token_sub_is_the_identity, Uses::Shared(trust::AUTH)),
        case!(
            trust::refused_tokens_are_unauthorized_1008_and_never_logged,
            Uses::Shared(trust::AUTH)
        ),
        case!(
            trust::previous_secret_and_30s_skew,
            Uses::Shared(trust::AUTH)
        ),
        case!(
            trust::spaces_claim_admits_exact_names_and_prefixes,
            Uses::Shared(trust::AUTH)
        ),
        case!(
            trust::resume_only_by_the_token_subject,
            Uses::Shared(trust::AUTH)
        ),
        case!(
            trust::full_space_is_1013_and_nobody_inside_is_disturbed,
            Uses::Shared(trust::FULL)
        ),
        case!(
            trust::message_flood_is_rate_limited_1008,
            Uses::Shared(trust::RATE)
        ),
        case!(
            trust::unlisted_origin_is_403_before_upgrade,
            Uses::Shared(trust::ORIGINS)
        ),
        case!(
            trust::max_connections_beyond_is_503,
            Uses::Shared(trust::MAX_CONNECTIONS),
            [NativeLimits]
        ),
        case!(
            trust::handshake_not_completed_is_dropped,
            Uses::Shared(trust::HANDSHAKE),
            [NativeLimits]
        ),
        case!(
            trust::client_that_stops_reading_is_dropped_as_lost,
            Uses::Shared(trust::SMALL_QUEUE),
            [NativeLimits]
        ),
        case!(
            hostile::server_survives_hostile_clients_and_observer_loses_nothing,
            Uses::Own,
            [NativeLimits]
        ),
        // 14. The server API
        case!(
            api::without_admin_token_post_and_delete_are_404,
            DEFAULT,
            [ServerApi]
        ),
        case!(
            api::every_status_code_with_an_admin_token,
            Uses::Shared(api::ADMIN),
            [ServerApi, ServerKick]
        ),
        case!(
            api::server_broadcast_reaches_every_client_from_null,
            Uses::Shared(api::ADMIN),
            [ServerApi]
        ),
        case!(
            api::kick_by_id_closes_4003_others_see_removed_and_it_can_rejoin,
            Uses::Shared(api::ADMIN),
            [ServerApi, ServerKick]
        ),
        case!(
            api::kick_by_identity_removes_every_tab,
            Uses::Shared(api::ADMIN),
            [ServerApi, ServerKick]
        ),
        case!(
            api::kick_reaches_sockets_on_every_instance,
            Uses::Shared(api::ADMIN),
            [ServerKick, ManyInstances]
        ),
        case!(
            api::kick_with_the_store_down_is_503,
            Uses::Own,
            [ServerKick, Redis]
        ),
        case!(
            api::roster_with_the_admin_token_needs_no_join_token,
            Uses::Shared(api::ADMIN_AND_AUTH),
            [ServerApi]
        ),
        // 14. Webhooks
        case!(
            webhooks::each_event_type_signed_and_shaped,
            Uses::Own,
            [Webhooks]
        ),
        case!(
            webhooks::none_for_a_second_tab_a_resume_or_a_replacement,
            Uses::Own,
            [Webhooks]
        ),
        case!(
            webhooks::expiry_is_member_left_with_reason_expired,
            Uses::Own,
            [Webhooks]
        ),
        case!(
            webhooks::failing_receiver_gets_the_same_ids_again_with_backoff,
            Uses::Own,
            [Webhooks]
        ),
        case!(
            webhooks::no_answer_in_ten_seconds_is_retried,
            Uses::Own,
            [Webhooks]
        ),
        case!(
            webhooks::order_within_a_space_is_kept,
            Uses::Own,
            [Webhooks]
        ),
        case!(
            webhooks::receiver_down_then_back_gets_every_event,
            Uses::Own,
            [Webhooks]
        ),
        case!(
            webhooks::first_attempt_within_one_second,
            Uses::Own,
            [Webhooks]
        ),
        case!(
            webhooks::sigterm_delivers_pending_events_before_exit,
            Uses::Own,
            [Webhooks, Signals, MemoryStore]
        ),
        case!(
            webhooks::maker_killed_while_receiver_down_other_instance_delivers,
            Uses::Own,
            [Webhooks, Redis, ManyInstances, Signals]
        ),
        case!(
            webhooks::kick_is_member_left_with_reason_removed,
            Uses::Own,
            [Webhooks, ServerKick]
        ),
        // 10. Presence state (v2)
        case!(
            state::join_state_is_in_the_welcome_and_the_remote_join,
            DEFAULT,
            [PresenceState]
        ),
        case!(
            state::bad_join_state_is_invalid_state_1008,
            DEFAULT,
            [PresenceState]
        ),
        case!(
            state::update_reaches_everyone_else_never_the_sender,
            DEFAULT,
            [PresenceState]
        ),
        case!(
            state::an_update_equal_to_the_current_state_is_still_sent,
            DEFAULT,
            [PresenceState]
        ),
        case!(
            state::bad_update_is_refused_and_changes_nothing,
            DEFAULT,
            [PresenceState]
        ),
        case!(
            state::burst_of_100_updates_is_coalesced_to_the_last,
            DEFAULT,
            [PresenceState]
        ),
        case!(
            state::sixty_updates_a_second_are_not_disconnected,
            DEFAULT,
            [PresenceState]
        ),
        case!(
            state::leave_carries_the_latest_state_and_nothing_follows,
            DEFAULT,
            [PresenceState]
        ),
        case!(state::update_renews_the_lease, SHORT, [PresenceState]),
        case!(
            state::interval_zero_sends_every_update,
            Uses::Shared(state::NO_COALESCING),
            [PresenceState]
        ),
        case!(
            state::max_state_bytes_setting_is_honoured,
            Uses::Shared(state::SMALL_STATES),
            [PresenceState]
        ),
        case!(
            state::held_update_is_sent_once_the_interval_has_passed,
            Uses::Shared(state::LONG_INTERVAL),
            [PresenceState]
        ),
        case!(
            state::resume_keeps_state_and_state_on_resume_is_one_update,
            DEFAULT,
            [PresenceState]
        ),
        case!(
            state::states_converge_on_every_instance,
            DEFAULT,
            [PresenceState]
        ),
        case!(
            state::sigterm_instance_clients_resume_with_their_state,
            Uses::Own,
            [PresenceState, DurableStore, ManyInstances, Signals]
        ),
        // 11. Signed info and the 2015 username (v2)
        case!(
            info::token_info_is_in_client_objects,
            Uses::Shared(trust::AUTH),
            [PresenceState]
        ),
        case!(
            info::bad_token_info_is_unauthorized_1008,
            Uses::Shared(trust::AUTH),
            [PresenceState]
        ),
        case!(
            info::resume_with_other_info_is_one_update,
            Uses::Shared(trust::AUTH),
            [PresenceState]
        ),
        case!(
            info::username_is_echoed_and_checked,
            DEFAULT,
            [PresenceState]
        ),
        // 12. Why someone left (v2)
        case!(reasons::clean_close_is_left, DEFAULT, [PresenceState]),
        case!(reasons::violation_close_is_left, DEFAULT, [PresenceState]),
        case!(reasons::expiry_is_expired, SHORT, [PresenceState]),
        case!(
            reasons::rate_limit_close_is_left,
            Uses::Shared(trust::RATE),
            [PresenceState]
        ),
        case!(
            broadcast::broadcasts_count_towards_the_message_rate,
            Uses::Shared(trust::RATE),
            [PresenceState]
        ),
        case!(
            state::updates_count_towards_the_message_rate,
            Uses::Shared(trust::RATE),
            [PresenceState]
        ),
        // 13. Broadcast and the cursor (v2)
        case!(
            broadcast::broadcasts_reach_everyone_else_in_order_never_the_sender,
            DEFAULT,
            [PresenceState]
        ),
        case!(
            broadcast::broadcast_without_data_is_invalid_and_nothing_is_stored,
            DEFAULT,
            [PresenceState]
        ),
        case!(
            broadcast::cursor_is_relayed_with_the_senders_client_id,
            DEFAULT,
            [PresenceState]
        ),
        case!(
            broadcast::broadcast_and_cursor_renew_the_lease,
            SHORT,
            [PresenceState]
        ),
        case!(
            broadcast::broadcasts_keep_order_across_instances_and_joins,
            DEFAULT,
            [PresenceState]
        ),
        // 9. Configuration
        case!(
            config::unparsable_value_stops_server_naming_the_variable,
            Uses::Own,
            [StartupConfig]
        ),
        case!(
            config::worker_with_an_unusable_var_refuses_to_serve_naming_it,
            Uses::Own,
            [Edge]
        ),
    ]
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(DEFAULT_THREADS);
    }
    let suite = Suite::from_env()
        .map(Arc::new)
        .map_err(|e| format!("{e:#}"));
    let trials = cases()
        .into_iter()
        .map(|case| {
            let suite = suite.clone();
            Trial::ignorable_test(case.name.clone(), move || match suite {
                Ok(suite) => run_case(&suite, case),
                Err(e) => Err(Failed::from(e)),
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Ok(suite) = &suite {
        suite.stop_all();
    }
    conclusion.exit_code()
}

fn run_case(suite: &Suite, case: Case) -> Result<Completion, Failed> {
    let target = suite.target().clone();
    let missing: Vec<String> = case
        .needs
        .iter()
        .filter(|c| !target.has(**c))
        .map(|c| format!("{c:?}"))
        .collect();
    if !missing.is_empty() {
        return Ok(Completion::ignored_with(format!(
            "target {} lacks {}",
            target.name(),
            missing.join(", ")
        )));
    }
    let deployment = match case.uses {
        Uses::Shared(options) => Some(suite.shared(options).map_err(|e| format!("{e:#}"))?),
        Uses::Own => None,
    };
    let cx = Ctx::new(&case.name, target, deployment);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    // The timer must be created inside the runtime.
    let outcome =
        runtime.block_on(async { tokio::time::timeout(CASE_TIMEOUT, (case.run)(&cx)).await });
    let result = match outcome {
        Ok(Ok(())) => Ok(Completion::Completed),
        Ok(Err(e)) => Err(format!("{e:#}\n[{}]", cx.describe()).into()),
        Err(_) => Err(format!("case timed out after {CASE_TIMEOUT:?}\n[{}]", cx.describe()).into()),
    };
    drop(cx);
    drop(runtime);
    result
}
