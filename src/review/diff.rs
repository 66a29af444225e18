//! `weave diff OLD NEW`: what a change to the topology does. First the graph (sites, agents, call
//! edges and federation pairs added or removed), then the artifacts: a per-file summary grouped by
//! target and site, then a unified diff of each changed file.
//!
//! What it costs grows with the mesh, not with its square: the artifacts are first compared by
//! digest (against an output directory, by its lock and its files' size and time, reading a file only
//! when in doubt), and only the changed files are then held in memory, up to [`MAX_DIFF_BYTES`] in
//! all; the unified diff of each has a time limit, after which it is coarser but still correct. An
//! output directory is read only if it is weave's (its lock parses and lists every file), and only
//! its regular files, each up to [`MAX_FILE_BYTES`].

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::Compiled;
use crate::emit::{ForkSink, MemorySink, Sink};
use crate::write;

/// The most bytes (old and new together) of changed files held for unified diffs; the files past it
/// are listed without their diff.
pub const MAX_DIFF_BYTES: u64 = 64 << 20;
/// The largest file read from an output directory.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// How long the line diff of one file may search for the smallest diff.
const DIFF_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// The bytes of changed files, for their unified diffs: every one, or as many as fit in
    /// [`MAX_DIFF_BYTES`] (see `held_back`).
    pub old: BTreeMap<String, Vec<u8>>,
    pub new: BTreeMap<String, Vec<u8>>,
    /// Changed files whose bytes were not kept (over the limit): listed, without a diff.
    pub held_back: BTreeSet<String>,
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
    let lock =
        write::Lock::new(write::Origin::all(input_name, input), files, std::mem::take(&mut sink.inputs));
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
        compiled.graph.domains().federated_pairs().map(|(left, right)| format!("{left} ↔ {right}")).collect()
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
            if comparison.held_back.contains(*path) {
                continue;
            }
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
            let diff = similar::TextDiff::configure().timeout(DIFF_TIMEOUT).diff_lines(&old, &new);
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
    if !comparison.held_back.is_empty() {
        out.push_str(&format!(
            "diff: {} more changed files listed above without their diff (the changed files are over {} MiB together)\n",
            comparison.held_back.len(),
            MAX_DIFF_BYTES >> 20
        ));
    }
    out
}

/// Which changed files have their bytes kept for a unified diff: in path order, while the old and new
/// sizes together stay within [`MAX_DIFF_BYTES`]. The rest are held back.
pub fn select_for_diff(
    files: &BTreeMap<String, FileChange>,
    size: impl Fn(&str) -> u64,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut kept = BTreeSet::new();
    let mut held_back = BTreeSet::new();
    let mut total = 0u64;
    for path in files.keys() {
        let bytes = size(path);
        if held_back.is_empty() && total + bytes <= MAX_DIFF_BYTES {
            total += bytes;
            kept.insert(path.clone());
        } else {
            held_back.insert(path.clone());
        }
    }
    (kept, held_back)
}

/// What a topology's build holds at a path, as far as a comparison needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Recorded {
    /// The artifact's sha256 and size.
    Content(String, u64),
    /// The digest of the declared inputs it is rendered from ([`crate::emit::inputs`]), left
    /// unrendered: equal inputs digests mean equal bytes.
    Inputs(String),
}

impl Recorded {
    fn size(&self) -> u64 {
        match self {
            Recorded::Content(_, size) => *size,
            Recorded::Inputs(_) => 0,
        }
    }
}

/// What a digest pass keeps.
#[derive(Clone, Default)]
enum Keep {
    /// Every artifact, an artifact with declared inputs by their digest alone.
    #[default]
    All,
    /// The sha256 and size of these artifacts only, each rendered.
    Rendered(Arc<BTreeSet<String>>),
    /// The bytes of these artifacts only.
    Bytes(Arc<BTreeSet<String>>),
}

/// A sink that records each artifact as [`Keep`] says, rendering an artifact with declared inputs
/// only when its bytes or digest are wanted.
#[derive(Default)]
struct DigestSink {
    keep: Keep,
    recorded: BTreeMap<String, Recorded>,
    kept: BTreeMap<String, Vec<u8>>,
}

impl DigestSink {
    fn wants(&self, path: &str) -> bool {
        match &self.keep {
            Keep::All => true,
            Keep::Rendered(wanted) | Keep::Bytes(wanted) => wanted.contains(path),
        }
    }
}

impl Sink for DigestSink {
    fn put(&mut self, path: String, bytes: Vec<u8>) -> io::Result<()> {
        write::check_artifact_path(&path)?;
        if !self.wants(&path) {
            return Ok(());
        }
        if let Keep::Bytes(_) = self.keep {
            self.kept.insert(path, bytes);
        } else {
            self.recorded.insert(path, Recorded::Content(write::sha256_hex(&bytes), bytes.len() as u64));
        }
        Ok(())
    }

    fn put_rendered(
        &mut self,
        path: String,
        inputs: String,
        render: &mut dyn FnMut() -> Vec<u8>,
    ) -> io::Result<()> {
        match self.keep {
            Keep::All => {
                write::check_artifact_path(&path)?;
                self.recorded.insert(path, Recorded::Inputs(inputs));
                Ok(())
            }
            _ if self.wants(&path) => self.put(path, render()),
            _ => Ok(()),
        }
    }
}

impl ForkSink for DigestSink {
    fn fork(&self) -> Self {
        DigestSink { keep: self.keep.clone(), ..DigestSink::default() }
    }

    fn join(&mut self, other: Self) {
        self.recorded.extend(other.recorded);
        self.kept.extend(other.kept);
    }
}

/// Every artifact of a topology (the lock file left out), as [`Keep::All`] records it.
fn recorded(compiled: &Compiled) -> BTreeMap<String, Recorded> {
    let mut sink = DigestSink::default();
    // Emitting into memory cannot fail: the only error an emitter returns is its sink's.
    let _ = crate::emit_parallel(compiled, &[], &mut sink);
    sink.recorded
}

/// The sha256 and size of the wanted artifacts of a topology.
fn rendered(compiled: &Compiled, wanted: &Arc<BTreeSet<String>>) -> BTreeMap<String, Recorded> {
    if wanted.is_empty() {
        return BTreeMap::new();
    }
    let mut sink = DigestSink { keep: Keep::Rendered(wanted.clone()), ..DigestSink::default() };
    let _ = crate::emit_parallel(compiled, &[], &mut sink);
    sink.recorded
}

/// The bytes of the wanted artifacts of a topology.
fn kept(compiled: &Compiled, wanted: &Arc<BTreeSet<String>>) -> BTreeMap<String, Vec<u8>> {
    if wanted.is_empty() {
        return BTreeMap::new();
    }
    let mut sink = DigestSink { keep: Keep::Bytes(wanted.clone()), ..DigestSink::default() };
    let _ = crate::emit_parallel(compiled, &[], &mut sink);
    sink.kept
}

/// A sink that compares each artifact with an output directory (see [`write::Baseline::state`]).
struct DirectorySink {
    baseline: Arc<write::Baseline>,
    sizes: BTreeMap<String, u64>,
    files: BTreeMap<String, FileChange>,
}

impl Sink for DirectorySink {
    fn put(&mut self, path: String, bytes: Vec<u8>) -> io::Result<()> {
        write::check_artifact_path(&path)?;
        let digest = write::sha256_hex(&bytes);
        match self.baseline.state(&path, &bytes, &digest) {
            write::FileState::Current { .. } => {}
            write::FileState::Missing => {
                self.files.insert(path.clone(), FileChange::Added);
            }
            write::FileState::Differs => {
                self.files.insert(path.clone(), FileChange::Changed);
            }
        }
        self.sizes.insert(path, bytes.len() as u64);
        Ok(())
    }

    fn put_rendered(
        &mut self,
        path: String,
        inputs: String,
        render: &mut dyn FnMut() -> Vec<u8>,
    ) -> io::Result<()> {
        // A file the directory's build rendered from the same inputs is current: nothing to compare.
        if self.baseline.unchanged(&path, &inputs).is_some()
            && let Some(write::Entry::File { len, .. }) = self.baseline.entry(&path)
        {
            self.sizes.insert(path, *len);
            return Ok(());
        }
        self.put(path, render())
    }
}

impl ForkSink for DirectorySink {
    fn fork(&self) -> Self {
        DirectorySink { baseline: self.baseline.clone(), sizes: BTreeMap::new(), files: BTreeMap::new() }
    }

    fn join(&mut self, other: Self) {
        self.sizes.extend(other.sizes);
        self.files.extend(other.files);
    }
}

/// What [`compare_with_directory`] needs of the output directory `old` (call [`write::open`]
/// first): its metadata and lock, read without the topology, so that a caller may read them while
/// the topology is analysed.
pub fn read_directory(old: &Path) -> Result<write::Baseline, String> {
    match write::Baseline::read(old, false) {
        Ok(Some(baseline)) => Ok(baseline),
        Ok(None) => Err(format!("{} does not exist", old.display())),
        Err(write::WriteError::NotOurs(_, reason)) => {
            Err(format!("{} is not a weave output directory ({reason})", old.display()))
        }
        Err(error) => Err(error.to_string()),
    }
}

/// Compares the output directory `old`, as [`read_directory`] read it, with a topology's artifacts.
pub fn compare_with_directory(
    old: &Path,
    baseline: write::Baseline,
    new: &Compiled,
    stat: bool,
) -> Result<Comparison, String> {
    let old_sizes: BTreeMap<String, u64> = baseline
        .paths()
        .map(|path| {
            let size = match baseline.entry(path) {
                Some(write::Entry::File { len, .. }) => *len,
                _ => 0,
            };
            (path.to_owned(), size)
        })
        .collect();
    let baseline = Arc::new(baseline);
    let mut sink = DirectorySink { baseline, sizes: BTreeMap::new(), files: BTreeMap::new() };
    crate::emit_parallel(new, &[], &mut sink).map_err(|error| error.to_string())?;
    let mut files = sink.files;
    for path in old_sizes.keys() {
        if !sink.sizes.contains_key(path) {
            files.insert(path.clone(), FileChange::Removed);
        }
    }
    if stat {
        return Ok(Comparison { graph: None, files, ..Comparison::default() });
    }
    let (wanted, held_back) = select_for_diff(&files, |path| {
        old_sizes.get(path).copied().unwrap_or(0) + sink.sizes.get(path).copied().unwrap_or(0)
    });
    let mut old_bytes = BTreeMap::new();
    for path in &wanted {
        if files[path] == FileChange::Added {
            continue;
        }
        match write::read_bounded(&old.join(path), MAX_FILE_BYTES) {
            Ok(bytes) => {
                old_bytes.insert(path.clone(), bytes);
            }
            // A link, FIFO or device where the build writes a file: shown as empty.
            Err(write::ReadRefused::NotRegular) => {
                old_bytes.insert(path.clone(), Vec::new());
            }
            Err(refused) => return Err(format!("{}: {refused}", old.join(path).display())),
        }
    }
    let new_bytes = kept(new, &Arc::new(wanted));
    Ok(Comparison { graph: None, files, old: old_bytes, new: new_bytes, held_back })
}

/// Compares the artifacts of two topologies. An artifact rendered from declared inputs is rendered
/// only when the two inputs digests differ or one side lacks it: equal digests mean equal bytes.
pub fn compare_topologies(old: &Compiled, new: &Compiled, stat: bool) -> Comparison {
    let graph = Some(graph_changes(old, new));
    let (mut old_recorded, mut new_recorded) = crate::work::join(|| recorded(old), || recorded(new));
    // Every path kept by its inputs digest whose bytes may differ: rendered on both sides.
    let undecided: BTreeSet<String> = old_recorded
        .iter()
        .filter(|(path, record)| {
            matches!(record, Recorded::Inputs(_)) && new_recorded.get(*path) != Some(record)
        })
        .chain(new_recorded.iter().filter(|(path, record)| {
            matches!(record, Recorded::Inputs(_)) && old_recorded.get(*path) != Some(record)
        }))
        .map(|(path, _)| path.clone())
        .collect();
    let undecided = Arc::new(undecided);
    let (old_rendered, new_rendered) =
        crate::work::join(|| rendered(old, &undecided), || rendered(new, &undecided));
    old_recorded.extend(old_rendered);
    new_recorded.extend(new_rendered);
    let mut files = BTreeMap::new();
    for (path, record) in &new_recorded {
        match old_recorded.get(path) {
            None => {
                files.insert(path.clone(), FileChange::Added);
            }
            Some(previous) if previous != record => {
                files.insert(path.clone(), FileChange::Changed);
            }
            Some(_) => {}
        }
    }
    for path in old_recorded.keys() {
        if !new_recorded.contains_key(path) {
            files.insert(path.clone(), FileChange::Removed);
        }
    }
    if stat {
        return Comparison { graph, files, ..Comparison::default() };
    }
    let size =
        |recorded: &BTreeMap<String, Recorded>, path: &str| recorded.get(path).map_or(0, Recorded::size);
    let (wanted, held_back) =
        select_for_diff(&files, |path| size(&old_recorded, path) + size(&new_recorded, path));
    let wanted = Arc::new(wanted);
    let (old_bytes, new_bytes) = crate::work::join(|| kept(old, &wanted), || kept(new, &wanted));
    Comparison { graph, files, old: old_bytes, new: new_bytes, held_back }
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
    let size =
        |tree: &BTreeMap<String, Vec<u8>>, path: &str| tree.get(path).map_or(0, |bytes| bytes.len() as u64);
    let (wanted, held_back) = select_for_diff(&files, |path| size(&old, path) + size(&new, path));
    old.retain(|path, _| wanted.contains(path));
    new.retain(|path, _| wanted.contains(path));
    Comparison { graph, files, old, new, held_back }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_files_past_the_bound_are_listed_without_their_diff() {
        let files: BTreeMap<String, FileChange> =
            ["a", "b", "c", "d"].iter().map(|path| ((*path).to_owned(), FileChange::Changed)).collect();
        let half = MAX_DIFF_BYTES / 2;
        let (kept, held_back) = select_for_diff(&files, |path| if path == "b" { half + 1 } else { half / 2 });
        assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
        // Once one file is held back, so are the rest: which diffs are shown does not depend on sizes
        // further down the list.
        assert_eq!(held_back.into_iter().collect::<Vec<_>>(), vec!["c", "d"]);
        let comparison =
            Comparison { files, held_back: ["c".to_owned(), "d".to_owned()].into(), ..Comparison::default() };
        assert!(
            render(&comparison, false, false)
                .contains("diff: 2 more changed files listed above without their diff")
        );
    }
}
