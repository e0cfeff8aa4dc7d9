//! A request's routing features, computed lazily and at most once per request.
//!
//! Rules never look at the raw request: they ask [`Features`] for a field's text, its
//! literal-match bits, its regex matches, an integer or a boolean. Each is computed the first
//! time a rule needs it and kept for the rest of the decision, so a request whose model
//! already decides the route never has its 50 KB system prompt scanned, and a scanned field is
//! scanned once however many rules test it.

use std::borrow::Cow;

use aho_corasick::Input;
use http::HeaderMap;

use super::program::{
    compare, fold, is_word_char, Atom, BoolField, Instr, IntSource, TextField, TextIndex,
};
use super::RouteTable;
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
            Atom::Lit { slot, lit, word } => {
                let hits = self.hits(*slot);
                let bit = 2 * *lit as usize + usize::from(*word);
                hits.get(bit / 64)
                    .is_some_and(|w| w & (1 << (bit % 64)) != 0)
            }
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
                Some(index) if index.ac.is_some() => {
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
        let bit = 2 * lit as usize + usize::from(word);
        self.hits(slot)
            .get(bit / 64)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
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
            .filter(|(lit, _)| {
                let bit = 2 * *lit as usize + 1;
                hits.get(bit / 64)
                    .is_some_and(|w| w & (1 << (bit % 64)) != 0)
            })
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

/// One pass of the slot's automaton over the folded text: which literals occur, and which
/// occur as whole words. The automaton reports the longest literal starting at the leftmost
/// position; restarting one byte after each start enumerates every position where some
/// literal starts, so a literal failing its boundary at one place cannot hide another, and
/// shorter literals starting at the same place come from [`LitInfo::prefixes`].
fn scan(index: &TextIndex, text: &str) -> Vec<u64> {
    let mut bits = vec![0u64; (2 * index.lits.len()).div_ceil(64)];
    let Some(ac) = &index.ac else {
        return bits;
    };
    let set = |bits: &mut Vec<u64>, bit: usize| bits[bit / 64] |= 1 << (bit % 64);
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
        set(&mut bits, 2 * lit);
        let start_ok = !prev_is_word(bytes, text, m.start());
        if info.as_word
            && (!info.bound_start || start_ok)
            && (!info.bound_end || !next_is_word(bytes, text, m.end()))
        {
            set(&mut bits, 2 * lit + 1);
        }
        for &(p, next_is_word_char) in info.prefixes.iter() {
            set(&mut bits, 2 * p as usize);
            if let Some(pi) = index.lits.get(p as usize) {
                if pi.as_word
                    && (!pi.bound_start || start_ok)
                    && (!pi.bound_end || !next_is_word_char)
                {
                    set(&mut bits, 2 * p as usize + 1);
                }
            }
        }
    }
    bits
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
