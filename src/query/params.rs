//! A subscription's own constants for its shared compiled query's parameters.

use std::ops::Deref;

use crate::types::value::Value;

/// A subscription's own constants, for its shared compiled query's parameters, in the order
/// the query compares against them. Most subscriptions have exactly one (an equality
/// filter's), held inline; none or several are one boxed slice (none allocates nothing).
/// Every subscription holds one, so its size counts: 24 bytes, where a `SmallVec` with room
/// for one value inline takes 32.
#[derive(Clone, Debug)]
pub(crate) enum Params {
    /// A single constant.
    One(Value),
    /// No constant, or more than one.
    Other(Box<[Value]>),
}

const _: () = assert!(std::mem::size_of::<Params>() == std::mem::size_of::<Value>());

impl Default for Params {
    fn default() -> Self {
        Params::Other(Box::default())
    }
}

/// Compared as the slices they hold: one value is equal whichever way it is held.
impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Deref for Params {
    type Target = [Value];

    #[inline]
    fn deref(&self) -> &[Value] {
        match self {
            Params::One(value) => std::slice::from_ref(value),
            Params::Other(values) => values,
        }
    }
}

impl FromIterator<Value> for Params {
    fn from_iter<I: IntoIterator<Item = Value>>(values: I) -> Self {
        let mut values = values.into_iter();
        match (values.next(), values.next()) {
            (None, _) => Params::default(),
            (Some(only), None) => Params::One(only),
            (Some(first), Some(second)) => {
                let all: Vec<Value> = [first, second].into_iter().chain(values).collect();
                Params::Other(all.into_boxed_slice())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Params;
    use crate::types::value::Value;

    #[test]
    fn params_keep_their_values_in_order_whatever_their_count() {
        for count in 0..4i64 {
            let params: Params = (0..count).map(Value::Int).collect();
            let expected: Vec<Value> = (0..count).map(Value::Int).collect();
            assert_eq!(&*params, expected.as_slice(), "{count} values");
            assert_eq!(
                matches!(params, Params::One(_)),
                count == 1,
                "{count} values"
            );
        }
    }
}
