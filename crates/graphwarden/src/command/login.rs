//! `graphwarden login APP`: the dialog link, a loopback callback that checks `state`, and a
//! long-lived token stored (or replacing a dead one).

use std::sync::Arc;
use std::time::Duration;

use graphwarden_core::{AppId, TokenAlias, parse_scope_list};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::cli::LoginArgs;
use crate::command::{Context, derive_error, parse_flag};
use crate::exit::{self, CliError, CliResult};
use crate::output;

fn random_state() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Answer the browser and return the callback's query parameters.
async fn wait_for_callback(listener: &TcpListener) -> CliResult<Vec<(String, String)>> {
    loop {
        let (mut stream, _) = listener
            .accept()
            .await
            .map_err(|e| CliError::new(exit::IO, format!("the callback listener failed: {e}")))?;
        let mut buf = vec![0u8; 16 * 1024];
        let mut len = 0;
        // Read the request head (the query is all we need).
        while len < buf.len() {
            let n =
                match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf[len..]))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => 0,
                };
            if n == 0 {
                break;
            }
            len += n;
            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let head = String::from_utf8_lossy(&buf[..len]).to_string();
        let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        if path != "/callback" {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            continue;
        }
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let body = if params.iter().any(|(k, _)| k == "code") {
            "<!DOCTYPE html><title>graphwarden</title><p>Logged in. graphwarden is storing the token; you can close this window.</p>"
        } else {
            "<!DOCTYPE html><title>graphwarden</title><p>The login did not complete. See the terminal for what to do.</p>"
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        return Ok(params);
    }
}

pub async fn run(ctx: &Context, args: LoginArgs) -> CliResult<u8> {
    let app_id = parse_flag("APP", &args.app_id, AppId::parse)?;
    let alias = args
        .alias
        .as_deref()
        .map(|a| parse_flag("--alias", a, TokenAlias::parse))
        .transpose()?;
    let scopes: Vec<String> = parse_flag("--scopes", &args.scopes, parse_scope_list)?
        .into_iter()
        .map(|s| s.into_string())
        .collect();
    let timeout = graphwarden_core::duration::parse_duration(&args.timeout)?;
    let inventory = Arc::new(ctx.inventory().await?);
    inventory.app(&app_id).await?;
    let listener = TcpListener::bind(&args.listen).await.map_err(|e| {
        CliError::new(
            exit::UNAVAILABLE,
            format!("could not listen on {} for the callback: {e}", args.listen),
        )
    })?;
    let addr = listener.local_addr().map_err(|e| {
        CliError::new(
            exit::IO,
            format!("the callback listener has no address: {e}"),
        )
    })?;
    let redirect_uri = format!("http://{addr}/callback");
    let state = random_state();
    let cfg = &ctx.loaded.config;
    let url = graphwarden_lifecycle::login::dialog_url(
        &cfg.graph_url,
        &cfg.graph_version,
        app_id.as_str(),
        &redirect_uri,
        &state,
        &scopes,
    );
    println!("Open this link in a browser where the token's owner is logged in to Facebook:");
    println!("{url}");
    println!("(`{redirect_uri}` must be one of the app's Valid OAuth Redirect URIs.) Waiting…");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let wait = Duration::from_millis(u64::try_from(timeout.as_millis()).unwrap_or(600_000));
    let params = tokio::time::timeout(wait, wait_for_callback(&listener))
        .await
        .map_err(|_| {
            CliError::new(
                exit::TEMP_FAIL,
                format!(
                    "no login within {}; run `graphwarden login` again",
                    args.timeout
                ),
            )
        })??;
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if get("state").as_deref() != Some(state.as_str()) {
        return Err(CliError::new(
            exit::DATA,
            "the callback's `state` does not match this login: refusing it (a stale or forged redirect)",
        ));
    }
    if let Some(error) = get("error") {
        let reason = get("error_reason")
            .or_else(|| get("error_description"))
            .unwrap_or_default();
        return Err(CliError::new(
            exit::NO_PERM,
            format!("the login was not completed ({error}: {reason}); nothing was changed"),
        ));
    }
    let Some(code) = get("code") else {
        return Err(CliError::new(
            exit::DATA,
            "the callback carried no code; nothing was changed",
        ));
    };
    let renewer = ctx.renewer(Arc::clone(&inventory))?;
    let outcome = graphwarden_lifecycle::login::complete(
        &inventory,
        &ctx.graph()?,
        &renewer,
        &app_id,
        &SecretString::from(code),
        &redirect_uri,
        alias.as_ref(),
        ctx.clock.now(),
        ctx.check_policy()?.warning_window,
        &ctx.actor,
    )
    .await
    .map_err(derive_error)?;
    if args.json {
        output::print_json(&outcome)?;
    } else {
        let verb = if outcome.outcome == "replaced" {
            "Replaced"
        } else {
            "Stored"
        };
        println!(
            "{verb} `{}`: {} — status {}.",
            outcome.alias, outcome.detail, outcome.status
        );
    }
    Ok(0)
}
