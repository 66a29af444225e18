//! Every YAML block of README.md and docs/ is checked, so that what a reader copies works.
//!
//! A fenced block whose info string starts with `yaml` (or `yml`) is one of:
//! - a topology, when its root is a mapping with a top-level key of the topology (`sites`, `aws`,
//!   `mesh`, ...): it must validate without errors (warnings are allowed: the seed's idle agents);
//! - `yaml fragment`: a part of a topology shown out of context (an agent entry, one section): it
//!   must parse as YAML;
//! - `yaml invalid`: an example of a mistake: `weave validate` must report it (an error or a
//!   warning), and on a page of docs/codes/, when the block declares sites, with the page's own
//!   code;
//! - any other YAML (a CI workflow, a pre-commit configuration): it must parse as YAML.

use std::path::{Path, PathBuf};

use weave::load::Limits;
use weave::source::Source;

/// One fenced YAML block.
struct Block {
    /// `README.md:184`, the line of the opening fence.
    place: String,
    /// The info string's words after the language.
    marks: Vec<String>,
    text: String,
    /// The code documented by the page, for the pages of docs/codes/.
    code: Option<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn markdown_files(directory: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            markdown_files(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "md") {
            files.push(path);
        }
    }
}

fn yaml_blocks(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).unwrap();
    let relative = path.strip_prefix(root()).unwrap().display().to_string();
    let code = (relative.starts_with("docs/codes/"))
        .then(|| path.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|stem| stem.len() == 4);
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let trimmed = lines[index].trim_start();
        let fence_length = trimmed.chars().take_while(|&c| c == '`' || c == '~').count();
        if fence_length < 3 {
            index += 1;
            continue;
        }
        let fence = &trimmed[..fence_length];
        let info: Vec<&str> = trimmed[fence_length..].split_whitespace().collect();
        let indent = lines[index].len() - trimmed.len();
        let start = index;
        index += 1;
        let mut body = Vec::new();
        while index < lines.len() && !lines[index].trim_start().starts_with(fence) {
            body.push(lines[index].get(indent..).unwrap_or(lines[index].trim_start()));
            index += 1;
        }
        index += 1;
        if matches!(info.first(), Some(&"yaml" | &"yml")) {
            blocks.push(Block {
                place: format!("{relative}:{}", start + 1),
                marks: info[1..].iter().map(|mark| (*mark).to_owned()).collect(),
                text: body.join("\n") + "\n",
                code: code.clone(),
            });
        }
    }
    blocks
}

fn all_blocks() -> Vec<Block> {
    let mut files = vec![root().join("README.md")];
    markdown_files(&root().join("docs"), &mut files);
    files.iter().flat_map(|path| yaml_blocks(path)).collect()
}

/// The keys the topology allows at its root.
fn topology_keys() -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(weave::schema::SCHEMA_TEXT).unwrap();
    schema["properties"].as_object().unwrap().keys().cloned().collect()
}

fn parse(block: &Block) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&block.text)
        .unwrap_or_else(|error| panic!("{}: the YAML does not parse: {error}\n{}", block.place, block.text))
}

/// Whether a block is a whole topology: a mapping with a top-level key of the topology.
fn is_topology(value: &serde_yaml_ng::Value, keys: &[String]) -> bool {
    value.as_mapping().is_some_and(|mapping| {
        mapping.keys().any(|key| key.as_str().is_some_and(|key| keys.iter().any(|known| known == key)))
    })
}

/// Whether a block declares sites (`sites:` or the seed's `aws:`, `gcp:`, `azure:`): only then can
/// the checks beyond the schema run on it.
fn defines_sites(value: &serde_yaml_ng::Value) -> bool {
    value
        .as_mapping()
        .is_some_and(|mapping| ["sites", "aws", "gcp", "azure"].iter().any(|key| mapping.contains_key(*key)))
}

#[test]
fn every_yaml_block_of_the_documentation_works() {
    let keys = topology_keys();
    let blocks = all_blocks();
    let mut topologies = 0;
    let mut failures = Vec::new();
    for block in &blocks {
        let analyze =
            || weave::analyze(&Source::new(block.place.clone(), block.text.clone()), &Limits::default());
        match block.marks.first().map(String::as_str) {
            Some("fragment") => {
                parse(block);
            }
            Some("invalid") => {
                let analysis = analyze();
                if analysis.diagnostics.is_empty() {
                    failures.push(format!(
                        "{}: marked invalid, but weave reports nothing\n{}",
                        block.place, block.text
                    ));
                }
                if let Some(code) = block.code.as_ref().filter(|_| {
                    // An example of E000 need not parse.
                    serde_yaml_ng::from_str(&block.text).is_ok_and(|value| defines_sites(&value))
                }) {
                    let codes: Vec<&str> =
                        analysis.diagnostics.iter().map(|found| found.code.as_str()).collect();
                    if !codes.contains(&code.as_str()) {
                        failures.push(format!(
                            "{}: the example of {code} reports {codes:?}\n{}",
                            block.place, block.text
                        ));
                    }
                }
            }
            Some(other) => panic!("{}: unknown mark `{other}` (use `fragment` or `invalid`)", block.place),
            None => {
                if is_topology(&parse(block), &keys) {
                    topologies += 1;
                    let analysis = analyze();
                    let errors: Vec<String> = analysis
                        .diagnostics
                        .iter()
                        .filter(|diagnostic| diagnostic.is_error())
                        .map(|diagnostic| {
                            let line = diagnostic.span.map_or(0, |span| span.line);
                            format!("{} line {line}: {}", diagnostic.code, diagnostic.message)
                        })
                        .collect();
                    if !errors.is_empty() {
                        failures.push(format!(
                            "{}: a topology that does not validate (mark a part of one `yaml fragment`, a \
                             mistake `yaml invalid`):\n{}\n{}",
                            block.place,
                            errors.join("\n"),
                            block.text
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(blocks.iter().any(|block| block.place.starts_with("README.md")), "README.md has YAML blocks");
    assert!(topologies >= 2, "README's topology and docs/topology.md's are found");
}
