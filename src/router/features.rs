//! A request's routing features, computed lazily and at most once per request.
//!
//! Rules never look at the raw request: they ask [`Features`] for a field's text, its
//! literal-match bits, its regex matches, an integer or a boolean. Each is computed the first
//! time a rule needs it and kept for the rest of the decision, so a request whose model
//! already decides the route never has its 50 KB system prompt scanned, and a scanned field is
//! scanned once however many rules test it.

use std::borrow::Cow;
use std::sync::Arc;

use super::envelope::{peel, Peeled};
use super::program::{compare, fold, Atom, BoolField, Instr, IntSource, TextField};
use super::route::{main_lane, KeySource, Previous, Recall};
use super::scan::{occurs, scan, Hit};
use super::view::{text_tokens, RouteView};
use super::{CompiledRule, RouteTable};
use crate::request::ConversationHint;
use crate::util::Fx;

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
    view: RouteView<'r>,
    /// The classifier's answer; `None` until the classifier answered.
    label: Option<Arc<str>>,
    slots: Vec<SlotState<'r>>,
    tokens: Option<u64>,
    images: Option<bool>,
    scores: Vec<Option<u64>>,
    /// Per regex: 0 not evaluated yet, 1 no match, 2 match.
    regexes: Vec<u8>,
    /// The conversations' previous decisions, when routing tracks them.
    recall: Option<&'t dyn Recall>,
    /// The messages a person wrote, as sent (read on first need).
    persons: Option<Vec<Cow<'r, str>>>,
    /// Each of them peeled, on first need.
    peeled: Vec<Option<Peeled<'r>>>,
    /// The lane's index in the table's lanes (`None` inside: main), once decided.
    lane: Option<Option<u16>>,
    /// The conversation key (lane included) and where it came from, once computed.
    conversation: Option<(u64, KeySource)>,
    /// The conversation's previous decision, once asked.
    previous: Option<Option<Previous>>,
}

/// Bytes of the system prompt and of the first person message hashed into a conversation key
/// when nothing names the conversation: enough to tell conversations apart, and before the
/// dynamic parts (OpenClaw's system prompt ends with the current date).
const HASHED_PREFIX: usize = 4096;

impl<'t, 'r> Features<'t, 'r> {
    pub fn new(table: &'t RouteTable, view: RouteView<'r>) -> Self {
        let mut slots = Vec::with_capacity(table.slots.len());
        slots.resize_with(table.slots.len(), SlotState::default);
        Features {
            table,
            view,
            label: None,
            slots,
            tokens: None,
            images: None,
            scores: vec![None; table.sets.len()],
            regexes: vec![0; table.regexes.len()],
            recall: None,
            persons: None,
            peeled: Vec::new(),
            lane: None,
            conversation: None,
            previous: None,
        }
    }

    /// Features that read the conversations' previous decisions from `recall`.
    pub fn with_recall(mut self, recall: Option<&'t dyn Recall>) -> Self {
        self.recall = recall;
        self
    }

    /// The request's view.
    pub fn view(&self) -> &RouteView<'r> {
        &self.view
    }

    /// The table the features are read for.
    pub fn table(&self) -> &'t RouteTable {
        self.table
    }

    /// The messages a person wrote, as sent.
    pub fn persons(&mut self) -> &[Cow<'r, str>] {
        if self.persons.is_none() {
            let persons: Vec<Cow<'r, str>> = self.view.person_messages().collect();
            self.peeled = vec![None; persons.len()];
            self.persons = Some(persons);
        }
        self.persons.as_deref().unwrap_or(&[])
    }

    /// Person message `i` with its envelope peeled.
    pub fn peeled(&mut self, i: usize) -> Option<&Peeled<'r>> {
        let raw = self.persons().get(i)?.clone();
        if self.peeled.get(i)?.is_none() {
            self.peeled[i] = Some(peel(&self.table.envelopes, raw));
        }
        self.peeled.get(i)?.as_ref()
    }

    /// What the person wrote last, envelope peeled (`last_user`).
    pub fn last_user(&mut self) -> Cow<'r, str> {
        let n = self.persons().len();
        match n.checked_sub(1).and_then(|i| self.peeled(i)) {
            Some(p) => p.text.clone(),
            None => Cow::Borrowed(""),
        }
    }

    /// What the person wrote last, as sent (`last_user_raw`).
    pub fn last_user_raw(&mut self) -> Cow<'r, str> {
        self.persons().last().cloned().unwrap_or(Cow::Borrowed(""))
    }

    /// Every person message peeled, joined by newlines (`user`).
    fn user(&mut self) -> Cow<'r, str> {
        let n = self.persons().len();
        if n == 1 {
            return self.last_user();
        }
        let mut out = String::new();
        for i in 0..n {
            if let Some(p) = self.peeled(i) {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&p.text);
            }
        }
        Cow::Owned(out)
    }

    /// What envelope `name` matched in the latest person message it occurs in.
    pub fn envelope(&mut self, name: &str) -> Option<String> {
        let idx = self
            .table
            .envelopes
            .iter()
            .position(|e| e.name.as_ref() == name)? as u16;
        let n = self.persons().len();
        (0..n)
            .rev()
            .find_map(|i| self.peeled(i)?.matched(idx).map(str::to_owned))
    }

    /// The request's lane: the first lane whose condition holds, else `main`.
    pub fn lane(&mut self) -> Arc<str> {
        let table = self.table;
        match self.lane_index() {
            Some(i) => table
                .lanes
                .get(usize::from(i))
                .map_or_else(main_lane, |l| l.name.clone()),
            None => main_lane(),
        }
    }

    /// The index of the request's lane in the table's lanes; `None`: main.
    pub fn lane_index(&mut self) -> Option<u16> {
        if let Some(l) = self.lane {
            return l;
        }
        // A lane's condition never reads `lane` (the checker refuses it); should one, it reads
        // `main` rather than recursing.
        self.lane = Some(None);
        let table = self.table;
        let found = table
            .lanes
            .iter()
            .position(|l| self.run(table.code_at(&l.prog)))
            .map(|i| i as u16);
        self.lane = Some(found);
        found
    }

    /// The conversation key, the lane included, and where it came from: the client's own
    /// (`prompt_cache_key`, `user`, `metadata.user_id`), else what an envelope marked `key`
    /// matched (OpenClaw's Runtime line), else a hash of the start of the system prompt and of
    /// the first message a person wrote.
    pub fn conversation(&mut self) -> (u64, KeySource) {
        if let Some((k, s)) = &self.conversation {
            return (*k, s.clone());
        }
        let mut h = Fx::new();
        let source = if let Some((hint, text)) = self.view.conversation {
            h.feed(text.as_bytes());
            match hint {
                ConversationHint::PromptCacheKey => KeySource::PromptCacheKey,
                ConversationHint::User => KeySource::User,
                ConversationHint::MetadataUserId => KeySource::MetadataUserId,
            }
        } else if let Some((name, text)) = self.key_envelope() {
            h.feed(text.as_bytes());
            KeySource::Envelope(name)
        } else {
            let system = self.view.first_system();
            h.feed(head(&system, HASHED_PREFIX).as_bytes());
            h.feed(&[0]);
            let first = self.persons().first().cloned().unwrap_or_default();
            h.feed(head(&first, HASHED_PREFIX).as_bytes());
            KeySource::Hash
        };
        h.feed(&[0xff]);
        h.feed(source.as_str().as_bytes());
        h.feed(&[0xff]);
        h.feed(self.lane().as_bytes());
        let key = h.finish();
        self.conversation = Some((key, source.clone()));
        (key, source)
    }

    /// The first person message's match of an envelope marked `key`, and that envelope's name.
    fn key_envelope(&mut self) -> Option<(Arc<str>, String)> {
        let table = self.table;
        if !table.envelopes.iter().any(|e| e.key) {
            return None;
        }
        let n = self.persons().len();
        for i in 0..n {
            let Some(p) = self.peeled(i) else { continue };
            for (idx, text) in &p.found {
                let Some(e) = table.envelopes.get(usize::from(*idx)) else {
                    continue;
                };
                if e.key {
                    return Some((e.name.clone(), text.trim().to_owned()));
                }
            }
        }
        None
    }

    /// The conversation's previous decision, when routing tracks conversations and remembers
    /// this one.
    pub fn previous(&mut self) -> Option<&Previous> {
        if self.previous.is_none() {
            let found = match self.recall {
                Some(recall) => {
                    let (key, _) = self.conversation();
                    recall.recall(key)
                }
                None => None,
            };
            self.previous = Some(found);
        }
        self.previous.as_ref().and_then(Option::as_ref)
    }

    /// Whether routing tracks conversations (the router was given a memory of them).
    pub fn tracks_conversations(&self) -> bool {
        self.recall.is_some()
    }

    /// The classifier answered: `label` reads `label` from now on. What was computed from
    /// the old value (text, scan, class, scores and regex results of `label` fields) is
    /// forgotten; every other field keeps its cache.
    pub fn set_label(&mut self, label: Arc<str>) {
        self.label = Some(label);
        let table = self.table;
        for (i, index) in table.slots.iter().enumerate() {
            if index.field == TextField::Label {
                self.slots[i] = SlotState::default();
                for (r, re) in table.regexes.iter().enumerate() {
                    if usize::from(re.slot) == i {
                        self.regexes[r] = 0;
                    }
                }
                for (s, set) in table.sets.iter().enumerate() {
                    if usize::from(set.slot) == i {
                        self.scores[s] = None;
                    }
                }
            }
        }
    }

    /// Whether a rule matches: skipped on a bit test when the field its literals live in is
    /// already scanned and none of them occurred, otherwise its program is run.
    #[inline]
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
                if !lits.iter().any(|&l| occurs(hits, l, Hit::Any)) {
                    return false;
                }
            }
        }
        self.run(table.program(rule))
    }

    /// Run a rule's program.
    #[inline]
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
        let table = self.table;
        let raw = match table.slots.get(slot as usize).map(|i| &i.field) {
            Some(field) => self.field_text(field),
            None => Cow::Borrowed(""),
        };
        self.slots[slot as usize].raw = Some(raw);
    }

    /// A text field's value.
    pub fn field_text(&mut self, field: &TextField) -> Cow<'r, str> {
        match field {
            TextField::Label => match &self.label {
                Some(label) => Cow::Owned(label.to_string()),
                None => Cow::Borrowed(""),
            },
            TextField::LastUser => self.last_user(),
            TextField::LastUserRaw => self.last_user_raw(),
            TextField::User => self.user(),
            TextField::Lane => Cow::Owned(self.lane().to_string()),
            TextField::PreviousProvider => self
                .previous()
                .map_or(Cow::Borrowed(""), |p| Cow::Owned(p.provider.to_string())),
            TextField::PreviousRule => self
                .previous()
                .map_or(Cow::Borrowed(""), |p| Cow::Owned(p.rule.to_string())),
            TextField::Envelope(name) => self.envelope(name).map_or(Cow::Borrowed(""), Cow::Owned),
            TextField::Model | TextField::System | TextField::Header(_) => self.view.text(field),
        }
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
        let how = if word { Hit::Word } else { Hit::Any };
        occurs(self.hits(slot), lit, how)
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
                let t = self.view.estimate_tokens();
                self.tokens = Some(t);
                t
            }
            IntSource::LastUserTokens => text_tokens(&self.last_user()),
            IntSource::UserTurns => self.persons().len() as u64,
            IntSource::Messages => self.view.messages.len() as u64,
            IntSource::MaxTokens => self.view.max_tokens.unwrap_or(0),
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
            .filter(|e| {
                let how = if e.stem { Hit::WordStart } else { Hit::Word };
                occurs(hits, e.lit, how)
            })
            .fold(0i64, |sum, e| sum.saturating_add(e.weight))
            .max(0) as u64;
        if let Some(s) = self.scores.get_mut(set as usize) {
            *s = Some(total);
        }
        total
    }

    /// A boolean feature.
    pub fn boolean(&mut self, f: BoolField) -> bool {
        match f {
            BoolField::Tools => self.view.tools > 0,
            BoolField::Stream => self.view.stream,
            BoolField::ToolLoop => self.view.continues_tool_loop(),
            BoolField::Images => {
                if let Some(i) = self.images {
                    return i;
                }
                let i = self.view.has_image();
                self.images = Some(i);
                i
            }
        }
    }
}

/// The first `max` bytes of `text`, cut at a character boundary.
fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::ChatRequest;
    use crate::rules::{compile_str, Providers};

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
            let headers = http::HeaderMap::new();
            let view = RouteView::chat(&req, &headers);
            let mut skipping = Features::new(&table, view);
            for slot in 0..table.slots.len() {
                skipping.hits(slot as u16);
            }
            for rule in table.rules() {
                let mut full = Features::new(&table, view);
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
