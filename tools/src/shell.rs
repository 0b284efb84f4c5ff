//! The SQL shell, `strata [DBFILE]` or `strata postgres://...`: psql's front end on an
//! embedded Strata database, or on any server speaking the PostgreSQL wire protocol.
//!
//! The database file (default `./strata.db`, `:memory:` for one that lives in memory) is opened
//! in-process, created if missing ([`embedded`]). A `postgres://` or `postgresql://` URL, or
//! any of psql's `-h -p -U -d`, connects to a server instead ([`remote`]); the shell logic is
//! the same for both, behind the [`backend::Backend`] trait. Input comes from, in this order of
//! precedence:
//!
//! * `-c COMMAND` and `-f FILE` (repeatable, run in the order given; `-f -` reads stdin);
//! * stdin when it is not a terminal: read line by line, each statement run as soon as its `;`
//!   arrives (a piped script streams; an unterminated last statement is run at EOF, as psql
//!   sends it);
//! * otherwise an interactive prompt with line editing and history (`~/.strata_history`, or
//!   `$STRATA_HISTORY`).
//!
//! Statements are split on `;` outside quotes, dollar quotes, comments and parentheses
//! ([`Splitter`]). Output is psql's: aligned tables with a centered header, a `-+-` rule,
//! right-aligned numbers and an `(N rows)` footer; command tags for everything else; `--csv`,
//! `-A` (unaligned, `-F` separator), `-t` (tuples only) and `-x` (expanded) as in psql. Output is
//! flushed after every statement when it may be read as it comes: at a prompt, or when stdout
//! is a terminal, pipe or socket, or the file stderr also writes. Otherwise (a script's output
//! to a file or /dev/null) it is written in 64 KiB blocks, as stdio buffers it, and flushed
//! when the shell ends: a 100,000-INSERT script makes 18 writes, not 100,000. Errors go to
//! stderr as `ERROR:  message (SQLSTATE code)`, with psql's `LINE n:` and caret when the error
//! has a position.
//!
//! Backslash commands: see [`HELP`]; `\copy` is in [`copy`]. Tab completion at the prompt:
//! [`complete`]. Ctrl-C during a statement cancels it ([`interrupt`]): a CancelRequest to a
//! server, or the embedded session's interrupt. `:name` variable interpolation is not
//! implemented.
//!
//! Exit codes, as psql's: 0 normally (a failed statement in a script does not change it); 1 if
//! a `-c` command failed, or a file (the database or a `-f` script) could not be opened; 3 when
//! `ON_ERROR_STOP` is set and a script stopped at an error.

mod backend;
mod complete;
mod copy;
mod embedded;
mod interrupt;
mod remote;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{ArgMatches, Args};
use unicode_width::UnicodeWidthStr;

use backend::{Backend, CopyError, ResultRows, StatementOutput, TxnState};
use interrupt::Interrupts;
use strata::QueryResult;

/// The clap id of `-c`, for ordering `-c` and `-f` as given.
pub const COMMAND_ID: &str = "sql_command";
/// The clap id of `-f`.
pub const FILE_ID: &str = "sql_file";

/// Exit code when a script stopped at an error under `ON_ERROR_STOP` (psql's EXIT_USER).
const EXIT_USER: i32 = 3;
/// How deeply `\i` may nest.
const MAX_INCLUDE_DEPTH: usize = 64;

/// The shell's arguments: the top-level arguments of `strata`.
#[derive(Args, Debug, Clone, Default)]
pub struct ShellArgs {
    /// Database file to open (created if missing; default ./strata.db; `:memory:` for a
    /// database in memory only), or a server to connect to:
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME (also postgresql://).
    #[arg(value_name = "DBFILE")]
    pub dbfile: Option<PathBuf>,
    /// Connect to the server on HOST (a name, an address, or a Unix-socket directory).
    #[arg(short = 'h', long = "host", value_name = "HOST")]
    pub host: Option<String>,
    /// Connect to the server on PORT (default 5432, or $PGPORT).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port: Option<u16>,
    /// Connect as USER (default $PGUSER, or the login name); the password comes from the URL
    /// or $PGPASSWORD.
    #[arg(
        short = 'U',
        long = "username",
        visible_alias = "user",
        value_name = "USER"
    )]
    pub user: Option<String>,
    /// Connect to database DBNAME on the server (default: the user name, or $PGDATABASE).
    #[arg(short = 'd', long = "dbname", value_name = "DBNAME")]
    pub dbname: Option<String>,
    /// Run this command string (SQL, or one backslash command), then exit. Repeatable.
    #[arg(short = 'c', long = "command", value_name = "COMMAND", id = COMMAND_ID)]
    pub commands: Vec<String>,
    /// Run the commands in FILE (`-` for stdin), then exit. Repeatable.
    #[arg(short = 'f', long = "file", value_name = "FILE", id = FILE_ID)]
    pub files: Vec<String>,
    /// Set a variable, as \set does (for example `-v ON_ERROR_STOP=1`).
    #[arg(
        short = 'v',
        long = "set",
        visible_alias = "variable",
        value_name = "NAME=VALUE"
    )]
    pub set: Vec<String>,
    /// CSV output.
    #[arg(long)]
    pub csv: bool,
    /// Unaligned output (fields separated by the field separator, `|` by default).
    #[arg(short = 'A', long = "no-align")]
    pub no_align: bool,
    /// Field separator for unaligned output.
    #[arg(short = 'F', long = "field-separator", value_name = "STRING")]
    pub field_separator: Option<String>,
    /// Print rows only: no header, no footer.
    #[arg(short = 't', long = "tuples-only")]
    pub tuples_only: bool,
    /// Expanded output: one line per column.
    #[arg(short = 'x', long = "expanded")]
    pub expanded: bool,
    /// Set a printing option, as \pset does (for example `-P null=NULL`).
    #[arg(short = 'P', long = "pset", value_name = "NAME[=VALUE]")]
    pub pset: Vec<String>,
    /// Quiet: no command tags or informational messages.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Send query results to FILE.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Echo each statement before running it.
    #[arg(short = 'e', long = "echo-queries")]
    pub echo_queries: bool,
    /// Echo every input line as it is read.
    #[arg(short = 'a', long = "echo-all")]
    pub echo_all: bool,
    /// Accepted for psql compatibility (there is no startup file).
    #[arg(short = 'X', long = "no-psqlrc", hide = true)]
    pub no_psqlrc: bool,
}

/// The help of `\?`.
pub const HELP: &str = "\
General
  \\q                     quit (also Ctrl-D, or `quit` / `exit` at the prompt)
  \\?                     show this help
  \\conninfo              show the open database

Query buffer
  \\g                     run the query buffer (or the previous query)
  \\gx                    like \\g, with expanded output
  \\p                     show the query buffer
  \\r                     reset (clear) the query buffer

Input and output
  \\i FILE                run commands from FILE (\\ir: relative to the current script)
  \\o [FILE]              send query results to FILE, or back to stdout
  \\copy TABLE [(COLS)] from 'FILE'|stdin|pstdin [with] (format csv, header, ...)
  \\copy TABLE|(QUERY) to 'FILE'|stdout|pstdout [with] (format csv, header, ...)
                         copy data between a client file and the database
  \\echo [TEXT]           print TEXT

Informational (a PATTERN may use * and ?)
  \\d [NAME]              list tables, views and sequences, or describe NAME
  \\dt [PATTERN]          list tables
  \\di [PATTERN]          list indexes (dense or sparse)
  \\dv [PATTERN]          list views
  \\ds [PATTERN]          list sequences

Formatting
  \\a                     toggle aligned and unaligned output
  \\f [STRING]            show or set the field separator of unaligned output
  \\pset [NAME [VALUE]]   set an output option: format (aligned, unaligned, csv), null,
                         fieldsep, tuples_only, expanded, footer
  \\t [on|off]            rows only
  \\x [on|off|auto]       expanded output
  \\timing [on|off]       show how long each statement takes

Variables
  \\set [NAME [VALUE]]    set a variable, or list them (ON_ERROR_STOP, QUIET)
  \\unset NAME            unset a variable
";

// ---------------------------------------------------------------------------------------------
// Splitting input into statements and backslash commands
// ---------------------------------------------------------------------------------------------

/// One unit of input: a complete SQL statement or a backslash command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A statement, from its first token through its `;`.
    Sql(String),
    /// A backslash command, from the backslash to the end of its line.
    Meta(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Lex {
    #[default]
    Normal,
    /// In '...'; `backslash` for E'...' strings, `escaped` right after a backslash in one.
    Single { backslash: bool, escaped: bool },
    /// In "...".
    Double,
    /// In $tag$...$tag$.
    Dollar(String),
    /// After `--`, to the end of the line.
    LineComment,
    /// In /* ... */, nested to this depth.
    Block(u32),
}

/// Splits text into statements as it arrives: push text (lines, ending in `\n`), then take the
/// pieces that are complete. A `;` ends a statement only outside quotes, dollar quotes,
/// comments and parentheses, as in psql. Whitespace and comments before a statement are dropped,
/// so a statement's text starts at its first token (error positions count from there).
#[derive(Debug, Default)]
pub struct Splitter {
    /// Text pushed and not yet scanned from `pos` (a byte offset, always on a char boundary).
    pending: String,
    pos: usize,
    buf: String,
    state: Lex,
    depth: u32,
    /// The buffer holds something other than whitespace and comments.
    content: bool,
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

impl Splitter {
    /// Adds text to scan.
    pub fn push(&mut self, text: &str) {
        if self.pos > 0 {
            self.pending.drain(..self.pos);
            self.pos = 0;
        }
        self.pending.push_str(text);
    }

    /// Nothing is buffered: the next input starts a new statement.
    pub fn is_idle(&self) -> bool {
        !self.content && self.state == Lex::Normal
    }

    /// The character psql's prompt shows for this state: `=` idle, `-` inside a statement (or
    /// a comment), or the open quote (`'`, `"`, `$`).
    pub fn prompt_char(&self) -> char {
        match self.state {
            Lex::Single { .. } => '\'',
            Lex::Double => '"',
            Lex::Dollar(_) => '$',
            Lex::Block(_) => '-',
            Lex::Normal | Lex::LineComment if self.content => '-',
            _ => '=',
        }
    }

    /// The statement collected so far, if it has anything in it.
    pub fn buffer(&self) -> Option<&str> {
        self.content.then_some(self.buf.as_str())
    }

    /// Takes the unfinished statement (for `\g`, or at end of input), leaving the splitter idle.
    pub fn take_buffer(&mut self) -> Option<String> {
        let had = self.content;
        let text = std::mem::take(&mut self.buf);
        self.reset();
        had.then_some(text)
    }

    /// Forgets the unfinished statement (`\r`, Ctrl-C).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.state = Lex::Normal;
        self.depth = 0;
        self.content = false;
    }

    /// Forgets the statement and any input not yet scanned.
    pub fn clear(&mut self) {
        self.reset();
        self.pending.clear();
        self.pos = 0;
    }

    fn add(&mut self, c: char) {
        self.buf.push(c);
        self.content = true;
    }

    /// Appends `c` only inside a statement (leading comments and blanks are dropped).
    fn keep(&mut self, c: char) {
        if self.content {
            self.buf.push(c);
        }
    }

    fn peek(&self, at: usize) -> Option<char> {
        self.pending.get(at..)?.chars().next()
    }

    /// Copies a run of characters that mean nothing to the splitter in its current state
    /// (most of a statement's text) to the statement in one go.
    fn copy_plain_run(&mut self) {
        if !self.content {
            return;
        }
        // Every special character is ASCII, so a run ends on a char boundary.
        let special = |b: u8| match &self.state {
            Lex::Normal => matches!(
                b,
                b';' | b'\\' | b'-' | b'/' | b'\'' | b'"' | b'$' | b'(' | b')'
            ),
            Lex::Single {
                backslash: false,
                escaped: false,
            } => b == b'\'',
            Lex::Double => b == b'"',
            _ => true,
        };
        let rest = &self.pending.as_bytes()[self.pos..];
        let run = rest.iter().position(|&b| special(b)).unwrap_or(rest.len());
        self.buf.push_str(&self.pending[self.pos..self.pos + run]);
        self.pos += run;
    }

    /// At a `$` (already consumed): the tag of a dollar quote opening here, if one does.
    fn dollar_tag(&self) -> Option<String> {
        if self.buf.chars().last().is_some_and(is_ident_char) {
            return None; // part of an identifier, or a parameter like $1 cannot follow one
        }
        let mut tag = String::new();
        for c in self.pending[self.pos..].chars() {
            if c == '$' {
                return Some(tag);
            }
            let ok = if tag.is_empty() {
                c.is_alphabetic() || c == '_' || !c.is_ascii()
            } else {
                c.is_alphanumeric() || c == '_' || !c.is_ascii()
            };
            if !ok {
                return None;
            }
            tag.push(c);
        }
        None
    }

    /// The next complete piece, or None when the text pushed so far is used up.
    pub fn next_piece(&mut self) -> Option<Piece> {
        loop {
            self.copy_plain_run();
            let Some(c) = self.peek(self.pos) else {
                break;
            };
            self.pos += c.len_utf8();
            let next = self.peek(self.pos);
            match &mut self.state {
                Lex::Normal => match c {
                    ';' if self.depth == 0 => {
                        if self.content {
                            self.buf.push(';');
                            let sql = std::mem::take(&mut self.buf);
                            self.reset();
                            return Some(Piece::Sql(sql));
                        }
                    }
                    '\\' => {
                        let rest = &self.pending[self.pos..];
                        let end = rest.find('\n').unwrap_or(rest.len());
                        let cmd = format!("\\{}", rest[..end].trim_end());
                        self.pos += end;
                        return Some(Piece::Meta(cmd));
                    }
                    '-' if next == Some('-') => {
                        self.pos += 1;
                        self.keep('-');
                        self.keep('-');
                        self.state = Lex::LineComment;
                    }
                    '/' if next == Some('*') => {
                        self.pos += 1;
                        self.keep('/');
                        self.keep('*');
                        self.state = Lex::Block(1);
                    }
                    '\'' => {
                        let mut tail = self.buf.chars().rev();
                        let backslash = matches!(tail.next(), Some('e' | 'E'))
                            && !tail.next().is_some_and(is_ident_char);
                        self.add('\'');
                        self.state = Lex::Single {
                            backslash,
                            escaped: false,
                        };
                    }
                    '"' => {
                        self.add('"');
                        self.state = Lex::Double;
                    }
                    '$' => match self.dollar_tag() {
                        Some(tag) => {
                            self.add('$');
                            self.buf.push_str(&tag);
                            self.buf.push('$');
                            self.pos += tag.len() + 1;
                            self.state = Lex::Dollar(tag);
                        }
                        None => self.add('$'),
                    },
                    '(' => {
                        self.depth += 1;
                        self.add('(');
                    }
                    ')' => {
                        self.depth = self.depth.saturating_sub(1);
                        self.add(')');
                    }
                    c if c.is_whitespace() => self.keep(c),
                    c => self.add(c),
                },
                Lex::Single { backslash, escaped } => {
                    self.buf.push(c);
                    if *escaped {
                        *escaped = false;
                    } else if *backslash && c == '\\' {
                        *escaped = true;
                    } else if c == '\'' {
                        if next == Some('\'') {
                            self.buf.push('\'');
                            self.pos += 1;
                        } else {
                            self.state = Lex::Normal;
                        }
                    }
                }
                Lex::Double => {
                    self.buf.push(c);
                    if c == '"' {
                        if next == Some('"') {
                            self.buf.push('"');
                            self.pos += 1;
                        } else {
                            self.state = Lex::Normal;
                        }
                    }
                }
                Lex::Dollar(tag) => {
                    self.buf.push(c);
                    if c == '$' {
                        let n = tag.len();
                        let rest = &self.pending[self.pos..];
                        let closes =
                            rest.starts_with(tag.as_str()) && rest.as_bytes().get(n) == Some(&b'$');
                        if closes {
                            let tag = std::mem::take(tag);
                            self.buf.push_str(&tag);
                            self.buf.push('$');
                            self.pos += n + 1;
                            self.state = Lex::Normal;
                        }
                    }
                }
                Lex::LineComment => {
                    if c == '\n' {
                        self.state = Lex::Normal;
                    }
                    self.keep(c);
                }
                Lex::Block(depth) => {
                    if c == '/' && next == Some('*') {
                        *depth += 1;
                        self.pos += 1;
                        self.keep('/');
                        self.keep('*');
                    } else if c == '*' && next == Some('/') {
                        *depth -= 1;
                        if *depth == 0 {
                            self.state = Lex::Normal;
                        }
                        self.pos += 1;
                        self.keep('*');
                        self.keep('/');
                    } else {
                        self.keep(c);
                    }
                }
            }
        }
        self.pending.clear();
        self.pos = 0;
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Printing tables as psql does
// ---------------------------------------------------------------------------------------------

/// Output format (`\pset format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Aligned,
    Unaligned,
    Csv,
}

/// Expanded output (`\x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expanded {
    Off,
    On,
    /// Expanded when an aligned table would be wider than the terminal.
    Auto,
}

/// Printing options (`\pset`).
#[derive(Debug, Clone)]
pub struct PrintOpts {
    pub format: Format,
    pub tuples_only: bool,
    pub expanded: Expanded,
    /// Field separator of unaligned output.
    pub field_sep: String,
    /// How NULL shows.
    pub null: String,
    /// The `(N rows)` footer.
    pub footer: bool,
    /// Terminal width, for `\x auto` (None: output is not a terminal, never expand).
    pub columns: Option<usize>,
}

impl Default for PrintOpts {
    fn default() -> Self {
        PrintOpts {
            format: Format::Aligned,
            tuples_only: false,
            expanded: Expanded::Off,
            field_sep: "|".into(),
            null: String::new(),
            footer: true,
            columns: None,
        }
    }
}

/// A table to print: a query result or a `\d` listing.
#[derive(Debug, Clone, Default)]
pub struct TableData {
    pub title: Option<String>,
    pub headers: Vec<String>,
    /// Per column: right-aligned (numbers).
    pub right: Vec<bool>,
    /// Cells; None is NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// Lines after the table; None for the default `(N rows)`.
    pub footers: Option<Vec<String>>,
}

impl TableData {
    fn from_result(r: QueryResult) -> TableData {
        TableData {
            title: None,
            headers: r.columns.iter().map(|c| c.name.clone()).collect(),
            right: r.columns.iter().map(|c| c.ty.is_numeric()).collect(),
            rows: r
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(strata::Value::into_text).collect())
                .collect(),
            footers: None,
        }
    }

    /// A table of text cells, all left-aligned.
    fn text(title: &str, headers: &[&str], rows: Vec<Vec<String>>) -> TableData {
        TableData {
            title: Some(title.to_string()),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            right: vec![false; headers.len()],
            rows: rows
                .into_iter()
                .map(|r| r.into_iter().map(Some).collect())
                .collect(),
            footers: None,
        }
    }

    fn footer_lines(&self) -> Vec<String> {
        match &self.footers {
            Some(f) => f.clone(),
            None => vec![row_count(self.rows.len())],
        }
    }
}

fn row_count(n: usize) -> String {
    if n == 1 {
        "(1 row)".into()
    } else {
        format!("({n} rows)")
    }
}

fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

fn spaces(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Renders a table in the format of `opts`; `expanded` overrides `opts.expanded` (`\gx`).
pub fn render(opts: &PrintOpts, t: &TableData, expanded: Option<bool>) -> String {
    let expanded = expanded.unwrap_or(opts.expanded == Expanded::On);
    match opts.format {
        Format::Csv => render_csv(opts, t, expanded),
        Format::Unaligned => render_unaligned(opts, t, expanded),
        Format::Aligned if expanded => render_vertical(opts, t),
        Format::Aligned => {
            let s = render_aligned(opts, t);
            let too_wide = opts.expanded == Expanded::Auto
                && opts
                    .columns
                    .is_some_and(|cols| s.lines().any(|l| width(l) > cols));
            if too_wide && !t.rows.is_empty() {
                render_vertical(opts, t)
            } else {
                s
            }
        }
    }
}

fn cell_text<'a>(opts: &'a PrintOpts, cell: &'a Option<String>) -> &'a str {
    cell.as_deref().unwrap_or(&opts.null)
}

fn render_aligned(opts: &PrintOpts, t: &TableData) -> String {
    let n = t.headers.len();
    let header_lines: Vec<Vec<&str>> = t.headers.iter().map(|h| h.split('\n').collect()).collect();
    let rows: Vec<Vec<Vec<&str>>> = t
        .rows
        .iter()
        .map(|r| {
            (0..n)
                .map(|j| {
                    let text = r.get(j).map(|c| cell_text(opts, c)).unwrap_or("");
                    text.split('\n').collect()
                })
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = header_lines
        .iter()
        .map(|ls| ls.iter().map(|l| width(l)).max().unwrap_or(0))
        .collect();
    for r in &rows {
        for (j, cell) in r.iter().enumerate() {
            for l in cell {
                widths[j] = widths[j].max(width(l));
            }
        }
    }
    let mut s = String::new();
    if !opts.tuples_only {
        if let Some(title) = &t.title {
            let total = widths.iter().sum::<usize>() + (3 * n).saturating_sub(1);
            let tw = width(title);
            if total >= tw {
                spaces(&mut s, (total - tw) / 2);
            }
            s.push_str(title);
            s.push('\n');
        }
        if n > 0 {
            aligned_lines(&mut s, &header_lines, &widths, &[], true);
        }
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        s.push_str(if n == 0 { "--" } else { "" });
        s.push_str(&rule.join("+"));
        s.push('\n');
    }
    for r in &rows {
        aligned_lines(&mut s, r, &widths, &t.right, false);
    }
    if !opts.tuples_only && opts.footer {
        for f in t.footer_lines() {
            s.push_str(&f);
            s.push('\n');
        }
    }
    s.push('\n');
    s
}

/// One row (header or data) of an aligned table, over as many lines as its tallest cell.
fn aligned_lines(
    s: &mut String,
    cells: &[Vec<&str>],
    widths: &[usize],
    right: &[bool],
    header: bool,
) {
    let n = cells.len();
    let height = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
    for l in 0..height {
        s.push(' ');
        for (j, cell) in cells.iter().enumerate() {
            let text = cell.get(l).copied().unwrap_or("");
            let more = l + 1 < cell.len();
            let pad = widths[j].saturating_sub(width(text));
            let last = j + 1 == n;
            if header {
                spaces(s, pad / 2);
                s.push_str(text);
                spaces(s, pad - pad / 2);
            } else if right.get(j).copied().unwrap_or(false) {
                spaces(s, pad);
                s.push_str(text);
            } else {
                s.push_str(text);
                if !last || more {
                    spaces(s, pad);
                }
            }
            if !last {
                s.push(if more { '+' } else { ' ' });
                s.push_str("| ");
            } else if more {
                s.push('+');
            } else if header {
                s.push(' ');
            }
        }
        s.push('\n');
    }
}

/// The line above each record of expanded output: `-[ RECORD n ]---` (psql's arithmetic).
fn record_line(record: usize, hwidth: usize, dwidth: usize) -> String {
    let mut s = String::from("-");
    let mut reclen: isize = 0;
    if record > 0 {
        let label = format!("[ RECORD {record} ]");
        reclen = label.len() as isize;
        s.push_str(&label);
    }
    reclen += 1;
    let (h, d) = (hwidth as isize, dwidth as isize);
    for _ in reclen..h {
        s.push('-');
    }
    reclen -= h;
    for c in ['-', '+', '-'] {
        if reclen <= 0 {
            s.push(c);
        }
        reclen -= 1;
    }
    for _ in reclen.max(0)..d {
        s.push('-');
    }
    s
}

fn render_vertical(opts: &PrintOpts, t: &TableData) -> String {
    let mut s = String::new();
    if t.rows.is_empty() {
        if !opts.tuples_only && opts.footer {
            for f in t.footer_lines() {
                s.push_str(&f);
                s.push('\n');
            }
        }
        s.push('\n');
        return s;
    }
    let hwidth = t.headers.iter().map(|h| width(h)).max().unwrap_or(0);
    let dwidth = t
        .rows
        .iter()
        .flatten()
        .flat_map(|c| cell_text(opts, c).split('\n'))
        .map(width)
        .max()
        .unwrap_or(0);
    if !opts.tuples_only {
        if let Some(title) = &t.title {
            s.push_str(title);
            s.push('\n');
        }
    }
    for (i, row) in t.rows.iter().enumerate() {
        if !opts.tuples_only {
            s.push_str(&record_line(i + 1, hwidth, dwidth));
            s.push('\n');
        } else if i > 0 {
            s.push_str(&record_line(0, hwidth, dwidth));
            s.push('\n');
        }
        for (j, h) in t.headers.iter().enumerate() {
            let text = row.get(j).map(|c| cell_text(opts, c)).unwrap_or("");
            let lines: Vec<&str> = text.split('\n').collect();
            for (l, line) in lines.iter().enumerate() {
                if l == 0 {
                    s.push_str(h);
                    spaces(&mut s, hwidth.saturating_sub(width(h)));
                } else {
                    spaces(&mut s, hwidth);
                }
                s.push_str(" | ");
                s.push_str(line);
                if l + 1 < lines.len() {
                    spaces(&mut s, dwidth.saturating_sub(width(line)));
                    s.push('+');
                }
                s.push('\n');
            }
        }
    }
    if !opts.tuples_only {
        if let Some(f) = t.footers.as_ref().filter(|f| !f.is_empty()) {
            s.push('\n');
            for line in f {
                s.push_str(line);
                s.push('\n');
            }
        }
    }
    s.push('\n');
    s
}

/// Unaligned output of a query result, written straight from its values (what
/// `render_unaligned` gives for `TableData::from_result`, without a string per cell).
fn render_unaligned_rows(opts: &PrintOpts, r: &QueryResult, s: &mut String) {
    let sep = opts.field_sep.as_str();
    if !opts.tuples_only {
        for (j, c) in r.columns.iter().enumerate() {
            if j > 0 {
                s.push_str(sep);
            }
            s.push_str(&c.name);
        }
        s.push('\n');
    }
    for row in &r.rows {
        for (j, v) in row.iter().enumerate() {
            if j > 0 {
                s.push_str(sep);
            }
            if !v.write_text(s) {
                s.push_str(&opts.null);
            }
        }
        s.push('\n');
    }
    if !opts.tuples_only && opts.footer {
        s.push_str(&row_count(r.rows.len()));
        s.push('\n');
    }
}

fn render_unaligned(opts: &PrintOpts, t: &TableData, expanded: bool) -> String {
    let sep = opts.field_sep.as_str();
    let mut s = String::new();
    if !opts.tuples_only {
        if let Some(title) = &t.title {
            s.push_str(title);
            s.push('\n');
        }
    }
    if expanded {
        for (i, row) in t.rows.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            for (j, h) in t.headers.iter().enumerate() {
                s.push_str(h);
                s.push_str(sep);
                s.push_str(row.get(j).map(|c| cell_text(opts, c)).unwrap_or(""));
                s.push('\n');
            }
        }
        if !opts.tuples_only {
            match &t.footers {
                Some(f) => f.iter().for_each(|l| {
                    s.push_str(l);
                    s.push('\n');
                }),
                None if t.rows.is_empty() && opts.footer => s.push_str("(0 rows)\n"),
                None => {}
            }
        }
        return s;
    }
    if !opts.tuples_only {
        s.push_str(&t.headers.join(sep));
        s.push('\n');
    }
    for row in &t.rows {
        for (j, c) in row.iter().enumerate() {
            if j > 0 {
                s.push_str(sep);
            }
            s.push_str(cell_text(opts, c));
        }
        s.push('\n');
    }
    if !opts.tuples_only && opts.footer {
        for f in t.footer_lines() {
            s.push_str(&f);
            s.push('\n');
        }
    }
    s
}

/// A CSV field, quoted when it holds the separator, a quote or a line break (psql's rule).
fn csv_field(text: &str, sep: char) -> String {
    let quote = text.contains(sep)
        || text.contains(['"', '\n', '\r'])
        || text == "\\."
        || sep == '\\'
        || sep == '.';
    if quote {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn render_csv(opts: &PrintOpts, t: &TableData, expanded: bool) -> String {
    let sep = ',';
    let mut s = String::new();
    let line = |s: &mut String, cells: Vec<String>| {
        s.push_str(&cells.join(","));
        s.push('\n');
    };
    if expanded {
        for row in &t.rows {
            for (j, h) in t.headers.iter().enumerate() {
                let v = row.get(j).map(|c| cell_text(opts, c)).unwrap_or("");
                line(&mut s, vec![csv_field(h, sep), csv_field(v, sep)]);
            }
        }
        return s;
    }
    if !opts.tuples_only {
        line(
            &mut s,
            t.headers.iter().map(|h| csv_field(h, sep)).collect(),
        );
    }
    for row in &t.rows {
        line(
            &mut s,
            row.iter()
                .map(|c| csv_field(cell_text(opts, c), sep))
                .collect(),
        );
    }
    s
}

/// psql's `LINE n:` context with a caret under the error position (1-based characters into
/// `sql`); long lines are cut to about 60 columns around the position.
pub fn error_context(sql: &str, position: usize) -> String {
    const DISPLAY: usize = 60;
    const MIN_RIGHT_CUT: usize = 10;
    let chars: Vec<char> = sql.chars().collect();
    if position == 0 || chars.is_empty() {
        return String::new();
    }
    let loc = (position - 1).min(chars.len());
    let line_start = chars[..loc]
        .iter()
        .rposition(|&c| c == '\n')
        .map_or(0, |i| i + 1);
    let line_no = chars[..loc].iter().filter(|&&c| c == '\n').count() + 1;
    let line_end = chars[loc..]
        .iter()
        .position(|&c| c == '\n')
        .map_or(chars.len(), |i| loc + i);
    let line: Vec<char> = chars[line_start..line_end]
        .iter()
        .map(|&c| if c == '\t' || c == '\r' { ' ' } else { c })
        .collect();
    let mut off = vec![0usize; line.len() + 1];
    for (i, c) in line.iter().enumerate() {
        off[i + 1] = off[i] + unicode_width::UnicodeWidthChar::width(*c).unwrap_or(0);
    }
    let cur = loc - line_start;
    let (mut ibeg, mut iend) = (0, line.len());
    let (mut beg_trunc, mut end_trunc) = (false, false);
    if off[iend] > DISPLAY {
        if off[cur] + MIN_RIGHT_CUT < DISPLAY {
            while off[iend] > DISPLAY {
                iend -= 1;
            }
            end_trunc = true;
        } else {
            while off[cur] + MIN_RIGHT_CUT < off[iend] {
                iend -= 1;
                end_trunc = true;
            }
            while off[iend] - off[ibeg] > DISPLAY {
                ibeg += 1;
                beg_trunc = true;
            }
        }
    }
    let prefix = format!("LINE {line_no}: ");
    let mut s = prefix.clone();
    if beg_trunc {
        s.push_str("...");
    }
    s.extend(&line[ibeg..iend]);
    if end_trunc {
        s.push_str("...");
    }
    s.push('\n');
    let indent = prefix.len() + if beg_trunc { 3 } else { 0 } + off[cur] - off[ibeg];
    spaces(&mut s, indent);
    s.push_str("^\n");
    s
}

/// psql's `Time:` line.
fn timing_text(ms: f64) -> String {
    if ms < 1000.0 {
        return format!("Time: {ms:.3} ms");
    }
    let mut seconds = ms / 1000.0;
    let mut minutes = (seconds / 60.0).floor();
    seconds -= 60.0 * minutes;
    if minutes < 60.0 {
        return format!("Time: {ms:.3} ms ({:02}:{seconds:06.3})", minutes as u64);
    }
    let mut hours = (minutes / 60.0).floor();
    minutes -= 60.0 * hours;
    if hours < 24.0 {
        return format!(
            "Time: {ms:.3} ms ({:02}:{:02}:{seconds:06.3})",
            hours as u64, minutes as u64
        );
    }
    let days = (hours / 24.0).floor();
    hours -= 24.0 * days;
    format!(
        "Time: {ms:.3} ms ({days:.0} d {:02}:{:02}:{seconds:06.3})",
        hours as u64, minutes as u64
    )
}

/// psql's boolean variable values: prefixes of true/false/yes/no, on/off, 1/0.
fn parse_bool(v: &str) -> Option<bool> {
    let v = v.trim().to_ascii_lowercase();
    if v.is_empty() {
        return None;
    }
    let prefix_of = |word: &str| word.starts_with(v.as_str());
    if prefix_of("true") || prefix_of("yes") || v == "1" || (v.len() >= 2 && prefix_of("on")) {
        Some(true)
    } else if prefix_of("false")
        || prefix_of("no")
        || v == "0"
        || (v.len() >= 2 && prefix_of("off"))
    {
        Some(false)
    } else {
        None
    }
}

/// Splits a backslash command's arguments: blanks separate, '...' quotes (with '' for a
/// quote); "..." is kept with its quotes (identifiers keep their case).
fn split_args(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let mut arg = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\'' => {
                    while let Some(c) = chars.next() {
                        if c == '\'' {
                            if chars.peek() == Some(&'\'') {
                                chars.next();
                                arg.push('\'');
                            } else {
                                break;
                            }
                        } else {
                            arg.push(c);
                        }
                    }
                }
                '"' => {
                    arg.push('"');
                    for c in chars.by_ref() {
                        arg.push(c);
                        if c == '"' {
                            break;
                        }
                    }
                }
                c => arg.push(c),
            }
        }
        out.push(arg);
    }
}

/// A `\d` name or pattern as stored: `public.` dropped, unquoted parts folded to lower case.
fn normalize_name(arg: &str) -> String {
    let arg = arg
        .strip_prefix("public.")
        .or_else(|| arg.strip_prefix("\"public\"."))
        .unwrap_or(arg);
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                out.push('"');
            }
            '"' => quoted = !quoted,
            c if quoted => out.push(c),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Whether `name` matches `pattern` (`*` any run, `?` any one character).
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The data of `\copy ... from stdin`: lines up to one that is just `\.`, or the end of input.
fn read_copy_data(input: &mut dyn BufRead) -> Result<Vec<u8>, CopyError> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| CopyError::Io(format!("reading the data: {e}")))?;
        if n == 0 {
            return Ok(data);
        }
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content == b"\\." {
            return Ok(data);
        }
        data.extend_from_slice(&line);
        if !line.ends_with(b"\n") {
            data.push(b'\n');
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shell
// ---------------------------------------------------------------------------------------------

/// What to do after a statement or command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    /// `\q`, or the output went away.
    Quit,
    /// An error under ON_ERROR_STOP: stop the script.
    Stop,
}

enum Output {
    Stdout,
    File(BufWriter<File>),
}

/// Whether output is flushed after every statement (see the module doc): false only for a
/// script whose stdout is a regular file or a device that is not a terminal (`/dev/null`), and
/// not the file stderr writes too (whose errors must land between the results around them).
fn output_is_live() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if io::stdin().is_terminal() || io::stdout().is_terminal() {
        return true;
    }
    let metadata = |fd: std::os::fd::BorrowedFd| {
        let fd = fd.try_clone_to_owned().ok()?;
        File::from(fd).metadata().ok()
    };
    let Some(out) = metadata(io::stdout().as_fd()) else {
        return true;
    };
    let kind = out.file_type();
    if kind.is_file() {
        metadata(io::stderr().as_fd())
            .is_none_or(|err| err.dev() == out.dev() && err.ino() == out.ino())
    } else {
        !kind.is_char_device()
    }
}

/// Writes `text` to `sink`, then flushes it if `flush` (the output is live).
fn write_flushed_if(sink: &mut impl Write, text: &[u8], flush: bool) -> io::Result<()> {
    sink.write_all(text)?;
    if flush {
        sink.flush()?;
    }
    Ok(())
}

struct Shell {
    /// The database: embedded or remote.
    backend: Box<dyn Backend>,
    /// Ctrl-C handling, when installed (remote sessions).
    interrupts: Option<Arc<Interrupts>>,
    /// A statement ran since tab completion last read the table and column names.
    names_stale: bool,
    print: PrintOpts,
    out: Output,
    timing: bool,
    echo_queries: bool,
    echo_all: bool,
    vars: BTreeMap<String, String>,
    last_query: Option<String>,
    /// Directories of the scripts being run (for \ir).
    script_dirs: Vec<PathBuf>,
    broken_pipe: bool,
    /// Stdout, buffered: every write to it goes through here, so output keeps its order.
    stdout: BufWriter<io::Stdout>,
    /// Flush the output after every statement ([`output_is_live`]).
    live: bool,
}

/// Runs the shell; returns the exit code.
pub fn run(args: ShellArgs, matches: &ArgMatches) -> i32 {
    // -c and -f in the order given.
    let mut actions: Vec<(usize, bool, String)> = Vec::new();
    let indexed = |id: &str| -> Vec<usize> {
        matches
            .indices_of(id)
            .map(|i| i.collect())
            .unwrap_or_default()
    };
    for (i, c) in indexed(COMMAND_ID).into_iter().zip(&args.commands) {
        actions.push((i, true, c.clone()));
    }
    for (i, f) in indexed(FILE_ID).into_iter().zip(&args.files) {
        actions.push((i, false, f.clone()));
    }
    if actions.len() != args.commands.len() + args.files.len() {
        // No indices (built without matches): commands first, then files.
        actions = args
            .commands
            .iter()
            .map(|c| (0, true, c.clone()))
            .chain(args.files.iter().map(|f| (1, false, f.clone())))
            .collect();
    }
    actions.sort_by_key(|a| a.0);

    let url = args
        .dbfile
        .as_ref()
        .and_then(|p| p.to_str())
        .filter(|p| remote::is_url(p))
        .map(str::to_string);
    let is_remote = url.is_some()
        || args.host.is_some()
        || args.port.is_some()
        || args.user.is_some()
        || args.dbname.is_some();
    let mut interrupts = None;
    let backend: Box<dyn Backend> = if is_remote {
        if url.is_none() && args.dbfile.is_some() {
            eprintln!(
                "strata: error: a database file and -h/-p/-U/-d do not go together (for a server, give a postgres:// URL or the flags)"
            );
            return 1;
        }
        let opts = remote::ConnectOptions {
            url,
            host: args.host.clone(),
            port: args.port,
            user: args.user.clone(),
            dbname: args.dbname.clone(),
        };
        let mut remote = match remote::Remote::connect(&opts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("strata: error: {e}");
                return 2;
            }
        };
        // Only now: while connecting, Ctrl-C keeps its default effect (ends the shell).
        match Interrupts::install() {
            Ok(i) => {
                remote.set_interrupts(i.clone());
                interrupts = Some(i);
            }
            Err(e) => eprintln!("strata: warning: Ctrl-C will not cancel statements: {e}"),
        }
        Box::new(remote)
    } else {
        let path = args
            .dbfile
            .clone()
            .unwrap_or_else(|| PathBuf::from("strata.db"));
        match embedded::Embedded::open(&path) {
            Ok(e) => {
                match Interrupts::install() {
                    Ok(i) => {
                        i.set_embedded(e.interrupt());
                        interrupts = Some(i);
                    }
                    Err(e) => {
                        eprintln!("strata: warning: Ctrl-C will not cancel statements: {e}")
                    }
                }
                Box::new(e)
            }
            Err(e) => {
                eprintln!("strata: error: {e}");
                return 1;
            }
        }
    };
    let mut shell = Shell {
        backend,
        interrupts,
        names_stale: true,
        print: PrintOpts::default(),
        out: Output::Stdout,
        timing: false,
        echo_queries: args.echo_queries,
        echo_all: args.echo_all,
        vars: BTreeMap::new(),
        last_query: None,
        script_dirs: Vec::new(),
        broken_pipe: false,
        stdout: BufWriter::with_capacity(64 << 10, io::stdout()),
        live: output_is_live(),
    };
    if args.csv {
        shell.print.format = Format::Csv;
    } else if args.no_align {
        shell.print.format = Format::Unaligned;
    }
    if let Some(sep) = &args.field_separator {
        shell.print.field_sep = sep.clone();
    }
    shell.print.tuples_only = args.tuples_only;
    if args.expanded {
        shell.print.expanded = Expanded::On;
    }
    if args.quiet {
        shell.vars.insert("QUIET".into(), "on".into());
    }
    for v in &args.set {
        let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
        if k.is_empty() {
            eprintln!("strata: error: invalid variable assignment {v:?}: use NAME=VALUE");
            return 1;
        }
        shell.vars.insert(k.to_string(), val.to_string());
    }
    for p in &args.pset {
        let (k, val) = match p.split_once('=') {
            Some((k, v)) => (k, vec![v.to_string()]),
            None => (p.as_str(), vec![]),
        };
        if let Err(e) = shell.pset(k, &val, true) {
            eprintln!("strata: error: {e}");
            return 1;
        }
    }
    if let Some(file) = &args.output {
        if let Err(e) = shell.set_output(Some(&file.to_string_lossy())) {
            eprintln!("strata: error: {e}");
            return 1;
        }
    }
    let stdout_tty = io::stdout().is_terminal() && args.output.is_none();
    if stdout_tty {
        shell.print.columns = Some(
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(80),
        );
    }

    let code = if !actions.is_empty() {
        shell.run_actions(&actions)
    } else if io::stdin().is_terminal() {
        shell.interactive();
        0
    } else {
        let stdin = io::stdin();
        match shell.run_lines(&mut stdin.lock(), "<stdin>") {
            Flow::Stop => EXIT_USER,
            _ => 0,
        }
    };
    shell.close();
    code
}

impl Shell {
    fn close(mut self) {
        self.flush_output();
        self.backend.close();
    }

    /// Writes out whatever output is buffered (stdout and the `\o` file).
    fn flush_output(&mut self) {
        let out = match &mut self.out {
            Output::File(f) => f.flush(),
            Output::Stdout => Ok(()),
        };
        let r = out.and(self.stdout.flush());
        self.note_write_error(r);
    }

    /// After a failed write: a closed pipe ends the shell quietly, anything else is reported.
    fn note_write_error(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            if e.kind() == io::ErrorKind::BrokenPipe {
                self.broken_pipe = true;
            } else {
                eprintln!("strata: error: could not write output: {e}");
            }
        }
    }

    /// Writes text to stdout, flushed if the output is live.
    fn write_stdout(&mut self, text: &[u8]) {
        let r = write_flushed_if(&mut self.stdout, text, self.live);
        self.note_write_error(r);
    }

    /// Whether Ctrl-C was pressed since the last check (and forgets it).
    fn take_interrupt(&self) -> bool {
        self.interrupts.as_ref().is_some_and(|i| i.take_pressed())
    }

    fn var_bool(&self, name: &str) -> bool {
        self.vars
            .get(name)
            .and_then(|v| parse_bool(v))
            .unwrap_or(false)
    }

    fn quiet(&self) -> bool {
        self.var_bool("QUIET")
    }

    /// The flow after a failure: stop under ON_ERROR_STOP.
    fn failed(&self) -> Flow {
        if self.var_bool("ON_ERROR_STOP") {
            Flow::Stop
        } else {
            Flow::Go
        }
    }

    fn run_actions(&mut self, actions: &[(usize, bool, String)]) -> i32 {
        let mut code = 0;
        for (_, is_command, text) in actions {
            let flow;
            if *is_command {
                (flow, code) = self.run_command_string(text);
            } else if text == "-" {
                let stdin = io::stdin();
                flow = self.run_lines(&mut stdin.lock(), "<stdin>");
                code = if flow == Flow::Stop { EXIT_USER } else { 0 };
            } else {
                match File::open(text) {
                    Ok(f) => {
                        self.script_dirs
                            .push(Path::new(text).parent().unwrap_or(Path::new("")).into());
                        flow = self.run_lines(&mut BufReader::new(f), text);
                        self.script_dirs.pop();
                        code = if flow == Flow::Stop { EXIT_USER } else { 0 };
                    }
                    Err(e) => {
                        eprintln!("strata: error: {text}: {e}");
                        flow = Flow::Go;
                        code = 1;
                    }
                }
            }
            if flow == Flow::Quit || (code != 0 && self.var_bool("ON_ERROR_STOP")) {
                break;
            }
        }
        code
    }

    /// `-c`: statements run in order until one fails (as a multi-statement query string does
    /// on a server); exit code 1 if one did.
    fn run_command_string(&mut self, text: &str) -> (Flow, i32) {
        let mut sp = Splitter::default();
        sp.push(text);
        sp.push("\n");
        let mut pieces = Vec::new();
        while let Some(p) = sp.next_piece() {
            pieces.push(p);
        }
        if let Some(rest) = sp.take_buffer() {
            pieces.push(Piece::Sql(rest));
        }
        for p in pieces {
            let (ok, flow) = match p {
                Piece::Sql(sql) => (self.exec_sql(&sql, None), Flow::Go),
                Piece::Meta(cmd) => match self.meta(&cmd, &mut sp, None) {
                    // A script (\i) that stopped at an error fails the command.
                    Ok(Flow::Stop) | Err(()) => (false, Flow::Go),
                    Ok(f) => (true, f),
                },
            };
            if self.broken_pipe {
                return (Flow::Quit, 0);
            }
            if !ok {
                return (Flow::Go, 1);
            }
            if flow == Flow::Quit {
                return (Flow::Quit, 0);
            }
        }
        (Flow::Go, 0)
    }

    /// Runs a script: statements as their `;` arrives, the unterminated rest at EOF.
    fn run_lines(&mut self, input: &mut dyn BufRead, source: &str) -> Flow {
        let mut sp = Splitter::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("strata: error: reading {source}: {e}");
                    return self.failed();
                }
            }
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            // (`from_utf8` checks ASCII a word at a time; invalid input is rare.)
            let text = match std::str::from_utf8(&line) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(&line),
            };
            if self.echo_all {
                self.write_out(&text);
            }
            sp.push(&text);
            let flow = self.drain(&mut sp, Some(&mut *input));
            if flow != Flow::Go {
                return flow;
            }
            if self.take_interrupt() {
                // Ctrl-C stops a script, as in psql (the running statement was canceled).
                return Flow::Stop;
            }
        }
        if let Some(sql) = sp.take_buffer() {
            if !self.exec_sql(&sql, None) {
                return self.failed();
            }
        }
        Flow::Go
    }

    /// Runs every complete piece in the splitter.
    /// `input` is where the script comes from (`\copy ... from stdin` reads its data there).
    fn drain(&mut self, sp: &mut Splitter, mut input: Option<&mut dyn BufRead>) -> Flow {
        while let Some(piece) = sp.next_piece() {
            let flow = match piece {
                Piece::Sql(sql) => {
                    if self.exec_sql(&sql, None) {
                        Flow::Go
                    } else {
                        self.failed()
                    }
                }
                // (`as_deref_mut` would tie the reborrow to the whole loop.)
                #[allow(clippy::option_as_ref_deref)]
                Piece::Meta(cmd) => self
                    .meta(
                        &cmd,
                        sp,
                        input.as_mut().map(|i| -> &mut dyn BufRead { &mut **i }),
                    )
                    .unwrap_or_else(|()| self.failed()),
            };
            if self.broken_pipe {
                return Flow::Quit;
            }
            if flow != Flow::Go {
                return flow;
            }
        }
        Flow::Go
    }

    fn prompt(&mut self, sp: &Splitter) -> String {
        let mut c = sp.prompt_char();
        if c == '=' {
            c = match self.backend.txn_state() {
                TxnState::Idle => '=',
                TxnState::InTransaction => '*',
                TxnState::Failed => '!',
            };
        }
        format!("{}{}> ", self.backend.prompt_name(), c)
    }

    fn interactive(&mut self) {
        use rustyline::error::ReadlineError;
        // Tab completes the common prefix, a second Tab lists the candidates (as in psql).
        let config = rustyline::Config::builder()
            .completion_type(rustyline::CompletionType::List)
            .build();
        let mut rl = match rustyline::Editor::<
            complete::SqlHelper,
            rustyline::history::DefaultHistory,
        >::with_config(config)
        {
            Ok(rl) => rl,
            Err(e) => {
                eprintln!("strata: warning: no line editing ({e})");
                let stdin = io::stdin();
                self.run_lines(&mut stdin.lock(), "<stdin>");
                return;
            }
        };
        let history = std::env::var_os("STRATA_HISTORY")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".strata_history")));
        if let Some(h) = &history {
            let _ = rl.load_history(h);
        }
        rl.set_helper(Some(complete::SqlHelper::default()));
        println!(
            "strata {} ({})\nType \"\\?\" for help.\n",
            env!("CARGO_PKG_VERSION"),
            self.backend.banner()
        );
        let mut sp = Splitter::default();
        let mut entry = String::new();
        loop {
            let prompt = self.prompt(&sp);
            if self.names_stale {
                self.names_stale = false;
                let names = self.backend.completion_names();
                if let Some(h) = rl.helper_mut() {
                    h.set_names(names);
                }
            }
            match rl.readline(&prompt) {
                Ok(line) => {
                    if sp.is_idle() {
                        let word = line.trim().trim_end_matches(';').trim();
                        match word {
                            "quit" | "exit" => break,
                            "help" => {
                                println!(
                                    "You are using strata, the command-line interface to Strata.\n\
                                     Type:  \\? for help with commands\n       \\q to quit"
                                );
                                continue;
                            }
                            _ => {}
                        }
                    }
                    if !entry.is_empty() {
                        entry.push('\n');
                    }
                    entry.push_str(&line);
                    sp.push(&line);
                    sp.push("\n");
                    // ON_ERROR_STOP stops scripts, not the prompt: run the rest of the line.
                    self.take_interrupt();
                    let flow = loop {
                        match self.drain(&mut sp, None) {
                            Flow::Stop => continue,
                            f => break f,
                        }
                    };
                    if sp.is_idle() && !entry.trim().is_empty() {
                        let _ = rl.add_history_entry(std::mem::take(&mut entry));
                    }
                    if flow == Flow::Quit {
                        break;
                    }
                }
                Err(ReadlineError::Interrupted) => {
                    sp.clear();
                    entry.clear();
                }
                Err(ReadlineError::Eof) => {
                    println!("\\q");
                    break;
                }
                Err(e) => {
                    eprintln!("strata: error: reading input: {e}");
                    break;
                }
            }
        }
        if let Some(h) = &history {
            let _ = rl.save_history(h);
        }
    }

    /// Writes query output (to stdout or the `\o` file), flushed if the output is live.
    fn write_out(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match &mut self.out {
            Output::Stdout => self.write_stdout(text.as_bytes()),
            Output::File(f) => {
                let r = write_flushed_if(f, text.as_bytes(), self.live);
                self.note_write_error(r);
            }
        }
    }

    /// An informational message on stdout (not the `\o` file), unless quiet.
    fn info(&mut self, text: &str) {
        if !self.quiet() {
            self.message(text);
        }
    }

    /// A message on stdout, always.
    fn message(&mut self, text: &str) {
        self.write_stdout(format!("{text}\n").as_bytes());
    }

    /// Runs one statement and prints its result; false if it failed.
    fn exec_sql(&mut self, sql: &str, expanded: Option<bool>) -> bool {
        let sql = sql.trim_end();
        if self.echo_queries {
            self.write_out(&format!("{sql}\n"));
        }
        self.last_query = Some(sql.to_string());
        self.names_stale = true;
        let start = Instant::now();
        let executed = self.backend.execute(sql);
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let mut text = String::new();
        for r in executed.outputs {
            self.render_result(r, expanded, &mut text);
        }
        self.write_out(&text);
        match executed.error {
            None => {
                if self.timing {
                    self.message(&timing_text(ms));
                }
                true
            }
            Some(e) => {
                eprint!("{}", e.render(Some(sql)));
                false
            }
        }
    }

    fn render_result(&self, r: StatementOutput, expanded: Option<bool>, text: &mut String) {
        let quiet = self.quiet();
        if let Some(rows) = r.rows {
            let expanded = expanded.unwrap_or(self.print.expanded == Expanded::On);
            match rows {
                ResultRows::Values(values)
                    if self.print.format == Format::Unaligned && !expanded =>
                {
                    render_unaligned_rows(&self.print, &values, text);
                }
                ResultRows::Values(values) => text.push_str(&render(
                    &self.print,
                    &TableData::from_result(values),
                    Some(expanded),
                )),
                ResultRows::Text(table) => {
                    text.push_str(&render(&self.print, &table, Some(expanded)))
                }
            }
            let dml = ["INSERT", "UPDATE", "DELETE", "MERGE"]
                .iter()
                .any(|p| r.tag.starts_with(p));
            if dml && !quiet {
                text.push_str(&r.tag);
                text.push('\n');
            }
        } else if !r.tag.is_empty() && !quiet {
            text.push_str(&r.tag);
            text.push('\n');
        }
    }

    /// `\copy`: the shell reads or writes the client-side data, the database runs one
    /// `COPY ... FROM STDIN` or `TO STDOUT`. Prints `COPY n`; false (the error printed) if it
    /// failed.
    fn copy(&mut self, args: &str, input: Option<&mut dyn BufRead>) -> bool {
        let cmd = match copy::parse(args) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return false;
            }
        };
        self.names_stale = true;
        let start = Instant::now();
        let result = match (&cmd.endpoint, cmd.from) {
            (copy::Endpoint::File(name), true) => match File::open(name) {
                Ok(f) => self.backend.copy_in(&cmd.sql, &mut BufReader::new(f)),
                Err(e) => Err(CopyError::Io(format!("{name}: {e}"))),
            },
            (endpoint, true) => {
                let data = match (endpoint, input) {
                    (copy::Endpoint::Current, Some(input)) => read_copy_data(input),
                    _ => {
                        if io::stdin().is_terminal() {
                            self.message(
                                "Enter data to be copied followed by a newline.\n\
                                 End with a backslash and a period on a line by itself, or an EOF signal.",
                            );
                        }
                        read_copy_data(&mut io::stdin().lock())
                    }
                };
                data.and_then(|d| self.backend.copy_in(&cmd.sql, &mut d.as_slice()))
            }
            (copy::Endpoint::File(name), false) => match File::create(name) {
                Ok(f) => {
                    let mut w = BufWriter::new(f);
                    self.backend.copy_out(&cmd.sql, &mut w).and_then(|tag| {
                        w.flush()
                            .map(|()| tag)
                            .map_err(|e| CopyError::Io(format!("{name}: {e}")))
                    })
                }
                Err(e) => Err(CopyError::Io(format!("{name}: {e}"))),
            },
            (copy::Endpoint::Current, false) => {
                let mut data = Vec::new();
                let r = self.backend.copy_out(&cmd.sql, &mut data);
                self.write_out(&String::from_utf8_lossy(&data));
                r
            }
            (copy::Endpoint::Process, false) => {
                let r = self.backend.copy_out(&cmd.sql, &mut self.stdout);
                if self.live {
                    let flushed = self.stdout.flush();
                    self.note_write_error(flushed);
                }
                r
            }
        };
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(tag) => {
                if !self.quiet() {
                    self.write_out(&format!("{tag}\n"));
                }
                if self.timing {
                    self.message(&timing_text(ms));
                }
                true
            }
            Err(CopyError::Db(e)) => {
                eprint!("{}", e.render(None));
                false
            }
            Err(CopyError::Io(m)) => {
                eprintln!("\\copy: {m}");
                false
            }
        }
    }

    fn set_output(&mut self, file: Option<&str>) -> Result<(), String> {
        self.flush_output();
        self.out = match file {
            None => Output::Stdout,
            Some(name) => Output::File(BufWriter::new(
                File::create(name).map_err(|e| format!("{name}: {e}"))?,
            )),
        };
        Ok(())
    }

    /// Runs a backslash command. Err(()) when it failed (the error is printed).
    /// `input`: the script being read, if any (the data of `\copy ... from stdin`).
    fn meta(
        &mut self,
        line: &str,
        sp: &mut Splitter,
        input: Option<&mut dyn BufRead>,
    ) -> Result<Flow, ()> {
        let body = &line[1..];
        let name_end = body
            .find(|c: char| c.is_whitespace() || c == '\\')
            .unwrap_or(body.len());
        let (name, rest) = body.split_at(name_end);
        let args = split_args(rest);
        let fail = |msg: String| -> Result<Flow, ()> {
            eprintln!("{msg}");
            Err(())
        };
        let on_off = |current: bool, args: &[String], what: &str| -> Result<bool, String> {
            match args.first() {
                None => Ok(!current),
                Some(v) => parse_bool(v).ok_or_else(|| {
                    format!("unrecognized value \"{v}\" for \"{what}\": Boolean expected")
                }),
            }
        };
        match name {
            "q" | "quit" => return Ok(Flow::Quit),
            "?" => {
                let help = HELP.to_string();
                self.write_out(&help);
            }
            "conninfo" => {
                let msg = self.backend.conninfo();
                self.message(&msg);
            }
            "g" | "gx" => {
                let sql = sp.take_buffer().or_else(|| self.last_query.clone());
                let Some(sql) = sql else {
                    return fail("\\g: the query buffer is empty".into());
                };
                let expanded = (name == "gx").then_some(true);
                if !self.exec_sql(&sql, expanded) {
                    return Err(());
                }
            }
            "p" | "print" => {
                let text = sp
                    .buffer()
                    .map(str::to_string)
                    .or_else(|| self.last_query.clone());
                match text {
                    Some(t) => self.message(t.trim_end()),
                    None => self.message("Query buffer is empty."),
                }
            }
            "r" | "reset" => {
                sp.reset();
                self.info("Query buffer reset (cleared).");
            }
            "i" | "include" | "ir" | "include_relative" => {
                let Some(file) = args.first() else {
                    return fail(format!("\\{name}: missing required argument"));
                };
                let mut path = PathBuf::from(file);
                if name.starts_with("ir") || name == "include_relative" {
                    if let Some(dir) = self.script_dirs.last() {
                        if path.is_relative() {
                            path = dir.join(path);
                        }
                    }
                }
                if self.script_dirs.len() >= MAX_INCLUDE_DEPTH {
                    return fail(format!(
                        "{}: too many nested \\i (more than {MAX_INCLUDE_DEPTH})",
                        path.display()
                    ));
                }
                let f = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) => return fail(format!("{}: {e}", path.display())),
                };
                self.script_dirs
                    .push(path.parent().unwrap_or(Path::new("")).into());
                let flow = self.run_lines(&mut BufReader::new(f), &path.display().to_string());
                self.script_dirs.pop();
                return Ok(flow);
            }
            "o" | "out" => {
                if let Err(e) = self.set_output(args.first().map(String::as_str)) {
                    return fail(e);
                }
            }
            "echo" => {
                let (newline, words) = match args.first().map(String::as_str) {
                    Some("-n") => (false, &args[1..]),
                    _ => (true, &args[..]),
                };
                let mut text = words.join(" ");
                if newline {
                    text.push('\n');
                }
                self.write_stdout(text.as_bytes());
            }
            "timing" => match on_off(self.timing, &args, "\\timing") {
                Ok(v) => {
                    self.timing = v;
                    self.info(if v { "Timing is on." } else { "Timing is off." });
                }
                Err(e) => return fail(e),
            },
            "x" => {
                let v = args
                    .first()
                    .map(String::as_str)
                    .unwrap_or(match self.print.expanded {
                        Expanded::On => "off",
                        _ => "on",
                    });
                if let Err(e) = self.pset("expanded", &[v.to_string()], false) {
                    return fail(e);
                }
            }
            "t" => {
                let mut v: Vec<String> = args.iter().take(1).cloned().collect();
                if v.is_empty() {
                    v.push(if self.print.tuples_only { "off" } else { "on" }.into());
                }
                if let Err(e) = self.pset("tuples_only", &v, false) {
                    return fail(e);
                }
            }
            "a" => {
                let f = if self.print.format == Format::Aligned {
                    "unaligned"
                } else {
                    "aligned"
                };
                if let Err(e) = self.pset("format", &[f.to_string()], false) {
                    return fail(e);
                }
            }
            "f" => {
                if let Err(e) = self.pset("fieldsep", &args, false) {
                    return fail(e);
                }
            }
            "pset" => match args.first() {
                None => {
                    let o = &self.print;
                    let text = format!(
                        "expanded    {}\nfieldsep    '{}'\nfooter      {}\nformat      {}\nnull        '{}'\ntuples_only {}",
                        match o.expanded {
                            Expanded::On => "on",
                            Expanded::Off => "off",
                            Expanded::Auto => "auto",
                        },
                        o.field_sep,
                        if o.footer { "on" } else { "off" },
                        match o.format {
                            Format::Aligned => "aligned",
                            Format::Unaligned => "unaligned",
                            Format::Csv => "csv",
                        },
                        o.null,
                        if o.tuples_only { "on" } else { "off" },
                    );
                    self.message(&text);
                }
                Some(opt) => {
                    let opt = opt.clone();
                    if let Err(e) = self.pset(&opt, &args[1..], false) {
                        return fail(e);
                    }
                }
            },
            "set" => match args.split_first() {
                None => {
                    let text: Vec<String> = self
                        .vars
                        .iter()
                        .map(|(k, v)| format!("{k} = '{v}'"))
                        .collect();
                    if !text.is_empty() {
                        self.message(&text.join("\n"));
                    }
                }
                Some((k, v)) => {
                    if k.is_empty() || !k.chars().all(|c| c.is_alphanumeric() || c == '_') {
                        return fail(format!("invalid variable name: \"{k}\""));
                    }
                    let v = v.concat();
                    if (k == "ON_ERROR_STOP" || k == "QUIET") && parse_bool(&v).is_none() {
                        return fail(format!(
                            "unrecognized value \"{v}\" for \"{k}\": Boolean expected"
                        ));
                    }
                    self.vars.insert(k.clone(), v);
                }
            },
            "unset" => match args.first() {
                Some(k) => {
                    self.vars.remove(k);
                }
                None => return fail("\\unset: missing required argument".into()),
            },
            "d" | "d+" | "dt" | "dt+" | "di" | "di+" | "dv" | "dv+" | "ds" | "ds+" | "dS"
            | "dS+" | "dtS" | "diS" | "dvS" | "dsS" => {
                let which = name.trim_end_matches('+').trim_end_matches('S');
                match self
                    .backend
                    .describe(which, args.first().map(String::as_str))
                {
                    Ok(tables) => {
                        let text: String = tables
                            .iter()
                            .map(|t| render(&self.print, t, None))
                            .collect();
                        self.write_out(&text);
                    }
                    Err(e) => return fail(e),
                }
            }
            "copy" => {
                if !self.copy(rest, input) {
                    return Err(());
                }
            }
            "" => return fail("invalid command \\\nTry \\? for help.".into()),
            _ => return fail(format!("invalid command \\{name}\nTry \\? for help.")),
        }
        if self.broken_pipe {
            return Ok(Flow::Quit);
        }
        Ok(Flow::Go)
    }

    /// `\pset NAME [VALUE]` (also `-P`, `\x`, `\t`, `\a`, `\f`).
    fn pset(&mut self, opt: &str, args: &[String], silent: bool) -> Result<(), String> {
        let value = args.first().map(String::as_str);
        let msg = match opt {
            "format" => {
                let f = match value.map(str::to_ascii_lowercase).as_deref() {
                    Some(v) if "aligned".starts_with(v) && !v.is_empty() => Format::Aligned,
                    Some(v) if "unaligned".starts_with(v) && !v.is_empty() => Format::Unaligned,
                    Some("csv") => Format::Csv,
                    None => self.print.format,
                    Some(v) => {
                        return Err(format!(
                            "\\pset: allowed formats are aligned, csv, unaligned (not \"{v}\")"
                        ))
                    }
                };
                self.print.format = f;
                format!(
                    "Output format is {}.",
                    match f {
                        Format::Aligned => "aligned",
                        Format::Unaligned => "unaligned",
                        Format::Csv => "csv",
                    }
                )
            }
            "null" => {
                if let Some(v) = value {
                    self.print.null = v.to_string();
                }
                format!("Null display is \"{}\".", self.print.null)
            }
            "fieldsep" => {
                if let Some(v) = value {
                    self.print.field_sep = v.to_string();
                }
                format!("Field separator is \"{}\".", self.print.field_sep)
            }
            "tuples_only" | "t" => {
                self.print.tuples_only = match value {
                    None => !self.print.tuples_only,
                    Some(v) => parse_bool(v).ok_or_else(|| {
                        format!("unrecognized value \"{v}\" for \"tuples_only\": Boolean expected")
                    })?,
                };
                format!(
                    "Tuples only is {}.",
                    if self.print.tuples_only { "on" } else { "off" }
                )
            }
            "footer" => {
                self.print.footer = match value {
                    None => !self.print.footer,
                    Some(v) => parse_bool(v).ok_or_else(|| {
                        format!("unrecognized value \"{v}\" for \"footer\": Boolean expected")
                    })?,
                };
                format!(
                    "Default footer is {}.",
                    if self.print.footer { "on" } else { "off" }
                )
            }
            "expanded" | "x" => {
                self.print.expanded = match value {
                    None if self.print.expanded == Expanded::On => Expanded::Off,
                    None => Expanded::On,
                    Some(v) if v.eq_ignore_ascii_case("auto") => Expanded::Auto,
                    Some(v) => match parse_bool(v) {
                        Some(true) => Expanded::On,
                        Some(false) => Expanded::Off,
                        None => {
                            return Err(format!(
                                "unrecognized value \"{v}\" for \"expanded\": Boolean expected"
                            ))
                        }
                    },
                };
                match self.print.expanded {
                    Expanded::On => "Expanded display is on.".into(),
                    Expanded::Off => "Expanded display is off.".into(),
                    Expanded::Auto => "Expanded display is used automatically.".into(),
                }
            }
            other => return Err(format!("\\pset: unknown option: {other}")),
        };
        if !silent {
            self.info(&msg);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> (Vec<Piece>, Option<String>) {
        let mut sp = Splitter::default();
        let mut out = Vec::new();
        for line in text.split_inclusive('\n') {
            sp.push(line);
            while let Some(p) = sp.next_piece() {
                out.push(p);
            }
        }
        (out, sp.take_buffer())
    }

    fn sql(s: &str) -> Piece {
        Piece::Sql(s.into())
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let (p, rest) = split(
            "select 1; select 'a;b'; select \"x;\"\n-- c;\nselect $$ ; $$; select $f$ $$; $f$;\n/* ; /* ; */ ; */ select 2;  ",
        );
        assert_eq!(
            p,
            vec![
                sql("select 1;"),
                sql("select 'a;b';"),
                sql("select \"x;\"\n-- c;\nselect $$ ; $$;"),
                sql("select $f$ $$; $f$;"),
                sql("select 2;"),
            ]
        );
        assert_eq!(rest, None);
    }

    #[test]
    fn escapes_parentheses_and_parameters() {
        let (p, _) = split("select E'it\\'s;', 'a''b;';\nselect (1;\n2);\nselect $1;\n");
        assert_eq!(
            p,
            vec![
                sql("select E'it\\'s;', 'a''b;';"),
                sql("select (1;\n2);"),
                sql("select $1;"),
            ]
        );
        // Standard strings keep backslashes literal.
        let (p, _) = split("select 'a\\'; select 2;");
        assert_eq!(p, vec![sql("select 'a\\';"), sql("select 2;")]);
    }

    #[test]
    fn leading_comments_dropped_and_unterminated_rest_kept() {
        let (p, rest) = split("-- hello\n  /* x */ select 1;\n;;\nselect 'unterminated\n");
        assert_eq!(p, vec![sql("select 1;")]);
        assert_eq!(rest.as_deref(), Some("select 'unterminated\n"));
    }

    #[test]
    fn backslash_commands() {
        let (p, rest) = split("\\dt\n  \\x on\nselect '\\x';\n");
        assert_eq!(
            p,
            vec![
                Piece::Meta("\\dt".into()),
                Piece::Meta("\\x on".into()),
                sql("select '\\x';"),
            ]
        );
        assert_eq!(rest, None);
        let mut sp = Splitter::default();
        sp.push("select 1 \\g\n");
        assert_eq!(sp.next_piece(), Some(Piece::Meta("\\g".into())));
        assert_eq!(sp.take_buffer().as_deref(), Some("select 1 "));
    }

    #[test]
    fn prompt_states() {
        let mut sp = Splitter::default();
        assert_eq!(sp.prompt_char(), '=');
        sp.push("select 'a\n");
        while sp.next_piece().is_some() {}
        assert_eq!(sp.prompt_char(), '\'');
        sp.push("';\n");
        assert!(sp.next_piece().is_some());
        assert!(sp.is_idle());
        sp.push("select\n");
        while sp.next_piece().is_some() {}
        assert_eq!(sp.prompt_char(), '-');
        sp.push("$$\n");
        while sp.next_piece().is_some() {}
        assert_eq!(sp.prompt_char(), '$');
    }

    fn table(headers: &[&str], right: &[bool], rows: &[&[Option<&str>]]) -> TableData {
        TableData {
            title: None,
            headers: headers.iter().map(|s| s.to_string()).collect(),
            right: right.to_vec(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|c| c.map(str::to_string)).collect())
                .collect(),
            footers: None,
        }
    }

    #[test]
    fn aligned_like_psql() {
        let t = table(
            &["id", "name"],
            &[true, false],
            &[&[Some("1"), Some("alice")], &[Some("22"), None]],
        );
        let o = PrintOpts::default();
        assert_eq!(
            render(&o, &t, None),
            " id | name  \n----+-------\n  1 | alice\n 22 | \n(2 rows)\n\n"
        );
        let t = table(&["one"], &[true], &[&[Some("1")]]);
        assert_eq!(render(&o, &t, None), " one \n-----\n   1\n(1 row)\n\n");
        let t = table(&["a", "b"], &[false, false], &[&[Some("x\ny"), Some("z")]]);
        assert_eq!(
            render(&o, &t, None),
            " a | b \n---+---\n x+| z\n y | \n(1 row)\n\n"
        );
        let tuples = PrintOpts {
            tuples_only: true,
            ..PrintOpts::default()
        };
        let t = table(&["id"], &[true], &[&[Some("1")], &[Some("10")]]);
        assert_eq!(render(&tuples, &t, None), "  1\n 10\n\n");
    }

    #[test]
    fn expanded_unaligned_and_csv() {
        let t = table(
            &["id", "name"],
            &[true, false],
            &[&[Some("1"), Some("alice")], &[Some("2"), None]],
        );
        let o = PrintOpts::default();
        assert_eq!(
            render(&o, &t, Some(true)),
            "-[ RECORD 1 ]\nid   | 1\nname | alice\n-[ RECORD 2 ]\nid   | 2\nname | \n\n"
        );
        let u = PrintOpts {
            format: Format::Unaligned,
            ..PrintOpts::default()
        };
        assert_eq!(render(&u, &t, None), "id|name\n1|alice\n2|\n(2 rows)\n");
        let c = PrintOpts {
            format: Format::Csv,
            ..PrintOpts::default()
        };
        let t = table(
            &["a", "b"],
            &[false, false],
            &[&[Some("x,y"), Some("say \"hi\"")]],
        );
        assert_eq!(render(&c, &t, None), "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n");
        assert_eq!(
            record_line(1, 4, 20),
            format!("-[ RECORD 1 ]{}", "-".repeat(14))
        );
        assert_eq!(record_line(0, 2, 3), "---+----");
    }

    #[test]
    fn error_context_like_psql() {
        assert_eq!(
            error_context("selec 1;", 1),
            "LINE 1: selec 1;\n        ^\n"
        );
        assert_eq!(
            error_context("select 1,\n  2 frm t;", 15),
            "LINE 2:   2 frm t;\n            ^\n"
        );
        let long = format!("select {} from t;", "x, ".repeat(40));
        let ctx = error_context(&long, long.len() - 1);
        assert!(ctx.starts_with("LINE 1: ..."), "{ctx}");
        assert!(ctx.lines().all(|l| l.chars().count() < 80), "{ctx}");
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_bool("on"), Some(true));
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("OFF"), Some(false));
        assert_eq!(parse_bool("o"), None);
        assert_eq!(parse_bool("banana"), None);
        assert_eq!(
            split_args(" a 'b c' \"D\" 'it''s'"),
            ["a", "b c", "\"D\"", "it's"]
        );
        assert_eq!(normalize_name("public.Foo"), "foo");
        assert_eq!(normalize_name("\"Foo\""), "Foo");
        assert!(glob("t*", "t1"));
        assert!(glob("*x?", "abxy"));
        assert!(!glob("t?", "t12"));
        assert_eq!(timing_text(1.5), "Time: 1.500 ms");
        assert_eq!(timing_text(61_500.0), "Time: 61500.000 ms (01:01.500)");
    }
}
