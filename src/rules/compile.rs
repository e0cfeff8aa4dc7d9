//! Checked rule files → an immutable [`RouteTable`].
//!
//! Literals are interned per text field (case-folded) and joined into one Aho-Corasick
//! automaton per field, together with the literal prefixes of the field's regexes (which
//! then only run when a prefix occurs); model and header equality become hash maps of
//! interned values. Each rule's condition becomes a flat program of atoms (see
//! [`crate::router::program`]).

use std::collections::HashMap;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

use super::ast::*;
use super::check::{build_regex, collect};
use super::diag::Diagnostic;
use super::fields::{resolve, IntOperand, Names, Resolved};
use crate::router::envelope::Envelope;
use crate::router::explain::{XCond, XOperand};
use crate::router::program::{
    flatten, fold, is_word_char, need, Atom, Cond, IntSource, LitInfo, Need, RegexAtom, Scanner,
    ScoreEntry, ScoreSet, Slot, TextField, TextIndex,
};
use crate::router::scan::Hit;
use crate::router::{CompiledLane, CompiledRule, RouteTable, TableInfo, PREVIOUS_TARGET};

/// Compile files that passed [`super::check::check`] without errors. Parts that would have
/// been errors (unknown names) compile to conditions that never match rather than panicking;
/// the only errors left are regexes the checker parsed but that are too big to build.
pub fn compile(files: &[RulesFile], info: TableInfo) -> Result<RouteTable, Vec<Diagnostic>> {
    let col = collect(files);
    let mut b = Builder {
        keyword_sets: col.sets.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        set_spans: Names::of(&col),
        ..Builder::default()
    };
    let mut envelopes = Vec::with_capacity(col.envelopes.len());
    for e in &col.envelopes {
        match Envelope::new(&e.name.name, e.kind, e.key, &e.regex.source()) {
            Ok(env) => envelopes.push(env),
            Err(err) => b.errors.push(
                Diagnostic::error(
                    super::diag::codes::INVALID_REGEX,
                    format!("invalid regex: {err}"),
                    Some(e.regex.span),
                )
                .with_help("the syntax is Rust's `regex` crate: https://docs.rs/regex/#syntax"),
            ),
        }
    }
    let mut rules = Vec::with_capacity(col.rules.len());
    let mut conds = Vec::with_capacity(col.rules.len());
    let mut code = Vec::new();
    let mut need_lits = Vec::new();
    let mut lanes = Vec::with_capacity(col.lanes.len());
    for l in &col.lanes {
        let start = code.len() as u32;
        let (cond, x) = b.expr(&l.when);
        code.extend(flatten(&cond));
        lanes.push(CompiledLane {
            name: Arc::from(l.name.name.as_str()),
            prog: start..code.len() as u32,
            explain: Some(x),
        });
    }
    for (layer, r) in &col.rules {
        let start = code.len() as u32;
        let (cond, explain) = match &r.when {
            None => (None, None),
            Some(w) => {
                let (cond, x) = b.expr(w);
                code.extend(flatten(&cond));
                (Some(cond), Some(x))
            }
        };
        let prog = start..code.len() as u32;
        rules.push(CompiledRule {
            layer: *layer,
            name: Arc::from(r.name.name.as_str()),
            targets: r.route.iter().map(|t| Arc::from(t.name.as_str())).collect(),
            prog,
            need: None,
            explain,
            uses_previous: r.route.iter().any(|t| t.name == PREVIOUS_TARGET),
        });
        conds.push(cond);
    }
    let default = col
        .default
        .map(|d| d.route.iter().map(|t| Arc::from(t.name.as_str())).collect());
    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    // Regex prefixes are interned as rules compile, so needs are computed once all are known.
    for (rule, cond) in rules.iter_mut().zip(&conds) {
        let Some((slot, lits)) = cond
            .as_ref()
            .and_then(|c| need(c, &b.atoms, &b.sets, &b.regexes))
        else {
            continue;
        };
        let start = need_lits.len() as u32;
        need_lits.extend(lits);
        rule.need = Some(Need {
            slot,
            lits: start..need_lits.len() as u32,
        });
    }
    let slots = b.slots.into_iter().map(SlotBuilder::finish).collect();
    Ok(RouteTable {
        info: TableInfo {
            rules: rules.len(),
            ..info
        },
        rules,
        default,
        code,
        need_lits,
        atoms: b.atoms,
        slots,
        sets: b.sets,
        regexes: b.regexes,
        envelopes,
        lanes,
    })
}

#[derive(Default)]
struct Builder<'a> {
    keyword_sets: HashMap<String, &'a KeywordSet>,
    set_spans: Names,
    atoms: Vec<Atom>,
    atom_ids: HashMap<Atom, u32>,
    slots: Vec<SlotBuilder>,
    slot_ids: HashMap<TextField, Slot>,
    sets: Vec<ScoreSet>,
    set_ids: HashMap<(String, bool), u32>,
    regexes: Vec<RegexAtom>,
    regex_ids: HashMap<(Slot, String), u32>,
    errors: Vec<Diagnostic>,
}

#[derive(Default)]
struct SlotBuilder {
    field: Option<TextField>,
    lits: Vec<LitInfo>,
    lit_ids: HashMap<Box<str>, u32>,
    classes: HashMap<Box<str>, u32>,
}

impl SlotBuilder {
    /// Intern a literal (case-folded), noting how some rule tests it: anywhere, as a whole
    /// word, or at a word's start.
    fn lit(&mut self, text: &str, how: Hit) -> u32 {
        let folded: Box<str> = fold(text).into();
        let id = match self.lit_ids.get(&folded) {
            Some(&id) => id,
            None => {
                let id = self.lits.len() as u32;
                self.lits.push(LitInfo {
                    bound_start: folded.chars().next().is_some_and(is_word_char),
                    bound_end: folded.chars().next_back().is_some_and(is_word_char),
                    text: folded.clone(),
                    as_word: false,
                    as_stem: false,
                    prefixes: Box::new([]),
                });
                self.lit_ids.insert(folded, id);
                id
            }
        };
        match how {
            Hit::Any => {}
            Hit::Word => self.lits[id as usize].as_word = true,
            Hit::WordStart => self.lits[id as usize].as_stem = true,
        }
        id
    }

    fn class(&mut self, value: &str) -> u32 {
        let key: Box<str> = fold(value.trim()).into();
        let next = self.classes.len() as u32;
        *self.classes.entry(key).or_insert(next)
    }

    fn finish(mut self) -> TextIndex {
        let scanner = if self.lits.is_empty() {
            None
        } else if self.skippable() {
            self.link_prefixes();
            skip_scanner(&self.lits)
        } else {
            aho_corasick::dfa::DFA::builder()
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(self.lits.iter().map(|l| l.text.as_bytes()))
                .ok()
                .map(|dfa| Scanner::Walk {
                    dfa: Box::new(dfa),
                    max_len: self.lits.iter().map(|l| l.text.len()).max().unwrap_or(0),
                })
                .or_else(|| {
                    self.link_prefixes();
                    skip_scanner(&self.lits)
                })
        };
        TextIndex {
            field: self.field.unwrap_or(TextField::Label),
            scanner,
            lits: self.lits,
            classes: self.classes,
        }
    }

    /// Whether a prefilter can skip most of a text: few literals (the crate's SIMD Teddy
    /// search takes up to 64), none shorter than three bytes. Measured on the stock keywords
    /// ("hi", "no", ...) over 1.5 KB, a prefilter made the scan 3x slower; on 32 KB with 150
    /// six-letter literals, 2x slower than walking the DFA.
    fn skippable(&self) -> bool {
        self.lits.len() <= 64 && self.lits.iter().all(|l| l.text.len() >= 3)
    }

    /// For each literal, the other literals that are its proper prefixes (a leftmost-longest
    /// search sees only the longest literal at a position).
    fn link_prefixes(&mut self) {
        for i in 0..self.lits.len() {
            let text = self.lits[i].text.clone();
            let prefixes: Vec<(u32, bool)> = text
                .char_indices()
                .skip(1)
                .filter_map(|(end, next)| {
                    self.lit_ids
                        .get(&text[..end])
                        .map(|&p| (p, is_word_char(next)))
                })
                .collect();
            self.lits[i].prefixes = prefixes.into();
        }
    }
}

/// Leftmost-longest over the folded text, with the crate's prefilter. A full DFA scans 2-3x
/// faster than the contiguous NFA the crate picks for large sets; above ~500 literals (only
/// reached when the DFA walk could not be built) its memory grows too much.
fn skip_scanner(lits: &[LitInfo]) -> Option<Scanner> {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .kind((lits.len() <= 500).then_some(AhoCorasickKind::DFA))
        .build(lits.iter().map(|l| l.text.as_bytes()))
        .ok()
        .map(Scanner::Skip)
}

/// The literals one of which every match of `re` starts with (case-folded), if the regex has
/// a small, finite set of non-empty ones.
fn literal_prefixes(source: &str) -> Option<Vec<String>> {
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(source)
        .ok()?;
    let mut extractor = Extractor::new();
    // A class wider than a case pair (`[0-9]`) ends the prefix rather than multiplying it:
    // `ab[0-9]x` is found by `ab` alone, one literal instead of ten.
    extractor
        .kind(ExtractKind::Prefix)
        .limit_class(4)
        .limit_total(64);
    let seq = extractor.extract(&hir);
    let lits = seq.literals()?;
    if lits.is_empty() {
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(lits.len());
    for l in lits {
        let text = std::str::from_utf8(l.as_bytes()).ok()?;
        if text.is_empty() {
            return None;
        }
        let f = fold(text);
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Some(out)
}

impl Builder<'_> {
    fn atom(&mut self, a: Atom) -> Cond {
        if let Some(&id) = self.atom_ids.get(&a) {
            return Cond::Atom(id);
        }
        let id = self.atoms.len() as u32;
        self.atoms.push(a.clone());
        self.atom_ids.insert(a, id);
        Cond::Atom(id)
    }

    fn never(&mut self) -> Cond {
        self.atom(Atom::Const(false))
    }

    fn slot(&mut self, field: &TextField) -> Slot {
        if let Some(&s) = self.slot_ids.get(field) {
            return s;
        }
        let s = self.slots.len() as Slot;
        self.slots.push(SlotBuilder {
            field: Some(field.clone()),
            ..SlotBuilder::default()
        });
        self.slot_ids.insert(field.clone(), s);
        s
    }

    fn score_set(&mut self, name: &str, all_users: bool) -> u32 {
        let key = (name.to_owned(), all_users);
        if let Some(&id) = self.set_ids.get(&key) {
            return id;
        }
        let field = if all_users {
            TextField::User
        } else {
            TextField::LastUser
        };
        let slot = self.slot(&field);
        let mut entries: Vec<ScoreEntry> = Vec::new();
        if let Some(set) = self.keyword_sets.get(name).copied() {
            for k in &set.entries {
                let (text, stem) = k.pattern();
                if text.is_empty() {
                    continue;
                }
                let how = if stem { Hit::WordStart } else { Hit::Word };
                let lit = self.slots[slot as usize].lit(text, how);
                if !entries.iter().any(|e| e.lit == lit && e.stem == stem) {
                    entries.push(ScoreEntry {
                        lit,
                        weight: k.weight,
                        stem,
                    });
                }
            }
        }
        let id = self.sets.len() as u32;
        self.sets.push(ScoreSet {
            display: if all_users {
                format!("{name}, user")
            } else {
                name.to_owned()
            },
            slot,
            entries,
        });
        self.set_ids.insert(key, id);
        id
    }

    /// Lower a condition: the atom-level condition and its explain tree.
    fn expr(&mut self, e: &Expr) -> (Cond, XCond) {
        match e {
            Expr::Or(parts, _) | Expr::And(parts, _) => {
                let (conds, xs): (Vec<Cond>, Vec<XCond>) =
                    parts.iter().map(|p| self.expr(p)).unzip();
                if matches!(e, Expr::Or(..)) {
                    (Cond::Or(conds), XCond::Or(xs))
                } else {
                    (Cond::And(conds), XCond::And(xs))
                }
            }
            Expr::Not(inner, _) => {
                let (c, x) = self.expr(inner);
                (Cond::Not(Box::new(c)), XCond::Not(Box::new(x)))
            }
            Expr::Test(t) => {
                let (cond, operand) = self.test(t);
                let x = XCond::Test {
                    cond: cond.clone(),
                    operand,
                    op: t.op.as_ref().map(|(o, _)| op_text(o)),
                };
                (cond, x)
            }
        }
    }

    fn test(&mut self, t: &Test) -> (Cond, XOperand) {
        let resolved = match resolve(&t.operand, &self.set_spans) {
            Ok(r) => r,
            Err(_) => return (self.never(), XOperand::Unknown),
        };
        let operand = match &resolved {
            Resolved::Text(f) => XOperand::Text(self.slot(f), f.display()),
            Resolved::Int(i) => XOperand::Int(self.int_source(i), i.display()),
            Resolved::Bool(b) => XOperand::Bool(*b),
        };
        let cond = match (&resolved, &t.op) {
            (Resolved::Bool(b), None) => self.atom(Atom::Bool(*b)),
            (Resolved::Bool(b), Some((Op::Cmp(c, lit), _))) => {
                let want = matches!(lit.value, Value::Bool(true)) == (*c == CmpOp::Eq);
                let a = self.atom(Atom::Bool(*b));
                if want {
                    a
                } else {
                    Cond::Not(Box::new(a))
                }
            }
            (Resolved::Int(i), Some((op, _))) => {
                let src = self.int_source(i);
                match op {
                    Op::Cmp(
                        c,
                        Literal {
                            value: Value::Int(v),
                            ..
                        },
                    ) => self.atom(Atom::Int {
                        src,
                        cmp: *c,
                        value: *v,
                    }),
                    Op::In(list) => {
                        let values: Vec<u64> = list
                            .iter()
                            .filter_map(|l| match l.value {
                                Value::Int(n) => Some(n),
                                _ => None,
                            })
                            .collect();
                        self.atom(Atom::IntIn {
                            src,
                            values: values.into(),
                        })
                    }
                    _ => self.never(),
                }
            }
            (Resolved::Text(field), Some((op, _))) => self.text_test(field, op),
            _ => self.never(),
        };
        (cond, operand)
    }

    fn int_source(&mut self, i: &IntOperand) -> IntSource {
        match i {
            IntOperand::Tokens => IntSource::Tokens,
            IntOperand::LastUserTokens => IntSource::LastUserTokens,
            IntOperand::UserTurns => IntSource::UserTurns,
            IntOperand::Messages => IntSource::Messages,
            IntOperand::MaxTokens => IntSource::MaxTokens,
            IntOperand::Score { set, all_users } => {
                IntSource::Score(self.score_set(set, *all_users))
            }
        }
    }

    fn text_test(&mut self, field: &TextField, op: &Op) -> Cond {
        let slot = self.slot(field);
        let strs = |lits: &[Literal]| -> Vec<String> {
            lits.iter()
                .filter_map(|l| match &l.value {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect()
        };
        match op {
            Op::Cmp(c, lit) => {
                let Value::Str(s) = &lit.value else {
                    return self.never();
                };
                let eq = self.equals(slot, field, std::slice::from_ref(s));
                match c {
                    CmpOp::Eq => eq,
                    CmpOp::Ne => Cond::Not(Box::new(eq)),
                    _ => self.never(),
                }
            }
            Op::In(list) => {
                let values = strs(list);
                self.equals(slot, field, &values)
            }
            Op::Text(o, lit) => {
                let Value::Str(s) = &lit.value else {
                    return self.never();
                };
                self.text_op(slot, *o, s)
            }
            Op::TextAny(o, list) => {
                let parts: Vec<Cond> = strs(list)
                    .iter()
                    .map(|s| self.text_op(slot, *o, s))
                    .collect();
                Cond::Or(parts)
            }
            Op::Matches(re) => match self.regex(slot, re) {
                Some(idx) => self.atom(Atom::Regex { idx }),
                None => self.never(),
            },
        }
    }

    /// Intern a regex of a slot; its literal prefixes join the slot's automaton.
    fn regex(&mut self, slot: Slot, re: &RegexLit) -> Option<u32> {
        let source = re.source();
        if let Some(&id) = self.regex_ids.get(&(slot, source.clone())) {
            return Some(id);
        }
        let regex = match build_regex(re) {
            Ok(r) => r,
            Err(d) => {
                self.errors.push(d);
                return None;
            }
        };
        let prefilter = literal_prefixes(&source).map(|lits| {
            let ids: Vec<u32> = lits
                .iter()
                .map(|l| self.slots[slot as usize].lit(l, Hit::Any))
                .collect();
            ids.into_boxed_slice()
        });
        let id = self.regexes.len() as u32;
        self.regexes.push(RegexAtom {
            slot,
            regex,
            prefilter,
        });
        self.regex_ids.insert((slot, source), id);
        Some(id)
    }

    /// `field == v` for any `v` of `values`: a hash lookup on model and headers.
    fn equals(&mut self, slot: Slot, field: &TextField, values: &[String]) -> Cond {
        if field.hashed() {
            let mut ids: Vec<u32> = values
                .iter()
                .map(|v| self.slots[slot as usize].class(v))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            return self.atom(Atom::Class {
                slot,
                ids: ids.into(),
            });
        }
        let parts: Vec<Cond> = values
            .iter()
            .map(|v| {
                self.atom(Atom::Equals {
                    slot,
                    text: fold(v.trim()).into(),
                })
            })
            .collect();
        if parts.len() == 1 {
            parts.into_iter().next().unwrap_or(Cond::Or(vec![]))
        } else {
            Cond::Or(parts)
        }
    }

    fn text_op(&mut self, slot: Slot, op: TextOp, s: &str) -> Cond {
        if s.is_empty() {
            return self.atom(Atom::Const(true));
        }
        let text: Box<str> = fold(s).into();
        match op {
            TextOp::Contains => {
                let lit = self.slots[slot as usize].lit(s, Hit::Any);
                self.atom(Atom::Lit {
                    slot,
                    lit,
                    word: false,
                })
            }
            TextOp::StartsWith => self.atom(Atom::Prefix { slot, text }),
            TextOp::EndsWith => self.atom(Atom::Suffix { slot, text }),
        }
    }
}

/// The operator and right-hand side as written, e.g. `>= 2` or `contains any ["a", "b"]`.
pub fn op_text(op: &Op) -> String {
    let list = |l: &[Literal]| {
        l.iter()
            .map(|v| v.value.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match op {
        Op::Cmp(c, l) => format!("{} {}", c.as_str(), l.value),
        Op::Text(o, l) => format!("{} {}", o.as_str(), l.value),
        Op::TextAny(o, l) => format!("{} any [{}]", o.as_str(), list(l)),
        Op::In(l) => format!("in [{}]", list(l)),
        Op::Matches(r) => format!("matches /{}/{}", r.pattern, r.flags),
    }
}
