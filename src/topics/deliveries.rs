//! How many times a group has handed out each message of a partition it has not committed:
//! the delivery count that max-deliver is checked against. Every hand-out counts (a first
//! delivery, one after a nack, one after a lease expired), since a consumer that crashes on
//! a message never gets to nack it; but a nack takes back the count of the messages handed
//! out after the one it names, which a consumer dropping its batch on a nack gave up
//! without trying them, so a poison message's nacks never push its batch-mates towards
//! the dead-letter topic (a message failing behind another failing one may then be tried
//! more than max-deliver times; the one at the head never is).
//!
//! Offsets are handed out in contiguous ranges, so the counts are kept as runs of equal
//! counts, `start..end`: a rewind adds at most two runs, and a commit drops the runs below
//! it. A message dead-lettered without being committed is marked, so a later hand-out of
//! its range skips it instead of sending it again.

/// The count of a message sent to the dead-letter topic but not yet committed past.
const DEAD: u32 = u32::MAX;

/// Runs kept at most; past this the two oldest merge, keeping the lower count (a message
/// may then be delivered more than max-deliver times, never dead-lettered early).
const MAX_RUNS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    start: u64,
    end: u64,
    count: u32,
}

/// What the first message of a range at or past max-deliver is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Handed out `deliveries` times: to be dead-lettered.
    Reached { offset: u64, deliveries: u32 },
    /// Already dead-lettered: to be skipped.
    Dead { offset: u64 },
}

/// The delivery counts of one partition of a group; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    runs: Vec<Run>,
}

impl Deliveries {
    /// How many times the message at `offset` was handed out (0 if never, or committed).
    pub(crate) fn count(&self, offset: u64) -> u32 {
        self.runs
            .iter()
            .find(|run| run.start <= offset && offset < run.end)
            .map_or(0, |run| run.count)
    }

    /// True if the message at `offset` was dead-lettered and not yet committed past.
    pub(crate) fn is_dead(&self, offset: u64) -> bool {
        self.count(offset) == DEAD
    }

    /// The first message of `from..to` handed out `max` times or more, or dead-lettered.
    pub(crate) fn first_at_limit(&self, from: u64, to: u64, max: Option<u32>) -> Option<Limit> {
        self.runs
            .iter()
            .filter(|run| run.end > from && run.start < to)
            .find(|run| run.count == DEAD || max.is_some_and(|max| run.count >= max))
            .map(|run| {
                let offset = run.start.max(from);
                if run.count == DEAD {
                    Limit::Dead { offset }
                } else {
                    Limit::Reached {
                        offset,
                        deliveries: run.count,
                    }
                }
            })
    }

    /// Counts one more delivery of every message of `from..to`.
    pub(crate) fn record(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        let bump = |count: u32| {
            if count == DEAD {
                DEAD
            } else {
                count.saturating_add(1)
            }
        };
        let mut out = Vec::with_capacity(self.runs.len() + 2);
        // The next offset of from..to not yet placed.
        let mut cursor = from;
        for run in &self.runs {
            if run.end <= from || run.start >= to {
                if run.start >= to && cursor < to {
                    out.push(Run {
                        start: cursor,
                        end: to,
                        count: 1,
                    });
                    cursor = to;
                }
                out.push(*run);
                continue;
            }
            if run.start < from {
                out.push(Run { end: from, ..*run });
            }
            if cursor < run.start {
                out.push(Run {
                    start: cursor,
                    end: run.start,
                    count: 1,
                });
            }
            let end = run.end.min(to);
            out.push(Run {
                start: run.start.max(from),
                end,
                count: bump(run.count),
            });
            cursor = end;
            if run.end > to {
                out.push(Run { start: to, ..*run });
            }
        }
        if cursor < to {
            out.push(Run {
                start: cursor,
                end: to,
                count: 1,
            });
        }
        self.runs = merge(out);
    }

    /// Takes back one delivery of every message of `from..to` (a nack's rewind: they come
    /// again, untried); a dead-lettered one stays marked.
    pub(crate) fn take_back(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        let mut out = Vec::with_capacity(self.runs.len() + 2);
        for run in &self.runs {
            if run.end <= from || run.start >= to || run.count == DEAD {
                out.push(*run);
                continue;
            }
            if run.start < from {
                out.push(Run { end: from, ..*run });
            }
            if run.count > 1 {
                out.push(Run {
                    start: run.start.max(from),
                    end: run.end.min(to),
                    count: run.count - 1,
                });
            }
            if run.end > to {
                out.push(Run { start: to, ..*run });
            }
        }
        self.runs = merge(out);
    }

    /// Marks the message at `offset` dead-lettered (counted or not: a message without a
    /// count gets a run of its own).
    pub(crate) fn mark_dead(&mut self, offset: u64) {
        let Some(at) = self
            .runs
            .iter()
            .position(|run| run.start <= offset && offset < run.end)
        else {
            let at = self.runs.partition_point(|run| run.end <= offset);
            self.runs.insert(
                at,
                Run {
                    start: offset,
                    end: offset + 1,
                    count: DEAD,
                },
            );
            self.runs = merge(std::mem::take(&mut self.runs));
            return;
        };
        let run = self.runs[at];
        let mut pieces = Vec::with_capacity(3);
        if run.start < offset {
            pieces.push(Run { end: offset, ..run });
        }
        pieces.push(Run {
            start: offset,
            end: offset + 1,
            count: DEAD,
        });
        if offset + 1 < run.end {
            pieces.push(Run {
                start: offset + 1,
                ..run
            });
        }
        self.runs.splice(at..=at, pieces);
        self.runs = merge(std::mem::take(&mut self.runs));
    }

    /// Forgets the counts below `offset` (committed).
    pub(crate) fn forget_below(&mut self, offset: u64) {
        self.runs.retain(|run| run.end > offset);
        if let Some(first) = self.runs.first_mut() {
            first.start = first.start.max(offset);
        }
    }

    /// Forgets every count (the partition was repositioned).
    pub(crate) fn clear(&mut self) {
        self.runs.clear();
    }
}

/// Joins touching runs of equal counts, and bounds the number of runs.
fn merge(runs: Vec<Run>) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::with_capacity(runs.len());
    for run in runs {
        match out.last_mut() {
            Some(last) if last.end == run.start && last.count == run.count => last.end = run.end,
            _ => out.push(run),
        }
    }
    while out.len() > MAX_RUNS {
        // Never merges a dead-lettered message into a live run: the oldest two live runs.
        let Some(at) =
            (0..out.len() - 1).find(|&at| out[at].count != DEAD && out[at + 1].count != DEAD)
        else {
            break;
        };
        let next = out.remove(at + 1);
        // Runs apart (a take-back left messages uncounted between them) merge at zero:
        // the messages between were not counted, and none may be dead-lettered early.
        let count = if out[at].end == next.start {
            out[at].count.min(next.count)
        } else {
            0
        };
        out[at].end = next.end;
        out[at].count = count;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(deliveries: &Deliveries, range: std::ops::Range<u64>) -> Vec<u32> {
        range.map(|offset| deliveries.count(offset)).collect()
    }

    #[test]
    fn runs_merged_past_the_limit_across_a_hole_count_nothing() {
        let mut d = Deliveries::default();
        d.record(0, 1);
        d.record(0, 1);
        for _ in 0..3 {
            d.record(2, 3);
        }
        // Runs with holes between them (as take-backs leave), past MAX_RUNS.
        for run in 0..MAX_RUNS as u64 {
            d.record(10 + 2 * run, 11 + 2 * run);
        }
        assert!(d.runs.len() <= MAX_RUNS);
        // Offset 1 was never handed out: merged or not, it counts nothing.
        assert_eq!(d.count(1), 0);
        assert_eq!(d.first_at_limit(1, 2, Some(1)), None);
    }

    #[test]
    fn a_take_back_undoes_one_hand_out_and_leaves_dead_letters_marked() {
        let mut d = Deliveries::default();
        d.record(0, 6);
        d.record(2, 6);
        d.mark_dead(4);
        assert_eq!(counts(&d, 0..7), [1, 1, 2, 2, DEAD, 2, 0]);
        d.take_back(1, 6);
        assert_eq!(counts(&d, 0..7), [1, 0, 1, 1, DEAD, 1, 0]);
        d.take_back(0, 7);
        assert_eq!(counts(&d, 0..7), [0, 0, 0, 0, DEAD, 0, 0]);
        d.take_back(3, 3);
        assert_eq!(
            d.first_at_limit(0, 7, Some(1)),
            Some(Limit::Dead { offset: 4 })
        );
    }

    #[test]
    fn every_hand_out_counts_and_commits_forget() {
        let mut d = Deliveries::default();
        d.record(0, 5);
        assert_eq!(counts(&d, 0..6), [1, 1, 1, 1, 1, 0]);
        // A nack at 2 hands 2.. out again; an expiry hands 0..3 out again.
        d.record(2, 6);
        d.record(0, 3);
        assert_eq!(counts(&d, 0..7), [2, 2, 3, 2, 2, 1, 0]);
        assert_eq!(
            d.first_at_limit(0, 7, Some(3)),
            Some(Limit::Reached {
                offset: 2,
                deliveries: 3
            })
        );
        assert_eq!(d.first_at_limit(3, 7, Some(3)), None);
        assert_eq!(d.first_at_limit(0, 7, None), None);
        d.mark_dead(2);
        assert_eq!(
            d.first_at_limit(0, 7, None),
            Some(Limit::Dead { offset: 2 })
        );
        d.record(0, 6);
        assert_eq!(counts(&d, 0..7), [3, 3, DEAD, 3, 3, 2, 0]);

        d.forget_below(3);
        assert_eq!(counts(&d, 0..7), [0, 0, 0, 3, 3, 2, 0]);
        // A gap (a range handed out past a skipped one) counts from 1.
        d.record(8, 10);
        assert_eq!(counts(&d, 5..11), [2, 0, 0, 1, 1, 0]);
        d.clear();
        assert_eq!(counts(&d, 0..11), [0; 11]);
    }

    #[test]
    fn a_message_never_counted_can_be_marked_dead() {
        let mut d = Deliveries::default();
        d.record(0, 2);
        d.record(5, 6);
        d.mark_dead(3);
        assert_eq!(counts(&d, 0..7), [1, 1, 0, DEAD, 0, 1, 0]);
        assert_eq!(
            d.first_at_limit(2, 7, None),
            Some(Limit::Dead { offset: 3 })
        );
        // Its hand-out skips it and counts the rest.
        d.record(0, 6);
        assert_eq!(counts(&d, 0..7), [2, 2, 1, DEAD, 1, 2, 0]);
        d.mark_dead(5);
        assert_eq!(counts(&d, 0..7), [2, 2, 1, DEAD, 1, DEAD, 0]);
    }

    #[test]
    fn runs_stay_bounded_and_never_count_more_than_happened() {
        let mut d = Deliveries::default();
        d.record(0, 10_000);
        for offset in (0..10_000).step_by(2) {
            d.record(offset, offset + 1);
        }
        assert!(d.runs.len() <= MAX_RUNS);
        for offset in 0..10_000 {
            assert!(d.count(offset) <= if offset % 2 == 0 { 2 } else { 1 });
            assert!(d.count(offset) >= 1);
        }
    }
}
