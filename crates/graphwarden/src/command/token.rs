//! `graphwarden token add|list|show|remove|events|reveal`.

use std::io::Write;

use comfy_table::Cell;
use graphwarden_core::duration::parse_duration;
use graphwarden_core::secret::check_token_text;
use graphwarden_core::{AppId, MetaId, Tag, TokenAlias, TokenKind, TokenStatus, parse_scope_list};
use graphwarden_meta::AppCredentials;
use graphwarden_store::{GranularScope, NewToken, Token, TokenFilter};
use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::cli::{TokenAddArgs, TokenCommand, TokenListArgs};
use crate::command::{Context, parse_flag};
use crate::exit::{self, CliError, CliResult};
use crate::input::{self, SecretSource};
use crate::output;

/// A token as `--json` shows it. The first fields are the table's columns, under the same
/// names; the rest are what `token show` adds.
#[derive(Debug, Serialize)]
struct TokenView<'a> {
    alias: &'a str,
    kind: TokenKind,
    app: &'a str,
    status: TokenStatus,
    expires_in: String,
    scopes: Option<&'a [String]>,
    owner: &'a str,
    status_cause: &'a str,
    action: &'static str,
    expires_in_seconds: Option<i64>,
    expires_at: Option<String>,
    never_expires: bool,
    data_access_expires_at: Option<String>,
    issued_at: Option<String>,
    granular_scopes: Option<&'a [GranularScope]>,
    scopes_needed: Vec<&'a str>,
    requested_by: &'a str,
    purpose: &'a str,
    tags: Vec<&'a str>,
    hint: &'a str,
    user_id: Option<&'a str>,
    page_id: Option<&'a str>,
    business_id: Option<&'a str>,
    parent: Option<&'a str>,
    created_at: String,
    updated_at: String,
    last_checked_at: Option<String>,
    last_used_at: Option<String>,
    flags: &'a [String],
    renewal_failures: i64,
    renewal_pending_since: Option<String>,
    renewal_policy: Option<&'a graphwarden_store::RenewalOverride>,
}

impl<'a> TokenView<'a> {
    fn new(t: &'a Token, now: Timestamp) -> Self {
        let expires_at = match t.expires {
            graphwarden_store::Expiry::At(at) => Some(output::time(at)),
            _ => None,
        };
        Self {
            alias: t.alias.as_str(),
            kind: t.kind,
            app: t.app_id.as_str(),
            status: t.status,
            expires_in: output::expires_in(t.expires, now),
            scopes: t.scopes.as_deref(),
            owner: &t.owner,
            status_cause: &t.status_cause,
            action: t.status.action(),
            expires_in_seconds: output::expires_in_seconds(t.expires, now),
            expires_at,
            never_expires: t.expires == graphwarden_store::Expiry::Never,
            data_access_expires_at: t.data_access_expires_at.map(output::time),
            issued_at: t.issued_at.map(output::time),
            granular_scopes: t.granular_scopes.as_deref(),
            scopes_needed: t.scopes_needed.iter().map(|s| s.as_str()).collect(),
            requested_by: &t.requested_by,
            purpose: &t.purpose,
            tags: t.tags.iter().map(Tag::as_str).collect(),
            hint: &t.hint,
            user_id: t.meta_user_id.as_ref().map(MetaId::as_str),
            page_id: t.page_id.as_ref().map(MetaId::as_str),
            business_id: t.business_id.as_ref().map(MetaId::as_str),
            parent: t.parent_alias.as_ref().map(TokenAlias::as_str),
            created_at: output::time(t.created_at),
            updated_at: output::time(t.updated_at),
            last_checked_at: t.last_checked_at.map(output::time),
            last_used_at: t.last_used_at.map(output::time),
            flags: &t.flags,
            renewal_failures: t.renewal_failures,
            renewal_pending_since: t.pending_since.map(output::time),
            renewal_policy: t.renewal_policy.as_ref(),
        }
    }
}

fn scopes_text(scopes: Option<&[String]>) -> String {
    match scopes {
        None => "-".to_owned(),
        Some([]) => "(none)".to_owned(),
        Some(list) if list.len() <= 3 => list.join(","),
        Some(list) => format!("{} +{}", list[..3].join(","), list.len() - 3),
    }
}

fn dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

pub async fn run(ctx: &Context, command: TokenCommand) -> CliResult<u8> {
    match command {
        TokenCommand::Add(args) => add(ctx, *args).await,
        TokenCommand::List(args) => list(ctx, args).await,
        TokenCommand::Show { alias, json } => show(ctx, &alias, json).await,
        TokenCommand::Remove { alias, yes } => remove(ctx, &alias, yes).await,
        TokenCommand::Events { alias, json } => events(ctx, &alias, json).await,
        TokenCommand::Reveal { alias, yes, reason } => reveal(ctx, &alias, yes, &reason).await,
        TokenCommand::Exchange { alias, json } => {
            crate::command::renew::exchange(ctx, &alias, json).await
        }
        TokenCommand::Renewal {
            alias,
            window,
            fraction,
            off,
            on,
            reset,
        } => renewal(ctx, &alias, window.as_deref(), fraction, off, on, reset).await,
        TokenCommand::MintSystemUser {
            alias,
            app_id,
            system_user,
            scopes,
            expiring,
            caller,
            json,
        } => {
            crate::command::pages::mint(
                ctx,
                &alias,
                &app_id,
                &system_user,
                &scopes,
                expiring,
                &caller,
                json,
            )
            .await
        }
    }
}

fn alias_arg(text: &str) -> CliResult<TokenAlias> {
    parse_flag("ALIAS", text, TokenAlias::parse)
}

fn optional_id(flag: &str, text: Option<&str>) -> CliResult<Option<MetaId>> {
    text.map(|t| parse_flag(flag, t, MetaId::parse)).transpose()
}

async fn add(ctx: &Context, args: TokenAddArgs) -> CliResult<u8> {
    // Check every flag before reading the secret or touching the store.
    let alias = alias_arg(&args.alias)?;
    let app_id = parse_flag("--app", &args.app_id, AppId::parse)?;
    let kind = args
        .kind
        .as_deref()
        .map(|k| parse_flag("--kind", k, TokenKind::parse))
        .transpose()?;
    let scopes_needed = parse_flag("--scopes-needed", &args.scopes_needed, parse_scope_list)?;
    let tags = args
        .tags
        .iter()
        .map(|t| parse_flag("--tag", t, Tag::parse))
        .collect::<CliResult<Vec<_>>>()?;
    let parent = args
        .parent
        .as_deref()
        .map(|p| parse_flag("--parent", p, TokenAlias::parse))
        .transpose()?;
    let meta_user_id = optional_id("--user-id", args.user_id.as_deref())?;
    let page_id = optional_id("--page-id", args.page_id.as_deref())?;
    let business_id = optional_id("--business-id", args.business_id.as_deref())?;
    let source = SecretSource::from_flags(args.from_file.as_deref(), args.from_env.as_deref());

    let inventory = ctx.inventory().await?;
    let secret = input::read_secret("token", &source)?;
    let secret = SecretString::from(check_token_text(secret.expose_secret())?.to_owned());
    // Ask Meta first: it tells the kind and the status, so the inventory shows reality.
    let app = AppCredentials {
        app_id: app_id.to_string(),
        secret: inventory.app_secret(&app_id).await?,
    };
    let now = ctx.clock.now();
    let policy = ctx.check_policy()?;
    let probed =
        graphwarden_lifecycle::probe(&ctx.graph()?, &secret, &app, now, policy.warning_window)
            .await;
    let kind = kind
        .or_else(|| {
            probed
                .as_ref()
                .ok()
                .and_then(|(_, a)| a.meta_kind.as_deref())
                .and_then(graphwarden_lifecycle::check::kind_from_meta)
        })
        .unwrap_or(TokenKind::User);
    let token = inventory
        .add_token(
            NewToken {
                alias,
                kind,
                app_id,
                secret,
                meta_user_id,
                page_id,
                business_id,
                parent,
                owner: args.owner,
                requested_by: args.requested_by,
                purpose: args.purpose,
                scopes_needed,
                tags,
            },
            &ctx.actor,
        )
        .await?;
    let note = match &probed {
        Ok((_, assessment)) => {
            let inspection = graphwarden_lifecycle::check::inspection_for(&token, assessment, now);
            inventory
                .record_inspection(&token, inspection, &ctx.actor)
                .await?;
            None
        }
        Err(e) => Some(format!(
            "Meta could not be asked ({e}); the token is stored with status `unknown`: run `graphwarden check {}` later.",
            token.alias
        )),
    };
    let token = inventory.token(&token.alias).await?;
    if args.json {
        output::print_json(&TokenView::new(&token, ctx.clock.now()))?;
    } else {
        println!(
            "Stored {} token `{}` ({}) for app {}: {}.",
            token.kind, token.alias, token.hint, token.app_id, token.status
        );
    }
    if let Some(note) = note {
        eprintln!("warning: {note}");
    } else if !token.status.is_usable() {
        eprintln!(
            "warning: Meta reports this token as {} ({}). {}",
            token.status,
            token.status_cause,
            token.status.action()
        );
    }
    for flag in &token.flags {
        eprintln!("warning: {flag}");
    }
    Ok(0)
}

async fn list(ctx: &Context, args: TokenListArgs) -> CliResult<u8> {
    let filter = TokenFilter {
        status: args
            .status
            .as_deref()
            .map(|s| parse_flag("--status", s, TokenStatus::parse))
            .transpose()?,
        kind: args
            .kind
            .as_deref()
            .map(|k| parse_flag("--kind", k, TokenKind::parse))
            .transpose()?,
        app_id: args
            .app_id
            .as_deref()
            .map(|a| parse_flag("--app", a, AppId::parse))
            .transpose()?,
        expiring_within: args
            .expiring_within
            .as_deref()
            .map(|d| parse_flag("--expiring-within", d, parse_duration))
            .transpose()?,
        tag: args
            .tag
            .as_deref()
            .map(|t| parse_flag("--tag", t, Tag::parse))
            .transpose()?,
    };
    let tokens = ctx.inventory().await?.tokens(&filter).await?;
    let now = ctx.clock.now();
    if args.json {
        output::print_json(&output::Seq::new(
            tokens.iter().map(|t| TokenView::new(t, now)),
        ))?;
        return Ok(0);
    }
    if tokens.is_empty() {
        println!("No tokens match.");
        return Ok(0);
    }
    let mut table = output::table(&[
        "ALIAS",
        "KIND",
        "APP",
        "STATUS",
        "EXPIRES IN",
        "SCOPES",
        "OWNER",
    ]);
    for t in &tokens {
        table.add_row(vec![
            Cell::new(t.alias.as_str()),
            Cell::new(t.kind.as_str()),
            Cell::new(t.app_id.as_str()),
            output::status_cell(t.status),
            Cell::new(output::expires_in(t.expires, now)),
            Cell::new(scopes_text(t.scopes.as_deref())),
            Cell::new(dash(&t.owner)),
        ]);
    }
    output::print_table(&table);
    Ok(0)
}

async fn show(ctx: &Context, alias: &str, json: bool) -> CliResult<u8> {
    let alias = alias_arg(alias)?;
    let token = ctx.inventory().await?.token(&alias).await?;
    let view = TokenView::new(&token, ctx.clock.now());
    if json {
        output::print_json(&view)?;
        return Ok(0);
    }
    let opt = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let rows: Vec<(&str, String)> = vec![
        ("alias", view.alias.to_owned()),
        ("kind", view.kind.to_string()),
        ("app", view.app.to_owned()),
        ("hint", view.hint.to_owned()),
        (
            "status",
            format!("{} ({})", view.status, dash(view.status_cause)),
        ),
        ("action", view.action.to_owned()),
        ("expires in", view.expires_in.clone()),
        ("expires at", opt(view.expires_at.as_deref())),
        (
            "data access until",
            opt(view.data_access_expires_at.as_deref()),
        ),
        ("issued at", opt(view.issued_at.as_deref())),
        ("scopes", scopes_text(view.scopes)),
        (
            "scopes needed",
            dash(&view.scopes_needed.join(",")).to_owned(),
        ),
        ("owner", dash(view.owner).to_owned()),
        ("requested by", dash(view.requested_by).to_owned()),
        ("purpose", dash(view.purpose).to_owned()),
        ("tags", dash(&view.tags.join(", ")).to_owned()),
        ("user id", opt(view.user_id)),
        ("page id", opt(view.page_id)),
        ("business id", opt(view.business_id)),
        ("derived from", opt(view.parent)),
        ("added", view.created_at.clone()),
        ("last checked", opt(view.last_checked_at.as_deref())),
        ("last used", opt(view.last_used_at.as_deref())),
        ("flags", dash(&view.flags.join("; ")).to_owned()),
        (
            "renewal",
            match (
                view.renewal_policy,
                view.renewal_failures,
                &view.renewal_pending_since,
            ) {
                (_, _, Some(since)) => format!("a renewed token waits to be proven since {since}"),
                (_, n, None) if n > 0 => format!("{n} failed attempt(s) in a row"),
                (Some(p), _, None) => serde_json::to_string(p).unwrap_or_default(),
                _ => "default settings".to_owned(),
            },
        ),
    ];
    let mut table = output::table(&["FIELD", "VALUE"]);
    for (k, v) in rows {
        table.add_row(vec![k.to_owned(), v]);
    }
    output::print_table(&table);
    Ok(0)
}

async fn remove(ctx: &Context, alias: &str, yes: bool) -> CliResult<u8> {
    let alias = alias_arg(alias)?;
    let inventory = ctx.inventory().await?;
    let token = inventory.token(&alias).await?;
    if !yes
        && !input::confirm(
            &format!(
                "Remove the token `{}` ({}) and its stored secret?",
                token.alias, token.hint
            ),
            "--yes",
        )?
    {
        println!("Nothing removed.");
        return Ok(0);
    }
    let token = inventory.remove_token(&alias, &ctx.actor).await?;
    println!(
        "Removed token `{}` ({}). Its history stays in the event log.",
        token.alias, token.hint
    );
    Ok(0)
}

async fn events(ctx: &Context, alias: &str, json: bool) -> CliResult<u8> {
    let alias = alias_arg(alias)?;
    let events = ctx.inventory().await?.token_events(&alias).await?;
    crate::command::events::print_events(&events, json)?;
    Ok(0)
}

async fn reveal(ctx: &Context, alias: &str, yes: bool, reason: &str) -> CliResult<u8> {
    let alias = alias_arg(alias)?;
    let inventory = ctx.inventory().await?;
    // Make sure it exists before asking.
    inventory.token(&alias).await?;
    if !yes
        && !input::confirm(
            &format!("Print the secret token `{alias}`? This is recorded in the event log."),
            "--yes",
        )?
    {
        println!("Nothing revealed.");
        return Ok(0);
    }
    let secret = inventory.reveal_token(&alias, &ctx.actor, reason).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", secret.expose_secret())
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::new(exit::IO, format!("could not write the token: {e}")))?;
    Ok(0)
}

async fn renewal(
    ctx: &Context,
    alias: &str,
    window: Option<&str>,
    fraction: Option<f64>,
    off: bool,
    on: bool,
    reset: bool,
) -> CliResult<u8> {
    let alias = alias_arg(alias)?;
    let inventory = ctx.inventory().await?;
    let token = inventory.token(&alias).await?;
    let policy = if reset {
        None
    } else {
        let mut p = token.renewal_policy.clone().unwrap_or_default();
        if let Some(w) = window {
            p.user_window_secs = Some(parse_flag("--window", w, parse_duration)?.as_secs());
        }
        if let Some(f) = fraction {
            p.system_user_fraction = Some(f);
        }
        if off {
            p.enabled = Some(false);
        }
        if on {
            p.enabled = Some(true);
        }
        Some(p)
    };
    inventory
        .set_renewal_policy(&token, policy.clone(), &ctx.actor)
        .await?;
    match policy {
        None => println!("`{alias}` follows its app's and the global renewal settings again."),
        Some(p) => println!(
            "Renewal settings of `{alias}`: {}",
            serde_json::to_string(&p).unwrap_or_default()
        ),
    }
    Ok(0)
}
