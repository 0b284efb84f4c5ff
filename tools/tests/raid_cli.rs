//! `strata raid` as a user runs it: real processes on real member files in a temporary
//! directory. The scenario of the RAID issue, at a test-friendly size: write random bytes, lose
//! members (deleted, or overwritten with random bytes), read back identical bytes, replace and
//! rebuild, scrub clean, rot a byte and have scrub name and repair the member; and a RAID-0 that
//! lost a member gives a clear error and no bytes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::{Rng, SeedableRng};

const SIZE: usize = 8 << 20;

fn strata(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the strata binary runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = strata(dir, args);
    assert!(
        out.status.success(),
        "strata {args:?} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; len];
    rng.fill(&mut data[..]);
    std::fs::write(path, &data).unwrap();
    data
}

fn args<'a>(base: &[&'a str], disks: &'a [String], rest: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = base.to_vec();
    v.extend(disks.iter().map(String::as_str));
    v.extend_from_slice(rest);
    v
}

fn disks(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn read_back(dir: &Path, d: &[String], out: &str) -> Vec<u8> {
    let size = SIZE.to_string();
    ok(
        dir,
        &args(
            &["raid", "read"],
            d,
            &["--offset", "0", "--length", &size, "--output", out],
        ),
    );
    std::fs::read(dir.join(out)).unwrap()
}

/// Flips bytes near the end of a member file: always inside the data area.
fn rot(path: &PathBuf) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() - 3000;
    for b in &mut bytes[at..at + 3] {
        *b ^= 0xA5;
    }
    std::fs::write(path, bytes).unwrap();
}

fn lose_and_recover(level: &str, names: &[&str], lose: &[usize]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = disks(names);
    let size = SIZE.to_string();
    ok(
        dir,
        &args(
            &["raid", "create", "--level", level, "--size", &size],
            &d,
            &[],
        ),
    );
    let data = random_file(&dir.join("in.bin"), SIZE, 7);
    ok(
        dir,
        &args(
            &["raid", "write"],
            &d,
            &["--offset", "0", "--input", "in.bin"],
        ),
    );

    // The first lost member is deleted, the second overwritten with random bytes.
    for (n, &m) in lose.iter().enumerate() {
        let path = dir.join(&d[m]);
        if n == 0 {
            std::fs::remove_file(&path).unwrap();
        } else {
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            random_file(&path, len, 99);
        }
    }
    let status = strata(dir, &args(&["raid", "status"], &d, &[]));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(text.contains("degraded"), "{text}");
    assert!(text.contains("missing"), "{text}");
    if lose.len() > 1 {
        assert!(text.contains("foreign"), "{text}");
    }
    let out = strata(
        dir,
        &args(
            &["raid", "read"],
            &d,
            &["--offset", "0", "--length", &size, "--output", "out.bin"],
        ),
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("degraded"),
        "degraded assembly is reported on stderr"
    );
    assert!(
        std::fs::read(dir.join("out.bin")).unwrap() == data,
        "degraded read"
    );

    // Replace every lost member, then scrub: clean.
    let mut current = d.clone();
    for &m in lose {
        let new = format!("new{m}.img");
        let m_text = m.to_string();
        let out = ok(
            dir,
            &args(
                &["raid", "replace"],
                &current,
                &["--member", &m_text, "--new", &new],
            ),
        );
        assert!(out.contains(&new), "{out}");
        current[m] = new;
    }
    let text = ok(dir, &args(&["raid", "status"], &current, &[]));
    assert!(!text.contains("degraded"), "{text}");
    let text = ok(dir, &args(&["raid", "scrub"], &current, &[]));
    assert!(text.contains("0 problems found"), "{text}");
    assert!(
        read_back(dir, &current, "out2.bin") == data,
        "after rebuild"
    );

    // Rot a byte in one member: scrub names it and fails; repair fixes it.
    rot(&dir.join(&current[1]));
    let out = strata(dir, &args(&["raid", "scrub"], &current, &[]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!("member 1 ({})", current[1])),
        "{text}"
    );
    assert!(text.contains("checksum mismatch"), "{text}");
    let text = ok(dir, &args(&["raid", "scrub"], &current, &["--repair"]));
    assert!(text.contains("repaired"), "{text}");
    let text = ok(dir, &args(&["raid", "scrub"], &current, &[]));
    assert!(text.contains("0 problems found"), "{text}");
    assert!(read_back(dir, &current, "out3.bin") == data, "after repair");
}

#[test]
fn raid5_survives_a_deleted_member() {
    lose_and_recover("5", &["d0.img", "d1.img", "d2.img", "d3.img"], &[2]);
}

#[test]
fn raid6_survives_a_deleted_and_an_overwritten_member() {
    lose_and_recover(
        "6",
        &["e0.img", "e1.img", "e2.img", "e3.img", "e4.img"],
        &[0, 3],
    );
}

#[test]
fn raid1_and_raid10_survive_a_lost_mirror() {
    lose_and_recover("1", &["m0.img", "m1.img"], &[0]);
    lose_and_recover("10", &["t0.img", "t1.img", "t2.img", "t3.img"], &[3]);
}

#[test]
fn raid0_with_a_lost_member_is_a_clear_error_and_no_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = disks(&["z0.img", "z1.img", "z2.img"]);
    ok(
        dir,
        &args(&["raid", "create", "--level", "0", "--size", "4M"], &d, &[]),
    );
    random_file(&dir.join("in.bin"), 4 << 20, 3);
    ok(
        dir,
        &args(
            &["raid", "write"],
            &d,
            &["--offset", "0", "--input", "in.bin"],
        ),
    );
    std::fs::remove_file(dir.join("z1.img")).unwrap();
    let out = strata(
        dir,
        &args(
            &["raid", "read"],
            &d,
            &["--offset", "0", "--length", "4M", "--output", "-"],
        ),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no bytes on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("member 1 (z1.img) missing"), "{err}");
    let status = strata(dir, &args(&["raid", "status"], &d, &[]));
    assert_eq!(
        status.status.code(),
        Some(1),
        "status of an array that cannot run"
    );
}

#[test]
fn fail_then_replace_and_unaligned_io() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = disks(&["a.img", "b.img", "c.img"]);
    ok(
        dir,
        &args(
            &[
                "raid",
                "create",
                "--level",
                "5",
                "--chunk-kib",
                "16",
                "--size",
                "1M",
            ],
            &d,
            &[],
        ),
    );
    let data = random_file(&dir.join("in.bin"), 10_000, 5);
    ok(
        dir,
        &args(
            &["raid", "write"],
            &d,
            &["--offset", "12345", "--input", "in.bin"],
        ),
    );
    let text = ok(dir, &args(&["raid", "fail"], &d, &["--member", "0"]));
    assert!(text.contains("failed"), "{text}");
    ok(
        dir,
        &args(
            &["raid", "read"],
            &d,
            &[
                "--offset", "12345", "--length", "10000", "--output", "out.bin",
            ],
        ),
    );
    assert_eq!(std::fs::read(dir.join("out.bin")).unwrap(), data);
    ok(
        dir,
        &args(
            &["raid", "replace"],
            &d,
            &["--member", "0", "--new", "a2.img"],
        ),
    );
    let d2 = disks(&["a2.img", "b.img", "c.img"]);
    ok(
        dir,
        &args(
            &["raid", "read"],
            &d2,
            &[
                "--offset", "12345", "--length", "10000", "--output", "out2.bin",
            ],
        ),
    );
    assert_eq!(std::fs::read(dir.join("out2.bin")).unwrap(), data);
    // The old member file is stale now: it missed the rebuild and is refused.
    let text = ok(dir, &args(&["raid", "status"], &d, &[]));
    assert!(text.contains("stale") || text.contains("failed"), "{text}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = disks(&["a.img", "b.img", "c.img"]);
    let cases: Vec<Vec<&str>> = vec![
        args(
            &["raid", "create", "--level", "5", "--size", "lots"],
            &d,
            &[],
        ),
        args(&["raid", "create", "--level", "7", "--size", "1M"], &d, &[]),
        args(&["raid", "create", "--level", "6", "--size", "1M"], &d, &[]),
        args(
            &["raid", "create", "--level", "5", "--size", "1000"],
            &d,
            &[],
        ),
    ];
    for case in cases {
        let out = strata(dir, &case);
        assert!(!out.status.success(), "{case:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{case:?}: {err}");
        assert!(!err.contains("panicked"), "{case:?}: {err}");
    }
    ok(
        dir,
        &args(&["raid", "create", "--level", "5", "--size", "1M"], &d, &[]),
    );
    std::fs::write(dir.join("in.bin"), [1u8; 100]).unwrap();
    for case in [
        args(
            &["raid", "write"],
            &d,
            &["--offset", "1M", "--input", "in.bin"],
        ),
        args(
            &["raid", "read"],
            &d,
            &["--offset", "1000000", "--length", "100000", "--output", "-"],
        ),
        args(&["raid", "fail"], &d, &["--member", "3"]),
        args(
            &["raid", "write"],
            &d,
            &["--offset", "0", "--input", "no-such-file"],
        ),
    ] {
        let out = strata(dir, &case);
        assert_eq!(out.status.code(), Some(1), "{case:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: "), "{case:?}: {err}");
    }
    // Failing a second member of a RAID-5 would lose data: refused.
    ok(dir, &args(&["raid", "fail"], &d, &["--member", "0"]));
    let out = strata(dir, &args(&["raid", "fail"], &d, &["--member", "1"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lose data"));
}

#[test]
fn help_lists_the_subcommands() {
    // Without arguments `strata` is the SQL shell (tests/shell.rs); `--help` lists the rest.
    let tmp = tempfile::tempdir().unwrap();
    let text = ok(tmp.path(), &["--help"]);
    assert!(text.contains("raid"), "{text}");
    assert!(text.contains("[DBFILE]"), "{text}");
}
