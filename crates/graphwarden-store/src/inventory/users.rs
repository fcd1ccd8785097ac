//! Local users of the dashboard: a name, a role and a password stored as an argon2id hash (PHC
//! string, its own random salt). API keys are the other way to sign in.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use graphwarden_core::{InvalidInput, Role, free_text};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::Inventory;
use crate::error::{Result, StoreError};
use crate::service::{User, UserRecord};

/// Shorter passwords are refused.
pub const MIN_PASSWORD_CHARS: usize = 12;

fn check_name(name: &str) -> Result<String> {
    let name = free_text("name", name, 64, false)?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
    {
        return Err(InvalidInput::new(
            "a user name is letters, digits and `-`, `_`, `.`, `@` (up to 64)",
        )
        .into());
    }
    Ok(name)
}

fn hash(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Database {
            detail: format!("the password could not be hashed: {e}"),
        })
}

/// A hash of nothing, checked against when the user does not exist, so an unknown name takes as
/// long as a wrong password.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("graphwarden-decoy-password").unwrap_or_default())
}

fn matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Argon2 is slow on purpose (tens of milliseconds, 19 MiB): run it on the blocking pool, not on
/// the threads that serve requests.
async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Database {
            detail: format!("password hashing stopped: {e}"),
        })
}

impl Inventory {
    /// Add a local user. Consumer is not a role for people.
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        password: &SecretString,
        actor: &str,
    ) -> Result<User> {
        let name = check_name(name)?;
        if role == Role::Consumer {
            return Err(InvalidInput::new(
                "people are readers, operators or admins; `consumer` is for applications' API keys",
            )
            .into());
        }
        let password = password.expose_secret();
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(InvalidInput::new(format!(
                "the password is shorter than {MIN_PASSWORD_CHARS} characters"
            ))
            .into());
        }
        if password.len() > 1024 {
            return Err(InvalidInput::new("the password is longer than 1024 bytes").into());
        }
        let now = self.clock.now();
        let user = User {
            name: name.clone(),
            role,
            created_at: now,
            created_by: actor.to_owned(),
            last_login_at: None,
        };
        let mut event = self.event(actor, "user.created");
        event.detail = json!({ "name": name, "role": role.as_str() });
        let password = zeroize::Zeroizing::new(password.to_owned());
        let record = UserRecord {
            user: user.clone(),
            password_hash: off_the_runtime(move || hash(&password)).await??,
        };
        self.store.insert_user(&record, &event).await?;
        Ok(user)
    }

    /// The user `name` when `password` is theirs; `None` otherwise (also for unknown names, in
    /// about the same time). Records the sign-in.
    pub async fn verify_user(&self, name: &str, password: &SecretString) -> Result<Option<User>> {
        let record = match check_name(name) {
            Ok(name) => self.store.user(&name).await?,
            Err(_) => None,
        };
        let stored = record.as_ref().map(|r| r.password_hash.clone());
        let password = zeroize::Zeroizing::new(password.expose_secret().to_owned());
        let ok = off_the_runtime(move || {
            // The decoy is made (once) on the blocking pool as well.
            let stored = stored.unwrap_or_else(|| decoy().to_owned());
            matches(&password, &stored)
        })
        .await?
            && record.is_some();
        match record {
            Some(r) if ok => {
                let _ = self
                    .store
                    .set_user_login(&r.user.name, self.clock.now_ms())
                    .await;
                Ok(Some(r.user))
            }
            _ => Ok(None),
        }
    }

    /// A user by name, without checking a password (sessions re-check that the user exists).
    pub async fn user(&self, name: &str) -> Result<Option<User>> {
        Ok(self.store.user(name).await?.map(|r| r.user))
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        self.store.users().await
    }

    pub async fn remove_user(&self, name: &str, actor: &str) -> Result<()> {
        let mut event = self.event(actor, "user.removed");
        event.detail = json!({ "name": name });
        if self.store.delete_user(name, &event).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound {
                what: "user",
                name: name.to_owned(),
                hint: "see `graphwarden user list`",
            })
        }
    }
}
