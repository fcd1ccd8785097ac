//! What Meta's callbacks change, and the signed links graphwarden hands out.
//!
//! De-authorization kills a user's tokens for an app at once (and the Page tokens derived from
//! them), without waiting for the next inspection. Data-deletion requests are recorded with the
//! confirmation code Meta shows the user. Links (re-login) are signed with a key derived from
//! the instance's fingerprint key, so only this installation can make one.

use graphwarden_core::{AppId, TokenAlias, TokenStatus};
use rand::Rng as _;
use rand::rngs::OsRng;
use serde_json::json;
use subtle::ConstantTimeEq as _;

use super::{Inventory, poisoned};
use crate::error::Result;
use crate::model::{Inspection, TokenFilter};
use crate::service::DeletionRequest;

const LINK_DOMAIN: &[u8] = b"graphwarden/v1/link\0";

impl Inventory {
    /// Mark every usable token of `user_id` for `app_id` `deauthorized`, with the tokens
    /// derived from them; returns the aliases changed.
    pub async fn deauthorize_user(
        &self,
        app_id: &AppId,
        user_id: &str,
        cause: &str,
        actor: &str,
    ) -> Result<Vec<TokenAlias>> {
        let filter = TokenFilter {
            app_id: Some(app_id.clone()),
            ..TokenFilter::default()
        };
        let now = self.clock.now();
        let mut changed: Vec<TokenAlias> = Vec::new();
        let users: Vec<_> = self
            .tokens(&filter)
            .await?
            .into_iter()
            .filter(|t| {
                t.meta_user_id
                    .as_ref()
                    .is_some_and(|u| u.as_str() == user_id)
            })
            .collect();
        for token in users {
            if token.status.is_usable() {
                let inspection = Inspection::status_only(
                    TokenStatus::Deauthorized,
                    cause.to_owned(),
                    now,
                    token.flags.clone(),
                );
                self.record_inspection(&token, inspection, actor).await?;
                changed.push(token.alias.clone());
            }
            for child in self.children(&token).await? {
                // A Page token carries its user's id too: it may have been marked above.
                if child.status.is_usable()
                    && !changed.contains(&child.alias)
                    && child
                        .meta_user_id
                        .as_ref()
                        .is_none_or(|u| u.as_str() != user_id)
                {
                    let inspection = Inspection::status_only(
                        TokenStatus::Deauthorized,
                        format!("derived from `{}`, whose user removed the app", token.alias),
                        now,
                        child.flags.clone(),
                    );
                    self.record_inspection(&child, inspection, actor).await?;
                    changed.push(child.alias.clone());
                }
            }
        }
        Ok(changed)
    }

    /// Record a data-deletion request and make its confirmation code.
    pub async fn record_deletion_request(
        &self,
        app_id: &AppId,
        user_id: &str,
        detail: &str,
        actor: &str,
    ) -> Result<DeletionRequest> {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let code: String = (0..16)
            .map(|_| char::from(ALPHABET[OsRng.gen_range(0..ALPHABET.len())]))
            .collect();
        let request = DeletionRequest {
            code,
            app_id: app_id.to_string(),
            user_id: user_id.to_owned(),
            requested_at: self.clock.now(),
            status: "received".to_owned(),
            detail: detail.to_owned(),
        };
        let mut event = self.event(actor, "meta.data_deletion_requested");
        event.app_id = Some(app_id.to_string());
        event.detail = json!({ "user_id": user_id, "confirmation_code": request.code });
        self.store.insert_deletion_request(&request, &event).await?;
        Ok(request)
    }

    pub async fn deletion_request(&self, code: &str) -> Result<Option<DeletionRequest>> {
        self.store.deletion_request(code).await
    }

    /// A signature over `message` that only this installation can make (hex).
    pub fn sign_link(&self, message: &str) -> Result<String> {
        let keys = self.keys.read().map_err(|_| poisoned())?;
        Ok(keys.fingerprint.keyed(LINK_DOMAIN, message.as_bytes()))
    }

    /// Whether `signature` is this installation's signature over `message`.
    pub fn verify_link(&self, message: &str, signature: &str) -> Result<bool> {
        let expected = self.sign_link(message)?;
        Ok(expected.as_bytes().ct_eq(signature.as_bytes()).into())
    }
}
