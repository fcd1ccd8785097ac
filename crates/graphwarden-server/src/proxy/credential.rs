//! Which token a proxied call is made with, and what graphwarden knows of it.
//!
//! A caller either sends its own token (passed through; when the inventory holds it, its
//! `appsecret_proof` is added and the call is recorded under its alias) or asks for a stored
//! token by alias (`X-Graphwarden-Token: ALIAS`, or the listener's default alias) with a
//! graphwarden API key that may use it — in `X-Graphwarden-Key`, or in place of the token
//! itself, so an SDK that takes only an access token can be pointed at the proxy unchanged.
//!
//! Lookups are cached for a short time (`proxy.cache_ttl`): a renewed token is picked up
//! within it, and a token that Meta rejects is dropped from the cache at once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use graphwarden_core::{Role, Stopwatch, TokenAlias};
use graphwarden_store::{ApiKey, Inventory, StoreError};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The prefix of graphwarden's API keys.
pub const KEY_PREFIX: &str = "gwk_";

/// A stored token, ready to be sent.
#[derive(Debug)]
pub struct Stored {
    pub alias: TokenAlias,
    /// `alias` as shared text, for call records.
    pub alias_text: std::sync::Arc<str>,
    pub app_id: std::sync::Arc<str>,
    pub secret: SecretString,
    pub app_secret: Option<SecretString>,
    /// The classic `appsecret_proof` of `secret` under `app_secret`, computed once: it is the
    /// same for every call (the timed one is not, and is computed per call).
    pub proof: Option<SecretString>,
    /// `secret` as a form-urlencoded value, computed once: how it goes into a query or a form
    /// body, and how it may come back in an answer's links.
    pub encoded: SecretString,
    pub fingerprint: std::sync::Arc<str>,
}

/// The classic `appsecret_proof` of `token`, when its app's secret is known.
fn classic_proof(app_secret: Option<&SecretString>, token: &SecretString) -> Option<SecretString> {
    app_secret.map(|s| SecretString::from(graphwarden_meta::proof::classic(s, token)))
}

/// What the inventory knows of a token a caller sent.
#[derive(Debug, Clone)]
pub struct Known {
    pub alias: Option<std::sync::Arc<str>>,
    pub app_id: Option<std::sync::Arc<str>>,
    pub app_secret: Option<SecretString>,
    /// The classic `appsecret_proof` of the token under `app_secret`, computed once.
    pub proof: Option<SecretString>,
    pub fingerprint: std::sync::Arc<str>,
}

/// Why a call cannot be made with a stored token.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("the graphwarden API key is not valid (unknown, revoked or mistyped)")]
    BadKey,
    #[error(
        "a stored token was asked for (`X-Graphwarden-Token`) without a graphwarden API key; send one in `X-Graphwarden-Key` or as the access token"
    )]
    NoKey,
    #[error(
        "say which stored token to use: `X-Graphwarden-Token: ALIAS` (the key names several, and this listener has no default)"
    )]
    NoAlias,
    #[error("`{0}` is not a valid token alias")]
    BadAlias(String),
    #[error(
        "the key `{key}` may not use the token `{alias}`; a consumer key must name it (`graphwarden apikey create --role consumer --aliases {alias}`)"
    )]
    NotAllowed { key: String, alias: String },
    #[error("no stored token is called `{0}`")]
    UnknownAlias(String),
    #[error("the inventory could not be read: {0}")]
    Store(#[from] StoreError),
}

struct Cached<T> {
    value: T,
    at: Stopwatch,
}

/// A keyed 128-bit hash of a token.
type TokenHash = (u64, u64);

/// The map of [`TokenHash`]es hashes them no further: they are keyed hashes already.
#[derive(Debug, Default, Clone, Copy)]
struct AlreadyHashed;

impl std::hash::BuildHasher for AlreadyHashed {
    type Hasher = AlreadyHashedHasher;
    fn build_hasher(&self) -> Self::Hasher {
        AlreadyHashedHasher(0)
    }
}

/// Keeps the last `u64` written (a [`TokenHash`] writes two; the second is as random as the
/// first).
#[derive(Debug, Default)]
struct AlreadyHashedHasher(u64);

impl std::hash::Hasher for AlreadyHashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `(u64, u64)`; folded in anyway, so any key still hashes.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// The caches in front of the inventory.
pub struct Credentials {
    ttl: Duration,
    keys: Mutex<HashMap<[u8; 32], Cached<Option<ApiKey>>>>,
    stored: Mutex<HashMap<String, Cached<std::sync::Arc<Stored>>>>,
    /// By a keyed 128-bit hash of the token itself (two SipHash keys drawn at start), so a
    /// token seen before is found without computing its HMAC fingerprint again; the token is
    /// not kept.
    known: Mutex<HashMap<TokenHash, Cached<std::sync::Arc<Known>>, AlreadyHashed>>,
    /// The keys of the tokens' hash, random per process.
    token_hash: (u64, u64),
    /// This cache among the others in the process (tests run several), for the per-thread
    /// copies of `known`.
    id: u64,
    /// Bumped by [`Credentials::forget`]: per-thread copies made before are stale.
    generation: AtomicU64,
}

/// A thread's own copy of an answer of the shared caches: of a token it looked up lately
/// ([`Credentials::known`]) or of a stored token it injected ([`Credentials::injection`]).
struct Local<T> {
    cache: u64,
    generation: u64,
    /// Of what was asked: the token, or the key's text, the alias and the default.
    hash: TokenHash,
    /// When the shared entry it copies (the older of them) was read from the inventory.
    at: Stopwatch,
    value: Arc<T>,
}

/// Copies a thread keeps of each kind, newest first.
const LOCAL_KNOWN: usize = 16;

type Locals<T> = RefCell<Vec<Local<T>>>;

thread_local! {
    static KNOWN_HERE: Locals<Known> = const { RefCell::new(Vec::new()) };
    static INJECTIONS_HERE: Locals<Stored> = const { RefCell::new(Vec::new()) };
}

/// The next cache's id.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Known {
    /// A copy that shares no memory with `self`: text shared by two threads has its
    /// reference count written by both each time a call record takes it.
    fn unshared(&self) -> Self {
        Self {
            alias: self.alias.as_deref().map(Arc::from),
            app_id: self.app_id.as_deref().map(Arc::from),
            app_secret: self.app_secret.clone(),
            proof: self.proof.clone(),
            fingerprint: Arc::from(&*self.fingerprint),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Entries per cache before it is emptied (a cheap bound against a caller sending endless
/// distinct tokens).
const MAX_ENTRIES: usize = 10_000;

impl Credentials {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            keys: Mutex::new(HashMap::new()),
            stored: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::default()),
            token_hash: (rand::random(), rand::random()),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
        }
    }

    /// This thread's copy of the answer to `hash`, if it is still good at `now`: made under
    /// `generation` (the current one), from shared entries younger than `ttl`.
    fn local<T>(
        &self,
        here: &'static std::thread::LocalKey<Locals<T>>,
        hash: TokenHash,
        generation: u64,
        now: Stopwatch,
    ) -> Option<Arc<T>> {
        here.with(|k| {
            k.borrow()
                .iter()
                .find(|l| l.cache == self.id && l.hash == hash)
                .filter(|l| l.generation == generation && now.since(l.at) < self.ttl)
                .map(|l| Arc::clone(&l.value))
        })
    }

    /// Keep `value` as this thread's answer to `hash` (in place of an older one), made under
    /// `generation` (read before the shared caches were) from entries read at `at`.
    fn keep_local<T>(
        &self,
        here: &'static std::thread::LocalKey<Locals<T>>,
        hash: TokenHash,
        generation: u64,
        at: Stopwatch,
        value: &Arc<T>,
    ) {
        here.with(|k| {
            let mut k = k.borrow_mut();
            k.retain(|l| !(l.cache == self.id && l.hash == hash));
            if k.len() >= LOCAL_KNOWN {
                k.pop();
            }
            k.insert(
                0,
                Local {
                    cache: self.id,
                    generation,
                    hash,
                    at,
                    value: Arc::clone(value),
                },
            );
        });
    }

    /// Check a presented graphwarden key; with when what it answers was read from the
    /// inventory.
    async fn key(
        &self,
        inventory: &Inventory,
        presented: &str,
    ) -> Result<(ApiKey, Stopwatch), CredentialError> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if let Ok(keys) = self.keys.lock()
            && let Some(c) = keys.get(&digest)
            && c.at.elapsed() < self.ttl
        {
            return c
                .value
                .clone()
                .map(|k| (k, c.at))
                .ok_or(CredentialError::BadKey);
        }
        // (The inventory's futures are large and rarely run: boxed, so that every call's own
        // future stays small.)
        let key = Box::pin(inventory.verify_api_key(presented)).await?;
        let at = Stopwatch::start();
        if let Ok(mut keys) = self.keys.lock() {
            if keys.len() >= MAX_ENTRIES {
                keys.clear();
            }
            keys.insert(
                digest,
                Cached {
                    value: key.clone(),
                    at,
                },
            );
        }
        key.map(|k| (k, at)).ok_or(CredentialError::BadKey)
    }

    /// The stored token a caller holding the key `key_text` asks for: `alias` when it names
    /// one, else `default`, else the key's only token. Each thread keeps the answers it gave
    /// lately (as [`Credentials::known`] does), so the usual call — the same key and alias
    /// again — does not hash the key with SHA-256 again, take the shared caches' locks or
    /// copy the key's record. A kept answer lasts as long as the older of the two shared
    /// entries it was made from, and goes with them on [`Credentials::forget`]. `now` is
    /// when the call began: kept answers are judged fresh against it, not a clock read.
    pub async fn injection(
        &self,
        inventory: &Inventory,
        key_text: &str,
        alias: Option<&str>,
        default: Option<&str>,
        now: Stopwatch,
    ) -> Result<std::sync::Arc<Stored>, CredentialError> {
        let hash = self.hash_parts(&[
            key_text.as_bytes(),
            alias.unwrap_or("").as_bytes(),
            default.unwrap_or("").as_bytes(),
        ]);
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(value) = self.local(&INJECTIONS_HERE, hash, generation, now) {
            return Ok(value);
        }
        let (key, key_at) = self.key(inventory, key_text).await?;
        let alias = match (alias.or(default), key.aliases.as_slice()) {
            (Some(a), _) => a.to_owned(),
            (None, [only]) => only.to_string(),
            (None, _) => return Err(CredentialError::NoAlias),
        };
        let (value, stored_at) = self.stored(inventory, &key, &alias).await?;
        // The older of the two, so that the copy expires with the first of them.
        let at = key_at.min(stored_at);
        self.keep_local(&INJECTIONS_HERE, hash, generation, at, &value);
        Ok(value)
    }

    /// The stored token `alias`, for a caller holding `key`; with when it was read from the
    /// inventory.
    async fn stored(
        &self,
        inventory: &Inventory,
        key: &ApiKey,
        alias: &str,
    ) -> Result<(std::sync::Arc<Stored>, Stopwatch), CredentialError> {
        let alias = TokenAlias::parse(alias)
            .map_err(|_| CredentialError::BadAlias(alias.chars().take(64).collect()))?;
        let allowed = match key.role {
            Role::Admin => true,
            Role::Consumer => key.aliases.contains(&alias),
            _ => false,
        };
        if !allowed {
            return Err(CredentialError::NotAllowed {
                key: key.name.clone(),
                alias: alias.to_string(),
            });
        }
        if let Ok(stored) = self.stored.lock()
            && let Some(c) = stored.get(alias.as_str())
            && c.at.elapsed() < self.ttl
        {
            return Ok((std::sync::Arc::clone(&c.value), c.at));
        }
        let (token, secret) = match Box::pin(inventory.token_with_secret(&alias)).await {
            Ok(found) => found,
            Err(StoreError::NotFound { .. }) => {
                return Err(CredentialError::UnknownAlias(alias.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let secret = secret?;
        let app_secret = Box::pin(inventory.app_secret(&token.app_id)).await.ok();
        let fingerprint = inventory.token_fingerprint(secret.expose_secret())?;
        let proof = classic_proof(app_secret.as_ref(), &secret);
        let encoded = SecretString::from(
            form_urlencoded::byte_serialize(secret.expose_secret().as_bytes()).collect::<String>(),
        );
        let value = std::sync::Arc::new(Stored {
            encoded,
            alias: token.alias.clone(),
            alias_text: token.alias.as_str().into(),
            app_id: token.app_id.as_str().into(),
            secret,
            app_secret,
            proof,
            fingerprint: fingerprint.into(),
        });
        let at = Stopwatch::start();
        if let Ok(mut stored) = self.stored.lock() {
            if stored.len() >= MAX_ENTRIES {
                stored.clear();
            }
            stored.insert(
                alias.to_string(),
                Cached {
                    value: std::sync::Arc::clone(&value),
                    at,
                },
            );
        }
        Ok((value, at))
    }

    /// A keyed 128-bit hash of `token`: SipHash-1-3 (as std's maps use), one pass for both
    /// halves.
    fn hash(&self, token: &str) -> TokenHash {
        self.hash_parts(&[token.as_bytes()])
    }

    /// The same hash of several texts, each followed by its length (so that no two lists of
    /// texts write the same bytes).
    fn hash_parts(&self, parts: &[&[u8]]) -> TokenHash {
        use siphasher::sip128::Hasher128;
        let mut h =
            siphasher::sip128::SipHasher13::new_with_keys(self.token_hash.0, self.token_hash.1);
        for part in parts {
            std::hash::Hasher::write(&mut h, part);
            // (A single text, a token, is hashed as it is.)
            if parts.len() > 1 {
                std::hash::Hasher::write(&mut h, &(part.len() as u64).to_le_bytes());
            }
        }
        let h = h.finish128();
        (h.h1, h.h2)
    }

    /// What the inventory knows of a token a caller sent itself. Each thread keeps copies of
    /// the tokens it looked up lately, so the usual call (a token seen within `ttl`) takes no
    /// lock and writes no memory another thread writes. (`now` as for
    /// [`Credentials::injection`].)
    pub async fn known(
        &self,
        inventory: &Inventory,
        token: &str,
        now: Stopwatch,
    ) -> Result<std::sync::Arc<Known>, CredentialError> {
        let hash = self.hash(token);
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(value) = self.local(&KNOWN_HERE, hash, generation, now) {
            return Ok(value);
        }
        // Boxed: the inventory's futures are large, and each call's future would hold room
        // for them.
        let (value, at) = Box::pin(self.known_shared(inventory, token, hash)).await?;
        let copy = Arc::new(value.unshared());
        self.keep_local(&KNOWN_HERE, hash, generation, at, &copy);
        Ok(copy)
    }

    /// [`Credentials::known`] from the shared cache or the inventory, with when it was read.
    async fn known_shared(
        &self,
        inventory: &Inventory,
        token: &str,
        hash: TokenHash,
    ) -> Result<(std::sync::Arc<Known>, Stopwatch), CredentialError> {
        if let Ok(known) = self.known.lock()
            && let Some(c) = known.get(&hash)
            && c.at.elapsed() < self.ttl
        {
            return Ok((std::sync::Arc::clone(&c.value), c.at));
        }
        let fingerprint = inventory.token_fingerprint(token)?;
        let alias = inventory
            .store()
            .token_alias_by_fingerprint(&fingerprint)
            .await?;
        let (app_id, app_secret) = match &alias {
            Some(alias) => match inventory.token(alias).await {
                Ok(t) => (
                    Some(t.app_id.as_str().into()),
                    inventory.app_secret(&t.app_id).await.ok(),
                ),
                Err(_) => (None, None),
            },
            None => (None, None),
        };
        let proof = classic_proof(app_secret.as_ref(), &SecretString::from(token.to_owned()));
        let value = std::sync::Arc::new(Known {
            alias: alias.map(|a| a.as_str().into()),
            app_id,
            app_secret,
            proof,
            fingerprint: fingerprint.into(),
        });
        let at = Stopwatch::start();
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= MAX_ENTRIES {
                known.clear();
            }
            known.insert(
                hash,
                Cached {
                    value: std::sync::Arc::clone(&value),
                    at,
                },
            );
        }
        Ok((value, at))
    }

    /// Forget what is cached of a token (Meta just rejected it, or it was renewed).
    pub fn forget(&self, alias: Option<&str>, fingerprint: Option<&str>) {
        if let (Some(alias), Ok(mut stored)) = (alias, self.stored.lock()) {
            stored.remove(alias);
        }
        if let (Some(fp), Ok(mut known)) = (fingerprint, self.known.lock()) {
            known.retain(|_, c| &*c.value.fingerprint != fp);
        }
        // Then every thread's copies go (they are few, and looked up again at once); after
        // the shared entries, so a copy made from one of those is stale already.
        self.generation.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphwarden_core::{AppId, TokenKind};
    use graphwarden_store::{NewApp, NewToken};
    use graphwarden_testkit::TestStore;

    /// The app `1234`, with the secret `s3cret`.
    async fn add_app(inv: &Inventory) {
        inv.add_app(
            NewApp {
                app_id: AppId::parse("1234").unwrap(),
                name: "app".into(),
                secret: SecretString::from("s3cret".to_owned()),
                approved: true,
                notes: String::new(),
            },
            "test",
        )
        .await
        .unwrap();
    }

    /// A user token of app `1234`.
    async fn add_token(inv: &Inventory, alias: &str, secret: &str) {
        inv.add_token(
            NewToken {
                alias: TokenAlias::parse(alias).unwrap(),
                kind: TokenKind::User,
                app_id: AppId::parse("1234").unwrap(),
                secret: SecretString::from(secret.to_owned()),
                meta_user_id: None,
                page_id: None,
                business_id: None,
                parent: None,
                owner: "ops@example.com".into(),
                requested_by: String::new(),
                purpose: "test".into(),
                scopes_needed: vec![],
                tags: vec![],
            },
            "test",
        )
        .await
        .unwrap();
    }

    /// What `known` says of `token` on a thread of its own (a proxy worker's).
    fn known_elsewhere(c: &Arc<Credentials>, inv: &Arc<Inventory>, token: &str) -> Option<String> {
        let (c, inv, token) = (Arc::clone(c), Arc::clone(inv), token.to_owned());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                c.known(&inv, &token, Stopwatch::start())
                    .await
                    .unwrap()
                    .alias
                    .as_deref()
                    .map(str::to_owned)
            })
        })
        .join()
        .unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_threads_injections_follow_the_key_the_alias_and_forget() {
        let store = TestStore::sqlite();
        let inv = Arc::new(store.initialize().await);
        let c = Credentials::new(Duration::from_secs(3600));
        add_app(&inv).await;
        for (alias, secret) in [("ana", "EAAana+token/1"), ("bob", "EAAbob")] {
            add_token(&inv, alias, secret).await;
        }
        let alias = |a: &str| TokenAlias::parse(a).unwrap();
        let (_, one) = inv
            .create_api_key("one", Role::Consumer, vec![alias("ana")], "test")
            .await
            .unwrap();
        let (_, two) = inv
            .create_api_key(
                "two",
                Role::Consumer,
                vec![alias("ana"), alias("bob")],
                "test",
            )
            .await
            .unwrap();
        let (one, two) = (one.expose_secret(), two.expose_secret());

        // A key naming one token needs no alias; the answer is kept and given again.
        let first = c
            .injection(&inv, one, None, None, Stopwatch::start())
            .await
            .unwrap();
        assert_eq!(first.alias.as_str(), "ana");
        assert_eq!(first.encoded.expose_secret(), "EAAana%2Btoken%2F1");
        assert_eq!(
            first.proof.as_ref().map(|p| p.expose_secret().to_owned()),
            Some(graphwarden_meta::proof::classic(
                &SecretString::from("s3cret".to_owned()),
                &first.secret
            ))
        );
        let again = c
            .injection(&inv, one, None, None, Stopwatch::start())
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again), "this thread's copy");
        // The alias and the default are part of what is kept: each asks its own question.
        assert!(matches!(
            c.injection(&inv, two, None, None, Stopwatch::start()).await,
            Err(CredentialError::NoAlias)
        ));
        assert_eq!(
            c.injection(&inv, two, Some("bob"), None, Stopwatch::start())
                .await
                .unwrap()
                .alias
                .as_str(),
            "bob"
        );
        assert_eq!(
            c.injection(&inv, two, None, Some("bob"), Stopwatch::start())
                .await
                .unwrap()
                .alias
                .as_str(),
            "bob"
        );
        assert!(matches!(
            c.injection(&inv, one, Some("bob"), None, Stopwatch::start())
                .await,
            Err(CredentialError::NotAllowed { .. })
        ));
        assert!(matches!(
            c.injection(&inv, "gwk_nope_0000", Some("ana"), None, Stopwatch::start())
                .await,
            Err(CredentialError::BadKey)
        ));
        // Forgotten, the token is read again (a renewal stored a new secret, say).
        c.forget(Some("ana"), None);
        let fresh = c
            .injection(&inv, one, None, None, Stopwatch::start())
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &fresh), "read again after forget");
        assert_eq!(fresh.alias.as_str(), "ana");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_threads_copies_of_a_known_token_go_when_it_is_forgotten() {
        let store = TestStore::sqlite();
        let inv = Arc::new(store.initialize().await);
        let c = Arc::new(Credentials::new(Duration::from_secs(3600)));
        let token = "EAAthreadlocal123";
        let first = c.known(&inv, token, Stopwatch::start()).await.unwrap();
        assert_eq!(first.alias, None, "not in the inventory yet");
        assert_eq!(known_elsewhere(&c, &inv, token), None);
        add_app(&inv).await;
        add_token(&inv, "ana", token).await;
        // Within the time-to-live every thread answers from its copy …
        let again = c.known(&inv, token, Stopwatch::start()).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "this thread's own copy");
        assert_eq!(again.alias, None);
        // … until the token is forgotten: then no thread's copy is used.
        c.forget(None, Some(&first.fingerprint));
        let now = c.known(&inv, token, Stopwatch::start()).await.unwrap();
        assert_eq!(now.alias.as_deref(), Some("ana"));
        assert_eq!(now.app_id.as_deref(), Some("1234"));
        assert!(now.app_secret.is_some());
        // The proof is computed once, for this token under its app's secret.
        assert_eq!(
            now.proof.as_ref().map(|p| p.expose_secret().to_owned()),
            now.app_secret
                .as_ref()
                .map(|s| graphwarden_meta::proof::classic(
                    s,
                    &SecretString::from(token.to_owned())
                ))
        );
        assert_eq!(known_elsewhere(&c, &inv, token).as_deref(), Some("ana"));
        // A copy shares no text with the shared entry (or another thread's copy).
        let shared = c
            .known
            .lock()
            .unwrap()
            .values()
            .next()
            .map(|e| Arc::clone(&e.value))
            .unwrap();
        assert!(!Arc::ptr_eq(&shared.fingerprint, &now.fingerprint));
        assert_eq!(shared.fingerprint, now.fingerprint);
    }
}
