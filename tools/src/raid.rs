//! `strata raid`: drive the RAID block layer directly, on member files.
//!
//! Every subcommand takes the member files in order (member 0 first); a member that is gone is
//! still named by its path, so the array knows which slot is empty. Assembly runs degraded when the
//! level allows it and says so on stderr. Byte offsets and lengths accept K, M, G suffixes
//! (binary: KiB, MiB, GiB).

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use strata_storage::raid::{
    self, ArrayStatus, Level, MemberState, ProblemKind, RaidArray, RaidConfig,
};
use strata_storage::{read_bytes, write_bytes, BlockDevice};

use crate::{parse_size, Failure};

/// The `raid` subcommands.
#[derive(Subcommand, Debug)]
pub enum RaidCommand {
    /// Create (or overwrite) the member files of a new array.
    Create {
        /// RAID level: 0, 1, 5, 6 or 10.
        #[arg(long)]
        level: u8,
        /// Chunk (stripe unit) in KiB.
        #[arg(long, default_value_t = 64)]
        chunk_kib: usize,
        /// Usable capacity, e.g. 64M or 1G.
        #[arg(long, value_parser = parse_size)]
        size: u64,
        /// Member files, in order.
        #[arg(required = true)]
        disks: Vec<PathBuf>,
    },
    /// Show level, capacity, chunk and the state of every member.
    Status(Disks),
    /// Write bytes from a file (or stdin with `-`) at a byte offset.
    Write {
        #[command(flatten)]
        disks: Disks,
        /// Byte offset into the array.
        #[arg(long, value_parser = parse_size)]
        offset: u64,
        /// Input file, or `-` for stdin.
        #[arg(long)]
        input: String,
    },
    /// Read bytes at a byte offset into a file (or stdout with `-`).
    Read {
        #[command(flatten)]
        disks: Disks,
        #[arg(long, value_parser = parse_size)]
        offset: u64,
        #[arg(long, value_parser = parse_size)]
        length: u64,
        /// Output file, or `-` for stdout.
        #[arg(long)]
        output: String,
    },
    /// Take a member out of service, as if it had failed.
    Fail {
        #[command(flatten)]
        disks: Disks,
        #[arg(long)]
        member: usize,
    },
    /// Rebuild a failed or missing member onto a new file.
    Replace {
        #[command(flatten)]
        disks: Disks,
        #[arg(long)]
        member: usize,
        /// The new member file (created or overwritten).
        #[arg(long)]
        new: PathBuf,
    },
    /// Check every block's checksum and every row's parity or mirrors.
    Scrub {
        #[command(flatten)]
        disks: Disks,
        /// Rewrite bad blocks from redundancy.
        #[arg(long)]
        repair: bool,
    },
}

/// The member files of an existing array.
#[derive(Args, Debug)]
pub struct Disks {
    /// Member files, in order (member 0 first).
    #[arg(required = true)]
    disks: Vec<PathBuf>,
}

/// Runs a `raid` subcommand.
pub fn run(cmd: RaidCommand) -> Result<(), Failure> {
    match cmd {
        RaidCommand::Create {
            level,
            chunk_kib,
            size,
            disks,
        } => {
            let level = Level::from_number(level)?;
            let mut config = RaidConfig::new(level, size);
            config.chunk_bytes = chunk_kib
                .checked_mul(1024)
                .ok_or_else(|| Failure::msg("--chunk-kib is too large"))?;
            if size == 0 || size % config.block_size as u64 != 0 {
                return Err(Failure::msg(format!(
                    "--size must be a positive multiple of {} bytes",
                    config.block_size
                )));
            }
            let array = raid::create_files(&disks, &config)?;
            let status = array.status();
            array.close()?;
            println!(
                "created RAID-{} on {} members: {} usable, chunk {} KiB, {} per member file",
                level.number(),
                disks.len(),
                human(status.capacity_bytes),
                chunk_kib,
                human(std::fs::metadata(&disks[0]).map(|m| m.len()).unwrap_or(0)),
            );
            Ok(())
        }
        RaidCommand::Status(Disks { disks }) => {
            let status = raid::inspect_files(&disks)?;
            print_status(&status);
            if status.runnable {
                Ok(())
            } else {
                Err(Failure::quiet(1))
            }
        }
        RaidCommand::Write {
            disks,
            offset,
            input,
        } => {
            let array = assemble(&disks.disks)?;
            let mut reader: Box<dyn Read> = if input == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(
                    std::fs::File::open(&input)
                        .map_err(|e| Failure::msg(format!("cannot open {input}: {e}")))?,
                )
            };
            let capacity = array.block_count() * array.block_size() as u64;
            let mut buf = vec![0u8; 4 << 20];
            let mut at = offset;
            loop {
                let n = read_full(&mut reader, &mut buf)
                    .map_err(|e| Failure::msg(format!("reading {input}: {e}")))?;
                if n == 0 {
                    break;
                }
                if at + n as u64 > capacity {
                    return Err(Failure::msg(format!(
                        "input does not fit: bytes {at}..{} are past the array's capacity of {capacity}",
                        at + n as u64
                    )));
                }
                write_bytes(&array, at, &buf[..n])?;
                at += n as u64;
            }
            array.close()?;
            eprintln!("wrote {} bytes at offset {offset}", at - offset);
            Ok(())
        }
        RaidCommand::Read {
            disks,
            offset,
            length,
            output,
        } => {
            let array = assemble(&disks.disks)?;
            let capacity = array.block_count() * array.block_size() as u64;
            if offset.checked_add(length).is_none_or(|end| end > capacity) {
                return Err(Failure::msg(format!(
                    "bytes {offset}..{} are past the array's capacity of {capacity}",
                    offset.saturating_add(length)
                )));
            }
            // Every byte written has been read and verified (checksums, parity); a read that
            // fails part way stops there and removes a partial output file.
            let mut writer: Box<dyn Write> = if output == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(
                    std::fs::File::create(&output)
                        .map_err(|e| Failure::msg(format!("cannot create {output}: {e}")))?,
                )
            };
            let mut at = offset;
            let end = offset + length;
            let mut buf = vec![0u8; 4 << 20];
            while at < end {
                let n = (end - at).min(buf.len() as u64) as usize;
                let piece = read_bytes(&array, at, &mut buf[..n])
                    .map_err(Failure::from)
                    .and_then(|()| {
                        writer
                            .write_all(&buf[..n])
                            .map_err(|e| Failure::msg(format!("writing {output}: {e}")))
                    });
                if let Err(e) = piece {
                    drop(writer);
                    if output != "-" {
                        let _ = std::fs::remove_file(&output);
                    }
                    return Err(e);
                }
                at += n as u64;
            }
            writer
                .flush()
                .map_err(|e| Failure::msg(format!("writing {output}: {e}")))?;
            array.close()?;
            Ok(())
        }
        RaidCommand::Fail { disks, member } => {
            let array = assemble(&disks.disks)?;
            array.fail_member(member)?;
            array.close()?;
            let status = raid::inspect_files(&disks.disks)?;
            println!(
                "member {member} ({}) is now failed; the array runs degraded until it is replaced",
                disks.disks[member].display()
            );
            print_status(&status);
            Ok(())
        }
        RaidCommand::Replace { disks, member, new } => {
            let array = assemble(&disks.disks)?;
            let bar = progress_bar("rebuilding");
            raid::replace_with_file(&array, member, &new, &mut |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            array.close()?;
            let mut paths = disks.disks.clone();
            paths[member] = new.clone();
            let status = raid::inspect_files(&paths)?;
            println!(
                "rebuilt member {member} onto {}; address the array as: {}",
                new.display(),
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            print_status(&status);
            Ok(())
        }
        RaidCommand::Scrub { disks, repair } => {
            let array = assemble(&disks.disks)?;
            let bar = progress_bar("scrubbing");
            let report = array.scrub(repair, &mut |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            array.close()?;
            for p in &report.problems {
                let path = disks
                    .disks
                    .get(p.member)
                    .map(|d| d.display().to_string())
                    .unwrap_or_default();
                println!(
                    "member {} ({path}) block {}: {}{}",
                    p.member,
                    p.member_block,
                    p.kind,
                    if p.repaired { " - repaired" } else { "" }
                );
            }
            println!(
                "scrubbed {} rows: {} problems found, {} repaired",
                report.rows_checked,
                report.problems.len(),
                report.repaired()
            );
            let unrepaired = report.unrepaired();
            if unrepaired > 0 {
                let hint = if repair
                    || report
                        .problems
                        .iter()
                        .any(|p| p.kind == ProblemKind::Unrecoverable)
                {
                    ""
                } else {
                    " (run with --repair)"
                };
                eprintln!("error: {unrepaired} problems remain{hint}");
                return Err(Failure::quiet(2));
            }
            Ok(())
        }
    }
}

/// Assembles the array, warning on stderr when it runs degraded.
fn assemble(disks: &[PathBuf]) -> Result<RaidArray, Failure> {
    let array = raid::assemble_files(disks)?;
    let status = array.status();
    for m in status
        .members
        .iter()
        .filter(|m| m.state != MemberState::Active)
    {
        eprintln!(
            "warning: array is degraded: member {} ({}) {}",
            m.index,
            disks[m.index].display(),
            m.state
        );
    }
    Ok(array)
}

fn print_status(status: &ArrayStatus) {
    println!("level:     RAID-{}", status.level.number());
    println!(
        "capacity:  {} ({} bytes)",
        human(status.capacity_bytes),
        status.capacity_bytes
    );
    println!("chunk:     {} KiB", status.chunk_bytes / 1024);
    println!(
        "state:     {}{}",
        if status.clean {
            "clean"
        } else {
            "not clean (recovery runs at the next open)"
        },
        match (status.runnable, status.degraded) {
            (false, _) => ", FAILED: too many members unavailable",
            (true, true) => ", degraded",
            (true, false) => "",
        }
    );
    println!("events:    {}", status.events);
    println!("members:");
    for m in &status.members {
        println!("  {:>2}  {:<40}  {}", m.index, m.name, m.state);
    }
}

fn progress_bar(what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:40}}] {{pos}}/{{len}} rows ({{percent}}%, eta {{eta}})"
        ))
        .expect("invariant: progress template is valid")
        .progress_chars("=> "),
    );
    bar
}

/// Reads until `buf` is full or the input ends.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
