//! The command line: clap types and one `run` per subcommand. Only this module, `load` (through the
//! files it is handed) and `write` touch the filesystem.

mod diff;
mod explain;

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diagnostics::{self, Code, Diagnostic};
use crate::load::Limits;
use crate::source::Source;
use crate::{Analysis, Compiled, emit, graph, schema, write};

/// Exit code: the topology is valid (or the output fresh, or nothing changed).
pub const EXIT_OK: u8 = 0;
/// Exit code: the topology is invalid (or the output stale, or something changed).
pub const EXIT_INVALID: u8 = 1;
/// Exit code: a usage error or an I/O error.
pub const EXIT_USAGE: u8 = 2;

/// The default topology file.
pub const DEFAULT_FILE: &str = "multi-cloud-values.yaml";
/// The default topology file's other spelling, read when only it exists.
pub const DEFAULT_FILE_YML: &str = "multi-cloud-values.yml";

/// The exit codes, shown by `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  success: the topology is valid, OUT is fresh, nothing changed, the call is allowed
  1  the topology is invalid (warnings count with --deny-warnings), OUT is stale, something
     changed (diff), or the call is blocked (explain)
  2  usage or I/O error: a bad argument, an unreadable file, an output that cannot be written";

/// The help of a FILE argument.
const FILE_HELP: &str =
    "The topology file [default: multi-cloud-values.yaml, or multi-cloud-values.yml when only it exists]";

#[derive(Debug, Parser)]
#[command(
    name = "weave",
    version,
    about = "Compile one multi-cloud agent mesh topology into every artifact the mesh needs",
    long_about = "weave reads multi-cloud-values.yaml (sites, trust domains, federation, networking, agents and who may call whom, observability) and writes Terraform, SPIRE, Kubernetes, Tailscale, OPA, Prometheus, OpenTelemetry and agent image artifacts that agree with each other by construction.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a topology and report every problem at once
    #[command(after_help = EXIT_CODES)]
    Validate(ValidateArgs),
    /// Write every artifact of a topology into an output directory
    #[command(after_help = EXIT_CODES)]
    Build(BuildArgs),
    /// Compare the artifacts of two topologies (or of a topology and an output directory)
    #[command(after_help = EXIT_CODES)]
    Diff(DiffArgs),
    /// Print the dependency graph of a topology
    #[command(after_help = EXIT_CODES)]
    Graph(GraphArgs),
    /// Explain, layer by layer, whether one agent may call another with an action
    #[command(after_help = EXIT_CODES)]
    Explain(ExplainArgs),
    /// Print the JSON Schema of the topology file
    Schema,
    /// Write a commented starter topology
    Init(InitArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagnosticFormat {
    Human,
    Json,
    Sarif,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[arg(default_value = DEFAULT_FILE, hide_default_value = true, help = FILE_HELP)]
    pub file: PathBuf,
    /// How to print diagnostics
    #[arg(long, value_enum, default_value_t = DiagnosticFormat::Human)]
    pub format: DiagnosticFormat,
    /// Fail on warnings too
    #[arg(long)]
    pub deny_warnings: bool,
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    #[arg(default_value = DEFAULT_FILE, hide_default_value = true, help = FILE_HELP)]
    pub file: PathBuf,
    /// The output directory (created whole when new; else only new and changed files are written, and
    /// nothing when it is up to date)
    #[arg(short, long, default_value = "out")]
    pub out: PathBuf,
    /// Build only these targets (comma-separated)
    #[arg(long, value_delimiter = ',', value_parser = target_names())]
    pub only: Vec<String>,
    /// Write nothing; exit 1 if OUT differs from what the topology produces
    #[arg(long)]
    pub check: bool,
    /// Replace OUT even when it is not a weave output
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The old topology file, or an output directory
    pub old: PathBuf,
    /// The new topology file
    pub new: PathBuf,
    /// Print counts only
    #[arg(long)]
    pub stat: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// A Mermaid flowchart (GitHub and GitLab render it in Markdown)
    Mermaid,
    /// Graphviz dot (`weave graph --format dot | dot -Tsvg`)
    Dot,
    /// JSON nodes and edges
    Json,
}

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    #[arg(default_value = DEFAULT_FILE, hide_default_value = true, help = FILE_HELP)]
    pub file: PathBuf,
    /// How to print the graph
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    /// One line per layer, for people
    Human,
    /// `{"allowed", "blocked_by", "layers"}`, for scripts
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    #[arg(default_value = DEFAULT_FILE, hide_default_value = true, help = FILE_HELP)]
    pub file: PathBuf,
    /// The calling agent
    #[arg(long)]
    pub from: String,
    /// The called agent
    #[arg(long)]
    pub to: String,
    /// The action requested
    #[arg(long)]
    pub action: String,
    /// How to print the verdict
    #[arg(long, value_enum, default_value_t = ExplainFormat::Human)]
    pub format: ExplainFormat,
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where to write the starter topology
    #[arg(default_value = DEFAULT_FILE)]
    pub file: PathBuf,
    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

fn target_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(emit::TARGETS.iter().map(|target| target.name))
}

/// The starter topology `weave init` writes.
pub const INIT_TEMPLATE: &str = include_str!("../../targets/init.yaml");

/// Parses the arguments and runs the subcommand.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let mut command = cli.command;
    if let Command::Validate(ValidateArgs { file, .. })
    | Command::Build(BuildArgs { file, .. })
    | Command::Graph(GraphArgs { file, .. })
    | Command::Explain(ExplainArgs { file, .. }) = &mut command
    {
        *file = default_file(std::mem::take(file), |path| path.exists());
    }
    let code = match command {
        Command::Validate(args) => validate(&args),
        Command::Build(args) => build(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Graph(args) => graph_command(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Schema => {
            stdout!("{}", schema::SCHEMA_TEXT);
            EXIT_OK
        }
        Command::Init(args) => init(&args),
        Command::Completions(args) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut command, "weave", &mut script);
            stdout!("{}", String::from_utf8_lossy(&script));
            EXIT_OK
        }
    };
    ExitCode::from(code)
}

/// The topology file to read: the one given, except that the default `multi-cloud-values.yaml`
/// becomes `multi-cloud-values.yml` when only that exists.
fn default_file(file: PathBuf, exists: impl Fn(&Path) -> bool) -> PathBuf {
    if file == Path::new(DEFAULT_FILE) && !exists(&file) && exists(Path::new(DEFAULT_FILE_YML)) {
        PathBuf::from(DEFAULT_FILE_YML)
    } else {
        file
    }
}

/// Whether to colour output on stderr: only on a terminal, and never with `NO_COLOR` set.
pub fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// Whether to colour output on stdout.
pub fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// Reads a topology file; an unreadable file is a usage error (exit 2).
pub fn read_source(path: &Path) -> Result<Source, u8> {
    load_source(path).map_err(Unread::report)
}

/// A topology file that could not be read: what to print, and the exit code to stop with.
pub(super) struct Unread {
    message: String,
    code: u8,
}

impl Unread {
    /// Prints the message and gives the exit code.
    pub(super) fn report(self) -> u8 {
        eprint!("{}", self.message);
        self.code
    }
}

/// [`read_source`] without printing: a file that cannot be read is an [`Unread`].
pub(super) fn load_source(path: &Path) -> Result<Source, Unread> {
    let limits = Limits::default();
    let refuse = |diagnostic: Diagnostic, text: String| {
        let source = Source::new(path.display().to_string(), text);
        Err(Unread {
            message: diagnostics::render_human(&[diagnostic], &source, stderr_color()),
            code: EXIT_INVALID,
        })
    };
    match crate::source::read_bounded(path, limits.max_bytes) {
        Ok(text) => Ok(Source::new(path.display().to_string(), text)),
        Err(crate::source::ReadError::TooLarge { limit, size }) => {
            // Refused without reading more than the limit: a pipe or a device may never end.
            let size = match size {
                Some(size) => format!("the file is {size} bytes"),
                None => format!("the input goes on past {limit} bytes"),
            };
            let diagnostic = Diagnostic::error(
                Code::E000,
                format!("{size}, over the limit of {limit} bytes"),
                None,
                "split the mesh into smaller topologies, or check that this is the right file",
            );
            refuse(diagnostic, String::new())
        }
        Err(crate::source::ReadError::NotUtf8 { valid, offset }) => {
            let source = Source::new(path.display().to_string(), valid);
            let span = source.span_of_bytes(offset, offset);
            let diagnostic = Diagnostic::error(
                Code::E000,
                "the file is not UTF-8 text",
                Some(span),
                "save the topology as UTF-8",
            );
            refuse(diagnostic, source.text)
        }
        Err(crate::source::ReadError::Io(error)) => {
            let mut message = format!("error: cannot read {}: {error}\n", path.display());
            if path == Path::new(DEFAULT_FILE) {
                message.push_str(&format!(
                    "help: pass the topology file, or run `weave init` to write a starter {DEFAULT_FILE}\n"
                ));
            }
            Err(Unread { message, code: EXIT_USAGE })
        }
    }
}

/// Reads and analyzes a topology, printing its diagnostics (human form) to stderr. Returns the
/// compiled topology, or the exit code to stop with.
pub fn compile_file(path: &Path) -> Result<(Compiled, Source), u8> {
    let source = read_source(path)?;
    compile_source(&source).map(|compiled| (compiled, source))
}

/// Analyses a topology's text, printing its diagnostics; an invalid one is `EXIT_INVALID`.
pub(super) fn compile_source(source: &Source) -> Result<Compiled, u8> {
    report_analysis(crate::analyze(source, &Limits::default()), source)
}

/// Prints an analysis's diagnostics (human form) to stderr; an invalid topology is `EXIT_INVALID`.
pub(super) fn report_analysis(analysis: Analysis, source: &Source) -> Result<Compiled, u8> {
    if !analysis.diagnostics.is_empty() {
        eprint!("{}", diagnostics::render_human(&analysis.diagnostics, source, stderr_color()));
    }
    analysis.into_compiled().map_err(|_| EXIT_INVALID)
}

fn validate(args: &ValidateArgs) -> u8 {
    let source = match read_source(&args.file) {
        Ok(read) => read,
        Err(code) => {
            if args.format != DiagnosticFormat::Human && code == EXIT_USAGE {
                let json = diagnostics::render_json(&[], &args.file.display().to_string(), false);
                stdoutln!("{json}");
            }
            return code;
        }
    };
    let analysis: Analysis = crate::analyze(&source, &Limits::default());
    let failed = analysis.has_errors() || (args.deny_warnings && !analysis.diagnostics.is_empty());
    // The process ends right after this; freeing a large model piece by piece only costs time.
    let analysis = std::mem::ManuallyDrop::new(analysis);
    match args.format {
        DiagnosticFormat::Human => {
            if analysis.diagnostics.is_empty() {
                eprintln!("{}: valid", source.name);
            } else {
                eprint!("{}", diagnostics::render_human(&analysis.diagnostics, &source, stderr_color()));
            }
        }
        DiagnosticFormat::Json => {
            let json = diagnostics::render_json(&analysis.diagnostics, &source.name, !failed);
            stdoutln!("{}", serde_json::to_string_pretty(&json).unwrap_or_default());
        }
        DiagnosticFormat::Sarif => {
            let sarif = diagnostics::render_sarif(&analysis.diagnostics, &source.name);
            stdoutln!("{}", serde_json::to_string_pretty(&sarif).unwrap_or_default());
        }
    }
    if failed { EXIT_INVALID } else { EXIT_OK }
}

fn build(args: &BuildArgs) -> u8 {
    if args.check {
        return build_check(args);
    }
    let source = match read_source(&args.file) {
        Ok(source) => source,
        Err(code) => return code,
    };
    let targets = crate::target_selection(&args.only);
    let origin = write::Origin { input_name: &source.name, input: source.text.as_bytes(), targets: &targets };
    // OUT is opened, its metadata read and its lock compared with this build while the topology is
    // analysed; an invalid topology still reports only its diagnostics.
    let (prepared, compiled) =
        crate::work::join(|| write::prepare(&args.out, args.force, origin), || compile_source(&source));
    let compiled = match compiled {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    if prepared.as_ref().is_ok_and(write::Prepared::is_current) {
        // The lock records this very build and every file is as it wrote it: nothing to write.
        eprintln!(
            "{} is up to date with {} (as its lock records): nothing written",
            args.out.display(),
            source.name
        );
        return EXIT_OK;
    }
    let result = prepared
        .and_then(|prepared| prepared.build(|sink| crate::emit_parallel(&compiled, &args.only, sink)));
    // The process ends next: the model, plan and lock of a large mesh are left to it rather than
    // freed one allocation at a time (a tenth of a second at 50,000 agents).
    std::mem::forget(compiled);
    let result = std::mem::ManuallyDrop::new(result);
    match &*result {
        Ok(written) if written.whole => {
            eprintln!("wrote {} files to {}", written.written, args.out.display());
            EXIT_OK
        }
        Ok(written) => {
            eprintln!(
                "updated {}: {} files written, {} removed, {} unchanged",
                args.out.display(),
                written.written,
                written.removed,
                written.unchanged
            );
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_USAGE
        }
    }
}

/// Opens OUT for a command that reads it ([`write::open`]), saying so when a stopped build was
/// finished; an error is printed and becomes the exit code.
pub(super) fn open_output(out: &Path) -> Result<write::Opened, u8> {
    match write::open(out) {
        Ok(opened) => {
            if opened.rolled_forward {
                eprintln!("finished the interrupted build of {}", out.display());
            }
            Ok(opened)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Err(EXIT_USAGE)
        }
    }
}

/// `weave build --check`: compares OUT with what the topology produces. When OUT's lock records
/// this very topology (same bytes, same weave, same targets), the answer comes from the lock and the
/// files' metadata alone, reading a file only where its times leave a doubt; otherwise the topology
/// is analysed and built in memory and each artifact compared (by the lock's digest where the file's
/// size and times vouch for it). Writes nothing, except that a build a stopped run left half done is
/// finished first.
fn build_check(args: &BuildArgs) -> u8 {
    let source = match read_source(&args.file) {
        Ok(source) => source,
        Err(code) => return code,
    };
    let targets = crate::target_selection(&args.only);
    let origin = write::Origin { input_name: &source.name, input: source.text.as_bytes(), targets: &targets };
    let opened = match open_output(&args.out) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    if write::is_current(&args.out, origin) {
        // The lock says this topology built OUT, so it was valid; its warnings are `validate`'s.
        eprintln!("{} is up to date with {} (as its lock records)", args.out.display(), source.name);
        return EXIT_OK;
    }
    // OUT's metadata and lock are read while the topology is analysed, as a build reads them.
    let (baseline, analysis) = crate::work::join(
        || write::Baseline::read_for_check(&args.out),
        || crate::analyze(&source, &Limits::default()),
    );
    let baseline = match baseline {
        Ok(baseline) => baseline,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    let compiled = match report_analysis(analysis, &source) {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let mut sink = write::CheckSink::with_baseline(baseline);
    if let Err(error) = crate::emit_parallel(&compiled, &args.only, &mut sink) {
        eprintln!("error: {error}");
        return EXIT_USAGE;
    }
    let staleness = sink.finish(origin);
    drop(opened);
    if staleness.is_fresh() {
        eprintln!("{} is up to date with {}", args.out.display(), source.name);
        return EXIT_OK;
    }
    let mut stdout = std::io::stdout().lock();
    for (mark, paths) in
        [("added", &staleness.added), ("removed", &staleness.removed), ("changed", &staleness.changed)]
    {
        for path in paths {
            let _ = writeln!(stdout, "{mark:<8} {path}");
        }
    }
    eprintln!(
        "{} is stale: {} added, {} removed, {} changed; run `weave build {} -o {}`",
        args.out.display(),
        staleness.added.len(),
        staleness.removed.len(),
        staleness.changed.len(),
        args.file.display(),
        args.out.display()
    );
    EXIT_INVALID
}

fn graph_command(args: &GraphArgs) -> u8 {
    let (compiled, _) = match compile_file(&args.file) {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let text = match args.format {
        GraphFormat::Mermaid => graph::to_mermaid(&compiled.topology, &compiled.graph),
        GraphFormat::Dot => graph::to_dot(&compiled.topology, &compiled.graph),
        GraphFormat::Json => {
            let json = graph::to_json(&compiled.topology, &compiled.graph);
            format!("{}\n", serde_json::to_string_pretty(&json).unwrap_or_default())
        }
    };
    stdout!("{text}");
    EXIT_OK
}

fn init(args: &InitArgs) -> u8 {
    if args.file.as_os_str() == "-" {
        stdout!("{INIT_TEMPLATE}");
        return EXIT_OK;
    }
    if args.file.exists() && !args.force {
        eprintln!("error: {} exists; pass --force to overwrite it", args.file.display());
        return EXIT_USAGE;
    }
    match std::fs::write(&args.file, INIT_TEMPLATE) {
        Ok(()) => {
            eprintln!(
                "wrote {}; check it with `weave validate {}`",
                args.file.display(),
                args.file.display()
            );
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: cannot write {}: {error}", args.file.display());
            EXIT_USAGE
        }
    }
}
