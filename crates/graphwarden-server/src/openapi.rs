//! The OpenAPI description of the API, built from the handlers themselves (utoipa), so a route
//! cannot exist without being documented. `openapi.json` at the repository root is this,
//! committed; a test fails when the two drift apart.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::handler::{
    alerts, apps, checks, health, jobs, meta, metrics, oauth, renewals, silences, tokens,
};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "graphwarden",
        description = "Keeps Meta Graph and Marketing API access tokens alive, watched and least-privileged. Every route but the health probes and `/metrics` needs `Authorization: Bearer KEY` (`graphwarden apikey create`).",
        license(name = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness, readiness and Prometheus metrics, without authentication (metrics can be made to ask for a reader key)"),
        (name = "apps", description = "Registered Meta apps"),
        (name = "tokens", description = "The token inventory and its event log"),
        (name = "lifecycle", description = "Inspection and renewal, now"),
        (name = "jobs", description = "The scheduler"),
        (name = "alerts", description = "Firing alerts and the silences that mute them"),
        (name = "meta", description = "Meta's callbacks and the browser login: no API key, each request proves itself (a signed_request, a signed link, an OAuth state)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("gwk_…")
                    .build(),
            ),
        );
    }
}

/// Every route, with its documentation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(metrics::get))
        .routes(routes!(apps::list))
        .routes(routes!(apps::get))
        .routes(routes!(tokens::list))
        .routes(routes!(tokens::get, tokens::delete))
        .routes(routes!(tokens::events))
        .routes(routes!(tokens::secret))
        .routes(routes!(tokens::recent_events))
        .routes(routes!(tokens::relogin_link))
        .routes(routes!(tokens::revoke))
        .routes(routes!(meta::deauthorize))
        .routes(routes!(meta::data_deletion))
        .routes(routes!(meta::deletion_status))
        .routes(routes!(oauth::start))
        .routes(routes!(oauth::callback))
        .routes(routes!(checks::run))
        .routes(routes!(renewals::run))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::runs))
        .routes(routes!(jobs::run))
        .routes(routes!(alerts::list))
        .routes(routes!(silences::list, silences::create))
        .routes(routes!(silences::expire))
}

/// The OpenAPI document as pretty JSON, as committed in `openapi.json`.
pub fn document() -> String {
    let (_, mut api) = router().split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api.to_pretty_json().unwrap_or_default()
}
