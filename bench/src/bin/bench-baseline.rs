//! The baseline: a bare actix-web endpoint on the receiver's route, same actix
//! version and worker count, that answers 200 without parsing or storing.
//!
//! Usage: `bench-baseline ADDR WORKERS`

use actix_web::{web, App, HttpResponse, HttpServer};

async fn accept(_body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"accepted":1,"duplicates":0,"rejected":0}"#)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    actix_web::rt::System::new().block_on(
        HttpServer::new(|| {
            App::new().route("/v1/callbacks/{client}/{channel}", web::route().to(accept))
        })
        .workers(workers)
        .bind(addr)?
        .run(),
    )
}
