//! weave compiles one multi-cloud agent mesh topology (`multi-cloud-values.yaml`) into every artifact
//! the mesh needs. See ARCHITECTURE.md for the pipeline and its invariants.
//!
//! The functions here are the API the CLI and the tests drive: [`analyze`] runs the front half of
//! the pipeline (load → schema → model → graph → plan → check) and [`emit`] the back half (every
//! target renders the plan into a [`emit::Sink`]).

/// `print!` that ends quietly on a closed pipe (`weave graph | head`) instead of panicking.
macro_rules! stdout {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($argument)*);
    }};
}

/// `println!` that ends quietly on a closed pipe.
macro_rules! stdoutln {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($argument)*);
    }};
}

pub mod check;
pub mod cli;
pub mod diagnostics;
pub mod digest;
pub mod emit;
pub mod graph;
pub mod load;
pub mod model;
pub mod plan;
pub mod review;
pub mod schema;
pub mod source;
pub mod work;
pub mod write;

use crate::diagnostics::Code;
use std::io;

use diagnostics::Diagnostic;
use graph::MeshGraph;
use load::Limits;
use model::Topology;
use plan::Plan;
use source::Source;

/// A topology that passed every check, ready to emit.
#[derive(Debug)]
pub struct Compiled {
    pub topology: Topology,
    pub graph: MeshGraph,
    pub plan: Plan,
    /// Warnings (never errors).
    pub diagnostics: Vec<Diagnostic>,
}

/// What the front half of the pipeline found: the model and graph when the input could be read into
/// one, and every diagnostic, sorted by position.
#[derive(Debug)]
pub struct Analysis {
    pub model: Option<(Topology, MeshGraph, Plan)>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The compiled topology when there is no error.
    pub fn into_compiled(self) -> Result<Compiled, Vec<Diagnostic>> {
        if self.has_errors() {
            return Err(self.diagnostics);
        }
        match self.model {
            Some((topology, graph, plan)) => {
                Ok(Compiled { topology, graph, plan, diagnostics: self.diagnostics })
            }
            None => Err(self.diagnostics),
        }
    }
}

/// Runs load, schema, model, graph and check on one source file. Semantic checks run even when the
/// schema found problems, as long as the input still reads into a model, so that one run reports
/// everything.
pub fn analyze(source: &Source, limits: &Limits) -> Analysis {
    let document = match load::load(source, limits) {
        Ok(document) => document,
        Err(diagnostics) => return Analysis { model: None, diagnostics },
    };
    // The schema validates the tree, and the secrets scan reads its every string, on a second
    // thread while the model is read from it.
    let (found, normalized) = work::join(
        || (schema::check(&document), check::secrets::scan(&document)),
        || model::normalize(&document.root),
    );
    let (mut diagnostics, secrets) = found;
    let topology = match normalized {
        Ok(topology) => topology,
        Err(reason) => {
            if diagnostics.is_empty() {
                diagnostics.extend(schema::fractional_numbers(&document));
            }
            if diagnostics.is_empty() {
                diagnostics.push(Diagnostic::error(
                    Code::E001,
                    format!("the topology does not have the expected shape: {reason}"),
                    Some(document.root.span.into()),
                    "see `weave schema` or docs/topology.md for the shape of each section",
                ));
            }
            // Secrets are found in the text alone: reported (and hidden from every snippet) even
            // when the rest of the checks cannot run.
            diagnostics.extend(secrets);
            check::sort(&mut diagnostics);
            check::secrets::redact(&mut diagnostics, &source.text);
            return Analysis { model: None, diagnostics };
        }
    };
    // The plan reads only the trust domains of the graph: it is built beside the graph's nodes and
    // edges, and the rules that read no plan, which run once the graph is there.
    let domains = std::sync::Arc::new(graph::TrustDomains::build(&topology));
    let (plan, (graph, found)) = work::join(
        || Plan::build(&topology, &domains),
        || {
            let graph = MeshGraph::with_domains(&topology, domains.clone());
            let found = check::run_model_rules(&check::ModelContext {
                topology: &topology,
                graph: &graph,
                document: &document,
                limits,
                secrets: &secrets,
            });
            (graph, found)
        },
    );
    let model = check::ModelContext {
        topology: &topology,
        graph: &graph,
        document: &document,
        limits,
        secrets: &secrets,
    };
    diagnostics.extend(check::run(&check::CheckContext { model, plan: &plan }, found));
    check::sort(&mut diagnostics);
    check::secrets::redact(&mut diagnostics, &source.text);
    // The loaded tree is freed beside what comes next (the build's emission).
    work::retire(document);
    Analysis { model: Some((topology, graph, plan)), diagnostics }
}

/// Runs the front half of the pipeline on a topology's text with the default limits. Returns every
/// diagnostic when any is an error.
pub fn compile(file_name: &str, text: &str) -> Result<Compiled, Vec<Diagnostic>> {
    analyze(&Source::new(file_name, text), &Limits::default()).into_compiled()
}

/// Emits the artifacts of the selected targets (all when `only` is empty), then `graph.mmd`.
pub fn emit(compiled: &Compiled, only: &[String], sink: &mut dyn emit::Sink) -> io::Result<()> {
    let context = emit::EmitContext::new(&compiled.topology, &compiled.graph, &compiled.plan);
    for target in selected_targets(only) {
        (target.emit)(&context, sink)?;
    }
    put_graph(compiled, sink)
}

/// `graph.mmd`: the mesh as a Mermaid diagram, written with every build.
fn put_graph(compiled: &Compiled, sink: &mut dyn emit::Sink) -> io::Result<()> {
    let inputs = graph::MermaidInputs::of(&compiled.topology, &compiled.graph);
    emit::inputs::put(sink, "graph.mmd".to_owned(), &inputs, graph::render_mermaid)
}

/// One task of [`emit_parallel`].
#[derive(Clone, Copy)]
enum Task {
    /// A target that does not split, whole.
    Whole(&'static emit::Target),
    /// One part of a target that splits.
    Part(&'static emit::Split, usize),
    /// `graph.mmd`.
    Graph,
    /// The OPA and Tailscale targets, both rendered from the mesh's authorization, made once.
    Authz,
}

/// Like [`emit`], with the work spread over threads: every target, and every part of the targets
/// that split (see [`emit::Split`]), is a task; each thread takes the next task and writes into a
/// fork of `sink` of its own, and the forks are joined back in thread order. The artifacts are the
/// same as [`emit`]'s; only the order in which the sinks receive them differs, which no sink
/// depends on.
pub fn emit_parallel<S: emit::ForkSink>(
    compiled: &Compiled,
    only: &[String],
    sink: &mut S,
) -> io::Result<()> {
    let context = emit::EmitContext::new(&compiled.topology, &compiled.graph, &compiled.plan);
    // Whole targets first, the largest single tasks, and `graph.mmd`; then the parts, longest first
    // within a target.
    let selected = |name: &str| selected_targets(only).any(|target| target.name == name);
    let authz_together = selected(emit::opa::TARGET.name) && selected(emit::tailscale::TARGET.name);
    let mut tasks: Vec<Task> = Vec::new();
    if authz_together {
        tasks.push(Task::Authz);
    }
    tasks.extend(
        selected_targets(only)
            .filter(|target| target.split.is_none())
            .filter(|target| {
                !(authz_together
                    && [emit::opa::TARGET.name, emit::tailscale::TARGET.name].contains(&target.name))
            })
            .map(Task::Whole),
    );
    tasks.push(Task::Graph);
    for target in selected_targets(only) {
        if let Some(split) = &target.split {
            tasks.extend((0..(split.parts)(&context)).map(|part| Task::Part(split, part)));
        }
    }
    let threads =
        std::thread::available_parallelism().map_or(1, usize::from).clamp(1, 8).min(tasks.len().max(1));
    let forks: Vec<S> = (0..threads).map(|_| sink.fork()).collect();
    let forks = work::run(forks, tasks.len(), |fork, index| match tasks[index] {
        Task::Whole(target) => (target.emit)(&context, fork),
        Task::Part(split, part) => (split.emit_part)(&context, part, fork),
        Task::Graph => put_graph(compiled, fork),
        Task::Authz => {
            let authz = emit::opa::MeshAuthz::shared(&context);
            emit::opa::emit_with(&context, fork, &authz)?;
            emit::tailscale::emit_with(&context, fork, &authz)
        }
    })?;
    for fork in forks {
        sink.join(fork);
    }
    Ok(())
}

/// The targets `only` selects, by name in the order of [`emit::TARGETS`], as a lock records them:
/// empty when they are all the targets.
pub fn target_selection(only: &[String]) -> Vec<String> {
    let selected: Vec<String> = selected_targets(only).map(|target| target.name.to_owned()).collect();
    if selected.len() == emit::TARGETS.len() { Vec::new() } else { selected }
}

fn selected_targets(only: &[String]) -> impl Iterator<Item = &'static emit::Target> + '_ {
    emit::TARGETS.iter().filter(move |target| only.is_empty() || only.iter().any(|name| name == target.name))
}
