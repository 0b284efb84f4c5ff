//! `strata serve`: command-line arguments for the wire-protocol server in `strata-cluster`.
//!
//! Prints `listening on HOST:PORT` on stdout once the socket is bound (so scripts and tests
//! can start it on port 0), logs with `tracing` on stderr (`RUST_LOG` selects the level,
//! `info` by default), and exits 0 after a graceful shutdown (SIGTERM or SIGINT).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use strata_cluster::server::{self, ServerConfig};

use crate::{parse_size, Failure};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Data directory (created if missing); holds the database file, its WAL and roles.
    #[arg(long, default_value = "strata-data")]
    data: PathBuf,
    /// Address to listen on (loopback by default; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:5433")]
    listen: String,
    /// Most concurrent sessions; one more is refused with SQLSTATE 53300.
    #[arg(long, default_value_t = 200)]
    max_connections: usize,
    /// Buffer pool size (e.g. 256M, 1G).
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    cache: u64,
    /// Require a password even for loopback connections.
    #[arg(long)]
    no_trust_loopback: bool,
    /// Create or update a role with a SCRAM-SHA-256 password: NAME:PASSWORD (repeatable).
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// PEM certificate chain for TLS (with --tls-key).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS (with --tls-cert).
    #[arg(long)]
    tls_key: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<(), Failure> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let mut config = ServerConfig::new(args.data, args.listen);
    config.max_connections = args.max_connections;
    config.cache_bytes = usize::try_from(args.cache)
        .map_err(|_| Failure::msg("--cache is too large for this machine"))?;
    config.trust_loopback = !args.no_trust_loopback;
    config.tls_cert = args.tls_cert;
    config.tls_key = args.tls_key;
    for u in args.users {
        let (name, password) = u
            .split_once(':')
            .ok_or_else(|| Failure::msg(format!("--user {u:?}: expected NAME:PASSWORD")))?;
        config.users.push((name.to_string(), password.to_string()));
    }
    server::run(config, |addr, _handle| {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "listening on {addr}");
        let _ = out.flush();
    })
    .map_err(|e| Failure::msg(e.to_string()))
}
