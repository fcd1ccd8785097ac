//! A Marketing API subset for realistic traffic: ad accounts, campaigns (cursor paging, budget
//! and status changes), insights, a business's ad accounts, and the Dataset Quality API (§11).
//! Ad-account calls are charged to the business-use-case and score limits (`usage.rs`).

use serde_json::{Value, json};

use crate::error::GraphError;
use crate::graph::{Ctx, Outcome, caller, charge_app, ok};
use crate::paging;
use crate::sim::{Caller, SimRequest, State, authenticate};
use crate::usage::{AccountCharge, BucType};
use crate::world::AdAccount;

/// The caller, the account, and the usage headers of an ad-account call.
type AccountCall = (Caller, AdAccount, Vec<(String, String)>);

/// Authenticate, find the account, check the permission, and charge the account's limits.
fn account_call(
    st: &mut State,
    ctx: &mut Ctx<'_>,
    req: &SimRequest,
    account_id: &str,
    buc: BucType,
    write: bool,
) -> Result<AccountCall, GraphError> {
    let caller = authenticate(st, req, ctx.now_secs)?;
    ctx.charged_app = Some(caller.app_id.clone());
    let account = st
        .world
        .ad_account(account_id)
        .cloned()
        .ok_or_else(|| GraphError::unsupported_request(&req.method, &req.path))?;
    let charge = AccountCharge {
        account_id: &account.id,
        app_id: &caller.app_id,
        buc,
        standard_tier: account.access_tier == "standard_access",
        active_ads: account.active_ads,
        write,
    };
    let headers = st.usage.charge_account(&charge, ctx.now_ms)?;
    let needed = if write { "ads_management" } else { "ads_read" };
    if !(caller.has_scope(needed) || (!write && caller.has_scope("ads_management"))) {
        let mut err = GraphError::new(
            403,
            200,
            "OAuthException",
            format!("(#200) Requires {needed} permission to access this ad account"),
        );
        err.headers = headers;
        return Err(err);
    }
    Ok((caller, account, headers))
}

fn account_json(a: &AdAccount) -> Value {
    json!({
        "id": format!("act_{}", a.id),
        "account_id": a.id,
        "name": a.name,
        "currency": a.currency,
        "account_status": a.account_status,
        "business": { "id": a.business_id },
    })
}

fn campaign_json(c: &crate::world::Campaign) -> Value {
    json!({
        "id": c.id,
        "account_id": c.account_id,
        "name": c.name,
        "status": c.status,
        "effective_status": c.status,
        "objective": c.objective,
        "daily_budget": c.daily_budget,
    })
}

/// `/act_{id}`, `/act_{id}/campaigns`, `/act_{id}/insights`.
pub fn ad_account_route(
    st: &mut State,
    ctx: &mut Ctx<'_>,
    req: &SimRequest,
    segments: &[&str],
) -> Outcome {
    let account_id = segments[0].trim_start_matches("act_").to_owned();
    match (req.method.as_str(), &segments[1..]) {
        ("GET", []) => {
            let (_, account, headers) =
                account_call(st, ctx, req, &account_id, BucType::AdsManagement, false)?;
            ok(select(account_json(&account), req), headers)
        }
        ("GET", ["campaigns"]) => {
            let (_, account, headers) =
                account_call(st, ctx, req, &account_id, BucType::AdsManagement, false)?;
            let wanted_status: Option<Vec<String>> = req.param("effective_status").map(|s| {
                s.trim_matches(|c| c == '[' || c == ']')
                    .split(',')
                    .map(|x| x.trim().trim_matches('"').to_owned())
                    .collect()
            });
            let items: Vec<Value> = st
                .world
                .campaigns
                .iter()
                .filter(|c| c.account_id == account.id && c.status != "DELETED")
                .filter(|c| wanted_status.as_ref().is_none_or(|w| w.contains(&c.status)))
                .map(|c| select(campaign_json(c), req))
                .collect();
            let body = paging::page(items, req, ctx.base_url, &ctx.version).map_err(|mut e| {
                e.headers = headers.clone();
                e
            })?;
            ok(body, headers)
        }
        ("GET", ["insights"]) => {
            let (_, account, headers) =
                account_call(st, ctx, req, &account_id, BucType::AdsInsights, false)?;
            ok(insights(st, &account, req), headers)
        }
        (method, _) => {
            let (_, _, headers) = account_call(
                st,
                ctx,
                req,
                &account_id,
                BucType::AdsManagement,
                method != "GET",
            )?;
            let mut err = GraphError::unsupported_request(method, &req.path);
            err.headers = headers;
            Err(err)
        }
    }
}

/// Deterministic figures: the same account and level always give the same numbers.
fn insights(st: &State, account: &AdAccount, req: &SimRequest) -> Value {
    let level = req.param("level").unwrap_or("account");
    let seed: u64 = account
        .id
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let row = |id: &str, name: &str, salt: u64| {
        let s = seed.wrapping_add(salt);
        let impressions = 10_000 + s % 90_000;
        let clicks = impressions / (20 + s % 30);
        let spend = (impressions as f64) * 0.004;
        json!({
            "account_id": account.id,
            "campaign_id": id,
            "campaign_name": name,
            "impressions": impressions.to_string(),
            "clicks": clicks.to_string(),
            "spend": format!("{spend:.2}"),
            "date_start": req.param("since").unwrap_or("2026-01-01"),
            "date_stop": req.param("until").unwrap_or("2026-01-31"),
        })
    };
    let data: Vec<Value> = if level == "campaign" {
        st.world
            .campaigns
            .iter()
            .filter(|c| c.account_id == account.id)
            .enumerate()
            .map(|(i, c)| row(&c.id, &c.name, i as u64 * 7919))
            .collect()
    } else {
        let mut r = row("", "", 0);
        if let Some(map) = r.as_object_mut() {
            map.remove("campaign_id");
            map.remove("campaign_name");
        }
        vec![r]
    };
    json!({ "data": data, "paging": { "cursors": { "before": "MAZDZD", "after": "MAZDZD" } } })
}

/// `GET /{campaign-id}`.
pub fn campaign(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest, id: &str) -> Outcome {
    let Some(account_id) = st.world.campaign(id).map(|c| c.account_id.clone()) else {
        return Err(GraphError::unsupported_request("GET", &req.path));
    };
    let (_, _, headers) = account_call(st, ctx, req, &account_id, BucType::AdsManagement, false)?;
    let body = st
        .world
        .campaign(id)
        .map(campaign_json)
        .unwrap_or(Value::Null);
    ok(select(body, req), headers)
}

/// `POST /{campaign-id}`: `status` and `daily_budget` changes. Budget changes are capped at four
/// an hour (613/1487632, §8.4).
pub fn update_object(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest, id: &str) -> Outcome {
    let Some(account_id) = st.world.campaign(id).map(|c| c.account_id.clone()) else {
        let (_, headers) = caller(st, ctx, req)?;
        let mut err = GraphError::unsupported_request("POST", &req.path);
        err.headers = headers;
        return Err(err);
    };
    let (_, _, headers) = account_call(st, ctx, req, &account_id, BucType::AdsManagement, true)?;
    let fail = |e: GraphError| {
        let mut e = e;
        e.headers = headers.clone();
        Err(e)
    };
    let status = req.param("status").map(str::to_owned);
    if let Some(s) = &status
        && !matches!(s.as_str(), "ACTIVE" | "PAUSED" | "DELETED" | "ARCHIVED")
    {
        return fail(GraphError::invalid_parameter(format!(
            "Param status must be one of {{ACTIVE, PAUSED, DELETED, ARCHIVED}}, got {s}"
        )));
    }
    let budget = match req.param("daily_budget") {
        Some(b) => match b.parse::<u64>() {
            Ok(n) if n >= 100 => Some(n.to_string()),
            Ok(_) => {
                return fail(
                    GraphError::invalid_parameter("Invalid parameter: daily_budget is too low")
                        .with_subcode(1_885_272),
                );
            }
            Err(_) => {
                return fail(GraphError::invalid_parameter(
                    "Param daily_budget must be an integer",
                ));
            }
        },
        None => None,
    };
    let now_ms = ctx.now_ms;
    let Some(c) = st.world.campaigns.iter_mut().find(|c| c.id == id) else {
        return fail(GraphError::unsupported_request("POST", &req.path));
    };
    if let Some(b) = budget {
        c.budget_changes.retain(|t| *t > now_ms - 3_600_000);
        if c.budget_changes.len() >= 4 {
            return fail(
                GraphError::new(
                    400,
                    613,
                    "OAuthException",
                    "(#613) Calls to this api have exceeded the rate limit. The budget of this campaign has been changed too many times in the last hour.",
                )
                .with_subcode(1_487_632),
            );
        }
        c.budget_changes.push(now_ms);
        c.daily_budget = b;
    }
    if let Some(s) = status {
        c.status = s;
    }
    ok(json!({ "success": true }), headers)
}

/// `GET /{business-id}/owned_ad_accounts`.
pub fn owned_ad_accounts(
    st: &mut State,
    ctx: &mut Ctx<'_>,
    req: &SimRequest,
    business_id: &str,
) -> Outcome {
    let (_, headers) = caller(st, ctx, req)?;
    if !st.world.businesses.iter().any(|b| b.id == business_id) {
        let mut err = GraphError::unsupported_request("GET", &req.path);
        err.headers = headers;
        return Err(err);
    }
    let items: Vec<Value> = st
        .world
        .ad_accounts
        .iter()
        .filter(|a| a.business_id == business_id)
        .map(|a| select(account_json(a), req))
        .collect();
    let body = paging::page(items, req, ctx.base_url, &ctx.version).map_err(|mut e| {
        e.headers = headers.clone();
        e
    })?;
    ok(body, headers)
}

/// §11: `GET /dataset_quality?dataset_id=…&fields=web{…}`.
pub fn dataset_quality(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest) -> Outcome {
    let caller = authenticate(st, req, ctx.now_secs)?;
    let headers = charge_app(st, ctx, &caller.app_id)?;
    let fail = |e: GraphError| {
        let mut e = e;
        e.headers = headers.clone();
        Err(e)
    };
    let Some(dataset_id) = req.param("dataset_id") else {
        return fail(GraphError::invalid_parameter(
            "The parameter dataset_id is required",
        ));
    };
    if !(caller.has_scope("ads_read")
        && (caller.has_scope("ads_management") || caller.has_scope("business_management")))
    {
        return fail(GraphError::permission_missing(
            "ads_read and ads_management or business_management",
        ));
    }
    let Some(dataset) = st.world.datasets.iter().find(|d| d.id == dataset_id) else {
        return fail(GraphError::unsupported_request(
            "GET",
            &format!("/{dataset_id}"),
        ));
    };
    let web: Vec<Value> = dataset
        .events
        .iter()
        .map(|e| {
            json!({
                "event_name": e.event_name,
                "event_match_quality": {
                    "composite_score": e.composite_score,
                    "match_key_feedback": [
                        { "identifier": "email", "coverage": { "percentage": e.coverage_percentage } },
                        { "identifier": "phone", "coverage": { "percentage": (e.coverage_percentage * 0.7).round() } },
                    ],
                    "diagnostics": if e.composite_score < 7.0 {
                        json!([{
                            "name": "Send more customer information",
                            "description": "Events are missing customer information parameters that improve matching.",
                            "solution": "Add hashed email and phone to your Conversions API events.",
                            "percentage": 100.0 - e.coverage_percentage,
                            "affected_event_count": 1200,
                            "total_event_count": 4000,
                        }])
                    } else {
                        json!([])
                    },
                },
                "acr": { "percentage": e.acr_percentage, "description": "Additional conversions reported" },
                "event_coverage": { "percentage": e.coverage_percentage, "goal_percentage": 75 },
                "data_freshness": { "upload_frequency": e.upload_frequency },
            })
        })
        .collect();
    ok(json!({ "web": web }), headers)
}

/// Keep only the requested top-level `fields` (always `id`); nested `{…}` selections are
/// accepted and ignored.
fn select(value: Value, req: &SimRequest) -> Value {
    let Some(fields) = req.param("fields") else {
        return value;
    };
    let mut depth = 0;
    let mut names = Vec::new();
    let mut current = String::new();
    for c in fields.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => names.push(std::mem::take(&mut current)),
            _ if depth == 0 => current.push(c),
            _ => {}
        }
    }
    names.push(current);
    let names: Vec<String> = names.iter().map(|n| n.trim().to_owned()).collect();
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| k == "id" || names.iter().any(|n| n == k))
                .collect(),
        ),
        other => other,
    }
}
