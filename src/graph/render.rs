//! The mesh graph as text: Mermaid (for `graph.mmd` and review), Graphviz DOT and JSON.
//!
//! Node identifiers are derived from the node's position in the graph (`n0`, `n1`, ...), which is fixed
//! by the order the graph is built in, so the output is the same on every run. Labels are quoted and
//! escaped for each format.

use std::fmt::Write as _;

use petgraph::graph::DiGraph;
use petgraph::visit::EdgeRef;
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use serde_json::json;

use super::{Edge, MeshGraph, Node};
use crate::model::{NetworkKind, Topology};

/// A Mermaid flowchart of the mesh: trust domains and sites as nodes, agents grouped per site.
pub fn to_mermaid(topology: &Topology, graph: &MeshGraph) -> String {
    mermaid(&MermaidInputs::of(topology, graph))
}

/// Everything the Mermaid flowchart is rendered from (`graph.mmd`'s inputs, see
/// `crate::emit::inputs`): every node and edge of the graph, in order, and the names their labels
/// show.
#[derive(Debug, Serialize)]
pub struct MermaidInputs<'a> {
    graph: GraphView<'a>,
    labels: Labels<'a>,
}

impl<'a> MermaidInputs<'a> {
    pub fn of(topology: &'a Topology, graph: &'a MeshGraph) -> MermaidInputs<'a> {
        MermaidInputs { graph: GraphView(&graph.graph), labels: Labels::of(topology) }
    }
}

/// [`to_mermaid`] from its inputs, as bytes.
pub fn render_mermaid(inputs: &MermaidInputs<'_>) -> Vec<u8> {
    mermaid(inputs).into_bytes()
}

fn mermaid(inputs: &MermaidInputs<'_>) -> String {
    let graph = inputs.graph.0;
    let labels = &inputs.labels;
    let mut out = String::from("flowchart LR\n");
    for node in graph.node_indices() {
        let label = mermaid_escape(&node_label(labels, &graph[node]));
        let shape = match graph[node] {
            Node::TrustDomain { .. } => format!("n{}{{{{\"{label}\"}}}}", node.index()),
            Node::Agent { .. } => format!("n{}([\"{label}\"])", node.index()),
            _ => format!("n{}[\"{label}\"]", node.index()),
        };
        let _ = writeln!(out, "  {shape}");
    }
    for edge in graph.edge_references() {
        let label = mermaid_escape(&edge_label(edge.weight()));
        let arrow = match edge.weight() {
            Edge::Calls { .. } => "==>",
            Edge::FallsBackTo => "-.->",
            _ => "-->",
        };
        let _ = writeln!(out, "  n{} {arrow}|\"{label}\"| n{}", edge.source().index(), edge.target().index());
    }
    out
}

/// The graph's nodes in index order and its edges in index order (each with its ends): all a
/// rendering of the graph reads of it. A mesh's graph has hundreds of thousands of edges (every
/// federated pair of domains is two), so they are written packed: per node its kind and index
/// (sites and agents by their position, trust domains by their names, listed apart), per edge its
/// ends and kind; the actions of the `Calls` edges follow in edge order. Every field has a fixed
/// width and every list its length, so two graphs that differ are written differently.
#[derive(Debug)]
struct GraphView<'a>(&'a DiGraph<Node, Edge>);

impl Serialize for GraphView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let graph = self.0;
        let id = |index: usize| u32::try_from(index).map_err(serde::ser::Error::custom);
        let mut nodes = Vec::with_capacity(graph.node_count() * 5);
        let mut domain_names: Vec<&str> = Vec::new();
        for node in graph.raw_nodes() {
            let (kind, index) = match &node.weight {
                Node::TrustDomain { name } => {
                    domain_names.push(name);
                    (0, 0)
                }
                Node::Site { site } => (1, *site),
                Node::SpireServer { site } => (2, *site),
                Node::BundleEndpoint { site } => (3, *site),
                Node::Network { network } => (
                    4,
                    match network {
                        NetworkKind::Tailscale => 0,
                        NetworkKind::Vpn => 1,
                        NetworkKind::Istio => 2,
                    },
                ),
                Node::Agent { agent } => (5, *agent),
                Node::Collector { site } => (6, *site),
                Node::PrometheusHub { site } => (7, *site),
            };
            nodes.push(kind);
            nodes.extend_from_slice(&id(index)?.to_le_bytes());
        }
        let mut edges = Vec::with_capacity(graph.edge_count() * 9);
        let mut actions: Vec<&Vec<String>> = Vec::new();
        for edge in graph.raw_edges() {
            edges.extend_from_slice(&id(edge.source().index())?.to_le_bytes());
            edges.extend_from_slice(&id(edge.target().index())?.to_le_bytes());
            edges.push(match &edge.weight {
                Edge::MemberOf => 0,
                Edge::FederatesWith => 1,
                Edge::RunsIn => 2,
                Edge::Calls { actions: granted } => {
                    actions.push(granted);
                    3
                }
                Edge::FallsBackTo => 4,
                Edge::Scrapes => 5,
                Edge::ExportsTo => 6,
            });
        }
        let mut state = serializer.serialize_struct("GraphView", 4)?;
        state.serialize_field("nodes", &Bytes(&nodes))?;
        state.serialize_field("domain_names", &domain_names)?;
        state.serialize_field("edges", &Bytes(&edges))?;
        state.serialize_field("actions", &actions)?;
        state.end()
    }
}

/// Bytes that serialize as bytes (not as a list of numbers).
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// The names a node's label shows, by site and agent index.
#[derive(Debug, Serialize)]
struct Labels<'a> {
    /// Each site's name, provider and region.
    sites: Vec<(&'a str, &'static str, Option<&'a str>)>,
    agents: Vec<&'a str>,
}

impl<'a> Labels<'a> {
    fn of(topology: &'a Topology) -> Labels<'a> {
        Labels {
            sites: topology
                .sites
                .iter()
                .map(|site| (site.name.as_str(), site.provider.as_str(), site.region.as_deref()))
                .collect(),
            agents: topology.agents.iter().map(|agent| agent.name.as_str()).collect(),
        }
    }
}

/// A Graphviz digraph of the mesh, accepted by `dot -Tsvg`.
pub fn to_dot(topology: &Topology, graph: &MeshGraph) -> String {
    let labels = Labels::of(topology);
    let mut out = String::from("digraph mesh {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    for node in graph.graph.node_indices() {
        let weight = &graph.graph[node];
        let shape = match weight {
            Node::TrustDomain { .. } => "hexagon",
            Node::Site { .. } => "box3d",
            Node::Agent { .. } => "ellipse",
            Node::Network { .. } => "doubleoctagon",
            _ => "box",
        };
        let _ = writeln!(
            out,
            "  n{} [label={}, shape={shape}];",
            node.index(),
            dot_quote(&node_label(&labels, weight))
        );
    }
    for edge in graph.graph.edge_references() {
        let style = match edge.weight() {
            Edge::Calls { .. } => "bold",
            Edge::FallsBackTo => "dashed",
            _ => "solid",
        };
        let _ = writeln!(
            out,
            "  n{} -> n{} [label={}, style={style}];",
            edge.source().index(),
            edge.target().index(),
            dot_quote(&edge_label(edge.weight()))
        );
    }
    out.push_str("}\n");
    out
}

/// The graph as JSON: `{"nodes": [{id, kind, label, ...}], "edges": [{from, to, kind, ...}]}`.
pub fn to_json(topology: &Topology, graph: &MeshGraph) -> serde_json::Value {
    let labels = Labels::of(topology);
    let nodes: Vec<serde_json::Value> = graph
        .graph
        .node_indices()
        .map(|node| {
            let weight = &graph.graph[node];
            let mut value = serde_json::to_value(weight).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("id".into(), json!(format!("n{}", node.index())));
                object.insert("label".into(), json!(node_label(&labels, weight)));
            }
            value
        })
        .collect();
    let edges: Vec<serde_json::Value> = graph
        .graph
        .edge_references()
        .map(|edge| {
            let mut value = serde_json::to_value(edge.weight()).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("from".into(), json!(format!("n{}", edge.source().index())));
                object.insert("to".into(), json!(format!("n{}", edge.target().index())));
            }
            value
        })
        .collect();
    json!({ "nodes": nodes, "edges": edges })
}

fn node_label(labels: &Labels<'_>, node: &Node) -> String {
    let site = |site: &usize| labels.sites[*site].0;
    match node {
        Node::TrustDomain { name } => format!("trust domain {name}"),
        Node::Site { site } => {
            let (name, provider, region) = labels.sites[*site];
            match region {
                Some(region) => format!("site {name} ({provider} {region})"),
                None => format!("site {name} ({provider})"),
            }
        }
        Node::SpireServer { site: index } => format!("SPIRE server {}", site(index)),
        Node::BundleEndpoint { site: index } => format!("bundle endpoint {}", site(index)),
        Node::Network { network } => format!("network {}", network.as_str()),
        Node::Agent { agent } => format!("agent {}", labels.agents[*agent]),
        Node::Collector { site: index } => format!("collector {}", site(index)),
        Node::PrometheusHub { site: index } => format!("Prometheus hub {}", site(index)),
    }
}

fn edge_label(edge: &Edge) -> String {
    match edge {
        Edge::MemberOf => "member of".into(),
        Edge::FederatesWith => "federates with".into(),
        Edge::RunsIn => "runs in".into(),
        Edge::Calls { actions } => format!("calls {}", actions.join(", ")),
        Edge::FallsBackTo => "falls back to".into(),
        Edge::Scrapes => "scrapes".into(),
        Edge::ExportsTo => "exports to".into(),
    }
}

/// Mermaid labels are double-quoted; a quote inside becomes its HTML entity, as Mermaid documents.
fn mermaid_escape(text: &str) -> String {
    text.replace('"', "#quot;")
}

fn dot_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(character);
            }
            '\n' => quoted.push_str("\\n"),
            _ => quoted.push(character),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::inputs::digest;

    /// A change to a topology's text.
    type Edit = fn(String) -> String;

    /// `graph.mmd` of `fixtures/valid/federated-mesh.yaml` with `edit` applied: its inputs digest
    /// and its bytes.
    fn mermaid_of(edit: Edit) -> (String, String) {
        let path = format!("{}/fixtures/valid/federated-mesh.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = edit(std::fs::read_to_string(path).unwrap());
        let compiled = crate::compile("federated-mesh.yaml", &text).unwrap();
        let inputs = MermaidInputs::of(&compiled.topology, &compiled.graph);
        (digest("graph.mmd", &inputs), mermaid(&inputs))
    }

    #[test]
    fn the_mermaid_digest_follows_every_node_and_edge() {
        let base = mermaid_of(|text| text);
        assert_eq!(base, mermaid_of(|text| text), "the same graph, the same digest");
        let edits: [(&str, Edit); 5] = [
            ("an action", |text| text.replace("[search]", "[find]")),
            ("a call's target", |text| text.replacen("agent: processor", "agent: worker-gcp", 1)),
            ("a fallback", |text| text.replacen("fallback: worker-gcp", "fallback: processor", 1)),
            ("a trust domain", |text| text.replace("azure.company.com", "azure.example.com")),
            ("the federation", |text| {
                let pairs = "  pairs:\n    - [aws.company.com, gcp.company.com]\n    - [aws.company.com, azure.company.com]\n";
                text.replacen("  acmeEmail:", &format!("{pairs}  acmeEmail:"), 1)
            }),
        ];
        for (what, edit) in edits {
            let (digest, drawn) = mermaid_of(edit);
            // Each edit changes what is drawn, and so the digest.
            assert_ne!(drawn, base.1, "{what}");
            assert_ne!(digest, base.0, "{what}");
        }
    }
}
