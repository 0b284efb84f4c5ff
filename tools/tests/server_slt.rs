//! The shared SQL logic tests over the wire: every file of `../shared/slt` and `tests/slt` is
//! run by the `sqllogictest` CLI (crate sqllogictest-bin) with both of its PostgreSQL engines
//! (simple protocol, and extended protocol with binary results) against a fresh `strata
//! serve` per file. Skipped with a note when the CLI is not installed.
//!
//! Set `STRATA_SLT_FILTER=TEXT` to run only paths containing TEXT.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(data: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start strata serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

fn sqllogictest() -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", "command -v sqllogictest"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !path.is_empty() {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var("HOME").ok()?;
    let cargo_bin = Path::new(&home).join(".cargo/bin/sqllogictest");
    cargo_bin.exists().then_some(cargo_bin)
}

/// (file name, engine) pairs that fail because of the client engine, not the server: the
/// extended engine decodes binary float8 and prints it with Rust's `Display`
/// (`100000000000000000000` where PostgreSQL's text output is `1e+20`), so it fails the same
/// way against PostgreSQL itself.
const CLIENT_ENGINE_ARTIFACTS: &[(&str, &str)] = &[("types_casts.slt", "postgres-extended")];

#[test]
fn shared_slt_corpus_over_simple_and_extended_protocol() {
    let Some(cli) = sqllogictest() else {
        eprintln!("sqllogictest CLI (crate sqllogictest-bin) not installed: skipped");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    collect(&root.join("../shared/slt"), &mut files);
    collect(&root.join("tests/slt"), &mut files);
    if let Ok(f) = std::env::var("STRATA_SLT_FILTER") {
        files.retain(|p| p.to_string_lossy().contains(f.as_str()));
    }
    let mut failures = Vec::new();
    for file in &files {
        for engine in ["postgres", "postgres-extended"] {
            let dir = tempfile::tempdir().expect("temp dir");
            let server = Server::start(dir.path());
            let out = Command::new(&cli)
                .args(["--engine", engine, "--host", "127.0.0.1"])
                .args(["--port", &server.port.to_string()])
                .args(["--db", "postgres", "--user", "postgres", "--color", "never"])
                // The corpus marks PostgreSQL-specific records with this label.
                .args(["--label", "postgresql"])
                .arg(file)
                .output()
                .expect("run sqllogictest");
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if !out.status.success() && CLIENT_ENGINE_ARTIFACTS.contains(&(name, engine)) {
                eprintln!("{name} ({engine}): known client-engine artifact, not counted");
                continue;
            }
            if !out.status.success() {
                failures.push(format!(
                    "{} ({engine}):\n{}{}",
                    file.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    println!(
        "{} passed, {} failed",
        files.len() * 2 - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n{}",
        failures.len(),
        files.len() * 2,
        failures.join("\n")
    );
}
