//! Emitters: one module per target, each a pure function of (model, graph) that hands its artifacts
//! to a [`Sink`] one at a time.
//!
//! Architecture invariant: an emitter never reads files, the clock or the environment, never fails on
//! a topology that passed `check` (anything that could fail is a check), and produces the same bytes
//! on every run. The only error an emitter returns is the sink's (a failed write).
//!
//! An artifact that embeds another (the ConfigMap holding `server.conf`) calls the other emitter's
//! render function, so both carry the same bytes.

pub mod image;
pub mod k8s;
pub mod opa;
pub mod otel;
pub mod prometheus;
pub mod spire;
pub mod tailscale;
pub mod terraform;

use std::collections::BTreeMap;
use std::io;

use crate::graph::MeshGraph;
use crate::model::Topology;

/// One generated file: a `/`-separated path relative to the output directory, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Where emitters put artifacts: the build's temporary directory, or memory in tests and `diff`.
pub trait Sink {
    fn put(&mut self, path: String, bytes: Vec<u8>) -> io::Result<()>;
}

/// Keeps every artifact in memory, sorted by path.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub artifacts: BTreeMap<String, Vec<u8>>,
}

impl Sink for MemorySink {
    fn put(&mut self, path: String, bytes: Vec<u8>) -> io::Result<()> {
        self.artifacts.insert(path, bytes);
        Ok(())
    }
}

/// What every emitter reads.
#[derive(Clone, Copy)]
pub struct EmitContext<'a> {
    pub topology: &'a Topology,
    pub graph: &'a MeshGraph,
}

impl<'a> EmitContext<'a> {
    pub fn new(topology: &'a Topology, graph: &'a MeshGraph) -> Self {
        EmitContext { topology, graph }
    }
}

/// The version of weave that generated an artifact, stamped into labels and the lock file.
pub const WEAVE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A target of `weave build` (`--only` takes these names).
pub struct Target {
    pub name: &'static str,
    pub description: &'static str,
    pub emit: fn(&EmitContext<'_>, &mut dyn Sink) -> io::Result<()>,
}

/// Every target, in the order they are built.
pub const TARGETS: &[Target] = &[
    terraform::TARGET,
    spire::TARGET,
    k8s::TARGET,
    tailscale::TARGET,
    opa::TARGET,
    prometheus::TARGET,
    otel::TARGET,
    image::TARGET,
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}

/// Serializes values as a multi-document YAML stream (`---` between documents), the form
/// `kubectl apply` and kustomize read.
pub fn yaml_documents<T: serde::Serialize>(documents: &[T]) -> Vec<u8> {
    let mut out = String::new();
    for (position, document) in documents.iter().enumerate() {
        if position > 0 {
            out.push_str("---\n");
        }
        out.push_str(&yaml(document));
    }
    out.into_bytes()
}

/// Serializes one value as YAML.
pub fn yaml<T: serde::Serialize>(value: &T) -> String {
    // Serializing plain data (maps, lists, strings, numbers) cannot fail.
    serde_yaml_ng::to_string(value).expect("plain data serializes to YAML")
}

/// Serializes one value as pretty JSON with a final newline.
pub fn json_pretty<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("plain data serializes to JSON");
    bytes.push(b'\n');
    bytes
}
