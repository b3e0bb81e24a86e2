//! Builds the application separately from running it, so tests and `main`
//! share one path: [`Application::build`] binds (port 0 allowed) and opens
//! the store, [`Application::run_until_stopped`] serves until SIGTERM/SIGINT
//! (or a stop through [`Application::handle`]) and then flushes the writer.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};

use crate::config::Settings;
use crate::export::Privacy;
use crate::http::{self, AppState};
use crate::store::{Store, StoreError, WriterHandle};

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
}

/// A bound, ready-to-run service.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    writer: WriterHandle,
}

impl Application {
    /// Opens storage and binds the listener; nothing is served until
    /// [`Application::run_until_stopped`].
    pub fn build(settings: Settings) -> Result<Application, StartError> {
        let settings = Arc::new(settings);
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
        let state = web::Data::new(AppState::new(settings, store));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(privacy.clone())
                .configure(http::configure)
                .default_service(web::to(http::not_found))
        })
        .workers(workers)
        .shutdown_timeout(shutdown_secs)
        .listen(listener)
        .map_err(bind_error)?
        .run();
        Ok(Application {
            addr,
            server,
            writer,
        })
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
        self.writer.shutdown().await;
        served
    }
}
