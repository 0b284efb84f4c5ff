//! `strata bench index`: dense vs sparse vs no index, measured on the real engine.
//!
//! WHAT IT DOES. One table, `bench (id BIGINT PRIMARY KEY, k BIGINT NOT NULL, payload TEXT)`,
//! holds `--rows` rows whose `k` values are `0..rows`, each once. The indexed column is `k`, never
//! the primary key. Four cases:
//!
//! | case            | index on k                 | row order (by id) vs k        |
//! |-----------------|----------------------------|-------------------------------|
//! | none            | -                          | ordered (`k = id`)            |
//! | dense           | `USING dense`, one entry/row | ordered                      |
//! | sparse ordered  | `USING sparse`, one zone/page | ordered                      |
//! | sparse shuffled | `USING sparse`             | shuffled (`k = perm(id)`)     |
//!
//! The dense index is measured on the ordered table, like the none case, so that the three
//! ordered cases differ only in their index (a dense index does not care about row order).
//!
//! LIFE OF A RUN.
//!
//! 1. Load: per row order, one database in a temporary directory, filled with multi-row INSERTs
//!    of `LOAD_BATCH_ROWS` rows per transaction (streamed: no more than one batch in memory),
//!    then checkpointed and closed. The cases of that order each get a copy of the file, so they
//!    start from the same bytes. Files are removed when the case (or the run, on any error) ends.
//! 2. Per case, on its copy: `CREATE INDEX` after the load, timed (the build); EXPLAIN checks the
//!    access path of the point and range queries (an unexpected path is an error, not a number);
//!    the index's size is its tree's pages (`strata_engine::Database::tree_stats`) times the page
//!    size; then the phases below, each bounded by a count and a time budget; finally ANALYZE,
//!    and EXPLAIN again to record which path the planner picks once it has statistics.
//! 3. Output: a table on stdout, or one JSON object per case per line with `--json`; an HTML
//!    report with inline SVG charts with `--report FILE`. Progress bars go to stderr.
//!
//! PHASES (all SQL through the embedded API: prepared statements with `$n` parameters, planned
//! and executed by `strata-sql` on `strata-engine`, exactly as an application would run them):
//!
//! - point lookups: `SELECT id, k, payload FROM bench WHERE k = $1`, keys from
//!   `--distribution`; each must return exactly one row. Latency per statement (p50, p99),
//!   throughput, and pages per lookup: every page the lookup touched, from the engine's
//!   counters: buffer-pool hits plus pages read from the device (pool misses, and overflow pages
//!   of values longer than a quarter page, which the engine reads around the pool), averaged.
//!   Device reads per lookup alone are reported beside it (0 once the data fits in the pool).
//! - range scans: `SELECT count(*) FROM bench WHERE k >= $1 AND k < $2` covering 0.01%, 1% and
//!   10% of the rows; each count is checked.
//! - inserts: single-row INSERTs, `INSERT_TXN_ROWS` per transaction, every index maintained. New
//!   rows keep the case's order: appended `k` on ordered cases, random `k` on the shuffled one.
//! - updates: `UPDATE bench SET k = k + 1 WHERE id = $1` (found by primary key, so the cost
//!   beyond the none case is keeping the index current), one per transaction.
//! - deletes: `DELETE FROM bench WHERE id = $1`, distinct ids, one per transaction.
//!
//! ACCESS PATHS. The SQL layer has no hint to force a path, so the cases are built so the
//! planner takes the index whenever one applies: the measured phases run *before* ANALYZE.
//! Without statistics the planner uses a dense index for equality and ranges, and a sparse
//! index for both (it assumes the column is ordered). That is what makes "sparse shuffled"
//! measurable at all: once ANALYZE has seen that `k` is uncorrelated with the key, the planner
//! rightly prefers a sequential scan, and with statistics it also prefers a sequential scan to
//! any dense range scan on a large table. Both choices are reported (`analyzed_*_path`).
//!
//! DURABILITY. The load runs with `SyncMode::Off` (bulk load: nothing to lose but the run);
//! every measured phase runs with `SyncMode::Normal`: each commit's log record is written to the
//! OS (survives a crash of the process), but not fsynced, so that commits cost what the engine
//! does rather than the disk's flush latency, which would dwarf every index cost. The buffer pool
//! is the engine's default (64 MiB); a larger table than that reads pages from the OS cache.
//!
//! LEFT OUT: concurrency (one session), multi-column and unique indexes, and timing of
//! individual range scans beyond their mean.

mod html;
mod keys;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata::{Connection, DataType, Database, Options, Value};
use strata_engine::{wal_path, SyncMode};
use strata_sql::session::Prepared;

use crate::Failure;
pub use keys::Distribution;
use keys::{KeyChooser, Permutation};

/// The `bench` subcommands.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Dense vs sparse vs no index on one column: build, size, inserts, lookups, scans, updates.
    Index(IndexArgs),
}

/// Runs a `bench` subcommand.
pub fn run(command: BenchCommand) -> Result<(), Failure> {
    match command {
        BenchCommand::Index(args) => run_index(args),
    }
}

/// Flags of `strata bench index`.
#[derive(Args, Debug)]
pub struct IndexArgs {
    /// Rows loaded into the table of every case (at least 1000).
    #[arg(long, default_value_t = 200_000, value_parser = parse_rows)]
    rows: u64,
    /// How lookups, updates and deletes pick their keys.
    #[arg(long, value_enum, default_value_t = Distribution::Random)]
    distribution: Distribution,
    /// Bytes in the payload column of every row (1 to 65536).
    #[arg(long, default_value_t = 100, value_parser = parse_value_size)]
    value_size: usize,
    /// Also write an HTML report with charts to this file.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Print one JSON object per case per line instead of the table.
    #[arg(long)]
    json: bool,
    /// At most this many operations per phase (lookups, scans per selectivity, inserted rows,
    /// updates, deletes): for quick runs. By default each phase stops at its own cap or time
    /// budget.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_ops: Option<u64>,
}

const MIN_ROWS: u64 = 1000;
const MAX_VALUE_SIZE: usize = 65536;

fn parse_rows(text: &str) -> Result<u64, String> {
    let rows: u64 = text
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} is not a row count (example: 100000)"))?;
    if rows < MIN_ROWS {
        return Err(format!("at least {MIN_ROWS} rows are needed, not {rows}"));
    }
    if rows > i64::MAX as u64 / 4 {
        return Err(format!("{rows} rows is too many"));
    }
    Ok(rows)
}

fn parse_value_size(text: &str) -> Result<usize, String> {
    let size = crate::parse_size(text)?;
    if size == 0 || size > MAX_VALUE_SIZE as u64 {
        return Err(format!(
            "the value size must be 1 to {MAX_VALUE_SIZE} bytes, not {size}"
        ));
    }
    Ok(size as usize)
}

/// Rows per INSERT statement (and transaction) while loading.
const LOAD_BATCH_ROWS: u64 = 1000;
/// Single-row INSERTs per transaction in the insert phase.
const INSERT_TXN_ROWS: u64 = 100;
/// Range scan selectivities, as fractions of the rows.
const SELECTIVITIES: [f64; 3] = [0.0001, 0.01, 0.1];
/// Seeds: the row order, and each phase's keys.
const SHUFFLE_SEED: u64 = 0x5eed_0001;
const LOOKUP_SEED: u64 = 0x5eed_0002;
const RANGE_SEED: u64 = 0x5eed_0003;
const INSERT_SEED: u64 = 0x5eed_0004;
const UPDATE_SEED: u64 = 0x5eed_0005;
const DELETE_SEED: u64 = 0x5eed_0006;

/// How long a phase may run: it stops after `max_ops` operations or, once it has done at least
/// `min_ops`, when `budget` has passed (so a full-table scan per lookup still finishes).
#[derive(Clone, Copy)]
struct PhaseLimit {
    max_ops: u64,
    min_ops: u64,
    budget: Duration,
}

impl PhaseLimit {
    const fn new(max_ops: u64, min_ops: u64, budget_ms: u64) -> PhaseLimit {
        PhaseLimit {
            max_ops,
            min_ops,
            budget: Duration::from_millis(budget_ms),
        }
    }

    fn done(&self, ops: u64, started: Instant) -> bool {
        ops >= self.max_ops || (ops >= self.min_ops && started.elapsed() >= self.budget)
    }

    /// This limit with at most `cap` operations.
    fn capped(self, cap: Option<u64>) -> PhaseLimit {
        match cap {
            Some(cap) => PhaseLimit {
                max_ops: self.max_ops.min(cap),
                min_ops: self.min_ops.min(cap),
                budget: self.budget,
            },
            None => self,
        }
    }
}

const POINT_LIMIT: PhaseLimit = PhaseLimit::new(20_000, 5, 2_000);
const RANGE_LIMIT: PhaseLimit = PhaseLimit::new(200, 3, 700);
const INSERT_LIMIT: PhaseLimit = PhaseLimit::new(20_000, INSERT_TXN_ROWS, 1_500);
const UPDATE_LIMIT: PhaseLimit = PhaseLimit::new(5_000, 20, 1_000);
const DELETE_LIMIT: PhaseLimit = PhaseLimit::new(5_000, 20, 1_000);

/// Which index a case builds on `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    None,
    Dense,
    Sparse,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::Dense => "dense",
            Strategy::Sparse => "sparse",
        }
    }

    /// The access path EXPLAIN must show for a query on `k`.
    fn expected_path(self) -> AccessPath {
        match self {
            Strategy::None => AccessPath::SeqScan,
            Strategy::Dense => AccessPath::DenseIndex,
            Strategy::Sparse => AccessPath::SparseIndex,
        }
    }
}

/// One measured configuration.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub strategy: Strategy,
    /// True when rows in primary-key order have ascending `k`.
    pub ordered: bool,
}

impl Case {
    pub fn label(&self) -> String {
        format!(
            "{} {}",
            self.strategy.name(),
            if self.ordered { "ordered" } else { "shuffled" }
        )
    }
}

const CASES: [Case; 4] = [
    Case {
        strategy: Strategy::None,
        ordered: true,
    },
    Case {
        strategy: Strategy::Dense,
        ordered: true,
    },
    Case {
        strategy: Strategy::Sparse,
        ordered: true,
    },
    Case {
        strategy: Strategy::Sparse,
        ordered: false,
    },
];

/// The scan EXPLAIN names for the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessPath {
    SeqScan,
    PrimaryKey,
    DenseIndex,
    SparseIndex,
}

impl AccessPath {
    pub fn name(self) -> &'static str {
        match self {
            AccessPath::SeqScan => "seq scan",
            AccessPath::PrimaryKey => "primary key",
            AccessPath::DenseIndex => "dense index",
            AccessPath::SparseIndex => "sparse index",
        }
    }

    /// The path of the scan on `bench` in EXPLAIN's lines.
    fn from_explain(lines: &[String]) -> Option<AccessPath> {
        lines.iter().find_map(|line| {
            let line = line.trim_start().trim_start_matches("->").trim_start();
            if !line.ends_with(" on bench") {
                return None;
            }
            [
                ("Seq Scan", AccessPath::SeqScan),
                ("Primary Key Scan", AccessPath::PrimaryKey),
                ("Dense Index Scan", AccessPath::DenseIndex),
                ("Sparse Index Scan", AccessPath::SparseIndex),
            ]
            .into_iter()
            .find(|(prefix, _)| line.starts_with(prefix))
            .map(|(_, path)| path)
        })
    }
}

/// The parameters of a run, for the report.
pub struct RunInfo {
    pub rows: u64,
    pub distribution: Distribution,
    pub value_size: usize,
    pub page_size: usize,
    pub cache_bytes: usize,
    pub cores: usize,
    pub wall: Duration,
}

/// Everything measured for one case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub case: Case,
    /// Loading the table (no index yet), for the row order of this case.
    pub load_rows_per_s: f64,
    pub table_bytes: u64,
    pub build_ms: f64,
    pub index_bytes: u64,
    pub index_pages: u64,
    pub index_entries: u64,
    pub index_depth: usize,
    pub point_path: AccessPath,
    pub range_path: AccessPath,
    pub analyzed_point_path: AccessPath,
    pub analyzed_range_path: AccessPath,
    pub point_lookups: u64,
    pub point_per_s: f64,
    pub point_p50_us: f64,
    pub point_p99_us: f64,
    pub pages_per_lookup: f64,
    pub device_reads_per_lookup: f64,
    /// Mean milliseconds per range scan, per entry of `SELECTIVITIES`.
    pub range_ms: [f64; 3],
    pub range_queries: [u64; 3],
    pub inserted_rows: u64,
    pub insert_rows_per_s: f64,
    pub updates: u64,
    pub update_us: f64,
    pub deletes: u64,
    pub delete_us: f64,
}

impl CaseResult {
    pub fn index_bytes_per_row(&self, rows: u64) -> f64 {
        self.index_bytes as f64 / rows.max(1) as f64
    }

    fn to_json(&self, info: &RunInfo) -> serde_json::Value {
        let round = |x: f64, places: i32| {
            let f = 10f64.powi(places);
            (x * f).round() / f
        };
        serde_json::json!({
            "strategy": self.case.strategy.name(),
            "ordered": self.case.ordered,
            "rows": info.rows,
            "distribution": info.distribution.name(),
            "value_size": info.value_size,
            "sync": "normal",
            "load_rows_per_s": round(self.load_rows_per_s, 0),
            "table_bytes": self.table_bytes,
            "build_ms": round(self.build_ms, 3),
            "index_bytes": self.index_bytes,
            "index_pages": self.index_pages,
            "index_entries": self.index_entries,
            "index_depth": self.index_depth,
            "index_bytes_per_row": round(self.index_bytes_per_row(info.rows), 3),
            "insert_rows_per_s": round(self.insert_rows_per_s, 0),
            "inserted_rows": self.inserted_rows,
            "point_lookups": self.point_lookups,
            "point_per_s": round(self.point_per_s, 1),
            "point_p50_us": round(self.point_p50_us, 1),
            "point_p99_us": round(self.point_p99_us, 1),
            "pages_per_lookup": round(self.pages_per_lookup, 2),
            "device_reads_per_lookup": round(self.device_reads_per_lookup, 2),
            "range_0_01pct_ms": round(self.range_ms[0], 3),
            "range_1pct_ms": round(self.range_ms[1], 3),
            "range_10pct_ms": round(self.range_ms[2], 3),
            "range_queries": self.range_queries,
            "update_us": round(self.update_us, 1),
            "updates": self.updates,
            "delete_us": round(self.delete_us, 1),
            "deletes": self.deletes,
            "point_path": self.point_path.name(),
            "range_path": self.range_path.name(),
            "analyzed_point_path": self.analyzed_point_path.name(),
            "analyzed_range_path": self.analyzed_range_path.name(),
        })
    }
}

fn sql_error(what: &str) -> impl Fn(strata::Error) -> Failure + '_ {
    move |e| Failure::msg(format!("{what}: {e}"))
}

fn io_error(what: &str) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::msg(format!("{what}: {e}"))
}

/// Progress bars on stderr (hidden when stderr is not a terminal).
struct Progress;

impl Progress {
    fn bar(&self, case: &str, phase: &str, len: u64) -> ProgressBar {
        let style = ProgressStyle::with_template(
            "{prefix:>16} {msg:<18} [{bar:32}] {pos:>9}/{len:<9} {elapsed}",
        )
        .expect("invariant: the template is valid")
        .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_prefix(case.to_string())
            .with_message(phase.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

fn run_index(args: IndexArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("strata-bench-index-")
        .tempdir()
        .map_err(io_error("creating a temporary directory"))?;
    let options = Options::default();
    let mut info = RunInfo {
        rows: args.rows,
        distribution: args.distribution,
        value_size: args.value_size,
        page_size: options.page_size,
        cache_bytes: options.cache_bytes,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        wall: Duration::ZERO,
    };
    eprintln!(
        "strata bench index: {} rows, {} keys, {}-byte values, in {}",
        number(args.rows as f64),
        args.distribution.name(),
        args.value_size,
        dir.path().display()
    );
    eprintln!(
        "  load with sync off; measured phases with sync normal (written, not fsynced); \
         {} MiB buffer pool",
        options.cache_bytes >> 20
    );
    let progress = Progress;
    let mut results = Vec::new();
    for ordered in [true, false] {
        let base = dir
            .path()
            .join(if ordered { "ordered.db" } else { "shuffled.db" });
        let load = load_table(&base, &args, ordered, &progress)?;
        let cases: Vec<Case> = CASES
            .iter()
            .copied()
            .filter(|c| c.ordered == ordered)
            .collect();
        for (i, case) in cases.iter().enumerate() {
            let path = dir.path().join(format!(
                "{}-{}.db",
                case.strategy.name(),
                if ordered { "ordered" } else { "shuffled" }
            ));
            // The last case of this order takes the loaded file itself.
            if i + 1 == cases.len() {
                move_database(&base, &path)?;
            } else {
                copy_database(&base, &path)?;
            }
            let result = run_case(&path, *case, &args, &load, &progress);
            remove_database(&path)?;
            let result = result?;
            eprintln!("{}", summary_line(&result));
            results.push(result);
        }
    }
    info.wall = started.elapsed();
    if args.json {
        for r in &results {
            println!("{}", r.to_json(&info));
        }
    } else {
        print!("{}", table(&results, &info));
    }
    if let Some(path) = &args.report {
        std::fs::write(path, html::render(&info, &results))
            .map_err(io_error(&format!("writing {}", path.display())))?;
        eprintln!("report written to {}", path.display());
    }
    dir.close()
        .map_err(io_error("removing the temporary directory"))?;
    Ok(())
}

/// What loading one row order produced.
struct Loaded {
    rows_per_s: f64,
}

/// The row with primary key `id` of a table of `rows` rows: its `k` and payload.
struct RowMaker {
    value_size: usize,
    shuffle: Option<Permutation>,
}

impl RowMaker {
    fn new(rows: u64, value_size: usize, ordered: bool) -> RowMaker {
        RowMaker {
            value_size,
            shuffle: (!ordered).then(|| Permutation::new(rows, SHUFFLE_SEED)),
        }
    }

    fn k(&self, id: u64) -> u64 {
        match &self.shuffle {
            Some(p) => p.apply(id),
            None => id,
        }
    }

    /// `value_size` letters derived from `id` (so pages do not compress to nothing).
    fn payload(&self, id: u64) -> String {
        let mut state = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..self.value_size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'a' + (state % 26) as u8)
            })
            .collect()
    }
}

fn int(v: u64) -> Value {
    Value::Int8(v as i64)
}

fn prepare(conn: &mut Connection, sql: &str, types: &[DataType]) -> Result<Prepared, Failure> {
    conn.session()
        .prepare(sql, types)
        .map_err(sql_error(&format!("preparing {sql}")))
}

fn load_table(
    path: &Path,
    args: &IndexArgs,
    ordered: bool,
    progress: &Progress,
) -> Result<Loaded, Failure> {
    let options = Options {
        sync: SyncMode::Off,
        ..Options::default()
    };
    let db = Database::open_with(path, options).map_err(sql_error("creating the database"))?;
    let mut conn = db.connect();
    conn.execute(
        "CREATE TABLE bench (id BIGINT PRIMARY KEY, k BIGINT NOT NULL, payload TEXT NOT NULL)",
        &[],
    )
    .map_err(sql_error("creating the table"))?;
    let maker = RowMaker::new(args.rows, args.value_size, ordered);
    let mut prepared: Option<(u64, Prepared)> = None;
    let bar = progress.bar(
        if ordered {
            "load ordered"
        } else {
            "load shuffled"
        },
        "INSERT",
        args.rows,
    );
    let started = Instant::now();
    let mut params = Vec::with_capacity(3 * LOAD_BATCH_ROWS as usize);
    let mut id = 0;
    while id < args.rows {
        let n = LOAD_BATCH_ROWS.min(args.rows - id);
        if prepared.as_ref().is_none_or(|(rows, _)| *rows != n) {
            let mut sql = String::from("INSERT INTO bench VALUES ");
            for i in 0..n {
                let p = 3 * i;
                let sep = if i == 0 { "" } else { ", " };
                let _ = write!(sql, "{sep}(${}, ${}, ${})", p + 1, p + 2, p + 3);
            }
            let types: Vec<DataType> = (0..n)
                .flat_map(|_| [DataType::Int8, DataType::Int8, DataType::Text])
                .collect();
            prepared = Some((n, prepare(&mut conn, &sql, &types)?));
        }
        params.clear();
        for row in id..id + n {
            params.extend([int(row), int(maker.k(row)), Value::Text(maker.payload(row))]);
        }
        let (_, statement) = prepared.as_ref().expect("prepared above");
        conn.session()
            .execute_prepared(statement, &params)
            .map_err(sql_error("loading rows"))?;
        id += n;
        bar.set_position(id);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    db.checkpoint()
        .map_err(sql_error("checkpointing the load"))?;
    drop(conn);
    drop(db);
    Ok(Loaded {
        rows_per_s: args.rows as f64 / elapsed.as_secs_f64(),
    })
}

/// The files of a database: the data file and its WAL.
fn database_files(path: &Path) -> [PathBuf; 2] {
    [path.to_path_buf(), wal_path(path)]
}

fn copy_database(from: &Path, to: &Path) -> Result<(), Failure> {
    for (src, dst) in database_files(from).iter().zip(database_files(to).iter()) {
        if src.exists() {
            std::fs::copy(src, dst).map_err(io_error(&format!("copying {}", src.display())))?;
        }
    }
    Ok(())
}

fn move_database(from: &Path, to: &Path) -> Result<(), Failure> {
    for (src, dst) in database_files(from).iter().zip(database_files(to).iter()) {
        if src.exists() {
            std::fs::rename(src, dst).map_err(io_error(&format!("moving {}", src.display())))?;
        }
    }
    Ok(())
}

fn remove_database(path: &Path) -> Result<(), Failure> {
    for file in database_files(path) {
        if file.exists() {
            std::fs::remove_file(&file)
                .map_err(io_error(&format!("removing {}", file.display())))?;
        }
    }
    Ok(())
}

const POINT_SQL: &str = "SELECT id, k, payload FROM bench WHERE k = $1";
const RANGE_SQL: &str = "SELECT count(*) FROM bench WHERE k >= $1 AND k < $2";
const INSERT_SQL: &str = "INSERT INTO bench VALUES ($1, $2, $3)";
const UPDATE_SQL: &str = "UPDATE bench SET k = k + 1 WHERE id = $1";
const DELETE_SQL: &str = "DELETE FROM bench WHERE id = $1";

/// The access path the planner picks for `sql` (EXPLAIN with the same parameters).
fn explain_path(conn: &mut Connection, sql: &str, params: &[Value]) -> Result<AccessPath, Failure> {
    let rows = conn
        .query(&format!("EXPLAIN {sql}"), params)
        .map_err(sql_error(&format!("EXPLAIN {sql}")))?;
    let lines: Vec<String> = rows.iter().filter_map(|r| r.text(0)).collect();
    AccessPath::from_explain(&lines).ok_or_else(|| {
        Failure::msg(format!(
            "EXPLAIN {sql} names no scan of bench:\n{}",
            lines.join("\n")
        ))
    })
}

/// Pages touched so far (buffer-pool hits + device reads; every pool miss is one device read,
/// and overflow pages are read from the device without the pool), and device reads alone.
fn page_counters(db: &Database) -> (u64, u64) {
    let s = db.engine().stats();
    (s.cache_hits + s.pages_read, s.pages_read)
}

fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e6
}

fn trees(db: &Database) -> Vec<String> {
    db.engine().trees()
}

fn run_case(
    path: &Path,
    case: Case,
    args: &IndexArgs,
    load: &Loaded,
    progress: &Progress,
) -> Result<CaseResult, Failure> {
    let label = case.label();
    let point_limit = POINT_LIMIT.capped(args.max_ops);
    let range_limit = RANGE_LIMIT.capped(args.max_ops);
    let insert_limit = INSERT_LIMIT.capped(args.max_ops);
    let update_limit = UPDATE_LIMIT.capped(args.max_ops);
    let delete_limit = DELETE_LIMIT.capped(args.max_ops);
    let options = Options {
        sync: SyncMode::Normal,
        ..Options::default()
    };
    let db = Database::open_with(path, options).map_err(sql_error("opening the database"))?;
    let page_size = db.engine().stats().page_size as u64;
    let mut conn = db.connect();
    let rows = args.rows;
    let maker = RowMaker::new(rows, args.value_size, case.ordered);

    let table_tree = trees(&db)
        .into_iter()
        .find(|t| t.starts_with('t'))
        .ok_or_else(|| Failure::msg("the loaded database has no table tree"))?;
    let table_bytes = db
        .engine()
        .tree_stats(&table_tree)
        .map_err(|e| Failure::msg(format!("sizing the table: {e}")))?
        .total_pages()
        * page_size;

    // 1. Build.
    let before = trees(&db);
    let mut build_ms = 0.0;
    if case.strategy != Strategy::None {
        let bar = progress.bar(&label, "CREATE INDEX", 1);
        let sql = format!(
            "CREATE INDEX bench_k ON bench USING {} (k)",
            case.strategy.name()
        );
        let started = Instant::now();
        conn.execute(&sql, &[]).map_err(sql_error(&sql))?;
        build_ms = started.elapsed().as_secs_f64() * 1e3;
        bar.finish_and_clear();
    }
    let new_trees: Vec<String> = trees(&db)
        .into_iter()
        .filter(|t| !before.contains(t))
        .collect();
    let (index_pages, index_entries, index_depth) = match (case.strategy, new_trees.as_slice()) {
        (Strategy::None, []) => (0, 0, 0),
        (Strategy::Dense, [tree]) if tree.starts_with('i') => tree_size(&db, tree)?,
        (Strategy::Sparse, [tree]) if tree.starts_with('z') => tree_size(&db, tree)?,
        (_, trees) => {
            return Err(Failure::msg(format!(
                "{label}: CREATE INDEX made the trees {trees:?}, not one {} index tree",
                case.strategy.name()
            )))
        }
    };

    // 2. The planner must take the case's access path.
    let expected = case.strategy.expected_path();
    let point_path = explain_path(&mut conn, POINT_SQL, &[int(rows / 2)])?;
    let range_path = explain_path(&mut conn, RANGE_SQL, &[int(rows / 2), int(rows / 2 + 10)])?;
    for (what, path) in [("point lookup", point_path), ("range scan", range_path)] {
        if path != expected {
            return Err(Failure::msg(format!(
                "{label}: EXPLAIN shows a {} for the {what}, expected a {}",
                path.name(),
                expected.name()
            )));
        }
    }

    // 3. Point lookups.
    let point = prepare(&mut conn, POINT_SQL, &[DataType::Int8])?;
    let mut keys = KeyChooser::new(args.distribution, rows, LOOKUP_SEED);
    let bar = progress.bar(&label, "point lookups", point_limit.max_ops);
    let (pages_before, reads_before) = page_counters(&db);
    let mut latencies = Vec::new();
    let started = Instant::now();
    while !point_limit.done(latencies.len() as u64, started) {
        let k = keys.next_key();
        let t = Instant::now();
        let result = conn
            .session()
            .execute_prepared(&point, &[int(k)])
            .map_err(sql_error("point lookup"))?;
        latencies.push(t.elapsed());
        if result.rows.len() != 1 {
            return Err(Failure::msg(format!(
                "{label}: the lookup of k = {k} returned {} rows, not 1",
                result.rows.len()
            )));
        }
        bar.inc(1);
    }
    let point_elapsed = started.elapsed();
    bar.finish_and_clear();
    let (pages_after, reads_after) = page_counters(&db);
    let lookups = latencies.len() as u64;
    latencies.sort_unstable();

    // 4. Range scans.
    let range = prepare(&mut conn, RANGE_SQL, &[DataType::Int8, DataType::Int8])?;
    let mut range_ms = [0.0; 3];
    let mut range_queries = [0; 3];
    for (i, selectivity) in SELECTIVITIES.iter().enumerate() {
        let width = ((rows as f64 * selectivity).round() as u64).max(1);
        let mut starts = KeyChooser::new(args.distribution, rows - width + 1, RANGE_SEED);
        let bar = progress.bar(
            &label,
            &format!("range {}%", selectivity * 100.0),
            range_limit.max_ops,
        );
        let started = Instant::now();
        let mut queries = 0;
        while !range_limit.done(queries, started) {
            let lo = starts.next_key();
            let result = conn
                .session()
                .execute_prepared(&range, &[int(lo), int(lo + width)])
                .map_err(sql_error("range scan"))?;
            let count = result
                .rows
                .first()
                .and_then(|r| r.first())
                .and_then(Value::as_i64);
            if count != Some(width as i64) {
                return Err(Failure::msg(format!(
                    "{label}: the range [{lo}, {}) counted {count:?} rows, not {width}",
                    lo + width
                )));
            }
            queries += 1;
            bar.inc(1);
        }
        range_ms[i] = started.elapsed().as_secs_f64() * 1e3 / queries as f64;
        range_queries[i] = queries;
        bar.finish_and_clear();
    }

    // 5. Inserts, `INSERT_TXN_ROWS` per transaction.
    let insert = prepare(
        &mut conn,
        INSERT_SQL,
        &[DataType::Int8, DataType::Int8, DataType::Text],
    )?;
    let mut random_k = KeyChooser::new(Distribution::Random, rows, INSERT_SEED);
    let bar = progress.bar(&label, "inserts", insert_limit.max_ops);
    let started = Instant::now();
    let mut inserted = 0;
    while !insert_limit.done(inserted, started) {
        conn.execute("BEGIN", &[]).map_err(sql_error("BEGIN"))?;
        let batch = INSERT_TXN_ROWS.min(insert_limit.max_ops - inserted);
        for _ in 0..batch {
            let id = rows + inserted;
            let k = if case.ordered {
                id
            } else {
                random_k.next_key()
            };
            conn.session()
                .execute_prepared(&insert, &[int(id), int(k), Value::Text(maker.payload(id))])
                .map_err(sql_error("insert"))?;
            inserted += 1;
        }
        conn.execute("COMMIT", &[]).map_err(sql_error("COMMIT"))?;
        bar.inc(batch);
    }
    let insert_rows_per_s = inserted as f64 / started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    // 6. Updates of the indexed column, found by primary key; one per transaction.
    let update = prepare(&mut conn, UPDATE_SQL, &[DataType::Int8])?;
    let mut ids = KeyChooser::new(args.distribution, rows, UPDATE_SEED);
    let bar = progress.bar(&label, "updates", update_limit.max_ops);
    let started = Instant::now();
    let mut updates = 0;
    while !update_limit.done(updates, started) {
        let id = ids.next_key();
        let result = conn
            .session()
            .execute_prepared(&update, &[int(id)])
            .map_err(sql_error("update"))?;
        if result.tag != "UPDATE 1" {
            return Err(Failure::msg(format!(
                "{label}: updating id {id} said {:?}",
                result.tag
            )));
        }
        updates += 1;
        bar.inc(1);
    }
    let update_us = started.elapsed().as_secs_f64() * 1e6 / updates as f64;
    bar.finish_and_clear();

    // 7. Deletes of distinct rows, one per transaction.
    let delete = prepare(&mut conn, DELETE_SQL, &[DataType::Int8])?;
    let spread = Permutation::new(rows, DELETE_SEED);
    let bar = progress.bar(&label, "deletes", delete_limit.max_ops);
    let started = Instant::now();
    let mut deletes = 0;
    while !delete_limit.done(deletes, started) && deletes < rows {
        let id = match args.distribution {
            Distribution::Sequential => deletes,
            Distribution::Random | Distribution::Zipf => spread.apply(deletes),
        };
        let result = conn
            .session()
            .execute_prepared(&delete, &[int(id)])
            .map_err(sql_error("delete"))?;
        if result.tag != "DELETE 1" {
            return Err(Failure::msg(format!(
                "{label}: deleting id {id} said {:?}",
                result.tag
            )));
        }
        deletes += 1;
        bar.inc(1);
    }
    let delete_us = started.elapsed().as_secs_f64() * 1e6 / deletes as f64;
    bar.finish_and_clear();

    // 8. What the planner picks once it has statistics.
    let bar = progress.bar(&label, "ANALYZE", 1);
    conn.execute("ANALYZE bench", &[])
        .map_err(sql_error("ANALYZE"))?;
    bar.finish_and_clear();
    let analyzed_point_path = explain_path(&mut conn, POINT_SQL, &[int(rows / 2)])?;
    let analyzed_range_path =
        explain_path(&mut conn, RANGE_SQL, &[int(rows / 2), int(rows / 2 + 10)])?;

    Ok(CaseResult {
        case,
        load_rows_per_s: load.rows_per_s,
        table_bytes,
        build_ms,
        index_bytes: index_pages * page_size,
        index_pages,
        index_entries,
        index_depth,
        point_path,
        range_path,
        analyzed_point_path,
        analyzed_range_path,
        point_lookups: lookups,
        point_per_s: lookups as f64 / point_elapsed.as_secs_f64(),
        point_p50_us: percentile_us(&latencies, 0.50),
        point_p99_us: percentile_us(&latencies, 0.99),
        pages_per_lookup: (pages_after - pages_before) as f64 / lookups as f64,
        device_reads_per_lookup: (reads_after - reads_before) as f64 / lookups as f64,
        range_ms,
        range_queries,
        inserted_rows: inserted,
        insert_rows_per_s,
        updates,
        update_us,
        deletes,
        delete_us,
    })
}

/// Pages, entries and depth of an index tree.
fn tree_size(db: &Database, tree: &str) -> Result<(u64, u64, usize), Failure> {
    let s = db
        .engine()
        .tree_stats(tree)
        .map_err(|e| Failure::msg(format!("sizing the index tree {tree}: {e}")))?;
    Ok((s.total_pages(), s.entries, s.depth))
}

fn summary_line(r: &CaseResult) -> String {
    format!(
        "  {:<16} build {} ms, index {}, lookup p50 {} us, {} pages/lookup, range 1% {} ms",
        r.case.label(),
        number(r.build_ms),
        bytes(r.index_bytes),
        number(r.point_p50_us),
        number(r.pages_per_lookup),
        number(r.range_ms[1])
    )
}

/// A number with about three significant digits, thousands separated.
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let places = if x.abs() >= 100.0 || x.fract() == 0.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{x:.places$}");
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    let (sign, digits) = whole.strip_prefix('-').map_or(("", whole), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

/// A byte count in B, KiB, MiB or GiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{} {}", number(value), UNITS[unit])
    }
}

/// The rows of the result table: a label and one cell per case.
pub fn table_rows(results: &[CaseResult], info: &RunInfo) -> Vec<(String, Vec<String>)> {
    let rows = info.rows;
    type Cell = fn(&CaseResult, u64) -> String;
    let metrics: [(&str, Cell); 22] = [
        ("load, no index (rows/s)", |r, _| number(r.load_rows_per_s)),
        ("table size", |r, _| bytes(r.table_bytes)),
        ("index build (ms)", |r, _| number(r.build_ms)),
        ("index size", |r, _| bytes(r.index_bytes)),
        ("index bytes/row", |r, n| number(r.index_bytes_per_row(n))),
        ("index entries", |r, _| number(r.index_entries as f64)),
        ("index depth", |r, _| r.index_depth.to_string()),
        ("insert (rows/s)", |r, _| number(r.insert_rows_per_s)),
        ("point lookup (/s)", |r, _| number(r.point_per_s)),
        ("point p50 (us)", |r, _| number(r.point_p50_us)),
        ("point p99 (us)", |r, _| number(r.point_p99_us)),
        ("pages/lookup", |r, _| number(r.pages_per_lookup)),
        ("device reads/lookup", |r, _| {
            number(r.device_reads_per_lookup)
        }),
        ("range 0.01% (ms)", |r, _| number(r.range_ms[0])),
        ("range 1% (ms)", |r, _| number(r.range_ms[1])),
        ("range 10% (ms)", |r, _| number(r.range_ms[2])),
        ("update k by id (us)", |r, _| number(r.update_us)),
        ("delete by id (us)", |r, _| number(r.delete_us)),
        ("path: point", |r, _| r.point_path.name().into()),
        ("path: range", |r, _| r.range_path.name().into()),
        ("after ANALYZE: point", |r, _| {
            r.analyzed_point_path.name().into()
        }),
        ("after ANALYZE: range", |r, _| {
            r.analyzed_range_path.name().into()
        }),
    ];
    metrics
        .iter()
        .map(|(name, cell)| {
            (
                name.to_string(),
                results.iter().map(|r| cell(r, rows)).collect(),
            )
        })
        .collect()
}

/// The aligned result table for stdout.
fn table(results: &[CaseResult], info: &RunInfo) -> String {
    let body = table_rows(results, info);
    let label_width = body.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut widths: Vec<usize> = results
        .iter()
        .map(|r| {
            r.case
                .strategy
                .name()
                .len()
                .max(if r.case.ordered { 7 } else { 8 })
        })
        .collect();
    for (_, cells) in &body {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "strata bench index: {} rows, {} keys, {}-byte values, {} KiB pages, {} MiB buffer pool, \
         sync normal, {} cores, {:.1} s",
        number(info.rows as f64),
        info.distribution.name(),
        info.value_size,
        info.page_size / 1024,
        info.cache_bytes >> 20,
        info.cores,
        info.wall.as_secs_f64()
    );
    let header = |f: &dyn Fn(&CaseResult) -> String| {
        let mut line = format!("{:<label_width$}", "");
        for (r, w) in results.iter().zip(&widths) {
            let _ = write!(line, "  {:>w$}", f(r));
        }
        line
    };
    let _ = writeln!(out, "{}", header(&|r| r.case.strategy.name().to_string()));
    let _ = writeln!(
        out,
        "{}",
        header(&|r| if r.case.ordered {
            "ordered"
        } else {
            "shuffled"
        }
        .to_string())
    );
    let total = label_width + widths.iter().map(|w| w + 2).sum::<usize>();
    let _ = writeln!(out, "{}", "-".repeat(total));
    for (label, cells) in &body {
        let mut line = format!("{label:<label_width$}");
        for (c, w) in cells.iter().zip(&widths) {
            let pad = w - c.chars().count();
            let _ = write!(line, "  {}{c}", " ".repeat(pad));
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_bytes() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(10.0), "10");
        assert_eq!(number(1.234), "1.23");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(1234567.8), "1,234,568");
        assert_eq!(number(-1234.0), "-1,234");
        assert_eq!(number(f64::NAN), "-");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(3 << 20), "3 MiB");
    }

    #[test]
    fn flags_are_checked() {
        assert!(parse_rows("100000").is_ok());
        assert_eq!(parse_rows("1_000_000"), Ok(1_000_000));
        assert!(parse_rows("10").is_err());
        assert!(parse_rows("many").is_err());
        assert_eq!(parse_value_size("1K"), Ok(1024));
        assert!(parse_value_size("0").is_err());
        assert!(parse_value_size("1G").is_err());
    }

    #[test]
    fn explain_lines_name_the_path() {
        let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            AccessPath::from_explain(&lines(&[
                "Aggregate",
                "  ->  Sparse Index Scan using bench_k (range) on bench",
                "        Filter: yes"
            ])),
            Some(AccessPath::SparseIndex)
        );
        assert_eq!(
            AccessPath::from_explain(&lines(&["Seq Scan on bench", "  Filter: yes"])),
            Some(AccessPath::SeqScan)
        );
        assert_eq!(
            AccessPath::from_explain(&lines(&["Dense Index Scan using i (point) on bench"])),
            Some(AccessPath::DenseIndex)
        );
        assert_eq!(AccessPath::from_explain(&lines(&["Values (1 rows)"])), None);
    }

    #[test]
    fn percentiles() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile_us(&d, 0.5), 50.0);
        assert_eq!(percentile_us(&d, 0.99), 99.0);
        assert_eq!(percentile_us(&[], 0.5), 0.0);
    }

    #[test]
    fn rows_follow_the_order() {
        let ordered = RowMaker::new(1000, 10, true);
        assert_eq!(ordered.k(17), 17);
        let shuffled = RowMaker::new(1000, 10, false);
        assert!((0..1000).any(|id| shuffled.k(id) != id));
        assert_eq!(shuffled.payload(5).len(), 10);
        assert_eq!(shuffled.payload(5), ordered.payload(5));
    }
}
