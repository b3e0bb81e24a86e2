//! Child processes: the servers under test and the one-shot commands, with
//! readiness waits and peak-RSS sampling from /proc.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A free loopback port (bound then released).
pub fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Waits until `addr` accepts TCP connections.
fn wait_listening(addr: SocketAddr, child: &mut Child) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Some(status) = child.try_wait()? {
            bail!("server exited before listening: {status}");
        }
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("server at {addr} did not listen within 30 s")
}

/// A server under test. Dropped without `terminate` (a run that failed
/// half-way), it is killed, so no receiver outlives the benchmark.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
}

impl Server {
    /// Spawns `command` and waits until it listens on `addr`.
    pub fn start(command: &mut Command, addr: SocketAddr) -> Result<Server> {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {:?}", command.get_program()))?;
        let mut server = Server {
            child: Some(child),
            addr,
        };
        wait_listening(addr, server.child.as_mut().expect("just spawned"))?;
        Ok(server)
    }

    /// Sends SIGTERM and waits for the exit: the receiver commits what it
    /// has queued before it goes.
    pub fn terminate(mut self) -> Result<()> {
        let mut child = self.child.take().expect("terminated once");
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        if !term.as_ref().is_ok_and(|s| s.success()) {
            let _ = child.kill();
        }
        child.wait()?;
        term.context("kill -TERM")?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A one-shot command's outcome.
pub struct Measured {
    pub seconds: f64,
    pub peak_rss_mb: f64,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to completion, sampling its peak RSS (VmHWM).
pub fn measure(program: &Path, args: &[String]) -> Result<Measured> {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {}", program.display()))?;
    let status_path = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Measured {
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_mb: peak_kb as f64 / 1024.0,
        success: status.success(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}
