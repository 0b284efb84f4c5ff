//! SQL logic tests (the sqllogictest format) through the embedded API.
//!
//! Runs every `.slt` / `.test` file under `../shared/slt` (when that folder exists beside the
//! repository) and under `tests/slt`, each on a fresh in-memory database, with the label
//! `postgresql` (so `skipif postgresql` records are skipped). Arguments: folders or files to run
//! instead, and/or `--filter TEXT` to run only paths containing TEXT. Exits non-zero if any
//! file fails, printing each failure.

use std::path::{Path, PathBuf};

use sqllogictest::{DBOutput, DefaultColumnType};
use strata::{Connection, Database, Value};

struct Harness {
    conn: Connection,
    _db: Database,
}

#[derive(Debug)]
struct SltError(strata::Error);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.0.message, self.0.code)
    }
}

impl std::error::Error for SltError {}

/// A value as the sqllogictest postgres engines print it.
fn cell(v: &Value) -> String {
    match v.to_text() {
        None => "NULL".into(),
        Some(s) if s.is_empty() => "(empty)".into(),
        Some(s) => s,
    }
}

impl sqllogictest::DB for Harness {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let r = self.conn.run(sql, &[]).map_err(SltError)?;
        if r.columns.is_empty() && !r.tag.starts_with("SELECT") {
            let n = r
                .tag
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            return Ok(DBOutput::StatementComplete(n));
        }
        let types = vec![DefaultColumnType::Any; r.columns.len()];
        let rows = r
            .rows
            .iter()
            .map(|row| row.iter().map(cell).collect())
            .collect();
        Ok(DBOutput::Rows { types, rows })
    }

    fn engine_name(&self) -> &str {
        "strata"
    }

    fn error_sql_state(err: &SltError) -> Option<String> {
        Some(err.0.code.to_string())
    }
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "slt" || e == "test") {
            out.push(p);
        }
    }
}

fn run_file(path: &Path) -> Result<(), String> {
    let mut runner = sqllogictest::Runner::new(|| async {
        let db = Database::memory().map_err(SltError)?;
        Ok(Harness {
            conn: db.connect(),
            _db: db,
        })
    });
    runner.add_label("postgresql");
    runner.add_label("strata");
    runner
        .run_file(path)
        .map_err(|e| e.display(false).to_string())
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--") || a == "--filter")
        .collect();
    let mut filter = None;
    if let Some(i) = args.iter().position(|a| a == "--filter") {
        filter = args.get(i + 1).cloned();
        args.drain(i..(i + 2).min(args.len()));
    }
    let mut files = Vec::new();
    if args.is_empty() {
        collect(&root.join("../shared/slt"), &mut files);
        collect(&root.join("tests/slt"), &mut files);
    } else {
        for a in &args {
            collect(Path::new(a), &mut files);
        }
    }
    if let Some(f) = &filter {
        files.retain(|p| p.to_string_lossy().contains(f.as_str()));
    }
    // Files are independent: run them on a few threads.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(4);
    let queue = std::sync::Mutex::new(files.clone());
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some(f) = queue.lock().unwrap().pop() else {
                    break;
                };
                // A huge stack: deeply nested expressions in the corpus recurse deeply.
                let path = f.clone();
                let started = std::time::Instant::now();
                let r = std::thread::Builder::new()
                    .stack_size(64 << 20)
                    .spawn(move || run_file(&path))
                    .expect("spawn")
                    .join()
                    .unwrap_or_else(|_| Err("panicked".into()));
                let secs = started.elapsed().as_secs_f64();
                if secs > 5.0 {
                    println!("slow: {} took {secs:.1} s", f.display());
                }
                if let Err(e) = r {
                    failures.lock().unwrap().push((f, e));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    for (f, e) in &failures {
        let e: String = e.chars().take(3000).collect();
        println!("FAIL {}\n{e}\n", f.display());
    }
    println!(
        "slt: {} files, {} passed, {} failed",
        files.len(),
        files.len() - failures.len(),
        failures.len()
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
