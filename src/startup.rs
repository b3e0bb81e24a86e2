//! Builds the application separately from running it, so tests and `main`
//! share one path: [`Application::build`] binds (port 0 allowed) and opens
//! the store, [`Application::run_until_stopped`] serves until SIGTERM/SIGINT
//! (or a stop through [`Application::handle`]) and then flushes the writer.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::KeepAlive;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::config::Settings;
use crate::export::Privacy;
use crate::http::{self, AppState};
use crate::retention::task::PruningTask;
use crate::store::{Store, StoreError, WriterHandle};
use crate::telemetry;
use crate::tls::{self, TlsError};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pseudonym key could not be loaded or created.
    #[error(transparent)]
    Key(#[from] crate::mask::KeyError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address from `server.listen`.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A bound, ready-to-run service.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    writer: WriterHandle,
    tls: bool,
    /// The in-process pruning task (`None` when `retention.interval` is 0).
    pruner: Option<PruningTask>,
}

impl Application {
    /// Opens storage and binds the listener; nothing is served until
    /// [`Application::run_until_stopped`].
    pub fn build(settings: Settings) -> Result<Application, StartError> {
        let settings = Arc::new(settings);
        let tls_config = match (&settings.server.tls_cert, &settings.server.tls_key) {
            (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
            _ => None,
        };
        let (store, writer) = Store::open(&settings.storage)?;
        let privacy = web::Data::new(Privacy::load(&settings)?);
        let listen = settings.server.listen;
        let bind_error = |source| StartError::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let shutdown_secs = settings.server.shutdown_timeout.as_secs();
        let limits = &settings.server;
        let keep_alive = match limits.keep_alive {
            d if d.is_zero() => KeepAlive::Disabled,
            d => KeepAlive::Timeout(d),
        };
        // actix counts connections per worker; the setting is for the server.
        let per_worker = limits.max_connections.div_ceil(workers);
        let (head_timeout, tls) = (limits.head_timeout, tls_config.is_some());
        let state = web::Data::new(AppState::new(Arc::clone(&settings), store));
        let pruner = PruningTask::spawn(settings, state.metrics.clone());
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(telemetry::request_span))
                .app_data(state.clone())
                .wrap(from_fn(http::limits::head_size))
                .app_data(privacy.clone())
                .configure(http::configure)
                .default_service(web::to(http::not_found))
        })
        .workers(workers)
        .shutdown_timeout(shutdown_secs)
        .keep_alive(keep_alive)
        .client_request_timeout(head_timeout)
        .tls_handshake_timeout(head_timeout)
        .max_connections(per_worker)
        .shutdown_signal(stop_signal());
        let server = match tls_config {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        }
        .map_err(bind_error)?
        .run();
        Ok(Application {
            addr,
            server,
            writer,
            tls,
            pruner,
        })
    }

    /// `https` when `server.tls_cert` is set, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The bound address (the real port when `listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A handle that can stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped, then commits everything queued and stops the
    /// writer, so every answered callback is on disk when this returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some(pruner) = self.pruner {
            pruner.stop().await;
        }
        self.writer.shutdown().await;
        served
    }
}

/// Resolves on the first SIGTERM or SIGINT. Both stop gracefully (actix's own
/// handler treats SIGINT as a forced stop that drops in-flight requests):
/// the listener closes, in-flight requests get `server.shutdown_timeout` to
/// finish, then the writer commits what is queued.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM/SIGINT; stop with SIGKILL");
            return std::future::pending().await;
        }
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = name,
        "stopping: finishing in-flight requests, then flushing the writer"
    );
}
