//! Benchmarks of each phase of the pipeline (load, schema, model, graph, check, every emitter, write)
//! on the seed example and on generated topologies of 1,000 and 10,000 agents.
//!
//! Run with `cargo bench --bench phases` (add a filter such as `-- emit` to run some). The generated
//! topologies are written once into `target/weave-bench/` by `../shared/bench/gen-topology.py` (or
//! the script that `WEAVE_BENCH_GENERATOR` names); when no generator is found only the seed example
//! is measured. Whole-process figures (wall time and peak memory of `weave validate` and `weave
//! build`) and the comparison with other renderers come from `bench/run.sh`.
//!
//! Each benchmark prepares the output of the phases before it outside the timed loop, so a figure
//! is the cost of that phase alone.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use divan::{Bencher, black_box};
use serde_json::Value;
use weave::Compiled;
use weave::check::{self, CheckContext};
use weave::emit::{self, EmitContext, MemorySink, Sink, Target};
use weave::graph::MeshGraph;
use weave::load::{self, Document, Limits};
use weave::model;
use weave::schema;
use weave::source::Source;
use weave::write;

fn main() {
    divan::main();
}

/// The seed example of the project, read at compile time so the benchmark needs no file at run time.
const SEED_TEXT: &str = include_str!("../fixtures/valid/seed-multi-cloud-values.yaml");

/// Each benchmark stops sampling after this many seconds; the 10,000-agent phases take tens to
/// hundreds of milliseconds each, and the whole run should stay within a few minutes.
const MAX_SECONDS: u64 = 2;

/// A topology the benchmarks run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Seed,
    Agents1000,
    Agents10000,
}

impl Input {
    const ALL: [Input; 3] = [Input::Seed, Input::Agents1000, Input::Agents10000];

    /// The number of generated agents, or `None` for the seed example.
    fn generated_agents(self) -> Option<usize> {
        match self {
            Input::Seed => None,
            Input::Agents1000 => Some(1_000),
            Input::Agents10000 => Some(10_000),
        }
    }

    fn position(self) -> usize {
        match self {
            Input::Seed => 0,
            Input::Agents1000 => 1,
            Input::Agents10000 => 2,
        }
    }
}

impl fmt::Display for Input {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Seed => formatter.write_str("seed"),
            Input::Agents1000 => formatter.write_str("agents-1000"),
            Input::Agents10000 => formatter.write_str("agents-10000"),
        }
    }
}

/// The result of every phase on one input, so that each benchmark can start from the output of
/// the phase before it.
struct Prepared {
    source: Source,
    document: Document,
    value: Value,
    compiled: Compiled,
    /// Every artifact of every target, as `weave build` would write them (without the lock file).
    artifacts: BTreeMap<String, Vec<u8>>,
}

impl Prepared {
    fn emit_context(&self) -> EmitContext<'_> {
        EmitContext::new(&self.compiled.topology, &self.compiled.graph)
    }
}

/// Prepared inputs, built on first use; `None` when the input could not be generated or compiled.
static PREPARED: [OnceLock<Option<Prepared>>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];

fn prepared(input: Input) -> Option<&'static Prepared> {
    PREPARED[input.position()].get_or_init(|| prepare(input)).as_ref()
}

/// The inputs that could be prepared; the generated ones are skipped with a note when the
/// generator is missing or fails.
fn inputs() -> Vec<Input> {
    Input::ALL.into_iter().filter(|input| prepared(*input).is_some()).collect()
}

/// One emitter on one input.
#[derive(Clone, Copy)]
struct EmitCase {
    input: Input,
    target: &'static Target,
}

impl fmt::Display for EmitCase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.input, self.target.name)
    }
}

fn emit_cases() -> Vec<EmitCase> {
    inputs()
        .into_iter()
        .flat_map(|input| emit::TARGETS.iter().map(move |target| EmitCase { input, target }))
        .collect()
}

fn prepare(input: Input) -> Option<Prepared> {
    let source = match input.generated_agents() {
        None => Source::new("seed-multi-cloud-values.yaml", SEED_TEXT),
        Some(agents) => match generated_topology(agents) {
            Ok(path) => match std::fs::read_to_string(&path) {
                Ok(text) => Source::new(path.display().to_string(), text),
                Err(error) => {
                    eprintln!("skipping {input}: cannot read {}: {error}", path.display());
                    return None;
                }
            },
            Err(reason) => {
                eprintln!("skipping {input}: {reason}");
                return None;
            }
        },
    };
    let limits = Limits::default();
    let document = match load::load(&source, &limits) {
        Ok(document) => document,
        Err(diagnostics) => {
            eprintln!("skipping {input}: it does not load ({} diagnostics)", diagnostics.len());
            return None;
        }
    };
    let value = document.to_json();
    let compiled = match weave::analyze(&source, &limits).into_compiled() {
        Ok(compiled) => compiled,
        Err(diagnostics) => {
            eprintln!("skipping {input}: it is not valid ({} diagnostics)", diagnostics.len());
            return None;
        }
    };
    let mut sink = MemorySink::default();
    if let Err(error) = weave::emit(&compiled, &[], &mut sink) {
        eprintln!("skipping {input}: emitting failed: {error}");
        return None;
    }
    Some(Prepared { source, document, value, compiled, artifacts: sink.artifacts })
}

/// Where the generated topologies are kept between runs.
fn cache_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("weave-bench")
}

/// The topology generator: `WEAVE_BENCH_GENERATOR`, else the shared one beside the repository.
fn generator() -> PathBuf {
    match std::env::var_os("WEAVE_BENCH_GENERATOR") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen-topology.py"),
    }
}

/// Generates (once) a topology of `agents` agents over `max(1, agents / 100)` sites, the shape
/// `bench/run.sh` uses, and returns its path.
fn generated_topology(agents: usize) -> Result<PathBuf, String> {
    let sites = (agents / 100).max(1);
    let directory = cache_directory();
    let path = directory.join(format!("topology-{agents}-agents-{sites}-sites.yaml"));
    if path.is_file() {
        return Ok(path);
    }
    let generator = generator();
    if !generator.is_file() {
        return Err(format!("no topology generator at {}", generator.display()));
    }
    std::fs::create_dir_all(&directory)
        .map_err(|error| format!("cannot create {}: {error}", directory.display()))?;
    let output = Command::new("python3")
        .arg(&generator)
        .args(["--agents", &agents.to_string(), "--sites", &sites.to_string()])
        .output()
        .map_err(|error| format!("cannot run python3 {}: {error}", generator.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            generator.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    // Written beside its final name and renamed, so that an interrupted run leaves no half file.
    let partial = path.with_extension("yaml.partial");
    std::fs::write(&partial, &output.stdout)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    Ok(path)
}

/// The prepared input, or nothing to measure. `inputs()` lists only inputs that prepare, so the
/// `None` branch is not reached in practice.
fn with_prepared(bencher: Bencher, input: Input, body: impl Fn(Bencher, &'static Prepared)) {
    if let Some(prepared) = prepared(input) {
        body(bencher, prepared);
    }
}

/// Reading the YAML into the located document tree (parse, duplicate keys, limits).
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_1_load(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        let limits = Limits::default();
        bencher.bench(|| load::load(black_box(&prepared.source), &limits).map(|document| document.to_json()));
    });
}

/// Validating the document against the JSON Schema and turning failures into diagnostics.
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_2_schema(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        bencher.bench(|| schema::check(black_box(&prepared.document), black_box(&prepared.value)));
    });
}

/// Normalizing the JSON value into the model (defaults, SPIFFE IDs).
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_3_model(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        bencher.bench(|| model::normalize(black_box(&prepared.value)));
    });
}

/// Building the mesh graph (trust domains, federation, calls).
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_4_graph(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        bencher.bench(|| MeshGraph::build(black_box(&prepared.compiled.topology)));
    });
}

/// Every semantic check.
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_5_check(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        let limits = Limits::default();
        let context = CheckContext {
            topology: &prepared.compiled.topology,
            graph: &prepared.compiled.graph,
            document: &prepared.document,
            limits: &limits,
        };
        bencher.bench(|| check::run(black_box(&context)));
    });
}

/// The whole front half (load → schema → model → graph → check), as `weave validate` runs it.
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_6_analyze(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        let limits = Limits::default();
        bencher.bench(|| weave::analyze(black_box(&prepared.source), &limits));
    });
}

/// One target's emitter into memory.
#[divan::bench(args = emit_cases(), max_time = MAX_SECONDS)]
fn phase_7_emit(bencher: Bencher, case: EmitCase) {
    with_prepared(bencher, case.input, |bencher, prepared| {
        let context = prepared.emit_context();
        bencher.bench(|| {
            let mut sink = MemorySink::default();
            (case.target.emit)(black_box(&context), &mut sink).map(|()| sink)
        });
    });
}

/// Every target plus `graph.mmd` into memory, as `weave build` emits them.
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_8_emit_all(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        bencher.bench(|| {
            let mut sink = MemorySink::default();
            weave::emit(black_box(&prepared.compiled), &[], &mut sink).map(|()| sink)
        });
    });
}

/// Writing every artifact into a new output directory: the staging directory, one file per
/// artifact, the lock file with the hash of each, and the rename into place.
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_9_write(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        let input_bytes = prepared.source.text.as_bytes();
        bencher.with_inputs(|| (tempfile::tempdir(), prepared.artifacts.clone())).bench_values(
            |(directory, artifacts)| {
                let directory = directory?;
                let out = directory.path().join("out");
                write::build_atomically(&out, false, &prepared.source.name, input_bytes, |sink| {
                    put_all(sink, artifacts)
                })
                .map_err(|error| io::Error::other(error.to_string()))?;
                // Returned so that removing the directory happens after the timed loop.
                Ok::<_, io::Error>(directory)
            },
        );
    });
}

fn put_all(sink: &mut dyn Sink, artifacts: BTreeMap<String, Vec<u8>>) -> io::Result<()> {
    for (path, bytes) in artifacts {
        sink.put(path, bytes)?;
    }
    Ok(())
}
