//! Bound expressions and their evaluation.
//!
//! The binder (plan.rs) turns sqlparser's AST into [`Expr`]: names resolved to column positions
//! in the input row (or in an enclosing query's row, for correlated subqueries), types checked,
//! implicit casts made explicit. Evaluation follows SQL's three-valued logic.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::Result;
use crate::exec::{self, Cx, Row};
use crate::functions::ScalarImpl;
use crate::plan::Plan;
use crate::value::{self, ArithOp, DataType, Value};
use crate::{bail, err};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "<>",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        }
    }
    /// The operator with its operands swapped (`a < b` is `b > a`).
    pub fn flip(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::GtEq => CmpOp::LtEq,
            o => o,
        }
    }
    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::NotEq => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::LtEq => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::GtEq => o != Ordering::Less,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFunc {
    Count,
    /// count(*)
    CountStar,
    Sum,
    Avg,
    Min,
    Max,
    StringAgg,
    BoolAnd,
    BoolOr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AggCall {
    pub func: AggFunc,
    pub args: Vec<Expr>,
    pub distinct: bool,
    pub filter: Option<Box<Expr>>,
    /// `agg(x ORDER BY ...)`: the order the values are fed in.
    pub order_by: Vec<crate::plan::SortKey>,
    /// The result type.
    pub ty: DataType,
}

/// How a subquery's rows are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubqueryKind {
    Scalar,
    Exists,
    /// `expr IN (subquery)`, `expr op ANY (subquery)`
    Any(CmpOp),
    /// `expr op ALL (subquery)`
    All(CmpOp),
}

#[derive(Clone, Debug)]
pub struct Subquery {
    pub plan: Arc<Plan>,
    pub kind: SubqueryKind,
    /// False when the subquery references no enclosing row: its result is computed once.
    pub correlated: bool,
    /// Identifies the subquery for caching its result.
    pub id: usize,
}

impl PartialEq for Subquery {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

#[derive(Clone)]
pub struct Func {
    pub name: String,
    pub call: ScalarImpl,
    pub strict: bool,
    pub ty: DataType,
}

impl std::fmt::Debug for Func {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)
    }
}

impl PartialEq for Func {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.ty == other.ty
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Literal(Value),
    /// A column of the input row.
    Column(usize),
    /// A column of an enclosing query's row: `depth` 1 is the nearest enclosing query.
    Outer {
        depth: usize,
        index: usize,
    },
    /// A statement parameter `$n` (0-based here), with the type it was bound as.
    Param(usize, DataType),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>, DataType),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    IsNull(Box<Expr>, bool),
    /// `a IS [NOT] DISTINCT FROM b` (true in the second field = NOT DISTINCT).
    IsDistinct(Box<Expr>, Box<Expr>, bool),
    /// `x IS [NOT] TRUE/FALSE`: (expr, value tested, negated)
    IsBool(Box<Expr>, bool, bool),
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<char>,
        case_insensitive: bool,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Subquery {
        sub: Subquery,
        operand: Option<Box<Expr>>,
        negated: bool,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Cast(Box<Expr>, DataType),
    Coalesce(Vec<Expr>),
    NullIf(Box<Expr>, Box<Expr>),
    Concat(Box<Expr>, Box<Expr>),
    Func(Func, Vec<Expr>),
    /// An aggregate call; only between binding and the aggregate rewrite.
    Agg(Box<AggCall>),
    /// `nextval('seq')`, `currval`, `setval`: sequences live outside the transaction; and
    /// `current_setting`, `set_config` (name empty), which read and write the session.
    Sequence(SeqOp, String, Vec<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqOp {
    NextVal,
    CurrVal,
    SetVal,
    /// `current_setting(name [, missing_ok])`.
    CurrentSetting,
    /// `set_config(name, value, is_local)`.
    SetConfig,
}

impl Expr {
    pub fn lit(v: Value) -> Expr {
        Expr::Literal(v)
    }

    /// Calls `f` on this expression and every sub-expression (not entering subquery plans).
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Literal(_) | Expr::Column(_) | Expr::Outer { .. } | Expr::Param(..) => {}
            Expr::Not(e)
            | Expr::Neg(e)
            | Expr::IsNull(e, _)
            | Expr::IsBool(e, _, _)
            | Expr::Cast(e, _) => e.walk(f),
            Expr::Arith(_, a, b, _)
            | Expr::Cmp(_, a, b)
            | Expr::And(a, b)
            | Expr::Or(a, b)
            | Expr::IsDistinct(a, b, _)
            | Expr::NullIf(a, b)
            | Expr::Concat(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Like { expr, pattern, .. } => {
                expr.walk(f);
                pattern.walk(f);
            }
            Expr::InList { expr, list, .. } => {
                expr.walk(f);
                list.iter().for_each(|e| e.walk(f));
            }
            Expr::Subquery { operand, .. } => {
                if let Some(o) = operand {
                    o.walk(f)
                }
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                if let Some(o) = operand {
                    o.walk(f);
                }
                for (w, t) in whens {
                    w.walk(f);
                    t.walk(f);
                }
                if let Some(o) = otherwise {
                    o.walk(f);
                }
            }
            Expr::Coalesce(list) | Expr::Func(_, list) | Expr::Sequence(_, _, list) => {
                list.iter().for_each(|e| e.walk(f))
            }
            Expr::Agg(a) => {
                a.args.iter().for_each(|e| e.walk(f));
                a.order_by.iter().for_each(|k| k.expr.walk(f));
                if let Some(fl) = &a.filter {
                    fl.walk(f);
                }
            }
        }
    }

    /// Rebuilds the expression bottom-up through `f` (which sees children already rebuilt).
    pub fn transform(self, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Expr> {
        let rebuilt = self.map_children(&mut |child| child.transform(f))?;
        f(rebuilt)
    }

    /// Replaces each direct child expression `c` by `f(c)` (aggregate calls are leaves: their
    /// arguments belong to the input below the aggregate).
    pub fn map_children(self, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Expr> {
        #[allow(clippy::boxed_local)] // the boxes are the expression tree's own
        fn t(e: Box<Expr>, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Box<Expr>> {
            Ok(Box::new(f(*e)?))
        }
        fn list(v: Vec<Expr>, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Vec<Expr>> {
            v.into_iter().map(f).collect()
        }
        fn opt(
            e: Option<Box<Expr>>,
            f: &mut dyn FnMut(Expr) -> Result<Expr>,
        ) -> Result<Option<Box<Expr>>> {
            e.map(|e| t(e, f)).transpose()
        }
        Ok(match self {
            e @ (Expr::Literal(_) | Expr::Column(_) | Expr::Outer { .. } | Expr::Param(..)) => e,
            Expr::Not(e) => Expr::Not(t(e, f)?),
            Expr::Neg(e) => Expr::Neg(t(e, f)?),
            Expr::IsNull(e, n) => Expr::IsNull(t(e, f)?, n),
            Expr::IsBool(e, v, n) => Expr::IsBool(t(e, f)?, v, n),
            Expr::Cast(e, ty) => Expr::Cast(t(e, f)?, ty),
            Expr::Arith(op, a, b, ty) => Expr::Arith(op, t(a, f)?, t(b, f)?, ty),
            Expr::Cmp(op, a, b) => Expr::Cmp(op, t(a, f)?, t(b, f)?),
            Expr::And(a, b) => Expr::And(t(a, f)?, t(b, f)?),
            Expr::Or(a, b) => Expr::Or(t(a, f)?, t(b, f)?),
            Expr::IsDistinct(a, b, n) => Expr::IsDistinct(t(a, f)?, t(b, f)?, n),
            Expr::NullIf(a, b) => Expr::NullIf(t(a, f)?, t(b, f)?),
            Expr::Concat(a, b) => Expr::Concat(t(a, f)?, t(b, f)?),
            Expr::Like {
                expr,
                pattern,
                escape,
                case_insensitive,
                negated,
            } => Expr::Like {
                expr: t(expr, f)?,
                pattern: t(pattern, f)?,
                escape,
                case_insensitive,
                negated,
            },
            Expr::InList {
                expr,
                list: l,
                negated,
            } => Expr::InList {
                expr: t(expr, f)?,
                list: list(l, f)?,
                negated,
            },
            Expr::Subquery {
                sub,
                operand,
                negated,
            } => Expr::Subquery {
                sub,
                operand: opt(operand, f)?,
                negated,
            },
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                let operand = opt(operand, f)?;
                let mut w2 = Vec::with_capacity(whens.len());
                for (w, r) in whens {
                    w2.push((f(w)?, f(r)?));
                }
                Expr::Case {
                    operand,
                    whens: w2,
                    otherwise: opt(otherwise, f)?,
                }
            }
            Expr::Coalesce(l) => Expr::Coalesce(list(l, f)?),
            Expr::Func(func, l) => Expr::Func(func, list(l, f)?),
            Expr::Sequence(op, name, l) => Expr::Sequence(op, name, list(l, f)?),
            // Aggregate arguments belong to the input below the aggregate: left alone.
            e @ Expr::Agg(_) => e,
        })
    }

    /// Columns of the input row this expression reads (not counting subqueries' outer refs).
    pub fn columns(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Column(i) = e {
                out.push(*i)
            }
        });
        out
    }

    /// True if the expression holds a subquery, an aggregate or a volatile function.
    pub fn has_subquery(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| {
            if matches!(e, Expr::Subquery { .. } | Expr::Agg(_) | Expr::Sequence(..)) {
                found = true
            }
        });
        found
    }

    /// True if the value never changes during a statement (no columns, subqueries or volatile calls).
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.walk(&mut |e| match e {
            Expr::Column(_)
            | Expr::Outer { .. }
            | Expr::Subquery { .. }
            | Expr::Agg(_)
            | Expr::Sequence(..) => constant = false,
            Expr::Func(f, _) if f.name == "random" || f.name == "clock_timestamp" => {
                constant = false
            }
            _ => {}
        });
        constant
    }

    /// Shifts column references by `delta` (for moving a predicate onto one side of a join).
    pub fn shift(self, delta: isize) -> Expr {
        self.transform(&mut |e| {
            Ok(match e {
                Expr::Column(i) => Expr::Column((i as isize + delta) as usize),
                e => e,
            })
        })
        .expect("invariant: shifting cannot fail")
    }

    /// Splits a conjunction into its terms.
    pub fn conjuncts(self) -> Vec<Expr> {
        match self {
            Expr::And(a, b) => {
                let mut v = a.conjuncts();
                v.extend(b.conjuncts());
                v
            }
            e => vec![e],
        }
    }

    pub fn and_all(terms: Vec<Expr>) -> Option<Expr> {
        terms
            .into_iter()
            .reduce(|a, b| Expr::And(Box::new(a), Box::new(b)))
    }
}

/// Evaluates an expression against a row.
pub fn eval(e: &Expr, row: &[Value], cx: &mut Cx) -> Result<Value> {
    Ok(match e {
        Expr::Literal(_) | Expr::Column(_) => eval_ref(e, row, cx)?.into_owned(),
        Expr::Outer { depth, index } => {
            let n = cx.outer.len();
            let r = n
                .checked_sub(*depth)
                .and_then(|i| cx.outer.get(i))
                .ok_or_else(|| {
                    err!(
                        INTERNAL_ERROR,
                        "outer reference at depth {depth} out of range"
                    )
                })?;
            r.get(*index).cloned().unwrap_or(Value::Null)
        }
        Expr::Param(i, ty) => {
            let v = cx
                .params
                .get(*i)
                .cloned()
                .ok_or_else(|| err!(UNDEFINED_PARAMETER, "there is no parameter ${}", i + 1))?;
            value::cast(v, ty)?
        }
        Expr::Not(e) => match eval(e, row, cx)?.truth()? {
            None => Value::Null,
            Some(b) => Value::Bool(!b),
        },
        Expr::Neg(e) => value::negate(&eval(e, row, cx)?)?,
        Expr::Arith(op, a, b, ty) => {
            let x = eval_ref(a, row, cx)?;
            if x.is_null() {
                return Ok(Value::Null);
            }
            let y = eval_ref(b, row, cx)?;
            value::arith(*op, &x, &y, ty)?
        }
        Expr::Cmp(op, a, b) => {
            let x = eval(a, row, cx)?;
            if x.is_null() {
                return Ok(Value::Null);
            }
            let y = eval(b, row, cx)?;
            if y.is_null() {
                return Ok(Value::Null);
            }
            Value::Bool(op.holds(x.compare(&y)?))
        }
        Expr::And(a, b) => {
            let x = eval(a, row, cx)?.truth()?;
            if x == Some(false) {
                return Ok(Value::Bool(false));
            }
            match (x, eval(b, row, cx)?.truth()?) {
                (_, Some(false)) => Value::Bool(false),
                (Some(true), Some(true)) => Value::Bool(true),
                _ => Value::Null,
            }
        }
        Expr::Or(a, b) => {
            let x = eval(a, row, cx)?.truth()?;
            if x == Some(true) {
                return Ok(Value::Bool(true));
            }
            match (x, eval(b, row, cx)?.truth()?) {
                (_, Some(true)) => Value::Bool(true),
                (Some(false), Some(false)) => Value::Bool(false),
                _ => Value::Null,
            }
        }
        Expr::IsNull(e, negated) => Value::Bool(eval(e, row, cx)?.is_null() != *negated),
        Expr::IsDistinct(a, b, not_distinct) => {
            let x = eval(a, row, cx)?;
            let y = eval(b, row, cx)?;
            let same = match (x.is_null(), y.is_null()) {
                (true, true) => true,
                (false, false) => x.compare(&y)? == Ordering::Equal,
                _ => false,
            };
            Value::Bool(same == *not_distinct)
        }
        Expr::IsBool(e, want, negated) => {
            let t = eval(e, row, cx)?.truth()?;
            Value::Bool((t == Some(*want)) != *negated)
        }
        Expr::Like {
            expr,
            pattern,
            escape,
            case_insensitive,
            negated,
        } => {
            let v = eval(expr, row, cx)?;
            let p = eval(pattern, row, cx)?;
            match (v, p) {
                (Value::Text(s), Value::Text(p)) => {
                    let m = if *case_insensitive {
                        like(&s.to_lowercase(), &p.to_lowercase(), *escape)?
                    } else {
                        like(&s, &p, *escape)?
                    };
                    Value::Bool(m != *negated)
                }
                (Value::Null, _) | (_, Value::Null) => Value::Null,
                (v, _) => bail!(
                    UNDEFINED_FUNCTION,
                    "operator does not exist: {} ~~ text",
                    v.data_type()
                ),
            }
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let v = eval(expr, row, cx)?;
            if v.is_null() {
                return Ok(Value::Null);
            }
            let mut saw_null = false;
            for item in list {
                let x = eval(item, row, cx)?;
                if x.is_null() {
                    saw_null = true;
                } else if v.compare(&x)? == Ordering::Equal {
                    return Ok(Value::Bool(!negated));
                }
            }
            if saw_null {
                Value::Null
            } else {
                Value::Bool(*negated)
            }
        }
        Expr::Subquery {
            sub,
            operand,
            negated,
        } => {
            let v = eval_subquery(sub, operand.as_deref(), row, cx)?;
            if *negated {
                match v.truth()? {
                    None => Value::Null,
                    Some(b) => Value::Bool(!b),
                }
            } else {
                v
            }
        }
        Expr::Case {
            operand,
            whens,
            otherwise,
        } => {
            let base = match operand {
                Some(o) => Some(eval(o, row, cx)?),
                None => None,
            };
            for (w, then) in whens {
                let hit = match &base {
                    Some(b) => {
                        let x = eval(w, row, cx)?;
                        !b.is_null() && !x.is_null() && b.compare(&x)? == Ordering::Equal
                    }
                    None => eval(w, row, cx)?.truth()? == Some(true),
                };
                if hit {
                    return eval(then, row, cx);
                }
            }
            match otherwise {
                Some(o) => eval(o, row, cx)?,
                None => Value::Null,
            }
        }
        Expr::Cast(e, ty) => value::cast(eval(e, row, cx)?, ty)?,
        Expr::Coalesce(list) => {
            for item in list {
                let v = eval(item, row, cx)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            Value::Null
        }
        Expr::NullIf(a, b) => {
            let x = eval(a, row, cx)?;
            let y = eval(b, row, cx)?;
            if !x.is_null() && !y.is_null() && x.compare(&y)? == Ordering::Equal {
                Value::Null
            } else {
                x
            }
        }
        Expr::Concat(a, b) => {
            let x = eval(a, row, cx)?;
            let y = eval(b, row, cx)?;
            match (x, y) {
                (Value::Null, _) | (_, Value::Null) => Value::Null,
                (Value::Bytea(mut x), Value::Bytea(y)) => {
                    x.extend(y);
                    Value::Bytea(x)
                }
                (x, y) => {
                    let mut s = x.to_text().unwrap_or_default();
                    s.push_str(&y.to_text().unwrap_or_default());
                    Value::Text(s)
                }
            }
        }
        Expr::Func(f, args) => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                let v = eval(a, row, cx)?;
                if f.strict && v.is_null() {
                    return Ok(Value::Null);
                }
                vals.push(v);
            }
            (f.call)(&vals, &cx.fn_context())?
        }
        Expr::Agg(_) => bail!(GROUPING_ERROR, "aggregate functions are not allowed here"),
        Expr::Sequence(op, name, args) => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(eval(a, row, cx)?);
            }
            cx.sequence(*op, name, &vals)?
        }
    })
}

/// Evaluates a predicate: NULL counts as false.
/// An expression's value, borrowed where it already exists (a column of the row, a constant):
/// `k % 100` or `abalance + $1` evaluated per row copies nothing it does not compute.
pub fn eval_ref<'a>(e: &'a Expr, row: &'a [Value], cx: &mut Cx) -> Result<Cow<'a, Value>> {
    Ok(match e {
        Expr::Literal(v) => Cow::Borrowed(v),
        Expr::Column(i) => Cow::Borrowed(
            row.get(*i)
                .ok_or_else(|| err!(INTERNAL_ERROR, "column {i} out of range"))?,
        ),
        _ => Cow::Owned(eval(e, row, cx)?),
    })
}

pub fn eval_pred(e: &Expr, row: &[Value], cx: &mut Cx) -> Result<bool> {
    Ok(eval(e, row, cx)?.truth()? == Some(true))
}

fn eval_subquery(
    sub: &Subquery,
    operand: Option<&Expr>,
    row: &[Value],
    cx: &mut Cx,
) -> Result<Value> {
    let operand = match operand {
        Some(o) => Some(eval(o, row, cx)?),
        None => None,
    };
    let rows: Rc<Vec<Row>> = if sub.correlated {
        cx.outer.push(row.to_vec());
        let limit = if sub.kind == SubqueryKind::Exists {
            Some(1)
        } else {
            None
        };
        let r = exec::run_plan(&sub.plan, cx, limit);
        cx.outer.pop();
        Rc::new(r?)
    } else if let Some(r) = cx.subquery_cache.get(&sub.id) {
        r.clone()
    } else {
        cx.outer.push(row.to_vec());
        let r = exec::run_plan(&sub.plan, cx, None);
        cx.outer.pop();
        let r = Rc::new(r?);
        cx.subquery_cache.insert(sub.id, r.clone());
        r
    };
    Ok(match sub.kind {
        SubqueryKind::Exists => Value::Bool(!rows.is_empty()),
        SubqueryKind::Scalar => match rows.len() {
            0 => Value::Null,
            1 => rows[0].first().cloned().unwrap_or(Value::Null),
            _ => bail!(
                CARDINALITY_VIOLATION,
                "more than one row returned by a subquery used as an expression"
            ),
        },
        SubqueryKind::Any(op) | SubqueryKind::All(op) => {
            let all = matches!(sub.kind, SubqueryKind::All(_));
            let v = operand.unwrap_or(Value::Null);
            if rows.is_empty() {
                return Ok(Value::Bool(all));
            }
            if v.is_null() {
                return Ok(Value::Null);
            }
            let mut saw_null = false;
            for r in rows.iter() {
                let x = r.first().cloned().unwrap_or(Value::Null);
                if x.is_null() {
                    saw_null = true;
                    continue;
                }
                let holds = op.holds(v.compare(&x)?);
                if holds && !all {
                    return Ok(Value::Bool(true));
                }
                if !holds && all {
                    return Ok(Value::Bool(false));
                }
            }
            if saw_null {
                Value::Null
            } else {
                Value::Bool(all)
            }
        }
    })
}

/// SQL LIKE: `%` any run, `_` one character, `escape` (default backslash) quotes the next one.
pub fn like(s: &str, pattern: &str, escape: Option<char>) -> Result<bool> {
    let esc = escape.unwrap_or('\\');
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    // Tokens: Some(c) literal, None-wildcards.
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Lit(char),
        One,
        Any,
    }
    let mut toks = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        if c == esc && escape != Some('\0') {
            let Some(&n) = p.get(i + 1) else {
                bail!(
                    INVALID_ESCAPE_SEQUENCE,
                    "LIKE pattern must not end with escape character"
                );
            };
            toks.push(Tok::Lit(n));
            i += 2;
            continue;
        }
        toks.push(match c {
            '%' => Tok::Any,
            '_' => Tok::One,
            c => Tok::Lit(c),
        });
        i += 1;
    }
    // Iterative matching with backtracking to the last '%'.
    let (mut ti, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match toks.get(pi) {
            Some(Tok::Any) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(Tok::One) => {
                ti += 1;
                pi += 1;
            }
            Some(Tok::Lit(c)) if *c == t[ti] => {
                ti += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return Ok(false),
            },
        }
    }
    while toks.get(pi) == Some(&Tok::Any) {
        pi += 1;
    }
    Ok(pi == toks.len())
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o", None).unwrap());
        assert!(like("hello", "_ello", None).unwrap());
        assert!(!like("hello", "h_o", None).unwrap());
        assert!(like("a%b", "a\\%b", None).unwrap());
        assert!(!like("axb", "a\\%b", None).unwrap());
        assert!(like("", "%", None).unwrap());
        assert!(like("abcabc", "%abc", None).unwrap());
        assert!(like("mississippi", "%iss%ppi", None).unwrap());
        assert!(like("a!b", "a!!b", Some('!')).unwrap());
        assert!(like("x", "x\\", None).is_err());
    }
}
