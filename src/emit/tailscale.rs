//! The Tailscale tailnet policy of the mesh, `tailscale/policy.hujson`, written when
//! `networking.type` is `tailscale`.
//!
//! Every agent's tailnet device (the Tailscale operator's ingress proxy in front of it) carries its own
//! tag (`tag:<mesh>-<agent>`) and the shared tags of `networking.tailscale.tags`
//! ([`conventions::tailscale_tags`], the same function the Kubernetes Services' `tailscale.com/tags`
//! come from); an egress proxy carries the tags of the agents that dial through it
//! ([`crate::plan::tailnet`]). The policy holds:
//!
//! - `tagOwners`: every tag used anywhere in the file, owned by `networking.tailscale.tagOwners`. A tag
//!   named as an owner is declared too (owned by the admins, `[]`), and a group named as an owner is
//!   declared in `groups` without members, so that the file is complete on its own and fails closed
//!   until someone lists the group's members. On a named tailnet the operator (`tag:k8s-operator`)
//!   owns every tag too, since it creates the devices that carry them.
//! - `grants` (Tailscale's current policy syntax): exactly the pairs of DESIGN.md §4's `reachable`
//!   relation, on `mesh.port` over TCP (`ip: ["tcp:<port>"]`), plus the central Prometheus's access
//!   to each other site's Prometheus.
//! - `tests`: an accept for every declared call and, when `publicActions` is empty, a deny for a few
//!   pairs that are not reachable. Tailscale runs them on every policy change and refuses a policy
//!   that breaks one.
//!
//! # Staying linear in the number of agents
//!
//! Writing one rule per reachable pair would be quadratic: with public actions every agent reaches
//! every other, and with `allowSameTrustDomain` every agent reaches its whole trust domain. Instead:
//!
//! - When public actions make everything reachable, one grant lists every agent tag as source and as
//!   destination.
//! - With `allowSameTrustDomain`, one grant per trust domain lists that domain's agent tags as source and
//!   as destination.
//! - Every other declared call is granted by one grant per caller, with all its remaining callees as
//!   destinations.
//!
//! The file is therefore linear in agents plus declared calls. The group rules name agent tags rather
//! than a shared tag (or a new per-site or per-trust-domain tag): the shared tags are the operator's
//! and may be carried by devices outside the mesh, and Tailscale evaluates a test whose `src` is a
//! tag from the point of view of a node carrying only that tag, so the per-agent tests below can only
//! pass against rules that name agent tags. Hence no tag beyond the conventions is introduced, and the
//! sidecar needs to advertise nothing more.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

use super::conventions::{tailscale_agent_tag_of, tailscale_prometheus_tag, tailscale_tag};
use super::opa::{MeshAuthz, SharedAuthz};
use super::{EmitContext, Sink, Target, WEAVE_VERSION, prometheus};
use crate::model::NetworkKind;
use crate::plan::tailnet::OPERATOR_TAG;

pub const TARGET: Target =
    Target { name: "tailscale", description: "Tailscale tailnet policy", emit, split: None };

/// Where the policy is written, relative to the output directory.
pub const POLICY_PATH: &str = crate::plan::paths::TAILSCALE_POLICY;

/// How many unreachable peers the test of each agent asserts a deny for. A handful catches a rule that
/// grants too much without making the tests quadratic.
pub const DENY_TESTS_PER_AGENT: usize = 2;

/// The tailnet policy file, in the order its sections are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    #[serde(rename = "tagOwners")]
    pub tag_owners: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    pub grants: Vec<Grant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<PolicyTest>,
}

/// One entry of `grants`: `src` may open connections to every device of `dst` on the `ip`
/// protocols and ports (`tcp:8443`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub src: Vec<String>,
    pub dst: Vec<String>,
    pub ip: Vec<String>,
}

/// One entry of `tests`: from a node carrying `src`, every `accept` destination is reachable and no
/// `deny` destination is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyTest {
    pub src: String,
    pub proto: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// Whether the topology gets a tailnet policy.
pub fn applies(context: &EmitContext<'_>) -> bool {
    context.topology.networking.kind == NetworkKind::Tailscale
}

/// Everything the policy is rendered from, its inputs ([`super::inputs`]): the authorization
/// relations with each agent's name and trust domain ([`MeshAuthz`], the OPA files' inputs), the
/// port, the Prometheus servers' tags, and the tags and owners of `networking.tailscale`. A change
/// that leaves these alone (an agent's replicas, image or tier) leaves the policy as it is.
#[derive(Debug, Serialize)]
pub struct PolicyInputs<'a> {
    authz: SharedAuthz<'a>,
    port: u16,
    /// When the central Prometheus federates the others.
    prometheus: Option<PrometheusTags>,
    /// `networking.tailscale.tagOwners`, as written.
    owners: &'a [String],
    /// `networking.tailscale.tags`, as written.
    shared_tags: &'a [String],
    /// Whether the Tailscale operator makes the devices (`plan.tailnet`).
    operator: bool,
}

/// The Prometheus servers as the policy names them.
#[derive(Debug, Serialize)]
struct PrometheusTags {
    central: String,
    /// The other sites with agents, in site order.
    federated: Vec<String>,
    metrics_port: u16,
    /// The first agent of the first site that has agents: the central Prometheus's deny test.
    first_agent: Option<usize>,
}

impl<'a> PolicyInputs<'a> {
    pub fn of(context: &EmitContext<'a>) -> PolicyInputs<'a> {
        PolicyInputs::with(context, MeshAuthz::shared(context))
    }

    /// The inputs, the mesh's authorization given ([`MeshAuthz::of`] the context, digested).
    pub fn with(context: &EmitContext<'a>, authz: SharedAuthz<'a>) -> PolicyInputs<'a> {
        let topology = context.topology;
        let central = prometheus::applies(context).then(|| topology.central_metrics_site()).flatten();
        let prometheus = central.map(|central| PrometheusTags {
            central: tailscale_prometheus_tag(topology, central),
            federated: prometheus::federated_sites(topology)
                .map(|site| tailscale_prometheus_tag(topology, site))
                .collect(),
            metrics_port: topology.mesh.metrics_port,
            first_agent: topology.sites.iter().find_map(|site| site.agents.first().copied()),
        });
        let tailscale = &topology.networking.tailscale;
        PolicyInputs {
            authz,
            port: topology.mesh.port,
            prometheus,
            owners: &tailscale.tag_owners,
            shared_tags: &tailscale.tags,
            operator: context.plan.tailnet.is_some(),
        }
    }
}

/// The policy file's bytes: a comment header, then the policy as JSON (HuJSON is a superset of JSON).
pub fn render(context: &EmitContext<'_>) -> Vec<u8> {
    render_inputs(&PolicyInputs::of(context))
}

fn render_inputs(inputs: &PolicyInputs<'_>) -> Vec<u8> {
    let policy = policy(inputs);
    let mut bytes = header(inputs, &policy).into_bytes();
    // Serialized after the header, into the same buffer (the policy of a large mesh is many MB).
    serde_json::to_writer_pretty(&mut bytes, &policy).expect("plain data serializes to JSON");
    bytes.push(b'\n');
    bytes
}

/// The policy of the mesh (see the module documentation for its shape).
pub fn policy(inputs: &PolicyInputs<'_>) -> Policy {
    let authz = inputs.authz.get();
    let agent_tags: Vec<String> = (0..authz.agent_count())
        .map(|agent| tailscale_agent_tag_of(authz.mesh(), authz.agent_name(agent)))
        .collect();
    let mesh_port = inputs.port;
    let on_port = |agent: usize, port: u16| format!("{}:{port}", agent_tags[agent]);
    let allow_same_trust_domain = authz.allow_same_trust_domain();

    let mut grants = Vec::new();
    if authz.everything_reachable() {
        if !agent_tags.is_empty() {
            grants.push(Grant::tcp(agent_tags.clone(), agent_tags.clone(), mesh_port));
        }
    } else {
        if allow_same_trust_domain {
            for members in authz.agents_by_trust_domain().values() {
                if !members.is_empty() {
                    let tags: Vec<String> = members.iter().map(|&agent| agent_tags[agent].clone()).collect();
                    grants.push(Grant::tcp(tags.clone(), tags, mesh_port));
                }
            }
        }
        for (caller, caller_tag) in agent_tags.iter().enumerate() {
            let callees: Vec<String> = authz
                .callees(caller)
                .filter(|&callee| !(allow_same_trust_domain && authz.same_trust_domain(caller, callee)))
                .map(|callee| agent_tags[callee].clone())
                .collect();
            if !callees.is_empty() {
                grants.push(Grant::tcp(vec![caller_tag.clone()], callees, mesh_port));
            }
        }
    }

    let mut prometheus_tags = Vec::new();
    let mut tests = Vec::new();
    if let Some(prometheus) = &inputs.prometheus {
        let central_tag = prometheus.central.clone();
        prometheus_tags.push(central_tag.clone());
        let metrics_port = prometheus.metrics_port;
        let federated = &prometheus.federated;
        if !federated.is_empty() {
            grants.push(Grant::tcp(
                vec![central_tag.clone()],
                federated.clone(),
                prometheus::PROMETHEUS_PORT,
            ));
        }
        // The central Prometheus reaches each federated Prometheus, but no agent: each site's own
        // Prometheus scrapes its agents inside the cluster.
        let accept: Vec<String> =
            federated.iter().map(|tag| format!("{tag}:{}", prometheus::PROMETHEUS_PORT)).collect();
        let deny: Vec<String> = prometheus
            .first_agent
            .map(|agent| [on_port(agent, mesh_port), on_port(agent, metrics_port)])
            .into_iter()
            .flatten()
            .collect();
        if !accept.is_empty() || !deny.is_empty() {
            tests.push(PolicyTest::tcp(central_tag, accept, deny));
        }
        prometheus_tags.extend(federated.iter().cloned());
    }

    let sampler = UnreachableSampler::new(authz);
    let mut agent_tests = Vec::with_capacity(agent_tags.len());
    for (caller, caller_tag) in agent_tags.iter().enumerate() {
        let accept: Vec<String> = authz.callees(caller).map(|callee| on_port(callee, mesh_port)).collect();
        let deny: Vec<String> = sampler
            .sample(caller, DENY_TESTS_PER_AGENT)
            .into_iter()
            .map(|callee| on_port(callee, mesh_port))
            .collect();
        if !accept.is_empty() || !deny.is_empty() {
            agent_tests.push(PolicyTest::tcp(caller_tag.clone(), accept, deny));
        }
    }
    agent_tests.append(&mut tests);

    let (tag_owners, groups) = ownership(inputs, agent_tags.into_iter().chain(prometheus_tags));
    Policy { tag_owners, groups, grants, tests: agent_tests }
}

fn emit(context: &EmitContext<'_>, sink: &mut dyn Sink) -> io::Result<()> {
    if !applies(context) {
        return Ok(());
    }
    super::inputs::put(sink, POLICY_PATH.to_owned(), &PolicyInputs::of(context), render_inputs)
}

/// [`TARGET`]'s artifacts, the mesh's authorization given (the OPA files' as well:
/// `weave::emit_parallel` makes it once for both).
pub fn emit_with<'a>(
    context: &EmitContext<'a>,
    sink: &mut dyn Sink,
    authz: &SharedAuthz<'a>,
) -> io::Result<()> {
    if !applies(context) {
        return Ok(());
    }
    let inputs = PolicyInputs::with(context, authz.clone());
    super::inputs::put(sink, POLICY_PATH.to_owned(), &inputs, render_inputs)
}

impl Grant {
    fn tcp(src: Vec<String>, dst: Vec<String>, port: u16) -> Grant {
        Grant { src, dst, ip: vec![format!("tcp:{port}")] }
    }
}

impl PolicyTest {
    fn tcp(src: String, accept: Vec<String>, deny: Vec<String>) -> PolicyTest {
        PolicyTest { src, proto: "tcp".to_owned(), accept, deny }
    }
}

/// `tagOwners` and `groups`: every tag of the policy (the agents', the shared ones, the Prometheus
/// servers') owned by the configured owners, and on a named tailnet by the Tailscale operator, which
/// puts them on its proxies; the operator's own tag, and tags and groups named as owners, declared as
/// well.
fn ownership(
    inputs: &PolicyInputs<'_>,
    tags: impl Iterator<Item = String>,
) -> (BTreeMap<String, Vec<String>>, BTreeMap<String, Vec<String>>) {
    let configured: Vec<String> = inputs.owners.to_vec();
    let mut owners = configured.clone();
    let mut tag_owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if inputs.operator {
        if !owners.iter().any(|owner| owner == OPERATOR_TAG) {
            owners.push(OPERATOR_TAG.to_owned());
        }
        // A tag does not own itself.
        tag_owners.insert(
            OPERATOR_TAG.to_owned(),
            configured.iter().filter(|owner| *owner != OPERATOR_TAG).cloned().collect(),
        );
    }
    for tag in tags.chain(inputs.shared_tags.iter().map(|tag| tailscale_tag(tag))) {
        tag_owners.insert(tag, owners.clone());
    }
    let mut groups = BTreeMap::new();
    for owner in &configured {
        if owner.starts_with("tag:") && owner != OPERATOR_TAG {
            // An empty owner list is Tailscale's shorthand for the admins.
            tag_owners.entry(owner.clone()).or_default();
        } else if owner.starts_with("group:") {
            groups.insert(owner.clone(), Vec::new());
        }
    }
    (tag_owners, groups)
}

/// The comment block at the top of the file.
fn header(inputs: &PolicyInputs<'_>, policy: &Policy) -> String {
    let mesh = inputs.authz.get().mesh();
    let mut lines = vec![
        format!("Tailscale tailnet policy of the `{mesh}` agent mesh, compiled by weave {WEAVE_VERSION}."),
        String::new(),
        format!(
            "Each agent's device carries tag:{mesh}-<agent> and the mesh's shared tags. The grants allow exactly"
        ),
        format!("the agent-to-agent connections the topology makes reachable, on port {}/tcp.", inputs.port),
    ];
    if inputs.prometheus.is_some() {
        lines.push(format!(
            "The central Prometheus may federate each site's Prometheus (port {}/tcp).",
            prometheus::PROMETHEUS_PORT
        ));
    }
    lines.push(
        "Mutual TLS (SPIFFE) and OPA still decide every call: this is the network layer beneath them.".into(),
    );
    lines.push("Tailscale runs the tests on every change and refuses a policy that breaks one.".into());
    if !policy.groups.is_empty() {
        let names: Vec<&str> = policy.groups.keys().map(String::as_str).collect();
        lines.push(String::new());
        lines.push(
            "These tag owner groups are declared without members: list their members here, or merge".into(),
        );
        lines.push(format!(
            "this policy into the tailnet's own policy, which defines them: {}.",
            names.join(", ")
        ));
    }
    let mut text = String::new();
    for line in lines {
        text.push_str(if line.is_empty() { "//" } else { "// " });
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// Picks, for an agent, a few agents it cannot reach, in time proportional to its declared calls
/// rather than to the size of the mesh.
struct UnreachableSampler<'a> {
    authz: &'a MeshAuthz<'a>,
    /// Agent indices grouped by trust domain (then by index).
    order: Vec<usize>,
    /// For each agent: its position in `order` and the bounds of its trust domain's block there.
    place: Vec<(usize, usize, usize)>,
}

impl<'a> UnreachableSampler<'a> {
    fn new(authz: &'a MeshAuthz<'a>) -> UnreachableSampler<'a> {
        let count = authz.agent_count();
        let mut order: Vec<usize> = (0..count).collect();
        order.sort_by(|&left, &right| {
            authz.trust_domain_of(left).cmp(authz.trust_domain_of(right)).then(left.cmp(&right))
        });
        let mut place = vec![(0, 0, 0); count];
        let mut start = 0;
        while start < count {
            let trust_domain = authz.trust_domain_of(order[start]);
            let mut end = start;
            while end < count && authz.trust_domain_of(order[end]) == trust_domain {
                end += 1;
            }
            for (position, &agent) in order.iter().enumerate().take(end).skip(start) {
                place[agent] = (position, start, end);
            }
            start = end;
        }
        UnreachableSampler { authz, order, place }
    }

    /// Up to `limit` agents `caller` cannot reach, none when public actions make everything reachable.
    /// The scan skips the caller's own trust domain when that domain is reachable as a whole, so the
    /// only agents it passes over are declared callees.
    fn sample(&self, caller: usize, limit: usize) -> Vec<usize> {
        let authz = self.authz;
        let count = self.order.len();
        if authz.everything_reachable() || count == 0 {
            return Vec::new();
        }
        let (position, block_start, block_end) = self.place[caller];
        let (first, steps) = if authz.allow_same_trust_domain() {
            (block_end, count - (block_end - block_start))
        } else {
            (position + 1, count - 1)
        };
        let mut found = Vec::with_capacity(limit);
        for step in 0..steps {
            if found.len() == limit {
                break;
            }
            let candidate = self.order[(first + step) % count];
            if candidate != caller && !authz.reachable(caller, candidate) {
                found.push(candidate);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::Compiled;
    use crate::emit::conventions::tailscale_agent_tag;
    use crate::emit::test_support::compiled;

    /// Parses the file back the way Tailscale does: strip the `//` comment lines of the header, then
    /// read the rest as JSON.
    fn parse(bytes: &[u8]) -> Policy {
        let text = std::str::from_utf8(bytes).expect("policy is UTF-8");
        let body: String = text.lines().filter(|line| !line.starts_with("//")).collect::<Vec<_>>().join("\n");
        serde_json::from_str(&body).expect("policy body is JSON")
    }

    fn render_policy(compiled: &Compiled) -> Policy {
        let context = EmitContext::of(compiled);
        parse(&render(&context))
    }

    /// Whether a node carrying exactly `src_tag` may reach `dst_tag:port` under the policy's grants.
    fn allows(policy: &Policy, src_tag: &str, dst_tag: &str, port: u16) -> bool {
        let ip = format!("tcp:{port}");
        policy.grants.iter().any(|grant| {
            grant.src.iter().any(|src| src == src_tag)
                && grant.dst.iter().any(|dst| dst == dst_tag)
                && grant.ip.contains(&ip)
        })
    }

    fn mesh_grants(policy: &Policy) -> Vec<&Grant> {
        policy.grants.iter().filter(|grant| grant.ip == ["tcp:8443"]).collect()
    }

    const SMALL: &str = r#"
mesh: { name: mesh }
sites:
  east:
    provider: aws
    region: us-east-1
    trustDomain: east.example.org
    agents:
      - name: planner
        capabilities: [plan]
        calls:
          - { agent: searcher, actions: [search] }
          - { agent: ranker, actions: [rank] }
      - name: ranker
        capabilities: [rank]
  west:
    provider: gcp
    region: us-west1
    trustDomain: west.example.org
    agents:
      - name: searcher
        capabilities: [search]
        calls:
          - { agent: ranker, actions: [rank] }
      - name: idle
        capabilities: [idle]
federation:
  enabled: true
  bundleEndpoints:
    east: https://spire-east.example.org:8443
    west: https://spire-west.example.org:8443
networking:
  type: tailscale
  tailscale:
    tailnet: example
    tags: [mesh, production]
    tagOwners: [ops@example.org, "group:sre", "tag:k8s-operator"]
authorization:
  allowSameTrustDomain: false
  publicActions: []
observability:
  metrics: { enabled: true, central: east }
"#;

    #[test]
    fn allows_exactly_the_reachable_pairs_without_public_actions() {
        let compiled = compiled(SMALL);
        let policy = render_policy(&compiled);
        let topology = &compiled.topology;
        for (caller, caller_agent) in topology.agents.iter().enumerate() {
            for (callee, callee_agent) in topology.agents.iter().enumerate() {
                let expected = compiled.plan.reachable(caller, callee);
                let actual = allows(
                    &policy,
                    &tailscale_agent_tag(topology, caller_agent),
                    &tailscale_agent_tag(topology, callee_agent),
                    topology.mesh.port,
                );
                assert_eq!(actual, expected, "{} -> {}", caller_agent.name, callee_agent.name);
            }
        }
        // Declared edges only: planner → searcher, planner → ranker, searcher → ranker.
        assert!(allows(&policy, "tag:mesh-planner", "tag:mesh-searcher", 8443));
        assert!(!allows(&policy, "tag:mesh-searcher", "tag:mesh-planner", 8443));
        assert!(!allows(&policy, "tag:mesh-planner", "tag:mesh-searcher", 9090));
    }

    #[test]
    fn every_tag_is_owned_and_every_agent_is_in_the_policy() {
        let compiled = compiled(SMALL);
        let policy = render_policy(&compiled);
        let topology = &compiled.topology;
        for agent in &topology.agents {
            let tag = tailscale_agent_tag(topology, agent);
            // The operator owns every tag it puts on its proxies.
            assert_eq!(policy.tag_owners[&tag], ["ops@example.org", "group:sre", "tag:k8s-operator"]);
        }
        for tag in ["tag:mesh", "tag:production", "tag:mesh-prometheus-east", "tag:mesh-prometheus-west"] {
            assert!(policy.tag_owners.contains_key(tag), "{tag} has no owners");
        }
        assert_eq!(policy.tag_owners["tag:k8s-operator"], ["ops@example.org", "group:sre"]);
        assert_eq!(policy.groups.keys().collect::<Vec<_>>(), ["group:sre"]);
        let used = policy
            .grants
            .iter()
            .flat_map(|grant| grant.src.iter().chain(&grant.dst))
            .chain(
                policy
                    .tests
                    .iter()
                    .flat_map(|test| std::iter::once(&test.src).chain(&test.accept).chain(&test.deny)),
            )
            .map(|entry| match entry.rsplit_once(':') {
                Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host.to_owned(),
                _ => entry.clone(),
            });
        for tag in used {
            assert!(policy.tag_owners.contains_key(&tag), "{tag} is used but has no owners");
        }
    }

    #[test]
    fn tests_agree_with_the_grants() {
        let compiled = compiled(SMALL);
        let policy = render_policy(&compiled);
        let declared: usize =
            (0..compiled.topology.agents.len()).map(|agent| compiled.plan.calls_from(agent).len()).sum();
        let mut accepts = 0;
        let mut denies = 0;
        for test in &policy.tests {
            for (destinations, expected) in [(&test.accept, true), (&test.deny, false)] {
                for destination in destinations {
                    let (tag, port) = destination.rsplit_once(':').expect("host:port");
                    let port: u16 = port.parse().expect("numeric port");
                    assert_eq!(
                        allows(&policy, &test.src, tag, port),
                        expected,
                        "{} -> {destination}",
                        test.src
                    );
                    if test.src.starts_with("tag:mesh-prometheus") {
                        continue;
                    }
                    if expected {
                        accepts += 1;
                    } else {
                        denies += 1;
                    }
                }
            }
        }
        assert_eq!(accepts, declared, "one accept per declared call");
        assert!(denies > 0, "unreachable pairs are asserted");
    }

    #[test]
    fn central_prometheus_reaches_federated_servers_and_no_agent() {
        let compiled = compiled(SMALL);
        let policy = render_policy(&compiled);
        for agent in &compiled.topology.agents {
            let tag = tailscale_agent_tag(&compiled.topology, agent);
            assert!(!allows(&policy, "tag:mesh-prometheus-east", &tag, 9090));
            assert!(!allows(&policy, "tag:mesh-prometheus-east", &tag, 8443));
        }
        assert!(allows(&policy, "tag:mesh-prometheus-east", "tag:mesh-prometheus-west", 9090));
        assert!(!allows(&policy, "tag:mesh-prometheus-west", "tag:mesh-prometheus-east", 9090));
    }

    #[test]
    fn same_trust_domain_is_one_rule_per_domain() {
        let text = SMALL.replace("allowSameTrustDomain: false", "allowSameTrustDomain: true");
        let compiled = compiled(&text);
        let policy = render_policy(&compiled);
        let topology = &compiled.topology;
        for (caller, caller_agent) in topology.agents.iter().enumerate() {
            for (callee, callee_agent) in topology.agents.iter().enumerate() {
                assert_eq!(
                    allows(
                        &policy,
                        &tailscale_agent_tag(topology, caller_agent),
                        &tailscale_agent_tag(topology, callee_agent),
                        8443
                    ),
                    compiled.plan.reachable(caller, callee),
                    "{} -> {}",
                    caller_agent.name,
                    callee_agent.name
                );
            }
        }
        // Two trust-domain rules, then planner's cross-domain call to searcher and searcher's to ranker.
        let mesh_rules = mesh_grants(&policy);
        assert_eq!(mesh_rules.len(), 4);
        assert_eq!(mesh_rules[2].src, ["tag:mesh-planner"]);
        assert_eq!(mesh_rules[2].dst, ["tag:mesh-searcher"]);
    }

    #[test]
    fn public_actions_make_one_rule_and_no_denies() {
        let text = SMALL.replace("publicActions: []", "publicActions: [ping]");
        let compiled = compiled(&text);
        let policy = render_policy(&compiled);
        let mesh_rules = mesh_grants(&policy);
        assert_eq!(mesh_rules.len(), 1);
        assert_eq!(mesh_rules[0].src.len(), compiled.topology.agents.len());
        assert_eq!(mesh_rules[0].dst.len(), compiled.topology.agents.len());
        let agent_denies = policy
            .tests
            .iter()
            .filter(|test| !test.src.starts_with("tag:mesh-prometheus"))
            .flat_map(|test| &test.deny)
            .count();
        assert_eq!(agent_denies, 0);
    }

    #[test]
    fn unreachable_samples_are_unreachable_and_bounded() {
        for allow in ["false", "true"] {
            let text =
                SMALL.replace("allowSameTrustDomain: false", &format!("allowSameTrustDomain: {allow}"));
            let compiled = compiled(&text);
            let context = EmitContext::of(&compiled);
            let authz = MeshAuthz::of(&context);
            let sampler = UnreachableSampler::new(&authz);
            for caller in 0..compiled.topology.agents.len() {
                let sample = sampler.sample(caller, DENY_TESTS_PER_AGENT);
                assert!(sample.len() <= DENY_TESTS_PER_AGENT);
                let distinct: BTreeSet<usize> = sample.iter().copied().collect();
                assert_eq!(distinct.len(), sample.len());
                for callee in sample {
                    assert!(!compiled.plan.reachable(caller, callee));
                }
                let unreachable = (0..compiled.topology.agents.len())
                    .filter(|&callee| callee != caller && !compiled.plan.reachable(caller, callee))
                    .count();
                assert_eq!(
                    sampler.sample(caller, DENY_TESTS_PER_AGENT).len(),
                    unreachable.min(DENY_TESTS_PER_AGENT)
                );
            }
        }
    }

    #[test]
    fn header_is_a_comment_and_output_is_deterministic() {
        let compiled = compiled(SMALL);
        let context = EmitContext::of(&compiled);
        let first = render(&context);
        assert_eq!(first, render(&context));
        let text = String::from_utf8(first).expect("UTF-8");
        assert!(text.starts_with("// Tailscale tailnet policy of the `mesh` agent mesh"));
        assert!(text.contains("which defines them: group:sre.\n"));
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn no_policy_without_tailscale() {
        let text = SMALL.replace("type: tailscale", "type: istio");
        let compiled = compiled(&text);
        let context = EmitContext::of(&compiled);
        let mut sink = crate::emit::MemorySink::default();
        emit(&context, &mut sink).expect("memory sink");
        assert!(sink.artifacts.is_empty());
    }
}
