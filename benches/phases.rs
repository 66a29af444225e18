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
//!
//! `cargo bench --bench phases -- --table [--json] FILE...` instead runs every phase a few times on
//! each topology file, timed with a plain clock, and prints one table of the fastest time of each
//! phase, one column per file (`bench/run.sh` prints it with `--json`). Outputs are written under
//! `WEAVE_BENCH_OUT` (default: the temporary directory).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use divan::{Bencher, black_box};
use weave::Compiled;
use weave::check::{self, CheckContext, ModelContext};
use weave::emit::{self, EmitContext, MemorySink, Sink, Target};
use weave::graph::MeshGraph;
use weave::load::{self, Document, Limits};
use weave::model;
use weave::schema;
use weave::source::Source;
use weave::write;

fn main() {
    // Cargo passes `--bench` to every bench target; the table mode has no use for it.
    let arguments: Vec<String> = std::env::args().skip(1).filter(|argument| argument != "--bench").collect();
    if arguments.first().map(String::as_str) == Some("--table") {
        std::process::exit(phase_table::run(&arguments[1..]));
    }
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
    compiled: Compiled,
    /// Every artifact of every target, as `weave build` would write them (without the lock file).
    artifacts: BTreeMap<String, Vec<u8>>,
}

impl Prepared {
    fn emit_context(&self) -> EmitContext<'_> {
        EmitContext::of(&self.compiled)
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
    Some(Prepared { source, document, compiled, artifacts: sink.artifacts })
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
        bencher.bench(|| load::load(black_box(&prepared.source), &limits));
    });
}

/// Validating the document against the JSON Schema and turning failures into diagnostics.
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_2_schema(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        bencher.bench(|| schema::check(black_box(&prepared.document)));
    });
}

/// Normalizing the loaded tree into the model (defaults, SPIFFE IDs).
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_3_model(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        bencher.bench(|| model::normalize(black_box(&prepared.document.root)));
    });
}

/// Building the mesh graph (trust domains, federation, calls).
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_4_graph(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        bencher.bench(|| MeshGraph::build(black_box(&prepared.compiled.topology)));
    });
}

/// Lowering the model and graph to the plan.
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_4_plan(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        bencher.bench(|| {
            weave::plan::Plan::build(
                black_box(&prepared.compiled.topology),
                prepared.compiled.graph.domains(),
            )
        });
    });
}

/// Every semantic check.
#[divan::bench(args = inputs(), max_time = MAX_SECONDS)]
fn phase_5_check(bencher: Bencher, input: Input) {
    with_prepared(bencher, input, |bencher, prepared| {
        let limits = Limits::default();
        bencher.bench(|| {
            let secrets = check::secrets::scan(black_box(&prepared.document));
            let model = ModelContext {
                topology: &prepared.compiled.topology,
                graph: &prepared.compiled.graph,
                document: &prepared.document,
                limits: &limits,
                secrets: &secrets,
            };
            let found = check::run_model_rules(&model);
            check::run(&CheckContext { model, plan: &prepared.compiled.plan }, found)
        });
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
                write::build_atomically(
                    &out,
                    false,
                    write::Origin::all(&prepared.source.name, input_bytes),
                    |sink| put_all(sink, artifacts),
                )
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

/// The `--table` mode: each phase timed directly with a clock, a few runs per file, the fastest
/// kept (on a shared machine the fastest run is the one least disturbed by other work).
mod phase_table {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use weave::check::{self, CheckContext, ModelContext};
    use weave::emit::{self, EmitContext, MemorySink};
    use weave::graph::{self, MeshGraph};
    use weave::load::{self, Limits};
    use weave::source::Source;
    use weave::{model, schema, write};

    /// Runs per file stop after this much time, or after `MAX_RUNS`; there is always one run.
    const BUDGET: Duration = Duration::from_secs(10);
    const MAX_RUNS: usize = 5;

    /// The row of the whole back half as `weave build` runs it, after the phases one by one.
    const BUILD_ROW: &str = "emit + write as `weave build` does (targets in parallel, straight to files)";

    /// One run: the duration of each row, in the order of the table.
    type Run = Vec<(String, Duration)>;

    /// `--table [--json] FILE...`: prints a markdown table, or with `--json` one JSON object
    /// `{"columns": [{"file", "runs", "rows": [{"phase", "ms"}]}], "schema_compile_ms"}` for
    /// `bench/report.py`.
    pub fn run(arguments: &[String]) -> i32 {
        let json = arguments.iter().any(|argument| argument == "--json");
        let files: Vec<&String> = arguments.iter().filter(|argument| *argument != "--json").collect();
        if files.is_empty() {
            eprintln!("usage: cargo bench --bench phases -- --table [--json] FILE...");
            return 2;
        }
        let schema_compile = schema_compile_time();
        let mut columns: Vec<(String, usize, Run)> = Vec::new();
        for file in files {
            let text = match std::fs::read_to_string(file) {
                Ok(text) => text,
                Err(error) => {
                    eprintln!("error: cannot read {file}: {error}");
                    return 2;
                }
            };
            let name = Path::new(file)
                .file_name()
                .map_or_else(|| file.clone(), |name| name.to_string_lossy().into_owned());
            eprintln!("phases: {name}");
            let source = Source::new(name.clone(), text);
            let started = Instant::now();
            let mut fastest: Option<Run> = None;
            let mut runs = 0;
            while runs == 0 || (runs < MAX_RUNS && started.elapsed() < BUDGET) {
                let run = match one_run(&source) {
                    Ok(run) => run,
                    Err(reason) => {
                        eprintln!("error: {file}: {reason}");
                        return 1;
                    }
                };
                fastest = Some(match fastest {
                    None => run,
                    Some(previous) => previous
                        .into_iter()
                        .zip(run)
                        .map(|((name, left), (_, right))| (name, left.min(right)))
                        .collect(),
                });
                runs += 1;
            }
            columns.push((name, runs, fastest.unwrap_or_default()));
        }
        if json {
            print_json(&columns, schema_compile);
        } else {
            print_table(&columns);
            println!();
            println!(
                "The JSON Schema is compiled once per process, on its first use: {} ms, in no row above.",
                milliseconds(schema_compile)
            );
        }
        0
    }

    /// How long the first schema check of a process takes beyond a later one: compiling the
    /// schema, which every `weave` process pays once and the fastest runs of the table do not show.
    fn schema_compile_time() -> Duration {
        let source = Source::new("seed-multi-cloud-values.yaml", super::SEED_TEXT);
        let Ok(document) = load::load(&source, &Limits::default()) else { return Duration::ZERO };
        let started = Instant::now();
        schema::check(&document);
        let first = started.elapsed();
        let started = Instant::now();
        schema::check(&document);
        first.saturating_sub(started.elapsed())
    }

    fn timed<T>(run: &mut Run, name: &str, body: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let value = body();
        run.push((name.to_owned(), started.elapsed()));
        value
    }

    /// Where the output directories go: `WEAVE_BENCH_OUT` (bench/run.sh points it at tmpfs), else
    /// the temporary directory.
    fn output_parent() -> PathBuf {
        std::env::var_os("WEAVE_BENCH_OUT").map_or_else(std::env::temp_dir, PathBuf::from)
    }

    fn one_run(source: &Source) -> Result<Run, String> {
        let mut run = Run::new();
        let limits = Limits::default();
        let document = timed(&mut run, "load (YAML → located tree)", || load::load(source, &limits))
            .map_err(|diagnostics| format!("does not load ({} diagnostics)", diagnostics.len()))?;
        let schema_diagnostics = timed(&mut run, "schema", || schema::check(&document));
        if schema_diagnostics.iter().any(|diagnostic| diagnostic.is_error()) {
            return Err("does not match the schema".to_owned());
        }
        let topology = timed(&mut run, "model", || model::normalize(&document.root))?;
        let mesh_graph = timed(&mut run, "graph", || MeshGraph::build(&topology));
        let plan = timed(&mut run, "plan", || weave::plan::Plan::build(&topology, mesh_graph.domains()));
        let diagnostics = timed(&mut run, "check", || {
            let secrets = check::secrets::scan(&document);
            let model = ModelContext {
                topology: &topology,
                graph: &mesh_graph,
                document: &document,
                limits: &limits,
                secrets: &secrets,
            };
            let found = check::run_model_rules(&model);
            check::run(&CheckContext { model, plan: &plan }, found)
        });
        if diagnostics.iter().any(|diagnostic| diagnostic.is_error()) {
            return Err("is not valid".to_owned());
        }
        let emit_context = EmitContext::new(&topology, &mesh_graph, &plan);
        let mut artifacts: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for target in emit::TARGETS {
            let mut sink = MemorySink::default();
            timed(&mut run, &format!("emit {}", target.name), || (target.emit)(&emit_context, &mut sink))
                .map_err(|error| error.to_string())?;
            artifacts.append(&mut sink.artifacts);
        }
        let mermaid = timed(&mut run, "emit graph.mmd", || graph::to_mermaid(&topology, &mesh_graph));
        artifacts.insert("graph.mmd".to_owned(), mermaid.into_bytes());
        let parent = output_parent();
        let directory =
            tempfile::tempdir_in(&parent).map_err(|error| format!("{}: {error}", parent.display()))?;
        timed(&mut run, "write (files + lock)", || {
            write::build_atomically(
                &directory.path().join("out"),
                false,
                write::Origin::all(&source.name, source.text.as_bytes()),
                |sink| super::put_all(sink, artifacts),
            )
        })
        .map_err(|error| error.to_string())?;
        // Removing the output is not part of a build; it happens here, outside every timing.
        drop(directory);

        // The same model and graph again, built outside the timing, in the form `emit_parallel` takes.
        let compiled = weave::analyze(source, &limits)
            .into_compiled()
            .map_err(|diagnostics| format!("is not valid ({} diagnostics)", diagnostics.len()))?;
        let directory =
            tempfile::tempdir_in(&parent).map_err(|error| format!("{}: {error}", parent.display()))?;
        timed(&mut run, BUILD_ROW, || {
            write::build_atomically(
                &directory.path().join("out"),
                false,
                write::Origin::all(&source.name, source.text.as_bytes()),
                |sink| weave::emit_parallel(&compiled, &[], sink),
            )
        })
        .map_err(|error| error.to_string())?;
        drop(directory);
        Ok(run)
    }

    fn milliseconds(duration: Duration) -> String {
        let value = duration.as_secs_f64() * 1000.0;
        if value < 10.0 {
            format!("{value:.2}")
        } else if value < 100.0 {
            format!("{value:.1}")
        } else {
            format!("{value:.0}")
        }
    }

    /// The sum of the phases run one after the other (every row but the last).
    fn sum_of_phases(run: &Run) -> Duration {
        run.iter().filter(|(name, _)| name != BUILD_ROW).map(|(_, duration)| *duration).sum()
    }

    fn print_table(columns: &[(String, usize, Run)]) {
        let header: Vec<String> =
            columns.iter().map(|(name, runs, _)| format!("{name} ({runs} runs)")).collect();
        println!("| phase (ms, fastest run) | {} |", header.join(" | "));
        println!("|---|{}", "---:|".repeat(columns.len()));
        let Some((_, _, first)) = columns.first() else { return };
        for (position, (phase, _)) in first.iter().enumerate() {
            if phase == BUILD_ROW {
                let totals: Vec<String> =
                    columns.iter().map(|(_, _, run)| milliseconds(sum_of_phases(run))).collect();
                println!("| sum of the phases above | {} |", totals.join(" | "));
            }
            let cells: Vec<String> = columns
                .iter()
                .map(|(_, _, run)| {
                    run.get(position).map_or_else(String::new, |(_, duration)| milliseconds(*duration))
                })
                .collect();
            println!("| {phase} | {} |", cells.join(" | "));
        }
    }

    fn print_json(columns: &[(String, usize, Run)], schema_compile: Duration) {
        let columns: Vec<serde_json::Value> = columns
            .iter()
            .map(|(file, runs, run)| {
                let rows: Vec<serde_json::Value> = run
                    .iter()
                    .map(|(phase, duration)| {
                        serde_json::json!({"phase": phase, "ms": duration.as_secs_f64() * 1000.0})
                    })
                    .collect();
                serde_json::json!({"file": file, "runs": runs, "rows": rows})
            })
            .collect();
        let schema_compile_ms = schema_compile.as_secs_f64() * 1000.0;
        println!("{}", serde_json::json!({ "columns": columns, "schema_compile_ms": schema_compile_ms }));
    }
}
