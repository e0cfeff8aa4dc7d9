//! Interned strings for stored events: provider ids, model names, layers, rule names and short
//! error texts repeat on nearly every row, so a row stores a small number instead, and the table
//! `strings` (id → text) holds each text once.
//!
//! A reference ([`put_ref`]) is one varint: `0` is followed by the text itself (too long to
//! intern, or the dictionary is full), `n ≥ 1` names dictionary entry `n - 1`. Entries are never
//! removed or changed, so an id means the same text for the life of the file, and readers can
//! cache what they looked up. The writer assigns ids inside the batch's transaction and keeps
//! the texts only if that transaction commits; an id is never given out twice, even after a
//! failed commit, so no row can ever come to name another text.

// redb::Error is large (160 bytes); it only travels on cold failure paths.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use redb::{ReadableTable, Table, TableDefinition};

use super::codec::{put_str, put_u64, DecodeError, Reader};

pub(crate) const STRINGS: TableDefinition<u32, &str> = TableDefinition::new("strings");

/// Longest text that is interned; longer ones (long error messages) are stored inline.
pub(crate) const MAX_INTERNED_BYTES: usize = 64;
/// Most dictionary entries: clients choose `model`, so the set is open; past this, inline.
pub(crate) const MAX_STRINGS: u32 = 100_000;

/// The writer's copy of the dictionary.
#[derive(Default)]
pub(crate) struct Interner {
    ids: HashMap<Box<str>, u32>,
    /// Entries added by the transaction in progress (dropped if it does not commit).
    pending: HashMap<Box<str>, u32>,
    /// The next id to give out: one past the largest ever used.
    next: u32,
}

impl Interner {
    /// Reads the whole dictionary (a few hundred rows in practice).
    pub fn load(table: &impl ReadableTable<u32, &'static str>) -> Result<Interner, redb::Error> {
        let mut ids = HashMap::new();
        let mut next = 0;
        for row in table.iter()? {
            let (id, text) = row?;
            ids.insert(Box::from(text.value()), id.value());
            next = next.max(id.value().saturating_add(1));
        }
        Ok(Interner {
            ids,
            pending: HashMap::new(),
            next,
        })
    }

    /// Writes a reference to `s`, adding it to `table` when it is new and may be interned.
    pub fn put(
        &mut self,
        table: &mut Table<'_, u32, &'static str>,
        out: &mut Vec<u8>,
        s: &str,
    ) -> Result<(), redb::Error> {
        if let Some(id) = self.ids.get(s).or_else(|| self.pending.get(s)) {
            put_u64(out, u64::from(*id) + 1);
            return Ok(());
        }
        let id = self.next;
        if s.len() > MAX_INTERNED_BYTES || id >= MAX_STRINGS {
            put_u64(out, 0);
            put_str(out, s);
            return Ok(());
        }
        table.insert(id, s)?;
        self.next += 1;
        self.pending.insert(Box::from(s), id);
        put_u64(out, u64::from(id) + 1);
        Ok(())
    }

    /// The transaction committed: its new entries are permanent.
    pub fn commit(&mut self) {
        self.ids.extend(self.pending.drain());
    }

    /// The transaction failed: forget its new entries (their ids are not given out again).
    pub fn rollback(&mut self) {
        self.pending.clear();
    }
}

/// Resolves references for readers, caching each entry looked up.
pub(crate) struct Lookup<T> {
    table: Option<T>,
    cache: HashMap<u32, Box<str>>,
}

impl<T: ReadableTable<u32, &'static str>> Lookup<T> {
    /// `table` is `None` when the file has no dictionary (then only inline texts resolve).
    pub fn new(table: Option<T>) -> Self {
        Lookup {
            table,
            cache: HashMap::new(),
        }
    }

    /// Reads one reference written by [`Interner::put`].
    pub fn read(&mut self, r: &mut Reader<'_>) -> Result<String, DecodeError> {
        let v = r.u64()?;
        if v == 0 {
            return Ok(r.str()?.to_owned());
        }
        let id = u32::try_from(v - 1).map_err(|_| DecodeError("bad string id"))?;
        if let Some(s) = self.cache.get(&id) {
            return Ok(s.to_string());
        }
        let text: Box<str> = self
            .table
            .as_ref()
            .and_then(|t| t.get(id).ok().flatten())
            .map(|g| Box::from(g.value()))
            .ok_or(DecodeError("unknown string id"))?;
        let out = text.to_string();
        self.cache.insert(id, text);
        Ok(out)
    }
}
