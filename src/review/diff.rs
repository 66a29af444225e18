//! `weave diff OLD NEW`: what a change to the topology does. First the graph (sites, agents, call
//! edges and federation pairs added or removed), then the artifacts: a per-file summary grouped by
//! target and site, then a unified diff of each changed file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::Compiled;
use crate::cli::{DiffArgs, EXIT_INVALID, EXIT_OK, EXIT_USAGE, compile_file, stdout_color};
use crate::emit::MemorySink;
use crate::write;

/// The graph-level changes between two topologies.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GraphChanges {
    pub sites_added: Vec<String>,
    pub sites_removed: Vec<String>,
    pub sites_changed: Vec<String>,
    pub agents_added: Vec<String>,
    pub agents_removed: Vec<String>,
    pub agents_changed: Vec<String>,
    pub edges_added: Vec<String>,
    pub edges_removed: Vec<String>,
    pub federation_added: Vec<String>,
    pub federation_removed: Vec<String>,
}

impl GraphChanges {
    pub fn is_empty(&self) -> bool {
        self == &GraphChanges::default()
    }
}

/// How one artifact changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileChange {
    Added,
    Removed,
    Changed,
}

impl FileChange {
    fn mark(self) -> &'static str {
        match self {
            FileChange::Added => "added",
            FileChange::Removed => "removed",
            FileChange::Changed => "changed",
        }
    }
}

/// The whole comparison.
#[derive(Debug, Default)]
pub struct Comparison {
    /// `None` when OLD is an output directory (there is no old graph to compare).
    pub graph: Option<GraphChanges>,
    pub files: BTreeMap<String, FileChange>,
    pub old: BTreeMap<String, Vec<u8>>,
    pub new: BTreeMap<String, Vec<u8>>,
}

impl Comparison {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.graph.as_ref().is_none_or(GraphChanges::is_empty)
    }
}

/// All artifacts of a compiled topology, in memory, with the lock file a build would write.
pub fn artifacts(compiled: &Compiled, input_name: &str, input: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut sink = MemorySink::default();
    // Emitting into memory cannot fail: the only error an emitter returns is its sink's.
    let _ = crate::emit(compiled, &[], &mut sink);
    let files = sink.artifacts.iter().map(|(path, bytes)| (path.clone(), write::sha256_hex(bytes))).collect();
    let lock = write::Lock::new(input_name, input, files);
    sink.artifacts.insert(write::LOCK_FILE.to_owned(), lock.to_bytes());
    sink.artifacts
}

/// Compares the graphs of two topologies.
pub fn graph_changes(old: &Compiled, new: &Compiled) -> GraphChanges {
    let sites = |compiled: &Compiled| -> BTreeMap<String, String> {
        compiled
            .topology
            .sites
            .iter()
            .map(|site| (site.name.clone(), serde_json::to_string(site).unwrap_or_default()))
            .collect()
    };
    let agents = |compiled: &Compiled| -> BTreeMap<String, String> {
        compiled
            .topology
            .agents
            .iter()
            .map(|agent| {
                let site = &compiled.topology.sites[agent.site];
                let mut value = serde_json::to_value(agent).unwrap_or_default();
                value["site"] = serde_json::Value::String(site.name.clone());
                (agent.name.clone(), value.to_string())
            })
            .collect()
    };
    let edges = |compiled: &Compiled| -> BTreeSet<String> {
        let mut edges = BTreeSet::new();
        for (caller, agent) in compiled.topology.agents.iter().enumerate() {
            for call in compiled.plan.calls_from(caller) {
                edges.insert(format!(
                    "{} → {} [{}]",
                    agent.name,
                    compiled.topology.agents[call.callee].name,
                    call.actions.join(", ")
                ));
            }
        }
        edges
    };
    let pairs = |compiled: &Compiled| -> BTreeSet<String> {
        compiled.graph.federated_pairs().map(|(left, right)| format!("{left} ↔ {right}")).collect()
    };
    let mut changes = GraphChanges::default();
    keyed(
        &sites(old),
        &sites(new),
        &mut changes.sites_added,
        &mut changes.sites_removed,
        &mut changes.sites_changed,
    );
    keyed(
        &agents(old),
        &agents(new),
        &mut changes.agents_added,
        &mut changes.agents_removed,
        &mut changes.agents_changed,
    );
    set(&edges(old), &edges(new), &mut changes.edges_added, &mut changes.edges_removed);
    set(&pairs(old), &pairs(new), &mut changes.federation_added, &mut changes.federation_removed);
    changes
}

fn keyed(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    added: &mut Vec<String>,
    removed: &mut Vec<String>,
    changed: &mut Vec<String>,
) {
    for (name, value) in new {
        match old.get(name) {
            None => added.push(name.clone()),
            Some(previous) if previous != value => changed.push(name.clone()),
            Some(_) => {}
        }
    }
    removed.extend(old.keys().filter(|name| !new.contains_key(*name)).cloned());
}

fn set(old: &BTreeSet<String>, new: &BTreeSet<String>, added: &mut Vec<String>, removed: &mut Vec<String>) {
    added.extend(new.difference(old).cloned());
    removed.extend(old.difference(new).cloned());
}

/// Compares two artifact trees file by file.
pub fn file_changes(
    old: &BTreeMap<String, Vec<u8>>,
    new: &BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, FileChange> {
    let mut files = BTreeMap::new();
    for (path, bytes) in new {
        match old.get(path) {
            None => {
                files.insert(path.clone(), FileChange::Added);
            }
            Some(previous) if previous != bytes => {
                files.insert(path.clone(), FileChange::Changed);
            }
            Some(_) => {}
        }
    }
    for path in old.keys() {
        if !new.contains_key(path) {
            files.insert(path.clone(), FileChange::Removed);
        }
    }
    files
}

/// The group an artifact belongs to: target and site (`k8s/aws`), or the target alone for mesh-wide
/// files (`opa`, `tailscale`).
pub fn group_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [file] => (*file).to_owned(),
        [target, _file] => (*target).to_owned(),
        [target, site, ..] => format!("{target}/{site}"),
        [] => String::new(),
    }
}

/// Renders the comparison: graph summary, file summary by group, then unified diffs (unless `stat`).
pub fn render(comparison: &Comparison, stat: bool, color: bool) -> String {
    let mut out = String::new();
    match &comparison.graph {
        None => out.push_str("graph: OLD is an output directory; comparing artifacts only\n"),
        Some(graph) if graph.is_empty() => out.push_str("graph: no change\n"),
        Some(graph) => {
            out.push_str("graph:\n");
            let lines: [(&str, &Vec<String>); 10] = [
                ("+ site", &graph.sites_added),
                ("- site", &graph.sites_removed),
                ("~ site", &graph.sites_changed),
                ("+ agent", &graph.agents_added),
                ("- agent", &graph.agents_removed),
                ("~ agent", &graph.agents_changed),
                ("+ call", &graph.edges_added),
                ("- call", &graph.edges_removed),
                ("+ federation", &graph.federation_added),
                ("- federation", &graph.federation_removed),
            ];
            if stat {
                for (label, items) in lines {
                    if !items.is_empty() {
                        out.push_str(&format!("  {label}: {}\n", items.len()));
                    }
                }
            } else {
                for (label, items) in lines {
                    for item in items {
                        out.push_str(&format!("  {label} {item}\n"));
                    }
                }
            }
        }
    }
    let mut groups: BTreeMap<String, Vec<(&String, FileChange)>> = BTreeMap::new();
    for (path, change) in &comparison.files {
        groups.entry(group_of(path)).or_default().push((path, *change));
    }
    if groups.is_empty() {
        out.push_str("artifacts: no change\n");
        return out;
    }
    let counts = |change: FileChange| comparison.files.values().filter(|&&each| each == change).count();
    out.push_str(&format!(
        "artifacts: {} changed, {} added, {} removed, in {}\n",
        counts(FileChange::Changed),
        counts(FileChange::Added),
        counts(FileChange::Removed),
        groups.keys().cloned().collect::<Vec<_>>().join(", ")
    ));
    for (group, files) in &groups {
        out.push_str(&format!("  {group}:"));
        if stat {
            let (changed, added, removed) =
                files.iter().fold((0, 0, 0), |(c, a, r), (_, change)| match change {
                    FileChange::Changed => (c + 1, a, r),
                    FileChange::Added => (c, a + 1, r),
                    FileChange::Removed => (c, a, r + 1),
                });
            out.push_str(&format!(" {changed} changed, {added} added, {removed} removed\n"));
        } else {
            out.push('\n');
            for (path, change) in files {
                out.push_str(&format!("    {:<8} {path}\n", change.mark()));
            }
        }
    }
    if stat {
        return out;
    }
    for files in groups.values() {
        for (path, _) in files {
            let old = comparison
                .old
                .get(*path)
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .unwrap_or_default();
            let new = comparison
                .new
                .get(*path)
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .unwrap_or_default();
            let diff = similar::TextDiff::from_lines(&old, &new);
            let old_header =
                if comparison.old.contains_key(*path) { format!("a/{path}") } else { "/dev/null".to_owned() };
            let new_header =
                if comparison.new.contains_key(*path) { format!("b/{path}") } else { "/dev/null".to_owned() };
            let unified = diff.unified_diff().context_radius(3).header(&old_header, &new_header).to_string();
            for line in unified.lines() {
                let colored = if !color {
                    line.to_owned()
                } else if line.starts_with("+++") || line.starts_with("---") {
                    format!("\x1b[1m{line}\x1b[0m")
                } else if line.starts_with('+') {
                    format!("\x1b[32m{line}\x1b[0m")
                } else if line.starts_with('-') {
                    format!("\x1b[31m{line}\x1b[0m")
                } else if line.starts_with("@@") {
                    format!("\x1b[36m{line}\x1b[0m")
                } else {
                    line.to_owned()
                };
                out.push_str(&colored);
                out.push('\n');
            }
        }
    }
    out
}

/// `weave diff`.
pub fn run(args: &DiffArgs) -> u8 {
    let (new, new_source) = match compile_file(&args.new) {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let new_tree = artifacts(&new, &new_source.name, new_source.text.as_bytes());
    let comparison = if args.old.is_dir() {
        let old_tree = match write::read_tree(&args.old) {
            Ok(tree) => tree,
            Err(error) => {
                eprintln!("error: cannot read {}: {error}", args.old.display());
                return EXIT_USAGE;
            }
        };
        compare(None, old_tree, new_tree)
    } else {
        let (old, old_source) = match compile_file(Path::new(&args.old)) {
            Ok(compiled) => compiled,
            Err(code) => return code,
        };
        let old_tree = artifacts(&old, &old_source.name, old_source.text.as_bytes());
        compare(Some(graph_changes(&old, &new)), old_tree, new_tree)
    };
    stdout!("{}", render(&comparison, args.stat, stdout_color()));
    if comparison.is_empty() { EXIT_OK } else { EXIT_INVALID }
}

/// Builds a comparison from two artifact trees. The lock files are left out of the file changes:
/// they change whenever anything does (the input digest), which says nothing new.
pub fn compare(
    graph: Option<GraphChanges>,
    mut old: BTreeMap<String, Vec<u8>>,
    mut new: BTreeMap<String, Vec<u8>>,
) -> Comparison {
    old.remove(write::LOCK_FILE);
    new.remove(write::LOCK_FILE);
    let files = file_changes(&old, &new);
    Comparison { graph, files, old, new }
}
