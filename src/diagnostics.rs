//! Diagnostics: what `validate` reports, with a stable code, a place in the input and a help line.

use serde::Serialize;

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
