//! Load: YAML text → a tree with a source span on every node (and on every mapping key).
//!
//! Parsing goes through saphyr-parser's event stream, which carries a position on every event; the
//! tree keeps those positions so that every later diagnostic (schema, semantic checks) points into
//! the file. The tree converts to a `serde_json::Value` for the schema and the model, and answers
//! "where is the node at this JSON pointer" for the diagnostics.
//!
//! What an input may cost is bounded here, before anything else runs: the file size, the nesting
//! depth, and the number of nodes that aliases may copy (the "billion laughs" attack). Duplicate keys
//! are errors: YAML forbids them and a silent last-one-wins is how drift hides.
//!
//! Scalars resolve with the YAML 1.2 core schema (`yes`/`no`/`on`/`off` are strings).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YamlSpan};
use serde_json::{Map, Number, Value};

use crate::diagnostics::{Diagnostic, Span};
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
    /// Most sites in one topology.
    pub max_sites: usize,
    /// Most agents in one topology.
    pub max_agents: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 64 * 1024 * 1024,
            max_depth: 64,
            max_alias_nodes: 10_000,
            max_sites: 1_000,
            max_agents: 100_000,
        }
    }
}

/// A YAML node with its place in the file.
#[derive(Debug, Clone)]
pub struct Node {
    pub span: Span,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Sequence(Vec<Node>),
    /// Entries in the order written, each with the span of its key.
    Mapping(Vec<(Key, Node)>),
}

/// A mapping key and where it is written.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub span: Span,
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
}

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
            return Some(Located { key: None, value: node.span });
        }
        for token in pointer.strip_prefix('/')?.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            match &node.kind {
                NodeKind::Mapping(entries) => {
                    let (entry_key, value) = entries.iter().find(|(entry_key, _)| entry_key.name == token)?;
                    key = Some(entry_key.span);
                    node = value;
                }
                NodeKind::Sequence(items) => {
                    node = items.get(token.parse::<usize>().ok()?)?;
                    key = None;
                }
                _ => return None,
            }
        }
        Some(Located { key, value: node.span })
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
                None => return Located { key: None, value: self.root.span },
            }
        }
    }

    /// Every string scalar of the document with its JSON pointer and span, in document order.
    pub fn strings(&self) -> Vec<(String, &str, Span)> {
        let mut found = Vec::new();
        collect_strings(&self.root, &mut String::new(), &mut found);
        found
    }
}

fn collect_strings<'a>(node: &'a Node, pointer: &mut String, found: &mut Vec<(String, &'a str, Span)>) {
    match &node.kind {
        NodeKind::String(text) => found.push((pointer.clone(), text.as_str(), node.span)),
        NodeKind::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                let length = pointer.len();
                pointer.push('/');
                pointer.push_str(&index.to_string());
                collect_strings(item, pointer, found);
                pointer.truncate(length);
            }
        }
        NodeKind::Mapping(entries) => {
            for (key, value) in entries {
                let length = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.name.replace('~', "~0").replace('/', "~1"));
                collect_strings(value, pointer, found);
                pointer.truncate(length);
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
        NodeKind::String(text) => Value::String(text.clone()),
        NodeKind::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeKind::Mapping(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                map.insert(key.name.clone(), to_json(value));
            }
            Value::Object(map)
        }
    }
}

/// Loads one YAML document. Returns every E000 problem found (duplicate keys are all reported; a
/// syntax error or an exceeded limit stops the parse there).
pub fn load(source: &Source, limits: &Limits) -> Result<Document, Vec<Diagnostic>> {
    if source.text.len() > limits.max_bytes {
        return Err(vec![Diagnostic::error(
            "E000",
            format!("the file is {} bytes, over the limit of {} bytes", source.text.len(), limits.max_bytes),
            Some(source.line_span(1)),
            "split the mesh into smaller topologies, or check that this is the right file",
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
                let marker = error.marker();
                let span = source.span((marker.line(), marker.col()), (marker.line(), marker.col() + 1));
                loader.diagnostics.push(Diagnostic::error(
                    "E000",
                    format!("YAML syntax error: {}", error.info()),
                    Some(span),
                    "fix the YAML syntax here (indentation, a missing `:` or an unclosed quote or bracket)",
                ));
                return Err(loader.diagnostics);
            }
        }
    }
    if !loader.diagnostics.is_empty() {
        return Err(loader.diagnostics);
    }
    let root = loader.root.unwrap_or(Node { span: source.line_span(1), kind: NodeKind::Null });
    Ok(Document { root })
}

enum Frame {
    Sequence {
        start: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Mapping {
        start: Span,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
        seen: HashSet<String>,
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
}

impl Loader<'_> {
    fn span(&self, span: YamlSpan) -> Span {
        self.source.span((span.start.line(), span.start.col()), (span.end.line(), span.end.col()))
    }

    fn event(&mut self, event: Event<'_>, yaml_span: YamlSpan) -> Result<(), Diagnostic> {
        let span = self.span(yaml_span);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Diagnostic::error(
                        "E000",
                        "a topology file holds one YAML document; this is a second one",
                        Some(span),
                        "remove the `---` and everything after it, or move it to its own file",
                    ));
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag.map(|tag| format!("{}{}", tag.handle, tag.suffix));
                let kind = resolve_scalar(value, style, tag.as_deref());
                self.value(Node { span, kind }, anchor)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(span)?;
                self.stack.push(Frame::Sequence { start: span, anchor, items: Vec::new() });
            }
            Event::MappingStart(anchor, _) => {
                self.open(span)?;
                self.stack.push(Frame::Mapping {
                    start: span,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                    seen: HashSet::new(),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else { return Ok(()) };
                let (node, anchor) = match frame {
                    Frame::Sequence { start, anchor, items } => {
                        (Node { span: join(start, span), kind: NodeKind::Sequence(items) }, anchor)
                    }
                    Frame::Mapping { start, anchor, entries, .. } => {
                        (Node { span: join(start, span), kind: NodeKind::Mapping(entries) }, anchor)
                    }
                };
                self.value(node, anchor)?;
            }
            Event::Alias(anchor) => {
                let Some(target) = self.anchors.get(&anchor) else {
                    return Err(Diagnostic::error(
                        "E000",
                        "an alias to an unknown anchor",
                        Some(span),
                        "define the anchor (`&name`) before its alias (`*name`)",
                    ));
                };
                let copied = count_nodes(target);
                self.alias_nodes = self.alias_nodes.saturating_add(copied);
                if self.alias_nodes > self.limits.max_alias_nodes {
                    return Err(Diagnostic::error(
                        "E000",
                        format!(
                            "aliases expand to more than {} nodes (an alias bomb, or a file that should not use aliases this way)",
                            self.limits.max_alias_nodes
                        ),
                        Some(span),
                        "write the repeated values out, or reduce how often aliases are nested",
                    ));
                }
                let mut node = target.clone();
                node.span = span;
                self.value(node, 0)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn open(&mut self, span: Span) -> Result<(), Diagnostic> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(Diagnostic::error(
                "E000",
                format!("the document nests deeper than {} levels", self.limits.max_depth),
                Some(span),
                "a topology needs only a few levels of nesting; flatten this value",
            ));
        }
        if let Some(Frame::Mapping { pending_key: None, .. }) = self.stack.last() {
            return Err(Diagnostic::error(
                "E000",
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
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Sequence { items, .. }) => items.push(node),
            Some(Frame::Mapping { entries, pending_key, seen, .. }) => match pending_key.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    let name = match node.kind {
                        NodeKind::String(text) => text,
                        NodeKind::Null => String::new(),
                        NodeKind::Bool(value) => value.to_string(),
                        NodeKind::Number(number) => number.to_string(),
                        NodeKind::Sequence(_) | NodeKind::Mapping(_) => {
                            return Err(Diagnostic::error(
                                "E000",
                                "a mapping key must be a plain value, not a mapping or a list",
                                Some(node.span),
                                "use a string as the key",
                            ));
                        }
                    };
                    if !seen.insert(name.clone()) {
                        let first =
                            entries.iter().find(|(key, _)| key.name == name).map(|(key, _)| key.span.line);
                        self.diagnostics.push(
                            Diagnostic::error(
                                "E000",
                                format!("duplicate key `{name}`"),
                                Some(node.span),
                                match first {
                                    Some(line) => {
                                        format!("`{name}` is already set on line {line}; keep one of the two")
                                    }
                                    None => format!(
                                        "`{name}` is already set in this mapping; keep one of the two"
                                    ),
                                },
                            )
                            .with_label("set again here"),
                        );
                    }
                    *pending_key = Some(Key { name, span: node.span });
                }
            },
        }
        Ok(())
    }
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
        Some("!!str") | Some("tag:yaml.org,2002:str") => return NodeKind::String(value.into_owned()),
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return NodeKind::String(value.into_owned());
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
    NodeKind::String(value.into_owned())
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
        return match text.parse::<i64>() {
            Ok(integer) => Some(Number::from(integer)),
            Err(_) => text.parse::<u64>().ok().map(Number::from),
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
    fn second_document_is_rejected() {
        let errors = load_text("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(errors[0].message.contains("second"));
    }
}
