//! Name resolution shared by the checker and the compiler: what a field or call in a rule
//! refers to, and what type it has.

use std::collections::HashMap;

use super::ast::{Arg, Ident, Operand, Span};
use super::check::Collected;
use super::diag::{codes, did_you_mean, Diagnostic};
use crate::router::program::{BoolField, TextField};

/// Every field and function a condition may use, for suggestions.
pub const FIELD_NAMES: &[&str] = &[
    "model",
    "user",
    "last_user",
    "last_user_raw",
    "system",
    "lane",
    "previous_provider",
    "previous_rule",
    "label",
    "tokens",
    "last_user_tokens",
    "user_turns",
    "messages",
    "max_tokens",
    "tools",
    "tool_loop",
    "images",
    "stream",
    "header",
    "envelope",
    "score",
];

/// The names rules may refer to: keyword sets, envelopes and lanes, with where each is defined.
#[derive(Debug, Default)]
pub struct Names {
    pub sets: HashMap<String, Span>,
    pub envelopes: HashMap<String, Span>,
    /// Declared lanes in order (`main` is implicit).
    pub lanes: Vec<String>,
}

impl Names {
    pub fn of(col: &Collected<'_>) -> Self {
        Names {
            sets: col
                .sets
                .iter()
                .map(|(k, v)| (k.clone(), v.name.span))
                .collect(),
            envelopes: col
                .envelopes
                .iter()
                .map(|e| (e.name.name.clone(), e.name.span))
                .collect(),
            lanes: col.lanes.iter().map(|l| l.name.name.clone()).collect(),
        }
    }
}

/// An integer operand.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IntOperand {
    Tokens,
    LastUserTokens,
    UserTurns,
    Messages,
    MaxTokens,
    /// `score(set)` (over `last_user`) or `score(set, user)` (over all user messages).
    Score {
        set: String,
        all_users: bool,
    },
}

impl IntOperand {
    pub fn display(&self) -> String {
        match self {
            IntOperand::Tokens => "tokens".into(),
            IntOperand::LastUserTokens => "last_user_tokens".into(),
            IntOperand::UserTurns => "user_turns".into(),
            IntOperand::Messages => "messages".into(),
            IntOperand::MaxTokens => "max_tokens".into(),
            IntOperand::Score {
                set,
                all_users: false,
            } => format!("score({set})"),
            IntOperand::Score {
                set,
                all_users: true,
            } => format!("score({set}, user)"),
        }
    }
}

/// What an operand refers to, with its type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resolved {
    Text(TextField),
    Int(IntOperand),
    Bool(BoolField),
}

impl Resolved {
    pub fn type_name(&self) -> &'static str {
        match self {
            Resolved::Text(_) => "text",
            Resolved::Int(_) => "an integer",
            Resolved::Bool(_) => "a boolean",
        }
    }

    pub fn display(&self) -> String {
        match self {
            Resolved::Text(t) => t.display(),
            Resolved::Int(i) => i.display(),
            Resolved::Bool(b) => b.as_str().into(),
        }
    }
}

/// Resolve an operand. `sets` maps keyword set names to where they are defined.
pub fn resolve(op: &Operand, names: &Names) -> Result<Resolved, Diagnostic> {
    let sets = &names.sets;
    match op {
        Operand::Field(Ident { name, span }) => match name.as_str() {
            "model" => Ok(Resolved::Text(TextField::Model)),
            "user" => Ok(Resolved::Text(TextField::User)),
            "last_user" => Ok(Resolved::Text(TextField::LastUser)),
            "last_user_raw" => Ok(Resolved::Text(TextField::LastUserRaw)),
            "lane" => Ok(Resolved::Text(TextField::Lane)),
            "previous_provider" => Ok(Resolved::Text(TextField::PreviousProvider)),
            "previous_rule" => Ok(Resolved::Text(TextField::PreviousRule)),
            "system" => Ok(Resolved::Text(TextField::System)),
            "label" => Ok(Resolved::Text(TextField::Label)),
            "tokens" => Ok(Resolved::Int(IntOperand::Tokens)),
            "last_user_tokens" => Ok(Resolved::Int(IntOperand::LastUserTokens)),
            "user_turns" => Ok(Resolved::Int(IntOperand::UserTurns)),
            "messages" => Ok(Resolved::Int(IntOperand::Messages)),
            "max_tokens" => Ok(Resolved::Int(IntOperand::MaxTokens)),
            "tools" => Ok(Resolved::Bool(BoolField::Tools)),
            "images" => Ok(Resolved::Bool(BoolField::Images)),
            "stream" => Ok(Resolved::Bool(BoolField::Stream)),
            "tool_loop" => Ok(Resolved::Bool(BoolField::ToolLoop)),
            "header" => {
                Err(
                    Diagnostic::error(codes::TYPE, "`header` needs the header's name", Some(*span))
                        .with_help("write `header(\"x-openclaw-source\")`"),
                )
            }
            "score" => {
                Err(
                    Diagnostic::error(codes::TYPE, "`score` needs a keyword set", Some(*span))
                        .with_help("write `score(math) >= 2`"),
                )
            }
            "envelope" => Err(Diagnostic::error(
                codes::TYPE,
                "`envelope` needs the envelope's name",
                Some(*span),
            )
            .with_help("write `envelope(\"runtime\") contains \":subagent:\"`")),
            _ => {
                let d = Diagnostic::error(
                    codes::UNKNOWN_FIELD,
                    format!("unknown field `{name}`"),
                    Some(*span),
                );
                Err(match did_you_mean(name, FIELD_NAMES.iter().copied()) {
                    Some(h) => d.with_help(h),
                    None => d.with_help(format!("fields are: {}", FIELD_NAMES.join(", "))),
                })
            }
        },
        Operand::Call { name, args, span } => match name.name.as_str() {
            "header" => match args.as_slice() {
                [Arg::Str(h, hspan)] => {
                    if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                        return Err(Diagnostic::error(
                            codes::TYPE,
                            format!("`{h}` is not a valid header name"),
                            Some(*hspan),
                        ));
                    }
                    Ok(Resolved::Text(TextField::Header(h.to_ascii_lowercase())))
                }
                [Arg::Name(n)] => {
                    Err(
                        Diagnostic::error(codes::TYPE, "a header name is a string", Some(n.span))
                            .with_help(format!("write `header(\"{}\")`", n.name)),
                    )
                }
                _ => Err(Diagnostic::error(
                    codes::TYPE,
                    "`header` takes exactly one header name",
                    Some(*span),
                )
                .with_help("write `header(\"x-openclaw-source\")`")),
            },
            "envelope" => match args.as_slice() {
                [Arg::Str(n, nspan)]
                | [Arg::Name(Ident {
                    name: n,
                    span: nspan,
                })] => {
                    if names.envelopes.contains_key(n) {
                        return Ok(Resolved::Text(TextField::Envelope(n.clone())));
                    }
                    let d = Diagnostic::error(
                        codes::LANE,
                        format!("unknown envelope `{n}`"),
                        Some(*nspan),
                    );
                    Err(
                        match did_you_mean(n, names.envelopes.keys().map(String::as_str)) {
                            Some(h) => d.with_help(h),
                            None if names.envelopes.is_empty() => d.with_help(format!(
                                "define it: `envelope {n} prefix /^\\[[^\\]]*\\] */`"
                            )),
                            None => {
                                let mut all: Vec<&str> =
                                    names.envelopes.keys().map(String::as_str).collect();
                                all.sort_unstable();
                                d.with_help(format!("envelopes are: {}", all.join(", ")))
                            }
                        },
                    )
                }
                _ => Err(Diagnostic::error(
                    codes::TYPE,
                    "`envelope` takes exactly one envelope name",
                    Some(*span),
                )
                .with_help("write `envelope(\"runtime\")`")),
            },
            "score" => {
                let (set, set_span) = match args.first() {
                    Some(Arg::Name(n)) => (n.name.clone(), n.span),
                    Some(Arg::Str(s, sp)) => (s.clone(), *sp),
                    None => {
                        return Err(Diagnostic::error(
                            codes::TYPE,
                            "`score` needs a keyword set",
                            Some(*span),
                        )
                        .with_help("write `score(math) >= 2`"))
                    }
                };
                if !sets.contains_key(&set) {
                    let d = Diagnostic::error(
                        codes::UNKNOWN_KEYWORD_SET,
                        format!("unknown keyword set `{set}`"),
                        Some(set_span),
                    );
                    return Err(match did_you_mean(&set, sets.keys().map(String::as_str)) {
                        Some(h) => d.with_help(h),
                        None if sets.is_empty() => d.with_help(format!(
                            "define it: `keywords {set} {{ \"word\", \"a phrase\" }}`"
                        )),
                        None => {
                            let mut names: Vec<&str> = sets.keys().map(String::as_str).collect();
                            names.sort_unstable();
                            d.with_help(format!("keyword sets are: {}", names.join(", ")))
                        }
                    });
                }
                let all_users = match args.get(1) {
                    None => false,
                    Some(Arg::Name(n)) if n.name == "last_user" => false,
                    Some(Arg::Name(n)) if n.name == "user" => true,
                    Some(Arg::Name(Ident { span, .. })) | Some(Arg::Str(_, span)) => {
                        return Err(Diagnostic::error(
                            codes::TYPE,
                            "`score` counts keywords in `last_user` (the default) or `user`",
                            Some(*span),
                        )
                        .with_help(
                            "scores never look at the system prompt: it names every keyword under the sun",
                        ))
                    }
                };
                if let Some(extra) = args.get(2) {
                    let s = match extra {
                        Arg::Name(n) => n.span,
                        Arg::Str(_, s) => *s,
                    };
                    return Err(Diagnostic::error(
                        codes::TYPE,
                        "`score` takes a keyword set and optionally `user`",
                        Some(s),
                    ));
                }
                Ok(Resolved::Int(IntOperand::Score { set, all_users }))
            }
            other => {
                let is_field = FIELD_NAMES.contains(&other);
                let d = if is_field {
                    Diagnostic::error(
                        codes::TYPE,
                        format!("`{other}` is a field, not a function"),
                        Some(name.span),
                    )
                    .with_help(format!("write `{other}` without parentheses"))
                } else {
                    let d = Diagnostic::error(
                        codes::UNKNOWN_FIELD,
                        format!("unknown function `{other}`"),
                        Some(name.span),
                    );
                    match did_you_mean(other, ["header", "score", "envelope"]) {
                        Some(h) => d.with_help(h),
                        None => d.with_help(
                            "functions are `header(\"name\")`, `score(set)` and `envelope(\"name\")`",
                        ),
                    }
                };
                Err(d)
            }
        },
    }
}
