//! The web dashboard: one HTML page, one script and one style sheet, embedded in the binary
//! (`include_str!`) and served at `GET /`, `GET /dashboard.js`, `GET /dashboard.css`. Plain
//! HTML/JS/CSS: no build step, no framework, no CDN, so the daemon stays one self-contained
//! binary and the page works on a network without Internet. The page holds no data: it loads
//! without the token and reads everything from the REST API with `Authorization: Bearer`
//! (see `dashboard/dashboard.js`).

use actix_web::HttpResponse;

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// Only our own origin: no inline script or style, nothing from elsewhere, no framing. Media
/// comes from our own (signed) file URLs.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   media-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; \
                   base-uri 'none'";

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("content-security-policy", CSP))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("cache-control", "no-cache"))
        .body(body)
}

/// `GET /`: the dashboard page.
#[utoipa::path(
    get,
    path = "/",
    tag = "dashboard",
    operation_id = "dashboard",
    responses(
        (status = 200, description = "The dashboard's HTML page (no data in it: it reads the API with the token the user enters)", content_type = "text/html", body = String),
    )
)]
pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /dashboard.js`.
#[utoipa::path(
    get,
    path = "/dashboard.js",
    tag = "dashboard",
    operation_id = "dashboard_script",
    responses(
        (status = 200, description = "The dashboard's script", content_type = "text/javascript", body = String),
    )
)]
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /dashboard.css`.
#[utoipa::path(
    get,
    path = "/dashboard.css",
    tag = "dashboard",
    operation_id = "dashboard_style",
    responses(
        (status = 200, description = "The dashboard's style sheet", content_type = "text/css", body = String),
    )
)]
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}
