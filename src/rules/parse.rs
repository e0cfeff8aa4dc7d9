//! Source text → [`RulesFile`] (the typed AST), using the pest grammar in `grammar/rules.pest`.
//!
//! A file that parses is converted in one pass. A file that does not is parsed again item by
//! item (and rule by rule inside a layer), skipping to the next line that starts a `rule`,
//! `layer`, `keywords` or `default` after each error, so one run reports every broken rule
//! and the intact ones still get checked.

use pest::error::InputLocation;
use pest::iterators::Pair;
use pest::Parser as _;

use super::ast::*;
use super::diag::{codes, Diagnostic, SourceMap};

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
                                Rule::integer => weight = self.integer(part, base, errs),
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
                        None => errs.push(
                            Diagnostic::error(
                                codes::INVALID_LITERAL,
                                format!("`\\u{{{hex}}}` is not a valid character"),
                                Some(span),
                            )
                            .with_help("use a Unicode scalar value, e.g. \\u{4e2d}"),
                        ),
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

// ---- error recovery -------------------------------------------------------------------------

/// Parse item by item, reporting every syntax error and keeping every item that parses.
fn recover(cx: &Cx<'_>, src: &str) -> (RulesFile, Vec<Diagnostic>) {
    // Detailed attempts give "expected `}` or `rule`" instead of only rule names. Only ever
    // switched on (never off) so concurrent parses see a consistent setting.
    pest::set_error_detail(true);
    let mut items = Vec::new();
    let mut errs = Vec::new();
    let mut pos = skip_trivia(src, 0);
    while pos < src.len() {
        let rest = &src[pos..];
        let word = leading_word(rest);
        match word {
            "keywords" | "default" => {
                let which = if word == "keywords" {
                    Rule::keywords
                } else {
                    Rule::default
                };
                match parse_at(cx, src, pos, which, &mut errs) {
                    Some((pair, end)) => {
                        if let Some(item) = cx.item(pair, pos, &mut errs) {
                            items.push(item);
                        }
                        pos = end;
                    }
                    None => pos = resync(src, pos, false),
                }
            }
            "layer" => pos = recover_layer(cx, src, pos, &mut items, &mut errs),
            _ => {
                let span = cx.sources.span(cx.file, pos, pos + token_len(rest));
                let found = describe_found(rest);
                let help = if word == "rule" {
                    "rules belong inside a layer: `layer heuristic { rule ... }`"
                } else {
                    "a file holds `keywords NAME { ... }`, `layer NAME { ... }` and `default route ...`"
                };
                errs.push(
                    Diagnostic::error(
                        codes::SYNTAX,
                        format!("expected `keywords`, `layer` or `default`, found {found}"),
                        Some(span),
                    )
                    .with_help(help),
                );
                pos = resync(src, pos, false);
            }
        }
        pos = skip_trivia(src, pos);
    }
    if errs.is_empty() {
        // The whole-file parse failed but no item did: report where the whole file failed.
        if let Err(e) = Grammar::parse(Rule::file, src) {
            errs.push(syntax_error(cx, src, 0, &e));
        }
    }
    (
        RulesFile {
            file: cx.file,
            items,
        },
        errs,
    )
}

/// `layer NAME {` then rules one by one, then `}`.
fn recover_layer(
    cx: &Cx<'_>,
    src: &str,
    start: usize,
    items: &mut Vec<Item>,
    errs: &mut Vec<Diagnostic>,
) -> usize {
    // The whole layer may be fine even though something later in the file is not.
    if let Some((pair, end)) = parse_quiet(src, start, Rule::layer) {
        if let Some(item) = cx.item(pair, start, errs) {
            items.push(item);
        }
        return end;
    }
    // Header: `layer` NAME `{`
    let mut pos = skip_trivia(src, start + "layer".len());
    let name_len = src[pos..]
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        .map(|(i, _)| i)
        .unwrap_or(src.len() - pos);
    let name = Ident {
        name: src[pos..pos + name_len].to_owned(),
        span: cx.sources.span(cx.file, pos, pos + name_len),
    };
    let after_name = skip_trivia(src, pos + name_len);
    if name_len == 0 || !src[after_name..].starts_with('{') {
        let at = if name_len == 0 { pos } else { after_name };
        let rest = &src[at..];
        let what = if name_len == 0 { "a layer name" } else { "`{`" };
        errs.push(
            Diagnostic::error(
                codes::SYNTAX,
                format!("expected {what}, found {}", describe_found(rest)),
                Some(cx.sources.span(cx.file, at, at + token_len(rest))),
            )
            .with_help(
                "a layer reads `layer heuristic { rule NAME when CONDITION route PROVIDER }`",
            ),
        );
        return resync(src, start, false);
    }
    pos = skip_trivia(src, after_name + 1);
    let mut rules = Vec::new();
    loop {
        if pos >= src.len() {
            errs.push(
                Diagnostic::error(
                    codes::SYNTAX,
                    format!("layer `{}` is not closed", name.name),
                    Some(name.span),
                )
                .with_help("add `}` after its last rule"),
            );
            break;
        }
        let rest = &src[pos..];
        if rest.starts_with('}') {
            pos += 1;
            break;
        }
        match leading_word(rest) {
            "rule" => match parse_at(cx, src, pos, Rule::rule, errs) {
                Some((pair, end)) => {
                    rules.push(cx.rule(pair, pos, errs));
                    pos = end;
                }
                None => {
                    let (next, closed) = skip_in_layer(src, pos);
                    pos = next;
                    if closed {
                        break;
                    }
                }
            },
            "layer" | "keywords" | "default" => {
                errs.push(
                    Diagnostic::error(
                        codes::SYNTAX,
                        format!("layer `{}` is not closed", name.name),
                        Some(name.span),
                    )
                    .with_help("add `}` after its last rule"),
                );
                break;
            }
            _ => {
                errs.push(
                    Diagnostic::error(
                        codes::SYNTAX,
                        format!("expected `rule` or `}}`, found {}", describe_found(rest)),
                        Some(cx.sources.span(cx.file, pos, pos + token_len(rest))),
                    )
                    .with_help("each rule reads `rule NAME when CONDITION route PROVIDER, ...`"),
                );
                let (next, closed) = skip_in_layer(src, pos);
                pos = next;
                if closed {
                    break;
                }
            }
        }
        pos = skip_trivia(src, pos);
    }
    let span = cx.sources.span(cx.file, start, pos);
    items.push(Item::Layer(LayerBlock { name, rules, span }));
    pos
}

/// Parse `rule` at `pos`; on failure record the syntax error.
fn parse_at<'i>(
    cx: &Cx<'_>,
    src: &'i str,
    pos: usize,
    which: Rule,
    errs: &mut Vec<Diagnostic>,
) -> Option<(Pair<'i, Rule>, usize)> {
    match Grammar::parse(which, &src[pos..]) {
        Ok(mut pairs) => {
            let pair = pairs.next()?;
            let end = pos + pair.as_span().end();
            Some((pair, end))
        }
        Err(e) => {
            errs.push(syntax_error(cx, src, pos, &e));
            None
        }
    }
}

fn parse_quiet(src: &str, pos: usize, which: Rule) -> Option<(Pair<'_, Rule>, usize)> {
    let mut pairs = Grammar::parse(which, &src[pos..]).ok()?;
    let pair = pairs.next()?;
    let end = pos + pair.as_span().end();
    Some((pair, end))
}

/// A pest error as a diagnostic: "expected X or Y, found Z" at the furthest position reached.
fn syntax_error(cx: &Cx<'_>, src: &str, base: usize, e: &pest::error::Error<Rule>) -> Diagnostic {
    let at = base
        + match e.location {
            InputLocation::Pos(p) => p,
            InputLocation::Span((s, _)) => s,
        };
    let at = at.min(src.len());
    let rest = &src[at..];
    let mut expected: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !expected.contains(&s) {
            expected.push(s);
        }
    };
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for r in positives {
            push(describe_rule(*r).to_owned());
        }
    }
    if let Some(attempts) = e.parse_attempts() {
        // Only punctuation and words of the language are worth naming; character ranges and
        // the like are covered by the rule names above.
        const TOKENS: &[&str] = &[
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            ",",
            "=",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "\"",
            "/",
            "keywords",
            "layer",
            "rule",
            "when",
            "route",
            "default",
            "or",
            "and",
            "not",
            "in",
            "any",
            "contains",
            "starts_with",
            "ends_with",
            "matches",
        ];
        for t in attempts.expected_tokens() {
            let token = t.to_string();
            if TOKENS.contains(&token.as_str()) {
                push(format!("`{token}`"));
            }
        }
    }
    // Operators are one idea: name them once.
    const OPERATORS: &[&str] = &[
        "`==`",
        "`!=`",
        "`<`",
        "`<=`",
        "`>`",
        "`>=`",
        "`contains`",
        "`starts_with`",
        "`ends_with`",
        "`in`",
        "`matches`",
        "`any`",
    ];
    if expected
        .iter()
        .any(|e| OPERATORS.contains(&e.as_str()) || e == "an operator")
    {
        expected.retain(|e| !OPERATORS.contains(&e.as_str()) && e != "`(`" && e != "an operator");
        expected.insert(0, "an operator".into());
    }
    expected.retain(|s| !s.is_empty());
    expected.sort_by_key(|s| (s.starts_with('`'), s.clone()));
    let expected = match expected.len() {
        0 => "something else".to_owned(),
        1 => expected[0].clone(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    let found = describe_found(rest);
    let help = help_for(rest, &expected);
    let d = Diagnostic::error(
        codes::SYNTAX,
        format!("expected {expected}, found {found}"),
        Some(cx.sources.span(cx.file, at, at + token_len(rest))),
    );
    match help {
        Some(h) => d.with_help(h),
        None => d,
    }
}

fn help_for(rest: &str, expected: &str) -> Option<String> {
    let word = leading_word(rest);
    if expected.contains("`route`") && matches!(word, "rule" | "}" | "") {
        return Some("every rule needs `route PROVIDER[, PROVIDER...]`".into());
    }
    if rest.starts_with('=') && !rest.starts_with("==") {
        return Some("compare with `==`".into());
    }
    if rest.starts_with('\'') {
        return Some("strings use double quotes: \"text\"".into());
    }
    if matches!(word, "&&") || rest.starts_with("&&") {
        return Some("use `and`".into());
    }
    if rest.starts_with("||") {
        return Some("use `or`".into());
    }
    if rest.starts_with('!') && !rest.starts_with("!=") {
        return Some("use `not`".into());
    }
    None
}

fn describe_rule(r: Rule) -> &'static str {
    match r {
        Rule::file | Rule::EOI => "end of file",
        Rule::keywords | Rule::kw_keywords => "`keywords`",
        Rule::layer | Rule::kw_layer => "`layer`",
        Rule::rule | Rule::kw_rule => "`rule`",
        Rule::default | Rule::kw_default => "`default`",
        Rule::route | Rule::kw_route => "`route`",
        Rule::kw_when => "`when`",
        Rule::kw_or => "`or`",
        Rule::kw_and => "`and`",
        Rule::kw_not => "`not`",
        Rule::kw_in => "`in`",
        Rule::kw_any => "`any`",
        Rule::kw_contains => "`contains`",
        Rule::kw_starts_with => "`starts_with`",
        Rule::kw_ends_with => "`ends_with`",
        Rule::kw_matches => "`matches`",
        Rule::name => "a name",
        Rule::field => "a field",
        Rule::target | Rule::provider_id => "a provider id",
        Rule::keyword_list | Rule::keyword | Rule::string | Rule::string_body => "a string",
        Rule::integer => "an integer",
        Rule::boolean => "`true` or `false`",
        Rule::regex | Rule::regex_body | Rule::regex_flags => "a regex `/.../`",
        Rule::list => "a list `[...]`",
        Rule::op | Rule::list_op => "an operator",
        Rule::expr
        | Rule::conjunction
        | Rule::negation
        | Rule::test
        | Rule::operand
        | Rule::call => "a condition",
        _ => "",
    }
}

/// What the parser found at an error: the next token, quoted, or "end of file".
fn describe_found(rest: &str) -> String {
    let len = token_len(rest);
    if len == 0 {
        "end of file".into()
    } else {
        format!("`{}`", &rest[..len])
    }
}

/// Length in bytes of the token at the start of `rest`: a word, a quoted string, or one char.
fn token_len(rest: &str) -> usize {
    let mut chars = rest.char_indices();
    let Some((_, first)) = chars.next() else {
        return 0;
    };
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '/';
    if is_word(first) {
        return rest
            .char_indices()
            .find(|(_, c)| !is_word(*c))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
    }
    if first == '"' {
        return rest[1..]
            .find(['"', '\n'])
            .map(|i| i + 2)
            .unwrap_or(rest.len())
            .min(rest.len());
    }
    for op in ["==", "!=", "<=", ">=", "&&", "||"] {
        if rest.starts_with(op) {
            return 2;
        }
    }
    first.len_utf8()
}

fn leading_word(rest: &str) -> &str {
    let end = rest
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        .map(|(i, _)| i)
        .unwrap_or(rest.len());
    if end == 0 {
        rest.get(..1).unwrap_or("")
    } else {
        &rest[..end]
    }
}

/// Skip whitespace and `#` comments.
fn skip_trivia(src: &str, mut pos: usize) -> usize {
    let bytes = src.as_bytes();
    while pos < bytes.len() {
        match bytes[pos] {
            b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
            b'#' => {
                pos = src[pos..]
                    .find('\n')
                    .map(|i| pos + i + 1)
                    .unwrap_or(src.len())
            }
            _ if src[pos..].starts_with('\u{FEFF}') => pos += 3,
            _ => break,
        }
    }
    pos
}

/// Skip a broken rule inside a layer: to the next `rule` or `}` line, or just past the `}`
/// that closes the layer if one comes first (`rule a when x = 1 route b }` on one line).
fn skip_in_layer(src: &str, pos: usize) -> (usize, bool) {
    let next = resync(src, pos, true);
    let mut depth = 1i32;
    let mut in_string = false;
    let mut in_comment = false;
    let mut escaped = false;
    for (i, c) in src[pos..next].char_indices() {
        if in_comment {
            in_comment = c != '\n';
            continue;
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') | (false, '\n') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '#' => in_comment = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (pos + i + 1, true);
                }
            }
            _ => {}
        }
    }
    (next, false)
}

/// The start of the next line (after the one holding `pos`) that begins, after indentation,
/// with a top-level word, or inside a layer with `rule` or `}`.
fn resync(src: &str, pos: usize, in_layer: bool) -> usize {
    let mut line_start = src[pos..]
        .find('\n')
        .map(|i| pos + i + 1)
        .unwrap_or(src.len());
    while line_start < src.len() {
        let trimmed = src[line_start..].trim_start_matches([' ', '\t']);
        let at = src.len() - trimmed.len();
        let word = leading_word(trimmed);
        let stop = matches!(word, "layer" | "keywords" | "default")
            || (in_layer && (word == "rule" || trimmed.starts_with('}')));
        if stop {
            return at;
        }
        line_start = src[line_start..]
            .find('\n')
            .map(|i| line_start + i + 1)
            .unwrap_or(src.len());
    }
    src.len()
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
