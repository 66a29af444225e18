//! The loaded tree as a JSON Schema instance: the schema validates the tree in place, through
//! jsonschema's interface for instances held in another representation than `serde_json::Value`,
//! instead of a JSON copy of the whole document (at 50,000 agents a million values, made and freed
//! on every run).
//!
//! It answers every question as the `serde_json::Value` that [`super::to_json`] makes of the same
//! tree would: the same types, strings, numbers and members (a mapping's keys are unique once
//! loaded), so validation finds the same problems. Members come in the order they are written,
//! where a `Value`'s come sorted by key; diagnostics are sorted by position once found.

use std::borrow::Cow;

use jsonschema::JsonType;
use jsonschema::json::{Array, Json, Node as JsonNode, NodeIdentity, Object};
use serde_json::{Number, Value};

use super::{Key, Node, NodeKind, Pos};

/// The representation: a [`Node`] of the loaded tree.
pub struct Tree;

impl Json for Tree {
    type Node<'a> = &'a Node;
    type PreparedKey = String;
    type StringBuffer = Option<Node>;

    // A mapping is a list of entries: a lookup is a linear search, so a members pass is worth a
    // few visits per lookup it replaces (as for `serde_json`'s ordered maps).
    const KEYS_PER_LOOKUP: usize = 2;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(buffer: &mut Option<Node>, string: &str, f: impl FnOnce(&Node) -> T) -> T {
        f(buffer.insert(Node { span: Pos::default(), kind: NodeKind::String(string.into()) }))
    }
}

impl<'a> JsonNode<'a, Tree> for &'a Node {
    type Object = &'a [(Key, Node)];
    type Array = &'a [Node];
    type Number = &'a Number;

    fn as_object(&self) -> Option<&'a [(Key, Node)]> {
        match &self.kind {
            NodeKind::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&'a [Node]> {
        match &self.kind {
            NodeKind::Sequence(items) => Some(items),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match &self.kind {
            NodeKind::String(text) => Some(Cow::Borrowed(text)),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<&'a Number> {
        match &self.kind {
            NodeKind::Number(number) => Some(number),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.kind {
            NodeKind::Bool(value) => Some(value),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.kind {
            NodeKind::Null => JsonType::Null,
            NodeKind::Bool(_) => JsonType::Boolean,
            NodeKind::Number(_) => JsonType::Number,
            NodeKind::String(_) => JsonType::String,
            NodeKind::Sequence(_) => JsonType::Array,
            NodeKind::Mapping(_) => JsonType::Object,
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(super::to_json(self))
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(std::ptr::from_ref::<Node>(*self) as usize))
    }
}

impl<'a> Object<'a, Tree> for &'a [(Key, Node)] {
    type Node = &'a Node;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        <[(Key, Node)]>::len(self)
    }

    fn get(&self, key: &String) -> Option<&'a Node> {
        self.iter().find(|(name, _)| *name.name == **key).map(|(_, value)| value)
    }

    fn members(&self) -> Members<'a> {
        Members(self.iter())
    }
}

/// A mapping's entries, as names and values.
pub struct Members<'a>(std::slice::Iter<'a, (Key, Node)>);

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a Node);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(key, value)| (&*key.name, value))
    }
}

impl<'a> Array<'a, Tree> for &'a [Node] {
    type Node = &'a Node;
    type ElementsIter = std::slice::Iter<'a, Node>;

    fn len(&self) -> usize {
        <[Node]>::len(self)
    }

    fn elements(&self) -> std::slice::Iter<'a, Node> {
        self.iter()
    }
}

/// The problems in `errors` as lines that compare across representations, sorted: each error's
/// instance path, schema path and message, its unexpected keys sorted (they come in the order the
/// members are visited: written order here, key order in a JSON copy). At most `limit` errors are
/// taken. What the tests and the fuzz target compare in-place validation with a validator of the
/// tree's JSON copy by.
pub fn problem_lines<'i>(
    errors: impl Iterator<Item = jsonschema::ValidationError<'i>>,
    limit: usize,
) -> Vec<String> {
    use jsonschema::error::ValidationErrorKind;
    let mut problems: Vec<String> = errors
        .take(limit)
        .map(|error| {
            let message = match error.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected }
                | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                    let mut unexpected = unexpected.clone();
                    unexpected.sort();
                    format!("unexpected {unexpected:?}")
                }
                _ => error.to_string(),
            };
            format!("{} {} {message}", error.instance_path().as_str(), error.schema_path().as_str())
        })
        .collect();
    problems.sort();
    problems
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Tree, problem_lines as problems};
    use crate::load::{Limits, load};
    use crate::source::Source;

    /// Every YAML file under `directory`, recursively.
    fn yaml_files(directory: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                yaml_files(&path, files);
            } else if path.extension().is_some_and(|extension| extension == "yaml") {
                files.push(path);
            }
        }
    }

    /// The tree validated in place finds the problems the JSON copy of it does, on every fixture
    /// (valid, invalid, review and fuzz cases) and on the fixtures with each top-level section cut
    /// or garbled.
    #[test]
    fn validates_as_its_json_copy() {
        let schema: serde_json::Value = serde_json::from_str(crate::schema::SCHEMA_TEXT).unwrap();
        let by_copy = jsonschema::draft202012::new(&schema).unwrap();
        let in_place = jsonschema::options_for::<Tree>()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&schema)
            .unwrap();
        let mut files = Vec::new();
        yaml_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"), &mut files);
        files.sort();
        let mut compared = 0;
        let mut with_problems = 0;
        for file in &files {
            let Ok(text) = std::fs::read_to_string(file) else { continue };
            let mut variants = vec![text.clone()];
            // Each top-level key's value replaced by a scalar, a list and a mapping of another shape.
            for line in text.lines().filter(|line| !line.starts_with([' ', '#', '-']) && line.ends_with(':'))
            {
                for garbage in [" 7", " [1, true, null]", " {unknown: {deeper: 1.5}}"] {
                    variants.push(text.replacen(line, &format!("{line}{garbage}\n_:"), 1));
                }
            }
            for variant in variants {
                let source = Source::new("fixture.yaml", variant);
                let Ok(document) = load(&source, &Limits::default()) else { continue };
                let copy = document.to_json();
                let expected = problems(by_copy.iter_errors(&copy), usize::MAX);
                let found = problems(in_place.iter_errors(&document.root), usize::MAX);
                assert_eq!(found, expected, "{}", file.display());
                assert_eq!(in_place.is_valid(&document.root), by_copy.is_valid(&copy));
                compared += 1;
                with_problems += usize::from(!expected.is_empty());
            }
        }
        assert!(compared > 100 && with_problems > 50, "{compared} compared, {with_problems} with problems");
    }
}
