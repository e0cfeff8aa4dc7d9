//! Small algorithms more than one part of ClawGate needs: a lock that survives a panic, a
//! content hash, and a calendar date.

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, carrying on after a panic in another holder: every value ClawGate keeps behind
/// a mutex (counters, caches, a taken-once slot) stays usable after a half-finished update.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// FNV-1a, streamed: `Fnv::new()`, [`Fnv::feed`] as many times as needed, [`Fnv::finish`].
/// For "did this change" checks, not for anything an adversary chooses.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    pub const fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

/// A fast hash of byte strings, eight bytes at a time (FxHash's mixing): for keys computed on
/// the request path from kilobytes of text, where FNV's byte loop would cost microseconds. Not
/// for anything an adversary chooses.
#[derive(Debug, Clone, Copy)]
pub struct Fx(u64);

impl Fx {
    pub const fn new() -> Self {
        Fx(0)
    }

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in words.by_ref() {
            self.mix(u64::from_le_bytes([
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
            ]));
        }
        let rest = words.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        // The length keeps "ab" + "" apart from "a" + "b".
        self.mix(u64::from_le_bytes(last) ^ ((bytes.len() as u64) << 56));
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fx {
    fn default() -> Self {
        Fx::new()
    }
}

/// FNV-1a of one byte string.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.feed(bytes);
    h.finish()
}

/// `(year, month, day)` of a day counted from 1970-01-01 (proleptic Gregorian; Howard
/// Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_since_the_epoch_map_to_calendar_dates_across_leap_years() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn the_streamed_hash_equals_the_hash_of_the_whole() {
        let mut h = Fnv::new();
        h.feed(b"clawg");
        h.feed(b"ate");
        assert_eq!(h.finish(), fnv1a(b"clawgate"));
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
    }
}
