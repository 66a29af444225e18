//! The located tree as a serde `Deserializer`, so that the model is read from the tree itself rather
//! than from a copy of it as a `serde_json::Value` (which the schema check needs, and builds on a
//! thread of its own meanwhile).
//!
//! It behaves as `&serde_json::Value`'s deserializer does on the value [`Document::to_json`] makes of
//! the same tree: the same visitor calls in the same order (a mapping's entries in key order, as a
//! `serde_json::Map` holds them), the same errors with the same messages. The model cannot tell the
//! two apart; `model::normalize` is tested against `normalize_json` on every fixture.
//!
//! [`Document::to_json`]: super::Document::to_json

use serde::de::{self, DeserializeSeed, Deserializer as _, Expected, IntoDeserializer, Unexpected, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::Error;

use super::{Key, Node, NodeKind};

/// A node of the tree, to deserialize from.
#[derive(Clone, Copy)]
pub struct NodeDeserializer<'a>(pub &'a Node);

impl<'a> NodeDeserializer<'a> {
    fn unexpected(&self) -> Unexpected<'a> {
        match &self.0.kind {
            NodeKind::Null => Unexpected::Unit,
            NodeKind::Bool(value) => Unexpected::Bool(*value),
            NodeKind::Number(number) => {
                if let Some(value) = number.as_u64() {
                    Unexpected::Unsigned(value)
                } else if let Some(value) = number.as_i64() {
                    Unexpected::Signed(value)
                } else {
                    Unexpected::Float(number.as_f64().unwrap_or_default())
                }
            }
            NodeKind::String(text) => Unexpected::Str(text),
            NodeKind::Sequence(_) => Unexpected::Seq,
            NodeKind::Mapping(_) => Unexpected::Map,
        }
    }

    fn invalid_type(&self, expected: &dyn Expected) -> Error {
        de::Error::invalid_type(self.unexpected(), expected)
    }
}

/// A sequence's items, then a check that the visitor took them all.
fn visit_sequence<'a, V: Visitor<'a>>(items: &'a [Node], visitor: V) -> Result<V::Value, Error> {
    let mut access = Items { items: items.iter() };
    let value = visitor.visit_seq(&mut access)?;
    if access.items.len() == 0 {
        Ok(value)
    } else {
        Err(de::Error::invalid_length(items.len(), &"fewer elements in array"))
    }
}

/// A mapping's entries in key order (a `serde_json::Map`'s), then a check that the visitor took
/// them all.
fn visit_mapping<'a, V: Visitor<'a>>(entries: &'a [(Key, Node)], visitor: V) -> Result<V::Value, Error> {
    let mut sorted: Vec<&'a (Key, Node)> = entries.iter().collect();
    sorted.sort_unstable_by(|left, right| left.0.name.cmp(&right.0.name));
    let mut access = Entries { entries: sorted.into_iter(), value: None };
    let value = visitor.visit_map(&mut access)?;
    if access.entries.len() == 0 {
        Ok(value)
    } else {
        Err(de::Error::invalid_length(entries.len(), &"fewer elements in map"))
    }
}

/// The numeric methods: each takes a number as `serde_json::Number` visits it, and nothing else.
macro_rules! numbers {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
                self.deserialize_number(visitor)
            }
        )*
    };
}

impl<'a> de::Deserializer<'a> for NodeDeserializer<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(value) => visitor.visit_bool(*value),
            NodeKind::Number(number) => number.deserialize_any(visitor),
            NodeKind::String(text) => visitor.visit_borrowed_str(text),
            NodeKind::Sequence(items) => visit_sequence(items, visitor),
            NodeKind::Mapping(entries) => visit_mapping(entries, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::String(text) => visitor.visit_enum(Variant { name: text, value: None }),
            NodeKind::Mapping(entries) => match &entries[..] {
                [(key, value)] => visitor.visit_enum(Variant { name: &key.name, value: Some(value) }),
                _ => Err(de::Error::invalid_value(Unexpected::Map, &"map with a single key")),
            },
            _ => Err(de::Error::invalid_type(self.unexpected(), &"string or map")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Bool(value) => visitor.visit_bool(*value),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::String(text) => visitor.visit_borrowed_str(text),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::String(text) => visitor.visit_borrowed_str(text),
            NodeKind::Sequence(items) => visit_sequence(items, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Null => visitor.visit_unit(),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Sequence(items) => visit_sequence(items, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Mapping(entries) => visit_mapping(entries, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Sequence(items) => visit_sequence(items, visitor),
            NodeKind::Mapping(entries) => visit_mapping(entries, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    numbers! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64
    }
}

impl NodeDeserializer<'_> {
    /// A number: the number's own visit (as `serde_json::Number` makes it), anything else the
    /// wrong type.
    fn deserialize_number<'a, V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Number(number) => number.deserialize_any(visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }
}

struct Items<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'a> de::SeqAccess<'a> for Items<'a> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'a>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        self.items.next().map(|item| seed.deserialize(NodeDeserializer(item))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Entries<'a> {
    entries: std::vec::IntoIter<&'a (Key, Node)>,
    value: Option<&'a Node>,
}

impl<'a> de::MapAccess<'a> for Entries<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        self.value = Some(value);
        seed.deserialize(KeyDeserializer(&key.name)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(NodeDeserializer(value)),
            None => Err(de::Error::custom("value is missing")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A mapping key: a string, which may stand for a number or a boolean as a `serde_json::Map`'s
/// keys do (`MapKeyDeserializer`).
struct KeyDeserializer<'a>(&'a str);

impl<'de> de::Deserializer<'de> for KeyDeserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.into_deserializer().deserialize_enum(name, variants, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// An enum's variant: its name, and the value of a `{variant: value}` mapping.
struct Variant<'a> {
    name: &'a str,
    value: Option<&'a Node>,
}

impl<'a> de::EnumAccess<'a> for Variant<'a> {
    type Error = Error;
    type Variant = VariantValue<'a>;

    fn variant_seed<S: DeserializeSeed<'a>>(self, seed: S) -> Result<(S::Value, VariantValue<'a>), Error> {
        let variant = seed.deserialize(self.name.into_deserializer())?;
        Ok((variant, VariantValue(self.value)))
    }
}

struct VariantValue<'a>(Option<&'a Node>);

impl<'a> de::VariantAccess<'a> for VariantValue<'a> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.0 {
            None => Ok(()),
            Some(value) => de::Deserialize::deserialize(NodeDeserializer(value)),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'a>>(self, seed: S) -> Result<S::Value, Error> {
        match self.0 {
            Some(value) => seed.deserialize(NodeDeserializer(value)),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"newtype variant")),
        }
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.0.map(|value| &value.kind) {
            Some(NodeKind::Sequence(items)) => {
                if items.is_empty() {
                    visitor.visit_unit()
                } else {
                    visit_sequence(items, visitor)
                }
            }
            Some(_) => Err(de::Error::invalid_type(self.unexpected(), &"tuple variant")),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"tuple variant")),
        }
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0.map(|value| &value.kind) {
            Some(NodeKind::Mapping(entries)) => visit_mapping(entries, visitor),
            Some(_) => Err(de::Error::invalid_type(self.unexpected(), &"struct variant")),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"struct variant")),
        }
    }
}

impl<'a> VariantValue<'a> {
    fn unexpected(&self) -> Unexpected<'a> {
        match self.0 {
            Some(value) => NodeDeserializer(value).unexpected(),
            None => Unexpected::UnitVariant,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Document, Limits, Node, NodeKind, load};
    use crate::model::{normalize, normalize_json};
    use crate::source::Source;

    /// Every topology of the fixture directories that loads.
    fn fixtures() -> Vec<(String, Document)> {
        let mut documents = Vec::new();
        for directory in ["fixtures/valid", "fixtures/invalid", "fixtures/fuzz", "fixtures/review"] {
            let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join(directory);
            let mut paths: Vec<_> = walk(&directory);
            paths.sort();
            for path in paths {
                let Ok(text) = std::fs::read_to_string(&path) else { continue };
                let source = Source::new(path.display().to_string(), text);
                if let Ok(document) = load(&source, &Limits::default()) {
                    documents.push((path.display().to_string(), document));
                }
            }
        }
        documents
    }

    fn walk(directory: &Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(directory).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else if path.extension().is_some_and(|extension| extension == "yaml") {
                found.push(path);
            }
        }
        found
    }

    /// Whether the model refused the tree (alike both ways).
    fn assert_same(name: &str, root: &Node) -> bool {
        let from_json = normalize_json(&super::super::to_json(root));
        let from_tree = normalize(root);
        assert_eq!(from_tree, from_json, "{name}");
        from_tree.is_err()
    }

    /// Every node of a tree, by its path of child positions.
    fn paths(node: &Node, path: &mut Vec<usize>, found: &mut Vec<Vec<usize>>) {
        found.push(path.clone());
        let children: Vec<&Node> = match &node.kind {
            NodeKind::Sequence(items) => items.iter().collect(),
            NodeKind::Mapping(entries) => entries.iter().map(|(_, value)| value).collect(),
            _ => Vec::new(),
        };
        for (position, child) in children.into_iter().enumerate() {
            path.push(position);
            paths(child, path, found);
            path.pop();
        }
    }

    /// The node at a path of child positions.
    fn node_at<'a>(root: &'a mut Node, path: &[usize]) -> &'a mut Node {
        path.iter().fold(root, |node, &position| match &mut node.kind {
            NodeKind::Sequence(items) => &mut items[position],
            NodeKind::Mapping(entries) => &mut entries[position].1,
            _ => unreachable!("a path goes through collections"),
        })
    }

    #[test]
    fn the_model_reads_the_tree_as_it_reads_its_json_copy() {
        let documents = fixtures();
        assert!(documents.len() > 20, "{} fixtures", documents.len());
        for (name, document) in &documents {
            assert_same(name, &document.root);
        }
    }

    /// Every node of a few fixtures replaced in turn by a value of each kind: the wrong types the
    /// model refuses are refused with the same message both ways.
    #[test]
    fn a_wrong_type_anywhere_fails_alike_both_ways() {
        let sample = |text: &str| {
            let source = Source::new("t.yaml".to_owned(), text.to_owned());
            load(&source, &Limits::default()).unwrap().root.kind
        };
        let kinds = [
            sample("~"),
            sample("true"),
            sample("7"),
            sample("-3"),
            sample("1.5"),
            sample("text"),
            sample("[]"),
            sample("[1, a]"),
            sample("{}"),
            sample("{a: 1}"),
            sample("{a: 1, b: 2}"),
        ];
        let documents = fixtures();
        let mut refused = 0;
        for (name, document) in documents.iter().filter(|(name, _)| name.contains("/valid/")).take(3) {
            let mut found = Vec::new();
            paths(&document.root, &mut Vec::new(), &mut found);
            for path in &found {
                for kind in &kinds {
                    let mut tree = document.root.clone();
                    node_at(&mut tree, path).kind = kind.clone();
                    refused += usize::from(assert_same(&format!("{name} at {path:?} as {kind:?}"), &tree));
                }
                // Every value of a mapping wrong at once: the first refused is the same one both
                // ways (the entries are visited in the same order).
                for kind in &kinds {
                    let mut tree = document.root.clone();
                    let NodeKind::Mapping(entries) = &mut node_at(&mut tree, path).kind else { break };
                    for (_, value) in entries.iter_mut() {
                        value.kind = kind.clone();
                    }
                    refused +=
                        usize::from(assert_same(&format!("{name} at {path:?}, every value {kind:?}"), &tree));
                }
            }
        }
        assert!(refused > 1000, "{refused} refused");
    }
}
