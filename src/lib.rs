//! weave compiles one multi-cloud agent mesh topology (`multi-cloud-values.yaml`) into every artifact
//! the mesh needs. See ARCHITECTURE.md for the pipeline and its invariants.

pub mod diagnostics;
pub mod emit;
pub mod graph;
pub mod model;

use diagnostics::Diagnostic;
use graph::MeshGraph;
use model::Topology;

/// A topology that passed every check, ready to emit.
#[derive(Debug)]
pub struct Compiled {
    pub topology: Topology,
    pub graph: MeshGraph,
    /// Warnings (never errors).
    pub diagnostics: Vec<Diagnostic>,
}

/// Runs the front half of the pipeline on a topology's text: load, schema, model, graph, check.
/// Returns every diagnostic when any is an error.
pub fn compile(file_name: &str, text: &str) -> Result<Compiled, Vec<Diagnostic>> {
    let _ = file_name;
    let value: serde_json::Value = serde_yaml_ng::from_str(text)
        .map_err(|error| vec![Diagnostic::error("E000", error.to_string(), None, "fix the YAML syntax")])?;
    let topology = model::normalize(&value)
        .map_err(|error| vec![Diagnostic::error("E001", error, None, "fix the type")])?;
    let graph = MeshGraph::build(&topology);
    Ok(Compiled { topology, graph, diagnostics: Vec::new() })
}
