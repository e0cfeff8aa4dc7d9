//! The compiled form of rule conditions: atoms, per-field match indexes, and flat programs.
//!
//! Every literal a rule tests against a text field (`contains`, keywords) joins that field's
//! single Aho-Corasick automaton, and so do the literal prefixes of its regexes: a regex only
//! runs when the one pass over the field found one of them (a `RegexSet` scans the whole text
//! on every request, ~100 µs for 32 KB; a literal-prefixed regex that cannot match costs
//! nothing). Model and header equality become hash lookups. A rule's condition is a short
//! vector of [`Instr`] whose leaves are [`Atom`]s, evaluated against the request's
//! [`super::features::Features`], which scans each field at most once, and only when a rule
//! first needs it; a rule whose necessary literals ([`Need`]) did not occur in a scanned field
//! is skipped without running its program.

use std::collections::HashMap;

use aho_corasick::AhoCorasick;
use regex::Regex;

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A text field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TextField {
    /// The requested model, as sent (trimmed).
    Model,
    /// Every user message a person wrote, envelopes peeled, joined by newlines.
    User,
    /// The last user message a person wrote, its envelope peeled (client-internal context
    /// messages are skipped).
    LastUser,
    /// That message as the client sent it, envelope included.
    LastUserRaw,
    /// The request's lane: the first `lane` whose condition holds, else `main`.
    Lane,
    /// The provider that answered the conversation's previous request (`""`: none remembered).
    PreviousProvider,
    /// The rule that decided the conversation's previous request (`""`: none remembered).
    PreviousRule,
    /// What envelope NAME matched in the latest person message it occurs in (`""`: none).
    Envelope(String),
    /// System and developer messages, joined by newlines.
    System,
    /// The classifier's answer (an upper-case label such as `REASONING`); `""` when the
    /// classifier is disabled or gave no usable answer.
    Label,
    /// A request header by lowercase name; `""` when absent or not UTF-8.
    Header(String),
}

impl TextField {
    /// How the field is written in a rule.
    pub fn display(&self) -> String {
        match self {
            TextField::Model => "model".into(),
            TextField::User => "user".into(),
            TextField::LastUser => "last_user".into(),
            TextField::LastUserRaw => "last_user_raw".into(),
            TextField::Lane => "lane".into(),
            TextField::PreviousProvider => "previous_provider".into(),
            TextField::PreviousRule => "previous_rule".into(),
            TextField::Envelope(n) => format!("envelope({n:?})"),
            TextField::System => "system".into(),
            TextField::Label => "label".into(),
            TextField::Header(h) => format!("header({h:?})"),
        }
    }

    /// Whether equality tests on this field are hash lookups (short, exact-match fields).
    pub fn hashed(&self) -> bool {
        matches!(
            self,
            TextField::Model
                | TextField::Header(_)
                | TextField::Lane
                | TextField::PreviousProvider
                | TextField::PreviousRule
        )
    }
}

/// An integer a rule can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntSource {
    /// Prompt size estimate: characters of all messages and tool definitions, divided by 4.
    Tokens,
    /// Size estimate of what the person wrote last (`last_user`), counted as `Tokens` is; 0
    /// when empty.
    LastUserTokens,
    /// Number of user messages a person wrote (client-internal context messages not counted).
    UserTurns,
    /// Number of messages.
    Messages,
    /// `max_completion_tokens` or `max_tokens`; 0 when absent.
    MaxTokens,
    /// Sum of the weights of a keyword set's distinct keywords found in a field, never below 0.
    Score(u32),
}

/// A boolean field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BoolField {
    /// The request carries at least one tool definition.
    Tools,
    /// Some message has an image part.
    Images,
    /// The client asked for a stream.
    Stream,
    /// The request continues a tool loop: its last message (client-internal context aside) is
    /// a tool's result.
    ToolLoop,
}

impl BoolField {
    pub fn as_str(self) -> &'static str {
        match self {
            BoolField::Tools => "tools",
            BoolField::Images => "images",
            BoolField::Stream => "stream",
            BoolField::ToolLoop => "tool_loop",
        }
    }
}

/// Index of a text field's slot in [`super::RouteTable`].
pub type Slot = u16;

/// The smallest unit of a condition, evaluated against a request's features.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Atom {
    /// Literal `lit` of the slot's automaton occurs (as a whole word/phrase if `word`).
    Lit {
        slot: Slot,
        lit: u32,
        word: bool,
    },
    /// The trimmed, case-folded field starts with / ends with / equals the (lowercase) text.
    Prefix {
        slot: Slot,
        text: Box<str>,
    },
    Suffix {
        slot: Slot,
        text: Box<str>,
    },
    Equals {
        slot: Slot,
        text: Box<str>,
    },
    /// The field's value is one of the interned values `ids` (hash lookup).
    Class {
        slot: Slot,
        ids: Box<[u32]>,
    },
    /// Regex `idx` of the table's regexes matches.
    Regex {
        idx: u32,
    },
    Int {
        src: IntSource,
        cmp: CmpOp,
        value: u64,
    },
    IntIn {
        src: IntSource,
        values: Box<[u64]>,
    },
    Bool(BoolField),
    Const(bool),
}

/// A condition over atoms (what the flat program is compiled from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    Atom(u32),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

/// One instruction of a rule's program. `acc` starts true (a rule without `when` matches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instr {
    /// `acc = atom`
    Atom(u32),
    /// Skip to the instruction index when `acc` is false (short-circuit `and`).
    JumpIfFalse(u32),
    /// Skip when `acc` is true (short-circuit `or`).
    JumpIfTrue(u32),
    /// `acc = !acc`
    Not,
}

/// Flatten a condition into a program with short-circuit jumps.
pub fn flatten(cond: &Cond) -> Vec<Instr> {
    fn emit(c: &Cond, out: &mut Vec<Instr>) {
        match c {
            Cond::Atom(a) => out.push(Instr::Atom(*a)),
            Cond::Not(inner) => {
                emit(inner, out);
                out.push(Instr::Not);
            }
            Cond::And(parts) | Cond::Or(parts) => {
                let is_and = matches!(c, Cond::And(_));
                let mut patches = Vec::new();
                for (i, p) in parts.iter().enumerate() {
                    emit(p, out);
                    if i + 1 < parts.len() {
                        patches.push(out.len());
                        out.push(if is_and {
                            Instr::JumpIfFalse(0)
                        } else {
                            Instr::JumpIfTrue(0)
                        });
                    }
                }
                let end = out.len() as u32;
                for at in patches {
                    out[at] = match out[at] {
                        Instr::JumpIfFalse(_) => Instr::JumpIfFalse(end),
                        _ => Instr::JumpIfTrue(end),
                    };
                }
            }
        }
    }
    let mut out = Vec::new();
    emit(cond, &mut out);
    out
}

/// A rule's necessary literals: its condition can only be true when one of them occurs in the
/// field of `slot`. Once that field is scanned, a rule whose literals all missed is skipped
/// without running its program, so a thousand keyword rules cost a bit test each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub slot: Slot,
    /// The literal ids, as a range of the table's `need_lits`.
    pub lits: std::ops::Range<u32>,
}

/// The field and literals one of which must occur for `cond` to be true, if there is such a
/// set in a single field (a literal test or a literal-prefixed regex in every branch of an
/// `or`, in some conjunct of an `and`; a keyword score compared so that zero fails).
pub fn need(
    cond: &Cond,
    atoms: &[Atom],
    sets: &[ScoreSet],
    regexes: &[RegexAtom],
) -> Option<(Slot, Vec<u32>)> {
    match cond {
        Cond::Atom(id) => match atoms.get(*id as usize)? {
            Atom::Lit { slot, lit, .. } => Some((*slot, vec![*lit])),
            Atom::Regex { idx } => {
                let re = regexes.get(*idx as usize)?;
                Some((re.slot, re.prefilter.as_deref()?.to_vec()))
            }
            Atom::Int {
                src: IntSource::Score(set),
                cmp,
                value,
            } if !compare(0, *cmp, *value) => score_need(sets.get(*set as usize)?),
            Atom::IntIn {
                src: IntSource::Score(set),
                values,
            } if !values.contains(&0) => score_need(sets.get(*set as usize)?),
            _ => None,
        },
        Cond::And(parts) => parts
            .iter()
            .filter_map(|p| need(p, atoms, sets, regexes))
            .min_by_key(|(_, lits)| lits.len()),
        Cond::Or(parts) => {
            let mut slot = None;
            let mut lits: Vec<u32> = Vec::new();
            for p in parts {
                let (s, l) = need(p, atoms, sets, regexes)?;
                if slot.is_some_and(|seen| seen != s) {
                    return None;
                }
                slot = Some(s);
                lits.extend(l);
            }
            lits.sort_unstable();
            lits.dedup();
            Some((slot?, lits))
        }
        Cond::Not(_) => None,
    }
}

/// A score above 0 needs one of the set's positively weighted keywords.
fn score_need(set: &ScoreSet) -> Option<(Slot, Vec<u32>)> {
    Some((
        set.slot,
        set.entries
            .iter()
            .filter(|e| e.weight > 0)
            .map(|e| e.lit)
            .collect(),
    ))
}

/// Everything compiled for one text field.
#[derive(Debug)]
pub struct TextIndex {
    pub field: TextField,
    /// All literals and keywords tested against this field (case-folded), plus the required
    /// literals of its regexes: one automaton, one pass per request.
    pub scanner: Option<Scanner>,
    pub lits: Vec<LitInfo>,
    /// Interned lowercase values for equality (model and header slots only).
    pub classes: HashMap<Box<str>, u32>,
}

/// A literal of a slot's automaton.
#[derive(Debug, Clone)]
pub struct LitInfo {
    pub text: Box<str>,
    /// Some rule tests it as a whole word (keyword sets).
    pub as_word: bool,
    /// Some rule tests it as the start of a word (keywords written `"stem*"`).
    pub as_stem: bool,
    /// A word boundary is needed before / after it (its first / last char is a letter or digit
    /// of a script that separates words with spaces).
    pub bound_start: bool,
    pub bound_end: bool,
    /// Other literals that are proper prefixes of this one, with whether the character right
    /// after the prefix is a word character. A [`Scanner::Skip`] search reports the longest
    /// literal at each position; these are the shorter ones hiding under it (empty for
    /// [`Scanner::Walk`], which reports every literal).
    pub prefixes: Box<[(u32, bool)]>,
}

/// How a field's literals are found: one pass either way, the kind chosen per field when the
/// table is compiled.
#[derive(Debug)]
pub enum Scanner {
    /// A few long literals: the crate's leftmost-longest search, which skips ahead with a SIMD
    /// prefilter (memchr, Teddy) and restarts one byte after each match start. Scanning a 50 KB
    /// system prompt for two phrases costs a few microseconds.
    Skip(AhoCorasick),
    /// Anything else (short words like "hi" that occur every few bytes, or hundreds of
    /// literals, where a prefilter stops constantly): a plain walk of a full DFA over every
    /// byte, reporting every occurrence of every literal, no restarts.
    Walk {
        dfa: Box<aho_corasick::dfa::DFA>,
        /// The longest literal's length in bytes.
        max_len: usize,
    },
}

/// A regex of a rule, with the literals one of which any match must start with.
#[derive(Debug)]
pub struct RegexAtom {
    pub slot: Slot,
    pub regex: Regex,
    /// Literal ids (in the slot's automaton) of the regex's possible prefixes; `None` when it
    /// has no usable literal prefix and must always run.
    pub prefilter: Option<Box<[u32]>>,
}

/// A keyword set compiled for one field.
#[derive(Debug, Clone)]
pub struct ScoreSet {
    /// `math` or `math, user`, as written in rules (for explain).
    pub display: String,
    pub slot: Slot,
    /// Distinct keywords.
    pub entries: Vec<ScoreEntry>,
}

/// One keyword of a compiled set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreEntry {
    /// Its literal in the slot's automaton.
    pub lit: u32,
    /// Negative: evidence against.
    pub weight: i64,
    /// Written `"stem*"`: counts at the start of any word.
    pub stem: bool,
}

/// Whether `c` is part of a word for keyword boundaries: a letter or digit of a script that
/// separates words with spaces. Han, kana, Hangul, Thai and similar scripts write words
/// without spaces, so a keyword like `证明` must match inside text and needs no boundary.
/// `_` is not a word character, so `\int` matches in `\int_0^1` and `\sum` in `\sum_{i}`.
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    c.is_alphanumeric() && !is_unspaced_script(c)
}

fn is_unspaced_script(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF     // Thai, Lao
        | 0x1000..=0x109F   // Myanmar
        | 0x1100..=0x11FF   // Hangul Jamo
        | 0x1780..=0x17FF   // Khmer
        | 0x2E80..=0x2FDF   // CJK radicals
        | 0x3040..=0x30FF   // Hiragana, Katakana
        | 0x3100..=0x31FF   // Bopomofo, Hangul compatibility Jamo, Katakana ext.
        | 0x3400..=0x4DBF   // CJK ext. A
        | 0x4E00..=0x9FFF   // CJK unified
        | 0xA960..=0xA97F   // Hangul Jamo ext. A
        | 0xAC00..=0xD7FF   // Hangul syllables
        | 0xF900..=0xFAFF   // CJK compatibility
        | 0xFF66..=0xFF9F   // half-width Katakana
        | 0x20000..=0x3FFFF // CJK ext. B and later
    )
}

/// Lowercase text character by character (not `str::to_lowercase`, whose final-sigma rule
/// would make folding depend on context): patterns and texts fold the same way, so a folded
/// pattern occurs in a folded text wherever the pattern occurs ignoring case. ASCII text (the
/// usual prompt) is lowered in one vectorised pass; otherwise ASCII runs are copied in bulk and
/// only non-ASCII characters are mapped one by one.
pub fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut rest = text;
    while !rest.is_empty() {
        let run = ascii_prefix_len(rest.as_bytes());
        let start = out.len();
        out.push_str(&rest[..run]);
        out[start..].make_ascii_lowercase();
        rest = &rest[run..];
        let mut chars = rest.chars();
        let Some(c) = chars.next() else {
            break;
        };
        if has_no_case(c) {
            out.push(c);
        } else {
            out.extend(c.to_lowercase());
        }
        rest = chars.as_str();
    }
    out
}

/// The length of the ASCII prefix of `bytes`, eight bytes at a time.
fn ascii_prefix_len(bytes: &[u8]) -> usize {
    let mut words = bytes.chunks_exact(8);
    let mut n = 0;
    for w in words.by_ref() {
        let high = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
            & 0x8080_8080_8080_8080;
        if high != 0 {
            return n + (high.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + words
        .remainder()
        .iter()
        .position(|b| !b.is_ascii())
        .unwrap_or(words.remainder().len())
}

/// Blocks of characters without case (punctuation, arrows, box drawing, CJK, kana, Hangul,
/// emoji), which prompts are full of: skipping the case table's binary search for them keeps
/// folding a non-English prompt close to the speed of copying it.
fn has_no_case(c: char) -> bool {
    matches!(c as u32,
        0x2000..=0x206F     // general punctuation (dashes, quotes, bullets)
        | 0x2190..=0x23FF   // arrows, mathematical operators, technical
        | 0x2500..=0x25FF   // box drawing, block elements, shapes
        | 0x2E80..=0xA4CF   // CJK, kana, Bopomofo, Yi
        | 0xAC00..=0xD7FF   // Hangul syllables
        | 0x1F000..=0x1FAFF // emoji and pictographs
    )
}

/// Compare with an operator.
pub fn compare(lhs: u64, cmp: CmpOp, rhs: u64) -> bool {
    match cmp {
        CmpOp::Eq => lhs == rhs,
        CmpOp::Ne => lhs != rhs,
        CmpOp::Lt => lhs < rhs,
        CmpOp::Le => lhs <= rhs,
        CmpOp::Gt => lhs > rhs,
        CmpOp::Ge => lhs >= rhs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_short_circuit_like_the_condition() {
        // a and (b or not c)
        let c = Cond::And(vec![
            Cond::Atom(0),
            Cond::Or(vec![Cond::Atom(1), Cond::Not(Box::new(Cond::Atom(2)))]),
        ]);
        let prog = flatten(&c);
        assert_eq!(
            prog,
            vec![
                Instr::Atom(0),
                Instr::JumpIfFalse(6),
                Instr::Atom(1),
                Instr::JumpIfTrue(6),
                Instr::Atom(2),
                Instr::Not,
            ]
        );
    }

    #[test]
    fn characters_skipped_by_folding_really_have_no_lowercase() {
        for c in (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|&c| has_no_case(c))
        {
            assert!(
                c.to_lowercase().eq(std::iter::once(c)),
                "{c:?} (U+{:04X}) has a lowercase form",
                c as u32
            );
        }
    }

    #[test]
    fn folding_lowers_every_script_like_char_by_char_lowercasing() {
        let text = "Straße ÄÖÜ ΣΑΣ Доказать 证明 — Ⅻ Ⓐ İ K → 🚀 HELLO wORLD ".repeat(3);
        let expected: String = text.chars().flat_map(char::to_lowercase).collect();
        assert_eq!(fold(&text), expected);
        assert_eq!(fold("Plain ASCII Text"), "plain ascii text");
        for cut in 0..text.len() {
            if let Some(prefix) = text.get(..cut) {
                let expected: String = prefix.chars().flat_map(char::to_lowercase).collect();
                assert_eq!(fold(prefix), expected);
            }
        }
    }

    #[test]
    fn cjk_needs_no_word_boundary_but_latin_and_cyrillic_do() {
        assert!(is_word_char('a'));
        assert!(is_word_char('ж'));
        assert!(is_word_char('ü'));
        assert!(!is_word_char('证'));
        assert!(!is_word_char('こ'));
        assert!(!is_word_char('\\'));
        assert!(!is_word_char(' '));
    }
}
