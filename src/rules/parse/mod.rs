//! Source text → [`RulesFile`] (the typed AST), using the pest grammar in `grammar/rules.pest`.
//!
//! A file that parses is converted to the AST in one pass (here). A file that does not is
//! handed to `recover`, which parses it again item by item and reports every syntax error.

use pest::iterators::Pair;
use pest::Parser as _;

mod recover;

use super::ast::*;
use super::diag::{codes, Diagnostic, SourceMap};
use recover::recover;

#[derive(pest_derive::Parser)]
#[grammar = "grammar/rules.pest"]
struct Grammar;

/// Parse file `file` of `sources`: the items that parsed, and a diagnostic per syntax error.
pub fn parse(sources: &SourceMap, file: FileId) -> (RulesFile, Vec<Diagnostic>) {
    let Some(src) = sources.get(file).map(|f| f.text.as_str()) else {
        return (
            RulesFile {
                file,
                items: vec![],
            },
            vec![],
        );
    };
    let cx = Cx { sources, file };
    match Grammar::parse(Rule::file, src) {
        Ok(mut pairs) => {
            let mut items = Vec::new();
            let mut errors = Vec::new();
            if let Some(top) = pairs.next() {
                for p in top.into_inner() {
                    if let Some(item) = cx.item(p, 0, &mut errors) {
                        items.push(item);
                    }
                }
            }
            (RulesFile { file, items }, errors)
        }
        Err(_) => recover(&cx, src),
    }
}

struct Cx<'a> {
    sources: &'a SourceMap,
    file: FileId,
}

impl Cx<'_> {
    fn span(&self, p: &Pair<'_, Rule>, base: usize) -> Span {
        let s = p.as_span();
        self.sources
            .span(self.file, base + s.start(), base + s.end())
    }

    fn ident(&self, p: Pair<'_, Rule>, base: usize) -> Ident {
        Ident {
            name: p.as_str().to_owned(),
            span: self.span(&p, base),
        }
    }

    fn item(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> Option<Item> {
        match p.as_rule() {
            Rule::envelope => Some(Item::Envelope(self.envelope(p, base))),
            Rule::lane => Some(Item::Lane(self.lane(p, base, errs))),
            Rule::keywords => Some(Item::Keywords(self.keywords(p, base, errs))),
            Rule::layer => Some(Item::Layer(self.layer(p, base, errs))),
            Rule::default => Some(Item::Default(self.default(p, base, errs))),
            _ => None,
        }
    }

    fn keywords(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> KeywordSet {
        let span = self.span(&p, base);
        let mut name = None;
        let mut entries = Vec::new();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::name => name = Some(self.ident(c, base)),
                Rule::keyword_list => {
                    for k in c.into_inner() {
                        let kspan = self.span(&k, base);
                        let mut text = String::new();
                        let mut weight = 1;
                        for part in k.into_inner() {
                            match part.as_rule() {
                                Rule::string => text = self.string(part, base, errs),
                                Rule::weight => weight = self.weight(part, base, errs),
                                _ => {}
                            }
                        }
                        entries.push(Keyword {
                            text,
                            weight,
                            span: kspan,
                        });
                    }
                }
                _ => {}
            }
        }
        KeywordSet {
            name: name.unwrap_or_else(|| Ident {
                name: String::new(),
                span,
            }),
            entries,
            span,
        }
    }

    fn envelope(&self, p: Pair<'_, Rule>, base: usize) -> EnvelopeDef {
        let span = self.span(&p, base);
        let mut name = None;
        let mut kind = EnvelopeKind::Anywhere;
        let mut key = false;
        let mut regex = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::name => name = Some(self.ident(c, base)),
                Rule::envelope_kind => {
                    kind = match c.as_str() {
                        "prefix" => EnvelopeKind::Prefix,
                        "suffix" => EnvelopeKind::Suffix,
                        _ => EnvelopeKind::Anywhere,
                    }
                }
                Rule::kw_key => key = true,
                Rule::regex => regex = Some(self.regex(c, base)),
                _ => {}
            }
        }
        EnvelopeDef {
            name: name.unwrap_or_else(|| Ident {
                name: String::new(),
                span,
            }),
            kind,
            key,
            regex: regex.unwrap_or(RegexLit {
                pattern: String::new(),
                flags: String::new(),
                span,
            }),
            span,
        }
    }

    fn lane(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> LaneDef {
        let span = self.span(&p, base);
        let mut name = None;
        let mut when = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::name => name = Some(self.ident(c, base)),
                Rule::expr => when = Some(self.expr(c, base, errs)),
                _ => {}
            }
        }
        LaneDef {
            name: name.unwrap_or_else(|| Ident {
                name: String::new(),
                span,
            }),
            when: when.unwrap_or(Expr::And(vec![], span)),
            span,
        }
    }

    fn layer(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> LayerBlock {
        let span = self.span(&p, base);
        let mut name = None;
        let mut rules = Vec::new();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::name => name = Some(self.ident(c, base)),
                Rule::rule => rules.push(self.rule(c, base, errs)),
                _ => {}
            }
        }
        LayerBlock {
            name: name.unwrap_or_else(|| Ident {
                name: String::new(),
                span,
            }),
            rules,
            span,
        }
    }

    fn rule(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> super::ast::Rule {
        let span = self.span(&p, base);
        let mut name = None;
        let mut when = None;
        let mut route = Vec::new();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::name => name = Some(self.ident(c, base)),
                Rule::expr => when = Some(self.expr(c, base, errs)),
                Rule::route => route = self.route(c, base, errs),
                _ => {}
            }
        }
        super::ast::Rule {
            name: name.unwrap_or_else(|| Ident {
                name: String::new(),
                span,
            }),
            when,
            route,
            span,
        }
    }

    fn default(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> DefaultRoute {
        let span = self.span(&p, base);
        let route = p
            .into_inner()
            .find(|c| c.as_rule() == Rule::route)
            .map(|c| self.route(c, base, errs))
            .unwrap_or_default();
        DefaultRoute { route, span }
    }

    fn route(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> Vec<Ident> {
        p.into_inner()
            .filter(|c| c.as_rule() == Rule::target)
            .filter_map(|t| {
                let span = self.span(&t, base);
                let inner = t.into_inner().next()?;
                let name = match inner.as_rule() {
                    Rule::string => self.string(inner, base, errs),
                    _ => inner.as_str().to_owned(),
                };
                Some(Ident { name, span })
            })
            .collect()
    }

    fn expr(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> Expr {
        let span = self.span(&p, base);
        match p.as_rule() {
            Rule::expr | Rule::conjunction => {
                let is_or = p.as_rule() == Rule::expr;
                let mut parts: Vec<Expr> = p
                    .into_inner()
                    .filter(|c| !matches!(c.as_rule(), Rule::kw_or | Rule::kw_and))
                    .map(|c| self.expr(c, base, errs))
                    .collect();
                if parts.len() == 1 {
                    parts.pop().unwrap_or(Expr::And(vec![], span))
                } else if is_or {
                    Expr::Or(parts, span)
                } else {
                    Expr::And(parts, span)
                }
            }
            Rule::negation => {
                let mut nots = Vec::new();
                let mut inner = None;
                for c in p.into_inner() {
                    if c.as_rule() == Rule::kw_not {
                        nots.push(self.span(&c, base));
                    } else {
                        inner = Some(self.expr(c, base, errs));
                    }
                }
                let mut e = inner.unwrap_or(Expr::And(vec![], span));
                for not_span in nots.into_iter().rev() {
                    let s = Span {
                        end: e.span().end.max(not_span.end),
                        ..not_span
                    };
                    e = Expr::Not(Box::new(e), s);
                }
                e
            }
            Rule::test => Expr::Test(self.test(p, base, errs)),
            // An empty condition cannot come out of the grammar; treat it as "always".
            _ => Expr::And(vec![], span),
        }
    }

    fn test(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> Test {
        let span = self.span(&p, base);
        let mut it = p.into_inner();
        let operand = match it.next() {
            Some(o) => self.operand(o, base, errs),
            None => Operand::Field(Ident {
                name: String::new(),
                span,
            }),
        };
        let mut op = None;
        if let Some(o) = it.next() {
            let ospan = self.span(&o, base);
            let rhs = it.next();
            let parsed = match o.as_rule() {
                Rule::op => {
                    let lit = rhs.map(|r| self.literal(r, base, errs));
                    lit.map(|lit| match o.as_str() {
                        "==" => Op::Cmp(CmpOp::Eq, lit),
                        "!=" => Op::Cmp(CmpOp::Ne, lit),
                        "<" => Op::Cmp(CmpOp::Lt, lit),
                        "<=" => Op::Cmp(CmpOp::Le, lit),
                        ">" => Op::Cmp(CmpOp::Gt, lit),
                        ">=" => Op::Cmp(CmpOp::Ge, lit),
                        "starts_with" => Op::Text(TextOp::StartsWith, lit),
                        "ends_with" => Op::Text(TextOp::EndsWith, lit),
                        _ => Op::Text(TextOp::Contains, lit),
                    })
                }
                Rule::list_op => {
                    let list = rhs.map(|r| self.list(r, base, errs)).unwrap_or_default();
                    let text_op = if o.as_str().starts_with("starts_with") {
                        TextOp::StartsWith
                    } else if o.as_str().starts_with("ends_with") {
                        TextOp::EndsWith
                    } else {
                        TextOp::Contains
                    };
                    Some(Op::TextAny(text_op, list))
                }
                Rule::kw_in => Some(Op::In(
                    rhs.map(|r| self.list(r, base, errs)).unwrap_or_default(),
                )),
                Rule::kw_matches => rhs.map(|r| Op::Matches(self.regex(r, base))),
                _ => None,
            };
            op = parsed.map(|o| (o, ospan));
        }
        Test { operand, op, span }
    }

    fn operand(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> Operand {
        let span = self.span(&p, base);
        let Some(inner) = p.into_inner().next() else {
            return Operand::Field(Ident {
                name: String::new(),
                span,
            });
        };
        match inner.as_rule() {
            Rule::call => {
                let cspan = self.span(&inner, base);
                let mut it = inner.into_inner();
                let name = it.next().map(|n| self.ident(n, base)).unwrap_or(Ident {
                    name: String::new(),
                    span: cspan,
                });
                let args = it
                    .map(|a| match a.as_rule() {
                        Rule::string => {
                            let s = self.span(&a, base);
                            Arg::Str(self.string(a, base, errs), s)
                        }
                        _ => Arg::Name(self.ident(a, base)),
                    })
                    .collect();
                Operand::Call {
                    name,
                    args,
                    span: cspan,
                }
            }
            _ => Operand::Field(self.ident(inner, base)),
        }
    }

    fn list(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> Vec<Literal> {
        p.into_inner()
            .map(|v| self.literal(v, base, errs))
            .collect()
    }

    fn literal(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> Literal {
        let span = self.span(&p, base);
        let value = match p.as_rule() {
            Rule::string => Value::Str(self.string(p, base, errs)),
            Rule::integer => Value::Int(self.integer(p, base, errs)),
            Rule::boolean => Value::Bool(p.as_str() == "true"),
            _ => Value::Str(p.as_str().to_owned()),
        };
        Literal { value, span }
    }

    /// The decoded text of a string literal.
    fn string(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> String {
        let span = self.span(&p, base);
        let body = p
            .into_inner()
            .next()
            .map(|b| b.as_str())
            .unwrap_or_default();
        let mut out = String::with_capacity(body.len());
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('u') => {
                    let hex: String = chars
                        .by_ref()
                        .skip_while(|c| *c == '{')
                        .take_while(|c| *c != '}')
                        .collect();
                    match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        Some(ch) => out.push(ch),
                        None => {
                            errs.push(
                                Diagnostic::error(
                                    codes::INVALID_LITERAL,
                                    format!("`\\u{{{hex}}}` is not a valid character"),
                                    Some(span),
                                )
                                .with_help("use a Unicode scalar value, e.g. \\u{4e2d}"),
                            );
                            // A stand-in, so that the one mistake is not reported again as
                            // an empty literal.
                            out.push(char::REPLACEMENT_CHARACTER);
                        }
                    }
                }
                Some(other) => out.push(other),
                None => {}
            }
        }
        out
    }

    /// An integer literal; `k` multiplies by 1,000 and `m` by 1,000,000.
    fn integer(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> u64 {
        let span = self.span(&p, base);
        match parse_int(p.as_str()) {
            Some(n) => n,
            None => {
                errs.push(
                    Diagnostic::error(
                        codes::INVALID_LITERAL,
                        format!("integer `{}` is too large", p.as_str()),
                        Some(span),
                    )
                    .with_help(format!("the largest integer is {}", u64::MAX)),
                );
                0
            }
        }
    }

    /// A keyword's weight: an integer, negative for evidence against.
    fn weight(&self, p: Pair<'_, Rule>, base: usize, errs: &mut Vec<Diagnostic>) -> i64 {
        let span = self.span(&p, base);
        let text = p.as_str();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, text),
        };
        match parse_int(digits).and_then(|n| i64::try_from(n).ok()) {
            Some(n) if negative => -n,
            Some(n) => n,
            None => {
                errs.push(
                    Diagnostic::error(
                        codes::INVALID_LITERAL,
                        format!("weight `{text}` is too large"),
                        Some(span),
                    )
                    .with_help("weights are small integers: 1 to 3 is the usual range"),
                );
                0
            }
        }
    }

    fn regex(&self, p: Pair<'_, Rule>, base: usize) -> RegexLit {
        let span = self.span(&p, base);
        let mut pattern = String::new();
        let mut flags = String::new();
        for c in p.into_inner() {
            match c.as_rule() {
                // `\/` only escapes the delimiter; the regex engine gets a plain `/`.
                Rule::regex_body => pattern = c.as_str().replace("\\/", "/"),
                Rule::regex_flags => flags = c.as_str().to_owned(),
                _ => {}
            }
        }
        RegexLit {
            pattern,
            flags,
            span,
        }
    }
}

/// `30k` → 30,000; `2m` → 2,000,000; `1_000` → 1,000. `None` on overflow.
pub fn parse_int(text: &str) -> Option<u64> {
    let (digits, mult) = match text.as_bytes().last() {
        Some(b'k' | b'K') => (&text[..text.len() - 1], 1_000u64),
        Some(b'm' | b'M') => (&text[..text.len() - 1], 1_000_000u64),
        _ => (text, 1),
    };
    let digits: String = digits.chars().filter(|c| *c != '_').collect();
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(src: &str) -> (RulesFile, Vec<Diagnostic>) {
        let mut sources = SourceMap::new();
        let id = sources.add("t.rules", src.to_owned());
        parse(&sources, id)
    }

    #[test]
    fn integers_accept_k_and_m_suffixes() {
        assert_eq!(parse_int("30k"), Some(30_000));
        assert_eq!(parse_int("2M"), Some(2_000_000));
        assert_eq!(parse_int("1_000"), Some(1_000));
        assert_eq!(parse_int("99999999999999999999"), None);
    }

    #[test]
    fn a_valid_file_becomes_items_with_positions() {
        let (f, errs) = parse_str(
            "keywords math { \"prove\", \"\\\\frac\" = 2 }\nlayer heuristic {\n  rule math-reasoning when score(math) >= 2 and not tools route deepseek-reasoner, deepseek-chat\n}\ndefault route deepseek-chat\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(f.items.len(), 3);
        let Item::Keywords(k) = &f.items[0] else {
            panic!()
        };
        assert_eq!(k.entries[1].text, "\\frac");
        assert_eq!(k.entries[1].weight, 2);
        let Item::Layer(l) = &f.items[1] else {
            panic!()
        };
        assert_eq!(l.rules[0].name.name, "math-reasoning");
        assert_eq!(
            (l.rules[0].name.span.line, l.rules[0].name.span.col),
            (3, 8)
        );
        assert!(matches!(l.rules[0].when, Some(Expr::And(ref v, _)) if v.len() == 2));
        assert_eq!(l.rules[0].route.len(), 2);
    }

    #[test]
    fn every_broken_rule_is_reported_and_good_rules_survive() {
        let (f, errs) = parse_str(
            "layer static {\n  rule a when model == route x\n  rule b when tools route y\n  rule c when tokens > route z\n}\n",
        );
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].span.map(|s| s.line), Some(2));
        assert_eq!(errs[1].span.map(|s| s.line), Some(4));
        let Item::Layer(l) = &f.items[0] else {
            panic!()
        };
        assert_eq!(l.rules.len(), 1);
        assert_eq!(l.rules[0].name.name, "b");
    }
}
