//! Filters compiled against a schema: column names resolved to positions, LIKE patterns
//! compiled, IN lists sorted. Evaluation reads the row in place and allocates nothing (a
//! number under LIKE renders into a stack buffer; only bytes that are not well-formed UTF-8
//! are decoded into a new string).

use std::cell::Cell;
use std::cmp::Ordering;

use crate::config::FilterLimits;
use crate::error::LiveError;
use crate::query::expr::{CompareOp, Expr};
use crate::query::like::LikePattern;
use crate::query::sql_text::{truth, with_text};
use crate::types::schema::TableSchema;
use crate::types::value::{Row, Value};

/// A compared operand: a column position, a constant, or a parameter (a constant that
/// belongs to the subscription rather than to the shared compiled query).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operand {
    Column(u16),
    Literal(Value),
    Param(u16),
}

impl Operand {
    #[inline]
    fn value<'a>(&'a self, row: &'a Row, params: &'a [Value]) -> &'a Value {
        const NULL: Value = Value::Null;
        match self {
            Operand::Column(position) => row.value(usize::from(*position)),
            Operand::Literal(value) => value,
            Operand::Param(index) => params.get(usize::from(*index)).unwrap_or(&NULL),
        }
    }
}

/// Where a pinned column's constants come from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PinValues {
    /// Constants of the compiled query itself (an IN list).
    Literals(Vec<Value>),
    /// One parameter of each subscription.
    Param(u16),
}

impl PinValues {
    fn len(&self) -> usize {
        match self {
            PinValues::Literals(values) => values.len(),
            PinValues::Param(_) => 1,
        }
    }
}

/// A compiled predicate. `eval` gives SQL's three-valued result: `None` is UNKNOWN.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Predicate {
    Compare {
        op: CompareOp,
        left: Operand,
        right: Operand,
    },
    And(Box<[Predicate]>),
    Or(Box<[Predicate]>),
    Not(Box<Predicate>),
    In {
        operand: Operand,
        /// Non-NULL items, sorted in SQL order for binary search.
        items: Box<[Value]>,
        has_null: bool,
        negated: bool,
    },
    IsNull {
        operand: Operand,
        negated: bool,
    },
    Between {
        operand: Operand,
        low: Operand,
        high: Operand,
        negated: bool,
    },
    Like {
        operand: Operand,
        pattern: LikePattern,
        negated: bool,
    },
    /// A column or constant used as a condition: true when it is a non-zero number.
    Truth(Operand),
    /// A condition known at compile time (for example, LIKE NULL is UNKNOWN).
    Constant(Option<bool>),
}

/// A column pinned to constants through a top-level AND: the filter can only be TRUE for
/// rows whose value in `column` equals one of `values`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pin {
    pub(crate) column: u16,
    pub(crate) values: PinValues,
}

impl Predicate {
    /// Compiles `expr` against `schema`, enforcing `limits`, with every constant kept in
    /// the predicate.
    pub(crate) fn compile(
        expr: &Expr,
        schema: &TableSchema,
        limits: &FilterLimits,
    ) -> Result<Predicate, LiveError> {
        Self::compile_with(expr, schema, limits, false)
    }

    /// Compiles `expr` as a template: the constants compared against (the operands of
    /// comparisons and BETWEEN bounds) become parameters 0, 1, ... in the order
    /// [`collect_params`] finds them, so subscriptions that differ only in those constants
    /// share one compiled predicate and each keeps its own values.
    pub(crate) fn compile_template(
        expr: &Expr,
        schema: &TableSchema,
        limits: &FilterLimits,
    ) -> Result<Predicate, LiveError> {
        Self::compile_with(expr, schema, limits, true)
    }

    fn compile_with(
        expr: &Expr,
        schema: &TableSchema,
        limits: &FilterLimits,
        parameterize: bool,
    ) -> Result<Predicate, LiveError> {
        let limits = &limits.bounded();
        // Measured without recursion, stopping at the limits, before the (recursive)
        // compiler runs.
        let size = expr.measure(limits.max_nodes, limits.max_depth);
        if size.nodes > limits.max_nodes {
            return Err(LiveError::FilterTooLarge {
                nodes: size.nodes,
                max: limits.max_nodes,
            });
        }
        if size.depth > limits.max_depth {
            return Err(LiveError::FilterTooDeep {
                depth: size.depth,
                max: limits.max_depth,
            });
        }
        Compiler {
            schema,
            limits,
            parameterize,
            next_param: Cell::new(0),
        }
        .predicate(expr)
    }

    /// Evaluates the predicate on a row: `Some(true)` only when the filter is TRUE.
    pub(crate) fn eval(&self, row: &Row, params: &[Value]) -> Option<bool> {
        match self {
            Predicate::Compare { op, left, right } => left
                .value(row, params)
                .sql_cmp(right.value(row, params))
                .map(|ordering| compare_holds(*op, ordering)),
            Predicate::And(items) => {
                let mut unknown = false;
                for item in items.iter() {
                    match item.eval(row, params) {
                        Some(false) => return Some(false),
                        None => unknown = true,
                        Some(true) => {}
                    }
                }
                if unknown {
                    None
                } else {
                    Some(true)
                }
            }
            Predicate::Or(items) => {
                let mut unknown = false;
                for item in items.iter() {
                    match item.eval(row, params) {
                        Some(true) => return Some(true),
                        None => unknown = true,
                        Some(false) => {}
                    }
                }
                if unknown {
                    None
                } else {
                    Some(false)
                }
            }
            Predicate::Not(inner) => inner.eval(row, params).map(|value| !value),
            Predicate::In {
                operand,
                items,
                has_null,
                negated,
            } => {
                let value = operand.value(row, params);
                let found = if items.is_empty() && !has_null {
                    // `x IN ()` is FALSE even for a NULL x.
                    Some(false)
                } else if value.is_null() {
                    None
                } else if items
                    .binary_search_by(|item| item.sql_cmp(value).unwrap_or(Ordering::Less))
                    .is_ok()
                {
                    Some(true)
                } else if *has_null {
                    None
                } else {
                    Some(false)
                };
                found.map(|found| found != *negated)
            }
            Predicate::IsNull { operand, negated } => {
                Some(operand.value(row, params).is_null() != *negated)
            }
            Predicate::Between {
                operand,
                low,
                high,
                negated,
            } => {
                let value = operand.value(row, params);
                let above_low = value
                    .sql_cmp(low.value(row, params))
                    .map(|ordering| ordering != Ordering::Less);
                let below_high = value
                    .sql_cmp(high.value(row, params))
                    .map(|ordering| ordering != Ordering::Greater);
                let inside = match (above_low, below_high) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
                inside.map(|inside| inside != *negated)
            }
            Predicate::Like {
                operand,
                pattern,
                negated,
            } => with_text(operand.value(row, params), |text| {
                pattern.matches(text) != *negated
            }),
            Predicate::Truth(operand) => truth(operand.value(row, params)),
            Predicate::Constant(value) => *value,
        }
    }

    /// True when the filter holds (is TRUE, not FALSE or UNKNOWN) for the row.
    #[inline]
    pub(crate) fn matches(&self, row: &Row, params: &[Value]) -> bool {
        self.eval(row, params) == Some(true)
    }

    /// The column pinned to the fewest constants through a top-level AND, if any.
    pub(crate) fn pin(&self) -> Option<Pin> {
        let mut best: Option<Pin> = None;
        let mut consider = |candidate: Pin| {
            if best
                .as_ref()
                .is_none_or(|current| candidate.values.len() < current.values.len())
            {
                best = Some(candidate);
            }
        };
        match self {
            Predicate::And(items) => items
                .iter()
                .filter_map(Predicate::own_pin)
                .for_each(&mut consider),
            other => other.own_pin().into_iter().for_each(&mut consider),
        }
        best
    }

    fn own_pin(&self) -> Option<Pin> {
        match self {
            Predicate::Compare {
                op: CompareOp::Eq,
                left,
                right,
            } => match (left, right) {
                (Operand::Column(column), Operand::Literal(value))
                | (Operand::Literal(value), Operand::Column(column))
                    if !value.is_null() =>
                {
                    Some(Pin {
                        column: *column,
                        values: PinValues::Literals(vec![value.clone()]),
                    })
                }
                (Operand::Column(column), Operand::Param(index))
                | (Operand::Param(index), Operand::Column(column)) => Some(Pin {
                    column: *column,
                    values: PinValues::Param(*index),
                }),
                _ => None,
            },
            Predicate::In {
                operand: Operand::Column(column),
                items,
                negated: false,
                ..
            } if !items.is_empty() => Some(Pin {
                column: *column,
                values: PinValues::Literals(items.to_vec()),
            }),
            Predicate::And(items) => items
                .iter()
                .filter_map(Predicate::own_pin)
                .min_by_key(|pin| pin.values.len()),
            _ => None,
        }
    }
}

fn compare_holds(op: CompareOp, ordering: Ordering) -> bool {
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::NotEq => ordering != Ordering::Equal,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::LtEq => ordering != Ordering::Greater,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::GtEq => ordering != Ordering::Less,
    }
}

struct Compiler<'a> {
    schema: &'a TableSchema,
    limits: &'a FilterLimits,
    parameterize: bool,
    next_param: Cell<u16>,
}

impl Compiler<'_> {
    /// An operand that, in a template, turns a constant into the next parameter.
    fn compared(&self, expr: &Expr) -> Result<Operand, LiveError> {
        match expr {
            Expr::Literal(_) if self.parameterize => {
                let index = self.next_param.get();
                let next = index.checked_add(1).ok_or_else(|| {
                    LiveError::InvalidFilter(format!(
                        "a filter may compare at most {} constants",
                        u16::MAX
                    ))
                })?;
                self.next_param.set(next);
                Ok(Operand::Param(index))
            }
            other => self.operand(other),
        }
    }

    fn operand(&self, expr: &Expr) -> Result<Operand, LiveError> {
        match expr {
            Expr::Column(name) => {
                let position =
                    self.schema
                        .column_position(name)
                        .ok_or_else(|| LiveError::UnknownColumn {
                            table: self.schema.table_id.clone(),
                            column: name.to_string(),
                        })?;
                Ok(Operand::Column(
                    u16::try_from(position).expect("schemas hold at most u16::MAX columns"),
                ))
            }
            Expr::Literal(value) => Ok(Operand::Literal(value.clone())),
            other => Err(LiveError::InvalidFilter(format!(
                "an operand must be a column or a literal, not {other}"
            ))),
        }
    }

    fn predicate(&self, expr: &Expr) -> Result<Predicate, LiveError> {
        Ok(match expr {
            Expr::Column(_) | Expr::Literal(_) => Predicate::Truth(self.operand(expr)?),
            Expr::Compare { op, left, right } => Predicate::Compare {
                op: *op,
                left: self.compared(left)?,
                right: self.compared(right)?,
            },
            Expr::And(items) => Predicate::And(self.predicates(items)?),
            Expr::Or(items) => Predicate::Or(self.predicates(items)?),
            Expr::Not(inner) => Predicate::Not(Box::new(self.predicate(inner)?)),
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                if list.len() > self.limits.max_in_list {
                    return Err(LiveError::InListTooLong {
                        len: list.len(),
                        max: self.limits.max_in_list,
                    });
                }
                let mut items = Vec::with_capacity(list.len());
                let mut has_null = false;
                for item in list {
                    match item {
                        Expr::Literal(Value::Null) => has_null = true,
                        Expr::Literal(value) => items.push(value.clone()),
                        other => {
                            return Err(LiveError::InvalidFilter(format!(
                                "IN list items must be literals, not {other}"
                            )))
                        }
                    }
                }
                items.sort_by(|a, b| a.sql_cmp(b).unwrap_or(Ordering::Equal));
                Predicate::In {
                    operand: self.operand(expr)?,
                    items: items.into_boxed_slice(),
                    has_null,
                    negated: *negated,
                }
            }
            Expr::IsNull { expr, negated } => Predicate::IsNull {
                operand: self.operand(expr)?,
                negated: *negated,
            },
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => Predicate::Between {
                operand: self.compared(expr)?,
                low: self.compared(low)?,
                high: self.compared(high)?,
                negated: *negated,
            },
            Expr::Like {
                expr,
                pattern,
                escape,
                case_insensitive,
                negated,
            } => {
                let operand = self.operand(expr)?;
                let Some(pattern_text) = self.pattern_text(pattern, "LIKE")? else {
                    return Ok(Predicate::Constant(None));
                };
                Predicate::Like {
                    operand,
                    pattern: LikePattern::compile(&pattern_text, *escape, *case_insensitive),
                    negated: *negated,
                }
            }
            Expr::Glob {
                expr,
                pattern,
                negated,
            } => {
                let operand = self.operand(expr)?;
                let Some(pattern_text) = self.pattern_text(pattern, "GLOB")? else {
                    return Ok(Predicate::Constant(None));
                };
                Predicate::Like {
                    operand,
                    pattern: LikePattern::compile_glob(&pattern_text),
                    negated: *negated,
                }
            }
        })
    }

    /// A LIKE or GLOB pattern's text (a number reads as SQLite writes it), within the
    /// pattern length limit; `None` for a NULL pattern, which makes the test NULL.
    fn pattern_text(&self, pattern: &Expr, keyword: &str) -> Result<Option<String>, LiveError> {
        let text = match pattern {
            Expr::Literal(Value::Null) => return Ok(None),
            Expr::Literal(value) => with_text(value, str::to_owned).unwrap_or_default(),
            other => {
                return Err(LiveError::InvalidFilter(format!(
                    "a {keyword} pattern must be a literal, not {other}"
                )))
            }
        };
        if text.len() > self.limits.max_like_pattern {
            return Err(LiveError::LikePatternTooLong {
                len: text.len(),
                max: self.limits.max_like_pattern,
            });
        }
        Ok(Some(text))
    }

    fn predicates(&self, items: &[Expr]) -> Result<Box<[Predicate]>, LiveError> {
        items.iter().map(|item| self.predicate(item)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ids::TableId;
    use crate::types::schema::TableScope;

    fn schema() -> TableSchema {
        TableSchema::new(
            TableId::new("app", "t"),
            TableScope::Shared,
            ["a", "b", "s"],
        )
    }

    fn compile(expr: Expr) -> Predicate {
        Predicate::compile(&expr, &schema(), &FilterLimits::default()).unwrap()
    }

    fn row(a: impl Into<Value>, b: impl Into<Value>, s: impl Into<Value>) -> Row {
        Row::new(vec![a.into(), b.into(), s.into()])
    }

    #[test]
    fn three_valued_logic() {
        let a_is_1 = || Expr::col("a").eq(Expr::lit(1));
        let null_row = row(Value::Null, 2, "x");
        assert_eq!(compile(a_is_1()).eval(&null_row, &[]), None);
        assert_eq!(compile(a_is_1().not()).eval(&null_row, &[]), None);
        assert_eq!(
            compile(a_is_1().or(Expr::col("b").eq(Expr::lit(2)))).eval(&null_row, &[]),
            Some(true)
        );
        assert_eq!(
            compile(a_is_1().and(Expr::col("b").eq(Expr::lit(3)))).eval(&null_row, &[]),
            Some(false)
        );
    }

    #[test]
    fn in_lists_follow_sql() {
        let in_with_null = Expr::InList {
            expr: Box::new(Expr::col("a")),
            list: vec![Expr::lit(1), Expr::lit(Value::Null)],
            negated: false,
        };
        let filter = compile(in_with_null);
        assert_eq!(filter.eval(&row(1, 0, ""), &[]), Some(true));
        assert_eq!(filter.eval(&row(2, 0, ""), &[]), None);
        let empty = Expr::InList {
            expr: Box::new(Expr::col("a")),
            list: vec![],
            negated: false,
        };
        assert_eq!(
            compile(empty).eval(&row(Value::Null, 0, ""), &[]),
            Some(false)
        );
        assert!(compile(Expr::col("a").in_list([7.0, 3.0])).matches(&row(7, 0, ""), &[]));
    }

    #[test]
    fn between_and_like() {
        let between = compile(Expr::col("a").between(Expr::lit(1), Expr::col("b")));
        assert_eq!(between.eval(&row(1, 5, ""), &[]), Some(true));
        assert_eq!(between.eval(&row(6, 5, ""), &[]), Some(false));
        assert_eq!(between.eval(&row(0, Value::Null, ""), &[]), Some(false));
        assert_eq!(between.eval(&row(2, Value::Null, ""), &[]), None);
        let like = compile(Expr::col("s").like("he%o"));
        assert!(like.matches(&row(0, 0, "hello"), &[]));
        assert!(!like.matches(&row(0, 0, "Hello"), &[]));
        let numeric_like = compile(Expr::col("a").like("1_"));
        assert!(numeric_like.matches(&row(12, 0, ""), &[]));
    }

    #[test]
    fn unknown_columns_and_limits_are_typed_errors() {
        let limits = FilterLimits {
            max_depth: 3,
            max_nodes: 5,
            max_in_list: 2,
            max_like_pattern: 4,
        };
        let compile_with = |expr: Expr| Predicate::compile(&expr, &schema(), &limits);
        assert!(matches!(
            compile_with(Expr::col("zz").eq(Expr::lit(1))),
            Err(LiveError::UnknownColumn { .. })
        ));
        assert!(matches!(
            compile_with(Expr::col("a").in_list([1, 2, 3])),
            Err(LiveError::InListTooLong { len: 3, max: 2 })
        ));
        assert!(matches!(
            compile_with(Expr::col("s").like("abcde")),
            Err(LiveError::LikePatternTooLong { len: 5, max: 4 })
        ));
        assert!(matches!(
            compile_with(Expr::col("a").eq(Expr::lit(1)).not().not()),
            Err(LiveError::FilterTooDeep { depth: 4, max: 3 })
        ));
        assert!(matches!(
            compile_with(
                Expr::col("a")
                    .eq(Expr::lit(1))
                    .and(Expr::col("b").eq(Expr::lit(2)))
            ),
            Err(LiveError::FilterTooLarge { nodes: 6, max: 5 })
        ));
    }

    #[test]
    fn pins_come_from_top_level_and() {
        let pinned = compile(
            Expr::col("b")
                .gt(Expr::lit(3))
                .and(Expr::col("a").in_list([1, 2]))
                .and(Expr::col("s").eq(Expr::lit("x"))),
        );
        let pin = pinned.pin().unwrap();
        assert_eq!(pin.column, 2);
        assert_eq!(pin.values, PinValues::Literals(vec![Value::text("x")]));
        assert!(compile(
            Expr::col("a")
                .eq(Expr::lit(1))
                .or(Expr::col("b").eq(Expr::lit(2)))
        )
        .pin()
        .is_none());
        assert!(compile(Expr::col("a").eq(Expr::lit(Value::Null)))
            .pin()
            .is_none());
    }

    #[test]
    fn truthiness_reads_numbers() {
        let filter = compile(Expr::col("s"));
        assert_eq!(filter.eval(&row(0, 0, "12abc"), &[]), Some(true));
        assert_eq!(filter.eval(&row(0, 0, "abc"), &[]), Some(false));
        assert_eq!(filter.eval(&row(0, 0, " 0.0e5x"), &[]), Some(false));
        assert_eq!(filter.eval(&row(0, 0, Value::Null), &[]), None);
    }
}
