//! The literal scanner: one pass over a case-folded text finds which of a field's literals
//! occur, which occur as whole words and which at the start of a word, as a bit set
//! (`occurs` reads it).

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{AhoCorasick, Anchored, Input};

use super::program::{is_word_char, Scanner, TextIndex};

/// One pass over the folded text: which of the slot's literals occur, and which occur as
/// whole words.
pub(super) fn scan(index: &TextIndex, text: &str) -> Vec<u64> {
    let mut bits = vec![0u64; (BITS * index.lits.len()).div_ceil(64)];
    match &index.scanner {
        Some(Scanner::Skip(ac)) => scan_skip(ac, index, text, &mut bits),
        Some(Scanner::Walk { dfa, max_len }) => scan_walk(dfa, *max_len, index, text, &mut bits),
        None => {}
    }
    bits
}

/// Every occurrence of every literal, by walking the DFA over each byte.
///
/// A DFA walk is bound by the latency of one table load per byte (each step needs the state
/// the last one produced). Long texts are therefore cut into [`LANES`] segments walked in the
/// same loop: independent chains the CPU runs side by side. Each segment but the first starts
/// `max_len - 1` bytes early, from the start state, so by its first own byte its state is
/// the one a walk from the beginning would have for every literal that could still end
/// there; a literal is reported by the segment its last byte falls in (and perhaps also by
/// the next one's lead-in, which is harmless: reports only set bits).
fn scan_walk(dfa: &DFA, max_len: usize, index: &TextIndex, text: &str, bits: &mut [u64]) {
    let Ok(start) = dfa.start_state(Anchored::No) else {
        return;
    };
    let bytes = text.as_bytes();
    let seg = bytes.len() / LANES;
    if seg < 64 || seg < 4 * max_len {
        walk(dfa, start, index, text, 0, bytes, bits);
        return;
    }
    let lead = max_len.saturating_sub(1);
    let from = |k: usize| (k * seg).saturating_sub(if k == 0 { 0 } else { lead });
    let to = |k: usize| {
        if k + 1 == LANES {
            bytes.len()
        } else {
            (k + 1) * seg
        }
    };
    // The part all lanes share, walked interleaved; each lane's rest is walked alone.
    let common = (0..LANES).map(|k| to(k) - from(k)).min().unwrap_or(0);
    let lane = |k: usize| &bytes[from(k)..from(k) + common];
    let mut sid = [start; LANES];
    for (i, (((&b0, &b1), &b2), &b3)) in lane(0)
        .iter()
        .zip(lane(1))
        .zip(lane(2))
        .zip(lane(3))
        .enumerate()
    {
        for (k, b) in [b0, b1, b2, b3].into_iter().enumerate() {
            sid[k] = dfa.next_state(Anchored::No, sid[k], b);
            if dfa.is_special(sid[k]) {
                on_match(dfa, sid[k], index, text, from(k) + i + 1, bits);
            }
        }
    }
    for (k, &s) in sid.iter().enumerate() {
        let at = from(k) + common;
        walk(dfa, s, index, text, at, &bytes[at..to(k)], bits);
    }
}

/// Segments a long text is cut into for [`scan_walk`] (whose loop is written for four: more
/// chains spill registers and ran slower here).
const LANES: usize = 4;
const _: () = assert!(
    LANES == 4,
    "scan_walk's interleaved loop walks exactly four lanes"
);

/// Walk `part` (which starts at byte `offset` of `text`) from state `sid`.
fn walk(
    dfa: &DFA,
    mut sid: StateID,
    index: &TextIndex,
    text: &str,
    offset: usize,
    part: &[u8],
    bits: &mut [u64],
) {
    for (i, &b) in part.iter().enumerate() {
        sid = dfa.next_state(Anchored::No, sid, b);
        if dfa.is_special(sid) {
            on_match(dfa, sid, index, text, offset + i + 1, bits);
        }
    }
}

/// Record the literals of a match state whose last byte is `text[end - 1]`.
#[inline(never)]
fn on_match(dfa: &DFA, sid: StateID, index: &TextIndex, text: &str, end: usize, bits: &mut [u64]) {
    if !dfa.is_match(sid) {
        return;
    }
    let bytes = text.as_bytes();
    for i in 0..dfa.match_len(sid) {
        let lit = dfa.match_pattern(sid, i).as_usize();
        let Some(info) = index.lits.get(lit) else {
            continue;
        };
        mark(bits, lit, Hit::Any);
        let word = info.as_word && !occurs(bits, lit as u32, Hit::Word);
        let stem = info.as_stem && !occurs(bits, lit as u32, Hit::WordStart);
        if !(word || stem) {
            continue;
        }
        if info.bound_start && prev_is_word(bytes, text, end - info.text.len()) {
            continue;
        }
        if stem {
            mark(bits, lit, Hit::WordStart);
        }
        if word && (!info.bound_end || !next_is_word(bytes, text, end)) {
            mark(bits, lit, Hit::Word);
        }
    }
}

/// Leftmost-longest matches, restarting one byte after each match start: that enumerates
/// every position where some literal starts, so a literal failing its boundary at one place
/// cannot hide another, and shorter literals starting at the same place come from
/// [`LitInfo::prefixes`].
fn scan_skip(ac: &AhoCorasick, index: &TextIndex, text: &str, bits: &mut [u64]) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let Ok(Some(m)) = ac.try_find(Input::new(text).span(at..bytes.len())) else {
            break;
        };
        at = m.start() + 1;
        let lit = m.pattern().as_usize();
        let Some(info) = index.lits.get(lit) else {
            continue;
        };
        mark(bits, lit, Hit::Any);
        let start_ok = !prev_is_word(bytes, text, m.start());
        if !info.bound_start || start_ok {
            if info.as_stem {
                mark(bits, lit, Hit::WordStart);
            }
            if info.as_word && (!info.bound_end || !next_is_word(bytes, text, m.end())) {
                mark(bits, lit, Hit::Word);
            }
        }
        for &(p, next_is_word_char) in info.prefixes.iter() {
            mark(bits, p as usize, Hit::Any);
            if let Some(pi) = index.lits.get(p as usize) {
                if !pi.bound_start || start_ok {
                    if pi.as_stem {
                        mark(bits, p as usize, Hit::WordStart);
                    }
                    if pi.as_word && (!pi.bound_end || !next_is_word_char) {
                        mark(bits, p as usize, Hit::Word);
                    }
                }
            }
        }
    }
}

/// How a literal occurred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hit {
    /// Anywhere (`contains`, regex prefixes).
    Any = 0,
    /// As a whole word or phrase (keywords).
    Word = 1,
    /// At the start of a word (keywords written `"stem*"`).
    WordStart = 2,
}

/// Bits per literal in a slot's hits.
const BITS: usize = 3;

/// Whether the scan found literal `lit` the way `hit` says: bit `3*lit + hit` of a slot's
/// hits.
pub(super) fn occurs(hits: &[u64], lit: u32, hit: Hit) -> bool {
    let bit = BITS * lit as usize + hit as usize;
    hits.get(bit / 64)
        .is_some_and(|w| w & (1 << (bit % 64)) != 0)
}

/// Record that literal `lit` occurs the way `hit` says.
fn mark(bits: &mut [u64], lit: usize, hit: Hit) {
    let bit = BITS * lit + hit as usize;
    bits[bit / 64] |= 1 << (bit % 64);
}

fn prev_is_word(bytes: &[u8], text: &str, at: usize) -> bool {
    match at.checked_sub(1).and_then(|i| bytes.get(i)) {
        None => false,
        Some(b) if b.is_ascii() => is_word_char(*b as char),
        Some(_) => text
            .get(..at)
            .and_then(|s| s.chars().next_back())
            .is_some_and(is_word_char),
    }
}

fn next_is_word(bytes: &[u8], text: &str, at: usize) -> bool {
    match bytes.get(at) {
        None => false,
        Some(b) if b.is_ascii() => is_word_char(*b as char),
        Some(_) => text
            .get(at..)
            .and_then(|s| s.chars().next())
            .is_some_and(is_word_char),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::program::{fold, LitInfo};
    use crate::rules::{compile_str, Providers};

    /// Every literal's (occurs, occurs as a word, occurs at a word start) found by brute
    /// force over the folded text.
    fn naive(lits: &[LitInfo], text: &str) -> Vec<(bool, bool, bool)> {
        let bytes = text.as_bytes();
        lits.iter()
            .map(|l| {
                let mut any = false;
                let mut word = false;
                let mut stem = false;
                let starts = (0..text.len())
                    .filter(|&at| text.is_char_boundary(at) && text[at..].starts_with(&*l.text));
                for at in starts {
                    any = true;
                    let end = at + l.text.len();
                    let start_ok = !l.bound_start || !prev_is_word(bytes, text, at);
                    if start_ok && (!l.bound_end || !next_is_word(bytes, text, end)) {
                        word = true;
                    }
                    stem |= start_ok;
                }
                (any, word && l.as_word, stem && l.as_stem)
            })
            .collect()
    }

    fn next(rng: &mut u64) -> usize {
        *rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*rng >> 33) as usize
    }

    /// Scans of long texts (several lanes) and short ones, by each scanner kind, agree with a
    /// brute-force search, literals placed on lane boundaries and overlapping each other
    /// included.
    #[test]
    fn one_pass_scan_finds_every_literal_a_brute_force_search_finds() {
        const PIECES: &[&str] = &[
            "no", "hi", "tare", "taremi", "remi", "mi", "é", "Straße", "证明", "ab", "b", " ", " ",
            " ", ".", "x", "Tare", "MIso", "so", "lamiso", "\\frac", "{",
        ];
        let sets: [&[&str]; 3] = [
            // short literals: walked
            &[
                "no", "hi", "taremi", "remi*", "straße", "证明", "\\frac", "tare*",
            ],
            // long literals only: skipped ahead with a prefilter
            &["taremi", "lamiso*", "straße", "remiso", "tare*"],
            // many literals: walked
            &[],
        ];
        let mut rng = 7u64;
        for (n, set) in sets.iter().enumerate() {
            let mut words: Vec<String> = set.iter().map(|s| s.to_string()).collect();
            if words.is_empty() {
                for i in 0..300 {
                    words.push(format!(
                        "{}{}{}",
                        PIECES[i % PIECES.len()],
                        PIECES[(i / 3) % PIECES.len()],
                        i
                    ));
                }
                words.extend(["tare", "mi*", "so"].map(String::from));
            }
            let quoted = |w: &str| format!("{w:?}");
            let list = words
                .iter()
                .map(|w| quoted(w))
                .collect::<Vec<_>>()
                .join(", ");
            let plain = words
                .iter()
                .map(|w| quoted(w.trim_end_matches('*')))
                .collect::<Vec<_>>()
                .join(", ");
            let src = format!(
                "keywords k {{ {list} }}\nlayer heuristic {{\n  rule a when score(k) >= 999 route p\n  rule b when last_user contains any [{plain}] route p\n}}\n"
            );
            let table =
                compile_str(&src, &Providers::all_loaded(&["p"])).unwrap_or_else(|r| panic!("{r}"));
            let index = &table.slots[0];
            match (n, &index.scanner) {
                (0 | 2, Some(Scanner::Walk { .. })) | (1, Some(Scanner::Skip(_))) => {}
                (n, s) => panic!("set {n} got scanner {s:?}"),
            }
            let lits = &index.lits;
            let mut texts = Vec::new();
            for len in [0usize, 3, 40, 300, 1_000, 4_099, 9_000] {
                for _ in 0..8 {
                    let mut text = String::new();
                    while text.len() < len {
                        text.push_str(PIECES[next(&mut rng) % PIECES.len()]);
                    }
                    texts.push(text);
                }
            }
            // One literal alone in filler, its last byte on each side of each lane boundary.
            let len = 4_000;
            for (i, lit) in lits.iter().enumerate().step_by(5) {
                for k in 1..LANES {
                    for shift in 0..=lit.text.len() + 1 {
                        let Some(at) = (k * len / LANES + shift).checked_sub(lit.text.len()) else {
                            continue;
                        };
                        let text = format!(
                            "{}{}{}",
                            "~".repeat(at),
                            &*lit.text,
                            "~".repeat(len - at - lit.text.len())
                        );
                        let bits = scan(index, &text);
                        assert!(
                            occurs(&bits, i as u32, Hit::Any),
                            "set {n}, {:?} starting at {at}",
                            lit.text
                        );
                        assert_eq!(
                            occurs(&bits, i as u32, Hit::Word),
                            lit.as_word,
                            "set {n}, {:?}",
                            lit.text
                        );
                        assert_eq!(
                            occurs(&bits, i as u32, Hit::WordStart),
                            lit.as_stem,
                            "set {n}, {:?}",
                            lit.text
                        );
                    }
                }
            }
            for text in &texts {
                let len = text.len();
                let folded = fold(text);
                let bits = scan(index, &folded);
                for (i, (any, word, stem)) in naive(lits, &folded).into_iter().enumerate() {
                    let lit = i as u32;
                    let text = &lits[i].text;
                    assert_eq!(
                        occurs(&bits, lit, Hit::Any),
                        any,
                        "set {n}, {text:?} in {len} bytes"
                    );
                    assert_eq!(
                        occurs(&bits, lit, Hit::Word),
                        word,
                        "set {n}, {text:?} as a word in {len} bytes"
                    );
                    assert_eq!(
                        occurs(&bits, lit, Hit::WordStart),
                        stem,
                        "set {n}, {text:?} at a word start in {len} bytes"
                    );
                }
            }
        }
    }
}
