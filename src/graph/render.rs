//! The mesh graph as text: Mermaid (for `graph.mmd` and review), Graphviz DOT and JSON.
//!
//! Node identifiers are derived from the node's position in the graph (`n0`, `n1`, ...), which is fixed
//! by the order the graph is built in, so the output is the same on every run. Labels are quoted and
//! escaped for each format.

use std::fmt::Write as _;

use petgraph::visit::EdgeRef;
use serde_json::json;

use super::{Edge, MeshGraph, Node};
use crate::model::Topology;

/// A Mermaid flowchart of the mesh: trust domains and sites as nodes, agents grouped per site.
pub fn to_mermaid(topology: &Topology, graph: &MeshGraph) -> String {
    let mut out = String::from("flowchart LR\n");
    for node in graph.graph.node_indices() {
        let label = mermaid_escape(&node_label(topology, &graph.graph[node]));
        let shape = match graph.graph[node] {
            Node::TrustDomain { .. } => format!("n{}{{{{\"{label}\"}}}}", node.index()),
            Node::Agent { .. } => format!("n{}([\"{label}\"])", node.index()),
            _ => format!("n{}[\"{label}\"]", node.index()),
        };
        let _ = writeln!(out, "  {shape}");
    }
    for edge in graph.graph.edge_references() {
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

/// A Graphviz digraph of the mesh, accepted by `dot -Tsvg`.
pub fn to_dot(topology: &Topology, graph: &MeshGraph) -> String {
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
            dot_quote(&node_label(topology, weight))
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
    let nodes: Vec<serde_json::Value> = graph
        .graph
        .node_indices()
        .map(|node| {
            let weight = &graph.graph[node];
            let mut value = serde_json::to_value(weight).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("id".into(), json!(format!("n{}", node.index())));
                object.insert("label".into(), json!(node_label(topology, weight)));
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

fn node_label(topology: &Topology, node: &Node) -> String {
    match node {
        Node::TrustDomain { name } => format!("trust domain {name}"),
        Node::Site { site } => {
            let site = &topology.sites[*site];
            match &site.region {
                Some(region) => format!("site {} ({} {region})", site.name, site.provider.as_str()),
                None => format!("site {} ({})", site.name, site.provider.as_str()),
            }
        }
        Node::SpireServer { site } => format!("SPIRE server {}", topology.sites[*site].name),
        Node::BundleEndpoint { site } => format!("bundle endpoint {}", topology.sites[*site].name),
        Node::Network { network } => format!("network {}", network.as_str()),
        Node::Agent { agent } => format!("agent {}", topology.agents[*agent].name),
        Node::Collector { site } => format!("collector {}", topology.sites[*site].name),
        Node::PrometheusHub { site } => format!("Prometheus hub {}", topology.sites[*site].name),
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
