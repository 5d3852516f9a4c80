//! The enter/leave rule: what a change is to a subscription whose filter ran on its old
//! and new rows (insert when the row entered, delete when it left, update when it stayed).

use crate::query::filter::Predicate;
use crate::query::Params;
use crate::types::change::ChangeNotification;
use crate::types::change::ChangeType;
use crate::types::value::Value;

/// How a change looks to one filter: the change type delivered, if any.
#[inline]
pub(crate) fn match_change(
    filter: Option<&Predicate>,
    params: &Params,
    change: &ChangeNotification,
    evaluated: &mut usize,
) -> Option<ChangeType> {
    let Some(filter) = filter else {
        return Some(change.change_type);
    };
    // Read only past the filter test: an unfiltered subscription's fan-out never loads
    // its parameters (they may sit on another cache line of its core).
    let params: &[Value] = params;
    match change.change_type {
        ChangeType::Insert | ChangeType::Delete => {
            *evaluated += 1;
            filter
                .matches(&change.row, params)
                .then_some(change.change_type)
        }
        ChangeType::Update => {
            *evaluated += 2;
            let old_row = change
                .old_row
                .as_ref()
                .expect("validated: updates carry the old row");
            match (
                filter.matches(old_row, params),
                filter.matches(&change.row, params),
            ) {
                (true, true) => Some(ChangeType::Update),
                (false, true) => Some(ChangeType::Insert),
                (true, false) => Some(ChangeType::Delete),
                (false, false) => None,
            }
        }
    }
}
