//! The routing-rule compiler: `rules/*.rules` → a [`RouteTable`] for the router.
//!
//! A pipeline of plain stages, each with one entry point:
//! [`parse::parse`] (pest → [`ast`]), [`check::check`] (names, types, providers, dead rules →
//! [`diag::Diagnostic`]s), [`compile::compile`] (AST → [`RouteTable`]). [`load_dir`] runs the
//! pipeline over a directory. Running the table is the router's part ([`crate::router`]); the
//! commands that use both (`check`, `route --explain`, rule tests) live in [`crate::cli`].
//!
//! Semantics worth knowing when writing rules (the grammar is `grammar/rules.pest`):
//! - Text tests (`==`, `in`, `contains`, `starts_with`, `ends_with`) ignore case; `==`,
//!   `starts_with` and `ends_with` also ignore leading/trailing whitespace. `matches /re/`
//!   follows the regex's own flags (`/re/i` for case-insensitive).
//! - `contains` is a substring test; keywords (`score(set)`) match whole words or phrases:
//!   a boundary is required only at an end that is a letter or digit of a script that writes
//!   spaces between words, so `hi` does not match "this" but `\frac` and `证明` match inside text.
//! - `last_user` is the last user message a person wrote; user messages that are only
//!   client-internal context (see [`crate::router::view::INTERNAL_CONTEXT_MARKERS`]) are
//!   skipped, and `user` leaves them out too.
//! - `tokens` estimates the prompt as characters / 4 over all messages and tool definitions.
//! - `max_tokens` is 0 when the request gives none; `header("x")` is `""` when absent;
//!   `label` is the classifier's answer in `layer classifier` rules (see [`crate::classifier`])
//!   and `""` everywhere else.

pub mod ast;
pub mod capabilities;
pub mod check;
pub mod compile;
pub mod diag;
pub mod fields;
pub mod lint;
pub mod parse;

use std::path::{Path, PathBuf};

pub use check::Providers;
pub use diag::{Diagnostic, Report, Severity, SourceMap};

use crate::router::{RouteTable, TableInfo};
use ast::FileId;

/// Rules that compiled, and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub table: RouteTable,
    /// Warnings only (a table is only built when there are no errors).
    pub warnings: Report,
}

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory or a file in it could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The rules have errors; the report renders them like `clawgate check`.
    #[error("{} error(s) in the rules:\n{}", .0.errors(), .0.render_errors().trim_end())]
    Invalid(Report),
}

/// Load `dir/*.rules` (in file-name order), check them against the providers of `cfg`, and
/// compile them.
///
/// The server calls this at start-up and on every reload, keeping the old table when it fails:
///
/// ```no_run
/// # use clawgate::{config::Config, rules};
/// # let cfg = Config::load("config.yaml".as_ref()).unwrap();
/// match rules::load_dir("rules".as_ref(), &cfg) {
///     Ok(loaded) => {
///         for w in loaded.warnings.render_text().lines() {
///             tracing::warn!("{w}");
///         }
///         let info = loaded.table.info(); // hash, files, rules: for /health
///         # let _ = info;
///         // table_swap.store(Arc::new(loaded.table));
///     }
///     Err(e) => tracing::error!("rules not loaded: {e}"), // keep serving the old table
/// }
/// ```
pub fn load_dir(dir: &Path, cfg: &crate::config::Config) -> Result<Loaded, LoadError> {
    let (sources, files) = read_dir(dir)?;
    let providers = Providers::from_config(cfg);
    let (table, diagnostics) = build(&sources, &files, &providers);
    let report = Report {
        sources,
        diagnostics,
        root: Some(dir.to_owned()),
    };
    match table {
        Some(table) if !report.has_errors() => Ok(Loaded {
            table,
            warnings: report,
        }),
        _ => Err(LoadError::Invalid(report)),
    }
}

/// Read every `*.rules` file of `dir`, sorted by file name.
pub fn read_dir(dir: &Path) -> Result<(SourceMap, Vec<FileId>), LoadError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LoadError::Io { path, source }
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rules") && p.is_file())
        .collect();
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut sources = SourceMap::new();
    let mut files = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(io(&p))?;
        files.push(sources.add(p, text));
    }
    Ok((sources, files))
}

/// Parse, check and compile `files` of `sources`. The table is `None` when there are errors.
pub fn build(
    sources: &SourceMap,
    files: &[FileId],
    providers: &Providers,
) -> (Option<RouteTable>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut parsed = Vec::with_capacity(files.len());
    for &id in files {
        let (file, errs) = parse::parse(sources, id);
        diagnostics.extend(errs);
        parsed.push(file);
    }
    let syntax_errors: Vec<Diagnostic> = std::mem::take(&mut diagnostics);
    let mut all = check::check(&parsed, providers, sources);
    // A literal the parser could not read stands in the AST as a placeholder (an oversized
    // integer as 0): what the lints conclude from its value (never matches, never reached)
    // would be about the placeholder, not the rule as written.
    if syntax_errors
        .iter()
        .any(|d| d.code == diag::codes::INVALID_LITERAL)
    {
        all.retain(|d| d.code != diag::codes::NEVER_MATCHES && d.code != diag::codes::SHADOWED);
    }
    all.extend(syntax_errors);
    all.sort_by_key(|d| match d.span {
        Some(s) => (0, s.file, s.start),
        None => (1, 0, 0),
    });
    if files.is_empty() {
        all.insert(
            0,
            Diagnostic::warning(diag::codes::NO_RULES, "no `.rules` files found", None).with_help(
                "every request will follow fallback_chain; write rules in files named like `10-static.rules`",
            ),
        );
    }
    if all.iter().any(Diagnostic::is_error) {
        return (None, all);
    }
    let info = TableInfo {
        hash: content_hash(sources, files),
        files: files.len(),
        rules: 0,
    };
    match compile::compile(&parsed, info) {
        Ok(table) => (Some(table), all),
        Err(errors) => {
            all.extend(errors);
            (None, all)
        }
    }
}

/// Compile one rules text (tests, benches, examples). Errors come back as a report.
pub fn compile_str(text: &str, providers: &Providers) -> Result<RouteTable, Report> {
    let mut sources = SourceMap::new();
    let id = sources.add("inline.rules", text.to_owned());
    let (table, diagnostics) = build(&sources, &[id], providers);
    let report = Report {
        sources,
        diagnostics,
        root: None,
    };
    match table {
        Some(t) => Ok(t),
        None => Err(report),
    }
}

/// Short hex FNV-1a hash of the files' names and contents: equal for equal rule sets, so a
/// reload that changes nothing can be skipped.
pub fn content_hash(sources: &SourceMap, files: &[FileId]) -> String {
    let mut h = crate::util::Fnv::new();
    let mut feed = |bytes: &[u8]| h.feed(bytes);
    for &id in files {
        if let Some(f) = sources.get(id) {
            let name = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            feed(name.as_bytes());
            feed(&[0]);
            feed(f.text.as_bytes());
            feed(&[0]);
        }
    }
    format!("{:016x}", h.finish())[..12].to_owned()
}
