//! Diagnostics: what `validate` reports, with a stable code, a place in the input and a help line.

use std::sync::Arc;

use serde::Serialize;

use crate::source::Source;

/// How bad a diagnostic is. Errors fail `validate`; warnings fail it only with `--deny-warnings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A byte range of the input file, with the 1-based line and column of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub column: usize,
}

/// One problem found in a topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The stable code of DESIGN.md §5 (`E006`).
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// Where in the input; `None` only when the file could not be read at all.
    pub span: Option<Span>,
    /// A short label shown under the snippet.
    pub label: Option<String>,
    /// How to fix it.
    pub help: String,
}

impl Diagnostic {
    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        span: Option<Span>,
        help: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            severity: if code.starts_with('W') { Severity::Warning } else { Severity::Error },
            message: message.into(),
            span,
            label: None,
            help: help.into(),
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// How `validate` prints diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Sarif,
}

/// Renders diagnostics for a terminal or a log: one miette report per diagnostic, with the source
/// snippet, the label under the offending place, and the help line.
pub fn render_human(diagnostics: &[Diagnostic], source: &Source, color: bool) -> String {
    let theme =
        if color { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_context_lines(2).with_width(110);
    let named = Arc::new(miette::NamedSource::new(source.name.clone(), source.text.clone()));
    let mut out = String::new();
    for diagnostic in diagnostics {
        let report = Report { diagnostic, source: Arc::clone(&named), file: &source.name };
        if handler.render_report(&mut out, &report).is_err() {
            out.push_str(&format!("{}: {}\n", diagnostic.code, diagnostic.message));
        }
    }
    let errors = diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count();
    let warnings = diagnostics.len() - errors;
    out.push_str(&format!(
        "{}: {} error{}, {} warning{}\n",
        source.name,
        errors,
        if errors == 1 { "" } else { "s" },
        warnings,
        if warnings == 1 { "" } else { "s" }
    ));
    out
}

/// The JSON of DESIGN.md §5: `{"valid": bool, "diagnostics": [{code, severity, message, file, line,
/// column, help}]}`.
pub fn render_json(diagnostics: &[Diagnostic], file: &str, valid: bool) -> serde_json::Value {
    let items: Vec<serde_json::Value> = diagnostics
        .iter()
        .map(|diagnostic| {
            let mut item = serde_json::json!({
                "code": diagnostic.code,
                "severity": diagnostic.severity,
                "message": diagnostic.message,
                "file": file,
                "help": diagnostic.help,
            });
            if let Some(span) = diagnostic.span {
                item["line"] = span.line.into();
                item["column"] = span.column.into();
            }
            item
        })
        .collect();
    serde_json::json!({ "valid": valid, "diagnostics": items })
}

/// SARIF 2.1.0, for code-scanning upload: one rule per code, one result per diagnostic.
pub fn render_sarif(diagnostics: &[Diagnostic], file: &str) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = crate::check::CODES
        .iter()
        .map(|(code, rule)| {
            serde_json::json!({
                "id": code,
                "shortDescription": { "text": rule },
                "helpUri": format!("https://github.com/agentweave/weave/blob/main/docs/codes/{code}.md"),
                "defaultConfiguration": { "level": if code.starts_with('W') { "warning" } else { "error" } },
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = diagnostics
        .iter()
        .map(|diagnostic| {
            let mut location = serde_json::json!({
                "physicalLocation": { "artifactLocation": { "uri": file } }
            });
            if let Some(span) = diagnostic.span {
                location["physicalLocation"]["region"] = serde_json::json!({
                    "startLine": span.line,
                    "startColumn": span.column,
                    "charOffset": span.start,
                    "charLength": span.end - span.start,
                });
            }
            serde_json::json!({
                "ruleId": diagnostic.code,
                "level": if diagnostic.is_error() { "error" } else { "warning" },
                "message": { "text": format!("{}. Help: {}", diagnostic.message, diagnostic.help) },
                "locations": [location],
            })
        })
        .collect();
    serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "weave",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/agentweave/weave",
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

struct Report<'a> {
    diagnostic: &'a Diagnostic,
    source: Arc<miette::NamedSource<String>>,
    file: &'a str,
}

impl std::fmt::Debug for Report<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Report").field("diagnostic", self.diagnostic).finish()
    }
}

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // With a span, the snippet's header names the file, line and column; without one, say which
        // file the problem is about.
        match self.diagnostic.span {
            Some(_) => write!(formatter, "{}", self.diagnostic.message),
            None => write!(formatter, "{} ({})", self.diagnostic.message, self.file),
        }
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        Some(Box::new(&self.diagnostic.help))
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.diagnostic.span.map(|_| self.source.as_ref() as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.diagnostic.span?;
        let label = miette::LabeledSpan::new(
            Some(self.diagnostic.label.clone().unwrap_or_else(|| "here".to_owned())),
            span.start,
            span.end
                .saturating_sub(span.start)
                .max(1)
                .min(self.source.inner().len().saturating_sub(span.start)),
        );
        Some(Box::new(std::iter::once(label)))
    }
}
