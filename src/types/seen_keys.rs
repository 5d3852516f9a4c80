//! Keys met in order, each with the place it was first met: the keys a publish met, the
//! JSON pieces a commit rendered.

use smallvec::SmallVec;

/// Keys met so far, each with the place it was first met: searched in order while there
/// are few (no allocation up to eight), through a hash index beyond, so meeting n keys
/// costs O(n) however large n grows.
pub(crate) struct SeenKeys<K> {
    keys: SmallVec<[K; 8]>,
    /// Where each key is in `keys`, once there are too many to search. Made only then:
    /// a keyed hasher's state is drawn from a process-wide counter, a shared line every
    /// publish would otherwise write twice.
    index: Option<std::collections::HashMap<K, usize, ahash::RandomState>>,
}

impl<K> Default for SeenKeys<K> {
    fn default() -> Self {
        Self {
            keys: SmallVec::new(),
            index: None,
        }
    }
}

impl<K: Copy + Eq + std::hash::Hash> SeenKeys<K> {
    /// Where `key` was first met, if it was.
    pub(crate) fn position(&self, key: K) -> Option<usize> {
        match &self.index {
            None => self.keys.iter().position(|seen| *seen == key),
            Some(index) => index.get(&key).copied(),
        }
    }

    /// Where `key` was first met, and whether that is now.
    pub(crate) fn place(&mut self, key: K) -> (usize, bool) {
        if let Some(at) = self.position(key) {
            return (at, false);
        }
        let at = self.keys.len();
        self.keys.push(key);
        if self.keys.spilled() {
            match &mut self.index {
                Some(index) => {
                    index.insert(key, at);
                }
                None => {
                    let index = self.keys.iter().enumerate().map(|(at, key)| (*key, at));
                    self.index = Some(index.collect());
                }
            }
        }
        (at, true)
    }
}

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use super::SeenKeys;

    #[test]
    fn seen_keys_keep_their_first_place_before_and_after_they_are_indexed() {
        let mut seen = SeenKeys::default();
        for round in 0..2 {
            for key in 0..20u64 {
                let (at, new) = seen.place(key * 7);
                assert_eq!(at, key as usize, "round {round}, key {key}");
                assert_eq!(new, round == 0, "round {round}, key {key}");
            }
        }
        assert_eq!(seen.place(1), (20, true), "a new key after indexing");
    }
}
