//! The mesh as a typed dependency graph (petgraph), and the relations every layer reads from it.
//!
//! Nodes are the things a mesh is made of (trust domains, sites, SPIRE servers, bundle endpoints, the
//! network, agents, collectors, the Prometheus hub); edges are how they depend on each other.
//! The plan (`crate::plan`) is lowered from it; the agent-level relations (calls, reachability,
//! trust, authorization) live there.
//!
//! Architecture invariant: this module knows nothing of emitters or of the file format.

use std::collections::BTreeMap;
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
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
    site_nodes: Vec<NodeIndex>,
    agent_nodes: Vec<NodeIndex>,
    domains: Arc<TrustDomains>,
}

/// The mesh's trust domains and which of them federate: what the plan reads of the graph, made
/// without (and so beside) the graph's nodes and edges.
#[derive(Debug)]
pub struct TrustDomains {
    /// The trust domains' names, sorted: a domain's id is its position here.
    domains: Vec<String>,
    /// Federated pairs of domain ids, each once as (smaller, larger), sorted.
    federated: Vec<(usize, usize)>,
    /// Domain id → the ids of the domains federated with it, sorted.
    federation_peers: Vec<Vec<usize>>,
    /// Domain id → its sites (indices), in site order: the graph's `MemberOf` edges into the
    /// domain's node, found without walking its federation edges (every other domain's, with
    /// `pairs: all`).
    domain_sites: Vec<Vec<usize>>,
}

impl TrustDomains {
    /// The trust domains of a normalized topology's sites and their federation.
    pub fn build(topology: &Topology) -> TrustDomains {
        let mut domains: Vec<String> = topology.sites.iter().map(|site| site.trust_domain.clone()).collect();
        domains.sort_unstable();
        domains.dedup();
        let id = |name: &str| domains.binary_search_by(|domain| domain.as_str().cmp(name)).ok();
        let mut federated: Vec<(usize, usize)> = Vec::new();
        if topology.federation.enabled {
            match &topology.federation.pairs {
                FederationPairs::All => {
                    for left in 0..domains.len() {
                        federated.extend((left + 1..domains.len()).map(|right| (left, right)));
                    }
                }
                FederationPairs::List(pairs) => {
                    for pair in pairs {
                        if let (Some(left), Some(right)) = (id(&pair.a), id(&pair.b))
                            && left != right
                        {
                            federated.push((left.min(right), left.max(right)));
                        }
                    }
                    federated.sort_unstable();
                    federated.dedup();
                }
            }
        }
        let mut federation_peers: Vec<Vec<usize>> = vec![Vec::new(); domains.len()];
        for &(left, right) in &federated {
            federation_peers[left].push(right);
            federation_peers[right].push(left);
        }
        for peers in &mut federation_peers {
            peers.sort_unstable();
        }
        let mut domain_sites: Vec<Vec<usize>> = vec![Vec::new(); domains.len()];
        for (position, site) in topology.sites.iter().enumerate() {
            if let Some(domain) = id(&site.trust_domain) {
                domain_sites[domain].push(position);
            }
        }
        TrustDomains { domains, federated, federation_peers, domain_sites }
    }

    /// The distinct trust domains of the enabled sites, sorted.
    pub fn trust_domains(&self) -> impl Iterator<Item = &str> {
        self.domains.iter().map(String::as_str)
    }

    /// The sites (indices) that belong to a trust domain, in site order.
    pub fn sites_of_trust_domain(&self, trust_domain: &str) -> Vec<usize> {
        self.domain_id(trust_domain).map(|domain| self.domain_sites[domain].clone()).unwrap_or_default()
    }

    /// Whether two distinct trust domains federate (in either direction; the relation is mutual).
    pub fn federated(&self, left: &str, right: &str) -> bool {
        let (Some(left), Some(right)) = (self.domain_id(left), self.domain_id(right)) else { return false };
        self.federated.binary_search(&(left.min(right), left.max(right))).is_ok()
    }

    /// A trust domain's position in [`TrustDomains::trust_domains`].
    pub fn domain_id(&self, trust_domain: &str) -> Option<usize> {
        self.domains.binary_search_by(|domain| domain.as_str().cmp(trust_domain)).ok()
    }

    /// Whether `trust_domain` federates with any other domain.
    pub fn is_federated(&self, trust_domain: &str) -> bool {
        self.domain_id(trust_domain).is_some_and(|id| !self.federation_peers[id].is_empty())
    }

    /// The trust domains federated with `trust_domain`, sorted.
    pub fn federated_with(&self, trust_domain: &str) -> Vec<&str> {
        self.domain_id(trust_domain)
            .map(|id| self.federation_peers[id].iter().map(|&peer| self.domains[peer].as_str()).collect())
            .unwrap_or_default()
    }

    /// The domains federated with the domain at `id` ([`TrustDomains::domain_id`]), as ids, sorted.
    pub fn federated_ids_of(&self, id: usize) -> &[usize] {
        &self.federation_peers[id]
    }

    /// Every federated pair (each once, the smaller name first), sorted.
    pub fn federated_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.federated
            .iter()
            .map(|&(left, right)| (self.domains[left].as_str(), self.domains[right].as_str()))
    }

    /// [`TrustDomains::federated_pairs`] as positions in [`TrustDomains::trust_domains`].
    pub fn federated_ids(&self) -> &[(usize, usize)] {
        &self.federated
    }
}

impl MeshGraph {
    /// Builds the graph of a normalized topology. Unknown references (a call to an agent that does
    /// not exist) are left out here; `check` reports them.
    pub fn build(topology: &Topology) -> MeshGraph {
        MeshGraph::with_domains(topology, Arc::new(TrustDomains::build(topology)))
    }

    /// [`MeshGraph::build`] of a topology whose [`TrustDomains`] are made already.
    pub fn with_domains(topology: &Topology, domains: Arc<TrustDomains>) -> MeshGraph {
        // Room for every node and for every edge but the federation's (reserved when their number
        // is known): a large mesh's graph is never copied to grow. At most four nodes and eight
        // edges per site; per agent a node, its site's edge, its calls and its fallback.
        let calls: usize = topology.agents.iter().map(|agent| agent.calls.len()).sum();
        let nodes = topology.sites.len() * 5 + 2 + topology.agents.len();
        let mut graph =
            DiGraph::with_capacity(nodes, topology.sites.len() * 8 + topology.agents.len() * 2 + calls);
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

        // The trust domain nodes in name order: a domain's id is its position.
        let domain_nodes: Vec<NodeIndex> = trust_domain_nodes.values().copied().collect();
        graph.reserve_edges(2 * domains.federated.len());
        for &(left, right) in &domains.federated {
            graph.add_edge(domain_nodes[left], domain_nodes[right], Edge::FederatesWith);
            graph.add_edge(domain_nodes[right], domain_nodes[left], Edge::FederatesWith);
        }

        MeshGraph { graph, site_nodes, agent_nodes, domains }
    }

    /// The mesh's trust domains and their federation.
    pub fn domains(&self) -> &Arc<TrustDomains> {
        &self.domains
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

mod render;

pub use render::{MermaidInputs, render_mermaid, to_dot, to_json, to_mermaid};

#[cfg(test)]
mod tests {
    use super::*;

    /// The graph of `fixtures/valid/federated-mesh.yaml` (trust domains aws, azure and gcp
    /// `.company.com`) with `federation.pairs` as written in `pairs`; the pairs are not checked.
    fn graph_with_pairs(pairs: &str) -> MeshGraph {
        let path = format!("{}/fixtures/valid/federated-mesh.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen(
            "federation:\n  enabled: true\n",
            &format!("federation:\n  enabled: true\n  pairs: {pairs}\n"),
            1,
        );
        let source = crate::source::Source::new("t.yaml", &text);
        let document = crate::load::load(&source, &crate::load::Limits::default()).unwrap();
        MeshGraph::build(&crate::model::normalize(&document.root).unwrap())
    }

    #[test]
    fn federation_pairs_as_listed() {
        let graph = graph_with_pairs(
            "[[gcp.company.com, aws.company.com], [aws.company.com, gcp.company.com], \
             [aws.company.com, aws.company.com], [aws.company.com, elsewhere.example]]",
        );
        // Duplicates and orders merge, a domain with itself and an unknown domain are left out.
        assert_eq!(
            graph.domains().federated_pairs().collect::<Vec<_>>(),
            [("aws.company.com", "gcp.company.com")]
        );
        assert!(graph.domains().federated("gcp.company.com", "aws.company.com"));
        assert!(!graph.domains().federated("aws.company.com", "azure.company.com"));
        assert!(!graph.domains().federated("aws.company.com", "elsewhere.example"));
        assert_eq!(graph.domains().federated_with("aws.company.com"), ["gcp.company.com"]);
        assert!(graph.domains().is_federated("gcp.company.com"));
        assert!(!graph.domains().is_federated("azure.company.com"));
        assert!(graph.domains().federated_with("elsewhere.example").is_empty());
        let edges = graph.graph.edge_weights().filter(|edge| matches!(edge, Edge::FederatesWith)).count();
        assert_eq!(edges, 2);
    }

    #[test]
    fn federation_pairs_all() {
        let graph = graph_with_pairs("all");
        assert_eq!(
            graph.domains().federated_pairs().collect::<Vec<_>>(),
            [
                ("aws.company.com", "azure.company.com"),
                ("aws.company.com", "gcp.company.com"),
                ("azure.company.com", "gcp.company.com")
            ]
        );
        assert_eq!(
            graph.domains().federated_with("azure.company.com"),
            ["aws.company.com", "gcp.company.com"]
        );
    }

    #[test]
    fn the_sites_of_a_domain_are_the_sites_with_an_edge_into_it() {
        use petgraph::Direction;
        use petgraph::visit::EdgeRef;

        let graph = graph_with_pairs("all");
        let domains: Vec<&str> = graph.domains().trust_domains().collect();
        for domain in domains.iter().copied().chain(["elsewhere.example"]) {
            let node = graph
                .graph
                .node_indices()
                .find(|&node| matches!(&graph.graph[node], Node::TrustDomain { name } if name == domain));
            let mut from_edges: Vec<usize> = node
                .into_iter()
                .flat_map(|node| graph.graph.edges_directed(node, Direction::Incoming))
                .filter_map(|edge| match graph.graph[edge.source()] {
                    Node::Site { site } => Some(site),
                    _ => None,
                })
                .collect();
            from_edges.sort_unstable();
            assert_eq!(graph.domains().sites_of_trust_domain(domain), from_edges, "{domain}");
        }
        assert!(domains.iter().all(|domain| !graph.domains().sites_of_trust_domain(domain).is_empty()));
    }
}
