//! The Graph proxy over real sockets, in front of the simulator: token pass-through with the
//! proof added, injection by alias for callers that hold no token, batches read item by item,
//! pacing on the usage headers so Meta's limits are never reached, error 190 starting an
//! inspection, every call recorded (none lost at shutdown), `/metrics`, and bad input.

use std::time::Duration;

use graphwarden_core::TokenStatus;
use graphwarden_core::call::ChangeType;
use graphwarden_sim::world::ids;
use graphwarden_store::TokenFilter;
use serde_json::{Value, json};

use crate::support::{Daemon, spawn};

fn account() -> String {
    format!("act_{}", ids::AD_ACCOUNT.trim_start_matches("act_"))
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

fn token(d: &Daemon, label: &str) -> String {
    d.sim.simulator().token(label).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_own_token_passes_with_the_proof_added_and_the_call_is_recorded() {
    let d = spawn(Default::default()).await;
    let p = d.proxy(|_| {}).await;
    let ana = token(&d, "ana-long-lived");

    let (status, headers, body) = get(
        &d.http,
        &format!("{}/v26.0/me?access_token={ana}&fields=id,name", p.url),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], ids::USER_ANA);
    assert!(
        headers.get("facebook-api-version").is_some(),
        "Graph's headers come back"
    );
    let seen = d.sim.simulator().calls();
    let last = seen.last().unwrap();
    assert!(
        last.params.iter().any(|p| p == "appsecret_proof"),
        "the inventory holds this token, so its proof is added: {:?}",
        last.params
    );

    // A token the inventory does not hold passes as it is.
    let stranger = token(&d, "ana-short-lived");
    let (status, _, _) = get(
        &d.http,
        &format!("{}/v26.0/me?access_token={stranger}", p.url),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !d.sim
            .simulator()
            .calls()
            .last()
            .unwrap()
            .params
            .iter()
            .any(|p| p == "appsecret_proof")
    );

    // A budget change through a form body.
    let r = d
        .http
        .post(format!("{}/v26.0/700000000000001", p.url))
        .form(&[("access_token", ana.as_str()), ("daily_budget", "2500")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // The same as JSON (the Node SDK's way): the body goes on as it came, and its names
    // still say what the update changes.
    let r = d
        .http
        .post(format!(
            "{}/v26.0/700000000000001?access_token={ana}",
            p.url
        ))
        .json(&json!({"status": "PAUSED"}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.as_u16() < 500, "{status}: {text}");
    let sent = d.sim.simulator().calls();
    assert!(
        sent.last().unwrap().params.iter().any(|p| p == "status"),
        "the JSON body reached Graph: {:?}",
        sent.last().unwrap().params
    );

    p.stop().await;
    let calls = d.inventory.store().recent_calls(None, 10).await.unwrap();
    assert_eq!(
        calls.len(),
        4,
        "every call is recorded, none lost at shutdown"
    );
    // Newest first. Calls a millisecond apart may have been served by different workers, which
    // hand their records to the writer in chunks of their own, so within one millisecond the
    // order is not defined: each call is found by what it was.
    assert!(
        calls.windows(2).all(|w| w[0].at_ms >= w[1].at_ms),
        "{calls:#?}"
    );
    let find = |what: &str, f: &dyn Fn(&graphwarden_core::call::CallRecord) -> bool| {
        let found: Vec<_> = calls.iter().filter(|c| f(c)).collect();
        assert_eq!(found.len(), 1, "one {what} call: {calls:#?}");
        found[0]
    };
    find("status change", &|c| c.change == ChangeType::StatusChange);
    let budget = find("budget change", &|c| c.change == ChangeType::BudgetChange);
    assert_eq!(&*budget.path, "/{version}/{id}");
    assert_eq!(budget.object_id.as_deref(), Some("700000000000001"));
    assert_eq!(budget.token_alias.as_deref(), Some("ana"));
    let stranger_call = find("stranger's", &|c| c.token_alias.is_none());
    assert!(
        stranger_call.token_fingerprint.is_some(),
        "an unknown token has no alias, but a fingerprint"
    );
    let me = find("ana's read", &|c| {
        c.change == ChangeType::Read && c.token_alias.as_deref() == Some("ana")
    });
    assert_eq!(&*me.path, "/{version}/me");
    assert_eq!(me.http_status, 200);
    // No secret in any record.
    let dump = format!("{calls:?}");
    assert!(!dump.contains(&ana) && !dump.contains(&stranger));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_with_a_key_gets_a_stored_token_and_never_sees_it() {
    let d = spawn(Default::default()).await;
    let p = d.proxy(|_| {}).await;
    let ana = token(&d, "ana-long-lived");
    let consumer = d.key("consumer").to_owned();

    // The key in place of the token: an SDK can be pointed at the proxy unchanged. The consumer
    // key names one token (ana), so no header is needed.
    let url = format!(
        "{}/v26.0/{}/campaigns?limit=2&access_token={consumer}",
        p.url,
        account()
    );
    let (status, _, body) = get(&d.http, &url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let text = body.to_string();
    assert!(
        !text.contains(&ana),
        "the stored token never reaches the caller: {text}"
    );
    let next = body["paging"]["next"].as_str().unwrap();
    assert!(
        next.starts_with(&p.url),
        "links point back at the proxy: {next}"
    );
    assert!(
        next.contains(&consumer),
        "and carry the caller's key: {next}"
    );
    // Following the link works, through the proxy.
    let (status, _, page2) = get(&d.http, next).await;
    assert_eq!(status, 200, "{page2}");
    assert_eq!(page2["data"].as_array().unwrap().len(), 2);

    // Header form, with the alias named.
    let r = d
        .http
        .get(format!("{}/v26.0/me", p.url))
        .header("x-graphwarden-key", &consumer)
        .header("x-graphwarden-token", "ana")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["id"], ids::USER_ANA);

    // Refusals, Meta-shaped.
    let cases = [
        (vec![("x-graphwarden-token", "ana".to_owned())], 401, 190),
        (
            vec![
                ("x-graphwarden-key", "gwk_nope_0000".to_owned()),
                ("x-graphwarden-token", "ana".to_owned()),
            ],
            401,
            190,
        ),
        (
            vec![
                ("x-graphwarden-key", consumer.clone()),
                ("x-graphwarden-token", "bot".to_owned()),
            ],
            403,
            200,
        ),
        (
            vec![
                ("x-graphwarden-key", d.key("reader").to_owned()),
                ("x-graphwarden-token", "ana".to_owned()),
            ],
            403,
            200,
        ),
        (
            vec![
                ("x-graphwarden-key", d.key("admin").to_owned()),
                ("x-graphwarden-token", "nobody".to_owned()),
            ],
            400,
            100,
        ),
        (
            vec![("x-graphwarden-key", d.key("admin").to_owned())],
            400,
            100,
        ),
    ];
    let before = d.sim.simulator().calls().len();
    for (headers, status, code) in cases {
        let mut r = d.http.get(format!("{}/v26.0/me", p.url));
        for (k, v) in &headers {
            r = r.header(*k, v);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{headers:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 20);
    }
    assert_eq!(
        d.sim.simulator().calls().len(),
        before,
        "refused calls never reach Meta"
    );
    p.stop().await;
    let calls = d
        .inventory
        .store()
        .recent_calls(Some("ana"), 50)
        .await
        .unwrap();
    assert_eq!(calls.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timed_proof_goes_with_every_token_sent_in_the_query_or_the_form() {
    let d = spawn(Default::default()).await;
    let p = d.proxy(|c| c.timed_proof = true).await;
    let ana = token(&d, "ana-long-lived");
    let consumer = d.key("consumer").to_owned();
    let proofs = |d: &Daemon| {
        let last = d.sim.simulator().calls().last().cloned().unwrap();
        ["access_token", "appsecret_proof", "appsecret_time"]
            .iter()
            .all(|name| last.params.iter().any(|p| p == name))
    };
    // The caller's own token, and a stored one, in the query …
    let (status, _, body) = get(&d.http, &format!("{}/v26.0/me?access_token={ana}", p.url)).await;
    assert_eq!(status, 200, "{body}");
    assert!(proofs(&d), "the timed proof is added to a known token");
    let (status, _, body) = get(
        &d.http,
        &format!("{}/v26.0/me?fields=id&access_token={consumer}", p.url),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], ids::USER_ANA);
    assert!(proofs(&d), "and to an injected one");
    // … and in a form body, after the caller's own fields.
    let r = d
        .http
        .post(format!("{}/v26.0/700000000000001", p.url))
        .header("x-graphwarden-key", &consumer)
        .header("x-graphwarden-token", "ana")
        .form(&[("daily_budget", "2500")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(proofs(&d), "a form body carries the token and its proof");
    let last = d.sim.simulator().calls().last().cloned().unwrap();
    assert!(last.params.iter().any(|p| p == "daily_budget"));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_items_are_read_and_recorded_one_by_one() {
    let d = spawn(Default::default()).await;
    let p = d.proxy(|_| {}).await;
    let bot = token(&d, "bot-never-expires");
    let batch = json!([
        {"method": "GET", "relative_url": "me"},
        {"method": "GET", "relative_url": format!("{}/campaigns?limit=1", account())},
        {"method": "GET", "relative_url": "799999999999999"},
        {"method": "POST", "relative_url": "700000000000002", "body": "status=PAUSED"},
    ]);
    let r = d
        .http
        .post(format!("{}/v26.0/", p.url))
        .form(&[
            ("access_token", bot.as_str()),
            ("batch", &batch.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answers: Vec<Value> = r.json().await.unwrap();
    assert_eq!(answers.len(), 4);
    p.stop().await;
    let mut calls = d
        .inventory
        .store()
        .recent_calls(Some("bot"), 10)
        .await
        .unwrap();
    calls.sort_by_key(|c| c.batch_index);
    assert_eq!(calls.len(), 4, "{calls:#?}");
    assert_eq!(&*calls[0].path, "/me");
    assert_eq!(&*calls[1].path, "/act_{id}/campaigns");
    assert!(
        calls[1].usage_pct.is_some(),
        "each item's own usage headers are read"
    );
    assert_eq!(calls[2].error_code, Some(100), "an item's error is decoded");
    assert_eq!(
        calls[2].error_class.as_deref(),
        Some("permission_missing"),
        "Meta says the object does not exist or is hidden by missing permissions"
    );
    assert_eq!(calls[3].change, ChangeType::StatusChange);
    assert_eq!(calls[3].batch_index, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_paces_an_ad_account_and_holds_calls_before_meta_blocks_it() {
    let d = spawn(Default::default()).await;
    let p = d.proxy(|_| {}).await;
    let bot = token(&d, "bot-never-expires");
    // The default world's ad account has a 60-point score: each read costs one.
    let url = format!("{}/v26.0/{}?access_token={bot}", p.url, account());
    let mut refused = None;
    let mut forwarded = 0;
    for _ in 0..80 {
        let (status, headers, body) = get(&d.http, &url).await;
        if status == 200 {
            forwarded += 1;
            continue;
        }
        assert_eq!(status, 400, "{body}");
        refused = Some((headers, body));
        break;
    }
    let (headers, body) = refused.expect("the proxy refuses before the account's limit");
    assert_eq!(headers["x-graphwarden-paced"], "refused");
    assert!(headers.get("retry-after").is_some());
    assert_eq!(body["error"]["code"], 17, "{body}");
    assert_eq!(body["error"]["error_subcode"], 2446079);
    assert!((50..60).contains(&forwarded), "forwarded {forwarded}");
    assert!(
        p.proxy
            .pacing_snapshot()
            .iter()
            .any(|k| k.held_for.is_some()),
        "the pacer holds the account"
    );
    let meta_errors = d
        .sim
        .simulator()
        .calls()
        .iter()
        .filter(|c| c.error_code.is_some())
        .count();
    assert_eq!(meta_errors, 0, "Meta never had to throttle anyone");

    // Other keys keep flowing: the user's own calls are not held.
    let ana = token(&d, "ana-long-lived");
    let (status, _, _) = get(&d.http, &format!("{}/v26.0/me?access_token={ana}", p.url)).await;
    assert_eq!(status, 200);

    // /metrics shows the hold and the calls.
    let text = d
        .http
        .get(format!("{}/metrics", d.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("graphwarden_pacing_held_seconds{scope=\"ad_account\""),
        "{text}"
    );
    assert!(text.contains("graphwarden_proxy_calls_total{"), "{text}");
    assert!(text.contains("outcome=\"refused\""), "{text}");
    assert!(
        text.contains("graphwarden_meta_usage{scope=\"ad_account\""),
        "{text}"
    );
    assert!(
        text.contains("graphwarden_token_status{token=\"ana\""),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
    assert!(
        !text.contains(&bot) && !text.contains(&ana),
        "no secret in metrics"
    );
    p.stop().await;
    let refused: Vec<_> = d
        .inventory
        .store()
        .recent_calls(Some("bot"), 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.outcome == "refused")
        .collect();
    assert_eq!(refused.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_metas_throttle_error_calls_are_held_and_never_sent() {
    let d = spawn(Default::default()).await;
    let bot = token(&d, "bot-never-expires");
    // Exhaust the account's score directly, past the proxy.
    let direct = format!("{}/v26.0/{}?access_token={bot}", d.sim.url(), account());
    loop {
        let (status, _, _) = get(&d.http, &direct).await;
        if status != 200 {
            break;
        }
    }
    let p = d.proxy(|_| {}).await;
    let url = format!("{}/v26.0/{}?access_token={bot}", p.url, account());
    let (status, headers, body) = get(&d.http, &url).await;
    assert_eq!(status, 400);
    assert!(
        headers.get("x-graphwarden-paced").is_none(),
        "Meta's own answer, passed on: {body}"
    );
    assert_eq!(body["error"]["code"], 17);
    let sent = d.sim.simulator().calls().len();
    let (status, headers, body) = get(&d.http, &url).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(headers["x-graphwarden-paced"], "refused");
    assert_eq!(body["error"]["code"], 17);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 60, "the block's own length: {retry}");
    assert_eq!(
        d.sim.simulator().calls().len(),
        sent,
        "the held call never reached Meta"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_database_share_their_pacing() {
    let d = spawn(Default::default()).await;
    let bot = token(&d, "bot-never-expires");
    let direct = format!("{}/v26.0/{}?access_token={bot}", d.sim.url(), account());
    loop {
        let (status, _, _) = get(&d.http, &direct).await;
        if status != 200 {
            break;
        }
    }
    let sync = |c: &mut graphwarden_server::ProxyConfig| {
        c.pacing_sync = Duration::from_millis(50);
    };
    let a = d.proxy(sync).await;
    let b = d.proxy(sync).await;
    // Instance A meets Meta's block on the ad account…
    let (status, headers, body) = get(
        &d.http,
        &format!("{}/v26.0/{}?access_token={bot}", a.url, account()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        headers.get("x-graphwarden-paced").is_none(),
        "Meta's own: {body}"
    );
    assert_eq!(body["error"]["code"], 17);
    // …and instance B, which never saw it, holds that account's calls within a few syncs.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let sent = d.sim.simulator().calls().len();
    let (status, headers, body) = get(
        &d.http,
        &format!("{}/v26.0/{}?access_token={bot}", b.url, account()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(headers["x-graphwarden-paced"], "refused", "{body}");
    assert_eq!(body["error"]["code"], 17);
    assert_eq!(
        d.sim.simulator().calls().len(),
        sent,
        "B's call never reached Meta"
    );
    // Other keys still flow through B.
    let (status, _, body) = get(&d.http, &format!("{}/v26.0/me?access_token={bot}", b.url)).await;
    assert_eq!(status, 200, "{body}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_190_on_a_proxied_call_inspects_the_token_at_once() {
    let d = spawn(Default::default()).await;
    d.check().await;
    let p = d.proxy(|_| {}).await;
    d.control("/events/password_change", json!({"user_id": ids::USER_ANA}))
        .await;
    let r = d
        .http
        .get(format!("{}/v26.0/me", p.url))
        .header("x-graphwarden-key", d.key("consumer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 190);
    let alias = graphwarden_core::TokenAlias::parse("ana").unwrap();
    let mut status = TokenStatus::Valid;
    for _ in 0..100 {
        status = d.inventory.token(&alias).await.unwrap().status;
        if status == TokenStatus::PasswordChanged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, TokenStatus::PasswordChanged);
    p.stop().await;
    let call = &d
        .inventory
        .store()
        .recent_calls(Some("ana"), 1)
        .await
        .unwrap()[0];
    assert_eq!(call.error_code, Some(190));
    assert_eq!(call.error_subcode, Some(460));
    assert_eq!(call.error_class.as_deref(), Some("token_dead"));
    let _ = d.inventory.tokens(&TokenFilter::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_alerts_fire_from_the_call_records() {
    let d = spawn(Default::default()).await;
    let p = d.proxy(|_| {}).await;
    let ana = token(&d, "ana-long-lived");
    d.control("/events/password_change", json!({"user_id": ids::USER_ANA}))
        .await;
    for _ in 0..6 {
        let (status, _, _) = get(&d.http, &format!("{}/v26.0/me?access_token={ana}", p.url)).await;
        assert_eq!(status, 400);
    }
    p.stop().await;
    d.alerts.evaluate().await.unwrap();
    let firing = d.alerts.alerts().await.unwrap();
    let burst = firing
        .iter()
        .find(|v| v.alert.name() == "auth_error_burst")
        .unwrap_or_else(|| panic!("{firing:#?}"));
    assert_eq!(burst.alert.labels["token"], "ana");
    assert_eq!(burst.alert.labels["severity"], "critical");
    assert!(
        !firing.iter().any(|v| v.alert.name() == "error_rate_high"),
        "six calls are too few to judge a rate by"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_broken_upstreams_get_clear_answers_and_nothing_is_lost() {
    let d = spawn(Default::default()).await;
    let p = d
        .proxy(|c| {
            c.max_body = 4096;
            c.max_header_bytes = 8192;
            c.upstream_timeout = Duration::from_millis(700);
            c.retries = 1;
        })
        .await;
    let bot = token(&d, "bot-never-expires");
    let me = format!("{}/v26.0/me?access_token={bot}", p.url);

    // A head too large: 431, from the HTTP layer.
    let r = d
        .http
        .get(&me)
        .header("x-big", "a".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    // A form body too large: a Meta-shaped 413.
    let r = d
        .http
        .post(format!("{}/v26.0/me", p.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={bot}&x={}", "a".repeat(10_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 100);
    // So is a JSON body too large, and one that is not JSON goes on for Graph to answer.
    let r = d
        .http
        .post(format!("{}/v26.0/me?access_token={bot}", p.url))
        .header("content-type", "application/json")
        .body(format!("{{\"x\":\"{}\"}}", "a".repeat(10_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = d
        .http
        .post(format!("{}/v26.0/me?access_token={bot}", p.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(r.status().as_u16() < 500, "{}", r.status());
    // Not UTF-8.
    let r = d
        .http
        .post(format!("{}/v26.0/me", p.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A dropped connection once: a GET is retried and succeeds.
    d.control(
        "/faults",
        json!({"kind": "drop_connection", "route": "/me", "times": 1}),
    )
    .await;
    let (status, _, body) = get(&d.http, &me).await;
    assert_eq!(status, 200, "{body}");
    // Dropped every time: 502 with Meta's transient code.
    d.control(
        "/faults",
        json!({"kind": "drop_connection", "route": "/me", "times": 2}),
    )
    .await;
    let (status, _, body) = get(&d.http, &me).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], 2);
    assert_eq!(body["error"]["is_transient"], true);
    let text = body.to_string();
    assert!(!text.contains(&bot), "no token in the error: {text}");
    d.control("/faults", json!([])).await;
    // A stall: 504.
    d.control(
        "/faults",
        json!({"kind": "timeout", "route": "/me", "latency_ms": 3000, "times": 2}),
    )
    .await;
    let (status, _, body) = get(&d.http, &me).await;
    assert_eq!(status, 504, "{body}");
    d.control("/faults", json!([])).await;
    // Garbage from Graph is passed on as it came, and recorded.
    d.control(
        "/faults",
        json!({"kind": "malformed_body", "route": "/me", "times": 1}),
    )
    .await;
    let (status, _, body) = get(&d.http, &me).await;
    assert_eq!(status, 200);
    assert!(body.is_string());
    // A server error from Graph.
    d.control(
        "/faults",
        json!({"kind": "server_error", "route": "/me", "times": 1, "status": 500}),
    )
    .await;
    let (status, _, body) = get(&d.http, &me).await;
    assert_eq!(status, 500, "{body}");
    // Malformed usage headers never break a call: the simulator's are fine, so check the
    // proxy still serves everyone after all of the above.
    let (status, _, _) = get(&d.http, &me).await;
    assert_eq!(status, 200);

    p.stop().await;
    let calls = d.inventory.store().recent_calls(None, 100).await.unwrap();
    let outcomes: Vec<&str> = calls.iter().map(|c| c.outcome.as_ref()).collect();
    assert!(outcomes.contains(&"failed"), "{outcomes:?}");
    assert!(calls.iter().any(|c| c.http_status == 413));
    assert!(
        calls
            .iter()
            .any(|c| c.http_status == 500 && c.error_class.as_deref() == Some("transient"))
    );
    let dump = format!("{calls:?}");
    assert!(!dump.contains(&bot));
}

/// A worker hands its records over in chunks of 64, or every 0.1 s: a lone call's record reaches
/// the database soon, with the proxy still running (not only when it stops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_calls_record_reaches_the_database_while_the_proxy_runs() {
    let d = spawn(Default::default()).await;
    let p = d.proxy(|_| {}).await;
    let bot = token(&d, "bot-never-expires");
    let (status, _, _) = get(&d.http, &format!("{}/v26.0/me?access_token={bot}", p.url)).await;
    assert_eq!(status, 200);
    let mut found = Vec::new();
    for _ in 0..50 {
        found = d
            .inventory
            .store()
            .recent_calls(Some("bot"), 10)
            .await
            .unwrap();
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        found.len(),
        1,
        "recorded within 5 s, before the proxy stops"
    );
    assert_eq!(&*found[0].path, "/{version}/me");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_caller_leaves_before_the_answer_is_still_recorded() {
    let d = spawn(Default::default()).await;
    let p = d.proxy(|_| {}).await;
    let bot = token(&d, "bot-never-expires");
    d.control(
        "/faults",
        json!({"kind": "latency", "route": "/me", "latency_ms": 1000, "times": 1}),
    )
    .await;
    let r = d
        .http
        .get(format!("{}/v26.0/me?access_token={bot}", p.url))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(r.is_err(), "the caller gave up");
    // Graph got the call (Meta counts it even when nobody reads the answer): so does
    // graphwarden. (The simulator itself drops the call when the proxy hangs up.)
    p.stop().await;
    let calls = d
        .inventory
        .store()
        .recent_calls(Some("bot"), 10)
        .await
        .unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].outcome, "aborted");
    assert_eq!(&*calls[0].path, "/{version}/me");
}

/// A plain HTTP/1.1 upstream that counts the connections it accepts. `/big` streams a body
/// far larger than any socket buffer, slowly, until the reader goes away.
async fn counting_upstream() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request head per turn (these calls have no body).
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    if head.starts_with("GET /v26.0/big") {
                        let size = 512 * 1024 * 1024;
                        let _ = stream
                            .write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {size}\r\n\r\n").as_bytes())
                            .await;
                        let block = vec![b'x'; 64 * 1024];
                        loop {
                            if stream.write_all(&block).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                    let body = r#"{"id":"1"}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-app-usage: {{\"call_count\":3,\"total_time\":1,\"total_cputime\":1}}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_one_cut_off_mid_answer_is_not_reused() {
    use std::sync::atomic::Ordering;
    let d = spawn(Default::default()).await;
    let (upstream, accepted) = counting_upstream().await;
    let p = d
        .proxy(|c| {
            c.upstream = upstream.clone();
            c.workers = 1;
        })
        .await;
    let me = format!("{}/v26.0/me?access_token=EAAnotstored", p.url);
    for i in 0..5 {
        let (status, headers, body) = get(&d.http, &me).await;
        assert_eq!(status, 200, "call {i}: {body}");
        assert_eq!(body["id"], "1");
        assert!(headers.get("x-app-usage").is_some());
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "five calls in a row, one kept-alive connection to Graph"
    );

    // A caller that leaves in the middle of a large answer: that connection is closed, not
    // put back half-read, and the next call gets a fresh one that works.
    let big = reqwest::Client::new();
    let mut r = big
        .get(format!("{}/v26.0/big?access_token=EAAnotstored", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    drop(big);
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (status, _, body) = get(&d.http, &me).await;
        assert_eq!(status, 200, "{body}");
        if accepted.load(Ordering::SeqCst) >= 2 {
            ok = true;
            break;
        }
    }
    assert!(ok, "the cut-off connection was not reused");
    let before = accepted.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(get(&d.http, &me).await.0, 200);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        before,
        "the new one is kept alive"
    );
    p.stop().await;

    // `proxy.http2`: hyper_util's client (HTTP/1.1 here, as the upstream is plain HTTP).
    let p = d
        .proxy(|c| {
            c.upstream = upstream.clone();
            c.http2 = true;
        })
        .await;
    let (status, _, body) = get(&d.http, &format!("{}/v26.0/me?access_token=EAAx", p.url)).await;
    assert_eq!(status, 200, "{body}");
    p.stop().await;
}

/// One request as a scripted upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

/// An HTTP/1.1 upstream that answers each path in a framing of its own, written byte by byte
/// as Graph (or a broken Graph) might: chunked with extensions and trailers, until close, a
/// 100 Continue first, a head and body split over several writes, a body cut short, garbage,
/// and a connection closed once its answer is out (as Graph closes idle ones).
async fn scripted_upstream() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (count, log) = (Arc::clone(&accepted), Arc::clone(&seen));
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buf.drain(..length).collect();
                    log.lock().unwrap().push(Seen {
                        head: head.clone(),
                        body: body.clone(),
                    });
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    let path = path.split('?').next().unwrap_or("").to_owned();
                    let json = "content-type: application/json\r\n";
                    let parts: Vec<Vec<u8>> = match path.as_str() {
                        "/v26.0/chunked" => vec![format!(
                            "HTTP/1.1 200 OK\r\n{json}transfer-encoding: chunked\r\n\r\n5;ext=1\r\n{{\"id\"\r\n9\r\n:\"chunked\r\n2\r\n\"}}\r\n0\r\nx-trailer: t\r\n\r\n"
                        ).into_bytes()],
                        "/v26.0/close" => vec![
                            format!("HTTP/1.1 200 OK\r\n{json}\r\n{{\"id\":\"close\"}}").into_bytes(),
                        ],
                        "/v26.0/continue" => vec![format!(
                            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n{json}content-length: 17\r\n\r\n{{\"id\":\"continue\"}}"
                        ).into_bytes()],
                        "/v26.0/split" => vec![
                            b"HTTP/1.1 200 OK\r\ncontent-".to_vec(),
                            format!("length: 14\r\n{json}x-app-usage: {{\"call_count\":7}}\r\n\r\n{{\"id\"").into_bytes(),
                            b":\"split\"}".to_vec(),
                        ],
                        "/v26.0/cut" => vec![
                            format!("HTTP/1.1 200 OK\r\n{json}content-length: 100\r\n\r\n{{\"id\"").into_bytes(),
                        ],
                        "/v26.0/garbage" => vec![b"SPDY/9 what\r\n\r\n".to_vec()],
                        _ if head.starts_with("HEAD ") => {
                            vec![format!("HTTP/1.1 200 OK\r\n{json}content-length: 13\r\n\r\n").into_bytes()]
                        }
                        _ => {
                            let answer = format!(
                                "{{\"id\":\"1\",\"method\":\"{}\",\"body\":{}}}",
                                head.split(' ').next().unwrap_or(""),
                                body.len()
                            );
                            vec![format!(
                                "HTTP/1.1 200 OK\r\n{json}content-length: {}\r\n\r\n{answer}",
                                answer.len()
                            )
                            .into_bytes()]
                        }
                    };
                    for part in parts {
                        if stream.write_all(&part).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if matches!(
                        path.as_str(),
                        "/v26.0/close" | "/v26.0/cut" | "/v26.0/garbage" | "/v26.0/idle-close"
                    ) {
                        return; // the connection closes
                    }
                }
            });
        }
    });
    (url, accepted, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_in_every_http1_framing_reach_the_caller_and_connections_are_reused_only_when_sound()
 {
    use std::sync::atomic::Ordering;
    let d = spawn(Default::default()).await;
    let (upstream, accepted, seen) = scripted_upstream().await;
    let p = d
        .proxy(|c| {
            c.upstream = upstream.clone();
            c.workers = 1;
            c.retries = 1;
        })
        .await;
    let url = |path: &str| format!("{}/v26.0/{path}?access_token=EAAnotstored", p.url);

    // Chunked, with a chunk extension and a trailer: whole, and the connection reused.
    let (status, _, body) = get(&d.http, &url("chunked")).await;
    assert_eq!(
        (status, body["id"].as_str()),
        (200, Some("chunked")),
        "{body}"
    );
    let (status, _, body) = get(&d.http, &url("me")).await;
    assert_eq!((status, body["id"].as_str()), (200, Some("1")), "{body}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection so far");

    // A head and a body split over writes; the usage header read all the same.
    let (status, headers, body) = get(&d.http, &url("split")).await;
    assert_eq!(
        (status, body["id"].as_str()),
        (200, Some("split")),
        "{body}"
    );
    assert!(headers.get("x-app-usage").is_some());
    // 100 Continue first: the caller sees only the final answer.
    let (status, _, body) = get(&d.http, &url("continue")).await;
    assert_eq!(
        (status, body["id"].as_str()),
        (200, Some("continue")),
        "{body}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "still the one connection"
    );

    // HEAD: no body, whatever the length says; the connection stays usable.
    let r = d.http.head(url("me")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, _, _) = get(&d.http, &url("me")).await;
    assert_eq!(status, 200);

    // A form POST: its body arrives whole, with its length.
    let r = d
        .http
        .post(format!("{}/v26.0/act_1/campaigns", p.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("access_token=EAAnotstored&name=spring")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["method"], "POST");
    let posted = seen.lock().unwrap().last().unwrap().clone();
    assert!(
        posted
            .head
            .contains(&format!("content-length: {}", posted.body.len())),
        "{posted:?}"
    );
    assert_eq!(body["body"], posted.body.len());
    let before = accepted.load(Ordering::SeqCst);
    assert_eq!(before, 1, "the POST went on the same connection");
    // An upload the proxy does not read streams through (hyper's client connection).
    let upload = vec![b'u'; 20_000];
    let r = d
        .http
        .post(format!(
            "{}/v26.0/act_1/adimages?access_token=EAAnotstored",
            p.url
        ))
        .header("content-type", "application/octet-stream")
        .body(upload.clone())
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["body"], upload.len(), "{body}");
    assert_eq!(seen.lock().unwrap().last().unwrap().body, upload);

    // An answer delimited by its connection's end: whole, and that connection never reused.
    let (status, _, body) = get(&d.http, &url("close")).await;
    assert_eq!(
        (status, body["id"].as_str()),
        (200, Some("close")),
        "{body}"
    );
    // A connection Graph closed after its answer, as it closes idle ones: the next call goes on
    // a fresh connection, sent once. A POST, which the proxy never retries: sent on the closed
    // connection it would fail.
    let (status, _, _) = get(&d.http, &url("idle-close")).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let calls_before = seen.lock().unwrap().len();
    let r = d
        .http
        .post(format!("{}/v26.0/act_1/campaigns", p.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("access_token=EAAnotstored&name=after-idle")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["method"], "POST");
    assert_eq!(
        seen.lock().unwrap().len(),
        calls_before + 1,
        "the call reached Graph once"
    );

    // Cut short mid-body: the caller's body breaks off (not a clean short answer).
    let r = d.http.get(url("cut")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "a cut answer must not look whole");
    // Garbage instead of HTTP: a Meta-shaped 502 (a GET, so retried once, then given up).
    let (status, _, body) = get(&d.http, &url("garbage")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], 2);
    // And everyone else is still served.
    let (status, _, _) = get(&d.http, &url("me")).await;
    assert_eq!(status, 200);

    p.stop().await;
    let calls = d.inventory.store().recent_calls(None, 100).await.unwrap();
    let of = |template_part: &str| {
        calls
            .iter()
            .filter(|c| c.path.contains(template_part))
            .map(|c| c.outcome.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(of("chunked"), ["forwarded"]);
    assert_eq!(of("cut"), ["failed"]);
    assert_eq!(of("garbage"), ["failed"]);
}

/// `proxy.upstream` with a path of its own (a gateway in front of Graph, say): every call
/// goes under that path, its query passed on as it came or rebuilt with a stored token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_with_a_path_gets_every_call_under_it() {
    let d = spawn(Default::default()).await;
    let (upstream, _, seen) = scripted_upstream().await;
    let p = d
        .proxy(|c| {
            c.upstream = format!("{upstream}/graph-gateway/");
            c.workers = 1;
        })
        .await;
    let request_line = |i: usize| {
        seen.lock().unwrap()[i]
            .head
            .lines()
            .next()
            .unwrap()
            .to_owned()
    };

    let (status, _, body) = get(
        &d.http,
        &format!(
            "{}/v26.0/me?fields=id%2Cname&access_token=EAAnotstored",
            p.url
        ),
    )
    .await;
    assert_eq!((status, body["id"].as_str()), (200, Some("1")), "{body}");
    assert_eq!(
        request_line(0),
        "GET /graph-gateway/v26.0/me?fields=id%2Cname&access_token=EAAnotstored HTTP/1.1"
    );

    let ana = token(&d, "ana-long-lived");
    let consumer = d.key("consumer").to_owned();
    let (status, _, body) = get(
        &d.http,
        &format!("{}/v26.0/me?fields=id&access_token={consumer}", p.url),
    )
    .await;
    assert_eq!((status, body["id"].as_str()), (200, Some("1")), "{body}");
    let line = request_line(1);
    assert!(
        line.starts_with("GET /graph-gateway/v26.0/me?fields=id&access_token=")
            && line.contains(&format!("access_token={ana}&appsecret_proof="))
            && line.ends_with(" HTTP/1.1"),
        "{line}"
    );
}
