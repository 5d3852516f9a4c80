//! The filter expression tree, built in Rust or by the SQL front end, before it is compiled
//! against a table schema.

use std::fmt::{self, Write as _};
use std::hash::Hasher;

use crate::query::column_name::ColumnName;
use crate::types::value::Value;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `<>` or `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

impl CompareOp {
    /// The operator with its operands swapped (`a < b` is `b > a`).
    pub fn flipped(self) -> CompareOp {
        match self {
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::LtEq => CompareOp::GtEq,
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::GtEq => CompareOp::LtEq,
            other => other,
        }
    }

    /// The SQL spelling.
    pub fn as_sql(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::NotEq => "<>",
            CompareOp::Lt => "<",
            CompareOp::LtEq => "<=",
            CompareOp::Gt => ">",
            CompareOp::GtEq => ">=",
        }
    }
}

/// The size of an expression tree, from [`Expr::measure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExprSize {
    /// Nodes counted.
    pub nodes: usize,
    /// Deepest level reached (a leaf alone has depth 1).
    pub depth: usize,
}

/// A filter expression over one table's columns. Evaluation follows SQL: three-valued logic
/// with NULL, and a row matches only when the whole filter is TRUE.
///
/// Non-exhaustive: forms of SQLite's syntax added later become new variants.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Expr {
    /// A column, by name.
    Column(ColumnName),
    /// A constant.
    Literal(Value),
    /// `left op right`; each side is a column or a literal.
    Compare {
        /// The operator.
        op: CompareOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// All of the operands (SQL AND).
    And(Vec<Expr>),
    /// Any of the operands (SQL OR).
    Or(Vec<Expr>),
    /// SQL NOT.
    Not(Box<Expr>),
    /// `expr [NOT] IN (list)`; every list item is a literal.
    InList {
        /// The tested operand (a column or a literal).
        expr: Box<Expr>,
        /// The literal items.
        list: Vec<Expr>,
        /// True for NOT IN.
        negated: bool,
    },
    /// `expr IS [NOT] NULL`.
    IsNull {
        /// The tested operand.
        expr: Box<Expr>,
        /// True for IS NOT NULL.
        negated: bool,
    },
    /// `expr [NOT] BETWEEN low AND high`.
    Between {
        /// The tested operand.
        expr: Box<Expr>,
        /// Lower bound, inclusive.
        low: Box<Expr>,
        /// Upper bound, inclusive.
        high: Box<Expr>,
        /// True for NOT BETWEEN.
        negated: bool,
    },
    /// `expr [NOT] LIKE pattern [ESCAPE c]` or ILIKE: `%` matches any run of characters,
    /// `_` exactly one; LIKE is case-sensitive, ILIKE is not.
    Like {
        /// The tested operand.
        expr: Box<Expr>,
        /// The pattern: a text literal (or NULL).
        pattern: Box<Expr>,
        /// The escape character, if any.
        escape: Option<char>,
        /// True for ILIKE.
        case_insensitive: bool,
        /// True for NOT LIKE / NOT ILIKE.
        negated: bool,
    },
    /// `expr [NOT] GLOB pattern`, SQLite's: `*` matches any run of characters, `?` exactly
    /// one, `[...]` one of a set (`[a-z]`, `[^0-9]`); case always counts, and there is no
    /// escape character.
    Glob {
        /// The tested operand.
        expr: Box<Expr>,
        /// The pattern: a text literal (or NULL).
        pattern: Box<Expr>,
        /// True for NOT GLOB.
        negated: bool,
    },
}

impl Expr {
    /// A column reference.
    pub fn col(name: impl Into<ColumnName>) -> Expr {
        Expr::Column(name.into())
    }

    /// A literal value.
    pub fn lit(value: impl Into<Value>) -> Expr {
        Expr::Literal(value.into())
    }

    /// `self op other`.
    pub fn compare(self, op: CompareOp, other: Expr) -> Expr {
        Expr::Compare {
            op,
            left: Box::new(self),
            right: Box::new(other),
        }
    }

    /// `self = other`.
    pub fn eq(self, other: Expr) -> Expr {
        self.compare(CompareOp::Eq, other)
    }

    /// `self <> other`.
    pub fn not_eq(self, other: Expr) -> Expr {
        self.compare(CompareOp::NotEq, other)
    }

    /// `self < other`.
    pub fn lt(self, other: Expr) -> Expr {
        self.compare(CompareOp::Lt, other)
    }

    /// `self <= other`.
    pub fn lt_eq(self, other: Expr) -> Expr {
        self.compare(CompareOp::LtEq, other)
    }

    /// `self > other`.
    pub fn gt(self, other: Expr) -> Expr {
        self.compare(CompareOp::Gt, other)
    }

    /// `self >= other`.
    pub fn gt_eq(self, other: Expr) -> Expr {
        self.compare(CompareOp::GtEq, other)
    }

    /// `self AND other`.
    pub fn and(self, other: Expr) -> Expr {
        Expr::And(vec![self, other])
    }

    /// `self OR other`.
    pub fn or(self, other: Expr) -> Expr {
        Expr::Or(vec![self, other])
    }

    /// `NOT self`. (Named like SQL; this is not `std::ops::Not`.)
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }

    /// `self IN (values)`.
    pub fn in_list<I, V>(self, values: I) -> Expr
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        Expr::InList {
            expr: Box::new(self),
            list: values.into_iter().map(Expr::lit).collect(),
            negated: false,
        }
    }

    /// `self IS NULL`.
    pub fn is_null(self) -> Expr {
        Expr::IsNull {
            expr: Box::new(self),
            negated: false,
        }
    }

    /// `self IS NOT NULL`.
    pub fn is_not_null(self) -> Expr {
        Expr::IsNull {
            expr: Box::new(self),
            negated: true,
        }
    }

    /// `self BETWEEN low AND high`.
    pub fn between(self, low: Expr, high: Expr) -> Expr {
        Expr::Between {
            expr: Box::new(self),
            low: Box::new(low),
            high: Box::new(high),
            negated: false,
        }
    }

    /// `self LIKE pattern` (case-sensitive, no escape character).
    pub fn like(self, pattern: &str) -> Expr {
        Expr::Like {
            expr: Box::new(self),
            pattern: Box::new(Expr::lit(pattern)),
            escape: None,
            case_insensitive: false,
            negated: false,
        }
    }

    /// `self GLOB pattern`.
    pub fn glob(self, pattern: &str) -> Expr {
        Expr::Glob {
            expr: Box::new(self),
            pattern: Box::new(Expr::lit(pattern)),
            negated: false,
        }
    }

    /// Depth of the tree: a leaf has depth 1.
    pub fn depth(&self) -> usize {
        self.measure(usize::MAX, usize::MAX).depth
    }

    /// Number of nodes in the tree.
    pub fn node_count(&self) -> usize {
        self.measure(usize::MAX, usize::MAX).nodes
    }

    /// Nodes and depth, walked without recursion (so a hostile, deeply nested tree cannot
    /// overflow the stack) and stopping as soon as either passes its limit: the result is
    /// then one past that limit.
    pub fn measure(&self, max_nodes: usize, max_depth: usize) -> ExprSize {
        let mut size = ExprSize { nodes: 0, depth: 0 };
        let mut pending = vec![(self, 1usize)];
        while let Some((expr, depth)) = pending.pop() {
            size.nodes += 1;
            size.depth = size.depth.max(depth);
            if size.nodes > max_nodes || size.depth > max_depth {
                break;
            }
            expr.for_each_child(|child| pending.push((child, depth + 1)));
        }
        size
    }

    /// Calls `visit` with every column name the expression references.
    pub fn for_each_column<'a>(&'a self, visit: &mut dyn FnMut(&'a str)) {
        let mut pending = vec![self];
        while let Some(expr) = pending.pop() {
            if let Expr::Column(name) = expr {
                visit(name);
            }
            expr.for_each_child(|child| pending.push(child));
        }
    }

    fn for_each_child<'a>(&'a self, mut visit: impl FnMut(&'a Expr)) {
        match self {
            Expr::Column(_) | Expr::Literal(_) => {}
            Expr::Compare { left, right, .. } => {
                visit(left);
                visit(right);
            }
            Expr::And(items) | Expr::Or(items) => items.iter().for_each(visit),
            Expr::Not(inner) | Expr::IsNull { expr: inner, .. } => visit(inner),
            Expr::InList { expr, list, .. } => {
                visit(expr);
                list.iter().for_each(visit);
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                visit(expr);
                visit(low);
                visit(high);
            }
            Expr::Like { expr, pattern, .. } | Expr::Glob { expr, pattern, .. } => {
                visit(expr);
                visit(pattern);
            }
        }
    }
}

impl Expr {
    /// Appends the expression as SQL (fully parenthesised). `compared` writes each literal
    /// that is compared against (an operand of a comparison or BETWEEN): a template's
    /// parameters are exactly those literals, in this order.
    pub(crate) fn write_sql(
        &self,
        out: &mut String,
        compared: &mut dyn FnMut(&Value, &mut String),
    ) {
        let not = |negated: bool| if negated { "NOT " } else { "" };
        let operand =
            |expr: &Expr, out: &mut String, compared: &mut dyn FnMut(&Value, &mut String)| {
                match expr {
                    Expr::Literal(value) => compared(value, out),
                    other => other.write_sql(out, compared),
                }
            };
        match self {
            Expr::Column(name) => {
                let _ = write!(out, "\"{}\"", name.replace('"', "\"\""));
            }
            Expr::Literal(value) => {
                let _ = write!(out, "{value}");
            }
            Expr::Compare { op, left, right } => {
                out.push('(');
                operand(left, out, compared);
                let _ = write!(out, " {} ", op.as_sql());
                operand(right, out, compared);
                out.push(')');
            }
            Expr::And(items) | Expr::Or(items) => {
                let joiner = if matches!(self, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                out.push('(');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push_str(joiner);
                    }
                    item.write_sql(out, compared);
                }
                out.push(')');
            }
            Expr::Not(inner) => {
                out.push_str("(NOT ");
                inner.write_sql(out, compared);
                out.push(')');
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                out.push('(');
                expr.write_sql(out, compared);
                let _ = write!(out, " {}IN (", not(*negated));
                for (index, item) in list.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    item.write_sql(out, compared);
                }
                out.push_str("))");
            }
            Expr::IsNull { expr, negated } => {
                out.push('(');
                expr.write_sql(out, compared);
                let _ = write!(out, " IS {}NULL)", not(*negated));
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                out.push('(');
                operand(expr, out, compared);
                let _ = write!(out, " {}BETWEEN ", not(*negated));
                operand(low, out, compared);
                out.push_str(" AND ");
                operand(high, out, compared);
                out.push(')');
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                case_insensitive,
                negated,
            } => {
                let keyword = if *case_insensitive { "ILIKE" } else { "LIKE" };
                out.push('(');
                expr.write_sql(out, compared);
                let _ = write!(out, " {}{keyword} ", not(*negated));
                pattern.write_sql(out, compared);
                if let Some(escape) = escape {
                    let _ = write!(out, " ESCAPE '{}'", escape.to_string().replace('\'', "''"));
                }
                out.push(')');
            }
            Expr::Glob {
                expr,
                pattern,
                negated,
            } => {
                out.push('(');
                expr.write_sql(out, compared);
                let _ = write!(out, " {}GLOB ", not(*negated));
                pattern.write_sql(out, compared);
                out.push(')');
            }
        }
    }
}

/// Visits the parts of an expression that define a query template: everything but the
/// constants compared against, which [`Expr::for_each_compared`] yields in parameter order.
impl Expr {
    /// Calls `visit` with each constant compared against (an operand of a comparison or a
    /// BETWEEN), in the order a template numbers its parameters.
    pub(crate) fn for_each_compared(&self, visit: &mut dyn FnMut(&Value)) {
        let operand = |expr: &Expr, visit: &mut dyn FnMut(&Value)| match expr {
            Expr::Literal(value) => visit(value),
            other => other.for_each_compared(visit),
        };
        match self {
            Expr::Compare { left, right, .. } => {
                operand(left, visit);
                operand(right, visit);
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                operand(expr, visit);
                operand(low, visit);
                operand(high, visit);
            }
            other => other.for_each_child(|child| child.for_each_compared(visit)),
        }
    }

    /// Hashes the expression's template: its structure and every constant except those
    /// compared against.
    pub(crate) fn hash_template(&self, state: &mut dyn Hasher) {
        self.hash_template_at(state, false);
    }

    fn hash_template_at(&self, state: &mut dyn Hasher, compared: bool) {
        state.write_u8(self.kind());
        match self {
            Expr::Column(name) => state.write(name.as_bytes()),
            Expr::Literal(_) if compared => {}
            Expr::Literal(value) => hash_value(value, state),
            Expr::Compare { op, left, right } => {
                state.write_u8(*op as u8);
                left.hash_template_at(state, true);
                right.hash_template_at(state, true);
            }
            Expr::And(items) | Expr::Or(items) => {
                state.write_usize(items.len());
                items
                    .iter()
                    .for_each(|item| item.hash_template_at(state, false));
            }
            Expr::Not(inner) => inner.hash_template_at(state, false),
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                state.write_u8(u8::from(*negated));
                state.write_usize(list.len());
                expr.hash_template_at(state, false);
                list.iter()
                    .for_each(|item| item.hash_template_at(state, false));
            }
            Expr::IsNull { expr, negated } => {
                state.write_u8(u8::from(*negated));
                expr.hash_template_at(state, false);
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                state.write_u8(u8::from(*negated));
                for part in [expr, low, high] {
                    part.hash_template_at(state, true);
                }
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                case_insensitive,
                negated,
            } => {
                state.write_u8(u8::from(*negated) | u8::from(*case_insensitive) << 1);
                state.write_u32(escape.map_or(u32::MAX, u32::from));
                expr.hash_template_at(state, false);
                pattern.hash_template_at(state, false);
            }
            Expr::Glob {
                expr,
                pattern,
                negated,
            } => {
                state.write_u8(u8::from(*negated));
                expr.hash_template_at(state, false);
                pattern.hash_template_at(state, false);
            }
        }
    }

    /// True when both expressions have the same template (they differ at most in the
    /// constants they compare against).
    pub(crate) fn same_template(&self, other: &Expr) -> bool {
        self.same_template_at(other, false)
    }

    fn same_template_at(&self, other: &Expr, compared: bool) -> bool {
        let all_same = |a: &[Expr], b: &[Expr], compared: bool| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(a, b)| a.same_template_at(b, compared))
        };
        match (self, other) {
            (Expr::Column(a), Expr::Column(b)) => a == b,
            (Expr::Literal(_), Expr::Literal(_)) if compared => true,
            (Expr::Literal(a), Expr::Literal(b)) => a == b,
            (
                Expr::Compare {
                    op: op_a,
                    left: left_a,
                    right: right_a,
                },
                Expr::Compare {
                    op: op_b,
                    left: left_b,
                    right: right_b,
                },
            ) => {
                op_a == op_b
                    && left_a.same_template_at(left_b, true)
                    && right_a.same_template_at(right_b, true)
            }
            (Expr::And(a), Expr::And(b)) | (Expr::Or(a), Expr::Or(b)) => all_same(a, b, false),
            (Expr::Not(a), Expr::Not(b)) => a.same_template_at(b, false),
            (
                Expr::InList {
                    expr: expr_a,
                    list: list_a,
                    negated: negated_a,
                },
                Expr::InList {
                    expr: expr_b,
                    list: list_b,
                    negated: negated_b,
                },
            ) => {
                negated_a == negated_b
                    && expr_a.same_template_at(expr_b, false)
                    && all_same(list_a, list_b, false)
            }
            (
                Expr::IsNull {
                    expr: expr_a,
                    negated: negated_a,
                },
                Expr::IsNull {
                    expr: expr_b,
                    negated: negated_b,
                },
            ) => negated_a == negated_b && expr_a.same_template_at(expr_b, false),
            (
                Expr::Between {
                    expr: expr_a,
                    low: low_a,
                    high: high_a,
                    negated: negated_a,
                },
                Expr::Between {
                    expr: expr_b,
                    low: low_b,
                    high: high_b,
                    negated: negated_b,
                },
            ) => {
                negated_a == negated_b
                    && expr_a.same_template_at(expr_b, true)
                    && low_a.same_template_at(low_b, true)
                    && high_a.same_template_at(high_b, true)
            }
            (
                Expr::Like {
                    expr: expr_a,
                    pattern: pattern_a,
                    escape: escape_a,
                    case_insensitive: insensitive_a,
                    negated: negated_a,
                },
                Expr::Like {
                    expr: expr_b,
                    pattern: pattern_b,
                    escape: escape_b,
                    case_insensitive: insensitive_b,
                    negated: negated_b,
                },
            ) => {
                escape_a == escape_b
                    && insensitive_a == insensitive_b
                    && negated_a == negated_b
                    && expr_a.same_template_at(expr_b, false)
                    && pattern_a.same_template_at(pattern_b, false)
            }
            (
                Expr::Glob {
                    expr: expr_a,
                    pattern: pattern_a,
                    negated: negated_a,
                },
                Expr::Glob {
                    expr: expr_b,
                    pattern: pattern_b,
                    negated: negated_b,
                },
            ) => {
                negated_a == negated_b
                    && expr_a.same_template_at(expr_b, false)
                    && pattern_a.same_template_at(pattern_b, false)
            }
            _ => false,
        }
    }

    /// A number for each kind of node, for hashing.
    fn kind(&self) -> u8 {
        match self {
            Expr::Column(_) => 0,
            Expr::Literal(_) => 1,
            Expr::Compare { .. } => 2,
            Expr::And(_) => 3,
            Expr::Or(_) => 4,
            Expr::Not(_) => 5,
            Expr::InList { .. } => 6,
            Expr::IsNull { .. } => 7,
            Expr::Between { .. } => 8,
            Expr::Like { .. } => 9,
            Expr::Glob { .. } => 10,
        }
    }
}

/// Hashes a constant exactly (floats by their bits), consistently with `Value`'s `==`.
fn hash_value(value: &Value, state: &mut dyn Hasher) {
    match value {
        Value::Null => state.write_u8(0),
        Value::Bool(b) => state.write_u8(2 + u8::from(*b)),
        Value::Int(i) => {
            state.write_u8(4);
            state.write_i64(*i);
        }
        Value::Float(f) => {
            state.write_u8(5);
            state.write_u64(f.to_bits());
        }
        Value::Text(text) => {
            state.write_u8(6);
            state.write(text.as_bytes());
            state.write_u8(0xff);
        }
        Value::Bytes(bytes) => {
            state.write_u8(7);
            state.write_usize(bytes.len());
            state.write(bytes);
        }
    }
}

impl fmt::Display for Expr {
    /// Renders the expression as SQL (fully parenthesised), for records and messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write_sql(&mut out, &mut |value, out| {
            let _ = write!(out, "{value}");
        });
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_and_node_count() {
        let filter = Expr::col("a")
            .eq(Expr::lit(1))
            .and(Expr::col("b").in_list([1, 2]).not());
        assert_eq!(filter.node_count(), 9);
        assert_eq!(filter.depth(), 4);
    }

    #[test]
    fn measuring_a_hostile_tree_neither_recurses_nor_walks_it_all() {
        let mut deep = Expr::col("a");
        for _ in 0..200_000 {
            deep = deep.not();
        }
        let size = deep.measure(1_000, 32);
        assert_eq!(
            size,
            ExprSize {
                nodes: 33,
                depth: 33
            }
        );
        assert_eq!(deep.node_count(), 200_001);
        // Dropping a tree this deep would recurse; leak it in the test instead.
        std::mem::forget(deep);
    }

    #[test]
    fn renders_as_sql() {
        let filter = Expr::col("room")
            .eq(Expr::lit(7))
            .and(Expr::col("body").like("it's%"));
        assert_eq!(
            filter.to_string(),
            "((\"room\" = 7) AND (\"body\" LIKE 'it''s%'))"
        );
    }
}
