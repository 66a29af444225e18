//! Fixture-driven tests of the front half of the pipeline.
//!
//! - Every file of `fixtures/invalid/` starts with `# expect: CODE line N` (alternatives separated
//!   by `|`): validation must fail (warnings count, as with `--deny-warnings`) and report that code at
//!   that line. The human diagnostics of each are snapshotted.
//! - Every file of `fixtures/valid/` must validate without errors; its normalized model and its
//!   graph are snapshotted.

use std::path::Path;

use weave::diagnostics::render_human;
use weave::load::Limits;
use weave::source::Source;

fn analyze(path: &Path) -> (Source, weave::Analysis) {
    let text = std::fs::read_to_string(path).unwrap();
    let name = format!(
        "fixtures/{}/{}",
        path.parent().unwrap().file_name().unwrap().to_string_lossy(),
        path.file_name().unwrap().to_string_lossy()
    );
    let source = Source::new(name, text);
    let analysis = weave::analyze(&source, &Limits::default());
    (source, analysis)
}

/// Parses `# expect: E008 line 13 | E003 line 4` into (code, line) alternatives.
fn expectations(text: &str) -> Vec<(String, usize)> {
    let first = text.lines().next().unwrap_or_default();
    let spec =
        first.strip_prefix("# expect:").unwrap_or_else(|| panic!("missing `# expect:` header: {first}"));
    spec.split('|')
        .map(|alternative| {
            let words: Vec<&str> = alternative.split_whitespace().collect();
            assert!(words.len() == 3 && words[1] == "line", "malformed expectation `{alternative}`");
            (words[0].to_owned(), words[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn invalid_fixtures_report_their_expected_code_and_line() {
    insta::glob!("../../fixtures/invalid", "*.yaml", |path| {
        let (source, analysis) = analyze(path);
        let expected = expectations(&source.text);
        assert!(!analysis.diagnostics.is_empty(), "{}: no diagnostic at all", source.name);
        let found = analysis.diagnostics.iter().any(|diagnostic| {
            expected.iter().any(|(code, line)| {
                diagnostic.code.as_str() == code.as_str()
                    && diagnostic.span.is_some_and(|span| span.line == *line)
            })
        });
        assert!(
            found,
            "{}: expected one of {:?}, got {:?}",
            source.name,
            expected,
            analysis
                .diagnostics
                .iter()
                .map(|diagnostic| (diagnostic.code, diagnostic.span.map(|span| span.line)))
                .collect::<Vec<_>>()
        );
        for diagnostic in &analysis.diagnostics {
            assert!(diagnostic.span.is_some(), "{}: {} has no span", source.name, diagnostic.code);
            assert!(!diagnostic.help.is_empty(), "{}: {} has no help", source.name, diagnostic.code);
        }
        insta::assert_snapshot!(render_human(&analysis.diagnostics, &source, false));
    });
}

#[test]
fn every_code_has_a_fixture_and_a_doc() {
    let mut covered = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("fixtures/invalid").unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (code, _) in expectations(&text) {
            covered.insert(code);
        }
    }
    for code in weave::diagnostics::Code::ALL.map(|code| code.as_str()) {
        assert!(covered.contains(code), "no invalid fixture expects {code}");
        assert!(Path::new(&format!("docs/codes/{code}.md")).is_file(), "docs/codes/{code}.md is missing");
    }
}

#[test]
fn valid_fixtures_validate_and_snapshot_their_model_and_graph() {
    insta::glob!("../../fixtures/valid", "*.yaml", |path| {
        let (source, analysis) = analyze(path);
        let errors: Vec<_> = analysis.diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).collect();
        assert!(
            errors.is_empty(),
            "{}: {}",
            source.name,
            render_human(&analysis.diagnostics, &source, false)
        );
        let (topology, graph, _) = analysis.model.unwrap();
        insta::assert_yaml_snapshot!("model", topology);
        insta::assert_json_snapshot!("graph", weave::graph::to_json(&topology, &graph));
    });
}

#[test]
fn seed_shorthand_and_sites_form_normalize_to_the_same_model() {
    let (_, shorthand) = analyze(Path::new("fixtures/valid/seed-multi-cloud-values.yaml"));
    let (_, sites_form) = analyze(Path::new("fixtures/valid/seed-sites-form.yaml"));
    let (shorthand, _, _) = shorthand.model.unwrap();
    let (sites_form, _, _) = sites_form.model.unwrap();
    assert_eq!(serde_json::to_value(&shorthand).unwrap(), serde_json::to_value(&sites_form).unwrap());
}

#[test]
fn valid_fixtures_pass_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(weave::schema::SCHEMA_TEXT).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    insta::glob!("../../fixtures/valid", "*.yaml", |path| {
        let value: serde_json::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let errors: Vec<String> = validator.iter_errors(&value).map(|error| error.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    });
}
