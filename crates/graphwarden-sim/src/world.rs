//! The simulated world: apps, users, pages, businesses, system users, ad accounts, campaigns,
//! datasets and tokens. The same types are the scenario file format (TOML or JSON), documented
//! in `docs/simulator.md`; [`World::default_world`] is the world `graphwarden sim` starts with.

use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::{Deserialize, Serialize};

fn default_true() -> bool {
    true
}

/// Seconds in the lifetimes of `meta-graph-reference.md` §1 and §4.
pub const LONG_LIVED_SECS: i64 = 5_183_944;
/// "About one to two hours" (§1): the simulator uses 1 h 40 min.
pub const SHORT_LIVED_SECS: i64 = 6_000;
/// Data access lasts 90 days (§1).
pub const DATA_ACCESS_SECS: i64 = 90 * 86_400;
/// Expiring system-user tokens: 60 days (§4).
pub const SIXTY_DAYS_SECS: i64 = 60 * 86_400;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct World {
    /// The simulator clock at load time (RFC 3339); absent = keep the current clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
    /// The version served for unversioned calls and reported in `facebook-api-version`.
    pub default_version: String,
    /// Whether the login dialog approves (`true`, the default) or the user cancels.
    #[serde(default = "default_true")]
    pub dialog_approves: bool,
    /// The user the login dialog logs in as; default the first user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialog_user: Option<String>,
    pub apps: Vec<App>,
    pub users: Vec<User>,
    pub pages: Vec<Page>,
    pub businesses: Vec<Business>,
    pub system_users: Vec<SystemUser>,
    pub ad_accounts: Vec<AdAccount>,
    pub campaigns: Vec<Campaign>,
    pub datasets: Vec<Dataset>,
    pub tokens: Vec<Token>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct App {
    pub id: String,
    pub name: String,
    pub secret: String,
    /// App Dashboard → Advanced → "Require App Secret" (§5).
    pub require_app_secret: bool,
    /// `development_access` or `standard_access` (§8.2).
    pub access_tier: String,
    /// Facebook Login → "Deauthorize Callback URL" (§6.3): the `deauthorize` event POSTs a
    /// `signed_request` here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deauthorize_callback_url: Option<String>,
    /// App settings → "Data Deletion Request URL" (§6.4): the `data_deletion` event POSTs a
    /// `signed_request` here and reports the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_deletion_callback_url: Option<String>,
    /// Valid OAuth redirect URIs, matched exactly (Strict Mode, §3.2).
    pub redirect_uris: Vec<String>,
    /// Daily active users: the app allowance is 200 calls × users per hour (§8.1).
    pub daily_active_users: i64,
    /// Users who administer or develop the app: their tokens may inspect others (§2.1).
    pub admins: Vec<String>,
}

impl Default for App {
    fn default() -> Self {
        Self {
            id: String::new(),
            name: "Simulated app".into(),
            secret: random_hex(16),
            require_app_secret: false,
            access_tier: "development_access".into(),
            deauthorize_callback_url: None,
            data_deletion_callback_url: None,
            redirect_uris: Vec::new(),
            daily_active_users: 100,
            admins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct User {
    pub id: String,
    pub name: String,
    /// Apps this user authorised, with the permissions granted and declined.
    pub apps: Vec<Authorization>,
    /// Must pass a security checkpoint (subcode 459).
    pub checkpointed: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    pub app_id: String,
    pub granted: Vec<String>,
    pub declined: Vec<String>,
    pub expired: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Page {
    pub id: String,
    pub name: String,
    pub category: String,
    pub roles: Vec<PageRole>,
    /// Engaged users: Page-token calls are allowed 4800 × this per hour (§8.3). 0 = 10.
    pub engaged_users: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PageRole {
    pub user_id: String,
    /// `ANALYZE`, `ADVERTISE`, `MODERATE`, `CREATE_CONTENT`, `MANAGE` (§3.4).
    pub tasks: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Business {
    pub id: String,
    pub name: String,
    /// Users who administer the business (may generate system-user tokens, §4).
    pub admins: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystemUser {
    pub id: String,
    pub name: String,
    pub business_id: String,
    /// `admin` or `employee`.
    pub role: String,
    /// Apps installed for this system user (`POST /{id}/applications`, §4).
    pub apps: Vec<String>,
    /// The business requires expiring tokens (§4): non-expiring generation is refused.
    pub requires_expiring_tokens: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdAccount {
    /// Numeric id, without `act_`.
    pub id: String,
    pub name: String,
    pub business_id: String,
    pub currency: String,
    /// Active ads: they raise the BUC quotas (§8.3).
    pub active_ads: i64,
    /// `development_access` or `standard_access`.
    pub access_tier: String,
    /// 1 = active.
    pub account_status: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Campaign {
    pub id: String,
    pub account_id: String,
    pub name: String,
    /// `ACTIVE`, `PAUSED`, `DELETED`, `ARCHIVED`.
    pub status: String,
    pub objective: String,
    /// Minor currency units, as a string (Meta's wire form).
    pub daily_budget: String,
    /// Budget changes in the current hour (613/1487632 past four, §8.4).
    #[serde(skip)]
    pub budget_changes: Vec<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dataset {
    pub id: String,
    pub name: String,
    pub events: Vec<DatasetEvent>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetEvent {
    pub event_name: String,
    /// Event Match Quality out of 10 (§11).
    pub composite_score: f64,
    pub coverage_percentage: f64,
    pub acr_percentage: f64,
    pub upload_frequency: String,
}

/// The kinds debug_token reports (§2.2); system-user tokens report `USER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    #[default]
    User,
    Page,
    App,
    SystemUser,
}

impl TokenKind {
    pub fn debug_type(self) -> &'static str {
        match self {
            Self::User | Self::SystemUser => "USER",
            Self::Page => "PAGE",
            Self::App => "APP",
        }
    }
}

/// Why a token stopped working, with the subcode Meta reports (§7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invalidation {
    /// 460.
    PasswordChanged,
    /// 458.
    Deauthorized,
    /// 466.
    Revoked,
    /// 492.
    RoleLost,
    /// 459.
    Checkpoint,
    /// The app secret was reset (app tokens only).
    AppSecretReset,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GranularScope {
    pub scope: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Token {
    /// The token string; minted when a scenario leaves it out.
    pub token: String,
    /// A label for people (`graphwarden sim` prints it); not part of Meta's model.
    pub label: String,
    pub kind: TokenKind,
    pub app_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_user_id: Option<String>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; 0 = never.
    pub expires_at: i64,
    /// Unix seconds; absent for app tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_access_expires_at: Option<i64>,
    pub long_lived: bool,
    pub scopes: Vec<String>,
    pub granular_scopes: Vec<GranularScope>,
    /// The token this one was derived from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalidated: Option<Invalidation>,
}

/// An unguessable, variable-length `EAA…` token (§1: opaque, length varies, commonly `EAA`).
pub fn mint_token() -> String {
    let mut rng = rand::thread_rng();
    let len = rng.gen_range(150..=230);
    let body: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    format!("EAA{body}")
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill(buf.as_mut_slice());
    hex::encode(buf)
}

/// A random numeric id of 15 digits, like Meta's.
pub fn random_id() -> String {
    let n: u64 = rand::thread_rng().gen_range(100_000_000_000_000..999_999_999_999_999);
    n.to_string()
}

/// Ids of the default world, stable so that documentation and tests can name them.
pub mod ids {
    pub const APP: &str = "1029384756102938";
    pub const USER_ANA: &str = "100000000000101";
    pub const USER_BEN: &str = "100000000000102";
    pub const PAGE: &str = "200000000000201";
    pub const BUSINESS: &str = "300000000000301";
    pub const SYSTEM_USER: &str = "400000000000401";
    pub const AD_ACCOUNT: &str = "500000000000501";
    pub const DATASET: &str = "600000000000601";
    pub const REDIRECT_URI: &str = "http://127.0.0.1:8080/oauth/callback";
}

impl World {
    /// A parsed scenario: TOML when `text` does not start with `{`, else JSON.
    pub fn parse(text: &str) -> Result<Self, String> {
        let world: World = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| format!("scenario JSON: {e}"))?
        } else {
            toml::from_str(text).map_err(|e| format!("scenario TOML: {e}"))?
        };
        Ok(world)
    }

    /// Fill what a scenario may leave out (token strings, ids, defaults) and check references.
    pub fn normalise(&mut self, now_secs: i64) -> Result<(), String> {
        if self.default_version.is_empty() {
            self.default_version = "v26.0".into();
        }
        for app in &mut self.apps {
            if app.id.is_empty() {
                app.id = random_id();
            }
            if app.secret.is_empty() {
                app.secret = random_hex(16);
            }
        }
        for page in &mut self.pages {
            if page.engaged_users <= 0 {
                page.engaged_users = 10;
            }
        }
        for account in &mut self.ad_accounts {
            if let Some(stripped) = account.id.strip_prefix("act_") {
                account.id = stripped.to_owned();
            }
            if account.access_tier.is_empty() {
                account.access_tier = "development_access".into();
            }
            if account.currency.is_empty() {
                account.currency = "USD".into();
            }
            if account.account_status == 0 {
                account.account_status = 1;
            }
        }
        for campaign in &mut self.campaigns {
            if let Some(stripped) = campaign.account_id.strip_prefix("act_") {
                campaign.account_id = stripped.to_owned();
            }
            if campaign.id.is_empty() {
                campaign.id = random_id();
            }
            if campaign.status.is_empty() {
                campaign.status = "ACTIVE".into();
            }
        }
        for token in &mut self.tokens {
            if token.token.is_empty() {
                token.token = mint_token();
            }
            if token.issued_at == 0 {
                token.issued_at = now_secs;
            }
            // Data access follows a person's activity (§1): user and Page tokens only.
            if matches!(token.kind, TokenKind::User | TokenKind::Page)
                && token.data_access_expires_at.is_none()
            {
                token.data_access_expires_at = Some(token.issued_at + DATA_ACCESS_SECS);
            }
            if !self.apps.iter().any(|a| a.id == token.app_id) {
                return Err(format!(
                    "token `{}` names app `{}`, which the scenario does not define",
                    token.label, token.app_id
                ));
            }
        }
        Ok(())
    }

    pub fn app(&self, id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.id == id)
    }

    pub fn app_mut(&mut self, id: &str) -> Option<&mut App> {
        self.apps.iter_mut().find(|a| a.id == id)
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.id == id)
    }

    pub fn page(&self, id: &str) -> Option<&Page> {
        self.pages.iter().find(|p| p.id == id)
    }

    pub fn system_user(&self, id: &str) -> Option<&SystemUser> {
        self.system_users.iter().find(|s| s.id == id)
    }

    pub fn ad_account(&self, id: &str) -> Option<&AdAccount> {
        self.ad_accounts.iter().find(|a| a.id == id)
    }

    pub fn campaign(&self, id: &str) -> Option<&Campaign> {
        self.campaigns.iter().find(|c| c.id == id)
    }

    pub fn token_index(&self, token: &str) -> Option<usize> {
        self.tokens.iter().position(|t| t.token == token)
    }

    /// The small world `graphwarden sim` starts with when given no scenario.
    pub fn default_world(now_secs: i64) -> Self {
        use ids::*;
        let ads_scopes: Vec<String> = [
            "ads_read",
            "ads_management",
            "business_management",
            "pages_show_list",
            "pages_read_engagement",
            "public_profile",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut campaigns = Vec::new();
        for i in 1..=12 {
            campaigns.push(Campaign {
                id: format!("70000000000{:04}", i),
                account_id: AD_ACCOUNT.into(),
                name: format!("Campaign {i}"),
                status: if i % 4 == 0 {
                    "PAUSED".into()
                } else {
                    "ACTIVE".into()
                },
                objective: "OUTCOME_SALES".into(),
                daily_budget: format!("{}", 1000 * i),
                budget_changes: Vec::new(),
            });
        }
        let user_token = |label: &str, long: bool, secs: i64| Token {
            token: mint_token(),
            label: label.into(),
            kind: TokenKind::User,
            app_id: APP.into(),
            user_id: Some(USER_ANA.into()),
            issued_at: now_secs,
            expires_at: now_secs + secs,
            data_access_expires_at: Some(now_secs + DATA_ACCESS_SECS),
            long_lived: long,
            scopes: ads_scopes.clone(),
            granular_scopes: vec![GranularScope {
                scope: "pages_show_list".into(),
                target_ids: vec![PAGE.into()],
            }],
            ..Token::default()
        };
        let long_user = user_token("ana-long-lived", true, LONG_LIVED_SECS);
        let page = Token {
            token: mint_token(),
            label: "acme-page".into(),
            kind: TokenKind::Page,
            app_id: APP.into(),
            user_id: Some(USER_ANA.into()),
            page_id: Some(PAGE.into()),
            issued_at: now_secs,
            expires_at: 0,
            data_access_expires_at: Some(now_secs + DATA_ACCESS_SECS),
            long_lived: true,
            scopes: vec![
                "pages_show_list".into(),
                "pages_read_engagement".into(),
                "public_profile".into(),
            ],
            granular_scopes: vec![GranularScope {
                scope: "pages_show_list".into(),
                target_ids: vec![PAGE.into()],
            }],
            parent: Some(long_user.token.clone()),
            ..Token::default()
        };
        let system = |label: &str, expires_at: i64| Token {
            token: mint_token(),
            label: label.into(),
            kind: TokenKind::SystemUser,
            app_id: APP.into(),
            system_user_id: Some(SYSTEM_USER.into()),
            issued_at: now_secs,
            expires_at,
            data_access_expires_at: None,
            long_lived: true,
            scopes: vec![
                "ads_read".into(),
                "ads_management".into(),
                "business_management".into(),
            ],
            ..Token::default()
        };
        World {
            now: None,
            default_version: "v26.0".into(),
            dialog_approves: true,
            dialog_user: Some(USER_ANA.into()),
            apps: vec![App {
                id: APP.into(),
                name: "graphwarden demo app".into(),
                secret: random_hex(16),
                require_app_secret: false,
                access_tier: "development_access".into(),
                deauthorize_callback_url: None,
                data_deletion_callback_url: None,
                redirect_uris: vec![REDIRECT_URI.into()],
                daily_active_users: 100,
                admins: vec![USER_ANA.into()],
            }],
            users: vec![
                User {
                    id: USER_ANA.into(),
                    name: "Ana Admin".into(),
                    apps: vec![Authorization {
                        app_id: APP.into(),
                        granted: ads_scopes.clone(),
                        declined: vec!["email".into()],
                        expired: vec![],
                    }],
                    checkpointed: false,
                },
                User {
                    id: USER_BEN.into(),
                    name: "Ben Buyer".into(),
                    apps: vec![Authorization {
                        app_id: APP.into(),
                        granted: vec!["ads_read".into(), "public_profile".into()],
                        declined: vec![],
                        expired: vec![],
                    }],
                    checkpointed: false,
                },
            ],
            pages: vec![Page {
                id: PAGE.into(),
                name: "Acme Shoes".into(),
                category: "Shopping & retail".into(),
                engaged_users: 10,
                roles: vec![PageRole {
                    user_id: USER_ANA.into(),
                    tasks: vec![
                        "ANALYZE".into(),
                        "ADVERTISE".into(),
                        "MODERATE".into(),
                        "CREATE_CONTENT".into(),
                        "MANAGE".into(),
                    ],
                }],
            }],
            businesses: vec![Business {
                id: BUSINESS.into(),
                name: "Acme Agency".into(),
                admins: vec![USER_ANA.into()],
            }],
            system_users: vec![SystemUser {
                id: SYSTEM_USER.into(),
                name: "graphwarden-bot".into(),
                business_id: BUSINESS.into(),
                role: "admin".into(),
                apps: vec![APP.into()],
                requires_expiring_tokens: false,
            }],
            ad_accounts: vec![AdAccount {
                id: AD_ACCOUNT.into(),
                name: "Acme Shoes — Prospecting".into(),
                business_id: BUSINESS.into(),
                currency: "USD".into(),
                active_ads: 10,
                access_tier: "development_access".into(),
                account_status: 1,
            }],
            campaigns,
            datasets: vec![Dataset {
                id: DATASET.into(),
                name: "Acme Shoes pixel".into(),
                events: vec![
                    DatasetEvent {
                        event_name: "Purchase".into(),
                        composite_score: 8.3,
                        coverage_percentage: 91.0,
                        acr_percentage: 12.5,
                        upload_frequency: "real_time".into(),
                    },
                    DatasetEvent {
                        event_name: "AddToCart".into(),
                        composite_score: 6.1,
                        coverage_percentage: 64.0,
                        acr_percentage: 4.0,
                        upload_frequency: "hourly".into(),
                    },
                ],
            }],
            tokens: vec![
                long_user,
                user_token("ana-short-lived", false, SHORT_LIVED_SECS),
                page,
                system("bot-never-expires", 0),
                system("bot-60-days", now_secs + SIXTY_DAYS_SECS),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unguessable_and_vary_in_length() {
        let a = mint_token();
        let b = mint_token();
        assert_ne!(a, b);
        assert!(a.starts_with("EAA"));
        let lengths: std::collections::BTreeSet<usize> =
            (0..50).map(|_| mint_token().len()).collect();
        assert!(lengths.len() > 5, "lengths vary: {lengths:?}");
    }

    #[test]
    fn scenarios_parse_from_toml_and_json_and_refuse_unknown_fields() {
        let toml = r#"
            [[apps]]
            id = "1"
            secret = "s"
            [[tokens]]
            app_id = "1"
            label = "t"
            expires_at = 0
        "#;
        let mut world = World::parse(toml).unwrap();
        world.normalise(1_000).unwrap();
        assert!(world.tokens[0].token.starts_with("EAA"));
        assert_eq!(world.tokens[0].issued_at, 1_000);
        let json = r#"{"apps":[{"id":"1"}],"tokens":[{"app_id":"2"}]}"#;
        let mut bad = World::parse(json).unwrap();
        assert!(
            bad.normalise(0).is_err(),
            "a token of an unknown app is refused"
        );
        assert!(World::parse("[[apps]]\nidd = 1").is_err());
    }

    #[test]
    fn callback_urls_are_optional_and_survive_a_round_trip() {
        let toml = r#"
            [[apps]]
            id = "1"
            deauthorize_callback_url = "http://127.0.0.1:3000/deauth"
            data_deletion_callback_url = "http://127.0.0.1:3000/deletion"
            [[apps]]
            id = "2"
        "#;
        let world = World::parse(toml).unwrap();
        let text = serde_json::to_string(&world).unwrap();
        let again = World::parse(&text).unwrap();
        assert_eq!(
            again.apps[0].data_deletion_callback_url.as_deref(),
            Some("http://127.0.0.1:3000/deletion")
        );
        assert_eq!(
            again.apps[0].deauthorize_callback_url.as_deref(),
            Some("http://127.0.0.1:3000/deauth")
        );
        assert_eq!(again.apps[1].data_deletion_callback_url, None);
        assert!(
            !text.contains("null"),
            "absent URLs are left out of the dump: {text}"
        );
    }

    #[test]
    fn default_world_round_trips() {
        let world = World::default_world(1_767_225_600);
        let text = serde_json::to_string(&world).unwrap();
        let mut again = World::parse(&text).unwrap();
        again.normalise(0).unwrap();
        assert_eq!(again.tokens.len(), world.tokens.len());
    }
}
