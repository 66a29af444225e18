//! What the emitters' unit tests share: compiling a test topology (or a valid fixture) and running
//! one target into memory.

use std::collections::BTreeMap;

use super::{EmitContext, MemorySink, Target};
use crate::Compiled;

/// Compiles a test topology; panics with its diagnostics when it has errors.
pub fn compiled(text: &str) -> Compiled {
    crate::compile("test.yaml", text)
        .unwrap_or_else(|diagnostics| panic!("the test topology does not compile: {diagnostics:#?}"))
}

/// Compiles `fixtures/valid/<name>`.
pub fn fixture(name: &str) -> Compiled {
    let path = format!("{}/fixtures/valid/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    crate::compile(&path, &text).unwrap_or_else(|diagnostics| panic!("{path}: {diagnostics:#?}"))
}

/// The artifacts of one target, by path.
pub fn artifacts(compiled: &Compiled, target: &Target) -> BTreeMap<String, Vec<u8>> {
    let context = EmitContext::of(compiled);
    let mut sink = MemorySink::default();
    (target.emit)(&context, &mut sink).expect("a memory sink accepts everything");
    sink.artifacts
}
