//! Fuzz target over the whole pipeline: load → schema → model → graph → check → every emitter.
//!
//! Any panic is a crash. Beyond "does not panic", the target asserts the promises a user relies on:
//!
//! - every diagnostic points into the input (a span inside the text, on character boundaries, whose
//!   line and column agree with its byte offset) and says how to fix it;
//! - the diagnostics render for a terminal and as JSON, as `weave validate` prints them; the terminal
//!   rendering stays short whatever the lines (each snippet line cut), holds no control character,
//!   and neither rendering prints the value of a secret diagnostic;
//! - a topology that passes every check builds: every emitter runs, every artifact path stays inside
//!   the output directory, and every artifact parses back with its consumer's grammar;
//! - the schema, validating the loaded tree in place, finds what it finds in the tree's JSON copy;
//! - the same small input builds byte-identically twice (a cheap determinism oracle; large inputs
//!   skip it so that the fuzzer keeps its pace).

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use weave::diagnostics::{Diagnostic, SECRET_CODES, SNIPPET_WIDTH, render_human, render_json};
use weave::emit::MemorySink;
use weave::load::Limits;
use weave::source::Source;

/// Inputs up to this size are built twice to compare the bytes.
const DETERMINISM_MAX_BYTES: usize = 4096;

/// Rendering many diagnostics with miette costs more than the rest of the pipeline; past this count
/// only the first ones are rendered (rendering is per diagnostic, so nothing is lost in kind).
const RENDER_MAX_DIAGNOSTICS: usize = 32;

fuzz_target!(|data: &[u8]| run(data));

fn run(data: &[u8]) {
    // The CLI refuses text that is not UTF-8 before the pipeline runs; the lossy conversion still
    // lets the fuzzer reach the pipeline from any bytes it tries.
    let text = String::from_utf8_lossy(data);
    let source = Source::new("fuzz.yaml", text.as_ref());
    let analysis = weave::analyze(&source, &Limits::default());
    for diagnostic in &analysis.diagnostics {
        assert_located(&source, diagnostic);
    }
    let shown = &analysis.diagnostics[..analysis.diagnostics.len().min(RENDER_MAX_DIAGNOSTICS)];
    let human = render_human(shown, &source, false);
    assert!(human.contains(&source.name), "the human rendering names no file");
    assert_bounded(&human, shown.len());
    let json = render_json(&analysis.diagnostics, &source.name, !analysis.has_errors());
    assert!(json["diagnostics"].is_array(), "the JSON rendering has no diagnostics list");
    assert_secrets_hidden(&source, &analysis.diagnostics, shown, &human, &json.to_string());

    assert_schema_in_place(&source);

    let Ok(compiled) = analysis.into_compiled() else { return };
    let artifacts = build(&compiled);
    assert!(!artifacts.is_empty(), "a valid topology built no artifact");
    for (path, bytes) in &artifacts {
        if let Err(error) = weave::write::safe_relative_path(path) {
            panic!("unsafe artifact path: {error}");
        }
        parse_back(path, bytes);
    }
    if data.len() <= DETERMINISM_MAX_BYTES {
        let again = match weave::compile("fuzz.yaml", text.as_ref()) {
            Ok(compiled) => compiled,
            Err(diagnostics) => panic!("the same text compiled once and failed once: {diagnostics:?}"),
        };
        assert!(artifacts == build(&again), "two builds of the same text differ");
    }
}

/// The human rendering grows with the number of diagnostics, never with the length of a line: each
/// snippet line is cut to `SNIPPET_WIDTH` characters, and messages are cut to a few hundred bytes.
fn assert_bounded(human: &str, diagnostics: usize) {
    let longest = human.lines().map(|line| line.chars().count()).max().unwrap_or(0);
    assert!(longest <= SNIPPET_WIDTH + 600, "a line of the human rendering has {longest} characters");
    assert!(
        human.len() <= 64 + diagnostics * 16 * 1024,
        "the human rendering of {diagnostics} diagnostics is {} bytes",
        human.len()
    );
    assert!(
        !human.chars().any(|character| character.is_control() && character != '\n'),
        "the human rendering holds a control character"
    );
}

/// The value of a secret diagnostic (E012, W104) appears in no rendering: not in its own snippet,
/// not in another diagnostic's snippet that shows the same line, and not in any message.
fn assert_secrets_hidden(source: &Source, all: &[Diagnostic], shown: &[Diagnostic], human: &str, json: &str) {
    for diagnostic in all.iter().filter(|diagnostic| SECRET_CODES.contains(&diagnostic.code)) {
        let Some(span) = diagnostic.span else { continue };
        let written =
            source.text[span.start..span.end].trim_matches(|character| matches!(character, '"' | '\''));
        // Short values may occur elsewhere in the text for other reasons; a secret is long. The
        // human rendering shows every control character as U+FFFD, so a piece holding U+FFFD may be
        // drawn there from other characters of the file, not from the secret.
        if written.chars().count() < 16 || written.contains(['\n', '\\', '\u{fffd}']) {
            continue;
        }
        // Only a window of each line is shown: look for a piece of the secret that fits, when that
        // piece is written nowhere else in the file (a comment or a key may repeat it).
        let piece: String = written.chars().take(16).collect();
        if source.text.matches(piece.as_str()).count() != 1 {
            continue;
        }
        assert!(!json.contains(&piece), "{} prints the secret in JSON", diagnostic.code);
        if shown.contains(diagnostic) {
            assert!(!human.contains(&piece), "{} prints the secret in its snippet", diagnostic.code);
        }
    }
}

/// The schema validates the loaded tree in place (`weave::load::instance`): it must find the
/// problems a validator finds in the tree's JSON copy, at the same places, by the same keywords.
fn assert_schema_in_place(source: &Source) {
    use weave::load::instance::{Tree, problem_lines};
    static VALIDATORS: OnceLock<(jsonschema::Validator, jsonschema::Validator<Tree>)> = OnceLock::new();
    let (by_copy, in_place) = VALIDATORS.get_or_init(|| {
        let schema: serde_json::Value = serde_json::from_str(weave::schema::SCHEMA_TEXT).unwrap();
        let in_place = jsonschema::options_for::<Tree>()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&schema)
            .unwrap();
        (jsonschema::draft202012::new(&schema).unwrap(), in_place)
    });
    let Ok(document) = weave::load::load(source, &Limits::default()) else { return };
    let copy = document.to_json();
    let expected = problem_lines(by_copy.iter_errors(&copy), 1000);
    let found = problem_lines(in_place.iter_errors(&document.root), 1000);
    assert!(expected.len() >= 1000 || found == expected, "in place: {found:?}\nin the copy: {expected:?}");
}

/// Every emitter into memory. A memory sink never fails, so an error here is an emitter's own.
fn build(compiled: &weave::Compiled) -> BTreeMap<String, Vec<u8>> {
    let mut sink = MemorySink::default();
    if let Err(error) = weave::emit(compiled, &[], &mut sink) {
        panic!("an emitter failed on a topology that passed every check: {error}");
    }
    sink.artifacts
}

/// A diagnostic must carry a span inside the text that miette can underline, and a help line.
fn assert_located(source: &Source, diagnostic: &Diagnostic) {
    let Some(span) = diagnostic.span else {
        panic!("{} has no span: {}", diagnostic.code, diagnostic.message);
    };
    let text = &source.text;
    assert!(
        span.start <= span.end && span.end <= text.len(),
        "{} span {span:?} is outside the text",
        diagnostic.code
    );
    assert!(
        text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
        "{} span {span:?} splits a character",
        diagnostic.code
    );
    let before = &text[..span.start];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |rest| rest.chars().count()) + 1;
    assert!(
        (span.line, span.column) == (line, column),
        "{} says line {} column {} but its span starts at line {line} column {column}: {}",
        diagnostic.code,
        span.line,
        span.column,
        diagnostic.message
    );
    assert!(!diagnostic.help.trim().is_empty(), "{} has no help: {}", diagnostic.code, diagnostic.message);
}

/// Parses one artifact with the grammar its consumer uses; panics with the reason when it fails.
fn parse_back(path: &str, bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { panic!("{path} is not UTF-8") };
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".tf") || name.ends_with(".conf") {
        if let Err(error) = hcl::parse(text) {
            panic!("{path} is not HCL: {error}");
        }
    } else if name.ends_with(".yaml") || name.ends_with(".yml") {
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            if let Err(error) = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(document) {
                panic!("{path} is not YAML: {error}");
            }
        }
    } else if name.ends_with(".json") || name.ends_with(".hujson") {
        // HuJSON is JSON with comments; weave writes only whole-line comments.
        let json: Vec<&str> = text.lines().filter(|line| !line.trim_start().starts_with("//")).collect();
        if let Err(error) = serde_json::from_str::<serde_json::Value>(&json.join("\n")) {
            panic!("{path} is not JSON: {error}");
        }
    } else if name.ends_with(".rego") {
        let mut engine = regorus::Engine::new();
        if let Err(error) = engine.add_policy(path.to_owned(), text.to_owned()) {
            panic!("{path} is not Rego: {error}");
        }
    }
}
