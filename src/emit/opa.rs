//! OPA authorization: the policy every agent's OPA sidecar evaluates, the mesh's facts it reads, and
//! tests that pin the policy's decisions to DESIGN.md §4.
//!
//! | artifact | what it is |
//! |---|---|
//! | `opa/authz.rego` | Rego v1, `package agentweave.authz`, `default allow := false`; the same text for every mesh |
//! | `opa/data.json` | the mesh's facts, loaded at the data root (as `opa run -d DIR` does): `data.agentweave` |
//! | `opa/authz_test.rego` | `opa test` cases: every declared edge's actions allowed, a wrong action and undeclared pairs |
//! | `opa/authz.rego.cases.json` | the same cases as plain `{name, input, expect}` records, for any engine |
//!
//! The input is the seed guide's flat shape `{"caller_spiffe_id", "callee_spiffe_id", "action"}`. The
//! policy allows exactly what [`Plan::allowed`](crate::plan::Plan::allowed) allows:
//! `trusted ∧ (public action ∨ action of the declared edge caller → callee ∨ (allow_same_trust_domain ∧
//! same trust domain))`, where `trusted` means the callee is an agent of the mesh and the trust domain
//! of the caller's SPIFFE ID is the callee's or federated with it. The caller's domain is read from
//! its SPIFFE ID (the mTLS handshake verified the ID against that domain's bundle, and SPIRE issues
//! SVIDs in the agents' namespace to agents only), so no OPA needs the list of every agent.
//!
//! Each agent's OPA sidecar loads the same policy with that agent's own facts only
//! ([`agent_data_json`], the ConfigMap `<agent>-opa` next to the agent): its SPIFFE ID and trust
//! domain, the domains federated with it, the public actions, `allow_same_trust_domain`, and the
//! declared edges into it. The policy reads nothing else, so its decision on a call into that agent is
//! the one it gives on the mesh-wide `data.json`, and the data grows with the agent's callers and
//! its domain's federation, not with the mesh.
//!
//! `data.json` (under the key `agentweave`):
//!
//! ```json
//! {
//!   "mesh": "agentweave",
//!   "allow_same_trust_domain": true,
//!   "public_actions": ["health_check", "ping"],
//!   "federation": {"enabled": true, "peers": {"aws.company.com": ["gcp.company.com"], "gcp.company.com": ["aws.company.com"]}},
//!   "agents": {"spiffe://aws.company.com/agent/orchestrator": "aws.company.com"},
//!   "edges": {"spiffe://aws.company.com/agent/orchestrator": {"spiffe://gcp.company.com/agent/search": ["search"]}}
//! }
//! ```
//!
//! Edges are keyed by (caller, callee), finer than the seed's per-caller `allowed_actions`, so a grant
//! on one callee is never a grant on another; lookups are by key, so a decision costs the same in a
//! mesh of ten agents or ten thousand.
//!
//! The tests stay linear in the mesh: one allow per action of each declared edge, one wrong action per
//! edge, and a few undeclared pairs per trust domain (same domain, federated domain, untrusted
//! domain), plus an unknown caller and callee. Every expectation is `Plan::allowed`'s verdict
//! (computed by [`MeshAuthz::allowed`] on the relations the files are rendered from, which a test
//! holds equal to it), so a test named "denied" is one DESIGN.md §4 denies.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write as _};
use std::io;
use std::sync::Arc;

use super::inputs::Digested;
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use super::{EmitContext, Sink, Target};
use crate::plan::paths;

pub const TARGET: Target =
    Target { name: "opa", description: "OPA authorization policy, data and tests", emit, split: None };

/// The Rego package of the policy.
pub const PACKAGE: &str = "agentweave.authz";

/// The query of the decision.
pub const ALLOW_QUERY: &str = "data.agentweave.authz.allow";

/// The Rego package of the tests.
pub const TEST_PACKAGE: &str = "agentweave.authz_test";

/// The key of the mesh's facts at the data root (`data.agentweave`).
pub const DATA_ROOT: &str = "agentweave";

/// `authz.rego`. The rules are the same for every mesh (the mesh lives in `data.json`); the context
/// is taken so that a future mesh-dependent policy keeps the signature.
pub fn policy(_context: &EmitContext<'_>) -> String {
    POLICY.to_owned()
}

/// `data.json`: the facts `authz.rego` reads, under `agentweave`. Objects are laid out one member
/// per line down to each caller's edges; deeper values (the actions of one edge) stay on one line.
pub fn data_json(context: &EmitContext<'_>) -> Vec<u8> {
    render_data(&MeshAuthz::of(context))
}

fn render_data(authz: &MeshAuthz<'_>) -> Vec<u8> {
    let mut root = BTreeMap::new();
    root.insert(DATA_ROOT, mesh_data(authz));
    layered_json(&root, 4, authz.agents.len() * 400)
}

/// The data of one agent's OPA (`data.agentweave`, as in `data.json`): only the facts about calls
/// into `agent` (see the module documentation). Same layout as [`data_json`].
pub fn agent_data_json(context: &EmitContext<'_>, agent: usize) -> Vec<u8> {
    let domain = context.plan.trust_domain_of(agent);
    let shared = DomainDataInputs::of(context, domain, &domain_peers(context, domain));
    let edges = edges_into(context, agent);
    AgentDataInputs { domain: &shared, callee: &context.topology.agents[agent].spiffe_id, edges: &edges }
        .render()
}

/// The trust domains federated with one domain, sorted: what every agent's OPA data of that domain
/// holds, made and digested once for all of them.
pub type DomainPeers<'a> = Digested<Arc<Vec<&'a str>>>;

/// The [`DomainPeers`] of `domain`.
pub fn domain_peers<'a>(context: &EmitContext<'a>, domain: &str) -> DomainPeers<'a> {
    Digested::new(Arc::new(context.graph.domains().federated_with(domain)))
}

/// What the OPA data of every agent of a trust domain shares ([`super::inputs`]).
#[derive(Debug, Clone, Serialize)]
pub struct DomainDataInputs<'a> {
    mesh: &'a str,
    allow_same_trust_domain: bool,
    public_actions: Vec<&'a str>,
    federation_enabled: bool,
    domain: &'a str,
    /// [`domain_peers`] of `domain`.
    peers: DomainPeers<'a>,
}

impl<'a> DomainDataInputs<'a> {
    /// The shared inputs of the OPA data of `domain`'s agents; `peers` is its [`domain_peers`].
    pub fn of(context: &EmitContext<'a>, domain: &'a str, peers: &DomainPeers<'a>) -> DomainDataInputs<'a> {
        let topology = context.topology;
        let plan = context.plan;
        DomainDataInputs {
            mesh: &topology.mesh.name,
            allow_same_trust_domain: plan.allow_same_trust_domain(),
            public_actions: plan.public_actions().iter().map(String::as_str).collect(),
            federation_enabled: topology.federation.enabled,
            domain,
            peers: peers.clone(),
        }
    }
}

/// Caller SPIFFE ID → the actions granted into the callee: the part of an agent's OPA data that is
/// its own.
pub type AgentEdges<'a> = BTreeMap<&'a str, Vec<&'a str>>;

/// The [`AgentEdges`] of the calls into `callee`.
pub fn edges_into<'a>(context: &EmitContext<'a>, callee: usize) -> AgentEdges<'a> {
    let plan = context.plan;
    let mut edges: AgentEdges<'a> = BTreeMap::new();
    for &caller in plan.callers_of(callee) {
        let Some(actions) = plan.edge_actions(caller, callee) else { continue };
        let mut granted: Vec<&str> = actions.iter().map(String::as_str).collect();
        granted.sort_unstable();
        granted.dedup();
        // The caller's plan, just read for its calls, holds its SPIFFE ID too.
        edges.insert(plan.agents[caller].spiffe_id.as_str(), granted);
    }
    edges
}

/// Everything one agent's OPA data is rendered from.
#[derive(Debug, Clone)]
pub struct AgentDataInputs<'a, 'b> {
    pub domain: &'b DomainDataInputs<'a>,
    /// The agent's SPIFFE ID.
    pub callee: &'a str,
    pub edges: &'b AgentEdges<'a>,
}

impl<'a, 'b> AgentDataInputs<'a, 'b> {
    /// The agent's OPA data (see [`agent_data_json`]).
    pub fn render(&self) -> Vec<u8> {
        let domain = self.domain;
        let data = MeshData {
            mesh: domain.mesh,
            allow_same_trust_domain: domain.allow_same_trust_domain,
            public_actions: domain.public_actions.clone(),
            federation: FederationData {
                enabled: domain.federation_enabled,
                peers: BTreeMap::from([(domain.domain, domain.peers.get().to_vec())]),
            },
            agents: BTreeMap::from([(self.callee, domain.domain)]),
            edges: self
                .edges
                .iter()
                .map(|(caller, granted)| (*caller, BTreeMap::from([(self.callee, granted.clone())])))
                .collect(),
        };
        let mut root = BTreeMap::new();
        root.insert(DATA_ROOT, data);
        layered_json(&root, 4, 1024 + self.edges.len() * 200)
    }
}

/// `authz_test.rego`: the cases of [`test_cases`] as `opa test` rules.
pub fn tests(context: &EmitContext<'_>) -> String {
    let authz = MeshAuthz::of(context);
    render_tests(&authz, &cases_of(&authz))
}

/// `authz.rego.cases.json`: the cases of [`test_cases`] as `{name, input, expect}` records, one per
/// line (the query is the default, `data.agentweave.authz.allow`).
pub fn cases_json(context: &EmitContext<'_>) -> Vec<u8> {
    let authz = MeshAuthz::of(context);
    render_cases(&authz, &cases_of(&authz))
}

/// Everything the mesh-wide OPA files (`data.json`, the tests and their cases) are rendered from,
/// their inputs ([`super::inputs`]): the plan's authorization relations, and each agent's name,
/// SPIFFE ID, trust domain, capabilities and declared calls. A change that leaves these alone (an
/// agent's replicas, image or tier) leaves the three files as they are.
#[derive(Debug, Serialize)]
pub struct MeshAuthz<'a> {
    mesh: &'a str,
    allow_same_trust_domain: bool,
    /// Sorted, without duplicates.
    public_actions: Vec<&'a str>,
    /// As written, without duplicates.
    public_actions_written: Vec<&'a str>,
    federation_enabled: bool,
    /// The trust domains' names, sorted: an id ([`AgentAuthz::domain_id`]) is a position here.
    domains: &'a [Arc<str>],
    /// The federated pairs of trust domain ids, both orders, sorted.
    federated: &'a [(usize, usize)],
    agents: Vec<AgentAuthz<'a>>,
}

/// One agent, as [`MeshAuthz`] holds it.
#[derive(Debug, Serialize)]
struct AgentAuthz<'a> {
    name: &'a str,
    spiffe_id: &'a str,
    /// [`Plan::trust_domain_id_of`](crate::plan::Plan::trust_domain_id_of).
    domain_id: usize,
    capabilities: Vec<&'a str>,
    /// The declared calls, duplicates merged, in written order: callee (an index into `agents`)
    /// and the actions granted.
    calls: Vec<(usize, Vec<&'a str>)>,
}

impl<'a> MeshAuthz<'a> {
    /// [`MeshAuthz::of`] the context, digested, to be shared by the artifacts rendered from it.
    pub fn shared(context: &EmitContext<'a>) -> SharedAuthz<'a> {
        Arc::new(Digested::new(MeshAuthz::of(context)))
    }

    pub fn of(context: &EmitContext<'a>) -> MeshAuthz<'a> {
        let topology = context.topology;
        let plan = context.plan;
        let strs = |values: &'a [String]| values.iter().map(String::as_str).collect::<Vec<_>>();
        let agents = topology
            .agents
            .iter()
            .enumerate()
            .map(|(index, agent)| AgentAuthz {
                name: &agent.name,
                spiffe_id: &agent.spiffe_id,
                domain_id: plan.trust_domain_id_of(index),
                capabilities: strs(&agent.capabilities),
                calls: plan.calls_from(index).iter().map(|call| (call.callee, strs(&call.actions))).collect(),
            })
            .collect();
        MeshAuthz {
            mesh: &topology.mesh.name,
            allow_same_trust_domain: plan.allow_same_trust_domain(),
            public_actions: strs(plan.public_actions()),
            public_actions_written: strs(plan.public_actions_as_written()),
            federation_enabled: topology.federation.enabled,
            domains: plan.trust_domain_names(),
            federated: plan.federated_domain_ids(),
            agents,
        }
    }

    fn is_public(&self, action: &str) -> bool {
        self.public_actions.binary_search(&action).is_ok()
    }

    /// [`Plan::edge_actions`](crate::plan::Plan::edge_actions).
    fn edge_actions(&self, caller: usize, callee: usize) -> Option<&[&'a str]> {
        self.agents[caller].calls.iter().find(|(to, _)| *to == callee).map(|(_, actions)| actions.as_slice())
    }

    /// [`Plan::allowed`](crate::plan::Plan::allowed), on these relations.
    pub fn allowed(&self, caller: usize, callee: usize, action: &str) -> bool {
        let (left, right) = (self.agents[caller].domain_id, self.agents[callee].domain_id);
        let trusted = left == right || self.federated.binary_search(&(left, right)).is_ok();
        trusted
            && (self.is_public(action)
                || self.edge_actions(caller, callee).is_some_and(|actions| actions.contains(&action))
                || (self.allow_same_trust_domain && left == right))
    }

    /// The mesh's name.
    pub fn mesh(&self) -> &'a str {
        self.mesh
    }

    /// How many agents the mesh has; an agent is its index below that.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// An agent's name.
    pub fn agent_name(&self, agent: usize) -> &'a str {
        self.agents[agent].name
    }

    /// An agent's trust domain.
    pub fn trust_domain_of(&self, agent: usize) -> &'a str {
        &self.domains[self.agents[agent].domain_id]
    }

    /// Trust domain → the domains federated with it, sorted; every trust domain of the mesh.
    fn peers(&self) -> BTreeMap<&'a str, Vec<&'a str>> {
        let domains = self.domains;
        let mut peers: Vec<Vec<&'a str>> = vec![Vec::new(); domains.len()];
        // Ids are positions in the sorted names, and the pairs are sorted: each list comes sorted.
        for &(left, right) in self.federated {
            peers[left].push(&domains[right]);
        }
        domains.iter().map(|domain| &**domain).zip(peers).collect()
    }

    /// The callees of an agent's declared calls, in written order, duplicates merged
    /// ([`Plan::calls_from`](crate::plan::Plan::calls_from)).
    pub fn callees(&self, caller: usize) -> impl Iterator<Item = usize> + '_ {
        self.agents[caller].calls.iter().map(|(callee, _)| *callee)
    }

    /// [`Plan::allow_same_trust_domain`](crate::plan::Plan::allow_same_trust_domain).
    pub fn allow_same_trust_domain(&self) -> bool {
        self.allow_same_trust_domain
    }

    /// [`Plan::everything_reachable`](crate::plan::Plan::everything_reachable): some action is
    /// public.
    pub fn everything_reachable(&self) -> bool {
        !self.public_actions.is_empty()
    }

    /// [`Plan::same_trust_domain`](crate::plan::Plan::same_trust_domain).
    pub fn same_trust_domain(&self, caller: usize, callee: usize) -> bool {
        self.agents[caller].domain_id == self.agents[callee].domain_id
    }

    /// [`Plan::reachable`](crate::plan::Plan::reachable), on these relations.
    pub fn reachable(&self, caller: usize, callee: usize) -> bool {
        self.everything_reachable()
            || self.edge_actions(caller, callee).is_some()
            || (self.allow_same_trust_domain && self.same_trust_domain(caller, callee))
    }

    /// [`Plan::agents_by_trust_domain`](crate::plan::Plan::agents_by_trust_domain).
    pub fn agents_by_trust_domain(&self) -> BTreeMap<&'a str, Vec<usize>> {
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, agent) in self.agents.iter().enumerate() {
            groups.entry(&self.domains[agent.domain_id]).or_default().push(index);
        }
        groups
    }
}

/// One decision the policy must give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase<'a> {
    pub kind: CaseKind,
    pub caller: Party<'a>,
    pub callee: Party<'a>,
    pub action: Cow<'a, str>,
    /// `Plan::allowed` for two agents of the mesh; `false` when either end is unknown.
    pub expect: bool,
}

/// Why a case is in the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseKind {
    /// An action granted on the declared edge caller → callee.
    Granted,
    /// An action the declared edge caller → callee does not grant.
    NotGranted,
    /// Two agents of one trust domain without a declared edge.
    SameTrustDomain,
    /// Agents of federated trust domains without a declared edge.
    FederatedUndeclared,
    /// A public action between agents of federated trust domains.
    FederatedPublic,
    /// Agents whose trust domains are neither equal nor federated.
    Untrusted,
    /// A caller or callee that is not an agent of the mesh.
    Unknown,
}

/// One end of a call in a test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party<'a> {
    /// An agent of the mesh (index into `Topology::agents`).
    Agent(usize),
    /// A SPIFFE ID that belongs to no agent of the mesh.
    Unknown(Cow<'a, str>),
}

impl TestCase<'_> {
    /// A sentence saying what the case checks.
    pub fn describe<'c>(&'c self, authz: &'c MeshAuthz<'c>) -> impl fmt::Display + 'c {
        Description { case: self, authz }
    }
}

/// The cases the tests check, in a fixed order: every declared edge (each action allowed, one wrong
/// action), then per trust domain a same-domain pair, an undeclared federated pair (with a public
/// action too, when there are public actions) and an untrusted pair, then an unknown caller and an
/// unknown callee. Linear in the mesh: at most (edge actions + edges + 4 × trust domains + 2).
pub fn test_cases<'a>(context: &EmitContext<'a>) -> Vec<TestCase<'a>> {
    cases_of(&MeshAuthz::of(context))
}

/// [`test_cases`], from the relations they read.
fn cases_of<'a>(authz: &MeshAuthz<'a>) -> Vec<TestCase<'a>> {
    let public = &authz.public_actions;
    let undeclared: Cow<'a, str> = Cow::Owned(undeclared_action(authz));
    let agents_by_domain = authz.agents_by_trust_domain();
    // At most: each action of each edge and a wrong one, then 4 per trust domain and 2 unknown.
    let bound = authz
        .agents
        .iter()
        .flat_map(|agent| &agent.calls)
        .map(|(_, actions)| actions.len() + 1)
        .sum::<usize>()
        + 4 * agents_by_domain.len()
        + 2;
    let mut cases = Vec::with_capacity(bound);
    let known = |kind: CaseKind, caller: usize, callee: usize, action: Cow<'a, str>| TestCase {
        kind,
        caller: Party::Agent(caller),
        callee: Party::Agent(callee),
        expect: authz.allowed(caller, callee, &action),
        action,
    };

    for (caller, agent) in authz.agents.iter().enumerate() {
        for (callee, actions) in &agent.calls {
            let callee_agent = &authz.agents[*callee];
            let mut granted: Vec<&'a str> = actions.clone();
            granted.sort_unstable();
            granted.dedup();
            for action in &granted {
                cases.push(known(CaseKind::Granted, caller, *callee, Cow::Borrowed(*action)));
            }
            // A wrong action: one the callee serves but this edge does not grant, else one nobody
            // declares; public actions are not wrong anywhere.
            let wrong = callee_agent
                .capabilities
                .iter()
                .find(|action| !granted.contains(action) && !public.contains(action))
                .map_or_else(|| undeclared.clone(), |action| Cow::Borrowed(*action));
            cases.push(known(CaseKind::NotGranted, caller, *callee, wrong));
        }
    }

    let peers = authz.peers();
    let first_public: Option<Cow<'a, str>> =
        authz.public_actions_written.first().map(|action| Cow::Borrowed(*action));
    for (domain, members) in &agents_by_domain {
        let Some(&first) = members.first() else { continue };
        if let Some(&second) = members.get(1)
            && authz.edge_actions(first, second).is_none()
        {
            cases.push(known(CaseKind::SameTrustDomain, first, second, undeclared.clone()));
        }
        // An undeclared pair across a federation: the first agent of a federated domain that the
        // first agent of this domain declares no call to.
        let domain_peers = peers.get(domain).map(Vec::as_slice).unwrap_or_default();
        let federated_callee = domain_peers.iter().find_map(|peer| {
            agents_by_domain.get(peer).and_then(|peers| {
                peers.iter().copied().find(|&callee| authz.edge_actions(first, callee).is_none())
            })
        });
        if let Some(callee) = federated_callee {
            cases.push(known(CaseKind::FederatedUndeclared, first, callee, undeclared.clone()));
            if let Some(action) = &first_public {
                cases.push(known(CaseKind::FederatedPublic, first, callee, action.clone()));
            }
        }
        // A pair whose domains do not trust each other: even a public action is denied (the peer
        // lists are sorted).
        let untrusted_callee = agents_by_domain
            .iter()
            .find(|(other, _)| *other != domain && domain_peers.binary_search(other).is_err())
            .and_then(|(_, others)| others.first().copied());
        if let Some(callee) = untrusted_callee {
            let action = first_public.clone().unwrap_or_else(|| undeclared.clone());
            cases.push(known(CaseKind::Untrusted, first, callee, action));
        }
    }

    let unknown: Cow<'a, str> = Cow::Owned(unknown_spiffe_id(authz));
    let action = first_public.unwrap_or(undeclared);
    let member = if authz.agents.is_empty() { Party::Unknown(unknown.clone()) } else { Party::Agent(0) };
    cases.push(TestCase {
        kind: CaseKind::Unknown,
        caller: Party::Unknown(unknown.clone()),
        callee: member.clone(),
        action: action.clone(),
        expect: false,
    });
    cases.push(TestCase {
        kind: CaseKind::Unknown,
        caller: member,
        callee: Party::Unknown(unknown),
        action,
        expect: false,
    });
    cases
}

/// The policy. Rego v1; every rule is a plain lookup into `data.agentweave`.
pub const POLICY: &str = r#"# The authorization decision of the agent mesh (weave DESIGN.md §4): may the workload
# input.caller_spiffe_id invoke input.action on the workload input.callee_spiffe_id?
#
#   allow = trusted and (a public action
#                        or an action of the declared call edge caller -> callee
#                        or (allow_same_trust_domain and both in one trust domain))
#
# trusted: the callee is an agent of the mesh, and the trust domain of the caller's SPIFFE ID is the
# callee's or federated with it. The facts are in data.agentweave: data.json holds the whole mesh's,
# each agent's OPA holds only those about calls into that agent (weave's per-agent data).
package agentweave.authz

import rego.v1

default allow := false

# Public actions are callable by any mesh member the callee trusts.
allow if {
	trusted
	input.action in data.agentweave.public_actions
}

# A declared call edge grants exactly its actions, on that callee only.
allow if {
	trusted
	input.action in data.agentweave.edges[input.caller_spiffe_id][input.callee_spiffe_id]
}

# With allow_same_trust_domain, members of one trust domain may call each other.
allow if {
	data.agentweave.allow_same_trust_domain == true
	same_trust_domain
}

# The callee must be an agent these facts describe (an agent's own OPA knows only that agent). The
# caller's trust domain is that of its SPIFFE ID, which the mTLS handshake verified against that
# domain's bundle; a caller outside the callee's domain and its federated domains is never trusted.
trusted if same_trust_domain

trusted if caller_trust_domain in data.agentweave.federation.peers[callee_trust_domain]

same_trust_domain if caller_trust_domain == callee_trust_domain

caller_trust_domain := domain if {
	startswith(input.caller_spiffe_id, "spiffe://")
	parts := split(input.caller_spiffe_id, "/")
	count(parts) > 3
	domain := parts[2]
	domain != ""
}

callee_trust_domain := data.agentweave.agents[input.callee_spiffe_id]
"#;

#[derive(Serialize)]
struct MeshData<'a> {
    mesh: &'a str,
    allow_same_trust_domain: bool,
    public_actions: Vec<&'a str>,
    federation: FederationData<'a>,
    /// SPIFFE ID → trust domain, for every agent of the mesh.
    agents: BTreeMap<&'a str, &'a str>,
    /// Caller SPIFFE ID → callee SPIFFE ID → the actions granted.
    edges: BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a str>>>,
}

#[derive(Serialize)]
struct FederationData<'a> {
    enabled: bool,
    /// Trust domain → the trust domains federated with it (the relation is mutual).
    peers: BTreeMap<&'a str, Vec<&'a str>>,
}

fn mesh_data<'a>(authz: &MeshAuthz<'a>) -> MeshData<'a> {
    let mut agents = BTreeMap::new();
    let mut edges: BTreeMap<&str, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for agent in &authz.agents {
        agents.insert(agent.spiffe_id, &*authz.domains[agent.domain_id]);
        if agent.calls.is_empty() {
            continue;
        }
        let callees = edges.entry(agent.spiffe_id).or_default();
        for (callee, actions) in &agent.calls {
            let mut granted: Vec<&str> = actions.clone();
            granted.sort_unstable();
            granted.dedup();
            callees.insert(authz.agents[*callee].spiffe_id, granted);
        }
    }

    MeshData {
        mesh: authz.mesh,
        allow_same_trust_domain: authz.allow_same_trust_domain,
        public_actions: authz.public_actions.clone(),
        federation: FederationData { enabled: authz.federation_enabled, peers: authz.peers() },
        agents,
        edges,
    }
}

fn emit(context: &EmitContext<'_>, sink: &mut dyn Sink) -> io::Result<()> {
    emit_with(context, sink, &MeshAuthz::shared(context))
}

/// [`MeshAuthz`] digested, shared by the artifacts rendered from it (the OPA files and the
/// Tailscale policy): made and digested once.
pub type SharedAuthz<'a> = Arc<Digested<MeshAuthz<'a>>>;

/// [`TARGET`]'s artifacts, the mesh's authorization given (the Tailscale policy's as well:
/// `weave::emit_parallel` makes it once for both).
pub fn emit_with<'a>(
    context: &EmitContext<'a>,
    sink: &mut dyn Sink,
    authz: &SharedAuthz<'a>,
) -> io::Result<()> {
    sink.put(paths::OPA_POLICY.to_owned(), policy(context).into_bytes())?;
    // Digested once for the three files it is the inputs of.
    super::inputs::put_all(
        sink,
        authz,
        [
            (paths::OPA_DATA.to_owned(), data_of as super::inputs::Render<SharedAuthz<'_>>),
            (paths::OPA_TESTS.to_owned(), tests_of),
            (paths::OPA_CASES.to_owned(), cases_json_of),
        ],
    )
}

fn data_of(authz: &SharedAuthz<'_>) -> Vec<u8> {
    render_data(authz.get())
}

fn tests_of(authz: &SharedAuthz<'_>) -> Vec<u8> {
    let authz = authz.get();
    render_tests(authz, &cases_of(authz)).into_bytes()
}

fn cases_json_of(authz: &SharedAuthz<'_>) -> Vec<u8> {
    let authz = authz.get();
    render_cases(authz, &cases_of(authz))
}

/// An action no agent serves, grants or makes public: `undeclared-action`, suffixed until unused.
fn undeclared_action(authz: &MeshAuthz<'_>) -> String {
    let used = |candidate: &str| {
        authz.is_public(candidate)
            || authz.agents.iter().any(|agent| {
                agent.capabilities.contains(&candidate)
                    || agent.calls.iter().any(|(_, actions)| actions.contains(&candidate))
            })
    };
    let mut candidate = "undeclared-action".to_owned();
    let mut suffix = 1;
    while used(&candidate) {
        suffix += 1;
        candidate = format!("undeclared-action-{suffix}");
    }
    candidate
}

/// A SPIFFE ID in a reserved (`.invalid`) trust domain that no agent of the mesh has.
fn unknown_spiffe_id(authz: &MeshAuthz<'_>) -> String {
    let taken = |candidate: &str| authz.agents.iter().any(|agent| agent.spiffe_id == candidate);
    let mut candidate = "spiffe://unknown.invalid/agent/intruder".to_owned();
    let mut suffix = 1;
    while taken(&candidate) {
        suffix += 1;
        candidate = format!("spiffe://unknown.invalid/agent/intruder-{suffix}");
    }
    candidate
}

/// The SPIFFE ID of one end of a case.
fn spiffe_id<'a>(authz: &'a MeshAuthz<'_>, party: &'a Party<'_>) -> &'a str {
    match party {
        Party::Agent(index) => authz.agents[*index].spiffe_id,
        Party::Unknown(id) => id,
    }
}

/// The sentence of a case, written straight into the output (Rego comment or JSON string).
struct Description<'c> {
    case: &'c TestCase<'c>,
    authz: &'c MeshAuthz<'c>,
}

impl fmt::Display for Description<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(formatter)
    }
}

impl Description<'_> {
    /// Writes the sentence piece by piece (this runs once per case, tens of thousands of times in a
    /// large mesh).
    fn write_to<W: fmt::Write>(&self, out: &mut W) -> fmt::Result {
        let case = self.case;
        let name = |party: &Party<'_>| match party {
            Party::Agent(index) => self.authz.agents[*index].name,
            Party::Unknown(_) => "an unknown SPIFFE ID",
        };
        out.write_str(name(&case.caller))?;
        out.write_str(" calls ")?;
        out.write_str(name(&case.callee))?;
        out.write_str(" with ")?;
        if case.kind == CaseKind::FederatedPublic {
            out.write_str("public action ")?;
        }
        // Actions are free text; a line break would end a Rego comment.
        if case.action.chars().any(char::is_control) {
            for character in case.action.chars() {
                out.write_char(if character.is_control() { ' ' } else { character })?;
            }
        } else {
            out.write_str(&case.action)?;
        }
        out.write_str(match case.kind {
            CaseKind::Granted => ", granted on the declared edge",
            CaseKind::NotGranted => ", not granted on the declared edge",
            CaseKind::SameTrustDomain => ": same trust domain, no declared edge",
            CaseKind::FederatedUndeclared => ": federated trust domains, no declared edge",
            CaseKind::FederatedPublic => ": federated trust domains",
            CaseKind::Untrusted => ": trust domains neither equal nor federated",
            CaseKind::Unknown => ": not an agent of the mesh",
        })
    }
}

/// The cases as a Rego test module. Each SPIFFE ID a case refers to gets one constant, named after
/// its agent, so that the rules read as names; literals are JSON strings, which are Rego strings.
fn render_tests(authz: &MeshAuthz<'_>, cases: &[TestCase<'_>]) -> String {
    let mut taken_constants: HashSet<String> = HashSet::new();
    let mut constants: Vec<(String, &str)> = Vec::new();
    let mut agent_constant: Vec<Option<usize>> = vec![None; authz.agents.len()];
    let mut unknown_constant: BTreeMap<&str, usize> = BTreeMap::new();
    for case in cases {
        for party in [&case.caller, &case.callee] {
            match party {
                Party::Agent(index) => {
                    if agent_constant[*index].is_none() {
                        let agent = &authz.agents[*index];
                        let name = unique(&mut taken_constants, format!("id_{}", identifier(agent.name)));
                        agent_constant[*index] = Some(constants.len());
                        constants.push((name, agent.spiffe_id));
                    }
                }
                Party::Unknown(id) => {
                    if !unknown_constant.contains_key(id.as_ref()) {
                        let name = unique(&mut taken_constants, "id_unknown".to_owned());
                        unknown_constant.insert(id, constants.len());
                        constants.push((name, id));
                    }
                }
            }
        }
    }
    let constant = |party: &Party<'_>| -> &str {
        let position = match party {
            Party::Agent(index) => agent_constant[*index],
            Party::Unknown(id) => unknown_constant.get(id.as_ref()).copied(),
        };
        // Every party of every case got a constant above.
        position.map_or("id_unknown", |position| constants[position].0.as_str())
    };

    let mut out = String::with_capacity(cases.len() * 400);
    out.push_str(
        "# Decisions authz.rego must give for this mesh, one rule per case (run with `opa test`).\n",
    );
    out.push_str("# Every expectation is weave's own verdict (DESIGN.md §4) for that call.\n");
    // Writing into a String cannot fail.
    let _ = writeln!(out, "package {TEST_PACKAGE}\n\nimport rego.v1\n\nimport data.agentweave.authz");
    let mut sorted: Vec<&(String, &str)> = constants.iter().collect();
    sorted.sort_unstable();
    for (name, id) in sorted {
        out.push('\n');
        out.push_str(name);
        out.push_str(" := ");
        push_rego_string(&mut out, id);
        out.push('\n');
    }

    let mut rule_names: HashSet<String> = HashSet::with_capacity(cases.len());
    let mut base = String::new();
    for case in cases {
        let caller = constant(&case.caller);
        let callee = constant(&case.callee);
        let verdict = if case.expect { "allowed" } else { "denied" };
        // The constants' names are `id_` and the agent's identifier; the rule names reuse it.
        base.clear();
        base.push_str("test_");
        base.push_str(caller.trim_start_matches("id_"));
        base.push_str("_to_");
        base.push_str(callee.trim_start_matches("id_"));
        base.push('_');
        base.extend(case.action.chars().map(identifier_character));
        base.push('_');
        base.push_str(verdict);
        let name = unique(&mut rule_names, base.clone());

        out.push_str("\n# ");
        let _ = Description { case, authz }.write_to(&mut out);
        out.push_str(": ");
        out.push_str(verdict);
        out.push_str(".\n");
        out.push_str(&name);
        out.push_str(" if {\n\t");
        if !case.expect {
            out.push_str("not ");
        }
        out.push_str("authz.allow with input as {\"caller_spiffe_id\": ");
        out.push_str(caller);
        out.push_str(", \"callee_spiffe_id\": ");
        out.push_str(callee);
        out.push_str(", \"action\": ");
        push_rego_string(&mut out, &case.action);
        out.push_str("}\n}\n");
    }
    out
}

/// One record of `authz.rego.cases.json`.
struct CaseRecord<'c> {
    case: &'c TestCase<'c>,
    authz: &'c MeshAuthz<'c>,
}

impl Serialize for CaseRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut record = serializer.serialize_struct("CaseRecord", 3)?;
        record.serialize_field("name", &self.case.describe(self.authz).to_string())?;
        record.serialize_field(
            "input",
            &CaseInput {
                caller_spiffe_id: spiffe_id(self.authz, &self.case.caller),
                callee_spiffe_id: spiffe_id(self.authz, &self.case.callee),
                action: &self.case.action,
            },
        )?;
        record.serialize_field("expect", &self.case.expect)?;
        record.end()
    }
}

#[derive(Serialize)]
struct CaseInput<'a> {
    caller_spiffe_id: &'a str,
    callee_spiffe_id: &'a str,
    action: &'a str,
}

fn render_cases(authz: &MeshAuthz<'_>, cases: &[TestCase<'_>]) -> Vec<u8> {
    let records: Vec<CaseRecord<'_>> = cases.iter().map(|case| CaseRecord { case, authz }).collect();
    // A generous bound: memory reserved and never written is not used.
    layered_json(&records, 1, cases.len() * 400)
}

/// A Rego identifier fragment: lowercase ASCII letters, digits and `_`; anything else becomes `_`.
fn identifier(text: &str) -> String {
    let fragment: String = text.chars().map(identifier_character).collect();
    if fragment.is_empty() { "_".to_owned() } else { fragment }
}

/// One character of an identifier fragment.
fn identifier_character(character: char) -> char {
    if character.is_ascii_alphanumeric() { character.to_ascii_lowercase() } else { '_' }
}

/// `base`, or `base_2`, `base_3`, ... when already taken; records the name as taken. (The set only
/// answers membership, so its order never reaches the output.)
fn unique(taken: &mut HashSet<String>, base: String) -> String {
    if !taken.contains(&base) {
        taken.insert(base.clone());
        return base;
    }
    let mut suffix = 2;
    loop {
        let name = format!("{base}_{suffix}");
        if !taken.contains(&name) {
            taken.insert(name.clone());
            return name;
        }
        suffix += 1;
    }
}

/// Appends a Rego string literal (a JSON string is one).
fn push_rego_string(out: &mut String, text: &str) {
    if text.chars().all(|character| character != '"' && character != '\\' && !character.is_control()) {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        // Serializing a string to JSON cannot fail.
        out.push_str(&serde_json::to_string(text).unwrap_or_default());
    }
}

/// Serializes JSON with one member or element per line down to `levels` of nesting, and anything
/// deeper on one line (`{"a": 1, "b": [2, 3]}`), ending with a newline. Large files stay readable
/// line by line without spending a line on every string of every list.
fn layered_json<T: Serialize + ?Sized>(value: &T, levels: usize, capacity: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(capacity);
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, LayeredFormatter::new(levels));
    // Plain data (strings, numbers, maps, lists) serializes into a Vec without error.
    if value.serialize(&mut serializer).is_err() {
        bytes.clear();
    }
    bytes.push(b'\n');
    bytes
}

/// serde_json's pretty layout for the outer `levels` of nesting, its compact layout (with a space
/// after `:` and `,`) below.
struct LayeredFormatter {
    levels: usize,
    depth: usize,
    has_value: bool,
}

impl LayeredFormatter {
    fn new(levels: usize) -> Self {
        LayeredFormatter { levels, depth: 0, has_value: false }
    }

    /// Whether the members of the container at the current depth go one per line.
    fn pretty(&self) -> bool {
        self.depth <= self.levels
    }

    fn indent<W: ?Sized + io::Write>(writer: &mut W, depth: usize) -> io::Result<()> {
        for _ in 0..depth {
            writer.write_all(b"  ")?;
        }
        Ok(())
    }

    fn begin<W: ?Sized + io::Write>(&mut self, writer: &mut W, open: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(open)
    }

    fn end<W: ?Sized + io::Write>(&mut self, writer: &mut W, close: &[u8]) -> io::Result<()> {
        let pretty = self.pretty();
        self.depth -= 1;
        if pretty && self.has_value {
            writer.write_all(b"\n")?;
            Self::indent(writer, self.depth)?;
        }
        writer.write_all(close)
    }

    fn begin_member<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if self.pretty() {
            writer.write_all(if first { b"\n" } else { b",\n" })?;
            Self::indent(writer, self.depth)
        } else if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }
}

impl serde_json::ser::Formatter for LayeredFormatter {
    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.begin(writer, b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.end(writer, b"]")
    }

    fn begin_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.begin_member(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.begin(writer, b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.end(writer, b"}")
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.begin_member(writer, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;
    use crate::emit::MemorySink;

    use crate::emit::test_support::{compiled, fixture};

    fn data(context: &EmitContext<'_>) -> Value {
        let value: Value = serde_json::from_slice(&data_json(context)).unwrap();
        value[DATA_ROOT].clone()
    }

    #[test]
    fn policy_is_rego_v1_default_deny() {
        let compiled = fixture("federated-mesh.yaml");
        let context = EmitContext::of(&compiled);
        let text = policy(&context);
        assert!(text.contains(&format!("\npackage {PACKAGE}\n")));
        assert!(text.contains("\nimport rego.v1\n"));
        assert!(text.contains("\ndefault allow := false\n"));
        let mut engine = regorus::Engine::new();
        engine.add_policy("authz.rego".to_owned(), text).unwrap();
        // With no data and no input nothing is allowed.
        assert_eq!(engine.eval_rule(ALLOW_QUERY.to_owned()).unwrap(), regorus::Value::from(false));
    }

    #[test]
    fn data_carries_every_edge_per_caller_and_callee() {
        let compiled = fixture("federated-mesh.yaml");
        let context = EmitContext::of(&compiled);
        let data = data(&context);
        let topology = &compiled.topology;
        let mut edges = 0;
        for (caller, agent) in topology.agents.iter().enumerate() {
            for call in compiled.plan.calls_from(caller) {
                let (callee, actions) = (&call.callee, &call.actions);
                let listed = &data["edges"][&agent.spiffe_id][&topology.agents[*callee].spiffe_id];
                let mut expected: Vec<&str> = actions.iter().map(String::as_str).collect();
                expected.sort_unstable();
                assert_eq!(listed, &serde_json::json!(expected));
                edges += 1;
            }
            assert_eq!(data["agents"][&agent.spiffe_id], compiled.plan.trust_domain_of(caller));
        }
        let listed: usize = data["edges"]
            .as_object()
            .unwrap()
            .values()
            .map(|callees| callees.as_object().unwrap().len())
            .sum();
        assert_eq!(listed, edges);
        assert_eq!(data["allow_same_trust_domain"], compiled.plan.allow_same_trust_domain());
        assert_eq!(data["public_actions"], serde_json::json!(["health_check", "ping", "status"]));
    }

    #[test]
    fn federation_peers_are_exactly_the_graph_relation() {
        for name in ["federated-mesh.yaml", "single-trust-domain.yaml", "seed-multi-cloud-values.yaml"] {
            let compiled = fixture(name);
            let context = EmitContext::of(&compiled);
            let data = data(&context);
            let peers = data["federation"]["peers"].as_object().unwrap();
            assert_eq!(peers.len(), compiled.graph.domains().trust_domains().count());
            for domain in compiled.graph.domains().trust_domains() {
                assert_eq!(
                    peers[domain],
                    serde_json::json!(compiled.graph.domains().federated_with(domain)),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn every_edge_action_has_an_allow_case_and_every_edge_a_wrong_action() {
        let compiled = fixture("federated-mesh.yaml");
        let context = EmitContext::of(&compiled);
        let cases = test_cases(&context);
        for (caller, _) in compiled.topology.agents.iter().enumerate() {
            for call in compiled.plan.calls_from(caller) {
                let (callee, actions) = (&call.callee, &call.actions);
                let on_edge: Vec<&TestCase<'_>> = cases
                    .iter()
                    .filter(|case| {
                        case.caller == Party::Agent(caller) && case.callee == Party::Agent(*callee)
                    })
                    .collect();
                for action in actions {
                    assert!(on_edge.iter().any(|case| case.action == action.as_str() && case.expect));
                }
                assert!(on_edge.iter().any(|case| {
                    !actions.iter().any(|action| case.action == action.as_str()) && !case.expect
                }));
            }
        }
        assert!(cases.iter().any(|case| matches!(case.caller, Party::Unknown(_)) && !case.expect));
        for case in &cases {
            if let (Party::Agent(caller), Party::Agent(callee)) = (&case.caller, &case.callee) {
                assert_eq!(
                    case.expect,
                    compiled.plan.allowed(*caller, *callee, &case.action),
                    "{}",
                    case.describe(&MeshAuthz::of(&context))
                );
            }
        }
    }

    #[test]
    fn untrusted_domains_get_a_deny_case() {
        // Federation off: the sites' trust domains do not trust each other.
        let text = r#"
sites:
  one:
    provider: aws
    region: us-east-1
    trustDomain: one.example.com
    agents:
      - name: alpha
        capabilities: [work]
  two:
    provider: gcp
    region: us-central1
    trustDomain: two.example.com
    agents:
      - name: beta
        capabilities: [work]
authorization:
  publicActions: [ping]
networking:
  type: tailscale
  tailscale:
    tailnet: example
"#;
        let compiled = compiled(text);
        let context = EmitContext::of(&compiled);
        let cases = test_cases(&context);
        assert!(
            cases.iter().any(|case| case.caller == Party::Agent(0)
                && case.callee == Party::Agent(1)
                && case.action == "ping"
                && !case.expect),
            "{cases:?}"
        );
    }

    #[test]
    fn test_names_are_unique_rego_identifiers() {
        let compiled = fixture("federated-mesh.yaml");
        let context = EmitContext::of(&compiled);
        let text = tests(&context);
        let names: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("test_"))
            .filter_map(|line| line.split_whitespace().next())
            .collect();
        let distinct: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(names.len(), distinct.len());
        assert!(
            names
                .iter()
                .all(|name| name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        );
        assert_eq!(names.len(), test_cases(&context).len());
    }

    #[test]
    fn emits_four_files_deterministically() {
        let compiled = fixture("federated-mesh.yaml");
        let context = EmitContext::of(&compiled);
        let mut first = MemorySink::default();
        let mut second = MemorySink::default();
        emit(&context, &mut first).unwrap();
        emit(&context, &mut second).unwrap();
        assert_eq!(first.artifacts, second.artifacts);
        let paths: Vec<&str> = first.artifacts.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            ["opa/authz.rego", "opa/authz.rego.cases.json", "opa/authz_test.rego", "opa/data.json"]
        );
        assert_eq!(first.artifacts["opa/authz_test.rego"], tests(&context).into_bytes());
        assert_eq!(first.artifacts["opa/authz.rego.cases.json"], cases_json(&context));
    }

    #[test]
    fn layered_json_is_pretty_outside_and_compact_inside() {
        let value = serde_json::json!({"a": {"b": [1, 2], "c": {}}, "d": []});
        let text = String::from_utf8(layered_json(&value, 2, 0)).unwrap();
        assert_eq!(text, "{\n  \"a\": {\n    \"b\": [1, 2],\n    \"c\": {}\n  },\n  \"d\": []\n}\n");
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, value);
        let records =
            String::from_utf8(layered_json(&serde_json::json!([{"x": 1}, {"y": [2]}]), 1, 0)).unwrap();
        assert_eq!(records, "[\n  {\"x\": 1},\n  {\"y\": [2]}\n]\n");
    }

    #[test]
    fn identifiers_and_comments_are_sanitized() {
        assert_eq!(identifier("worker-gcp"), "worker_gcp");
        assert_eq!(identifier("Read/Write"), "read_write");
        let mut taken = HashSet::new();
        assert_eq!(unique(&mut taken, "x".to_owned()), "x");
        assert_eq!(unique(&mut taken, "x".to_owned()), "x_2");
        assert_eq!(unique(&mut taken, "x".to_owned()), "x_3");
        let mut literal = String::new();
        push_rego_string(&mut literal, "a\"b\n");
        push_rego_string(&mut literal, "plain");
        assert_eq!(literal, r#""a\"b\n""plain""#);
        // A line break in an action cannot end the comment that describes the case.
        let compiled = fixture("federated-mesh.yaml");
        let context = EmitContext::of(&compiled);
        let case = TestCase {
            kind: CaseKind::Granted,
            caller: Party::Agent(0),
            callee: Party::Unknown(Cow::Borrowed("spiffe://x.invalid/y")),
            action: Cow::Borrowed("a\nb"),
            expect: false,
        };
        assert_eq!(
            case.describe(&MeshAuthz::of(&context)).to_string(),
            "orchestrator calls an unknown SPIFFE ID with a b, granted on the declared edge"
        );
    }

    /// Each trust domain's federation peers as the graph has them, by name.
    fn federation_peers<'a>(context: &EmitContext<'a>) -> BTreeMap<&'a str, Vec<&'a str>> {
        let graph = context.graph;
        let mut peers: BTreeMap<&str, Vec<&str>> =
            graph.domains().trust_domains().map(|domain| (domain, Vec::new())).collect();
        for (left, right) in graph.domains().federated_pairs() {
            peers.entry(left).or_default().push(right);
            peers.entry(right).or_default().push(left);
        }
        for list in peers.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        peers
    }

    #[test]
    fn the_relations_decide_as_the_plan_does() {
        for name in [
            "federated-mesh.yaml",
            "seed-multi-cloud-values.yaml",
            "single-trust-domain.yaml",
            "istio-shared-domain.yaml",
            "vpn-mesh.yaml",
        ] {
            let compiled = fixture(name);
            let context = EmitContext::of(&compiled);
            let authz = MeshAuthz::of(&context);
            assert_eq!(authz.peers(), federation_peers(&context), "{name}");
            let mut actions: Vec<&str> = vec!["undeclared-action"];
            for agent in &compiled.topology.agents {
                actions.extend(agent.capabilities.iter().map(String::as_str));
                actions.extend(agent.calls.iter().flat_map(|call| call.actions.iter().map(String::as_str)));
            }
            actions.extend(compiled.plan.public_actions().iter().map(String::as_str));
            actions.sort_unstable();
            actions.dedup();
            let agents = compiled.topology.agents.len();
            assert_eq!(authz.agent_count(), agents);
            assert_eq!(authz.everything_reachable(), compiled.plan.everything_reachable());
            assert_eq!(authz.allow_same_trust_domain(), compiled.plan.allow_same_trust_domain());
            assert_eq!(authz.agents_by_trust_domain(), compiled.plan.agents_by_trust_domain());
            for caller in 0..agents {
                assert_eq!(authz.agent_name(caller), compiled.topology.agents[caller].name);
                assert_eq!(authz.trust_domain_of(caller), compiled.plan.trust_domain_of(caller));
                assert!(
                    authz.callees(caller).eq(compiled.plan.calls_from(caller).iter().map(|call| call.callee))
                );
                for callee in 0..agents {
                    for action in &actions {
                        assert_eq!(
                            authz.allowed(caller, callee, action),
                            compiled.plan.allowed(caller, callee, action),
                            "{name}: {caller} -> {callee} {action}"
                        );
                    }
                    assert_eq!(
                        authz.reachable(caller, callee),
                        compiled.plan.reachable(caller, callee),
                        "{name}: {caller} -> {callee}"
                    );
                    assert_eq!(
                        authz.same_trust_domain(caller, callee),
                        compiled.plan.same_trust_domain(caller, callee)
                    );
                    assert_eq!(
                        authz.edge_actions(caller, callee).map(<[&str]>::to_vec),
                        compiled
                            .plan
                            .edge_actions(caller, callee)
                            .map(|actions| actions.iter().map(String::as_str).collect())
                    );
                }
            }
        }
    }
}
