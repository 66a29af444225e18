//! What several test modules share: building a fixture into memory, and reading a YAML stream.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::Value;
use weave::emit::MemorySink;

/// Compiles the topology at `path` (which must be valid) and emits every artifact into memory.
pub fn build(path: &Path) -> (weave::Compiled, BTreeMap<String, Vec<u8>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let compiled = weave::compile(&path.display().to_string(), &text)
        .unwrap_or_else(|diagnostics| panic!("{}: {diagnostics:?}", path.display()));
    let mut sink = MemorySink::default();
    weave::emit(&compiled, &[], &mut sink).unwrap();
    (compiled, sink.artifacts)
}

/// The documents of a YAML stream, empty ones left out.
pub fn documents(bytes: &[u8]) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(std::str::from_utf8(bytes).unwrap())
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .filter(|document: &Value| !document.is_null())
        .collect()
}
