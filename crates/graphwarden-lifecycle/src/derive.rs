//! New tokens from existing ones or from Meta: Page tokens derived from a user token (§3.4),
//! system-user tokens minted through the API (§4), and storing any new token inspected.

use graphwarden_core::{AppId, MetaId, TokenAlias, TokenKind};
use graphwarden_meta::{AppCredentials, GraphClient, MetaError};
use graphwarden_store::{Inventory, NewToken, StoreError, Token, TokenFilter};
use jiff::SignedDuration;
use secrecy::SecretString;
use serde::Serialize;

use crate::check::{inspection_for, probe};
use crate::renew::Renewer;

#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("{0}")]
    Refused(String),
}

/// One Page token after `pages derive`.
#[derive(Debug, Clone, Serialize)]
pub struct Derived {
    pub alias: String,
    pub page_id: String,
    pub page_name: String,
    /// `added`, `replaced`, `unchanged`, `failed`.
    pub outcome: &'static str,
    pub detail: String,
}

/// Store a new token and inspect it at once; Meta's answer fills in what it knows.
pub async fn store_inspected(
    inventory: &Inventory,
    graph: &GraphClient,
    new: NewToken,
    now: jiff::Timestamp,
    window: SignedDuration,
    actor: &str,
) -> Result<Token, DeriveError> {
    let app = AppCredentials {
        app_id: new.app_id.to_string(),
        secret: inventory.app_secret(&new.app_id).await?,
    };
    let probed = probe(graph, &new.secret, &app, now, window).await;
    let token = inventory.add_token(new, actor).await?;
    if let Ok((_, assessment)) = &probed {
        inventory
            .record_inspection(&token, inspection_for(&token, assessment, now), actor)
            .await?;
    }
    Ok(inventory.token(&token.alias).await?)
}

#[allow(clippy::too_many_arguments)]
/// Derive the Page tokens of `user` (all its Pages, or only `only`), storing new ones with their
/// parent link and replacing stored ones the crash-safe way.
pub async fn derive_pages(
    inventory: &Inventory,
    graph: &GraphClient,
    renewer: &Renewer,
    user: &Token,
    only: &[MetaId],
    now: jiff::Timestamp,
    window: SignedDuration,
    actor: &str,
) -> Result<Vec<Derived>, DeriveError> {
    if user.kind != TokenKind::User {
        return Err(DeriveError::Refused(format!(
            "`{}` is a {} token; Page tokens are derived from user tokens",
            user.alias, user.kind
        )));
    }
    let app = AppCredentials {
        app_id: user.app_id.to_string(),
        secret: inventory.app_secret(&user.app_id).await?,
    };
    let secret = inventory.open_token_secret(&user.alias).await?;
    let pages = graph.accounts(&secret, &app).await?;
    for wanted in only {
        if !pages.iter().any(|p| p.id == wanted.as_str()) {
            return Err(DeriveError::Refused(format!(
                "`{}` has no role on Page {wanted} (Meta lists: {})",
                user.alias,
                pages
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let existing = inventory.tokens(&TokenFilter::default()).await?;
    let mut out = Vec::new();
    for page in pages
        .into_iter()
        .filter(|p| only.is_empty() || only.iter().any(|o| o.as_str() == p.id))
    {
        let page_id = MetaId::parse(&page.id).map_err(StoreError::from)?;
        let stored = existing.iter().find(|t| {
            t.kind == TokenKind::Page
                && t.app_id == user.app_id
                && t.page_id.as_ref() == Some(&page_id)
                && t.parent_id.as_deref() == Some(user.id.as_str())
        });
        let derived = match stored {
            Some(t) => match renewer
                .replace_secret(t, &page.access_token, "rederive", actor)
                .await?
            {
                Ok(detail) if detail.contains("already stored") => {
                    ("unchanged", detail, t.alias.to_string())
                }
                Ok(detail) => ("replaced", detail, t.alias.to_string()),
                Err(detail) => ("failed", detail, t.alias.to_string()),
            },
            None => {
                let alias_text = format!("{}-page-{}", user.alias, page.id);
                let alias_text: String = alias_text.chars().take(64).collect();
                let alias = TokenAlias::parse(&alias_text).map_err(StoreError::from)?;
                let new = NewToken {
                    alias: alias.clone(),
                    kind: TokenKind::Page,
                    app_id: AppId::parse(user.app_id.as_str()).map_err(StoreError::from)?,
                    secret: page.access_token.clone(),
                    meta_user_id: user.meta_user_id.clone(),
                    page_id: Some(page_id.clone()),
                    business_id: user.business_id.clone(),
                    parent: Some(user.alias.clone()),
                    owner: user.owner.clone(),
                    requested_by: user.requested_by.clone(),
                    purpose: format!("Page token for {}", page.name),
                    scopes_needed: Vec::new(),
                    tags: user.tags.clone(),
                };
                match store_inspected(inventory, graph, new, now, window, actor).await {
                    Ok(t) => (
                        "added",
                        format!("{} ({})", t.status, t.hint),
                        t.alias.to_string(),
                    ),
                    Err(DeriveError::Store(StoreError::DuplicateToken { alias })) => {
                        ("unchanged", format!("already stored as `{alias}`"), alias)
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        out.push(Derived {
            alias: derived.2,
            page_id: page.id.clone(),
            page_name: page.name.clone(),
            outcome: derived.0,
            detail: derived.1,
        });
    }
    Ok(out)
}

/// Generate a system-user token through the API (§4) with `caller`'s token, and store it.
#[allow(clippy::too_many_arguments)]
pub async fn mint_system_user(
    inventory: &Inventory,
    graph: &GraphClient,
    caller: &Token,
    alias: TokenAlias,
    app_id: &AppId,
    system_user: &MetaId,
    scopes: &[String],
    expiring: bool,
    now: jiff::Timestamp,
    window: SignedDuration,
    actor: &str,
) -> Result<Token, DeriveError> {
    let app = AppCredentials {
        app_id: app_id.to_string(),
        secret: inventory.app_secret(app_id).await?,
    };
    let caller_secret: SecretString = inventory.open_token_secret(&caller.alias).await?;
    let issued = graph
        .mint_system_user_token(system_user.as_str(), &caller_secret, &app, scopes, expiring)
        .await?;
    let new = NewToken {
        alias,
        kind: TokenKind::SystemUser,
        app_id: app_id.clone(),
        secret: issued.token,
        meta_user_id: Some(system_user.clone()),
        page_id: None,
        business_id: caller.business_id.clone(),
        parent: None,
        owner: caller.owner.clone(),
        requested_by: actor.to_owned(),
        purpose: String::new(),
        scopes_needed: scopes
            .iter()
            .filter_map(|s| graphwarden_core::Scope::parse(s).ok())
            .collect(),
        tags: Vec::new(),
    };
    store_inspected(inventory, graph, new, now, window, actor).await
}
