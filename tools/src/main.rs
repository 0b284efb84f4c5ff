//! The `strata` binary: one tool for every way Strata is used.
//!
//! `strata [DBFILE]` is the SQL shell (psql's interface on an embedded database: see
//! [`shell`]); `strata raid ...` is the RAID workbench; `strata bench index` measures index
//! strategies ([`bench_index`]); `strata serve` is the PostgreSQL wire-protocol server
//! ([`serve`]).
//!
//! Exit codes: 0 on success; 1 for an error (printed on stderr as `error: ...`); 2 when
//! `raid scrub` leaves problems unrepaired; the shell's are psql's (3 when a script stops at an
//! error under `ON_ERROR_STOP`).

mod bench_index;
mod raid;
mod serve;
mod shell;

// The shell and the server allocate many small rows and strings per statement; mimalloc does
// that markedly faster than the system allocator (see README, "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Strata: an embeddable and clusterable SQL database.
#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about,
    args_conflicts_with_subcommands = true,
    // `-h` is the shell's `--host`, as in psql; help is `--help` (or `-?`).
    disable_help_flag = true
)]
struct Cli {
    /// Print help.
    #[arg(short = '?', long = "help", global = true, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// The SQL shell (when no subcommand is given).
    #[command(flatten)]
    shell: shell::ShellArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Drive the RAID block layer directly: create, status, read, write, fail, replace, scrub.
    #[command(subcommand)]
    Raid(raid::RaidCommand),
    /// Serve the PostgreSQL wire protocol (psql, pgbench and drivers connect).
    Serve(serve::ServeArgs),
    /// Benchmarks on the real engine: `bench index` (dense vs sparse vs no index).
    #[command(subcommand)]
    Bench(bench_index::BenchCommand),
}

/// Why a command failed: a message for stderr (if not printed already) and an exit code.
pub struct Failure {
    message: Option<String>,
    code: i32,
}

impl Failure {
    /// An error to print, exit code 1.
    pub fn msg(message: impl Into<String>) -> Self {
        Failure {
            message: Some(message.into()),
            code: 1,
        }
    }

    /// A failure already reported, with this exit code.
    pub fn quiet(code: i32) -> Self {
        Failure {
            message: None,
            code,
        }
    }
}

impl From<strata_storage::Error> for Failure {
    fn from(e: strata_storage::Error) -> Self {
        Failure::msg(e.to_string())
    }
}

/// Parses a size: plain bytes, or a number with K, M, G (KiB, MiB, GiB; case-insensitive, with
/// or without `iB`/`B`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 4096, 64K, 64M, 1G)"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use K, M, G or T)"
            ))
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn main() {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Some(Command::Raid(cmd)) => raid::run(cmd),
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Bench(cmd)) => bench_index::run(cmd),
        None => match shell::run(cli.shell, &matches) {
            0 => Ok(()),
            code => Err(Failure::quiet(code)),
        },
    };
    if let Err(failure) = result {
        if let Some(message) = failure.message {
            eprintln!("error: {message}");
        }
        std::process::exit(failure.code);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert!(parse_size("").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }
}
