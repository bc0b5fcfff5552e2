//! The buyers of one activity: which users hold a reservation, and how many units each.
//!
//! The Redis module keeps this as its own data type instead of a Redis hash. Claiming a
//! buyer's slot is the per-user limit of every reservation, and with a hash it cost more than
//! the rest of `SECKILL.RESERVE` together: an insert-if-absent is three lookups of the field
//! (exists, find, add), each hashing it and walking a chain of separately allocated entries,
//! plus three allocations (entry, field, value) and the hash's incremental rehash. Here it is
//! one probe of an open-addressing table whose slots hold the user id inline (up to 24 bytes,
//! longer ids spill to the heap), so a new buyer costs one table write and no allocation.
//!
//! A large set is split into [`SHARDS`] tables by hash: a table grows by rehashing all of its
//! entries at once, and a Redis command must not pause the server for the whole set (a Redis
//! hash rehashes incrementally for the same reason). With 256 shards, growing one shard of a
//! million-buyer set moves about 4,000 entries. A small set (most sales: the stock is small)
//! is one table, so an activity costs a few dozen bytes, not 256 empty tables; it is split
//! once, when it reaches [`SPLIT_AT`] buyers.

use compact_str::CompactString;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;
use std::mem::size_of;

/// Number of tables a large set is split into (a power of two).
pub const SHARDS: usize = 256;

/// Buyers at which a one-table set is split into [`SHARDS`] tables.
pub const SPLIT_AT: u64 = 4096;

/// Bytes a user id may have and still be stored inside its slot.
const INLINE: usize = size_of::<CompactString>();

struct Buyer {
    user: CompactString,
    qty: u32,
}

/// `user -> units held`; a user holding nothing has no entry.
pub struct BuyerSet {
    shards: Box<[HashTable<Buyer>]>,
    hasher: DefaultHashBuilder,
    len: u64,
    /// Heap bytes of user ids too long to be stored inline.
    spilled: usize,
}

impl Default for BuyerSet {
    fn default() -> Self {
        Self::new()
    }
}

impl BuyerSet {
    pub fn new() -> Self {
        Self {
            shards: Box::new([HashTable::new()]),
            hasher: DefaultHashBuilder::default(),
            len: 0,
            spilled: 0,
        }
    }

    fn hash(&self, user: &str) -> u64 {
        self.hasher.hash_one(user.as_bytes())
    }

    /// The shard of a hash. Bits 40..47: hashbrown takes a slot's position from the low bits
    /// and its control byte from the top seven, so a shard chosen by either would leave its
    /// table with a single control byte or colliding positions.
    fn shard(&self, hash: u64) -> usize {
        ((hash >> 40) as usize) & (self.shards.len() - 1)
    }

    /// Moves a one-table set's entries into [`SHARDS`] tables (once, at [`SPLIT_AT`]).
    fn split(&mut self) {
        let mut shards: Box<[HashTable<Buyer>]> = (0..SHARDS).map(|_| HashTable::new()).collect();
        let old = std::mem::replace(&mut self.shards, Box::new([]));
        for buyer in old.into_vec().into_iter().flat_map(HashTable::into_iter) {
            let h = self.hash(&buyer.user);
            let idx = ((h >> 40) as usize) & (SHARDS - 1);
            shards[idx].insert_unique(h, buyer, |b| self.hasher.hash_one(b.user.as_bytes()));
        }
        self.shards = shards;
    }

    /// The hash of `user` and its shard, for a write: a one-table set that has reached
    /// [`SPLIT_AT`] is split first.
    fn place(&mut self, user: &str) -> (u64, usize) {
        if self.shards.len() == 1 && self.len >= SPLIT_AT {
            self.split();
        }
        let h = self.hash(user);
        (h, self.shard(h))
    }

    /// Units `user` holds (0 when none).
    pub fn held(&self, user: &str) -> u32 {
        let h = self.hash(user);
        self.shards[self.shard(h)]
            .find(h, |b| b.user == user)
            .map_or(0, |b| b.qty)
    }

    /// Records `user` as holding `qty` units unless the user already holds some; returns
    /// whether it was recorded. `qty` 0 records nothing.
    pub fn insert_new(&mut self, user: &str, qty: u32) -> bool {
        if qty == 0 {
            return false;
        }
        let (h, idx) = self.place(user);
        let hasher = &self.hasher;
        match self.shards[idx].entry(
            h,
            |b| b.user == user,
            |b| hasher.hash_one(b.user.as_bytes()),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                self.spilled += add(slot, user, qty);
                self.len += 1;
                true
            }
        }
    }

    /// Sets the units `user` holds: replaces what the user held, and with 0 removes the user.
    pub fn set(&mut self, user: &str, qty: u32) {
        let (h, idx) = self.place(user);
        let hasher = &self.hasher;
        match self.shards[idx].entry(
            h,
            |b| b.user == user,
            |b| hasher.hash_one(b.user.as_bytes()),
        ) {
            hashbrown::hash_table::Entry::Occupied(entry) if qty == 0 => {
                let (old, _) = entry.remove();
                if old.user.is_heap_allocated() {
                    self.spilled -= old.user.capacity();
                }
                self.len -= 1;
            }
            hashbrown::hash_table::Entry::Occupied(mut entry) => entry.get_mut().qty = qty,
            hashbrown::hash_table::Entry::Vacant(_) if qty == 0 => {}
            hashbrown::hash_table::Entry::Vacant(slot) => {
                self.spilled += add(slot, user, qty);
                self.len += 1;
            }
        }
    }

    /// Number of users holding units.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every `(user, units)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.shards
            .iter()
            .flat_map(|t| t.iter().map(|b| (b.user.as_str(), b.qty)))
    }

    /// Bytes the set occupies: its tables (slots and control bytes) and spilled user ids.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.shards.len() * size_of::<HashTable<Buyer>>()
            + self
                .shards
                .iter()
                .map(HashTable::allocation_size)
                .sum::<usize>()
            + self.spilled
    }

    /// Bytes a user id may have and still be stored inline.
    pub const fn inline_capacity() -> usize {
        INLINE
    }
}

/// Stores a new buyer in its slot; returns the heap bytes its id took (0 when inline).
fn add(slot: hashbrown::hash_table::VacantEntry<'_, Buyer>, user: &str, qty: u32) -> usize {
    let user = CompactString::new(user);
    let spilled = if user.is_heap_allocated() {
        user.capacity()
    } else {
        0
    };
    slot.insert(Buyer { user, qty });
    spilled
}

impl Clone for BuyerSet {
    fn clone(&self) -> Self {
        let mut copy = Self::new();
        for (user, qty) in self.iter() {
            copy.set(user, qty);
        }
        copy
    }
}

impl std::fmt::Debug for BuyerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuyerSet").field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_user_is_recorded_once() {
        let mut s = BuyerSet::new();
        assert!(s.insert_new("alice", 1));
        assert!(!s.insert_new("alice", 2), "second claim refused");
        assert_eq!(s.held("alice"), 1, "first quantity kept");
        assert_eq!(s.held("bob"), 0);
        assert_eq!(s.len(), 1);
        assert!(!s.insert_new("carol", 0), "nothing held is no entry");
        assert_eq!(s.held("carol"), 0);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn set_replaces_and_zero_removes() {
        let mut s = BuyerSet::new();
        s.set("a", 3);
        assert_eq!((s.held("a"), s.len()), (3, 1));
        s.set("a", 2);
        assert_eq!((s.held("a"), s.len()), (2, 1));
        s.set("a", 0);
        assert_eq!((s.held("a"), s.len()), (0, 0));
        s.set("missing", 0);
        assert!(s.is_empty());
        assert!(s.insert_new("a", 1), "a removed user may buy again");
    }

    #[test]
    fn long_ids_spill_and_are_accounted() {
        let mut s = BuyerSet::new();
        let base = s.memory_bytes();
        let long = "u".repeat(64);
        assert!(long.len() > BuyerSet::inline_capacity());
        assert!(s.insert_new(&long, 1));
        assert_eq!(s.held(&long), 1);
        assert!(s.memory_bytes() >= base + 64);
        let with_long = s.memory_bytes();
        s.set(&long, 0);
        assert!(
            s.memory_bytes() <= with_long - 64,
            "spilled bytes given back"
        );
        assert_eq!(s.held(&long), 0);
    }

    #[test]
    fn agrees_with_a_map_over_many_users() {
        let mut s = BuyerSet::new();
        let mut model: HashMap<String, u32> = HashMap::new();
        for i in 0..50_000u32 {
            let user = format!("user:{i}");
            let qty = i % 5;
            match i % 7 {
                0 => {
                    s.set(&user, qty);
                    if qty == 0 {
                        model.remove(&user);
                    } else {
                        model.insert(user, qty);
                    }
                }
                _ => {
                    let fresh = !model.contains_key(&user) && qty > 0;
                    assert_eq!(s.insert_new(&user, qty), fresh);
                    if fresh {
                        model.insert(user, qty);
                    }
                }
            }
        }
        // Remove every third one again.
        for i in (0..50_000u32).step_by(3) {
            let user = format!("user:{i}");
            s.set(&user, 0);
            model.remove(&user);
        }
        assert_eq!(s.len(), model.len() as u64);
        let listed: HashMap<String, u32> = s.iter().map(|(u, q)| (u.to_string(), q)).collect();
        assert_eq!(listed, model);
        for (u, q) in &model {
            assert_eq!(s.held(u), *q);
        }
        let copy = s.clone();
        assert_eq!(copy.len(), s.len());
        assert!(model.iter().all(|(u, q)| copy.held(u) == *q));
    }

    #[test]
    fn users_spread_over_the_shards() {
        let mut s = BuyerSet::new();
        for i in 0..SPLIT_AT {
            s.insert_new(&format!("u{i}"), 1);
        }
        assert_eq!(s.shards.len(), 1, "a small set is one table");
        for i in SPLIT_AT..(SHARDS as u64 * 64) {
            s.insert_new(&format!("u{i}"), 1);
        }
        assert_eq!(s.shards.len(), SHARDS);
        assert!(
            (0..SHARDS as u64 * 64).all(|i| s.held(&format!("u{i}")) == 1),
            "none lost by the split"
        );
        let used = s.shards.iter().filter(|t| !t.is_empty()).count();
        let largest = s.shards.iter().map(HashTable::len).max().unwrap_or(0);
        assert_eq!(used, SHARDS, "every shard has buyers");
        assert!(largest < 64 * 3, "no shard holds a large share: {largest}");
    }
}
