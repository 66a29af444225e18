//! Load: YAML text → a tree with a source span on every node (and on every mapping key).
//!
//! Parsing goes through saphyr-parser's event stream, which carries a position on every event; the
//! tree keeps those positions so that every later diagnostic (schema, semantic checks) points into
//! the file. The schema validates the tree in place (`instance.rs`), the model is deserialized from
//! it directly (`de.rs`), and it answers "where is the node at this JSON pointer" for the
//! diagnostics.
//!
//! What an input may cost is bounded here, before anything else runs: the file size, the nesting
//! depth, and the number of nodes that aliases may copy (the "billion laughs" attack). Duplicate keys
//! are errors: YAML forbids them and a silent last-one-wins is how drift hides.
//!
//! Scalars resolve with the YAML 1.2 core schema (`yes`/`no`/`on`/`off` are strings).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use saphyr_parser::{Event, Parser, ScalarStyle, Span as YamlSpan};
use serde_json::{Map, Number, Value};

mod de;
pub mod instance;

pub use de::NodeDeserializer;

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::model::SHORTHAND_SITES;
use crate::source::Source;

/// What an input may cost. Each bound, when exceeded, is an E000 diagnostic.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted file, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most nodes that aliases may copy in all (an alias of a 10-node list copies 10).
    pub max_alias_nodes: usize,
    /// Most sites in one topology. Counted while reading (`sites:` entries), so that an input
    /// over the limit is refused before the rest of it is read.
    pub max_sites: usize,
    /// Most agents in one topology. Counted while reading (items of a site's `agents:`).
    pub max_agents: usize,
    /// Most values (scalars, lists and mappings, keys included) in the document. The loaded tree and
    /// the model read from it cost a few hundred bytes per value, so this bounds the memory an input can
    /// claim; a topology of the largest accepted size (50,000 agents) has about a million.
    pub max_nodes: usize,
    /// Longest accepted scalar (a key or a value), in bytes. Each stage of the pipeline keeps its
    /// own copy of a value, so one huge scalar costs several times its size.
    pub max_scalar_bytes: usize,
    /// Longest accepted line, in bytes: checked before parsing, so that a 50 MB line is refused
    /// before the parser buffers it. Room for a whole topology written as one line of JSON.
    pub max_line_bytes: usize,
    /// Most entries in one list or mapping: no list of a topology needs more than there may be
    /// agents, and one flat list of millions of values is refused before it is all in memory.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 64 * 1024 * 1024,
            max_depth: 64,
            max_alias_nodes: 10_000,
            max_sites: 1_000,
            max_agents: 50_000,
            max_nodes: 1_500_000,
            max_scalar_bytes: 1024 * 1024,
            max_line_bytes: 16 * 1024 * 1024,
            max_entries: 50_000,
        }
    }
}

/// A YAML node with its place in the file.
#[derive(Debug, Clone)]
pub struct Node {
    pub span: Pos,
    pub kind: NodeKind,
}

/// A [`Span`] as the tree stores it: half the size, since a million nodes each carry one (a file
/// is at most a few tens of megabytes, so every offset, line and column fits in 32 bits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pos {
    start: u32,
    end: u32,
    line: u32,
    column: u32,
}

impl From<Span> for Pos {
    fn from(span: Span) -> Pos {
        let narrow = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
        Pos {
            start: narrow(span.start),
            end: narrow(span.end),
            line: narrow(span.line),
            column: narrow(span.column),
        }
    }
}

impl From<Pos> for Span {
    fn from(pos: Pos) -> Span {
        Span {
            start: pos.start as usize,
            end: pos.end as usize,
            line: pos.line as usize,
            column: pos.column as usize,
        }
    }
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Number(Number),
    String(Box<str>),
    Sequence(Box<[Node]>),
    /// Entries in the order written, each with the span of its key.
    Mapping(Box<[(Key, Node)]>),
}

/// A mapping key and where it is written.
#[derive(Debug, Clone)]
pub struct Key {
    /// Shared by every key of the same name: a topology repeats a few dozen names a million times.
    pub name: Arc<str>,
    pub span: Pos,
}

/// Where the node at a JSON pointer is: its key (when it is a mapping entry) and its value.
#[derive(Debug, Clone, Copy)]
pub struct Located {
    pub key: Option<Span>,
    pub value: Span,
}

impl Located {
    /// The span a diagnostic about this node should underline: the key when there is one (it names
    /// the thing), else the value.
    pub fn primary(&self) -> Span {
        self.key.unwrap_or(self.value)
    }
}

/// The loaded document.
#[derive(Debug, Clone)]
pub struct Document {
    pub root: Node,
    /// For each large mapping, by its JSON pointer: key → entry position. Diagnostics locate nodes
    /// by pointer, and a linear search of a 100,000-key mapping per diagnostic is quadratic. Made
    /// when a node is first located ([`index_large_mappings`]): a valid topology is seldom asked.
    large_mappings: OnceLock<LargeMappings>,
}

/// [`Document::large_mappings`].
type LargeMappings = HashMap<String, HashMap<String, usize>>;

/// Mappings with at least this many entries are indexed for [`Document::locate`].
const INDEXED_MAPPING_ENTRIES: usize = 32;

/// At most this many duplicate keys are reported; past it, the loader stops reading.
const MAX_DUPLICATE_KEYS: usize = 100;

impl Document {
    /// The document as JSON (mapping keys sorted, as `serde_json::Map` keeps them).
    pub fn to_json(&self) -> Value {
        to_json(&self.root)
    }

    /// The node at a JSON pointer (`/sites/aws/agents/0/name`), if the document has one.
    pub fn locate(&self, pointer: &str) -> Option<Located> {
        let mut node = &self.root;
        let mut key = None;
        if pointer.is_empty() {
            return Some(Located { key: None, value: node.span.into() });
        }
        // The pointer up to the current node, as the caller wrote it: a large mapping's index is
        // found by it (a pointer spelt differently finds no index and falls back to the search).
        let mut prefix_length = 0;
        for raw_token in pointer.strip_prefix('/')?.split('/') {
            let token = unescape_token(raw_token);
            let prefix = &pointer[..prefix_length];
            prefix_length += 1 + raw_token.len();
            match &node.kind {
                NodeKind::Mapping(entries) => {
                    let large_mappings = self.large_mappings.get_or_init(|| index_large_mappings(&self.root));
                    let position = match large_mappings.get(prefix) {
                        Some(positions) => *positions.get(token.as_ref())?,
                        None => entries.iter().position(|(entry_key, _)| *entry_key.name == *token)?,
                    };
                    let (entry_key, value) = entries.get(position)?;
                    key = Some(entry_key.span.into());
                    node = value;
                }
                NodeKind::Sequence(items) => {
                    node = items.get(token.parse::<usize>().ok()?)?;
                    key = None;
                }
                _ => return None,
            }
        }
        Some(Located { key, value: node.span.into() })
    }

    /// The closest node that exists on the way to `pointer` (the pointer itself when it exists).
    pub fn locate_nearest(&self, pointer: &str) -> Located {
        let mut candidate = pointer;
        loop {
            if let Some(located) = self.locate(candidate) {
                return located;
            }
            match candidate.rfind('/') {
                Some(slash) => candidate = &candidate[..slash],
                None => return Located { key: None, value: self.root.span.into() },
            }
        }
    }

    /// Calls `visit` with every string scalar of the document and its span, in document order. The
    /// scalar's JSON pointer is built only when `visit` asks for it (through the closure it is
    /// handed), so a walk over a large document allocates nothing for the strings it passes over.
    pub fn visit_strings(&self, visit: &mut StringVisitor<'_>) {
        walk(&self.root, &mut Vec::new(), &mut |visited, path| {
            if let Visited::Node(Node { kind: NodeKind::String(text), span }) = visited {
                visit(text, (*span).into(), &|| pointer_of(path));
            }
        });
    }

    /// Calls `visit` with every mapping key of the document, its span and (on demand) the JSON
    /// pointer of the mapping that holds it, in document order: a key names things too (a site), and
    /// what is pasted into one must be found like what is pasted into a value.
    pub fn visit_keys(&self, visit: &mut StringVisitor<'_>) {
        walk(&self.root, &mut Vec::new(), &mut |visited, path| {
            if let Visited::Key(key) = visited {
                visit(&key.name, key.span.into(), &|| pointer_of(path));
            }
        });
    }
}

/// What [`Document::visit_fractional_numbers`] calls: the number, its span, and a closure that
/// builds its JSON pointer.
pub type NumberVisitor<'v> = dyn FnMut(&Number, Span, &dyn Fn() -> String) + 'v;

impl Document {
    /// Calls `visit` on every number of the document that is not an integer as written (`3.0`,
    /// `1e3`, or an integer too large for 64 bits), with its span and a closure that builds its JSON
    /// pointer on demand.
    pub fn visit_fractional_numbers(&self, visit: &mut NumberVisitor<'_>) {
        walk(&self.root, &mut Vec::new(), &mut |visited, path| {
            if let Visited::Node(Node { kind: NodeKind::Number(number), span }) = visited
                && number.is_f64()
            {
                visit(number, (*span).into(), &|| pointer_of(path));
            }
        });
    }
}

/// What `Document::visit_strings` calls: the string, its span, and a closure that builds its JSON
/// pointer on demand.
pub type StringVisitor<'v> = dyn FnMut(&str, Span, &dyn Fn() -> String) + 'v;

/// One step of the path from the root to a node.
#[derive(Clone, Copy)]
enum PathToken<'a> {
    Key(&'a str),
    Index(usize),
}

fn pointer_of(path: &[PathToken<'_>]) -> String {
    let mut pointer = String::new();
    for token in path {
        pointer.push('/');
        match token {
            PathToken::Key(key) => pointer.push_str(&escape_token(key)),
            // Writing into a String cannot fail.
            PathToken::Index(index) => {
                let _ = write!(pointer, "{index}");
            }
        }
    }
    pointer
}

/// A key as one reference token of a JSON pointer (RFC 6901: `~` as `~0`, `/` as `~1`), copied
/// only when it holds either.
pub fn escape_token(key: &str) -> Cow<'_, str> {
    if key.contains(['~', '/']) {
        Cow::Owned(key.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(key)
    }
}

/// A reference token of a JSON pointer as the key it stands for, copied only when it holds `~`.
pub fn unescape_token(token: &str) -> Cow<'_, str> {
    if token.contains('~') {
        Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(token)
    }
}

/// What [`walk`] hands its visitor: a node, or a mapping key (with the path of its mapping).
enum Visited<'a> {
    Node(&'a Node),
    Key(&'a Key),
}

/// Visits every node and every mapping key under `node` in document order, each with its path.
fn walk<'a>(
    node: &'a Node,
    path: &mut Vec<PathToken<'a>>,
    visit: &mut dyn FnMut(Visited<'a>, &[PathToken<'a>]),
) {
    visit(Visited::Node(node), path);
    match &node.kind {
        NodeKind::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(PathToken::Index(index));
                walk(item, path, visit);
                path.pop();
            }
        }
        NodeKind::Mapping(entries) => {
            for (key, value) in entries {
                visit(Visited::Key(key), path);
                path.push(PathToken::Key(&key.name));
                walk(value, path, visit);
                path.pop();
            }
        }
        _ => {}
    }
}

fn to_json(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Null => Value::Null,
        NodeKind::Bool(value) => Value::Bool(*value),
        NodeKind::Number(number) => Value::Number(number.clone()),
        NodeKind::String(text) => Value::String(text.to_string()),
        NodeKind::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeKind::Mapping(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                map.insert(key.name.to_string(), to_json(value));
            }
            Value::Object(map)
        }
    }
}

/// Loads one YAML document. Returns every E000 problem found (duplicate keys are all reported; a
/// syntax error or an exceeded limit stops the parse there).
pub fn load(source: &Source, limits: &Limits) -> Result<Document, Vec<Diagnostic>> {
    load_document(source, limits).map_err(|mut diagnostics| {
        // A duplicate key is quoted in its diagnostic, and a key may be megabytes long.
        for diagnostic in &mut diagnostics {
            crate::diagnostics::shorten(&mut diagnostic.message);
            crate::diagnostics::shorten(&mut diagnostic.help);
        }
        diagnostics
    })
}

fn load_document(source: &Source, limits: &Limits) -> Result<Document, Vec<Diagnostic>> {
    if source.text.len() > limits.max_bytes {
        return Err(vec![Diagnostic::error(
            Code::E000,
            format!("the file is {} bytes, over the limit of {} bytes", source.text.len(), limits.max_bytes),
            Some(source.line_span(1)),
            "split the mesh into smaller topologies, or check that this is the right file",
        )]);
    }
    if let Some(offset) = lone_carriage_return(&source.text) {
        // YAML (and the parser) counts a lone carriage return as a line break, while spans, editors
        // and terminals count lines by line feeds: every later diagnostic would point at the wrong
        // line, so such a file is refused where the first one is.
        return Err(vec![Diagnostic::error(
            Code::E000,
            "a carriage return without a line feed (an old Mac line ending)",
            Some(source.span_of_bytes(offset, offset + 1)),
            "save the file with LF or CRLF line endings",
        )]);
    }
    if let Some((line, start, length)) = longest_line_over(&source.text, limits.max_line_bytes) {
        let first = source.text[start..].chars().next().map_or(0, char::len_utf8);
        return Err(vec![Diagnostic::error(
            Code::E000,
            format!("line {line} is {length} bytes long, over the limit of {} bytes", limits.max_line_bytes),
            Some(source.span_of_bytes(start, start + first)),
            "no topology needs lines this long; check that this is the right file",
        )]);
    }
    let mut loader = Loader {
        source,
        limits,
        stack: Vec::new(),
        anchors: HashMap::new(),
        alias_nodes: 0,
        root: None,
        diagnostics: Vec::new(),
        documents: 0,
        cursor: Cursor::default(),
        nodes: 0,
        duplicate_keys: 0,
        sites: 0,
        agents: 0,
        key_names: HashSet::new(),
    };
    let mut parser = Parser::new_from_str(&source.text);
    loop {
        match parser.next_event() {
            None => break,
            Some(Ok((event, span))) => {
                if let Err(diagnostic) = loader.event(event, span) {
                    loader.diagnostics.push(diagnostic);
                    return Err(loader.diagnostics);
                }
            }
            Some(Err(error)) => {
                // The parser may place an error at end of input, on a line past the last one; the
                // cursor stops at the end of the text, and an empty span there would underline
                // nothing, so the error underlines the text's last character instead.
                let marker = error.marker();
                let mut span = loader.span_at(marker.index(), marker.index() + 1);
                let content = source.text.trim_end();
                if span.start == span.end
                    && let Some((offset, last)) = content.char_indices().next_back()
                {
                    span = source.span_of_bytes(offset, offset + last.len_utf8());
                }
                let mut help =
                    "fix the YAML syntax here (indentation, a missing `:` or an unclosed quote or bracket)";
                // The scanner notices a tab where the token before it ends, often on the line
                // above: point at the tab itself.
                if error.info().contains("tab")
                    && let Some(tab) = source.text.get(span.start..).and_then(|rest| rest.find('\t'))
                {
                    let offset = span.start + tab;
                    span = source.span_of_bytes(offset, offset + 1);
                    help = "YAML indents with spaces only: replace this tab with spaces";
                }
                loader.diagnostics.push(Diagnostic::error(
                    Code::E000,
                    format!("YAML syntax error: {}", error.info()),
                    Some(span),
                    help,
                ));
                return Err(loader.diagnostics);
            }
        }
    }
    if !loader.diagnostics.is_empty() {
        return Err(loader.diagnostics);
    }
    let root = loader.root.unwrap_or(Node { span: source.line_span(1).into(), kind: NodeKind::Null });
    Ok(Document { root, large_mappings: OnceLock::new() })
}

/// Each mapping under `root` long enough to be worth an index, by its pointer (made for those
/// alone).
fn index_large_mappings(root: &Node) -> LargeMappings {
    let mut large_mappings = HashMap::new();
    walk(root, &mut Vec::new(), &mut |visited, path| {
        if let Visited::Node(Node { kind: NodeKind::Mapping(entries), .. }) = visited
            && entries.len() >= INDEXED_MAPPING_ENTRIES
        {
            let mut positions = HashMap::with_capacity(entries.len());
            for (position, (key, _)) in entries.iter().enumerate() {
                positions.entry(key.name.to_string()).or_insert(position);
            }
            large_mappings.insert(pointer_of(path), positions);
        }
    });
    large_mappings
}

enum Frame {
    Sequence {
        start: Span,
        anchor: usize,
        items: Vec<Node>,
        /// This is a site's `agents:` list.
        agents: bool,
    },
    Mapping {
        start: Span,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
        /// Each key written so far, with the line it is on.
        seen: HashMap<Arc<str>, usize>,
        /// This is the top-level `sites:` mapping.
        sites: bool,
    },
}

struct Loader<'a> {
    source: &'a Source,
    limits: &'a Limits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    alias_nodes: usize,
    root: Option<Node>,
    diagnostics: Vec<Diagnostic>,
    documents: usize,
    cursor: Cursor,
    nodes: usize,
    duplicate_keys: usize,
    sites: usize,
    agents: usize,
    /// Every key name read so far, each stored once.
    key_names: HashSet<Arc<str>>,
}

/// A position in the text, kept in step with the parser's character positions.
///
/// The parser counts positions in characters from the start of the text, while spans are byte
/// ranges. Converting each position from its line's start would cost the length of the line, which
/// makes a long single-line flow collection quadratic (a 2 MB line took minutes); events arrive
/// almost in text order, so walking from the previous position costs next to nothing per event.
/// The line and column are counted here too, the way editors count them (`\n` ends a line; every
/// character, a byte order mark included, is one column), so they always agree with the byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    characters: usize,
    byte: usize,
    /// 1-based.
    line: usize,
    /// 0-based, in characters.
    column: usize,
}

impl Default for Cursor {
    fn default() -> Cursor {
        Cursor { characters: 0, byte: 0, line: 1, column: 0 }
    }
}

impl Cursor {
    /// Moves to the character at index `target`, or to the end of the text when it is past it.
    fn seek(&mut self, text: &str, target: usize) {
        // Forward, one leading byte at a time: its value gives the character's width, without
        // decoding the character.
        let bytes = text.as_bytes();
        while self.characters < target {
            let Some(&leading) = bytes.get(self.byte) else { break };
            self.byte += match leading {
                0..0x80 => 1,
                0xC0..0xE0 => 2,
                0xE0..0xF0 => 3,
                _ => 4,
            };
            self.characters += 1;
            if leading == b'\n' {
                self.line += 1;
                self.column = 0;
            } else {
                self.column += 1;
            }
        }
        while self.characters > target {
            let Some(previous) = text[..self.byte].chars().next_back() else { break };
            self.byte -= previous.len_utf8();
            self.characters -= 1;
            if previous == '\n' {
                // Stepping back over a line break is rare (an event that starts before the previous
                // one ended); only then is the column recounted from the line's start.
                self.line -= 1;
                let line_start = text[..self.byte].rfind('\n').map_or(0, |newline| newline + 1);
                self.column = text[line_start..self.byte].chars().count();
            } else {
                self.column -= 1;
            }
        }
    }
}

// A loader error ends the parse, so its size on the error path costs nothing worth boxing for.
#[allow(clippy::result_large_err)]
impl Loader<'_> {
    fn span(&mut self, span: YamlSpan) -> Span {
        self.span_at(span.start.index(), span.end.index())
    }

    /// The span between two character indexes of the text.
    fn span_at(&mut self, start: usize, end: usize) -> Span {
        let text = self.source.text.as_str();
        self.cursor.seek(text, start);
        let (start_byte, line, column) = (self.cursor.byte, self.cursor.line, self.cursor.column);
        self.cursor.seek(text, end.max(start));
        Span { start: start_byte, end: self.cursor.byte, line, column: column + 1 }
    }

    fn event(&mut self, event: Event<'_>, yaml_span: YamlSpan) -> Result<(), Diagnostic> {
        let span = self.span(yaml_span);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Diagnostic::error(
                        Code::E000,
                        "a topology file holds one YAML document; this is a second one",
                        Some(span),
                        "remove the `---` and everything after it, or move it to its own file",
                    ));
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                if value.len() > self.limits.max_scalar_bytes {
                    // Only its first character is underlined: the value may fill a 50 MB line.
                    let first = self.source.text[span.start..].chars().next().map_or(0, char::len_utf8);
                    let start = Span { end: span.start + first, ..span };
                    return Err(Diagnostic::error(
                        Code::E000,
                        format!(
                            "a value of {} bytes, over the limit of {} bytes",
                            value.len(),
                            self.limits.max_scalar_bytes
                        ),
                        Some(start),
                        "no setting of a topology holds more than a few hundred bytes; check that this is the right file",
                    ));
                }
                let tag = tag.map(|tag| format!("{}{}", tag.handle, tag.suffix));
                let kind = resolve_scalar(value, style, tag.as_deref());
                self.value(Node { span: span.into(), kind }, anchor)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(span)?;
                let agents = self.opens_agents_list();
                self.stack.push(Frame::Sequence { start: span, anchor, items: Vec::new(), agents });
            }
            Event::MappingStart(anchor, _) => {
                self.open(span)?;
                let sites = self.stack.len() == 1 && self.pending_key_is(0, "sites");
                if self.stack.len() == 1
                    && SHORTHAND_SITES.iter().any(|provider| self.pending_key_is(0, provider.as_str()))
                {
                    self.count_site(span)?;
                }
                self.stack.push(Frame::Mapping {
                    start: span,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                    seen: HashMap::new(),
                    sites,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else { return Ok(()) };
                // A growing list keeps room for at least four entries; most lists and mappings of a
                // topology hold one or two, so the spare room would be most of the tree's memory.
                let (node, anchor) = match frame {
                    Frame::Sequence { start, anchor, items, .. } => (
                        Node {
                            span: join(start, span).into(),
                            kind: NodeKind::Sequence(items.into_boxed_slice()),
                        },
                        anchor,
                    ),
                    Frame::Mapping { start, anchor, entries, .. } => (
                        Node {
                            span: join(start, span).into(),
                            kind: NodeKind::Mapping(entries.into_boxed_slice()),
                        },
                        anchor,
                    ),
                };
                self.value(node, anchor)?;
            }
            Event::Alias(anchor) => {
                let Some(target) = self.anchors.get(&anchor) else {
                    return Err(Diagnostic::error(
                        Code::E000,
                        "an alias to an unknown anchor",
                        Some(span),
                        "define the anchor (`&name`) before its alias (`*name`)",
                    ));
                };
                let copied = count_nodes(target);
                self.alias_nodes = self.alias_nodes.saturating_add(copied);
                if self.alias_nodes > self.limits.max_alias_nodes {
                    return Err(Diagnostic::error(
                        Code::E000,
                        format!(
                            "aliases expand to more than {} nodes (an alias bomb, or a file that should not use aliases this way)",
                            self.limits.max_alias_nodes
                        ),
                        Some(span),
                        "write the repeated values out, or reduce how often aliases are nested",
                    ));
                }
                let mut node = target.clone();
                node.span = span.into();
                self.value(node, 0)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    /// Whether the mapping at `depth` of the stack is waiting for the value of the key `name`.
    fn pending_key_is(&self, depth: usize, name: &str) -> bool {
        matches!(self.stack.get(depth), Some(Frame::Mapping { pending_key: Some(key), .. }) if *key.name == *name)
    }

    /// Whether the sequence about to open is a site's `agents:` list: `sites.<site>.agents` or,
    /// in the shorthand form, `aws.agents`.
    fn opens_agents_list(&self) -> bool {
        let depth = self.stack.len();
        let parent_is_agents = depth >= 2 && self.pending_key_is(depth - 1, "agents");
        parent_is_agents
            && match depth {
                3 => self.pending_key_is(0, "sites"),
                2 => SHORTHAND_SITES.iter().any(|provider| self.pending_key_is(0, provider.as_str())),
                _ => false,
            }
    }

    fn count_site(&mut self, span: Span) -> Result<(), Diagnostic> {
        self.sites += 1;
        if self.sites > self.limits.max_sites {
            return Err(Diagnostic::error(
                Code::E000,
                format!("more than {} sites; stopped reading here", self.limits.max_sites),
                Some(span),
                "split the mesh into several topologies, or check that this is the right file",
            ));
        }
        Ok(())
    }

    fn open(&mut self, span: Span) -> Result<(), Diagnostic> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(Diagnostic::error(
                Code::E000,
                format!("the document nests deeper than {} levels", self.limits.max_depth),
                Some(span),
                "a topology needs only a few levels of nesting; flatten this value",
            ));
        }
        if let Some(Frame::Mapping { pending_key: None, .. }) = self.stack.last() {
            return Err(Diagnostic::error(
                Code::E000,
                "a mapping key must be a plain value, not a mapping or a list",
                Some(span),
                "use a string as the key",
            ));
        }
        Ok(())
    }

    /// A complete node: a key or value of the enclosing mapping, an item of the enclosing sequence,
    /// or the document's root.
    fn value(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        let span: Span = node.span.into();
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(Diagnostic::error(
                Code::E000,
                format!("the document holds more than {} values", self.limits.max_nodes),
                Some(span),
                "a topology of the largest accepted size needs fewer; check that this is the right file, or split the mesh",
            ));
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let (entries_so_far, counts_agents) = match self.stack.last() {
            Some(Frame::Sequence { items, agents, .. }) => (items.len(), *agents),
            Some(Frame::Mapping { entries, pending_key: Some(_), .. }) => (entries.len(), false),
            _ => (0, false),
        };
        if entries_so_far >= self.limits.max_entries {
            return Err(Diagnostic::error(
                Code::E000,
                format!(
                    "a list or mapping of more than {} entries; stopped reading here",
                    self.limits.max_entries
                ),
                Some(span),
                "no list of a topology holds more entries than there may be agents; check that this is the right file",
            ));
        }
        if counts_agents {
            self.agents += 1;
            if self.agents > self.limits.max_agents {
                return Err(Diagnostic::error(
                    Code::E000,
                    format!("more than {} agents; stopped reading here", self.limits.max_agents),
                    Some(span),
                    "split the mesh into several topologies, or check that this is the right file",
                ));
            }
        }
        if let Some(Frame::Mapping { sites: true, pending_key: Some(_), .. }) = self.stack.last() {
            self.count_site(span)?;
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Sequence { items, .. }) => items.push(node),
            Some(Frame::Mapping { entries, pending_key, seen, .. }) => match pending_key.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    let name: Box<str> = match node.kind {
                        NodeKind::String(text) => text,
                        NodeKind::Null => "".into(),
                        NodeKind::Bool(value) => value.to_string().into(),
                        NodeKind::Number(number) => number.to_string().into(),
                        NodeKind::Sequence(_) | NodeKind::Mapping(_) => {
                            return Err(Diagnostic::error(
                                Code::E000,
                                "a mapping key must be a plain value, not a mapping or a list",
                                Some(span),
                                "use a string as the key",
                            ));
                        }
                    };
                    let name: Arc<str> = match self.key_names.get(&*name) {
                        Some(shared) => Arc::clone(shared),
                        None => {
                            let shared: Arc<str> = Arc::from(name);
                            self.key_names.insert(Arc::clone(&shared));
                            shared
                        }
                    };
                    if let Some(&first_line) = seen.get(&name) {
                        self.duplicate_keys += 1;
                        if self.duplicate_keys > MAX_DUPLICATE_KEYS {
                            // Past this many, the file is not a topology with a few slips; reporting
                            // each of a million duplicates would only flood the terminal.
                            return Err(Diagnostic::error(
                                Code::E000,
                                format!(
                                    "more than {MAX_DUPLICATE_KEYS} duplicate keys; stopped reading here"
                                ),
                                Some(span),
                                "remove the duplicate keys reported above, then validate again",
                            ));
                        }
                        self.diagnostics.push(
                            Diagnostic::error(
                                Code::E000,
                                format!("duplicate key `{name}`"),
                                Some(span),
                                format!("`{name}` is already set on line {first_line}; keep one of the two"),
                            )
                            .with_label("set again here"),
                        );
                    } else {
                        seen.insert(Arc::clone(&name), span.line);
                    }
                    *pending_key = Some(Key { name, span: node.span });
                }
            },
        }
        Ok(())
    }
}

/// The first line longer than `limit` bytes: its number (1-based), start offset and length.
fn longest_line_over(text: &str, limit: usize) -> Option<(usize, usize, usize)> {
    if text.len() <= limit {
        return None;
    }
    let mut start = 0;
    for (index, line) in text.split('\n').enumerate() {
        if line.len() > limit {
            return Some((index + 1, start, line.len()));
        }
        start += line.len() + 1;
    }
    None
}

/// The byte offset of the first `\r` that is not part of a `\r\n` pair.
fn lone_carriage_return(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    bytes
        .iter()
        .enumerate()
        .find(|&(offset, &byte)| byte == b'\r' && bytes.get(offset + 1) != Some(&b'\n'))
        .map(|(offset, _)| offset)
}

fn join(start: Span, end: Span) -> Span {
    Span { start: start.start, end: end.end.max(start.end), line: start.line, column: start.column }
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Sequence(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeKind::Mapping(entries) => 1 + entries.iter().map(|(_, value)| count_nodes(value)).sum::<usize>(),
        _ => 1,
    }
}

/// YAML 1.2 core schema resolution of a scalar.
fn resolve_scalar(value: Cow<'_, str>, style: ScalarStyle, tag: Option<&str>) -> NodeKind {
    let text = value.as_ref();
    match tag {
        Some("!!str") | Some("tag:yaml.org,2002:str") => return NodeKind::String(value.into()),
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return NodeKind::String(value.into());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "true" | "True" | "TRUE" => return NodeKind::Bool(true),
        "false" | "False" | "FALSE" => return NodeKind::Bool(false),
        _ => {}
    }
    if let Some(number) = resolve_number(text) {
        return NodeKind::Number(number);
    }
    NodeKind::String(value.into())
}

fn resolve_number(text: &str) -> Option<Number> {
    let first = text.as_bytes().first()?;
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return None;
    }
    if let Some(octal) = text.strip_prefix("0o") {
        return i64::from_str_radix(octal, 8).ok().map(Number::from);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Number::from);
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|byte| byte.is_ascii_digit()) {
        // Past 64 bits an integer is still a number (a float), so that a diagnostic calls it one.
        return match text.parse::<i64>() {
            Ok(integer) => Some(Number::from(integer)),
            Err(_) => text
                .parse::<u64>()
                .ok()
                .map(Number::from)
                .or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64)),
        };
    }
    let float_shaped = unsigned.bytes().any(|byte| byte.is_ascii_digit())
        && unsigned
            .bytes()
            .all(|byte| byte.is_ascii_digit() || matches!(byte, b'.' | b'e' | b'E' | b'-' | b'+'));
    if float_shaped {
        return text.parse::<f64>().ok().and_then(Number::from_f64);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `Cursor::seek` as characters decoded one at a time.
    fn seek_decoding(cursor: &mut Cursor, text: &str, target: usize) {
        while cursor.characters < target {
            let Some(next) = text[cursor.byte..].chars().next() else { break };
            cursor.byte += next.len_utf8();
            cursor.characters += 1;
            if next == '\n' {
                cursor.line += 1;
                cursor.column = 0;
            } else {
                cursor.column += 1;
            }
        }
        while cursor.characters > target {
            let Some(previous) = text[..cursor.byte].chars().next_back() else { break };
            cursor.byte -= previous.len_utf8();
            cursor.characters -= 1;
            cursor.line = 1 + text[..cursor.byte].matches('\n').count();
            let line_start = text[..cursor.byte].rfind('\n').map_or(0, |newline| newline + 1);
            cursor.column = text[line_start..cursor.byte].chars().count();
        }
    }

    proptest! {
        /// Reading a character's width from its leading byte ends where decoding it does, in any
        /// text and from any position, forward and back.
        #[test]
        fn seeking_by_leading_bytes_is_decoding(
            text in "[a-z: \\-\n\té€😀\r]{0,64}",
            targets in proptest::collection::vec(0usize..80, 1..12),
        ) {
            let mut cursor = Cursor::default();
            let mut decoding = Cursor::default();
            for target in targets {
                cursor.seek(&text, target);
                seek_decoding(&mut decoding, &text, target);
                prop_assert_eq!(cursor, decoding, "text {:?}, target {}", text, target);
            }
        }
    }

    fn load_text(text: &str) -> Result<Document, Vec<Diagnostic>> {
        load(&Source::new("test.yaml", text), &Limits::default())
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let document = load_text("a:\n  b: [1, 2]\n  c: héllo\n  d: x\n").unwrap();
        let located = document.locate("/a/c").unwrap();
        assert_eq!((located.key.unwrap().line, located.key.unwrap().column), (3, 3));
        assert_eq!((located.value.line, located.value.column), (3, 6));
        let after_multibyte = document.locate("/a/d").unwrap().value;
        assert_eq!(
            &document_text("a:\n  b: [1, 2]\n  c: héllo\n  d: x\n")
                [after_multibyte.start..after_multibyte.end],
            "x"
        );
        assert_eq!(document.locate("/a/b/1").unwrap().value.line, 2);
        assert!(document.locate("/a/zz").is_none());
    }

    fn document_text(text: &str) -> &str {
        text
    }

    #[test]
    fn core_schema_scalars() {
        let document = load_text("a: yes\nb: true\nc: 1.31\nd: '1'\ne: 0x1F\nf: ~\ng: 1e3\nh: -7\n").unwrap();
        let json = document.to_json();
        assert_eq!(json["a"], "yes");
        assert_eq!(json["b"], true);
        assert_eq!(json["c"], 1.31);
        assert_eq!(json["d"], "1");
        assert_eq!(json["e"], 31);
        assert!(json["f"].is_null());
        assert_eq!(json["g"], 1000.0);
        assert_eq!(json["h"], -7);
    }

    #[test]
    fn duplicate_keys_are_all_reported() {
        let errors = load_text("a: 1\nb: 2\na: 3\nb: 4\n").unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|error| error.code == "E000"));
        assert_eq!(errors[0].span.unwrap().line, 3);
    }

    #[test]
    fn alias_bomb_is_bounded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let previous = level - 1;
            text.push_str(&format!("a{level}: &a{level} [*a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}]\n"));
        }
        let errors = load_text(&text).unwrap_err();
        assert_eq!(errors[0].code, "E000");
        assert!(errors[0].message.contains("alias"));
    }

    #[test]
    fn depth_is_bounded() {
        let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let errors = load_text(&text).unwrap_err();
        assert!(errors[0].message.contains("nests deeper"));
    }

    #[test]
    fn syntax_errors_are_located() {
        let errors = load_text("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert_eq!(errors[0].code, "E000");
        assert!(errors[0].span.is_some());
    }

    #[test]
    fn long_single_line_costs_linear_time() {
        // 40,000 scalars on one line: converting each position from the line's start would walk
        // billions of characters.
        let text = format!("a: [{}x]\n", "é, ".repeat(40_000));
        let document = load_text(&text).unwrap();
        let last = document.locate("/a/40000").unwrap().value;
        assert_eq!(&text[last.start..last.end], "x");
        assert_eq!((last.line, last.column), (1, 5 + 40_000 * 3));
    }

    #[test]
    fn positions_count_a_byte_order_mark_as_a_column() {
        let text = "\u{feff}a: 1\nb: x # é\nc: [y]\n";
        let document = load_text(text).unwrap();
        let a = document.locate("/a").unwrap().key.unwrap();
        assert_eq!((&text[a.start..a.end], a.line, a.column), ("a", 1, 2));
        let y = document.locate("/c/0").unwrap().value;
        assert_eq!((&text[y.start..y.end], y.line, y.column), ("y", 3, 5));
    }

    #[test]
    fn errors_at_the_end_stay_on_the_last_line() {
        let errors = load_text("a:\n  b: 1\nc").unwrap_err();
        let span = errors[0].span.unwrap();
        assert_eq!((span.line, span.column, span.start, span.end), (3, 1, 10, 11));
        let errors = load_text("a: [1, 2\n\n").unwrap_err();
        let span = errors[0].span.unwrap();
        assert_eq!((span.line, span.column, span.start), (1, 8, 7));
    }

    #[test]
    fn large_mappings_are_located_by_index() {
        let text: String = (0..1_000).map(|index| format!("key{index}: {{a~/b: {index}}}\n")).collect();
        let document = load_text(&text).unwrap();
        let located = document.locate("/key999/a~0~1b").unwrap();
        assert_eq!((located.key.unwrap().line, located.value.line), (1000, 1000));
        assert!(document.locate("/key1000").is_none());
        assert_eq!(document.locate_nearest("/key7/missing").key.unwrap().line, 8);
    }

    #[test]
    fn a_large_mapping_under_an_escaped_key_is_indexed_by_its_pointer() {
        let entries: String = (0..1_000).map(|index| format!("  key{index}: {index}\n")).collect();
        let document =
            load_text(&format!("outer:\n  - a/b~c:\n{}", entries.replace("  key", "      key"))).unwrap();
        assert!(document.large_mappings.get().is_none(), "indexed before a node is located");
        assert_eq!(document.locate("/outer/0/a~1b~0c/key999").unwrap().value.line, 1002);
        let large_mappings = document.large_mappings.get().unwrap();
        assert!(large_mappings.contains_key("/outer/0/a~1b~0c"), "{:?}", large_mappings.keys());
        assert_eq!(escape_token("a/b~c"), "a~1b~0c");
        assert_eq!(unescape_token("a~1b~0c"), "a/b~c");
        assert!(matches!(escape_token("plain"), Cow::Borrowed("plain")));
        assert!(matches!(unescape_token("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn duplicate_keys_past_the_cap_stop_the_load() {
        let errors = load_text(&"a: 1\n".repeat(1_000)).unwrap_err();
        assert_eq!(errors.len(), MAX_DUPLICATE_KEYS + 1);
        assert!(errors.last().unwrap().message.contains("stopped reading"));
        assert_eq!(errors.last().unwrap().span.unwrap().line, MAX_DUPLICATE_KEYS + 2);
    }

    #[test]
    fn huge_scalars_are_refused_at_their_start() {
        let text = format!("mesh:\n  name: {}\n", "a".repeat(2 * 1024 * 1024));
        let errors = load_text(&text).unwrap_err();
        let span = errors[0].span.unwrap();
        assert!(errors[0].message.contains("over the limit"), "{}", errors[0].message);
        assert_eq!((span.line, span.column, span.end - span.start), (2, 9, 1));
    }

    #[test]
    fn the_number_of_values_is_bounded() {
        let limits = Limits { max_nodes: 1_000, ..Limits::default() };
        let text = format!("a: [{}x]\n", "x, ".repeat(2_000));
        let errors = load(&Source::new("test.yaml", text), &limits).unwrap_err();
        assert!(errors[0].message.contains("more than 1000 values"));
        assert_eq!(errors[0].span.unwrap().line, 1);
    }

    #[test]
    fn agents_and_sites_are_counted_while_reading() {
        let limits = Limits { max_agents: 3, max_sites: 2, ..Limits::default() };
        let load_with = |text: &str| load(&Source::new("test.yaml", text), &limits);
        let agents = "sites:\n  a:\n    agents: [{name: a1}, {name: a2}]\n  b:\n    agents:\n      - name: b1\n      - name: b2\n";
        let errors = load_with(agents).unwrap_err();
        assert!(errors[0].message.contains("more than 3 agents"), "{}", errors[0].message);
        assert_eq!(errors[0].span.unwrap().line, 7);
        let shorthand = "aws:\n  agents: [{name: a}, {name: b}]\ngcp:\n  agents: [{name: c}, {name: d}]\n";
        assert_eq!(load_with(shorthand).unwrap_err()[0].span.unwrap().line, 4);
        let sites = "sites:\n  a: {}\n  b: {}\n  c: {}\n";
        let errors = load_with(sites).unwrap_err();
        assert!(errors[0].message.contains("more than 2 sites"), "{}", errors[0].message);
        assert_eq!(errors[0].span.unwrap().line, 4);
        // Lists named `agents` elsewhere are not agents.
        assert!(load_with("mesh:\n  agents: [1, 2, 3, 4]\nsites:\n  a: {}\n").is_ok());
    }

    #[test]
    fn long_lists_and_long_lines_are_refused_before_they_are_read() {
        let limits = Limits { max_entries: 10, max_line_bytes: 100, ..Limits::default() };
        let load_with = |text: &str| load(&Source::new("test.yaml", text), &limits);
        let errors =
            load_with("a:\n  - 1\n  - 2\n  - 3\n  - 4\n  - 5\n  - 6\n  - 7\n  - 8\n  - 9\n  - 10\n  - 11\n")
                .unwrap_err();
        assert!(errors[0].message.contains("more than 10 entries"), "{}", errors[0].message);
        assert_eq!(errors[0].span.unwrap().line, 12);
        let errors = load_with(&format!("a: 1\nb: {}\n", "x".repeat(200))).unwrap_err();
        assert!(errors[0].message.contains("line 2 is 203 bytes long"), "{}", errors[0].message);
        assert_eq!(errors[0].span.unwrap().line, 2);
    }

    #[test]
    fn lone_carriage_returns_are_refused_where_they_are() {
        let errors = load_text("a: 1\r\nb: 2\nc:\r  d: 3\n").unwrap_err();
        assert!(errors[0].message.contains("carriage return"));
        let span = errors[0].span.unwrap();
        assert_eq!((span.line, span.column, span.start), (3, 3, 13));
        assert!(load_text("a: 1\r\nb: 2\r\n").is_ok());
    }

    #[test]
    fn second_document_is_rejected() {
        let errors = load_text("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(errors[0].message.contains("second"));
    }
}
