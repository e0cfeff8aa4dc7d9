//! The typed syntax tree of a `.rules` file, with a [`Span`] on every node.
//!
//! The parser builds it from pest's pairs and nothing past the parser sees a pair. Names are
//! kept as written (fields, layers, sets and providers are resolved by the checker), so a
//! misspelt name can be reported with a suggestion instead of as a syntax error.

/// Index of a source file in a [`super::diag::SourceMap`].
pub type FileId = u32;

/// A region of a source file: byte range plus the 1-based line and column (in characters) of
/// its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
    pub line: u32,
    pub col: u32,
}

/// A name as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// One parsed `.rules` file.
#[derive(Debug, Clone, Default)]
pub struct RulesFile {
    pub file: FileId,
    pub items: Vec<Item>,
}

/// A top-level item.
#[derive(Debug, Clone)]
pub enum Item {
    Envelope(EnvelopeDef),
    Lane(LaneDef),
    Keywords(KeywordSet),
    Layer(LayerBlock),
    Default(DefaultRoute),
}

/// `keywords NAME { "a", "b" = 2 }`
#[derive(Debug, Clone)]
pub struct KeywordSet {
    pub name: Ident,
    pub entries: Vec<Keyword>,
    pub span: Span,
}

/// One keyword (a word or phrase) and its weight (1 unless given; negative: evidence
/// against). A trailing `*` makes it a word prefix (`"deadlock*"` matches "deadlocks").
#[derive(Debug, Clone)]
pub struct Keyword {
    pub text: String,
    pub weight: i64,
    pub span: Span,
}

impl Keyword {
    /// The text to find and whether it is a word prefix (written with a trailing `*`).
    pub fn pattern(&self) -> (&str, bool) {
        let t = self.text.trim();
        match t.strip_suffix('*') {
            Some(stem) if !stem.trim().is_empty() => (stem.trim_end(), true),
            _ => (t, false),
        }
    }
}

pub use crate::router::envelope::EnvelopeKind;

/// `envelope NAME prefix|suffix|anywhere [key] /regex/`
#[derive(Debug, Clone)]
pub struct EnvelopeDef {
    pub name: Ident,
    pub kind: EnvelopeKind,
    /// What it matched identifies the conversation (when the request carries no key of its own).
    pub key: bool,
    pub regex: RegexLit,
    pub span: Span,
}

/// `lane NAME when EXPR`
#[derive(Debug, Clone)]
pub struct LaneDef {
    pub name: Ident,
    pub when: Expr,
    pub span: Span,
}

/// `layer NAME { rule ... }`
#[derive(Debug, Clone)]
pub struct LayerBlock {
    pub name: Ident,
    pub rules: Vec<Rule>,
    pub span: Span,
}

/// `rule NAME [when EXPR] route a, b`
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Ident,
    /// `None`: the rule always matches.
    pub when: Option<Expr>,
    pub route: Vec<Ident>,
    pub span: Span,
}

/// `default route a, b`
#[derive(Debug, Clone)]
pub struct DefaultRoute {
    pub route: Vec<Ident>,
    pub span: Span,
}

/// A condition.
#[derive(Debug, Clone)]
pub enum Expr {
    Or(Vec<Expr>, Span),
    And(Vec<Expr>, Span),
    Not(Box<Expr>, Span),
    Test(Test),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Or(_, s) | Expr::And(_, s) | Expr::Not(_, s) => *s,
            Expr::Test(t) => t.span,
        }
    }
}

/// A single comparison, or a bare operand used as a boolean (`tools`).
#[derive(Debug, Clone)]
pub struct Test {
    pub operand: Operand,
    pub op: Option<(Op, Span)>,
    pub span: Span,
}

/// What a test looks at: a field (`tokens`) or a call (`header("x")`, `score(math, user)`).
#[derive(Debug, Clone)]
pub enum Operand {
    Field(Ident),
    Call {
        name: Ident,
        args: Vec<Arg>,
        span: Span,
    },
}

impl Operand {
    pub fn span(&self) -> Span {
        match self {
            Operand::Field(i) => i.span,
            Operand::Call { span, .. } => *span,
        }
    }
}

/// An argument of a call: a string or a bare name.
#[derive(Debug, Clone)]
pub enum Arg {
    Str(String, Span),
    Name(Ident),
}

pub use crate::router::program::CmpOp;

/// Text operators that take one string or, with `any`, a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextOp {
    Contains,
    StartsWith,
    EndsWith,
}

impl TextOp {
    pub fn as_str(self) -> &'static str {
        match self {
            TextOp::Contains => "contains",
            TextOp::StartsWith => "starts_with",
            TextOp::EndsWith => "ends_with",
        }
    }
}

/// The operator and right-hand side of a test.
#[derive(Debug, Clone)]
pub enum Op {
    Cmp(CmpOp, Literal),
    Text(TextOp, Literal),
    TextAny(TextOp, Vec<Literal>),
    In(Vec<Literal>),
    Matches(RegexLit),
}

/// A literal value with its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    pub value: Value,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Str(String),
    Int(u64),
    Bool(bool),
}

impl Value {
    /// The value's type, for type errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "text",
            Value::Int(_) => "integer",
            Value::Bool(_) => "boolean",
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// `/pattern/flags`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexLit {
    pub pattern: String,
    pub flags: String,
    pub span: Span,
}

impl RegexLit {
    /// The regex source with its flags applied, as the engine compiles it.
    pub fn source(&self) -> String {
        if self.flags.is_empty() {
            self.pattern.clone()
        } else {
            format!("(?{}){}", self.flags, self.pattern)
        }
    }
}
