//! `graphwarden demo`: the whole system on one machine with nothing configured. A simulated
//! agency (three apps and businesses, people, Pages, system users, ad accounts, about thirty
//! tokens of every kind) in the Graph simulator; the daemon — API, dashboard, proxy, scheduler,
//! alerts — on SQLite in a temporary data directory; traffic through the proxy; and time
//! compressed, so within a couple of minutes tokens renew, a password change kills a user token
//! and its Page tokens, a hot ad account is paced, alerts fire and resolve and an audit finds
//! things. Ctrl-C stops it and removes the directory.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use graphwarden_core::{AppId, Clock, MetaId, Role, Scope, SystemClock, TokenAlias, TokenKind};
use graphwarden_sim::SimConfig;
use graphwarden_sim::sim::SimClock;
use graphwarden_sim::world::{self, GranularScope, World, ids};
use graphwarden_store::{Inventory, MasterKey, NewApp, NewToken, SqliteOptions};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::cli::{DemoArgs, ServeArgs};
use crate::command::Context;
use crate::config::{self as settings, FlagSettings};
use crate::exit::{self, CliError, CliResult};

const APP_NORTHWIND: &str = "2029384756102939";
const APP_GLOBEX: &str = "3029384756102940";
const USER_CARLA: &str = "100000000000103";
const USER_DEV: &str = "100000000000104";
const PAGE_NORTHWIND: &str = "200000000000202";
const PAGE_GLOBEX: &str = "200000000000203";
const PAGE_GLOBEX_OUTLET: &str = "200000000000204";
const BUSINESS_NORTHWIND: &str = "300000000000302";
const BUSINESS_GLOBEX: &str = "300000000000303";
const SU_NORTHWIND: &str = "400000000000402";
const SU_GLOBEX: &str = "400000000000403";
const ACCOUNT_NORTHWIND: &str = "500000000000502";
const ACCOUNT_GLOBEX: &str = "500000000000503";
/// The account the traffic generator hammers, to show pacing.
const ACCOUNT_HOT: &str = "500000000000504";

const DAY: i64 = 86_400;

/// One token of the demo: its alias in graphwarden, its label in the simulator, and what the
/// inventory records about it.
struct Spec {
    alias: &'static str,
    label: &'static str,
    app: &'static str,
    kind: TokenKind,
    owner: &'static str,
    purpose: &'static str,
    needs: &'static [&'static str],
    parent: Option<&'static str>,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

/// The agency's world, with token lifetimes spread so that a few weeks of compressed time show
/// every lifecycle event.
fn agency_world(now: i64) -> World {
    let mut w = World::default_world(now);
    let template = w.apps[0].clone();
    w.apps[0].name = "Acme Ads (agency app)".into();
    for (id, name) in [
        (APP_NORTHWIND, "Northwind Reporting"),
        (APP_GLOBEX, "Globex Growth"),
    ] {
        let mut app = template.clone();
        app.id = id.into();
        app.name = name.into();
        app.secret = world::random_hex(16);
        w.apps.push(app);
    }
    let ads = s(&[
        "ads_read",
        "ads_management",
        "business_management",
        "pages_show_list",
        "pages_read_engagement",
        "public_profile",
    ]);
    for (id, name, app) in [
        (USER_CARLA, "Carla Client", APP_NORTHWIND),
        (USER_DEV, "Dev Developer", APP_GLOBEX),
    ] {
        w.users.push(graphwarden_sim::world::User {
            id: id.into(),
            name: name.into(),
            apps: vec![graphwarden_sim::world::Authorization {
                app_id: app.into(),
                granted: ads.clone(),
                ..Default::default()
            }],
            checkpointed: false,
        });
    }
    // Ben works on Acme's Page too, Carla on her own company's.
    if let Some(page) = w.pages.iter_mut().find(|p| p.id == ids::PAGE) {
        page.roles.push(graphwarden_sim::world::PageRole {
            user_id: ids::USER_BEN.into(),
            tasks: s(&["ANALYZE", "ADVERTISE", "CREATE_CONTENT"]),
        });
    }
    // Ben works for Acme too, with his own login.
    if let Some(ben) = w.users.iter_mut().find(|u| u.id == ids::USER_BEN) {
        ben.apps[0].granted = ads.clone();
    }
    for (id, name, user) in [
        (PAGE_NORTHWIND, "Northwind Coffee", ids::USER_BEN),
        (PAGE_GLOBEX, "Globex Shoes", USER_DEV),
        (PAGE_GLOBEX_OUTLET, "Globex Outlet", USER_DEV),
    ] {
        w.pages.push(graphwarden_sim::world::Page {
            id: id.into(),
            name: name.into(),
            category: "Shopping & retail".into(),
            roles: [user, USER_CARLA]
                .iter()
                .filter(|u| **u == user || id == PAGE_NORTHWIND)
                .map(|u| graphwarden_sim::world::PageRole {
                    user_id: (*u).into(),
                    tasks: s(&["ANALYZE", "ADVERTISE", "CREATE_CONTENT"]),
                })
                .collect(),
            engaged_users: 25,
        });
    }
    for (id, name, admin) in [
        (BUSINESS_NORTHWIND, "Northwind Holdings", USER_CARLA),
        (BUSINESS_GLOBEX, "Globex Corp", USER_DEV),
    ] {
        w.businesses.push(graphwarden_sim::world::Business {
            id: id.into(),
            name: name.into(),
            admins: vec![admin.into()],
        });
    }
    for (id, name, business, app) in [
        (
            SU_NORTHWIND,
            "northwind-etl",
            BUSINESS_NORTHWIND,
            APP_NORTHWIND,
        ),
        (SU_GLOBEX, "globex-bidder", BUSINESS_GLOBEX, APP_GLOBEX),
    ] {
        w.system_users.push(graphwarden_sim::world::SystemUser {
            id: id.into(),
            name: name.into(),
            business_id: business.into(),
            role: "admin".into(),
            apps: vec![app.into()],
            requires_expiring_tokens: false,
        });
    }
    for (id, name, business) in [
        (
            ACCOUNT_NORTHWIND,
            "Northwind — Always on",
            BUSINESS_NORTHWIND,
        ),
        (ACCOUNT_GLOBEX, "Globex — Retargeting", BUSINESS_GLOBEX),
        (ACCOUNT_HOT, "Globex — Black Friday", BUSINESS_GLOBEX),
    ] {
        w.ad_accounts.push(graphwarden_sim::world::AdAccount {
            id: id.into(),
            name: name.into(),
            business_id: business.into(),
            currency: "USD".into(),
            active_ads: 40,
            access_tier: "development_access".into(),
            account_status: 1,
        });
    }
    for (n, account) in [ACCOUNT_NORTHWIND, ACCOUNT_GLOBEX, ACCOUNT_HOT]
        .iter()
        .enumerate()
    {
        for i in 1..=4 {
            w.campaigns.push(graphwarden_sim::world::Campaign {
                id: format!("71{n}0000000{i:04}"),
                account_id: (*account).into(),
                name: format!("Campaign {i}"),
                status: "ACTIVE".into(),
                objective: "OUTCOME_SALES".into(),
                daily_budget: format!("{}", 2500 * i),
                budget_changes: Vec::new(),
            });
        }
    }

    // Tokens beyond the default world's five. Issued in the past so that renewal comes due
    // within the demo's few weeks.
    let user = |label: &str, app: &str, uid: &str, age_days: i64, long: bool| world::Token {
        token: world::mint_token(),
        label: label.into(),
        kind: world::TokenKind::User,
        app_id: app.into(),
        user_id: Some(uid.into()),
        issued_at: now - age_days * DAY,
        expires_at: if long {
            now - age_days * DAY + world::LONG_LIVED_SECS
        } else {
            now + 3 * 3600
        },
        long_lived: long,
        scopes: ads.clone(),
        ..Default::default()
    };
    let page =
        |label: &str, app: &str, uid: &str, page: &str, parent: &world::Token| world::Token {
            token: world::mint_token(),
            label: label.into(),
            kind: world::TokenKind::Page,
            app_id: app.into(),
            user_id: Some(uid.into()),
            page_id: Some(page.into()),
            issued_at: now - 20 * DAY,
            expires_at: 0,
            long_lived: true,
            scopes: s(&[
                "pages_show_list",
                "pages_read_engagement",
                "pages_manage_posts",
            ]),
            granular_scopes: vec![GranularScope {
                scope: "pages_show_list".into(),
                target_ids: vec![page.into()],
            }],
            parent: Some(parent.token.clone()),
            ..Default::default()
        };
    let system = |label: &str, app: &str, su: &str, age_days: i64, expiring: bool| world::Token {
        token: world::mint_token(),
        label: label.into(),
        kind: world::TokenKind::SystemUser,
        app_id: app.into(),
        system_user_id: Some(su.into()),
        issued_at: now - age_days * DAY,
        expires_at: if expiring {
            now - age_days * DAY + world::SIXTY_DAYS_SECS
        } else {
            0
        },
        long_lived: true,
        scopes: s(&["ads_read", "ads_management", "business_management"]),
        ..Default::default()
    };
    let app_token = |label: &str, app: &str| world::Token {
        token: format!("{app}|{}", world::random_hex(16)),
        label: label.into(),
        kind: world::TokenKind::App,
        app_id: app.into(),
        issued_at: now - 200 * DAY,
        long_lived: true,
        ..Default::default()
    };
    let ben = user("ben-long-lived", ids::APP, ids::USER_BEN, 50, true);
    let carla = user("carla-long-lived", APP_NORTHWIND, USER_CARLA, 56, true);
    let dev = user("dev-long-lived", APP_GLOBEX, USER_DEV, 40, true);
    let mut more = vec![
        page(
            "ben-northwind-page",
            ids::APP,
            ids::USER_BEN,
            PAGE_NORTHWIND,
            &ben,
        ),
        page("ben-acme-page", ids::APP, ids::USER_BEN, ids::PAGE, &ben),
        page(
            "carla-northwind-page",
            APP_NORTHWIND,
            USER_CARLA,
            PAGE_NORTHWIND,
            &carla,
        ),
        page("dev-globex-page", APP_GLOBEX, USER_DEV, PAGE_GLOBEX, &dev),
        page(
            "dev-outlet-page",
            APP_GLOBEX,
            USER_DEV,
            PAGE_GLOBEX_OUTLET,
            &dev,
        ),
        user("carla-short-lived", APP_NORTHWIND, USER_CARLA, 0, false),
        user("dev-short-lived", APP_GLOBEX, USER_DEV, 0, false),
        user("ben-reporting", ids::APP, ids::USER_BEN, 30, true),
        user("carla-reporting", APP_NORTHWIND, USER_CARLA, 10, true),
        user("dev-reporting", APP_GLOBEX, USER_DEV, 5, true),
        system("northwind-etl-60d", APP_NORTHWIND, SU_NORTHWIND, 47, true),
        system("northwind-etl", APP_NORTHWIND, SU_NORTHWIND, 120, false),
        system("globex-bidder-60d", APP_GLOBEX, SU_GLOBEX, 44, true),
        system("globex-bidder", APP_GLOBEX, SU_GLOBEX, 90, false),
        system("globex-reports-60d", APP_GLOBEX, SU_GLOBEX, 10, true),
        system("acme-bot-old", ids::APP, ids::SYSTEM_USER, 75, false),
        app_token("acme-app", ids::APP),
        app_token("northwind-app", APP_NORTHWIND),
        app_token("globex-app", APP_GLOBEX),
        ben,
        carla,
        dev,
    ];
    w.tokens.append(&mut more);
    w
}

/// What the inventory records for each simulator token.
fn specs() -> Vec<Spec> {
    let spec = |alias, label, app, kind, owner, purpose, needs, parent| Spec {
        alias,
        label,
        app,
        kind,
        owner,
        purpose,
        needs,
        parent,
    };
    use TokenKind::{App, Page, SystemUser, User};
    const READ: &[&str] = &["ads_read"];
    const MANAGE: &[&str] = &["ads_read", "ads_management"];
    const PAGES: &[&str] = &["pages_show_list", "pages_read_engagement"];
    vec![
        spec(
            "ana",
            "ana-long-lived",
            ids::APP,
            User,
            "ana@acme.example",
            "campaign management for Acme",
            MANAGE,
            None,
        ),
        spec(
            "ana-short",
            "ana-short-lived",
            ids::APP,
            User,
            "ana@acme.example",
            "",
            &[][..],
            None,
        ),
        spec(
            "acme-page",
            "acme-page",
            ids::APP,
            Page,
            "ana@acme.example",
            "Acme Shoes page insights",
            PAGES,
            Some("ana"),
        ),
        spec(
            "acme-bot",
            "bot-never-expires",
            ids::APP,
            SystemUser,
            "data-team@acme.example",
            "nightly export",
            MANAGE,
            None,
        ),
        spec(
            "acme-bot-60d",
            "bot-60-days",
            ids::APP,
            SystemUser,
            "data-team@acme.example",
            "bid adjustments",
            MANAGE,
            None,
        ),
        spec(
            "acme-bot-old",
            "acme-bot-old",
            ids::APP,
            SystemUser,
            "",
            "",
            &[][..],
            None,
        ),
        spec(
            "acme-app",
            "acme-app",
            ids::APP,
            App,
            "platform@acme.example",
            "webhooks and debug_token",
            &[][..],
            None,
        ),
        spec(
            "ben",
            "ben-long-lived",
            ids::APP,
            User,
            "ben@acme.example",
            "Northwind account work",
            MANAGE,
            None,
        ),
        spec(
            "ben-northwind-page",
            "ben-northwind-page",
            ids::APP,
            Page,
            "ben@acme.example",
            "Northwind page posts",
            PAGES,
            Some("ben"),
        ),
        spec(
            "ben-acme-page",
            "ben-acme-page",
            ids::APP,
            Page,
            "ben@acme.example",
            "",
            PAGES,
            Some("ben"),
        ),
        spec(
            "ben-reporting",
            "ben-reporting",
            ids::APP,
            User,
            "ben@acme.example",
            "weekly report",
            READ,
            None,
        ),
        spec(
            "carla",
            "carla-long-lived",
            APP_NORTHWIND,
            User,
            "carla@northwind.example",
            "in-house campaigns",
            MANAGE,
            None,
        ),
        spec(
            "carla-short",
            "carla-short-lived",
            APP_NORTHWIND,
            User,
            "carla@northwind.example",
            "",
            &[][..],
            None,
        ),
        spec(
            "carla-page",
            "carla-northwind-page",
            APP_NORTHWIND,
            Page,
            "carla@northwind.example",
            "Northwind page insights",
            PAGES,
            Some("carla"),
        ),
        spec(
            "carla-reporting",
            "carla-reporting",
            APP_NORTHWIND,
            User,
            "carla@northwind.example",
            "board dashboard",
            READ,
            None,
        ),
        spec(
            "northwind-etl-60d",
            "northwind-etl-60d",
            APP_NORTHWIND,
            SystemUser,
            "etl@northwind.example",
            "hourly insights pull",
            READ,
            None,
        ),
        spec(
            "northwind-etl",
            "northwind-etl",
            APP_NORTHWIND,
            SystemUser,
            "etl@northwind.example",
            "catalogue sync",
            MANAGE,
            None,
        ),
        spec(
            "northwind-app",
            "northwind-app",
            APP_NORTHWIND,
            App,
            "etl@northwind.example",
            "debug_token",
            &[][..],
            None,
        ),
        spec(
            "dev",
            "dev-long-lived",
            APP_GLOBEX,
            User,
            "dev@globex.example",
            "Globex launch",
            MANAGE,
            None,
        ),
        spec(
            "dev-short",
            "dev-short-lived",
            APP_GLOBEX,
            User,
            "dev@globex.example",
            "",
            &[][..],
            None,
        ),
        spec(
            "dev-page",
            "dev-globex-page",
            APP_GLOBEX,
            Page,
            "dev@globex.example",
            "Globex Shoes posts",
            PAGES,
            Some("dev"),
        ),
        spec(
            "dev-outlet-page",
            "dev-outlet-page",
            APP_GLOBEX,
            Page,
            "dev@globex.example",
            "Globex Outlet posts",
            PAGES,
            Some("dev"),
        ),
        spec(
            "dev-reporting",
            "dev-reporting",
            APP_GLOBEX,
            User,
            "dev@globex.example",
            "Black Friday report",
            READ,
            None,
        ),
        spec(
            "globex-bidder-60d",
            "globex-bidder-60d",
            APP_GLOBEX,
            SystemUser,
            "bidding@globex.example",
            "bid automation",
            MANAGE,
            None,
        ),
        spec(
            "globex-bidder",
            "globex-bidder",
            APP_GLOBEX,
            SystemUser,
            "bidding@globex.example",
            "budget pacing",
            MANAGE,
            None,
        ),
        spec(
            "globex-reports-60d",
            "globex-reports-60d",
            APP_GLOBEX,
            SystemUser,
            "bidding@globex.example",
            "reporting",
            READ,
            None,
        ),
        spec(
            "globex-app",
            "globex-app",
            APP_GLOBEX,
            App,
            "bidding@globex.example",
            "debug_token",
            &[][..],
            None,
        ),
    ]
}

fn free_port() -> CliResult<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CliError::new(exit::UNAVAILABLE, format!("no free port on loopback: {e}")))
}

fn make_dir() -> CliResult<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!(
        "graphwarden-demo-{}-{}",
        std::process::id(),
        world::random_hex(4)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| {
            CliError::new(
                exit::CANT_CREATE,
                format!("could not create {}: {e}", dir.display()),
            )
        })?;
    Ok(dir)
}

/// Removes the demo's directory however the demo ends.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn say(day: i64, text: impl AsRef<str>) {
    println!("[day {day:>2}] {}", text.as_ref());
}

pub async fn run(args: DemoArgs) -> CliResult<u8> {
    let dir = make_dir()?;
    let cleanup = Cleanup(dir.clone());
    let clock = Arc::new(SimClock::new(Arc::new(SystemClock)));
    let shared: Arc<dyn Clock> = clock.clone();

    // The simulated Meta.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| {
            CliError::new(
                exit::UNAVAILABLE,
                format!("could not listen on loopback: {e}"),
            )
        })?;
    let sim = graphwarden_sim::start(
        SimConfig {
            world: Some(agency_world(clock.now().as_second())),
            control: true,
            clock: Arc::clone(&shared),
        },
        listener,
    )
    .map_err(|e| CliError::new(exit::SOFTWARE, format!("the simulator did not start: {e}")))?;
    let world = sim.simulator().world();

    // graphwarden, configured for a demo: alerts looked at every second, everything else
    // the defaults.
    let api_port = match &args.listen {
        Some(l) => l
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0),
        None => free_port()?,
    };
    let api = format!("127.0.0.1:{api_port}");
    let proxy = format!("127.0.0.1:{}", free_port()?);
    std::fs::write(
        dir.join("graphwarden.toml"),
        format!(
            "graph_url = \"{}\"\n\n[log]\nlevel = \"error\"\n\n[server]\nlisten = \"{api}\"\n\n\
             [proxy]\nlisten = \"{proxy}\"\n\n[alerts]\nevaluate_every = \"1s\"\n\n[scheduler]\njitter = \"0s\"\n\n\
             [audit]\nexpected_user_ids = [\"{}\", \"{}\", \"{}\", \"{}\", \"{}\"]\n",
            sim.url(),
            ids::USER_ANA,
            ids::USER_BEN,
            USER_CARLA,
            ids::SYSTEM_USER,
            SU_NORTHWIND,
        ),
    )
    .map_err(|e| CliError::new(exit::IO, format!("could not write the demo's configuration: {e}")))?;
    let loaded = settings::load(Some(&dir), None, &FlagSettings::default())?;
    let ctx = Context {
        loaded,
        clock: Arc::clone(&shared),
        actor: "demo".to_owned(),
    };

    println!(
        "graphwarden demo: a simulated agency, the daemon on SQLite in {}",
        dir.display()
    );
    let key = MasterKey::generate();
    key.write_new_file(&ctx.loaded.key_file())?;
    let mut options = ctx.open_options(key)?;
    options.sqlite = SqliteOptions {
        create: true,
        ..options.sqlite
    };
    let inventory = Arc::new(Inventory::initialize(options).await?);
    for app in &world.apps {
        inventory
            .add_app(
                NewApp {
                    app_id: AppId::parse(&app.id)?,
                    name: app.name.clone(),
                    secret: SecretString::from(app.secret.clone()),
                    approved: app.id != APP_GLOBEX,
                    notes: String::new(),
                },
                "demo",
            )
            .await?;
    }
    let mut aliases = Vec::new();
    for spec in specs() {
        let Some(token) = world.tokens.iter().find(|t| t.label == spec.label) else {
            continue;
        };
        let alias = TokenAlias::parse(spec.alias)?;
        inventory
            .add_token(
                NewToken {
                    alias: alias.clone(),
                    kind: spec.kind,
                    app_id: AppId::parse(spec.app)?,
                    secret: SecretString::from(token.token.clone()),
                    meta_user_id: token
                        .user_id
                        .as_deref()
                        .or(token.system_user_id.as_deref())
                        .and_then(|u| MetaId::parse(u).ok()),
                    page_id: token.page_id.as_deref().and_then(|p| MetaId::parse(p).ok()),
                    business_id: None,
                    parent: spec.parent.map(TokenAlias::parse).transpose()?,
                    owner: spec.owner.into(),
                    requested_by: String::new(),
                    purpose: spec.purpose.into(),
                    scopes_needed: spec
                        .needs
                        .iter()
                        .map(|n| Scope::parse(n))
                        .collect::<Result<_, _>>()?,
                    tags: Vec::new(),
                },
                "demo",
            )
            .await?;
        aliases.push(alias);
    }
    let (_, admin_key) = inventory
        .create_api_key("demo-admin", Role::Admin, Vec::new(), "demo")
        .await?;
    let traffic_aliases: Vec<TokenAlias> = [
        "ana",
        "dev",
        "globex-bidder",
        "northwind-etl-60d",
        "carla-reporting",
        "dev-reporting",
    ]
    .iter()
    .filter_map(|a| TokenAlias::parse(a).ok())
    .collect();
    let (_, consumer_key) = inventory
        .create_api_key(
            "demo-traffic",
            Role::Consumer,
            traffic_aliases.clone(),
            "demo",
        )
        .await?;

    // The daemon.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let serve_ctx = Context {
        loaded: settings::load(Some(&dir), None, &FlagSettings::default())?,
        clock: Arc::clone(&shared),
        actor: "demo".to_owned(),
    };
    let daemon = tokio::spawn(async move {
        crate::command::serve::serve_until(
            &serve_ctx,
            ServeArgs {
                listen: Some(api.clone()),
                proxy_listen: Some(proxy.clone()),
            },
            stopped,
            false,
        )
        .await
    });
    let base = format!("http://127.0.0.1:{api_port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| CliError::new(exit::SOFTWARE, e.to_string()))?;
    wait_ready(&http, &base).await?;

    println!();
    println!("  Dashboard:  {base}/");
    println!("  Sign in with this key (an admin key made for the demo):");
    println!("    {}", admin_key.expose_secret());
    println!("  Graph proxy: {}", proxy_url(&ctx));
    println!("  Ctrl-C stops the demo and removes everything it made.");
    println!();

    let demo = Demo {
        http,
        base,
        sim_url: sim.url().to_owned(),
        admin: admin_key.expose_secret().to_owned(),
        consumer: consumer_key.expose_secret().to_owned(),
        proxy: proxy_url(&ctx),
        clock: Arc::clone(&clock),
        step: Duration::from_millis((args.seconds_per_day * 1000.0).clamp(200.0, 60_000.0) as u64),
        inventory: Arc::clone(&inventory),
    };
    let traffic = tokio::spawn(demo.clone().traffic(traffic_aliases, stop_rx.clone()));

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let interrupted = tokio::select! {
        r = demo.scenario(aliases.len()) => {
            if let Err(e) = r {
                eprintln!("The demo's scenario stopped: {}", e.message);
            }
            if args.once {
                false
            } else {
                println!();
                println!("The scenario is over; traffic keeps flowing through the proxy. Look around the dashboard at {}/ — Ctrl-C to stop.", demo.base);
                let _ = (&mut ctrl_c).await;
                true
            }
        }
        _ = &mut ctrl_c => true,
    };
    if interrupted {
        println!();
    }
    println!("Stopping: the daemon writes its last call records, then the directory is removed.");
    let _ = stop_tx.send(true);
    traffic.abort();
    match daemon.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => eprintln!("The daemon stopped with an error: {}", e.message),
        Err(e) => eprintln!("The daemon stopped abnormally: {e}"),
    }
    drop(inventory);
    sim.stop().await;
    drop(cleanup);
    println!("Stopped; {} is gone.", dir.display());
    Ok(0)
}

fn proxy_url(ctx: &Context) -> String {
    format!("http://{}", ctx.loaded.config.proxy.listen)
}

async fn wait_ready(http: &reqwest::Client, base: &str) -> CliResult {
    for _ in 0..100 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(CliError::new(exit::UNAVAILABLE, "the daemon did not start"))
}

#[derive(Clone)]
struct Demo {
    http: reqwest::Client,
    base: String,
    sim_url: String,
    admin: String,
    consumer: String,
    proxy: String,
    clock: Arc<SimClock>,
    step: Duration,
    inventory: Arc<Inventory>,
}

impl Demo {
    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> CliResult<Value> {
        let mut r = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.map_err(|e| {
            CliError::new(exit::UNAVAILABLE, format!("the daemon did not answer: {e}"))
        })?;
        r.json()
            .await
            .map_err(|e| CliError::new(exit::SOFTWARE, format!("the daemon's answer: {e}")))
    }

    /// Run a job through the API and wait for its summary.
    async fn job(&self, name: &str) -> CliResult<String> {
        let started = self
            .api(reqwest::Method::POST, &format!("/jobs/{name}/run"), None)
            .await?;
        let run_id = started["run_id"].as_i64().unwrap_or(-1);
        for _ in 0..300 {
            let runs = self
                .api(
                    reqwest::Method::GET,
                    &format!("/jobs/{name}/runs?limit=5"),
                    None,
                )
                .await?;
            if let Some(run) = runs
                .as_array()
                .and_then(|r| r.iter().find(|r| r["id"].as_i64() == Some(run_id)))
                && run["outcome"] != "running"
            {
                return Ok(run["summary"].as_str().unwrap_or_default().to_owned());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(format!("job `{name}` is still running"))
    }

    async fn alerts(&self) -> BTreeSet<String> {
        let Ok(list) = self.api(reqwest::Method::GET, "/alerts", None).await else {
            return BTreeSet::new();
        };
        list.as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let l = &a["labels"];
                let name = l["alertname"].as_str().unwrap_or("?");
                match l["token"].as_str() {
                    Some(t) => format!("{name} ({t})"),
                    None => {
                        let about: Vec<String> = l
                            .as_object()
                            .into_iter()
                            .flatten()
                            .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity"))
                            .filter_map(|(_, v)| v.as_str().map(str::to_owned))
                            .collect();
                        format!("{name} ({})", about.join(", "))
                    }
                }
            })
            .collect()
    }

    /// Print the alerts that fired and resolved since `before`.
    async fn alert_changes(&self, day: i64, before: &mut BTreeSet<String>) {
        // The engine looks every second.
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        let now = self.alerts().await;
        let fired: Vec<_> = now.difference(before).cloned().collect();
        let resolved: Vec<_> = before.difference(&now).cloned().collect();
        if !fired.is_empty() {
            say(day, format!("alerts fired: {}", fired.join(", ")));
        }
        if !resolved.is_empty() {
            say(day, format!("alerts resolved: {}", resolved.join(", ")));
        }
        *before = now;
    }

    async fn scenario(&self, stored: usize) -> CliResult {
        let mut alerts = BTreeSet::new();
        let check = self
            .api(reqwest::Method::POST, "/checks", Some(json!({})))
            .await?;
        let mut by: std::collections::BTreeMap<String, usize> = Default::default();
        for t in check["tokens"].as_array().into_iter().flatten() {
            *by.entry(t["status"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
        say(
            0,
            format!(
                "{stored} tokens stored and inspected with debug_token: {}",
                by.iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        say(
            0,
            "traffic starts through the proxy (six tokens, four ad accounts, one of them hot)",
        );
        // The alerts about what expires soon fire first; renewal resolves most of them.
        self.alert_changes(0, &mut alerts).await;
        let renew = self.job("renew").await?;
        say(
            0,
            format!(
                "renew job: {renew} (short-lived tokens are exchanged for long-lived ones at once)"
            ),
        );

        // A busy morning: the clock stands still while the traffic drives the hot account into
        // its limit, so pacing shows whatever the pace of the days.
        say(
            0,
            format!(
                "a busy morning on act_{ACCOUNT_HOT}: budget changes every few hundred milliseconds"
            ),
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        say(0, self.pacing().await);
        self.alert_changes(0, &mut alerts).await;

        for day in 1..=14 {
            tokio::time::sleep(self.step).await;
            self.clock.advance_ms(DAY * 1000);
            let renew = self.job("renew").await?;
            if renew.contains(" renewed") {
                say(day, format!("renew job: {renew}"));
            }
            if day % 2 == 0 {
                let inspect = self.job("inspect").await?;
                say(day, format!("inspect job: {inspect}"));
            }
            if day == 3 {
                let r = self
                    .http
                    .post(format!("{}/__sim/events/password_change", self.sim_url))
                    .json(&json!({"user_id": ids::USER_BEN}))
                    .send()
                    .await;
                if r.is_ok() {
                    say(
                        day,
                        "Ben changes his Facebook password: Meta kills his user token and the Page tokens derived from it",
                    );
                    let checked = self.api(reqwest::Method::POST, "/checks", Some(json!({"aliases": ["ben", "ben-northwind-page", "ben-acme-page", "ben-reporting"]}))).await?;
                    for t in checked["tokens"].as_array().into_iter().flatten() {
                        say(
                            day,
                            format!(
                                "  {} is now {}",
                                t["alias"].as_str().unwrap_or("?"),
                                t["status"].as_str().unwrap_or("?")
                            ),
                        );
                    }
                }
            }
            if day == 7 {
                let audit = self.job("audit").await?;
                say(
                    day,
                    format!("the weekly audit: {audit} (see Audits in the dashboard)"),
                );
            }
            self.alert_changes(day, &mut alerts).await;
        }
        let paced = self.pacing().await;
        say(14, paced);
        Ok(())
    }

    /// What the proxy did about the hot account, from its call records.
    async fn pacing(&self) -> String {
        let since = self.clock.now().as_millisecond() - 30 * DAY * 1000;
        let rollups = self
            .inventory
            .store()
            .rollups_since(since)
            .await
            .unwrap_or_default();
        let calls: i64 = rollups.iter().map(|r| r.calls).sum();
        let refused: i64 = rollups.iter().map(|r| r.refused).sum();
        let throttled: i64 = rollups
            .iter()
            .filter(|r| r.error_class == "throttled")
            .map(|r| r.calls)
            .sum();
        let hot = rollups
            .iter()
            .filter(|r| r.account.ends_with(ACCOUNT_HOT))
            .map(|r| r.max_usage_pct)
            .fold(0.0_f64, f64::max);
        // Calls graphwarden held back are answered with Meta's own throttle error, so they are
        // in `throttled` too.
        let by_meta = (throttled - refused).max(0);
        format!(
            "proxy so far: {calls} calls recorded; act_{ACCOUNT_HOT} reached {hot:.0} % of its limit; \
             {refused} held back by graphwarden (answered with Meta's throttle error without reaching \
             Meta), {by_meta} throttled by Meta itself"
        )
    }

    /// Calls through the proxy until stopped: reads for several tokens, and a burst of budget
    /// changes on the hot account that drives it into Meta's limit.
    async fn traffic(self, aliases: Vec<TokenAlias>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let accounts = [ids::AD_ACCOUNT, ACCOUNT_NORTHWIND, ACCOUNT_GLOBEX];
        let mut n = 0usize;
        loop {
            if *stop.borrow() {
                return;
            }
            n += 1;
            let alias = &aliases[n % aliases.len()];
            // Two calls in three go to the hot account, one in three of those a budget change.
            let (method, path) = match n % 6 {
                0 | 3 => (
                    reqwest::Method::POST,
                    format!("/v26.0/71200000000{:03}", 1 + n % 4),
                ),
                1 | 4 => (
                    reqwest::Method::GET,
                    format!("/v26.0/act_{ACCOUNT_HOT}/campaigns"),
                ),
                _ => (
                    reqwest::Method::GET,
                    format!("/v26.0/act_{}/campaigns", accounts[n % accounts.len()]),
                ),
            };
            let mut r = self
                .http
                .request(method.clone(), format!("{}{path}", self.proxy))
                .header("x-graphwarden-key", &self.consumer)
                .header(
                    "x-graphwarden-token",
                    if method == reqwest::Method::POST {
                        "globex-bidder"
                    } else {
                        alias.as_str()
                    },
                );
            if method == reqwest::Method::POST {
                r = r.form(&[("daily_budget", format!("{}", 2000 + n % 500))]);
            }
            let _ = r.send().await;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(60)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
