//! Re-login when renewal is impossible (§3.2): build the dialog URL with a fresh `state`, then
//! turn the returned code into a long-lived token and store it — replacing the dead one the
//! crash-safe way, or adding a new one.

use graphwarden_core::{AppId, MetaId, TokenAlias, TokenKind};
use graphwarden_meta::{AppCredentials, GraphClient};
use graphwarden_store::{Inventory, NewToken, StoreError, Token};
use jiff::SignedDuration;
use secrecy::SecretString;
use serde::Serialize;

use crate::derive::{DeriveError, store_inspected};
use crate::renew::Renewer;

/// The login dialog's address for a Graph base URL: Meta's dialog lives on www.facebook.com;
/// a simulator serves it itself.
pub fn dialog_base(graph_url: &str) -> String {
    let trimmed = graph_url.trim_end_matches('/');
    match trimmed.split_once("://") {
        Some((scheme, host)) if host.starts_with("graph.") => {
            format!("{scheme}://www.{}", &host["graph.".len()..])
        }
        _ => trimmed.to_owned(),
    }
}

/// The URL a person opens to log in (§3.2).
pub fn dialog_url(
    graph_url: &str,
    version: &str,
    app_id: &str,
    redirect_uri: &str,
    state: &str,
    scopes: &[String],
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("client_id", app_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state)
        .append_pair("response_type", "code");
    if !scopes.is_empty() {
        query.append_pair("scope", &scopes.join(","));
    }
    format!(
        "{}/{version}/dialog/oauth?{}",
        dialog_base(graph_url),
        query.finish()
    )
}

/// What the login did.
#[derive(Debug, Clone, Serialize)]
pub struct LoginOutcome {
    pub alias: String,
    /// `added` or `replaced`.
    pub outcome: &'static str,
    pub detail: String,
    pub status: String,
}

/// Exchange the code (same `redirect_uri`), exchange again for a long-lived token, and store it
/// under `alias` (replacing) or a new alias.
#[allow(clippy::too_many_arguments)]
pub async fn complete(
    inventory: &Inventory,
    graph: &GraphClient,
    renewer: &Renewer,
    app_id: &AppId,
    code: &SecretString,
    redirect_uri: &str,
    alias: Option<&TokenAlias>,
    now: jiff::Timestamp,
    window: SignedDuration,
    actor: &str,
) -> Result<LoginOutcome, DeriveError> {
    let app = AppCredentials {
        app_id: app_id.to_string(),
        secret: inventory.app_secret(app_id).await?,
    };
    let short = graph.exchange_code(code, redirect_uri, &app).await?;
    let long = graph.exchange(&short.token, &app, false).await?;
    let existing: Option<Token> = match alias {
        Some(a) => match inventory.token(a).await {
            Ok(t) => Some(t),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    if let Some(token) = existing {
        // A login replaces a token only with one for the same person: otherwise anyone able to
        // complete a login could swap a colleague's token for their own.
        if let Some(recorded) = &token.meta_user_id {
            let (data, _) = graph.debug_token(&long.token, &app).await?;
            if data
                .user_id
                .as_deref()
                .is_some_and(|seen| seen != recorded.as_str())
            {
                return Err(DeriveError::Refused(format!(
                    "`{}` belongs to Meta user {recorded}, but this login was by another user; log in as that user, or store the new token under another alias",
                    token.alias
                )));
            }
        }
        return match renewer
            .replace_secret(&token, &long.token, "login", actor)
            .await?
        {
            Ok(detail) => {
                let fresh = inventory.token(&token.alias).await?;
                Ok(LoginOutcome {
                    alias: token.alias.to_string(),
                    outcome: "replaced",
                    detail: format!("{detail} (was {})", token.hint),
                    status: fresh.status.to_string(),
                })
            }
            Err(detail) => Err(DeriveError::Refused(format!(
                "the new token was not stored: {detail}"
            ))),
        };
    }
    let (data, _) = graph.debug_token(&long.token, &app).await?;
    let user_id = data.user_id.clone().unwrap_or_default();
    let alias = match alias {
        Some(a) => a.clone(),
        None => TokenAlias::parse(&format!("{app_id}-user-{user_id}")).map_err(StoreError::from)?,
    };
    let new = NewToken {
        alias,
        kind: TokenKind::User,
        app_id: app_id.clone(),
        secret: long.token,
        meta_user_id: MetaId::parse(&user_id).ok(),
        page_id: None,
        business_id: None,
        parent: None,
        owner: String::new(),
        requested_by: actor.to_owned(),
        purpose: "stored by `graphwarden login`".into(),
        scopes_needed: Vec::new(),
        tags: Vec::new(),
    };
    let token = store_inspected(inventory, graph, new, now, window, actor).await?;
    Ok(LoginOutcome {
        alias: token.alias.to_string(),
        outcome: "added",
        detail: format!("new token {}", token.hint),
        status: token.status.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialog_lives_on_www_for_meta_and_on_the_simulator_otherwise() {
        assert_eq!(
            dialog_base("https://graph.facebook.com"),
            "https://www.facebook.com"
        );
        assert_eq!(
            dialog_base("http://127.0.0.1:8777/"),
            "http://127.0.0.1:8777"
        );
        let url = dialog_url(
            "https://graph.facebook.com",
            "v26.0",
            "1",
            "http://127.0.0.1:8790/callback",
            "s t",
            &["ads_read".into(), "pages_show_list".into()],
        );
        assert_eq!(
            url,
            "https://www.facebook.com/v26.0/dialog/oauth?client_id=1&redirect_uri=http%3A%2F%2F127.0.0.1%3A8790%2Fcallback&state=s+t&response_type=code&scope=ads_read%2Cpages_show_list"
        );
    }
}
