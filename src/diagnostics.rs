//! Diagnostics: what `validate` reports, with a stable code, a place in the input and a help line.

use serde::Serialize;

use crate::source::Source;

/// How bad a diagnostic is. Errors fail `validate`; warnings fail it only with `--deny-warnings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// The stable code of a diagnostic (DESIGN.md §5). A code is a type, not a string: a diagnostic
/// cannot be made with a code that does not exist, and each code carries its severity, its title
/// and the page that documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// YAML syntax error, duplicate key, alias bomb, or input over the size, depth or count limits
    E000,
    /// schema: wrong type, missing required key, unknown key
    E001,
    /// duplicate site or agent name; duplicate SPIFFE ID
    E002,
    /// unknown reference: calls.agent, fallback, metrics.central, bundleEndpoints key, pairs entry
    E003,
    /// invalid trust domain name or SPIFFE ID
    E004,
    /// global.trustDomains disagrees with the sites' trust domains
    E005,
    /// a call crosses trust domains that are not federated
    E006,
    /// federation inconsistent: missing bundle endpoint, federation within one domain, bad bundle URL
    E007,
    /// an action in calls is not among the callee's capabilities
    E008,
    /// fallback in the same site, or serving fewer actions than its primary
    E009,
    /// overlapping or missing pod CIDRs (vpn)
    E010,
    /// PodDisruptionBudget minAvailable ≥ replicas
    E011,
    /// a secret inline
    E012,
    /// a name that is not a DNS-1123 label, or would escape the output directory
    E013,
    /// one trust domain spans several sites without spire.upstreamAuthority
    E014,
    /// networking.type and networking.tailscale.enabled disagree; tailscale without tailnet
    E015,
    /// a value the consumer rejects: a zero TTL, svidTtl not below caTtl, mesh.port equal to metricsPort
    E016,
    /// a cloud node attestor on a site, where workloads are registered on k8s_psat agent IDs
    E020,
    /// an agent that serves nothing and calls nothing
    W101,
    /// a public action also granted explicitly on an edge
    W102,
    /// a site with no agents
    W103,
    /// a secret-looking value in a field that is not meant to hold one
    W104,
    /// federation.pairs is `all` while only some federated pairs are ever called
    W105,
    /// allowSameTrustDomain while one trust domain spans several sites
    W106,
    /// a wildcard or empty action list on a call
    W107,
    /// a capability asked for the Tailscale sidecar with userspace networking
    W108,
    /// https_web bundle endpoints without acmeEmail or a named certificateIssuer
    W109,
    /// agents that call each other across two sites no VPN link can join
    W110,
}

impl Code {
    /// Every code, in order.
    pub const ALL: [Code; 28] = [
        Code::E000,
        Code::E001,
        Code::E002,
        Code::E003,
        Code::E004,
        Code::E005,
        Code::E006,
        Code::E007,
        Code::E008,
        Code::E009,
        Code::E010,
        Code::E011,
        Code::E012,
        Code::E013,
        Code::E014,
        Code::E015,
        Code::E016,
        Code::E020,
        Code::W101,
        Code::W102,
        Code::W103,
        Code::W104,
        Code::W105,
        Code::W106,
        Code::W107,
        Code::W108,
        Code::W109,
        Code::W110,
    ];

    /// The code as written in reports: `E006`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::E000 => "E000",
            Code::E001 => "E001",
            Code::E002 => "E002",
            Code::E003 => "E003",
            Code::E004 => "E004",
            Code::E005 => "E005",
            Code::E006 => "E006",
            Code::E007 => "E007",
            Code::E008 => "E008",
            Code::E009 => "E009",
            Code::E010 => "E010",
            Code::E011 => "E011",
            Code::E012 => "E012",
            Code::E013 => "E013",
            Code::E014 => "E014",
            Code::E015 => "E015",
            Code::E016 => "E016",
            Code::E020 => "E020",
            Code::W101 => "W101",
            Code::W102 => "W102",
            Code::W103 => "W103",
            Code::W104 => "W104",
            Code::W105 => "W105",
            Code::W106 => "W106",
            Code::W107 => "W107",
            Code::W108 => "W108",
            Code::W109 => "W109",
            Code::W110 => "W110",
        }
    }

    /// One line saying what the rule checks.
    pub fn title(self) -> &'static str {
        match self {
            Code::E000 => {
                "YAML syntax error, duplicate key, alias bomb, or input over the size, depth or count limits"
            }
            Code::E001 => "schema: wrong type, missing required key, unknown key",
            Code::E002 => "duplicate site or agent name; duplicate SPIFFE ID",
            Code::E003 => {
                "unknown reference: calls.agent, fallback, metrics.central, bundleEndpoints key, pairs entry"
            }
            Code::E004 => "invalid trust domain name or SPIFFE ID",
            Code::E005 => "global.trustDomains disagrees with the sites' trust domains",
            Code::E006 => "a call crosses trust domains that are not federated",
            Code::E007 => {
                "federation inconsistent: missing bundle endpoint, federation within one domain, bad bundle URL"
            }
            Code::E008 => "an action in calls is not among the callee's capabilities",
            Code::E009 => "fallback in the same site, or serving fewer actions than its primary",
            Code::E010 => "overlapping or missing pod CIDRs or ingress ranges (vpn)",
            Code::E011 => "PodDisruptionBudget minAvailable ≥ replicas",
            Code::E012 => "a secret inline",
            Code::E013 => "a name that is not a DNS-1123 label, or would escape the output directory",
            Code::E014 => "one trust domain spans several sites without spire.upstreamAuthority",
            Code::E015 => {
                "networking.type and networking.tailscale.enabled disagree; tailscale without tailnet"
            }
            Code::E016 => {
                "a value the consumer rejects: a zero TTL, svidTtl not below caTtl, mesh.port equal to metricsPort"
            }
            Code::E020 => {
                "a cloud node attestor on a site, where workloads are registered on k8s_psat agent IDs"
            }
            Code::W101 => "an agent that serves nothing and calls nothing",
            Code::W102 => "a public action also granted explicitly on an edge",
            Code::W103 => "a site with no agents",
            Code::W104 => "a secret-looking value in a field that is not meant to hold one",
            Code::W105 => "federation.pairs is `all` while only some federated pairs are ever called",
            Code::W106 => "allowSameTrustDomain while one trust domain spans several sites",
            Code::W107 => "a wildcard or empty action list on a call",
            Code::W108 => "a capability asked for the Tailscale sidecar with userspace networking",
            Code::W109 => "https_web bundle endpoints without acmeEmail or a named certificateIssuer",
            Code::W110 => "agents call each other across two sites that no VPN link can join",
        }
    }

    /// Errors fail `validate`; warnings only with `--deny-warnings`.
    pub fn severity(self) -> Severity {
        if self.as_str().starts_with('W') { Severity::Warning } else { Severity::Error }
    }

    /// The page documenting the code, relative to the repository.
    pub fn doc_path(self) -> String {
        format!("docs/codes/{}.md", self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
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
    pub code: Code,
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
        code: Code,
        message: impl Into<String>,
        span: Option<Span>,
        help: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
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

/// Source lines in a snippet are cut to this many characters around the underlined place: a
/// topology written as one 16 MB line of JSON prints a snippet of a terminal's width, not the line.
pub const SNIPPET_WIDTH: usize = 120;

/// When a line is cut, this many characters before the underlined place stay in view.
const SNIPPET_LEAD: usize = 40;

/// Lines shown before and after the underlined line.
const CONTEXT_LINES: usize = 2;

/// A context line is shown only when the cut starts at most this many characters into it: finding
/// the cut in a line costs a walk over its characters, and a snippet must cost little whatever the
/// input (200 diagnostics on a 16 MB line would otherwise walk gigabytes).
const CONTEXT_MAX_SKIP: usize = 4096;

/// The codes whose underlined value is a secret. Their values never appear in a snippet, whichever
/// diagnostic's snippet shows the line.
pub const SECRET_CODES: [Code; 2] = [Code::E012, Code::W104];

/// Renders diagnostics for a terminal or a log: one miette report per diagnostic, with the source
/// snippet, the label under the offending place, and the help line.
///
/// Each snippet is an excerpt: the underlined line and two lines either side, each cut to
/// [`SNIPPET_WIDTH`] characters around the underlined place, with control characters shown as `�`
/// and the values of secret diagnostics ([`SECRET_CODES`]) masked with `*`. The output therefore
/// grows with the number of diagnostics, never with the length of a line.
pub fn render_human(diagnostics: &[Diagnostic], source: &Source, color: bool) -> String {
    let theme =
        if color { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
    let handler =
        miette::GraphicalReportHandler::new_themed(theme).with_context_lines(CONTEXT_LINES).with_width(110);
    let secrets: Vec<(usize, usize)> = diagnostics
        .iter()
        .filter(|diagnostic| SECRET_CODES.contains(&diagnostic.code))
        .filter_map(|diagnostic| diagnostic.span.map(|span| (span.start, span.end)))
        .collect();
    let mut out = String::new();
    for diagnostic in diagnostics {
        let excerpt = diagnostic.span.map(|span| Excerpt::new(source, span, &secrets));
        let report = Report {
            diagnostic,
            excerpt: excerpt.as_ref(),
            file: &source.name,
            message: printable(&diagnostic.message),
            help: printable(&diagnostic.help),
        };
        if handler.render_report(&mut out, &report).is_err() {
            out.push_str(&format!("{}: {}\n", diagnostic.code, report.message));
        }
    }
    let errors = diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count();
    let warnings = diagnostics.len() - errors;
    out.push_str(&format!(
        "{}: {} error{}, {} warning{}\n",
        printable(&source.name),
        errors,
        if errors == 1 { "" } else { "s" },
        warnings,
        if warnings == 1 { "" } else { "s" }
    ));
    out
}

/// A message or help line as a terminal may print it: control characters (which could move the
/// cursor or recolour a CI log) are escaped.
fn printable(text: &str) -> String {
    if !text.chars().any(hidden) {
        return text.to_owned();
    }
    text.chars()
        .map(
            |character| {
                if hidden(character) { character.escape_unicode().to_string() } else { character.to_string() }
            },
        )
        .collect()
}

/// A character that a terminal does not show as itself: a control character, or a format
/// character that reorders or hides text (bidirectional overrides, zero-width characters).
fn hidden(character: char) -> bool {
    character.is_control()
        || matches!(character, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// The lines a snippet shows, cut and masked, standing in for the whole source in miette.
struct Excerpt {
    name: String,
    text: String,
    /// The 0-based number of the first line of `text` in the file.
    first_line: usize,
    lines: usize,
    /// The underlined place: a byte range of `text`, its 0-based line in the file and the 0-based
    /// column (in characters) of its start in the file.
    label: (usize, usize),
    label_line: usize,
    label_column: usize,
}

impl Excerpt {
    fn new(source: &Source, span: Span, secrets: &[(usize, usize)]) -> Excerpt {
        let text = &source.text;
        let start = span.start.min(text.len());
        let line = source.line_index_of(start);
        let (line_start, line_end) = source.line_bounds(line).unwrap_or((start, start));
        let start = start.clamp(line_start, line_end.max(line_start));
        // The underline stops at the end of its line: a value spanning many lines is marked where it
        // starts.
        let end = span.end.clamp(start, line_end.max(start));
        // The cut starts SNIPPET_LEAD characters before the underlined place.
        let lead = text[line_start..start].char_indices().rev().take(SNIPPET_LEAD).last();
        let cut_start = lead.map_or(start, |(offset, _)| line_start + offset);
        let skipped = span.column.saturating_sub(1).saturating_sub(text[cut_start..start].chars().count());
        let first = line.saturating_sub(CONTEXT_LINES);
        let last = (line + CONTEXT_LINES).min(source.line_count().saturating_sub(1));
        let mut excerpt = String::new();
        let mut label = (0, 0);
        let mut first_line = line;
        let mut lines = 0;
        for index in first..=last {
            let Some((from, to)) = source.line_bounds(index) else { continue };
            let from = if index == line {
                cut_start
            } else if skipped > CONTEXT_MAX_SKIP {
                continue;
            } else {
                match text[from..to].char_indices().nth(skipped) {
                    Some((offset, _)) => from + offset,
                    None if skipped == 0 => from,
                    None => to,
                }
            };
            if lines == 0 {
                first_line = index;
            } else {
                excerpt.push('\n');
            }
            lines += 1;
            if from > source.line_bounds(index).map_or(from, |(line_from, _)| line_from) {
                excerpt.push('…');
            }
            let mut cut_end = to;
            for (shown, (offset, character)) in text[from..to].char_indices().enumerate() {
                let at = from + offset;
                if shown == SNIPPET_WIDTH {
                    cut_end = at;
                    break;
                }
                if index == line && at == start {
                    label.0 = excerpt.len();
                }
                let secret = secrets
                    .iter()
                    .any(|&(secret_start, secret_end)| (secret_start..secret_end).contains(&at));
                excerpt.push(if secret {
                    '*'
                } else if hidden(character) && character != '\t' {
                    '\u{fffd}'
                } else {
                    character
                });
                if index == line && at < end {
                    label.1 = excerpt.len();
                }
            }
            if index == line {
                if start >= cut_end {
                    label.0 = excerpt.len();
                }
                label.1 = label.1.max(label.0);
            }
            if cut_end < to {
                excerpt.push('…');
            }
        }
        Excerpt {
            name: source.name.clone(),
            text: excerpt,
            first_line,
            lines,
            label,
            label_line: line,
            label_column: span.column.saturating_sub(1),
        }
    }
}

impl miette::SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        if context_lines_before == 0 && context_lines_after == 0 {
            // The header's file:line:column: the underlined place in the file.
            let from = span.offset().min(self.text.len());
            let to = (from + span.len()).min(self.text.len());
            return Ok(Box::new(miette::MietteSpanContents::new_named(
                self.name.clone(),
                &self.text.as_bytes()[from..to],
                (from, to - from).into(),
                self.label_line,
                self.label_column,
                1,
            )));
        }
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            self.text.as_bytes(),
            (0, self.text.len()).into(),
            self.first_line,
            0,
            self.lines,
        )))
    }
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
    let rules: Vec<serde_json::Value> = Code::ALL
        .iter()
        .map(|code| {
            serde_json::json!({
                "id": code,
                "shortDescription": { "text": code.title() },
                "helpUri": format!("https://github.com/agentweave/weave/blob/main/{}", code.doc_path()),
                "defaultConfiguration": { "level": code.severity() },
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
    excerpt: Option<&'a Excerpt>,
    file: &'a str,
    message: String,
    help: String,
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
            Some(_) => write!(formatter, "{}", self.message),
            None => write!(formatter, "{} ({})", self.message, printable(self.file)),
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
        Some(Box::new(&self.help))
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.excerpt.map(|excerpt| excerpt as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let excerpt = self.excerpt?;
        let (start, end) = excerpt.label;
        let label = miette::LabeledSpan::new(
            Some(printable(self.diagnostic.label.as_deref().unwrap_or("here"))),
            start,
            (end - start).max(1).min(excerpt.text.len().saturating_sub(start)),
        );
        Some(Box::new(std::iter::once(label)))
    }
}

/// Messages quote names and values from the input; a quote longer than this is cut, so that a
/// 50 MB value cannot make a 50 MB message.
pub const MAX_MESSAGE_BYTES: usize = 400;

/// Cuts the middle out of a message longer than [`MAX_MESSAGE_BYTES`], marking the cut. The middle
/// goes because a long message is a long quoted value: its start names the thing and its end says
/// what is wrong with it.
pub fn shorten(text: &mut String) {
    if text.len() <= MAX_MESSAGE_BYTES {
        return;
    }
    let mut head_end = MAX_MESSAGE_BYTES * 3 / 4;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - MAX_MESSAGE_BYTES / 4;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    *text = format!("{}…{}", &text[..head_end], &text[tail_start..]);
}
