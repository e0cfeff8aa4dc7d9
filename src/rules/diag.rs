//! Diagnostics: what `clawgate check` reports, and how it is rendered (rustc-style text or JSON).
//!
//! A [`Diagnostic`] carries a code, a message, an optional [`Span`] and an optional help line;
//! a [`Report`] pairs diagnostics with the [`SourceMap`] they point into, so rendering can show
//! the source line and a caret under the span.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::ast::{FileId, Span};

/// How bad a diagnostic is: errors stop the rules from loading, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// The stable diagnostic codes (documented in `clawgate check`'s output and in docs/rules.md).
pub mod codes {
    /// The command could not run (unreadable config, rules directory or request).
    pub const CANNOT_RUN: &str = "E000";
    /// The file does not follow the grammar.
    pub const SYNTAX: &str = "E001";
    /// A route names a provider that `config.yaml` does not define.
    pub const UNKNOWN_PROVIDER: &str = "E002";
    /// An unknown field or function.
    pub const UNKNOWN_FIELD: &str = "E003";
    /// `score(set)` names a keyword set that is not defined.
    pub const UNKNOWN_KEYWORD_SET: &str = "E004";
    /// `layer NAME` is not one of static, heuristic, classifier.
    pub const UNKNOWN_LAYER: &str = "E005";
    /// An operator applied to a field of the wrong type (`tokens contains "x"`).
    pub const TYPE: &str = "E006";
    /// A `matches /re/` that does not compile, or an unknown flag.
    pub const INVALID_REGEX: &str = "E007";
    /// Two rules share a name (names appear in headers and metrics, so they must be unique).
    pub const DUPLICATE_RULE: &str = "E008";
    /// Two keyword sets share a name.
    pub const DUPLICATE_KEYWORD_SET: &str = "E009";
    /// More than one `default`.
    pub const DUPLICATE_DEFAULT: &str = "E010";
    /// A literal that cannot be used (an integer too large, an empty keyword).
    pub const INVALID_LITERAL: &str = "E011";
    /// A case in `rules/tests/*.yaml` routed differently than expected.
    pub const TEST_FAILED: &str = "E012";
    /// A rule test file that cannot be read or understood.
    pub const INVALID_TEST: &str = "E013";
    /// Lanes and envelopes: an unknown or duplicate lane or envelope name, a lane condition
    /// that reads `lane`, `label` or the conversation's previous decision, an envelope regex
    /// that can match nothing but the empty text.
    pub const LANE: &str = "E014";
    /// A provider that `config.yaml` defines but did not load (no API key).
    pub const PROVIDER_NOT_LOADED: &str = "W001";
    /// A rule whose condition can never be true.
    pub const NEVER_MATCHES: &str = "W002";
    /// A rule (or the default) that an earlier rule always wins over.
    pub const SHADOWED: &str = "W003";
    /// No `default` route.
    pub const MISSING_DEFAULT: &str = "W004";
    /// A keyword set no rule uses, or a keyword listed twice.
    pub const UNUSED_KEYWORD: &str = "W005";
    /// No `.rules` files were found.
    pub const NO_RULES: &str = "W006";
    /// A `layer classifier` rule while `llm_classifier.enabled` is false: it only ever sees `label == ""`.
    pub const CLASSIFIER_DISABLED: &str = "W007";
    /// `label` compared with a string that no `category_routing` label produces.
    pub const UNKNOWN_LABEL: &str = "W008";
    /// A rule that takes only requests with images (tools, a prompt of N tokens or more) and
    /// routes only to providers declared unable to take them.
    pub const TARGETS_CANNOT_TAKE: &str = "W009";
    /// A route that may get images (tools) whose whole chain declares `vision: false`
    /// (`tools: false`).
    pub const CHAIN_LACKS_CAPABILITY: &str = "W010";
}

/// One finding about the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    /// Where; `None` for findings about the rule set as a whole (a missing default).
    pub span: Option<Span>,
    /// A label printed next to the caret.
    pub label: Option<String>,
    /// `= help: ...`
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>, span: Option<Span>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            label: None,
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>, span: Option<Span>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message, span)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A "did you mean" help line, if a candidate is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    crate::suggest::did_you_mean(name, candidates.iter().copied())
        .or_else(|| {
            candidates
                .iter()
                .copied()
                .find(|c| is_transposition(name, c))
        })
        .map(|s| format!("did you mean `{s}`?"))
}

/// `modle` for `model`: two adjacent characters swapped (edit distance 2, but an obvious typo).
fn is_transposition(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() != b.len() || a.len() < 2 {
        return false;
    }
    let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    matches!(diff.as_slice(), [i, j] if *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i])
}

/// One source file: its path as shown to the user and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<u32>,
}

/// The files diagnostics point into.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// "file:line:col" of a span.
    pub fn at(&self, span: Span) -> String {
        match self.get(span.file) {
            Some(f) => format!("{}:{}:{}", f.path.display(), span.line, span.col),
            None => format!("{}:{}", span.line, span.col),
        }
    }

    pub fn new() -> Self {
        SourceMap::default()
    }

    /// Add a file; the returned id goes into every [`Span`] of it.
    pub fn add(&mut self, path: impl Into<PathBuf>, text: String) -> FileId {
        let mut line_starts = vec![0u32];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i as u32 + 1);
            }
        }
        self.files.push(SourceFile {
            path: path.into(),
            text,
            line_starts,
        });
        (self.files.len() - 1) as FileId
    }

    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id as usize)
    }

    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// The span of bytes `start..end` of file `id`, with its line and column filled in.
    pub fn span(&self, id: FileId, start: usize, end: usize) -> Span {
        let (line, col) = self.get(id).map(|f| f.line_col(start)).unwrap_or((1, 1));
        Span {
            file: id,
            start: start as u32,
            end: end.max(start) as u32,
            line,
            col,
        }
    }
}

impl SourceFile {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s as usize <= offset);
        let start = self.line_starts[line.saturating_sub(1)] as usize;
        let col = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        (line as u32, col as u32 + 1)
    }

    /// The text of 1-based line `line`, without its newline.
    pub fn line_text(&self, line: u32) -> &str {
        let i = (line as usize).saturating_sub(1);
        let Some(&start) = self.line_starts.get(i) else {
            return "";
        };
        let end = self
            .line_starts
            .get(i + 1)
            .map(|&e| e as usize)
            .unwrap_or(self.text.len());
        self.text
            .get(start as usize..end)
            .unwrap_or("")
            .trim_end_matches(['\n', '\r'])
    }
}

/// Diagnostics together with the sources they point into.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub sources: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
    /// Shown for diagnostics without a span (the rules directory).
    pub root: Option<PathBuf>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Every diagnostic, rendered like rustc, separated by blank lines.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            render_one(&mut out, d, &self.sources, self.root.as_deref());
            out.push('\n');
        }
        out
    }

    /// Only the errors, rendered (what a failed reload logs and `/health` shows).
    pub fn render_errors(&self) -> String {
        let mut out = String::new();
        for d in self.diagnostics.iter().filter(|d| d.is_error()) {
            render_one(&mut out, d, &self.sources, self.root.as_deref());
            out.push('\n');
        }
        out
    }

    /// `{"severity","code","message","file","line","column","help"}` per diagnostic.
    pub fn diagnostics_json(&self) -> Vec<serde_json::Value> {
        self.diagnostics
            .iter()
            .map(|d| {
                let file = d
                    .span
                    .and_then(|s| self.sources.get(s.file))
                    .map(|f| f.path.display().to_string())
                    .or_else(|| self.root.as_ref().map(|r| r.display().to_string()));
                serde_json::json!({
                    "severity": d.severity.as_str(),
                    "code": d.code,
                    "message": d.message,
                    "file": file,
                    "line": d.span.map(|s| s.line),
                    "column": d.span.map(|s| s.col),
                    "help": d.help,
                })
            })
            .collect()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.render_text().trim_end())
    }
}

fn render_one(out: &mut String, d: &Diagnostic, sources: &SourceMap, root: Option<&Path>) {
    let _ = writeln!(out, "{}[{}]: {}", d.severity.as_str(), d.code, d.message);
    let located = d.span.and_then(|s| sources.get(s.file).map(|f| (s, f)));
    let Some((span, file)) = located else {
        if let Some(root) = root {
            let _ = writeln!(out, " --> {}", root.display());
        }
        if let Some(help) = &d.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        return;
    };
    let line_no = span.line.to_string();
    let pad = " ".repeat(line_no.len());
    let _ = writeln!(
        out,
        "{pad}--> {}:{}:{}",
        file.path.display(),
        span.line,
        span.col
    );
    let text = file.line_text(span.line);
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{line_no} | {}", text.replace('\t', " "));
    // The caret runs under the span, clipped to the end of its first line.
    let col0 = span.col.saturating_sub(1) as usize;
    let line_chars = text.chars().count();
    let span_text = file
        .text
        .get(span.start as usize..span.end as usize)
        .unwrap_or("");
    let span_chars = span_text.split('\n').next().unwrap_or("").chars().count();
    let width = span_chars.min(line_chars.saturating_sub(col0)).max(1);
    let _ = write!(out, "{pad} | {}{}", " ".repeat(col0), "^".repeat(width));
    match &d.label {
        Some(label) => {
            let _ = writeln!(out, " {label}");
        }
        None => out.push('\n'),
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{pad} = help: {help}");
    }
}
