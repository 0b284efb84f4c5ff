//! The plan cache: statements bound once and run many times.
//!
//! Two kinds of statement share it. Prepared statements (PREPARE, the embedded API's parameters,
//! the wire protocol's Parse/Bind) are cached by their text and parameter types. Plain
//! statements are cached after [`normalize`] has replaced their constants by parameters, so
//! `SELECT v FROM t WHERE id = 7` and `... id = 8` share one plan, as `... id = $1` with an
//! INTEGER parameter. Only constants whose meaning cannot depend on being a constant are
//! replaced: the operand of a comparison, a bound of BETWEEN, an item of a VALUES row or an IN
//! list, each followed by a token that ends the operand. Everything else (ORDER BY 1, LIMIT 10,
//! `DATE '...'`, `-5`, `'a' || 'b'`) stays in the text, and so in the cache key.
//!
//! Invariant: a cached plan is only ever run in a transaction that would bind the statement to
//! the same plan. Binding reads the catalog through the transaction; [`Recorder`] notes every
//! read, and before each run the cache replays those reads in the running transaction and
//! compares the answers (an entry whose reads differ is bound again). So DDL, ANALYZE, a
//! dropped and re-created table, an uncommitted DDL of the running transaction and MVCC
//! snapshots are all honoured without any invalidation protocol. A statement whose binding
//! wrote anything, or read too much, is not cached.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

use sqlparser::ast;

use crate::bail;
use crate::error::Result;
use crate::kv::{Entries, Isolation, Transaction};
use crate::value::{self, DataType, Value};

/// A statement with its constants replaced by `$1`, `$2`, ...
#[derive(Debug, PartialEq)]
pub struct Normalized {
    pub text: String,
    pub params: Vec<Value>,
    /// The type each constant has as a literal (a string constant's is `Unknown`).
    pub types: Vec<DataType>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok {
    Word,
    QuotedWord,
    Number,
    Str,
    Op,
    Punct(u8),
}

struct Token {
    kind: Tok,
    start: usize,
    end: usize,
}

/// Splits one statement into tokens; None for text this lexer does not fully understand
/// (dollar quotes and `$n`, prefixed strings such as E'..', unknown characters, several
/// statements, an unterminated quote or comment): such statements are not normalized.
fn tokens(sql: &str) -> Option<Vec<Token>> {
    let b = sql.as_bytes();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut ended = false;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0usize;
            loop {
                match (b.get(i), b.get(i + 1)) {
                    (Some(b'/'), Some(b'*')) => {
                        depth += 1;
                        i += 2;
                    }
                    (Some(b'*'), Some(b'/')) => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    }
                    (Some(_), _) => i += 1,
                    (None, _) => return None,
                }
            }
            continue;
        }
        if ended {
            // Something after the final `;`: a second statement.
            return None;
        }
        let start = i;
        let kind = match c {
            b'\'' => {
                // A string right after a word is a prefixed or typed literal (E'..', B'..').
                if out
                    .last()
                    .is_some_and(|t| t.kind == Tok::Word && t.end == i)
                {
                    return None;
                }
                i += 1;
                loop {
                    match b.get(i) {
                        Some(b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                        None => return None,
                    }
                }
                Tok::Str
            }
            b'"' => {
                i += 1;
                loop {
                    match b.get(i) {
                        Some(b'"') if b.get(i + 1) == Some(&b'"') => i += 2,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                        None => return None,
                    }
                }
                Tok::QuotedWord
            }
            b'0'..=b'9' | b'.' if c != b'.' || b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if matches!(b.get(i), Some(b'e' | b'E')) {
                    let mut j = i + 1;
                    if matches!(b.get(j), Some(b'+' | b'-')) {
                        j += 1;
                    }
                    if b.get(j).is_some_and(u8::is_ascii_digit) {
                        i = j;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                // `1abc`, `1.2.3`, `0x1F`: leave such text to the real parser.
                if b.get(i)
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
                {
                    return None;
                }
                Tok::Number
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | 0x80..=0xff => {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'$'
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                Tok::Word
            }
            b'+' | b'-' | b'*' | b'/' | b'<' | b'>' | b'=' | b'~' | b'!' | b'@' | b'#' | b'%'
            | b'^' | b'&' | b'|' | b'`' | b'?' => {
                while i < b.len()
                    && b"+-*/<>=~!@#%^&|`?".contains(&b[i])
                    && !(b[i] == b'-' && b.get(i + 1) == Some(&b'-'))
                    && !(b[i] == b'/' && b.get(i + 1) == Some(&b'*'))
                {
                    i += 1;
                }
                Tok::Op
            }
            b':' if b.get(i + 1) == Some(&b':') => {
                i += 2;
                Tok::Op
            }
            b'(' | b')' | b',' | b'[' | b']' | b'.' => {
                i += 1;
                Tok::Punct(c)
            }
            b';' => {
                i += 1;
                ended = true;
                Tok::Punct(c)
            }
            _ => return None,
        };
        out.push(Token {
            kind,
            start,
            end: i,
        });
    }
    Some(out)
}

/// Words after which an operand ends (the next token cannot extend a constant before it).
const ENDING_WORDS: &[&str] = &[
    "and",
    "or",
    "order",
    "group",
    "limit",
    "offset",
    "having",
    "returning",
    "where",
    "on",
    "union",
    "intersect",
    "except",
    "then",
    "else",
    "when",
    "end",
    "for",
    "window",
    "fetch",
    "do",
    "from",
];

/// Where an opening parenthesis puts the constants inside it.
#[derive(Clone, Copy, PartialEq)]
enum Paren {
    /// A row of VALUES.
    ValuesRow,
    /// `IN (...)`.
    InList,
    Other,
}

/// The constant's value and type as the binder gives a literal of this text, or None to keep
/// it as text.
fn constant(text: &str, kind: Tok) -> Option<(Value, DataType)> {
    match kind {
        Tok::Str => {
            let inner = &text[1..text.len() - 1];
            let value = if inner.contains('\'') {
                inner.replace("''", "'")
            } else {
                inner.to_string()
            };
            Some((Value::Text(value), DataType::Unknown))
        }
        Tok::Number => {
            if let Ok(i) = text.parse::<i32>() {
                Some((Value::Int4(i), DataType::Int4))
            } else if let Ok(i) = text.parse::<i64>() {
                Some((Value::Int8(i), DataType::Int8))
            } else {
                let d = value::parse_numeric(text).ok()?;
                Some((Value::Numeric(d), DataType::Numeric(None)))
            }
        }
        _ => None,
    }
}

/// True if the token after `toks[n]` ends the operand `toks[n]` is (nothing after it could
/// bind to it more tightly than to the expression around it).
fn ends_operand(sql: &str, toks: &[Token], n: usize) -> bool {
    match toks.get(n + 1) {
        None => true,
        Some(next) => match next.kind {
            Tok::Punct(b',' | b')' | b';') => true,
            Tok::Word => ENDING_WORDS
                .iter()
                .any(|w| sql[next.start..next.end].eq_ignore_ascii_case(w)),
            _ => false,
        },
    }
}

/// Words after which an operator is a prefix (unary) one: `SELECT -5`, `THEN +1`.
const PREFIX_WORDS: &[&str] = &[
    "select",
    "where",
    "and",
    "or",
    "not",
    "then",
    "else",
    "when",
    "set",
    "by",
    "on",
    "in",
    "is",
    "like",
    "ilike",
    "case",
    "distinct",
    "all",
    "any",
    "some",
    "values",
    "as",
    "having",
    "returning",
    "limit",
    "offset",
    "between",
    "exists",
    "array",
    "interval",
    "date",
    "time",
    "timestamp",
    "return",
    "from",
    "with",
    "using",
    "escape",
];

/// If the number `toks[n]` is the right operand of a binary `+ - * /` whose left operand is a
/// column, a quoted name or a parenthesized expression (never a constant: `1 + 2` stays, to be
/// folded), the byte where the operand starts: at the number, or at the `-` of a negative one
/// (`abalance + -4515`, as pgbench writes its deltas). Such an operand means the same as a
/// parameter of its literal type: integer and numeric literals bind to the types the
/// parameters get, and with a non-constant left side nothing is folded either way.
fn arithmetic_operand(sql: &str, toks: &[Token], n: usize) -> Option<usize> {
    let text = |i: usize| &sql[toks[i].start..toks[i].end];
    let is_op = |i: usize, ops: &[&str]| toks[i].kind == Tok::Op && ops.contains(&text(i));
    let (op, start) = match n.checked_sub(1)? {
        // A negative integer beyond i64 (`-9223372036854775808`) is left to the binder, which
        // types the negated literal its own way.
        p if is_op(p, &["-"])
            && p >= 1
            && is_op(p - 1, &["+", "-", "*", "/"])
            && (text(n).parse::<i64>().is_ok() || text(n).contains(['.', 'e', 'E'])) =>
        {
            (p - 1, toks[p].start)
        }
        p => (p, toks[n].start),
    };
    if !is_op(op, &["+", "-", "*", "/"]) {
        return None;
    }
    let left = op.checked_sub(1)?;
    let operand_end = match toks[left].kind {
        Tok::QuotedWord | Tok::Punct(b')') => true,
        Tok::Word => !PREFIX_WORDS
            .iter()
            .any(|w| text(left).eq_ignore_ascii_case(w)),
        _ => false,
    };
    // `t.col + 5` and `f(x) + 5` are fine; `DATE '..' + 5` or `'x'::t + 5` never reach here
    // (their left token is a string or a type name after `::`).
    let after_cast = left >= 1 && is_op(left - 1, &["::"]);
    (operand_end && !after_cast).then_some(start)
}

/// Replaces the constants of a SELECT, INSERT, UPDATE or DELETE by parameters. None when the
/// statement is of another kind or its text is beyond the simple lexer here.
pub fn normalize(sql: &str) -> Option<Normalized> {
    let toks = tokens(sql)?;
    let first = toks.first()?;
    if first.kind != Tok::Word {
        return None;
    }
    let head = &sql[first.start..first.end];
    if !["select", "insert", "update", "delete", "with", "values"]
        .iter()
        .any(|k| head.eq_ignore_ascii_case(k))
    {
        return None;
    }
    let word =
        |t: &Token, w: &str| t.kind == Tok::Word && sql[t.start..t.end].eq_ignore_ascii_case(w);
    let mut text = String::with_capacity(sql.len());
    let mut params = Vec::new();
    let mut types = Vec::new();
    let mut copied = 0;
    let mut parens: Vec<Paren> = Vec::new();
    // The paren depth at which VALUES rows open, while inside a VALUES list.
    let mut values_depth: Option<usize> = None;
    let mut between = false;
    // The position of the AND that closes a BETWEEN, when one was just seen.
    let mut between_and = None;
    for (n, t) in toks.iter().enumerate() {
        match t.kind {
            Tok::Punct(b'(') => {
                let prev = n.checked_sub(1).map(|p| &toks[p]);
                let kind = if values_depth == Some(parens.len()) {
                    Paren::ValuesRow
                } else if prev.is_some_and(|p| word(p, "in")) {
                    Paren::InList
                } else {
                    Paren::Other
                };
                parens.push(kind);
                continue;
            }
            Tok::Punct(b')') => {
                parens.pop();
                if values_depth.is_some_and(|d| parens.len() < d) {
                    values_depth = None;
                }
                continue;
            }
            Tok::Word => {
                if word(t, "values") {
                    values_depth = Some(parens.len());
                } else if values_depth == Some(parens.len()) {
                    values_depth = None;
                }
                if word(t, "between") {
                    between = true;
                } else if word(t, "and") && between {
                    between = false;
                    between_and = Some(n);
                }
                continue;
            }
            Tok::Str | Tok::Number => {}
            _ => continue,
        }
        let Some(prev) = n.checked_sub(1).map(|p| &toks[p]) else {
            continue;
        };
        let after_operator = match prev.kind {
            Tok::Op => matches!(
                &sql[prev.start..prev.end],
                "=" | "<>" | "!=" | "<" | ">" | "<=" | ">="
            ),
            Tok::Word if word(prev, "between") => true,
            Tok::Word => between_and == Some(n - 1),
            Tok::Punct(b'(' | b',') => {
                matches!(parens.last(), Some(Paren::ValuesRow | Paren::InList))
            }
            _ => false,
        };
        // Where the constant's text starts: at the `-` of a negative arithmetic operand.
        let arithmetic = match t.kind {
            Tok::Number => arithmetic_operand(sql, &toks, n),
            _ => None,
        };
        let start = match arithmetic {
            Some(start) => start,
            None if after_operator => t.start,
            None => continue,
        };
        if !ends_operand(sql, &toks, n) {
            continue;
        }
        let Some((v, ty)) = constant(&sql[start..t.end], t.kind) else {
            continue;
        };
        params.push(v);
        types.push(ty);
        text.push_str(&sql[copied..start]);
        {
            use std::fmt::Write;
            let _ = write!(text, "${}", params.len());
        }
        copied = t.end;
    }
    text.push_str(&sql[copied..]);
    let trimmed = text.trim_end().trim_end_matches(';').trim_end().len();
    text.truncate(trimmed);
    Some(Normalized {
        text,
        params,
        types,
    })
}

/// One read binding made through the transaction, with its answer.
#[derive(Debug)]
enum Read {
    Isolation(Isolation),
    TreeExists(String, bool),
    Get(String, Vec<u8>, Option<Vec<u8>>),
    Scan {
        tree: String,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
        limit: usize,
        entries: Entries,
    },
}

/// The most bytes of reads an entry may have to replay.
const MAX_READ_BYTES: usize = 64 << 10;

/// A transaction that passes everything to another and notes the reads (see the module
/// doc). Anything but a read makes the binding uncacheable.
pub struct Recorder<'a> {
    inner: &'a mut dyn Transaction,
    reads: RefCell<Vec<Read>>,
    bytes: usize,
    cacheable: bool,
}

impl<'a> Recorder<'a> {
    pub fn new(inner: &'a mut dyn Transaction) -> Recorder<'a> {
        Recorder {
            inner,
            reads: RefCell::new(Vec::new()),
            bytes: 0,
            cacheable: true,
        }
    }

    /// The reads to replay, or None if the binding may not be cached.
    fn finish(self) -> Option<Vec<Read>> {
        (self.cacheable && self.bytes <= MAX_READ_BYTES).then(|| self.reads.into_inner())
    }
}

impl Transaction for Recorder<'_> {
    fn isolation(&self) -> Isolation {
        let iso = self.inner.isolation();
        self.reads.borrow_mut().push(Read::Isolation(iso));
        iso
    }
    fn get(&mut self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let v = self.inner.get(tree, key)?;
        self.bytes += key.len() + v.as_ref().map_or(0, Vec::len);
        self.reads
            .borrow_mut()
            .push(Read::Get(tree.to_string(), key.to_vec(), v.clone()));
        Ok(v)
    }
    fn get_for_update(&mut self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.cacheable = false;
        self.inner.get_for_update(tree, key)
    }
    fn put(&mut self, tree: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.cacheable = false;
        self.inner.put(tree, key, value)
    }
    fn delete(&mut self, tree: &str, key: &[u8]) -> Result<()> {
        self.cacheable = false;
        self.inner.delete(tree, key)
    }
    fn scan(
        &mut self,
        tree: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
        limit: usize,
    ) -> Result<Entries> {
        let entries = self
            .inner
            .scan(tree, start.clone(), end.clone(), reverse, limit)?;
        self.bytes += entries
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
        self.reads.borrow_mut().push(Read::Scan {
            tree: tree.to_string(),
            start,
            end,
            reverse,
            limit,
            entries: entries.clone(),
        });
        Ok(entries)
    }
    fn tree_exists(&self, tree: &str) -> bool {
        let exists = self.inner.tree_exists(tree);
        self.reads
            .borrow_mut()
            .push(Read::TreeExists(tree.to_string(), exists));
        exists
    }
    fn create_tree(&mut self, tree: &str) -> Result<()> {
        self.cacheable = false;
        self.inner.create_tree(tree)
    }
    fn drop_tree(&mut self, tree: &str) -> Result<()> {
        self.cacheable = false;
        self.inner.drop_tree(tree)
    }
    fn new_statement(&mut self) {
        self.cacheable = false;
        self.inner.new_statement()
    }
    fn savepoint(&mut self) -> usize {
        self.cacheable = false;
        self.inner.savepoint()
    }
    fn rollback_to(&mut self, depth: usize) -> Result<()> {
        self.cacheable = false;
        self.inner.rollback_to(depth)
    }
    fn release(&mut self, depth: usize) {
        self.cacheable = false;
        self.inner.release(depth)
    }
    fn commit(self: Box<Self>) -> Result<()> {
        bail!(
            INTERNAL_ERROR,
            "a statement may not commit while it is bound"
        )
    }
    fn rollback(self: Box<Self>) -> Result<()> {
        bail!(
            INTERNAL_ERROR,
            "a statement may not roll back while it is bound"
        )
    }
}

/// True if every read gives the same answer in `txn` now.
fn still_valid(reads: &[Read], txn: &mut dyn Transaction) -> Result<bool> {
    for r in reads {
        let same = match r {
            Read::Isolation(iso) => txn.isolation() == *iso,
            Read::TreeExists(tree, exists) => txn.tree_exists(tree) == *exists,
            Read::Get(tree, key, v) => txn.get(tree, key)? == *v,
            Read::Scan {
                tree,
                start,
                end,
                reverse,
                limit,
                entries,
            } => txn.scan(tree, start.clone(), end.clone(), *reverse, *limit)? == *entries,
        };
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A cached statement: parsed once, bound for the catalog its reads saw.
pub struct Entry<B> {
    pub statement: ast::Statement,
    pub read_only: bool,
    bound: Option<(Arc<B>, Vec<Read>, Vec<DataType>)>,
}

/// Statements by (text, parameter types). `B` is what binding makes (the session's bound
/// statement).
pub struct PlanCache<B> {
    /// By text, then by parameter types (a lookup allocates nothing).
    entries: HashMap<String, Vec<TypedEntry<B>>>,
    /// Entries in all.
    count: usize,
}

/// A statement's entry for one list of parameter types.
type TypedEntry<B> = (Vec<DataType>, Entry<B>);

/// The most statements kept; a full cache is emptied (simple, and cheap to refill).
const CAPACITY: usize = 512;

impl<B> Default for PlanCache<B> {
    fn default() -> Self {
        PlanCache {
            entries: HashMap::new(),
            count: 0,
        }
    }
}

impl<B> PlanCache<B> {
    /// The entry for `text` with these parameter types; parses the text on a miss. None when
    /// the text does not parse into one statement that `read_only` accepts (it says whether
    /// the statement only reads, or None for a kind of statement the cache does not take): the
    /// caller runs it the ordinary way.
    pub fn lookup(
        &mut self,
        text: &str,
        types: &[DataType],
        read_only: impl Fn(&ast::Statement) -> Option<bool>,
    ) -> Option<&mut Entry<B>> {
        let found = self
            .entries
            .get(text)
            .and_then(|v| v.iter().position(|(t, _)| t.as_slice() == types));
        let (list, i) = match found {
            Some(i) => (self.entries.get_mut(text)?, i),
            None => {
                let mut stmts = crate::parse(text).ok()?;
                if stmts.len() != 1 {
                    return None;
                }
                let statement = stmts.pop()?;
                let read_only = read_only(&statement)?;
                if self.count >= CAPACITY {
                    self.clear();
                }
                self.count += 1;
                let list = self.entries.entry(text.to_string()).or_default();
                list.push((
                    types.to_vec(),
                    Entry {
                        statement,
                        read_only,
                        bound: None,
                    },
                ));
                let i = list.len() - 1;
                (list, i)
            }
        };
        Some(&mut list[i].1)
    }

    /// Forgets every statement.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.count = 0;
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl<B> Entry<B> {
    /// The bound statement for `txn` and the parameter types binding inferred: the cached one
    /// if its reads still hold, else a fresh binding (kept when cacheable). `Ok(None)` when
    /// binding fails: the caller runs the statement the ordinary way, which reports the error.
    pub fn bound(
        &mut self,
        txn: &mut dyn Transaction,
        types: &[DataType],
        bind: impl FnOnce(
            &ast::Statement,
            &mut dyn Transaction,
            &[DataType],
        ) -> Result<(B, Vec<DataType>)>,
    ) -> Result<Option<(Arc<B>, Vec<DataType>)>> {
        if let Some((b, reads, inferred)) = &self.bound {
            if still_valid(reads, txn)? {
                return Ok(Some((b.clone(), inferred.clone())));
            }
        }
        self.bound = None;
        let mut rec = Recorder::new(txn);
        let Ok((b, inferred)) = bind(&self.statement, &mut rec, types) else {
            return Ok(None);
        };
        let b = Arc::new(b);
        if let Some(reads) = rec.finish() {
            self.bound = Some((b.clone(), reads, inferred.clone()));
        }
        Ok(Some((b, inferred)))
    }
}

/// Converts parameter values to the types binding inferred for them; None if one does not
/// convert (the caller then runs the statement the ordinary way, for the same error a
/// constant would have given).
pub fn cast_params(params: &[Value], types: &[DataType]) -> Option<Vec<Value>> {
    params
        .iter()
        .enumerate()
        .map(|(i, v)| match types.get(i) {
            Some(t) if *t != DataType::Unknown => value::cast(v.clone(), t).ok(),
            _ => Some(v.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(sql: &str) -> Option<(String, Vec<Value>)> {
        normalize(sql).map(|n| (n.text, n.params))
    }

    #[test]
    fn comparison_operands_become_parameters() {
        assert_eq!(
            norm("SELECT v FROM t WHERE id = 17685;"),
            Some((
                "SELECT v FROM t WHERE id = $1".into(),
                vec![Value::Int4(17685)]
            ))
        );
        assert_eq!(
            norm("SELECT id, k, v FROM t WHERE id BETWEEN 42634 AND 42733"),
            Some((
                "SELECT id, k, v FROM t WHERE id BETWEEN $1 AND $2".into(),
                vec![Value::Int4(42634), Value::Int4(42733)]
            ))
        );
        assert_eq!(
            norm("UPDATE t SET v = 'it''s' WHERE id = 5000000000"),
            Some((
                "UPDATE t SET v = $1 WHERE id = $2".into(),
                vec![Value::Text("it's".into()), Value::Int8(5_000_000_000)]
            ))
        );
    }

    #[test]
    fn values_rows_and_in_lists_become_parameters() {
        let n = normalize("INSERT INTO t(id, k, v) VALUES (1,2,'a'),(3, 4.5, 'b') RETURNING id")
            .unwrap();
        assert_eq!(
            n.text,
            "INSERT INTO t(id, k, v) VALUES ($1,$2,$3),($4, $5, $6) RETURNING id"
        );
        assert_eq!(n.types[4], DataType::Numeric(None));
        assert_eq!(n.types[5], DataType::Unknown);
        assert_eq!(
            norm("SELECT * FROM t WHERE a IN (1, 2) AND b NOT IN (3)")
                .unwrap()
                .0,
            "SELECT * FROM t WHERE a IN ($1, $2) AND b NOT IN ($3)"
        );
    }

    #[test]
    fn arithmetic_operands_of_columns_become_parameters() {
        assert_eq!(
            norm("UPDATE pgbench_accounts SET abalance = abalance + -4515 WHERE aid = 7;"),
            Some((
                "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2".into(),
                vec![Value::Int4(-4515), Value::Int4(7)]
            ))
        );
        assert_eq!(
            norm("UPDATE t SET a = a - 2, b = (b * 1.5) WHERE \"c\" / 4 > 0").map(|n| n.0),
            Some("UPDATE t SET a = a - $1, b = (b * $2) WHERE \"c\" / 4 > $3".into())
        );
        assert_eq!(
            norm("SELECT a + -2147483648 FROM t").map(|n| n.1),
            Some(vec![Value::Int4(i32::MIN)])
        );
    }

    #[test]
    fn constants_whose_form_matters_stay() {
        for sql in [
            "SELECT a FROM t ORDER BY 1",
            "SELECT a FROM t GROUP BY 1 LIMIT 10 OFFSET 2",
            "SELECT * FROM t WHERE d = DATE '2020-01-01'",
            "SELECT * FROM t WHERE a = -5",
            "SELECT * FROM t WHERE a = 1 + 2",
            "SELECT * FROM t WHERE a = 'x' || 'y'",
            "SELECT * FROM t WHERE a = '5'::int",
            "SELECT * FROM t WHERE s LIKE 'a%'",
            "SELECT 1, 'a'",
            "SELECT * FROM t WHERE a = 1 COLLATE \"C\"",
            "INSERT INTO t VALUES (1 + 1, f(2), '{1,2}'[1])",
            "SELECT a + 1 * 2, - 5, 3 FROM t",
            "SELECT 2 - -5, x::int + 1, DATE '2020-01-01' + 1 FROM t",
            "UPDATE t SET a = a + 1 * b, c = c + -d",
            "SELECT a FROM t WHERE b AND - 5 < c",
            "SELECT a + -9223372036854775808 FROM t",
        ] {
            let n = normalize(sql).unwrap();
            assert_eq!(n.text, sql, "{sql}");
            assert!(n.params.is_empty(), "{sql}");
        }
    }

    #[test]
    fn unusual_text_is_left_to_the_parser() {
        for sql in [
            "SELECT * FROM t WHERE a = $1",
            "SELECT * FROM t WHERE a = E'x\\n'",
            "SELECT $$x$$",
            "SELECT 1; SELECT 2",
            "SELECT 'unterminated",
            "SELECT /* unterminated",
            "SELECT * FROM t WHERE a = 0x1F",
            "CREATE TABLE t (a int)",
            "EXPLAIN SELECT 1",
        ] {
            assert!(normalize(sql).is_none(), "{sql}");
        }
    }

    #[test]
    fn comments_and_quoted_names_are_not_constants() {
        let n =
            normalize("SELECT \"a = 1\" FROM t -- where a = 2\nWHERE b = 3 /* c = 4 */").unwrap();
        assert_eq!(n.params, vec![Value::Int4(3)]);
        assert!(n.text.contains("-- where a = 2") && n.text.contains("b = $1"));
    }
}
