//! The mesh as a typed dependency graph (petgraph), and the relations every layer reads from it.
//!
//! Nodes are the things a mesh is made of (trust domains, sites, SPIRE servers, bundle endpoints, the
//! network, agents, collectors, the Prometheus hub); edges are how they depend on each other.
//! The plan (`crate::plan`) is lowered from it; the agent-level relations (calls, reachability,
//! trust, authorization) live there.
//!
//! Architecture invariant: this module knows nothing of emitters or of the file format.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::Serialize;

use crate::model::{FederationPairs, NetworkKind, Topology};

/// A node of the mesh graph. Indices point into `Topology::sites` / `Topology::agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Node {
    TrustDomain { name: String },
    Site { site: usize },
    SpireServer { site: usize },
    BundleEndpoint { site: usize },
    Network { network: NetworkKind },
    Agent { agent: usize },
    Collector { site: usize },
    PrometheusHub { site: usize },
}

/// An edge of the mesh graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Edge {
    /// Site → trust domain; SPIRE server → trust domain.
    MemberOf,
    /// Trust domain → trust domain (both directions are present).
    FederatesWith,
    /// Agent, SPIRE server, bundle endpoint, collector → site; site → network.
    RunsIn,
    /// Agent → agent, with the actions granted.
    Calls { actions: Vec<String> },
    /// Agent → its fallback agent.
    FallsBackTo,
    /// Prometheus hub → collector of a site (the site's metrics).
    Scrapes,
    /// Collector → Prometheus hub.
    ExportsTo,
}

/// The graph plus the indices that make its queries cheap.
#[derive(Debug)]
pub struct MeshGraph {
    pub graph: DiGraph<Node, Edge>,
    trust_domain_nodes: BTreeMap<String, NodeIndex>,
    site_nodes: Vec<NodeIndex>,
    agent_nodes: Vec<NodeIndex>,
    /// Unordered federated pairs, stored as (smaller, larger).
    federated: BTreeSet<(String, String)>,
    /// Trust domain name → the names of the domains federated with it, sorted.
    federation_peers: BTreeMap<String, Vec<String>>,
}

impl MeshGraph {
    /// Builds the graph of a normalized topology. Unknown references (a call to an agent that does
    /// not exist) are left out here; `check` reports them.
    pub fn build(topology: &Topology) -> MeshGraph {
        let mut graph = DiGraph::new();
        let mut trust_domain_nodes = BTreeMap::new();
        for site in &topology.sites {
            trust_domain_nodes
                .entry(site.trust_domain.clone())
                .or_insert_with(|| graph.add_node(Node::TrustDomain { name: site.trust_domain.clone() }));
        }
        let network = graph.add_node(Node::Network { network: topology.networking.kind });
        let central = topology.central_metrics_site().and_then(|site| topology.site_position(&site.name));
        let hub = central.map(|site| graph.add_node(Node::PrometheusHub { site }));

        let mut site_nodes = Vec::with_capacity(topology.sites.len());
        for (position, site) in topology.sites.iter().enumerate() {
            let site_node = graph.add_node(Node::Site { site: position });
            site_nodes.push(site_node);
            let trust_domain = trust_domain_nodes[&site.trust_domain];
            graph.add_edge(site_node, trust_domain, Edge::MemberOf);
            graph.add_edge(site_node, network, Edge::RunsIn);
            let server = graph.add_node(Node::SpireServer { site: position });
            graph.add_edge(server, site_node, Edge::RunsIn);
            graph.add_edge(server, trust_domain, Edge::MemberOf);
            if topology.federation.enabled && topology.federation.bundle_endpoint(&site.name).is_some() {
                let endpoint = graph.add_node(Node::BundleEndpoint { site: position });
                graph.add_edge(endpoint, site_node, Edge::RunsIn);
            }
            let collector = graph.add_node(Node::Collector { site: position });
            graph.add_edge(collector, site_node, Edge::RunsIn);
            if let Some(hub) = hub {
                graph.add_edge(collector, hub, Edge::ExportsTo);
                graph.add_edge(hub, collector, Edge::Scrapes);
            }
        }

        let mut agent_nodes = Vec::with_capacity(topology.agents.len());
        for (position, agent) in topology.agents.iter().enumerate() {
            let node = graph.add_node(Node::Agent { agent: position });
            graph.add_edge(node, site_nodes[agent.site], Edge::RunsIn);
            agent_nodes.push(node);
        }

        for (position, agent) in topology.agents.iter().enumerate() {
            for call in &agent.calls {
                let Some(callee) = topology.agent_position(&call.agent) else { continue };
                graph.add_edge(
                    agent_nodes[position],
                    agent_nodes[callee],
                    Edge::Calls { actions: call.actions.clone() },
                );
            }
            if let Some(fallback) = &agent.fallback
                && let Some(target) = topology.agent_position(&fallback.name)
            {
                graph.add_edge(agent_nodes[position], agent_nodes[target], Edge::FallsBackTo);
            }
        }

        let mut federated = BTreeSet::new();
        if topology.federation.enabled {
            let domains: Vec<&String> = trust_domain_nodes.keys().collect();
            match &topology.federation.pairs {
                FederationPairs::All => {
                    for (position, left) in domains.iter().enumerate() {
                        for right in &domains[position + 1..] {
                            federated.insert(((*left).clone(), (*right).clone()));
                        }
                    }
                }
                FederationPairs::List(pairs) => {
                    for pair in pairs {
                        let known = trust_domain_nodes.contains_key(&pair.a)
                            && trust_domain_nodes.contains_key(&pair.b);
                        if known && pair.a != pair.b {
                            federated.insert(ordered(&pair.a, &pair.b));
                        }
                    }
                }
            }
        }
        for (left, right) in &federated {
            let (left, right) = (trust_domain_nodes[left], trust_domain_nodes[right]);
            graph.add_edge(left, right, Edge::FederatesWith);
            graph.add_edge(right, left, Edge::FederatesWith);
        }

        let mut federation_peers: BTreeMap<String, Vec<String>> =
            trust_domain_nodes.keys().map(|name| (name.clone(), Vec::new())).collect();
        for (left, right) in &federated {
            federation_peers.entry(left.clone()).or_default().push(right.clone());
            federation_peers.entry(right.clone()).or_default().push(left.clone());
        }
        for peers in federation_peers.values_mut() {
            peers.sort_unstable();
        }

        MeshGraph { graph, trust_domain_nodes, site_nodes, agent_nodes, federated, federation_peers }
    }

    /// The distinct trust domains of the enabled sites, sorted.
    pub fn trust_domains(&self) -> impl Iterator<Item = &str> {
        self.trust_domain_nodes.keys().map(String::as_str)
    }

    /// The sites (indices) that belong to a trust domain, in site order.
    pub fn sites_of_trust_domain(&self, trust_domain: &str) -> Vec<usize> {
        let Some(&node) = self.trust_domain_nodes.get(trust_domain) else { return Vec::new() };
        let mut sites: Vec<usize> = self
            .graph
            .edges_directed(node, Direction::Incoming)
            .filter_map(|edge| match self.graph[edge.source()] {
                Node::Site { site } => Some(site),
                _ => None,
            })
            .collect();
        sites.sort_unstable();
        sites
    }

    /// Whether two distinct trust domains federate (in either direction; the relation is mutual).
    pub fn federated(&self, left: &str, right: &str) -> bool {
        let (left, right) = if left <= right { (left, right) } else { (right, left) };
        self.federated.contains(&(left.to_owned(), right.to_owned()))
    }

    /// Whether `trust_domain` federates with any other domain.
    pub fn is_federated(&self, trust_domain: &str) -> bool {
        self.federation_peers.get(trust_domain).is_some_and(|peers| !peers.is_empty())
    }

    /// The trust domains federated with `trust_domain`, sorted.
    pub fn federated_with(&self, trust_domain: &str) -> Vec<&str> {
        self.federation_peers
            .get(trust_domain)
            .map(|peers| peers.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Every federated pair (each once, the smaller name first), sorted.
    pub fn federated_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.federated.iter().map(|(left, right)| (left.as_str(), right.as_str()))
    }

    /// The graph node of a site.
    pub fn site_node(&self, site: usize) -> NodeIndex {
        self.site_nodes[site]
    }

    /// The graph node of an agent.
    pub fn agent_node(&self, agent: usize) -> NodeIndex {
        self.agent_nodes[agent]
    }
}

fn ordered(left: &str, right: &str) -> (String, String) {
    if left <= right { (left.to_owned(), right.to_owned()) } else { (right.to_owned(), left.to_owned()) }
}

mod render;

pub use render::{to_dot, to_json, to_mermaid};
