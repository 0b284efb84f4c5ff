//! `strata bench index` as a user runs it: the real binary at a test-friendly size, with its
//! temporary databases under a directory of the test's own (TMPDIR), which must be empty again
//! afterwards. Checks behaviour only (which cases exist, sizes, page counts, access paths),
//! never wall-clock times.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const ROWS: &str = "4000";

fn strata(tmp: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .env("TMPDIR", tmp)
        .current_dir(tmp)
        .args(args)
        .output()
        .expect("the strata binary runs")
}

fn ok(tmp: &Path, args: &[&str]) -> String {
    let out = strata(tmp, args);
    assert!(
        out.status.success(),
        "strata {args:?} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn num(case: &Value, field: &str) -> f64 {
    case[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {case}"))
}

fn find<'a>(cases: &'a [Value], strategy: &str, ordered: bool) -> &'a Value {
    cases
        .iter()
        .find(|c| c["strategy"] == strategy && c["ordered"] == ordered)
        .unwrap_or_else(|| panic!("no case {strategy} ordered={ordered} in {cases:?}"))
}

fn leftovers(tmp: &Path, keep: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != keep)
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn json_lines_describe_four_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report.html");
    let stdout = ok(
        tmp.path(),
        &[
            "bench",
            "index",
            "--rows",
            ROWS,
            "--distribution",
            "zipf",
            "--max-ops",
            "150",
            "--json",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let cases: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(cases.len(), 4, "{stdout}");

    let fields = [
        "build_ms",
        "index_bytes",
        "insert_rows_per_s",
        "point_p50_us",
        "point_p99_us",
        "range_1pct_ms",
        "pages_per_lookup",
    ];
    for case in &cases {
        for field in fields {
            let v = num(case, field);
            assert!(v.is_finite() && v >= 0.0, "{field} = {v} in {case}");
        }
        assert!(case["ordered"].is_boolean());
        assert_eq!(case["rows"], 4000);
        assert_eq!(case["distribution"], "zipf");
        assert!(num(case, "point_p99_us") >= num(case, "point_p50_us"));
        assert!(num(case, "insert_rows_per_s") > 0.0);
        assert_eq!(num(case, "inserted_rows"), 150.0);
        assert_eq!(num(case, "point_lookups"), 150.0);
    }
    let none = find(&cases, "none", true);
    let dense = find(&cases, "dense", true);
    let sparse = find(&cases, "sparse", true);
    let shuffled = find(&cases, "sparse", false);

    // Sizes: no index takes nothing; a dense index (an entry per row) is larger than a sparse
    // one (an entry per zone of rows); the sparse index has the same size on both orders.
    assert_eq!(num(none, "index_bytes"), 0.0);
    assert_eq!(num(none, "build_ms"), 0.0);
    assert_eq!(num(dense, "index_entries"), 4000.0);
    assert!(num(dense, "index_bytes") > 4.0 * num(sparse, "index_bytes"));
    assert!(num(sparse, "index_bytes") > 0.0);
    assert!(num(sparse, "index_entries") < 4000.0 / 4.0);
    assert_eq!(num(sparse, "index_bytes"), num(shuffled, "index_bytes"));

    // Pages per lookup: the dense index goes straight to the row; a sparse index on ordered
    // data reads its zone map and one zone; without an index, or with a sparse index on
    // shuffled data, every lookup reads the whole table.
    let pages = |c: &Value| num(c, "pages_per_lookup");
    assert!(pages(dense) < pages(sparse), "{dense} {sparse}");
    assert!(pages(sparse) < pages(none), "{sparse} {none}");
    assert!(pages(dense) < pages(none));
    assert!(pages(shuffled) > pages(sparse) * 2.0, "{shuffled} {sparse}");

    // Access paths, as EXPLAIN showed them.
    assert_eq!(none["point_path"], "seq scan");
    assert_eq!(dense["point_path"], "dense index");
    assert_eq!(dense["range_path"], "dense index");
    assert_eq!(sparse["range_path"], "sparse index");
    assert_eq!(shuffled["point_path"], "sparse index");
    // With statistics the planner drops the sparse index on shuffled data.
    assert_eq!(shuffled["analyzed_point_path"], "seq scan");
    assert_eq!(sparse["analyzed_range_path"], "sparse index");

    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    assert!(html.contains("sparse<br>shuffled"));
    assert!(html.trim_end().ends_with("</html>"));

    assert!(
        leftovers(tmp.path(), &report).is_empty(),
        "temporary files left behind"
    );
}

#[test]
fn table_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let stdout = ok(
        tmp.path(),
        &[
            "bench",
            "index",
            "--rows",
            "2000",
            "--distribution",
            "sequential",
            "--value-size",
            "20",
            "--max-ops",
            "40",
        ],
    );
    assert!(stdout.starts_with("strata bench index: 2,000 rows, sequential keys"));
    for label in [
        "index size",
        "point p99 (us)",
        "range 10% (ms)",
        "path: point",
    ] {
        assert!(stdout.contains(label), "{label} missing:\n{stdout}");
    }
    let header = stdout.lines().nth(1).unwrap();
    let words: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(words, ["none", "dense", "sparse", "sparse"]);
    assert!(leftovers(tmp.path(), tmp.path()).is_empty());
}

#[test]
fn bad_flags_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            &["bench", "index", "--rows", "10"][..],
            "at least 1000 rows",
        ),
        (&["bench", "index", "--rows", "lots"], "not a row count"),
        (
            &["bench", "index", "--distribution", "pareto"],
            "sequential",
        ),
        (&["bench", "index", "--value-size", "0"], "value size"),
        (&["bench", "index", "--max-ops", "0"], "max-ops"),
    ] {
        let out = strata(tmp.path(), args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(leftovers(tmp.path(), tmp.path()).is_empty());
}
