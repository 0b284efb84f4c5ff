//! Runs a SQL script through the embedded API, one statement at a time, and reports how long
//! it took: how `../shared/bench`'s workload phases are measured through the library rather
//! than the shell.
//!
//! Run: `cargo run --release --example run_script -- DBFILE [--stats] < script.sql`
//!
//! Statements end with `;` at the end of a line (as in the benchmark's phase files); each runs
//! with `Connection::query`, its rows printed to stdout as `strata -At` prints them (fields
//! joined by `|`, NULL empty). The first error stops the script (exit 1). With `--stats`, a
//! summary goes to stderr: statements, rows returned, seconds.

use std::io::{BufRead, Write};
use std::time::Instant;

// An application picks its allocator; this one runs as the `strata` binary does, on mimalloc
// (rows and strings are many small allocations; glibc's malloc took a third of a range scan).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: run_script DBFILE < script.sql");
        std::process::exit(2);
    };
    let db = match strata::Database::open(&path) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {path}: {e}");
            std::process::exit(1);
        }
    };
    let mut conn = db.connect();
    let start = Instant::now();
    let (mut statements, mut rows) = (0u64, 0u64);
    let mut sql = String::new();
    let mut text = String::new();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in std::io::stdin().lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: reading stdin: {e}");
                std::process::exit(1);
            }
        };
        sql.push_str(&line);
        sql.push('\n');
        if !line.trim_end().ends_with(';') {
            continue;
        }
        match conn.query(&sql, &[]) {
            Ok(r) => {
                rows += r.len() as u64;
                for row in &r {
                    text.clear();
                    for (i, v) in row.values().iter().enumerate() {
                        if i > 0 {
                            text.push('|');
                        }
                        v.write_text(&mut text); // (NULL writes nothing)
                    }
                    text.push('\n');
                    let _ = out.write_all(text.as_bytes());
                }
            }
            Err(e) => {
                eprintln!("error: {e}\nin: {}", sql.trim());
                std::process::exit(1);
            }
        }
        statements += 1;
        sql.clear();
    }
    let _ = out.flush();
    if !sql.trim().is_empty() {
        eprintln!("error: the script ends inside a statement: {}", sql.trim());
        std::process::exit(1);
    }
    if std::env::args().nth(2).as_deref() == Some("--stats") {
        eprintln!(
            "{statements} statements, {rows} rows, {:.3} s",
            start.elapsed().as_secs_f64()
        );
    }
}
