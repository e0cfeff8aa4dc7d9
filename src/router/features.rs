//! A request's routing features, computed lazily and at most once per request.
//!
//! Rules never look at the raw request: they ask [`Features`] for a field's text, its
//! literal-match bits, its regex matches, an integer or a boolean. Each is computed the first
//! time a rule needs it and kept for the rest of the decision, so a request whose model
//! already decides the route never has its 50 KB system prompt scanned, and a scanned field is
//! scanned once however many rules test it.

use std::borrow::Cow;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{AhoCorasick, Anchored, Input};
use http::HeaderMap;

use super::program::{
    compare, fold, is_word_char, Atom, BoolField, Instr, IntSource, Scanner, TextField, TextIndex,
};
use super::{CompiledRule, RouteTable};
use crate::request::{ChatRequest, Content, Message, Role};

/// Text parts that start with one of these are client-internal context, not something a
/// person wrote; they are left out of `user` and `last_user`. OpenClaw sends one such `user`
/// message after the person's own (see tests/fixtures/openclaw/).
pub const INTERNAL_CONTEXT_MARKERS: &[&str] = &["<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>"];

/// Per-request lazily computed state for one text slot.
#[derive(Default)]
struct SlotState<'r> {
    raw: Option<Cow<'r, str>>,
    /// Bit `2*i` = literal `i` occurs; bit `2*i+1` = it occurs as a whole word.
    hits: Option<Vec<u64>>,
    class: Option<Option<u32>>,
}

/// What the rules may ask about one request.
pub struct Features<'t, 'r> {
    table: &'t RouteTable,
    req: &'r ChatRequest<'r>,
    headers: &'r HeaderMap,
    /// The classifier's answer; `""` until the classifier layer is reached.
    label: &'r str,
    slots: Vec<SlotState<'r>>,
    tokens: Option<u64>,
    images: Option<bool>,
    scores: Vec<Option<u64>>,
    /// Per regex: 0 not evaluated yet, 1 no match, 2 match.
    regexes: Vec<u8>,
}

impl<'t, 'r> Features<'t, 'r> {
    pub fn new(table: &'t RouteTable, req: &'r ChatRequest<'r>, headers: &'r HeaderMap) -> Self {
        let mut slots = Vec::with_capacity(table.slots.len());
        slots.resize_with(table.slots.len(), SlotState::default);
        Features {
            table,
            req,
            headers,
            label: "",
            slots,
            tokens: None,
            images: None,
            scores: vec![None; table.sets.len()],
            regexes: vec![0; table.regexes.len()],
        }
    }

    /// The same features with the classifier's answer as `label`.
    pub fn with_label(mut self, label: &'r str) -> Self {
        self.label = label;
        self
    }

    /// Whether a rule matches: skipped on a bit test when the field its literals live in is
    /// already scanned and none of them occurred, otherwise its program is run.
    pub fn matches(&mut self, rule: &CompiledRule) -> bool {
        let table = self.table;
        if let Some(need) = &rule.need {
            if let Some(hits) = self
                .slots
                .get(need.slot as usize)
                .and_then(|s| s.hits.as_deref())
            {
                let lits = table
                    .need_lits
                    .get(need.lits.start as usize..need.lits.end as usize)
                    .unwrap_or(&[]);
                if !lits.iter().any(|&l| occurs(hits, l, false)) {
                    return false;
                }
            }
        }
        self.run(table.program(rule))
    }

    /// Run a rule's program.
    pub fn run(&mut self, prog: &[Instr]) -> bool {
        let mut acc = true;
        let mut pc = 0;
        while let Some(instr) = prog.get(pc) {
            match *instr {
                Instr::Atom(a) => acc = self.atom(a),
                Instr::JumpIfFalse(to) if !acc => {
                    pc = to as usize;
                    continue;
                }
                Instr::JumpIfTrue(to) if acc => {
                    pc = to as usize;
                    continue;
                }
                Instr::Not => acc = !acc,
                _ => {}
            }
            pc += 1;
        }
        acc
    }

    /// Evaluate one atom.
    pub fn atom(&mut self, id: u32) -> bool {
        let table = self.table;
        let Some(atom) = table.atoms.get(id as usize) else {
            return false;
        };
        match atom {
            Atom::Lit { slot, lit, word } => self.lit_hit(*slot, *lit, *word),
            Atom::Prefix { slot, text } => {
                let mut folded = self
                    .text(*slot)
                    .trim_start()
                    .chars()
                    .flat_map(char::to_lowercase);
                text.chars().all(|l| folded.next() == Some(l))
            }
            Atom::Suffix { slot, text } => {
                let mut folded = self
                    .text(*slot)
                    .trim_end()
                    .chars()
                    .rev()
                    .flat_map(|c| c.to_lowercase().rev());
                text.chars().rev().all(|l| folded.next() == Some(l))
            }
            Atom::Equals { slot, text } => self
                .text(*slot)
                .trim()
                .chars()
                .flat_map(char::to_lowercase)
                .eq(text.chars()),
            Atom::Class { slot, ids } => match self.class(*slot) {
                Some(c) => ids.contains(&c),
                None => false,
            },
            Atom::Regex { idx } => self.regex(*idx),
            Atom::Int { src, cmp, value } => compare(self.int(*src), *cmp, *value),
            Atom::IntIn { src, values } => values.contains(&self.int(*src)),
            Atom::Bool(f) => self.boolean(*f),
            Atom::Const(b) => *b,
        }
    }

    /// The field's text as the request has it (not case-folded).
    pub fn text(&mut self, slot: u16) -> &str {
        self.ensure_raw(slot);
        self.slots
            .get(slot as usize)
            .and_then(|s| s.raw.as_deref())
            .unwrap_or("")
    }

    fn ensure_raw(&mut self, slot: u16) {
        let Some(state) = self.slots.get(slot as usize) else {
            return;
        };
        if state.raw.is_some() {
            return;
        }
        let field = self.table.slots.get(slot as usize).map(|i| &i.field);
        let raw = match field {
            Some(f) => field_text(f, self.req, self.headers, self.label),
            None => Cow::Borrowed(""),
        };
        self.slots[slot as usize].raw = Some(raw);
    }

    fn hits(&mut self, slot: u16) -> &[u64] {
        let computed = self
            .slots
            .get(slot as usize)
            .is_some_and(|s| s.hits.is_some());
        if !computed {
            let table = self.table;
            let hits = match table.slots.get(slot as usize) {
                Some(index) if index.scanner.is_some() => {
                    let folded = fold(self.text(slot));
                    scan(index, &folded)
                }
                _ => Vec::new(),
            };
            if let Some(s) = self.slots.get_mut(slot as usize) {
                s.hits = Some(hits);
            }
        }
        self.slots
            .get(slot as usize)
            .and_then(|s| s.hits.as_deref())
            .unwrap_or(&[])
    }

    fn lit_hit(&mut self, slot: u16, lit: u32, word: bool) -> bool {
        occurs(self.hits(slot), lit, word)
    }

    /// Whether regex `idx` matches; it only runs when the scan found one of its prefixes.
    fn regex(&mut self, idx: u32) -> bool {
        match self.regexes.get(idx as usize) {
            Some(1) => return false,
            Some(2) => return true,
            Some(_) => {}
            None => return false,
        }
        let table = self.table;
        let Some(re) = table.regexes.get(idx as usize) else {
            return false;
        };
        let possible = match &re.prefilter {
            Some(lits) => lits.iter().any(|&l| self.lit_hit(re.slot, l, false)),
            None => true,
        };
        let matched = possible && re.regex.is_match(self.text(re.slot));
        self.regexes[idx as usize] = if matched { 2 } else { 1 };
        matched
    }

    fn class(&mut self, slot: u16) -> Option<u32> {
        if let Some(c) = self.slots.get(slot as usize).and_then(|s| s.class) {
            return c;
        }
        let table = self.table;
        let text = self.text(slot).trim();
        let class = table.slots.get(slot as usize).and_then(|index| {
            if text
                .bytes()
                .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
            {
                index.classes.get(text.to_lowercase().as_str()).copied()
            } else {
                index.classes.get(text).copied()
            }
        });
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.class = Some(class);
        }
        class
    }

    /// An integer feature.
    pub fn int(&mut self, src: IntSource) -> u64 {
        match src {
            IntSource::Tokens => {
                if let Some(t) = self.tokens {
                    return t;
                }
                let t = estimate_tokens(self.req);
                self.tokens = Some(t);
                t
            }
            IntSource::Messages => self.req.messages.len() as u64,
            IntSource::MaxTokens => self.req.max_tokens.unwrap_or(0),
            IntSource::Score(set) => self.score(set),
        }
    }

    fn score(&mut self, set: u32) -> u64 {
        if let Some(Some(s)) = self.scores.get(set as usize) {
            return *s;
        }
        let table = self.table;
        let Some(def) = table.sets.get(set as usize) else {
            return 0;
        };
        let hits = self.hits(def.slot);
        let total = def
            .entries
            .iter()
            .filter(|(lit, _)| occurs(hits, *lit, true))
            .map(|(_, w)| *w)
            .fold(0u64, u64::saturating_add);
        if let Some(s) = self.scores.get_mut(set as usize) {
            *s = Some(total);
        }
        total
    }

    /// A boolean feature.
    pub fn boolean(&mut self, f: BoolField) -> bool {
        match f {
            BoolField::Tools => !self.req.tools.is_empty(),
            BoolField::Stream => self.req.stream,
            BoolField::Images => {
                if let Some(i) = self.images {
                    return i;
                }
                let i = self.req.messages.iter().any(|m| m.content.has_image());
                self.images = Some(i);
                i
            }
        }
    }
}

/// One pass over the folded text: which of the slot's literals occur, and which occur as
/// whole words.
fn scan(index: &TextIndex, text: &str) -> Vec<u64> {
    let mut bits = vec![0u64; (2 * index.lits.len()).div_ceil(64)];
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
        mark(bits, lit, false);
        if info.as_word
            && !occurs(bits, lit as u32, true)
            && (!info.bound_start || !prev_is_word(bytes, text, end - info.text.len()))
            && (!info.bound_end || !next_is_word(bytes, text, end))
        {
            mark(bits, lit, true);
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
        mark(bits, lit, false);
        let start_ok = !prev_is_word(bytes, text, m.start());
        if info.as_word
            && (!info.bound_start || start_ok)
            && (!info.bound_end || !next_is_word(bytes, text, m.end()))
        {
            mark(bits, lit, true);
        }
        for &(p, next_is_word_char) in info.prefixes.iter() {
            mark(bits, p as usize, false);
            if let Some(pi) = index.lits.get(p as usize) {
                if pi.as_word
                    && (!pi.bound_start || start_ok)
                    && (!pi.bound_end || !next_is_word_char)
                {
                    mark(bits, p as usize, true);
                }
            }
        }
    }
}

/// Whether the scan found literal `lit` (as a whole word if `word`): bit `2*lit` (+1 for the
/// word) of a slot's hits.
fn occurs(hits: &[u64], lit: u32, word: bool) -> bool {
    let bit = 2 * lit as usize + usize::from(word);
    hits.get(bit / 64)
        .is_some_and(|w| w & (1 << (bit % 64)) != 0)
}

/// Record that literal `lit` occurs (as a whole word if `word`).
fn mark(bits: &mut [u64], lit: usize, word: bool) {
    let bit = 2 * lit + usize::from(word);
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

/// The text of a field for this request.
fn field_text<'r>(
    field: &TextField,
    req: &'r ChatRequest<'r>,
    headers: &HeaderMap,
    label: &'r str,
) -> Cow<'r, str> {
    match field {
        TextField::Model => Cow::Borrowed(req.model.as_ref()),
        TextField::Label => Cow::Borrowed(label),
        TextField::Header(name) => Cow::Owned(
            headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
        ),
        TextField::LastUser => last_user_text(req),
        TextField::User => join(
            req.messages
                .iter()
                .filter(|m| m.role == Role::User)
                .filter_map(person_text),
        ),
        TextField::System => join(
            req.messages
                .iter()
                .filter(|m| matches!(m.role, Role::System | Role::Developer))
                .map(|m| m.content.text()),
        ),
    }
}

/// The last user message a person wrote (client-internal context messages are skipped).
pub fn last_user_text<'r>(req: &'r ChatRequest<'r>) -> Cow<'r, str> {
    req.messages
        .iter()
        .rev()
        .filter(|m| m.role == Role::User)
        .find_map(person_text)
        .unwrap_or(Cow::Borrowed(""))
}

/// Texts joined by newlines, borrowed when there is only one.
fn join<'r>(mut texts: impl Iterator<Item = Cow<'r, str>>) -> Cow<'r, str> {
    let Some(first) = texts.next() else {
        return Cow::Borrowed("");
    };
    let Some(second) = texts.next() else {
        return first;
    };
    let mut s = String::with_capacity(first.len() + second.len() + 1);
    s.push_str(&first);
    s.push('\n');
    s.push_str(&second);
    for t in texts {
        s.push('\n');
        s.push_str(&t);
    }
    Cow::Owned(s)
}

fn is_internal(text: &str) -> bool {
    let t = text.trim_start();
    INTERNAL_CONTEXT_MARKERS.iter().any(|m| t.starts_with(m))
}

/// What a person wrote in a user message: its text without client-internal context parts, or
/// `None` when the message is only client-internal context.
pub fn person_text<'r>(m: &'r Message<'r>) -> Option<Cow<'r, str>> {
    match &m.content {
        Content::Null => Some(Cow::Borrowed("")),
        Content::Text(t) => (!is_internal(t)).then(|| Cow::Borrowed(t.as_ref())),
        Content::Parts(_) => {
            let mut internal = false;
            let person = m.content.text_parts().filter(|t| {
                let i = is_internal(t);
                internal |= i;
                !i
            });
            let text = join_space(person);
            if internal && text.is_empty() && !m.content.has_image() {
                None
            } else {
                Some(text)
            }
        }
    }
}

fn join_space<'r>(mut texts: impl Iterator<Item = &'r str>) -> Cow<'r, str> {
    let Some(first) = texts.next() else {
        return Cow::Borrowed("");
    };
    let Some(second) = texts.next() else {
        return Cow::Borrowed(first);
    };
    let mut s = format!("{first} {second}");
    for t in texts {
        s.push(' ');
        s.push_str(t);
    }
    Cow::Owned(s)
}

/// The prompt-size estimate behind `tokens`: characters of every message's text (all roles,
/// joined by newlines, as the original ClawGate counted) plus the bytes of the tool
/// definitions, divided by 4, at least 1. Four characters per token is the usual rule of thumb
/// for English; it is meant for thresholds like "long context", not for billing.
pub fn estimate_tokens(req: &ChatRequest<'_>) -> u64 {
    let mut chars = req.messages.len().saturating_sub(1);
    for m in &req.messages {
        for t in m.content.text_parts() {
            chars += count_chars(t);
        }
    }
    chars += req.tools.iter().map(|t| t.get().len()).sum::<usize>();
    ((chars / 4) as u64).max(1)
}

fn count_chars(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::program::LitInfo;
    use crate::rules::{compile_str, Providers};

    /// Every literal's (occurs, occurs as a word) found by brute force over the folded text.
    fn naive(lits: &[LitInfo], text: &str) -> Vec<(bool, bool)> {
        let bytes = text.as_bytes();
        lits.iter()
            .map(|l| {
                let mut any = false;
                let mut word = false;
                let starts = (0..text.len())
                    .filter(|&at| text.is_char_boundary(at) && text[at..].starts_with(&*l.text));
                for at in starts {
                    any = true;
                    let end = at + l.text.len();
                    if (!l.bound_start || !prev_is_word(bytes, text, at))
                        && (!l.bound_end || !next_is_word(bytes, text, end))
                    {
                        word = true;
                    }
                }
                (any, word && l.as_word)
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
            &["no", "hi", "taremi", "remi", "straße", "证明", "\\frac"],
            // long literals only: skipped ahead with a prefilter
            &["taremi", "lamiso", "straße", "remiso"],
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
                words.extend(["tare", "mi", "so"].map(String::from));
            }
            let list = words
                .iter()
                .map(|w| format!("{w:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            let src = format!(
                "keywords k {{ {list} }}\nlayer heuristic {{\n  rule a when score(k) >= 999 route p\n  rule b when last_user contains any [{list}] route p\n}}\n"
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
                            occurs(&bits, i as u32, false),
                            "set {n}, {:?} starting at {at}",
                            lit.text
                        );
                        assert_eq!(
                            occurs(&bits, i as u32, true),
                            lit.as_word,
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
                for (i, (any, word)) in naive(lits, &folded).into_iter().enumerate() {
                    let lit = i as u32;
                    let text = &lits[i].text;
                    assert_eq!(
                        occurs(&bits, lit, false),
                        any,
                        "set {n}, {text:?} in {len} bytes"
                    );
                    assert_eq!(
                        occurs(&bits, lit, true),
                        word,
                        "set {n}, {text:?} as a word in {len} bytes"
                    );
                }
            }
        }
    }

    /// Skipping a rule on its necessary literals never changes whether it matches: every rule
    /// of a mixed table agrees with its program run in full, with the fields scanned first.
    #[test]
    fn rules_skipped_on_missing_literals_are_exactly_the_rules_that_cannot_match() {
        let src = r#"
keywords k { "alpha", "beta" }
layer heuristic {
  rule scan when last_user contains "zzz" or system contains "zzz" route p
  rule low when score(k) < 1 route p
  rule zero_in when score(k) in [0, 2] route p
  rule some when score(k) >= 1 route p
  rule not_lit when not last_user contains "gamma" route p
  rule or_mixed when last_user contains "gamma" or tokens > 0 route p
  rule or_slots when last_user contains "gamma" or system contains "alpha" route p
  rule and_lit when tokens > 0 and last_user contains "beta" route p
  rule re when last_user matches /gam+a/ route p
  rule re_free when last_user matches /[a-z]+/ route p
}
"#;
        let table =
            compile_str(src, &Providers::all_loaded(&["p"])).unwrap_or_else(|r| panic!("{r}"));
        for (system, user) in [
            ("", ""),
            ("alpha", "nothing here"),
            ("none", "alpha and beta"),
            ("none", "gammma"),
            ("alpha beta", "gamma"),
        ] {
            let body = serde_json::json!({"model": "auto", "messages": [
                {"role": "system", "content": system}, {"role": "user", "content": user}]});
            let bytes = serde_json::to_vec(&body).expect("json");
            let req = ChatRequest::parse(&bytes).expect("request");
            let headers = HeaderMap::new();
            let mut skipping = Features::new(&table, &req, &headers);
            for slot in 0..table.slots.len() {
                skipping.hits(slot as u16);
            }
            for rule in table.rules() {
                let mut full = Features::new(&table, &req, &headers);
                assert_eq!(
                    skipping.matches(rule),
                    full.run(table.program(rule)),
                    "rule {} on system {system:?}, user {user:?}",
                    rule.name
                );
            }
        }
        let needs: Vec<bool> = table.rules().iter().map(|r| r.need.is_some()).collect();
        assert_eq!(
            needs,
            [false, false, false, true, false, false, false, true, true, false],
            "which rules have necessary literals"
        );
    }
}
