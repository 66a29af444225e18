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

    /// The 0-based index of the line holding byte `offset` (the last line past the end).
    pub fn line_index_of(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset.min(self.text.len())) {
            Ok(index) => index,
            Err(index) => index - 1,
        }
    }

    /// The byte range of the 0-based line `index`, without its line break (and without the carriage
    /// return of a CRLF break). Costs nothing however long the line is.
    pub fn line_bounds(&self, index: usize) -> Option<(usize, usize)> {
        let start = *self.line_starts.get(index)?;
        let end = self.line_starts.get(index + 1).map_or(self.text.len(), |next| next - 1);
        let end = if end > start && self.text.as_bytes()[end - 1] == b'\r' { end - 1 } else { end };
        Some((start, end))
    }

    /// How many lines the text has.
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// A span covering the whole of one line (1-based), without its line break.
    pub fn line_span(&self, line: usize) -> Span {
        let start = self.line_starts.get(line.saturating_sub(1)).copied().unwrap_or(self.text.len());
        let end = self.text[start..].find('\n').map_or(self.text.len(), |offset| start + offset);
        Span { start, end, line: line.max(1), column: 1 }
    }
}

/// Why a file could not be read as a topology.
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be opened or read.
    Io(std::io::Error),
    /// More than `limit` bytes: `size` is the file's size when it is a regular file (its metadata
    /// says so), `None` for a pipe or a device, of which no more than the limit was read.
    TooLarge { limit: usize, size: Option<u64> },
    /// Not UTF-8: the text up to the first invalid byte, and that byte's offset.
    NotUtf8 { valid: String, offset: usize },
}

/// Reads a topology file, reading at most `limit + 1` bytes whatever it is: a regular file, a pipe
/// (`weave validate <(generate)`), or a device such as `/dev/zero` that never ends. A regular file
/// over the limit is refused from its size without reading it; anything else is refused once one
/// byte more than the limit has arrived. A directory is an I/O error.
pub fn read_bounded(path: &std::path::Path, limit: usize) -> Result<String, ReadError> {
    use std::io::Read as _;

    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let metadata = file.metadata().map_err(ReadError::Io)?;
    if metadata.is_dir() {
        return Err(ReadError::Io(std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory")));
    }
    if metadata.is_file() && metadata.len() > limit as u64 {
        return Err(ReadError::TooLarge { limit, size: Some(metadata.len()) });
    }
    let expected = if metadata.is_file() { metadata.len() as usize } else { 64 * 1024 };
    let mut bytes = Vec::with_capacity(expected.min(limit) + 1);
    file.take(limit as u64 + 1).read_to_end(&mut bytes).map_err(ReadError::Io)?;
    if bytes.len() > limit {
        let size = if metadata.is_file() { Some(bytes.len() as u64) } else { None };
        return Err(ReadError::TooLarge { limit, size });
    }
    // Converted in place: a 64 MB input is held once.
    String::from_utf8(bytes).map_err(|error| {
        let offset = error.utf8_error().valid_up_to();
        let mut bytes = error.into_bytes();
        bytes.truncate(offset);
        ReadError::NotUtf8 { valid: String::from_utf8(bytes).unwrap_or_default(), offset }
    })
}
