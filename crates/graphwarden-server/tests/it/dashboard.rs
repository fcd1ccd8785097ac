//! The dashboard over HTTP, as a browser sees it: sign-in by key into an HttpOnly session
//! cookie, pages per role, every form behind a CSRF token and the same origin, the previews
//! before renewing and revoking, and the security headers on every answer.

use crate::support::{Daemon, spawn};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Browser {
    async fn sign_in(d: &Daemon, role: &str) -> Self {
        let http = client();
        let r = http
            .post(format!("{}/login", d.url))
            .form(&[("key", d.key(role)), ("next", "/tokens")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{role} signs in");
        assert_eq!(r.headers()["location"], "/tokens");
        let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
            "{set}"
        );
        let cookie = set.split(';').next().unwrap().to_owned();
        Self {
            http,
            base: d.url.clone(),
            cookie,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        (status, r.text().await.unwrap())
    }

    /// The CSRF token the page's forms carry.
    async fn csrf(&self) -> String {
        let (_, body) = self.get("/").await;
        let at = body.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
        body[at..].split('"').next().unwrap().to_owned()
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(fields)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location, r.text().await.unwrap())
    }
}

async fn secret_of(d: &Daemon, alias: &str) -> String {
    use secrecy::ExposeSecret;
    d.inventory
        .open_token_secret(&graphwarden_core::TokenAlias::parse(alias).unwrap())
        .await
        .unwrap()
        .expose_secret()
        .to_owned()
}

/// No script in the page but the embedded files.
fn no_inline_script(body: &str) {
    for (i, _) in body.match_indices("<script") {
        let tag = &body[i..i + body[i..].find('>').unwrap()];
        assert!(tag.contains("src=\"/assets/"), "inline script: {tag}");
    }
    assert!(!body.contains(" style=\""), "inline style attribute");
    // Nothing is loaded from elsewhere: every script, stylesheet and icon is an embedded asset
    // (links people follow, such as re-login links, may point anywhere).
    for (i, _) in body
        .match_indices(" src=\"")
        .chain(body.match_indices("<link "))
    {
        let tag = &body[i..i + body[i..].find('>').unwrap()];
        let url = tag
            .split(if tag.starts_with("<link") {
                "href=\""
            } else {
                "src=\""
            })
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("");
        assert!(url.starts_with("/assets/"), "loaded from elsewhere: {tag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_session_and_sign_in_takes_only_live_keys() {
    let d = spawn(Default::default()).await;
    let http = client();
    let r = http
        .get(format!("{}/tokens?q=ana", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=%2Ftokens%3Fq%3Dana");
    let r = http.get(format!("{}/login", d.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let body = r.text().await.unwrap();
    assert!(body.contains("type=\"password\""));
    no_inline_script(&body);

    let r = http
        .post(format!("{}/login", d.url))
        .form(&[("key", "gwk_nope_nope"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("That key is not valid"));
    // Only this site's paths are followed after sign-in.
    let r = http
        .post(format!("{}/login", d.url))
        .form(&[("key", d.key("reader")), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/");
    // A sign-in form posted from another site is refused.
    let r = http
        .post(format!("{}/login", d.url))
        .header("origin", "https://evil.example")
        .form(&[("key", d.key("reader"))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A forged or tampered cookie is no session.
    let r = http
        .get(format!("{}/", d.url))
        .header("cookie", "gw_session=k.x.99999999999999.00")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // Revoking the key ends its sessions at once.
    let reader = Browser::sign_in(&d, "reader").await;
    assert_eq!(reader.get("/").await.0, 200);
    d.inventory.revoke_api_key("reader", "test").await.unwrap();
    let r = reader
        .http
        .get(format!("{}/", d.url))
        .header("cookie", &reader.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // Assets come from the binary.
    let r = http
        .get(format!("{}/assets/dashboard.css", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let r = http
        .get(format!("{}/assets/uPlot.iife.min.js", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{}/assets/nothing.js", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_operators_act_admins_reveal_and_revoke() {
    let d = spawn(Default::default()).await;
    d.check().await;
    let ana_secret = d.sim.simulator().token("ana-long-lived").unwrap();

    let reader = Browser::sign_in(&d, "reader").await;
    for path in [
        "/",
        "/tokens",
        "/tokens/ana",
        "/usage",
        "/alerts",
        "/audits",
        "/jobs",
    ] {
        let (status, body) = reader.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        no_inline_script(&body);
        assert!(!body.contains(&ana_secret), "{path} shows no secret");
    }
    let (_, tokens) = reader.get("/tokens").await;
    assert!(tokens.contains("href=\"/tokens/ana\"") && tokens.contains("href=\"/tokens/bot\""));
    let (_, filtered) = reader.get("/tokens?kind=system_user").await;
    assert!(filtered.contains("/tokens/bot") && !filtered.contains("href=\"/tokens/ana\""));
    let (_, ana) = reader.get("/tokens/ana").await;
    assert!(ana.contains("ads_read"), "scopes shown");
    assert!(
        !ana.contains("Check now"),
        "a reader gets no action buttons"
    );
    let csrf = reader.csrf().await;
    let (status, _, _) = reader.post("/tokens/ana/check", &[("csrf", &csrf)]).await;
    assert_eq!(status, 403, "readers cannot act");

    let op = Browser::sign_in(&d, "operator").await;
    let csrf = op.csrf().await;
    assert_ne!(csrf, reader.csrf().await, "one token per session");
    // Without the token, with another session's, or from another origin: refused.
    assert_eq!(op.post("/tokens/ana/check", &[]).await.0, 403);
    assert_eq!(
        op.post("/tokens/ana/check", &[("csrf", &reader.csrf().await)])
            .await
            .0,
        403
    );
    let r = op
        .http
        .post(format!("{}/tokens/ana/check", d.url))
        .header("cookie", &op.cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (status, to, _) = op.post("/tokens/ana/check", &[("csrf", &csrf)]).await;
    assert_eq!((status, to.as_str()), (303, "/tokens/ana?done=checked"));
    let (_, page) = op.get("/tokens/ana?done=checked").await;
    assert!(page.contains("Inspected with debug_token"));

    // Renew: the preview first, changing nothing; then for real.
    let (status, _, preview) = op.post("/tokens/ana/renew", &[("csrf", &csrf)]).await;
    assert_eq!(status, 200);
    assert!(
        preview.contains("Renew `ana`?") && preview.contains("exchange"),
        "{preview}"
    );
    assert_eq!(
        secret_of(&d, "ana").await,
        ana_secret,
        "the preview changed nothing"
    );
    let (status, to, _) = op
        .post("/tokens/ana/renew", &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!((status, to.as_str()), (303, "/tokens/ana?done=renewed"));

    // Operators neither reveal nor revoke.
    assert_eq!(
        op.post("/tokens/ana/reveal", &[("csrf", &csrf), ("confirm", "yes")])
            .await
            .0,
        403
    );
    assert_eq!(
        op.post("/tokens/ana/revoke", &[("csrf", &csrf)]).await.0,
        403
    );

    // Silence from the form, run an audit, run a job.
    let (status, to, _) = op
        .post(
            "/silences",
            &[
                ("csrf", &csrf),
                ("matchers", "alertname=\"token_expiring\",token=\"ana\""),
                ("duration", "2h"),
                ("comment", "renewing it today"),
            ],
        )
        .await;
    assert_eq!((status, to.as_str()), (303, "/alerts?done=silenced"));
    let (_, alerts) = op.get("/alerts").await;
    assert!(alerts.contains("renewing it today") && alerts.contains("Expire"));
    let (status, to, _) = op.post("/audits/run", &[("csrf", &csrf)]).await;
    assert_eq!((status, to.as_str()), (303, "/audits?done=audited"));
    let (_, audits) = op.get("/audits").await;
    assert!(audits.contains("Audit #1"), "{audits}");
    let r = op
        .http
        .get(format!("{}/audits/1/report.html", d.url))
        .header("cookie", &op.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with("<!DOCTYPE html>"));

    // Admins: reveal (recorded first), revoke after the preview.
    let admin = Browser::sign_in(&d, "admin").await;
    let csrf = admin.csrf().await;
    let (status, _, ask) = admin.post("/tokens/ana/reveal", &[("csrf", &csrf)]).await;
    assert_eq!(status, 200);
    assert!(ask.contains("Show the secret"));
    let (_, _, shown) = admin
        .post(
            "/tokens/ana/reveal",
            &[("csrf", &csrf), ("confirm", "yes"), ("reason", "debugging")],
        )
        .await;
    let now = secret_of(&d, "ana").await;
    assert_ne!(now, ana_secret, "renewed");
    assert!(shown.contains(&now), "the renewed secret is shown");
    let events = d
        .inventory
        .token_events(&graphwarden_core::TokenAlias::parse("ana").unwrap())
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "token.revealed" && e.actor == "dashboard:admin")
    );
    let (status, _, preview) = admin.post("/tokens/ana/revoke", &[("csrf", &csrf)]).await;
    assert_eq!(status, 200);
    assert!(
        preview.contains("Revoke `ana` at Meta?")
            && preview.contains("Consumer keys that fetch it: consumer"),
        "{preview}"
    );
    let (status, to, _) = admin
        .post("/tokens/ana/revoke", &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!((status, to.as_str()), (303, "/tokens/ana?done=revoked"));
    let (_, page) = admin.get("/tokens/ana").await;
    assert!(page.contains("badge bad\">revoked"), "{page}");
    let (_, overview) = admin.get("/").await;
    assert!(
        overview.contains("re-login link"),
        "the action feed offers the way back"
    );

    // Signing out ends the cookie.
    let (status, to, _) = admin.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((status, to.as_str()), (303, "/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_users_sign_in_with_a_password_stored_only_as_an_argon2id_hash() {
    use secrecy::SecretString;
    let d = spawn(Default::default()).await;
    let password = "correct horse battery staple";
    d.inventory
        .add_user(
            "ana",
            graphwarden_core::Role::Operator,
            &SecretString::from(password),
            "test",
        )
        .await
        .unwrap();
    let short = d
        .inventory
        .add_user(
            "ben",
            graphwarden_core::Role::Reader,
            &SecretString::from("short"),
            "test",
        )
        .await;
    assert!(short.is_err(), "short passwords are refused");
    let stored = d.inventory.store().user("ana").await.unwrap().unwrap();
    assert!(
        stored.password_hash.starts_with("$argon2id$"),
        "{}",
        stored.password_hash
    );
    assert!(!stored.password_hash.contains(password));

    let http = client();
    for (user, pw) in [("ana", "wrong password here"), ("nobody", password)] {
        let r = http
            .post(format!("{}/login", d.url))
            .form(&[("user", user), ("password", pw)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{user}");
        assert!(r.text().await.unwrap().contains("do not match"));
    }
    let r = http
        .post(format!("{}/login", d.url))
        .form(&[
            ("user", "ana"),
            ("password", password),
            ("next", "/tokens/ana"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let b = Browser {
        http,
        base: d.url.clone(),
        cookie,
    };
    let (status, page) = b.get("/tokens/ana").await;
    assert_eq!(status, 200);
    assert!(page.contains("Check now"), "an operator acts");
    assert!(!page.contains("Reveal…"), "but does not reveal");
    let csrf = b.csrf().await;
    let (status, _, _) = b.post("/tokens/ana/check", &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    let events = d.inventory.recent_events(20).await.unwrap();
    assert!(
        events.iter().any(|e| e.actor == "dashboard:user:ana"),
        "events name the user"
    );
    assert!(
        d.inventory
            .user("ana")
            .await
            .unwrap()
            .unwrap()
            .last_login_at
            .is_some()
    );

    // Removing the user ends the session.
    d.inventory.remove_user("ana", "test").await.unwrap();
    let r = b
        .http
        .get(format!("{}/", d.url))
        .header("cookie", &b.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_token_pages_chart_the_proxied_calls() {
    let d = spawn(Default::default()).await;
    let p = d.proxy(|_| {}).await;
    let ana = d.sim.simulator().token("ana-long-lived").unwrap();
    for _ in 0..3 {
        let r = d
            .http
            .get(format!(
                "{}/v26.0/act_{}/campaigns?access_token={ana}",
                p.url,
                graphwarden_sim::world::ids::AD_ACCOUNT
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    p.stop().await;
    let reader = Browser::sign_in(&d, "reader").await;
    let (_, usage) = reader.get("/usage").await;
    assert!(usage.contains("3 call(s) through the proxy"), "{usage}");
    // The chart data rides in attributes (escaped JSON the script parses).
    let at = usage.find("Business use case").unwrap();
    assert!(
        usage[at..].contains("ads_management"),
        "the use-case type is charted: {}",
        &usage[at..(at + 800).min(usage.len())]
    );
    let at = usage.find("per app and ad account").unwrap();
    assert!(
        usage[at..].contains(&format!("act_{}", graphwarden_sim::world::ids::AD_ACCOUNT)),
        "the ad account's usage is charted: {}",
        &usage[at..(at + 800).min(usage.len())]
    );
    let (_, token) = reader.get("/tokens/ana").await;
    assert!(
        token.contains("/{version}/act_{id}/campaigns"),
        "recent calls listed"
    );
    assert!(!token.contains(&ana) && !usage.contains(&ana));
}
