//! The HTTP surface. For now: liveness (`GET /health-check`), used by the Docker
//! `HEALTHCHECK` through `livekit-recorder healthcheck`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use actix_web::{get, App, HttpResponse, HttpServer};

#[get("/health-check")]
async fn health_check() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ok"}"#)
}

/// Serves until the process is stopped.
pub async fn serve(port: u16) -> std::io::Result<()> {
    tracing::info!(port, "listening");
    HttpServer::new(|| App::new().service(health_check)).bind(("0.0.0.0", port))?.run().await
}

/// A dependency-free probe for container health checks: GET /health-check on loopback, true
/// on HTTP 200.
pub fn probe(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else { return false };
    let _ = s.set_read_timeout(Some(timeout));
    let req = "GET /health-check HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    matches!(s.read(&mut head), Ok(n) if head[..n].starts_with(b"HTTP/1.1 200"))
}
