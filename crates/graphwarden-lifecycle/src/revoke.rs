//! Revocation of a stored token: what it would break ([`dependents`]), and revoking it through
//! Meta ([`revoke`]) followed by an inspection, so its status — and that of the tokens derived
//! from it — comes from Meta's own answer. Shared by `graphwarden revoke`, `scan --revoke` and
//! the API.

use graphwarden_core::{TokenAlias, TokenKind};
use graphwarden_meta::{AppCredentials, GraphClient, MetaError};
use graphwarden_store::{Inventory, StoreError, Token};

use crate::check::{CheckError, Checker, Selection};

/// What revoking a token would break.
#[derive(Debug, Clone)]
pub struct Dependents {
    /// Tokens derived from it, at any depth, by alias: they die with it.
    pub derived: Vec<Token>,
    /// Names of the live consumer keys that may fetch it or a token derived from it.
    pub consumers: Vec<String>,
    /// Its calls through the proxy among the records kept (at most 10,000 counted).
    pub recent_calls: usize,
    /// When the latest of them was made (epoch ms).
    pub last_call_at_ms: Option<i64>,
}

/// Why a token was not revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error(
        "`{alias}` is a Page token: Meta has no revocation for one on its own; revoke the user token it was derived from{parent}, or remove the app from the Page"
    )]
    PageToken { alias: TokenAlias, parent: String },
    #[error(
        "`{0}` is an app token: it lives as long as the app secret; reset the secret in the app's dashboard, then store the new one"
    )]
    AppToken(TokenAlias),
    #[error("Meta did not revoke `{alias}`: {source}")]
    Meta {
        alias: TokenAlias,
        #[source]
        source: MetaError,
    },
    #[error("Meta answered the revocation of `{0}` without success")]
    NotConfirmed(TokenAlias),
    #[error("`{alias}` was revoked, but inspecting it afterwards failed: {source}")]
    Inspection {
        alias: TokenAlias,
        #[source]
        source: CheckError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Tokens derived from `token`, at any depth, sorted by alias.
pub async fn derived(inventory: &Inventory, token: &Token) -> Result<Vec<Token>, StoreError> {
    let mut out: Vec<Token> = Vec::new();
    let mut frontier = vec![token.clone()];
    while let Some(t) = frontier.pop() {
        for child in inventory.children(&t).await? {
            if child.id != token.id && out.iter().all(|o| o.id != child.id) {
                frontier.push(child.clone());
                out.push(child);
            }
        }
    }
    out.sort_by(|a, b| a.alias.cmp(&b.alias));
    Ok(out)
}

/// What revoking `token` would break.
pub async fn dependents(inventory: &Inventory, token: &Token) -> Result<Dependents, StoreError> {
    let derived = derived(inventory, token).await?;
    let affected: Vec<&TokenAlias> = std::iter::once(&token.alias)
        .chain(derived.iter().map(|c| &c.alias))
        .collect();
    let mut consumers: Vec<String> = inventory
        .api_keys()
        .await?
        .into_iter()
        .filter(|k| k.revoked_at.is_none() && k.aliases.iter().any(|a| affected.contains(&a)))
        .map(|k| k.name)
        .collect();
    consumers.sort();
    let calls = inventory
        .store()
        .recent_calls(Some(token.alias.as_str()), 10_000)
        .await?;
    Ok(Dependents {
        derived,
        consumers,
        recent_calls: calls.len(),
        last_call_at_ms: calls.first().map(|c| c.at_ms),
    })
}

/// Revoke a stored user or system-user token through Meta (`/oauth/revoke`, with its app's
/// secret), then inspect it as `actor`, so it and the tokens derived from it are marked from
/// Meta's answer. Page and app tokens are refused with the way to do it.
pub async fn revoke(
    inventory: &Inventory,
    graph: &GraphClient,
    checker: &Checker,
    token: &Token,
    actor: &str,
) -> Result<(), RevokeError> {
    let alias = &token.alias;
    match token.kind {
        TokenKind::Page => {
            return Err(RevokeError::PageToken {
                alias: alias.clone(),
                parent: token
                    .parent_alias
                    .as_ref()
                    .map(|p| format!(" (`{p}`)"))
                    .unwrap_or_default(),
            });
        }
        TokenKind::App => return Err(RevokeError::AppToken(alias.clone())),
        TokenKind::User | TokenKind::SystemUser => {}
    }
    let secret = inventory.open_token_secret(alias).await?;
    let creds = AppCredentials {
        app_id: token.app_id.to_string(),
        secret: inventory.app_secret(&token.app_id).await?,
    };
    let confirmed = graph
        .revoke(&secret, &secret, &creds)
        .await
        .map_err(|source| RevokeError::Meta {
            alias: alias.clone(),
            source,
        })?;
    if !confirmed {
        return Err(RevokeError::NotConfirmed(alias.clone()));
    }
    tracing::info!(token = %alias, actor, "`{alias}` was revoked through Meta.");
    let children: Vec<TokenAlias> = derived(inventory, token)
        .await?
        .into_iter()
        .map(|t| t.alias)
        .collect();
    inventory.record_revocation(token, actor, &children).await?;
    checker
        .check(Selection::Aliases(vec![alias.clone()]), actor, &|_, _| {})
        .await
        .map_err(|source| RevokeError::Inspection {
            alias: alias.clone(),
            source,
        })?;
    Ok(())
}
