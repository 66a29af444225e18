//! The input file: its name, its text, and the mapping from positions to byte spans.
//!
//! The YAML parser reports positions as (line, column in characters); miette and the diagnostics work
//! in byte offsets. `Source` keeps the byte offset of every line start so that a (line, column) pair
//! becomes a byte offset by walking at most one line.

use crate::diagnostics::Span;

/// One topology file as read.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name diagnostics show (the path as given on the command line).
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(offset, _)| offset + 1));
        Source { name: name.into(), text, line_starts }
    }

    /// The byte offset of a 1-based line and a 0-based column counted in characters, clamped to the
    /// text.
    pub fn offset(&self, line: usize, column_chars: usize) -> usize {
        let Some(&line_start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[line_start..];
        match rest.char_indices().nth(column_chars) {
            Some((offset, _)) => line_start + offset,
            None => self.text.len(),
        }
    }

    /// A span between two (line, character column) positions.
    pub fn span(&self, start: (usize, usize), end: (usize, usize)) -> Span {
        let start_offset = self.offset(start.0, start.1);
        let end_offset = self.offset(end.0, end.1).max(start_offset);
        Span { start: start_offset, end: end_offset, line: start.0.max(1), column: start.1 + 1 }
    }

    /// The span of the byte range `start..end`, with its line and column computed.
    pub fn span_of_bytes(&self, start: usize, end: usize) -> Span {
        let start = start.min(self.text.len());
        let line_index = match self.line_starts.binary_search(&start) {
            Ok(index) => index,
            Err(index) => index - 1,
        };
        let column = self.text[self.line_starts[line_index]..start].chars().count() + 1;
        Span { start, end: end.clamp(start, self.text.len()), line: line_index + 1, column }
    }

    /// A span covering the whole of one line (1-based), without its line break.
    pub fn line_span(&self, line: usize) -> Span {
        let start = self.line_starts.get(line.saturating_sub(1)).copied().unwrap_or(self.text.len());
        let end = self.text[start..].find('\n').map_or(self.text.len(), |offset| start + offset);
        Span { start, end, line: line.max(1), column: 1 }
    }
}
