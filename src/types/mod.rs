//! Plain data: ids, values and rows, table schemas, changes and commits, how a subscription
//! ended, and the JSON mapping of values. Imports nothing above `sync`.

pub(crate) mod change;
pub(crate) mod ending;
pub(crate) mod ids;
pub(crate) mod json;
pub(crate) mod schema;
pub(crate) mod seen_keys;
pub(crate) mod shared_commit;
pub(crate) mod value;
