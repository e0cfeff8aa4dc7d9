//! Which serving thread the current code runs on, so that per-thread state (upstream
//! connection pools, live metric counters) is touched by its own thread only.

use std::cell::Cell;

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Mark the current thread as serving thread `index`. Threads never marked are slot 0.
pub fn set(index: usize) {
    SLOT.with(|s| s.set(index));
}

/// The current thread's slot.
pub fn current() -> usize {
    SLOT.with(Cell::get)
}

/// The current thread's share of per-thread state: `shares[slot]`, or a shared one for threads
/// beyond `shares.len()`.
pub fn pick<T>(shares: &[T]) -> &T {
    &shares[current() % shares.len()]
}
