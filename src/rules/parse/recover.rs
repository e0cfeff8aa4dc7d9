//! Error recovery: a file that does not parse is parsed again item by item (and rule by rule
//! inside a layer), skipping to the next line that starts a `rule`, `layer`, `keywords` or
//! `default` after each error, so one run reports every broken rule and the intact ones still
//! get checked; each pest error becomes a diagnostic ("expected X or Y, found Z") with a help
//! line where the fix is obvious.

use pest::error::InputLocation;
use pest::iterators::Pair;
use pest::Parser as _;

use super::{Cx, Grammar, Rule};
use crate::rules::ast::*;
use crate::rules::diag::{codes, Diagnostic};

/// Parse item by item, reporting every syntax error and keeping every item that parses.
pub(super) fn recover(cx: &Cx<'_>, src: &str) -> (RulesFile, Vec<Diagnostic>) {
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
            "keywords" | "default" | "envelope" | "lane" => {
                let which = match word {
                    "keywords" => Rule::keywords,
                    "envelope" => Rule::envelope,
                    "lane" => Rule::lane,
                    _ => Rule::default,
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
                    "a file holds `envelope NAME prefix /re/`, `lane NAME when ...`, `keywords NAME { ... }`, `layer NAME { ... }` and `default route ...`"
                };
                errs.push(
                    Diagnostic::error(
                        codes::SYNTAX,
                        format!("expected `envelope`, `lane`, `keywords`, `layer` or `default`, found {found}"),
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
    let unclosed = || {
        Diagnostic::error(
            codes::SYNTAX,
            format!("layer `{}` is not closed", name.name),
            Some(name.span),
        )
        .with_help("add `}` after its last rule")
    };
    let mut rules = Vec::new();
    loop {
        if pos >= src.len() {
            errs.push(unclosed());
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
                errs.push(unclosed());
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
        Rule::envelope | Rule::kw_envelope => "`envelope`",
        Rule::lane | Rule::kw_lane => "`lane`",
        Rule::kw_key => "`key`",
        Rule::envelope_kind => "`prefix`, `suffix` or `anywhere`",
        Rule::weight => "a weight",
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

/// Whether a line starts a `lane NAME when` or `envelope NAME prefix|suffix|anywhere` item (a
/// condition's continuation line may start with the field `lane`, as in `lane == "cron"`).
fn starts_lane_or_envelope(line: &str) -> bool {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("lane"), Some(name), Some("when")) => leading_word(name) == name,
        (Some("envelope"), Some(_), Some(kind)) => {
            matches!(kind, "prefix" | "suffix" | "anywhere")
        }
        _ => false,
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
            || starts_lane_or_envelope(trimmed)
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
