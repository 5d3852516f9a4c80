//! The bounded caches that let identical subscription queries share their work:
//!
//! - the parse cache maps subscription SQL text to its parsed [`QuerySpec`], so subscribing
//!   again with the same text skips the parser;
//! - the compiled-query cache maps (table, template hash) to the [`CompiledQuery`] built
//!   for the table's current schema, so every subscription with the same query template
//!   (differing at most in the constants compared against) on the same table shares one
//!   compiled filter and projection.
//!
//! A compiled entry is used only if it was built against the very schema the table has now
//! (compared by pointer) and for the same template (checked with
//! [`same_template`](QuerySpec::same_template), so a hash collision is never a hit); a
//! table re-registered with a new schema (ALTER TABLE) therefore recompiles, and the new
//! version replaces the old entry. The compiled query holds nothing user-specific (the
//! owner of a subscription on a user-scoped table lives on the subscription, the constants
//! on its parameters), so users subscribing with the same template share it too.
//!
//! Both maps hold at most `capacity` entries; when one is full, the least recently used
//! quarter is evicted (amortized O(1) per insert). Only subscribe and schema changes use the
//! caches; publishing never does.

use std::collections::HashMap;

use crate::error::LiveError;
use crate::query::query_text::WrittenSql;
use crate::query::{CompiledQuery, QuerySpec};
use crate::sync::{lock, DataArc, Mutex};
use crate::types::ids::TableKey;
use crate::types::schema::TableSchema;

/// Counters of the query caches, for operators and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryCacheStats {
    /// Entries in the parse cache.
    pub parsed_entries: usize,
    /// Subscription SQL found already parsed.
    pub parse_hits: u64,
    /// Subscription SQL parsed (successfully) because the cache did not hold it.
    pub parse_misses: u64,
    /// Entries in the compiled-query cache.
    pub compiled_entries: usize,
    /// Subscriptions that reused an already compiled query.
    pub compile_hits: u64,
    /// Queries compiled (successfully) because none could be reused.
    pub compile_misses: u64,
    /// Entries evicted from either cache because it was full.
    pub evictions: u64,
}

struct Entry<T> {
    value: T,
    last_used: u64,
}

/// A map that keeps at most `capacity` entries, evicting the least recently used quarter
/// when full.
struct Bounded<K, T> {
    /// ahash, randomly keyed: the keys are client-chosen query texts and template hashes.
    entries: HashMap<K, Entry<T>, ahash::RandomState>,
}

impl<K: std::hash::Hash + Eq + Clone, T> Bounded<K, T> {
    fn new() -> Self {
        Self {
            entries: HashMap::default(),
        }
    }

    fn get(&mut self, key: &K, now: u64) -> Option<&T> {
        let entry = self.entries.get_mut(key)?;
        entry.last_used = now;
        Some(&entry.value)
    }

    /// Inserts (or replaces) an entry; returns how many entries were evicted for room.
    fn insert(&mut self, key: K, value: T, now: u64, capacity: usize) -> u64 {
        let mut evicted = 0;
        if !self.entries.contains_key(&key) && self.entries.len() >= capacity {
            let mut stamps: Vec<u64> = self.entries.values().map(|entry| entry.last_used).collect();
            let cut = (capacity / 4).max(1).min(stamps.len()) - 1;
            let (_, threshold, _) = stamps.select_nth_unstable(cut);
            let threshold = *threshold;
            let before = self.entries.len();
            self.entries.retain(|_, entry| entry.last_used > threshold);
            evicted = (before - self.entries.len()) as u64;
        }
        self.entries.insert(
            key,
            Entry {
                value,
                last_used: now,
            },
        );
        evicted
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

struct State {
    parsed: Bounded<WrittenSql, QuerySpec>,
    /// Keyed by table and template hash; a hit is confirmed by comparing templates.
    compiled: Bounded<(TableKey, u64), DataArc<CompiledQuery>>,
    /// A logical clock for recency.
    now: u64,
    stats: QueryCacheStats,
}

/// The parse and compiled-query caches of one manager.
pub(crate) struct QueryCache {
    capacity: usize,
    /// Keys the template hashes (randomly, so clients cannot aim queries at one entry).
    template_hasher: ahash::RandomState,
    state: Mutex<State>,
}

impl QueryCache {
    /// Caches holding at most `capacity` entries each.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            template_hasher: ahash::RandomState::new(),
            state: Mutex::new(State {
                parsed: Bounded::new(),
                compiled: Bounded::new(),
                now: 0,
                stats: QueryCacheStats::default(),
            }),
        }
    }

    /// The spec parsed from `sql`, from the cache or by `parse` (whose result is cached when
    /// it succeeds; a refusal is not cached).
    pub(crate) fn parsed(
        &self,
        sql: &str,
        parse: impl FnOnce() -> Result<QuerySpec, LiveError>,
    ) -> Result<(QuerySpec, WrittenSql), LiveError> {
        {
            let mut state = lock(&self.state);
            state.now += 1;
            let now = state.now;
            if let Some((text, spec)) = state
                .parsed
                .entries
                .get_key_value(sql)
                .map(|(text, entry)| (text.clone(), entry.value.clone()))
            {
                state.parsed.get(&text, now);
                state.stats.parse_hits += 1;
                return Ok((spec, text));
            }
        }
        // Parse outside the lock: parsing is the expensive part.
        let spec = parse()?;
        let text = WrittenSql::new(sql);
        let mut state = lock(&self.state);
        state.now += 1;
        let now = state.now;
        state.stats.parse_misses += 1;
        let evicted = state
            .parsed
            .insert(text.clone(), spec.clone(), now, self.capacity);
        state.stats.evictions += evicted;
        Ok((spec, text))
    }

    /// The compiled template for `spec` on a table whose current schema is `schema`: the
    /// cached one if it was compiled for this schema and the same template, otherwise the
    /// result of `compile`, which is then cached.
    pub(crate) fn compiled(
        &self,
        table_key: TableKey,
        schema: &DataArc<TableSchema>,
        spec: QuerySpec,
        compile: impl FnOnce(QuerySpec) -> Result<DataArc<CompiledQuery>, LiveError>,
    ) -> Result<DataArc<CompiledQuery>, LiveError> {
        let key = (table_key, spec.template_hash(&self.template_hasher));
        {
            let mut state = lock(&self.state);
            state.now += 1;
            let now = state.now;
            let reusable = state
                .compiled
                .get(&key, now)
                .filter(|query| {
                    DataArc::ptr_eq(&query.schema, schema) && query.spec.same_template(&spec)
                })
                .cloned();
            if let Some(query) = reusable {
                state.stats.compile_hits += 1;
                return Ok(query);
            }
        }
        let query = compile(spec)?;
        let mut state = lock(&self.state);
        state.now += 1;
        let now = state.now;
        state.stats.compile_misses += 1;
        let evicted = state
            .compiled
            .insert(key, query.clone(), now, self.capacity);
        state.stats.evictions += evicted;
        Ok(query)
    }

    /// The counters and sizes now.
    pub(crate) fn stats(&self) -> QueryCacheStats {
        let state = lock(&self.state);
        QueryCacheStats {
            parsed_entries: state.parsed.len(),
            compiled_entries: state.compiled.len(),
            ..state.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_map_evicts_the_least_recently_used_quarter() {
        let mut map: Bounded<u32, u32> = Bounded::new();
        for key in 0..8 {
            assert_eq!(map.insert(key, key, u64::from(key), 8), 0);
        }
        // Touch 0 and 1 so they are the most recent.
        map.get(&0, 100);
        map.get(&1, 101);
        assert_eq!(map.insert(8, 8, 102, 8), 2);
        assert_eq!(map.len(), 7);
        assert!(map.get(&0, 103).is_some());
        assert!(map.get(&1, 104).is_some());
        assert!(map.get(&2, 105).is_none());
        assert!(map.get(&3, 106).is_none());
        // Replacing an existing key never evicts.
        assert_eq!(map.insert(8, 80, 107, 7), 0);
    }
}
