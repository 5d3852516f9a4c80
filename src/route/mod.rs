//! The routing index: per table, the subscriptions to consider for a row, found by one
//! arc-swap load and a hash lookup per pinned column, over a copy-on-write table.

pub(crate) mod cow_table;
pub(crate) mod index;
