//! Emitters: one module per target, each a pure function of (model, graph) that hands its artifacts
//! to a [`Sink`] one at a time.
//!
//! Architecture invariant: an emitter never reads files, the clock or the environment, never fails on
//! a topology that passed `check` (anything that could fail is a check), and produces the same bytes
//! on every run. The only error an emitter returns is the sink's (a failed write).
//!
//! An artifact that embeds another (the ConfigMap holding `server.conf`) calls the other emitter's
//! render function, so both carry the same bytes.

pub mod deploy;
pub mod gitops;
pub mod image;
pub mod inputs;
pub mod k8s;
pub mod opa;
pub mod otel;
pub mod prometheus;
pub mod spire;
pub mod tailscale;
pub mod terraform;
pub mod yaml;

#[cfg(test)]
mod test_support;

use std::collections::BTreeMap;
use std::io;

use crate::graph::MeshGraph;
use crate::model::Topology;
use crate::plan::Plan;

/// One generated file: a `/`-separated path relative to the output directory, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Where emitters put artifacts: the build's temporary directory, or memory in tests and `diff`.
pub trait Sink {
    fn put(&mut self, path: String, bytes: Vec<u8>) -> io::Result<()>;

    /// Puts the artifact `render` gives, rendered from inputs whose digest is `inputs` (see
    /// [`inputs::put`]). A sink that writes a lock records the digest; one that holds the bytes an
    /// earlier build rendered from the same inputs may keep them without calling `render`.
    fn put_rendered(
        &mut self,
        path: String,
        inputs: String,
        render: &mut dyn FnMut() -> Vec<u8>,
    ) -> io::Result<()> {
        let _ = inputs;
        self.put(path, render())
    }
}

/// A sink that can be split for a second thread and joined back (see `weave::emit_parallel`).
pub trait ForkSink: Sink + Send + Sized {
    /// A sink for another thread, writing to the same place.
    fn fork(&self) -> Self;
    /// Takes back what a forked sink received.
    fn join(&mut self, other: Self);
}

impl ForkSink for MemorySink {
    fn fork(&self) -> Self {
        MemorySink::default()
    }

    fn join(&mut self, other: Self) {
        self.artifacts.extend(other.artifacts);
        self.inputs.extend(other.inputs);
    }
}

/// Keeps every artifact in memory, sorted by path.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub artifacts: BTreeMap<String, Vec<u8>>,
    /// The inputs digest of each artifact rendered from declared inputs, as the lock records it.
    pub inputs: BTreeMap<String, String>,
}

impl Sink for MemorySink {
    fn put(&mut self, path: String, bytes: Vec<u8>) -> io::Result<()> {
        self.artifacts.insert(path, bytes);
        Ok(())
    }

    fn put_rendered(
        &mut self,
        path: String,
        inputs: String,
        render: &mut dyn FnMut() -> Vec<u8>,
    ) -> io::Result<()> {
        self.inputs.insert(path.clone(), inputs);
        self.put(path, render())
    }
}

/// What every emitter reads.
#[derive(Clone, Copy)]
pub struct EmitContext<'a> {
    pub topology: &'a Topology,
    pub graph: &'a MeshGraph,
    pub plan: &'a Plan,
}

impl<'a> EmitContext<'a> {
    pub fn new(topology: &'a Topology, graph: &'a MeshGraph, plan: &'a Plan) -> Self {
        EmitContext { topology, graph, plan }
    }

    /// The context of a compiled topology.
    pub fn of(compiled: &'a crate::Compiled) -> Self {
        EmitContext::new(&compiled.topology, &compiled.graph, &compiled.plan)
    }
}

/// The version of weave that generated an artifact, stamped into labels and the lock file.
pub const WEAVE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A target of `weave build` (`--only` takes these names).
pub struct Target {
    pub name: &'static str,
    pub description: &'static str,
    /// Renders every artifact of the target and hands each to the sink.
    pub emit: fn(&EmitContext<'_>, &mut dyn Sink) -> io::Result<()>,
    /// For the targets whose output grows with the number of agents: the same artifacts in
    /// independent parts, which `weave::emit_parallel` spreads over threads.
    pub split: Option<Split>,
}

/// A target's artifacts in independent parts: `emit` of the target is `emit_part` of every part in
/// order, and no two parts write the same path.
pub struct Split {
    /// How many parts the target has for this topology.
    pub parts: fn(&EmitContext<'_>) -> usize,
    /// Renders part `index` (`0..parts`) and hands its artifacts to the sink.
    pub emit_part: fn(&EmitContext<'_>, usize, &mut dyn Sink) -> io::Result<()>,
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
    gitops::TARGET,
    deploy::TARGET,
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}

/// Serializes values as a multi-document YAML stream (`---` between documents), the form
/// `kubectl apply` and kustomize read.
pub fn yaml_documents<T: serde::Serialize>(documents: &[T]) -> Vec<u8> {
    // An object is one to a few KiB of YAML: 2 KiB each spares most of the copies (and the fresh
    // pages) a stream grown by doubling costs. Only the allocation depends on it, not the bytes.
    let mut out = String::with_capacity(documents.len() * 2048);
    for (position, document) in documents.iter().enumerate() {
        if position > 0 {
            out.push_str("---\n");
        }
        push_yaml(&mut out, document);
    }
    out.into_bytes()
}

/// Serializes one value as YAML.
pub fn yaml<T: serde::Serialize>(value: &T) -> String {
    let mut out = String::with_capacity(1024);
    push_yaml(&mut out, value);
    out
}

/// Appends one value as a YAML document. The block writer covers the objects weave builds;
/// anything else goes to serde_yaml_ng, whose bytes the block writer reproduces. Serializing plain
/// data (maps, lists, strings, numbers) cannot fail.
fn push_yaml<T: serde::Serialize>(out: &mut String, value: &T) {
    if !yaml::append(out, value) {
        out.push_str(&serde_yaml_ng::to_string(value).expect("plain data serializes to YAML"));
    }
}

/// Serializes one value as pretty JSON with a final newline.
pub fn json_pretty<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("plain data serializes to JSON");
    bytes.push(b'\n');
    bytes
}

/// Conventions several targets share. Each is defined once here so that, for example, the user the
/// Deployment runs as and the user the image declares cannot drift apart.
pub mod conventions {
    use crate::model::{Agent, Site, Topology};

    /// The non-root user and group every agent container runs as (image `User`, pod `runAsUser`).
    pub const AGENT_UID: u32 = 10001;

    /// Where the SPIRE agent's Workload API socket directory is mounted in every workload.
    pub const SPIRE_SOCKET_DIR: &str = "/run/spire/sockets";

    /// The SPIRE agent's Workload API socket inside `SPIRE_SOCKET_DIR`.
    pub const SPIRE_SOCKET_PATH: &str = "/run/spire/sockets/agent.sock";

    /// The agent's HTTP health endpoint, served on `mesh.metricsPort` (image HEALTHCHECK, pod probes).
    pub const HEALTH_PATH: &str = "/health";

    /// The agent's Prometheus metrics endpoint, served on `mesh.metricsPort`.
    pub const METRICS_PATH: &str = "/metrics";

    /// The namespace of each site's Prometheus and OpenTelemetry collector.
    pub const MONITORING_NAMESPACE: &str = "monitoring";

    /// The Tailscale tag of one agent: `tag:<mesh>-<agent>` (DESIGN.md §4).
    pub fn tailscale_agent_tag(topology: &Topology, agent: &Agent) -> String {
        tailscale_agent_tag_of(&topology.mesh.name, &agent.name)
    }

    /// The Tailscale tag of agent `agent` of mesh `mesh`: `tag:<mesh>-<agent>`.
    pub fn tailscale_agent_tag_of(mesh: &str, agent: &str) -> String {
        format!("tag:{mesh}-{agent}")
    }

    /// Every Tailscale tag an agent's node advertises: its own, then the shared tags, sorted after it.
    pub fn tailscale_tags(topology: &Topology, agent: &Agent) -> Vec<String> {
        tailscale_tags_of(&topology.mesh.name, &agent.name, &tailscale_shared_tags(topology))
    }

    /// [`tailscale_tags`] of agent `agent` of mesh `mesh`, given the mesh's
    /// [`tailscale_shared_tags`].
    pub fn tailscale_tags_of(mesh: &str, agent: &str, shared: &[String]) -> Vec<String> {
        let mut tags = vec![tailscale_agent_tag_of(mesh, agent)];
        tags.extend(shared.iter().cloned());
        tags
    }

    /// The tags every agent's node advertises besides its own, sorted.
    pub fn tailscale_shared_tags(topology: &Topology) -> Vec<String> {
        let mut shared: Vec<String> =
            topology.networking.tailscale.tags.iter().map(|tag| tailscale_tag(tag)).collect();
        shared.sort();
        shared.dedup();
        shared
    }

    /// A tag as Tailscale spells it: `production` and `tag:production` both become `tag:production`.
    pub fn tailscale_tag(name: &str) -> String {
        format!("tag:{}", name.strip_prefix("tag:").unwrap_or(name))
    }

    /// The Tailscale tag of one site's Prometheus (the central one scrapes agents' metrics ports).
    pub fn tailscale_prometheus_tag(topology: &Topology, site: &Site) -> String {
        format!("tag:{}-prometheus-{}", topology.mesh.name, site.name)
    }
}
