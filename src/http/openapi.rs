//! The API's OpenAPI 3.1 contract, derived by `utoipa` from the handlers' `#[utoipa::path]`
//! attributes and the request/response types' `ToSchema` derives, served (without auth) at
//! `GET /openapi.json`. `tests/recorder_openapi.rs` checks that it lists exactly the routes the
//! app registers and fuzzes the running daemon against it with schemathesis.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

use super::{dashboard, error, files, routes, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "livekit-recorder",
        description = "Records LiveKit participants into files. Every error is JSON `{\"error\": \"...\"}`. \
            A registered path with a method it does not take answers 405 and an unknown path 404, both \
            with that body. `/recordings/...` need `Authorization: Bearer <API_TOKEN>` when `API_TOKEN` \
            is set; `/recordings/webhooks` is verified with the LiveKit key pair instead; \
            `/health-check`, `/metrics`, `/openapi.json` and the dashboard's page and assets are open.",
    ),
    paths(
        dashboard::index,
        dashboard::script,
        dashboard::style,
        super::health_check,
        serve,
        routes::metrics,
        routes::list,
        routes::start,
        routes::stop,
        webhooks::receive,
        routes::get,
        files::part_file,
        files::part_file_link,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "recordings", description = "Start, stop and list recordings"),
        (name = "webhooks", description = "LiveKit webhooks"),
        (name = "operations", description = "Health, metrics and this contract"),
        (name = "dashboard", description = "The web dashboard (an HTML page and its assets)"),
    )
)]
struct ApiDoc;

/// The security schemes: `api_token` (bearer `API_TOKEN`) and `livekit_webhook` (the raw JWT
/// LiveKit signs a webhook with, in `Authorization`).
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`API_TOKEN` (only checked when it is set)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "livekit_webhook",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "The JWT LiveKit signs the webhook with (`LIVEKIT_API_KEY`/`LIVEKIT_API_SECRET`), \
                 carrying the body's SHA-256",
            ))),
        );
    }
}

/// The contract as utoipa builds it.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The contract as served: [`document`] in JSON, with the Link objects' keys spelled as
/// OpenAPI spells them (utoipa 5.5 serializes `operation_id`, `operation_ref` and
/// `request_body` in snake case, which tools such as schemathesis do not read).
pub fn json() -> serde_json::Value {
    let mut doc = serde_json::to_value(document()).expect("the OpenAPI document serializes");
    if let Some(paths) = doc["paths"].as_object_mut() {
        let links = paths
            .values_mut()
            .filter_map(|item| item.as_object_mut())
            .flat_map(|item| item.values_mut())
            .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
            .flat_map(|responses| responses.values_mut())
            .filter_map(|r| r.get_mut("links").and_then(|l| l.as_object_mut()))
            .flat_map(|links| links.values_mut())
            .filter_map(|link| link.as_object_mut());
        for link in links {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(snake) {
                    link.insert(camel.to_owned(), v);
                }
            }
        }
    }
    doc
}

static JSON: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string_pretty(&json()).expect("the OpenAPI document serializes"));

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object),
    )
)]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(JSON.as_str())
}
