//! A block-style YAML writer for the typed objects the emitters build.
//!
//! At 10,000 agents the Kubernetes manifests are over 100 MB of YAML, and a general emitter (libyaml
//! behind serde_yaml_ng: one event allocation per scalar, a state machine per event, every string
//! re-parsed to choose its quoting) was the largest single cost of a build. This writer serializes
//! straight into a `String` and gives the same bytes as serde_yaml_ng for everything it accepts:
//!
//! - block mappings and sequences (a sequence inside a mapping is not indented, as libyaml writes
//!   it), `{}` and `[]` for empty ones;
//! - booleans, integers, `null`;
//! - strings of printable ASCII, plain when YAML would read them back as the same string, else in
//!   single quotes; strings with line breaks as literal blocks (`|`, `|-`).
//!
//! Anything else (floats, non-ASCII or control characters, enum variants that serde_yaml_ng writes
//! as tags, keys longer than 128 bytes, ...) makes [`append`] return `false`, the stream untouched,
//! and the caller falls back to serde_yaml_ng for that document. Invariant:
//! whenever this writer accepts a document, the bytes are serde_yaml_ng's (tested on every artifact
//! of every fixture and on generated values).

use std::fmt::{self, Display, Write as _};

use serde::ser::{self, Serialize};

/// Appends `value` as one YAML document to `out` and says whether it could; when it could not, `out`
/// is as it was. Writing straight into the stream a document belongs to spares a copy of every
/// document and the allocations a string of its own would grow through.
pub fn append<T: Serialize + ?Sized>(out: &mut String, value: &T) -> bool {
    let start = out.len();
    let mut writer = Writer { out: std::mem::take(out), start, stack: Vec::new(), done: false };
    let complete = value.serialize(&mut writer).is_ok() && writer.done && writer.stack.is_empty();
    if complete && !writer.at_line_start() {
        writer.out.push('\n');
    }
    *out = writer.out;
    if !complete {
        out.truncate(start);
    }
    complete
}

/// Why this writer declined a value; the caller falls back to serde_yaml_ng.
#[derive(Debug)]
pub struct Unsupported;

impl Display for Unsupported {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("value left to the general YAML emitter")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: Display>(_message: T) -> Self {
        Unsupported
    }
}

type Result<T = ()> = std::result::Result<T, Unsupported>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mapping,
    Sequence,
}

/// An open mapping or sequence.
struct Frame {
    kind: Kind,
    /// The column of this collection's keys or `- ` indicators.
    indent: usize,
    /// The first entry continues the current line (a collection that is an item of a sequence, or
    /// the document's root).
    inline_first: bool,
    /// Entries written so far.
    entries: usize,
    /// A mapping's next node is a key.
    expect_key: bool,
    /// Written before `{}` or `[]` when the collection is empty: a space after `key:`.
    empty_prefix: &'static str,
}

/// Where the node about to be written goes.
enum Position {
    Root,
    Key,
    /// The value of a mapping whose keys are at this column.
    Value(usize),
    /// An item of a sequence whose `- ` is at this column.
    Item(usize),
}

struct Writer {
    out: String,
    /// Where this document starts in `out`.
    start: usize,
    stack: Vec<Frame>,
    /// The root node is complete.
    done: bool,
}

impl Writer {
    fn at_line_start(&self) -> bool {
        self.out.len() == self.start || self.out.ends_with('\n')
    }

    /// A new line at `indent`, unless the last block scalar already ended its line.
    fn line(&mut self, indent: usize) {
        if !self.at_line_start() {
            self.out.push('\n');
        }
        self.pad(indent);
    }

    fn pad(&mut self, indent: usize) {
        const SPACES: &str = "                                                                ";
        let mut left = indent;
        while left > 0 {
            let run = left.min(SPACES.len());
            self.out.push_str(&SPACES[..run]);
            left -= run;
        }
    }

    /// Writes what comes before the next node, and says where it goes.
    fn begin_node(&mut self) -> Result<Position> {
        let Some(frame) = self.stack.last() else {
            return if self.done { Err(Unsupported) } else { Ok(Position::Root) };
        };
        let (kind, indent, expect_key) = (frame.kind, frame.indent, frame.expect_key);
        let first_inline = frame.entries == 0 && frame.inline_first;
        match kind {
            Kind::Mapping if expect_key => {
                if !first_inline {
                    self.line(indent);
                }
                Ok(Position::Key)
            }
            Kind::Mapping => Ok(Position::Value(indent)),
            Kind::Sequence => {
                if !first_inline {
                    self.line(indent);
                }
                self.out.push_str("- ");
                Ok(Position::Item(indent))
            }
        }
    }

    /// Records that a node is complete in its parent.
    fn end_node(&mut self) {
        match self.stack.last_mut() {
            None => self.done = true,
            Some(frame) if frame.kind == Kind::Mapping && frame.expect_key => frame.expect_key = false,
            Some(frame) => {
                frame.entries += 1;
                frame.expect_key = frame.kind == Kind::Mapping;
            }
        }
    }

    /// A scalar whose text needs no further analysis (numbers, booleans, null).
    fn plain(&mut self, text: &str) -> Result {
        let position = self.begin_node()?;
        self.put_inline(position, text)
    }

    fn put_inline(&mut self, position: Position, text: &str) -> Result {
        match position {
            Position::Root => return Err(Unsupported),
            Position::Key => {
                // A key longer than 128 bytes is not a simple key for libyaml (`? key`).
                if text.len() > 128 {
                    return Err(Unsupported);
                }
                self.out.push_str(text);
                self.out.push(':');
            }
            Position::Value(_) => {
                self.out.push(' ');
                self.out.push_str(text);
            }
            Position::Item(_) => self.out.push_str(text),
        }
        self.end_node();
        Ok(())
    }

    fn string(&mut self, value: &str) -> Result {
        let plain = match scan(value.as_bytes()) {
            Scan::Unsupported => return Err(Unsupported),
            Scan::Multiline => return self.literal(value),
            Scan::Line { plain } => plain,
        };
        let position = self.begin_node()?;
        if ambiguous(value) {
            let text = resolve_ambiguous(value)?;
            return self.put_inline(position, &text);
        }
        if plain {
            self.put_inline(position, value)
        } else {
            let mut quoted = String::with_capacity(value.len() + 2);
            quoted.push('\'');
            for piece in value.split_inclusive('\'') {
                quoted.push_str(piece);
                if piece.ends_with('\'') {
                    quoted.push('\'');
                }
            }
            quoted.push('\'');
            self.put_inline(position, &quoted)
        }
    }

    /// A string with line breaks, as a literal block scalar.
    fn literal(&mut self, value: &str) -> Result {
        let bytes = value.as_bytes();
        // Leading space or break: libyaml adds an indentation indicator; trailing space, or a space
        // before a break (found line by line below): double quotes; more than one trailing break:
        // `|+` and an open document.
        if matches!(bytes.first(), Some(b' ' | b'\n'))
            || bytes.last() == Some(&b' ')
            || value.ends_with("\n\n")
        {
            return Err(Unsupported);
        }
        let content_indent = match self.begin_node()? {
            Position::Root | Position::Key => return Err(Unsupported),
            Position::Value(indent) => {
                self.out.push_str(" |");
                indent + 2
            }
            Position::Item(indent) => {
                self.out.push('|');
                indent + 2
            }
        };
        if !value.ends_with('\n') {
            self.out.push('-');
        }
        self.out.push('\n');
        for (index, line) in value.split('\n').enumerate() {
            if index > 0 {
                self.out.push('\n');
            }
            if line.ends_with(' ') {
                return Err(Unsupported);
            }
            if !line.is_empty() {
                self.pad(content_indent);
                self.out.push_str(line);
            }
        }
        self.end_node();
        Ok(())
    }

    fn open(&mut self, kind: Kind) -> Result {
        let (indent, inline_first, empty_prefix) = match self.begin_node()? {
            Position::Root => (0, true, ""),
            Position::Key => return Err(Unsupported),
            // A sequence in a mapping is not indented; a mapping is.
            Position::Value(indent) if kind == Kind::Sequence => (indent, false, " "),
            Position::Value(indent) => (indent + 2, false, " "),
            Position::Item(indent) => (indent + 2, true, ""),
        };
        self.stack.push(Frame {
            kind,
            indent,
            inline_first,
            entries: 0,
            expect_key: kind == Kind::Mapping,
            empty_prefix,
        });
        Ok(())
    }

    fn close(&mut self) -> Result {
        let frame = self.stack.pop().ok_or(Unsupported)?;
        if frame.kind == Kind::Mapping && !frame.expect_key {
            return Err(Unsupported);
        }
        if frame.entries == 0 {
            self.out.push_str(frame.empty_prefix);
            self.out.push_str(if frame.kind == Kind::Mapping { "{}" } else { "[]" });
        }
        self.end_node();
        Ok(())
    }
}

/// How serde_yaml_ng writes a one-line string that YAML might read back as something else (a
/// number, a boolean, null): it decides, on this one string. The same few strings (`"0.0.0.0"`,
/// `"500m"`) recur in every manifest, so each thread remembers its answers.
fn resolve_ambiguous(value: &str) -> Result<std::rc::Rc<str>> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    /// Bounds the memory of the cache when the strings do not recur.
    const CAPACITY: usize = 4096;
    thread_local! {
        static RESOLVED: RefCell<HashMap<Box<str>, Rc<str>>> = RefCell::new(HashMap::new());
    }
    if let Some(text) = RESOLVED.with(|cache| cache.borrow().get(value).cloned()) {
        return Ok(text);
    }
    let text = serde_yaml_ng::to_string(value).map_err(|_| Unsupported)?;
    let text = text.strip_suffix('\n').ok_or(Unsupported)?;
    if text.contains('\n') {
        return Err(Unsupported);
    }
    let text: Rc<str> = Rc::from(text);
    RESOLVED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        cache.insert(value.into(), Rc::clone(&text));
    });
    Ok(text)
}

/// Whether YAML might resolve this plain scalar to something other than a string: a number, a
/// boolean, null or the empty string. A superset; the exact answer is serde_yaml_ng's.
fn ambiguous(value: &str) -> bool {
    match value.as_bytes().first() {
        None => true,
        Some(first) if first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.' | b'~') => true,
        Some(_) => ["true", "false", "null", "inf", "infinity", "nan"]
            .iter()
            .any(|word| value.eq_ignore_ascii_case(word)),
    }
}

/// What one pass over a string finds.
enum Scan {
    /// A byte outside printable ASCII and `\n`.
    Unsupported,
    /// Printable ASCII with at least one line break.
    Multiline,
    /// One line of printable ASCII; `plain` when libyaml would write it without quotes.
    Line { plain: bool },
}

/// Classifies a string: its bytes, its line breaks, and the indicators inside it that keep it from
/// being plain (`: ` and ` #`); the checks at its ends are [`plain_allowed`]'s. One pass the compiler
/// vectorizes finds all three kinds of byte (the long strings are the multi-line ones, ConfigMaps'
/// files, which need nothing more); only a single line holding `:` or `#` is looked at byte by byte.
fn scan(bytes: &[u8]) -> Scan {
    let found = byte_classes(bytes);
    if found & OTHER != 0 {
        return Scan::Unsupported;
    }
    if found & BREAK != 0 {
        return Scan::Multiline;
    }
    let mut inner_indicator = false;
    if found & INDICATOR != 0 {
        let mut previous = b' ';
        for (index, &byte) in bytes.iter().enumerate() {
            let indicator = match byte {
                b':' => index > 0 && bytes.get(index + 1).is_none_or(|&next| next == b' '),
                b'#' => index > 0 && previous == b' ',
                _ => false,
            };
            inner_indicator |= indicator;
            previous = byte;
        }
    }
    Scan::Line { plain: !inner_indicator && plain_allowed(bytes) }
}

/// A byte outside printable ASCII that is not a line break.
const OTHER: u8 = 1;
/// A line break.
const BREAK: u8 = 2;
/// `:` or `#`.
const INDICATOR: u8 = 4;

/// The classes of byte a string holds (an OR of [`OTHER`], [`BREAK`] and [`INDICATOR`]): 16 bytes
/// at a time, as a fixed-size array without a branch inside, which the compiler turns into vector
/// instructions; the rest (most strings are shorter) through [`CLASSES`].
fn byte_classes(bytes: &[u8]) -> u8 {
    fn any(chunk: &[u8; 16], test: impl Fn(u8) -> bool) -> u8 {
        chunk.iter().fold(0u8, |found, &byte| found | u8::from(test(byte)))
    }
    let classes = |chunk: &[u8; 16]| {
        any(chunk, |byte| (byte.wrapping_sub(b' ') >= 95) & (byte != b'\n'))
            | (any(chunk, |byte| byte == b'\n') << 1)
            | (any(chunk, |byte| (byte == b':') | (byte == b'#')) << 2)
    };
    let (chunks, rest) = bytes.as_chunks::<16>();
    let mut found = 0;
    for chunk in chunks {
        found |= classes(chunk);
    }
    found | rest.iter().fold(0, |found, &byte| found | CLASSES[usize::from(byte)])
}

/// The class of each byte, for the tail of a string: byte by byte through a table is faster there
/// than a padded copy, whose bytes the vector load would wait for.
static CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        classes[byte] = match byte as u8 {
            b'\n' => BREAK,
            b':' | b'#' => INDICATOR,
            b' '..=b'~' => 0,
            _ => OTHER,
        };
        byte += 1;
    }
    classes
};

/// Whether a one-line string of printable ASCII without `: ` or ` #` inside it (see [`scan`]) can be
/// written plain in block context: libyaml's analysis of its first character and its ends.
fn plain_allowed(bytes: &[u8]) -> bool {
    let Some((&first, _)) = bytes.split_first() else {
        return false;
    };
    let blank_at = |index: usize| index >= bytes.len() || bytes[index] == b' ';
    if bytes.starts_with(b"---") || bytes.starts_with(b"...") || first == b' ' || bytes.last() == Some(&b' ')
    {
        return false;
    }
    match first {
        b'#' | b',' | b'[' | b']' | b'{' | b'}' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\'' | b'"' | b'%'
        | b'@' | b'`' => false,
        b'?' | b':' | b'-' => !blank_at(1),
        _ => true,
    }
}

impl ser::Serializer for &mut Writer {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = ser::Impossible<(), Unsupported>;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = ser::Impossible<(), Unsupported>;

    fn serialize_bool(self, value: bool) -> Result {
        self.plain(if value { "true" } else { "false" })
    }

    fn serialize_i8(self, value: i8) -> Result {
        self.serialize_i64(value.into())
    }

    fn serialize_i16(self, value: i16) -> Result {
        self.serialize_i64(value.into())
    }

    fn serialize_i32(self, value: i32) -> Result {
        self.serialize_i64(value.into())
    }

    fn serialize_i64(self, value: i64) -> Result {
        let mut text = String::new();
        write!(text, "{value}").map_err(|_| Unsupported)?;
        self.plain(&text)
    }

    fn serialize_i128(self, value: i128) -> Result {
        let mut text = String::new();
        write!(text, "{value}").map_err(|_| Unsupported)?;
        self.plain(&text)
    }

    fn serialize_u8(self, value: u8) -> Result {
        self.serialize_u64(value.into())
    }

    fn serialize_u16(self, value: u16) -> Result {
        self.serialize_u64(value.into())
    }

    fn serialize_u32(self, value: u32) -> Result {
        self.serialize_u64(value.into())
    }

    fn serialize_u64(self, value: u64) -> Result {
        let mut text = String::new();
        write!(text, "{value}").map_err(|_| Unsupported)?;
        self.plain(&text)
    }

    fn serialize_u128(self, value: u128) -> Result {
        let mut text = String::new();
        write!(text, "{value}").map_err(|_| Unsupported)?;
        self.plain(&text)
    }

    fn serialize_f32(self, _value: f32) -> Result {
        Err(Unsupported)
    }

    fn serialize_f64(self, _value: f64) -> Result {
        Err(Unsupported)
    }

    fn serialize_char(self, _value: char) -> Result {
        Err(Unsupported)
    }

    fn serialize_str(self, value: &str) -> Result {
        self.string(value)
    }

    fn serialize_bytes(self, _value: &[u8]) -> Result {
        Err(Unsupported)
    }

    fn serialize_none(self) -> Result {
        self.plain("null")
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result {
        self.plain("null")
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result {
        self.plain("null")
    }

    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result {
        self.string(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result {
        Err(Unsupported)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self> {
        self.open(Kind::Sequence)?;
        Ok(self)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self> {
        self.open(Kind::Sequence)?;
        Ok(self)
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self> {
        self.open(Kind::Sequence)?;
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(Unsupported)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self> {
        self.open(Kind::Mapping)?;
        Ok(self)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self> {
        self.open(Kind::Mapping)?;
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(Unsupported)
    }

    // serde_yaml_ng treats a `Display` value in a one-entry map as a possible tag.
    fn collect_str<T: Display + ?Sized>(self, _value: &T) -> Result {
        Err(Unsupported)
    }
}

/// A sequence-like compound (list, tuple, tuple struct): each element is the next item.
macro_rules! sequence_compound {
    ($trait:ident, $method:ident) => {
        impl ser::$trait for &mut Writer {
            type Ok = ();
            type Error = Unsupported;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result {
                self.close()
            }
        }
    };
}

sequence_compound!(SerializeSeq, serialize_element);
sequence_compound!(SerializeTuple, serialize_element);
sequence_compound!(SerializeTupleStruct, serialize_field);

impl ser::SerializeMap for &mut Writer {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        key.serialize(&mut **self)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result {
        self.close()
    }
}

impl ser::SerializeStruct for &mut Writer {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.string(key)?;
        value.serialize(&mut **self)
    }

    fn end(self) -> Result {
        self.close()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::{Value, json};

    /// `value` as one YAML document, or `None` when the writer leaves it to serde_yaml_ng.
    fn to_string<T: Serialize + ?Sized>(value: &T) -> Option<String> {
        let mut out = String::new();
        super::append(&mut out, value).then_some(out)
    }

    fn same_as_serde_yaml_ng<T: Serialize>(value: &T) -> Option<String> {
        let expected = serde_yaml_ng::to_string(value).unwrap();
        let actual = to_string(value);
        if let Some(actual) = &actual {
            assert_eq!(actual, &expected);
        }
        actual
    }

    #[test]
    fn nested_collections_indent_as_libyaml_does() {
        let value = json!({
            "apiVersion": "v1",
            "list": [1, [2, [3]], {"a": {"b": [true, null]}, "c": []}, {}],
            "empty": {},
            "nested": {"deeper": {"deepest": ["x", {"k": "v", "l": [{}]}]}},
            "text": "line one\n\nline three\n",
            "chomped": "a\nb",
            "items": [{"script": "set -e\necho hi"}, "tail"],
        });
        assert!(same_as_serde_yaml_ng(&value).is_some());
    }

    #[test]
    fn quoting_follows_serde_yaml_ng() {
        let strings = [
            "",
            "plain",
            "0",
            "007",
            "1.5",
            "-1",
            "+1",
            "0x1F",
            "0o17",
            "0b101",
            "1e3",
            ".inf",
            "-.inf",
            ".nan",
            "inf",
            "NaN",
            "true",
            "False",
            "NULL",
            "~",
            "null-ish",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "a: b",
            "a:b",
            "a:",
            "a #b",
            "a#b",
            "#a",
            "- a",
            "-a",
            "--- a",
            "...",
            "? a",
            "?a",
            ":a",
            "'q'",
            "it's",
            "\"",
            "@x",
            "`x",
            "%x",
            "&x",
            "*x",
            "!x",
            "|x",
            ">x",
            "[x",
            "]x",
            "{x",
            "}x",
            ",x",
            "x,y",
            "x[y]",
            " lead",
            "trail ",
            "in side",
            "1.2.3.4",
            "10.0.0.0/8",
            "8080",
            "1_000",
            "-",
            "--",
            ":",
            "?",
            "::",
            "http://example.com:8080/path?q=1#frag",
            "spiffe://td/ns/x",
            "*.example.com",
            "app.kubernetes.io/name",
        ];
        for string in strings {
            assert!(
                same_as_serde_yaml_ng(&json!({ string: string, "list": [string] })).is_some(),
                "{string:?}"
            );
        }
    }

    #[test]
    fn leaves_what_it_does_not_know_to_serde_yaml_ng() {
        assert_eq!(to_string(&json!({"x": 1.5})), None);
        assert_eq!(to_string(&json!({"x": "caf\u{e9}"})), None);
        assert_eq!(to_string(&json!({"x": "tab\there"})), None);
        assert_eq!(to_string(&json!({"x": " lead\nline"})), None);
        assert_eq!(to_string(&json!({"x": "keep\n\n"})), None);
        assert_eq!(to_string(&json!({"x": "space \nbefore a break"})), None);
        assert_eq!(to_string(&json!({"x": "first\nspace \n"})), None);
        assert_eq!(to_string(&json!({"multi\nline key": 1})), None);
        assert_eq!(to_string(&json!("root scalar")), None);
        let long_key: String = "k".repeat(129);
        assert_eq!(to_string(&json!({ long_key: 1 })), None);
    }

    #[test]
    fn byte_classes_are_found_in_every_chunk_and_in_the_tail() {
        use super::{BREAK, INDICATOR, OTHER, byte_classes};
        for length in [0, 1, 15, 16, 17, 31, 32, 33, 47] {
            assert_eq!(byte_classes("a".repeat(length).as_bytes()), 0, "{length}");
            for position in 0..length {
                for (byte, class) in
                    [(b'\t', OTHER), (0xc3, OTHER), (b'\n', BREAK), (b':', INDICATOR), (b'#', INDICATOR)]
                {
                    let mut bytes = vec![b'a'; length];
                    bytes[position] = byte;
                    assert_eq!(byte_classes(&bytes), class, "{byte} at {position} of {length}");
                }
            }
        }
    }

    #[test]
    fn a_document_it_declines_leaves_the_stream_as_it_was() {
        let mut out = "a: 1\n---\n".to_owned();
        assert!(!super::append(&mut out, &json!({"ok": "yes", "x": "line \nbreak"})));
        assert_eq!(out, "a: 1\n---\n");
        assert!(super::append(&mut out, &json!({"b": ["c"]})));
        assert_eq!(out, "a: 1\n---\nb:\n- c\n");
        let documents = [json!({"a": 1}), json!({"x": "line \nbreak"})];
        let expected = format!(
            "{}---\n{}",
            serde_yaml_ng::to_string(&documents[0]).unwrap(),
            serde_yaml_ng::to_string(&documents[1]).unwrap()
        );
        assert_eq!(String::from_utf8(crate::emit::yaml_documents(&documents)).unwrap(), expected);
    }

    #[test]
    fn typed_structs_keep_field_order() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Object {
            api_version: &'static str,
            kind: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            absent: Option<u32>,
            labels: BTreeMap<String, String>,
            ports: Vec<(u16, bool)>,
        }
        let object = Object {
            api_version: "apps/v1",
            kind: "Deployment",
            absent: None,
            labels: BTreeMap::from([
                ("app".to_owned(), "x".to_owned()),
                ("tier".to_owned(), "edge".to_owned()),
            ]),
            ports: vec![(8080, true), (9090, false)],
        };
        assert!(same_as_serde_yaml_ng(&object).is_some());
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[ -~\n]{0,12}".prop_map(Value::String),
            "[a-z0-9:#'\" .\\-]{0,8}".prop_map(Value::String),
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(4, 48, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[ -~\n]{0,6}", inner, 0..5)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_value_it_writes_is_byte_identical_to_serde_yaml_ng(value in tree()) {
            same_as_serde_yaml_ng(&value);
        }

        #[test]
        fn every_mapping_of_simple_values_is_written(
            map in prop::collection::btree_map("[a-zA-Z0-9_./-]{1,10}", "[ -~]{0,10}", 0..6)
        ) {
            let value = json!({ "root": map });
            prop_assert!(same_as_serde_yaml_ng(&value).is_some());
        }
    }
}
