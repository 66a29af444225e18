//! Property tests of the whole pipeline over generated topologies.
//!
//! The generator builds meshes the way users write them: one to four sites in the general form or the
//! seed's shorthand, with providers, regions and trust domains; agents with capabilities, calls to
//! other agents and fallbacks; federation on or off with `all` or listed pairs; each networking type;
//! public actions and `allowSameTrustDomain`. A *coherent* topology follows every rule of DESIGN.md §5
//! by construction; an *arbitrary* one may also carry a few faults (a wrong type, an unknown key, a
//! bad name, a dangling reference, an unfederated call, ...). The properties:
//!
//! 1. analysis never panics, and every diagnostic points into the text and says how to fix it;
//! 2. a topology without errors builds: every emitter runs, every artifact path is safe and every
//!    artifact parses back with its consumer's grammar (and a coherent topology has no errors);
//! 3. the same text analyzes and builds to the same diagnostics and bytes twice;
//! 4. a build into the output of a slightly different topology (one change: an agent's replicas,
//!    tier or calls, a site's provider, nodes, spot pool or trust domain, the networking, ...)
//!    leaves exactly what a build from scratch writes, the files it keeps without rendering them
//!    included.
//!
//! Each property runs 64 cases unless `PROPTEST_CASES` says otherwise, so `cargo test` stays quick;
//! `PROPTEST_CASES=5000 cargo test --release --test it properties::` searches harder.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::{Index, subsequence};
use serde_json::{Map, Value, json};
use weave::diagnostics::Diagnostic;
use weave::emit::MemorySink;
use weave::load::Limits;
use weave::source::Source;

/// The actions agents serve and call.
const ACTIONS: &[&str] = &["search", "process", "orchestrate", "summarize"];
/// Actions that may be made public (callable by every mesh member).
const PUBLIC_ACTIONS: &[&str] = &["ping", "health_check", "status"];
/// Trust domains sites choose from.
const TRUST_DOMAINS: &[&str] = &["aws.company.com", "gcp.company.com", "example.org"];
/// Each provider with a region it has.
const PROVIDERS: &[(&str, &str)] = &[
    ("aws", "us-east-1"),
    ("gcp", "us-central1"),
    ("azure", "eastus"),
    ("onprem", "dc-1"),
    ("oracle", "us-ashburn-1"),
    ("ibm", "us-south"),
];

/// The cases of each property: 64 by default, `PROPTEST_CASES` when set.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

#[derive(Debug, Clone)]
struct SitePlan {
    provider: usize,
    /// Written as the top-level `aws:`/`gcp:`/`azure:` block when the provider has one and no
    /// earlier site took that name.
    shorthand: bool,
    trust_domain: usize,
    nodes: u32,
    spot: bool,
    write_region: bool,
    agents: Vec<AgentPlan>,
}

#[derive(Debug, Clone)]
struct AgentPlan {
    replicas: u32,
    capabilities: Vec<&'static str>,
    /// (callee, which of the callee's capabilities): reduced modulo the agents that exist.
    calls: Vec<(Index, Vec<bool>)>,
    fallback: Option<Index>,
    edge_tier: bool,
}

#[derive(Debug, Clone)]
struct MeshPlan {
    sites: Vec<SitePlan>,
    federation_enabled: bool,
    /// `None`: `pairs: all`; otherwise extra listed pairs beside the ones calls need.
    listed_pairs: Option<Vec<(Index, Index)>>,
    https_spiffe: bool,
    networking: usize,
    public_actions: Vec<&'static str>,
    allow_same_trust_domain: bool,
    metrics_central: Index,
    /// Metrics switched off (only by [`Change::Metrics`]).
    metrics_off: bool,
    /// The mesh renamed (only by [`Change::MeshName`]).
    mesh_renamed: bool,
    /// The site whose bundle endpoint moved to another host (only by [`Change::BundleEndpoint`]).
    moved_endpoint: Option<usize>,
    min_available: bool,
    region_template: bool,
    declare_trust_domains: bool,
}

/// Faults an arbitrary topology may carry; each names what it breaks.
#[derive(Debug, Clone, Copy)]
enum Fault {
    WrongType,
    UnknownKey,
    BadAgentName,
    UnknownCallee,
    BadTrustDomain,
    UnfederatedCall,
    BadNetworkingType,
    MissingTrustDomain,
    DuplicateAgent,
    PortOutOfRange,
    NullSection,
    WrongBundlePort,
    EmptyActions,
    SameSiteFallback,
    HighMinAvailable,
    DeclaredDomainTypo,
    OverlappingPodCidrs,
    InlineSecret,
    NonAsciiValues,
}

fn agent_plan() -> impl Strategy<Value = AgentPlan> {
    (
        1u32..=4,
        subsequence(ACTIONS, 0..=3),
        prop::collection::vec((any::<Index>(), prop::collection::vec(any::<bool>(), ACTIONS.len())), 0..=3),
        prop::option::weighted(0.3, any::<Index>()),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(replicas, capabilities, calls, fallback, edge_tier)| AgentPlan {
            replicas,
            capabilities,
            calls,
            fallback,
            edge_tier,
        })
}

fn site_plan() -> impl Strategy<Value = SitePlan> {
    (
        0..PROVIDERS.len(),
        any::<bool>(),
        0..TRUST_DOMAINS.len(),
        1u32..=5,
        any::<bool>(),
        prop::bool::weighted(0.8),
        prop::collection::vec(agent_plan(), 0..=3),
    )
        .prop_map(|(provider, shorthand, trust_domain, nodes, spot, write_region, agents)| SitePlan {
            provider,
            shorthand,
            trust_domain,
            nodes,
            spot,
            write_region,
            agents,
        })
}

fn mesh_plan() -> impl Strategy<Value = MeshPlan> {
    (
        prop::collection::vec(site_plan(), 1..=4),
        any::<bool>(),
        prop::option::of(prop::collection::vec((any::<Index>(), any::<Index>()), 0..=2)),
        any::<bool>(),
        0usize..3,
        subsequence(PUBLIC_ACTIONS, 0..=3),
        any::<bool>(),
        any::<Index>(),
        any::<bool>(),
        prop::bool::weighted(0.2),
        any::<bool>(),
    )
        .prop_map(
            |(
                sites,
                federation_enabled,
                listed_pairs,
                https_spiffe,
                networking,
                public_actions,
                allow_same_trust_domain,
                metrics_central,
                min_available,
                region_template,
                declare_trust_domains,
            )| MeshPlan {
                sites,
                federation_enabled,
                listed_pairs,
                https_spiffe,
                networking,
                public_actions,
                allow_same_trust_domain,
                metrics_central,
                metrics_off: false,
                mesh_renamed: false,
                moved_endpoint: None,
                min_available,
                region_template,
                declare_trust_domains,
            },
        )
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::WrongType),
        Just(Fault::UnknownKey),
        Just(Fault::BadAgentName),
        Just(Fault::UnknownCallee),
        Just(Fault::BadTrustDomain),
        Just(Fault::UnfederatedCall),
        Just(Fault::BadNetworkingType),
        Just(Fault::MissingTrustDomain),
        Just(Fault::DuplicateAgent),
        Just(Fault::PortOutOfRange),
        Just(Fault::NullSection),
        Just(Fault::WrongBundlePort),
        Just(Fault::EmptyActions),
        Just(Fault::SameSiteFallback),
        Just(Fault::HighMinAvailable),
        Just(Fault::DeclaredDomainTypo),
        Just(Fault::OverlappingPodCidrs),
        Just(Fault::InlineSecret),
        Just(Fault::NonAsciiValues),
    ]
}

/// One agent as laid out in the mesh: its name, site and capabilities.
struct Placed<'a> {
    name: String,
    site: usize,
    plan: &'a AgentPlan,
}

/// Turns a plan into the topology's JSON, following every rule: calls only to served actions and
/// only between trusted domains, bundle endpoints for every site, a shared CA where a domain spans
/// sites, distinct pod CIDRs, fallbacks in other sites that serve at least as much.
fn coherent(plan: &MeshPlan) -> Value {
    // Site names: the provider's shorthand key once, `<provider>-<n>` otherwise.
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let site_names: Vec<String> = plan
        .sites
        .iter()
        .enumerate()
        .map(|(position, site)| {
            let provider = PROVIDERS[site.provider].0;
            let shorthand = matches!(provider, "aws" | "gcp" | "azure") && site.shorthand;
            let name = if shorthand && !taken.contains(provider) {
                provider.to_owned()
            } else {
                format!("{provider}-{position}")
            };
            taken.insert(name.clone());
            name
        })
        .collect();
    let mut placed: Vec<Placed<'_>> = Vec::new();
    for (site_position, site) in plan.sites.iter().enumerate() {
        for agent in &site.agents {
            placed.push(Placed { name: format!("agent-{}", placed.len()), site: site_position, plan: agent });
        }
    }
    let domain_of_site = |site: usize| TRUST_DOMAINS[plan.sites[site].trust_domain];
    let used_domains: BTreeSet<&str> = (0..plan.sites.len()).map(domain_of_site).collect();
    let federation_enabled = plan.federation_enabled && used_domains.len() > 1;

    // Calls, kept only where the callee serves something picked and the domains trust each other.
    let mut calls_of: Vec<Vec<(usize, Vec<&str>)>> = vec![Vec::new(); placed.len()];
    let mut crossing_pairs: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (caller, agent) in placed.iter().enumerate() {
        for (callee_index, picks) in &agent.plan.calls {
            let callee = callee_index.index(placed.len());
            if callee == caller || calls_of[caller].iter().any(|(existing, _)| *existing == callee) {
                continue;
            }
            let actions: Vec<&str> = placed[callee]
                .plan
                .capabilities
                .iter()
                .zip(picks)
                .filter(|(_, picked)| **picked)
                .map(|(action, _)| *action)
                .collect();
            if actions.is_empty() {
                continue;
            }
            let (from, to) = (domain_of_site(agent.site), domain_of_site(placed[callee].site));
            if from != to {
                if !federation_enabled {
                    continue;
                }
                crossing_pairs.insert(if from < to { (from, to) } else { (to, from) });
            }
            calls_of[caller].push((callee, actions));
        }
    }

    let mut sites_json: Map<String, Value> = Map::new();
    let mut shorthand_json: Map<String, Value> = Map::new();
    let mut agents_of_site: Vec<Vec<Value>> = vec![Vec::new(); plan.sites.len()];
    for (position, agent) in placed.iter().enumerate() {
        let mut json = Map::new();
        json.insert("name".into(), json!(agent.name));
        json.insert("replicas".into(), json!(agent.plan.replicas));
        if !agent.plan.capabilities.is_empty() {
            json.insert("capabilities".into(), json!(agent.plan.capabilities));
        }
        if !calls_of[position].is_empty() {
            let calls: Vec<Value> = calls_of[position]
                .iter()
                .map(|(callee, actions)| json!({"agent": placed[*callee].name, "actions": actions}))
                .collect();
            json.insert("calls".into(), Value::Array(calls));
        }
        if let Some(fallback_index) = &agent.plan.fallback {
            let candidate = fallback_index.index(placed.len());
            let target = &placed[candidate];
            let serves_all =
                agent.plan.capabilities.iter().all(|action| target.plan.capabilities.contains(action));
            if target.site != agent.site && serves_all {
                json.insert("fallback".into(), json!(target.name));
            }
        }
        if agent.plan.edge_tier {
            json.insert("tier".into(), json!("edge"));
        }
        agents_of_site[agent.site].push(Value::Object(json));
    }
    for (position, site) in plan.sites.iter().enumerate() {
        let (provider, region) = PROVIDERS[site.provider];
        let mut json = Map::new();
        let name = &site_names[position];
        let is_shorthand = name == provider;
        if !is_shorthand {
            json.insert("provider".into(), json!(provider));
        }
        if site.write_region || provider != "onprem" {
            json.insert("region".into(), json!(region));
        }
        json.insert("trustDomain".into(), json!(domain_of_site(position)));
        let mut cluster = Map::new();
        cluster.insert("nodes".into(), json!(site.nodes));
        cluster.insert("spot".into(), json!(site.spot));
        if plan.networking == 1 {
            cluster.insert("podCidr".into(), json!(format!("10.{position}.0.0/16")));
            cluster.insert("ingressCidr".into(), json!(format!("172.16.{position}.0/24")));
        }
        json.insert("cluster".into(), Value::Object(cluster));
        json.insert("agents".into(), Value::Array(std::mem::take(&mut agents_of_site[position])));
        if is_shorthand {
            shorthand_json.insert(name.clone(), Value::Object(json));
        } else {
            sites_json.insert(name.clone(), Value::Object(json));
        }
    }

    let mut root = Map::new();
    root.insert(
        "mesh".into(),
        json!({
            "name": if plan.mesh_renamed { "mesh-b" } else { "mesh" },
            "namespace": "agents",
            "image": "registry.example.com/agent:1.2.3",
        }),
    );
    if plan.region_template {
        root.insert(
            "identity".into(),
            json!({"idTemplate": "spiffe://{trustDomain}/region/{provider}-{region}/{name}"}),
        );
    }
    if plan.declare_trust_domains {
        root.insert("global".into(), json!({"trustDomains": used_domains}));
    }
    root.extend(shorthand_json);
    if !sites_json.is_empty() {
        root.insert("sites".into(), Value::Object(sites_json));
    }
    if federation_enabled {
        let endpoints: Map<String, Value> = site_names
            .iter()
            .enumerate()
            .map(|(position, name)| {
                let host =
                    if plan.moved_endpoint == Some(position) { "moved.example.com" } else { "example.com" };
                (name.clone(), json!(format!("https://spire-{name}.{host}:8443")))
            })
            .collect();
        let mut federation = json!({
            "enabled": true,
            "profile": if plan.https_spiffe { "https_spiffe" } else { "https_web" },
            "bundleEndpoints": endpoints,
        });
        if let Some(extra) = &plan.listed_pairs {
            let domains: Vec<&str> = used_domains.iter().copied().collect();
            let mut pairs = crossing_pairs.clone();
            for (left, right) in extra {
                let (left, right) = (domains[left.index(domains.len())], domains[right.index(domains.len())]);
                if left != right {
                    pairs.insert(if left < right { (left, right) } else { (right, left) });
                }
            }
            if !pairs.is_empty() {
                let listed: Vec<Value> = pairs.iter().map(|(left, right)| json!([left, right])).collect();
                federation["pairs"] = Value::Array(listed);
            }
        }
        root.insert("federation".into(), federation);
    }
    let shared_domain = used_domains.len() < plan.sites.len();
    let mut spire = json!({"datastore": {"type": "postgres", "connectionSecret": "spire-db"}});
    if shared_domain {
        spire["upstreamAuthority"] = json!("vault");
        spire["vault"] = json!({"address": "https://vault.example.com:8200"});
    }
    root.insert("spire".into(), spire);
    root.insert(
        "networking".into(),
        match plan.networking {
            0 => json!({"type": "tailscale", "tailscale": {
                "enabled": true, "authKeySecret": "tailscale-auth", "tailnet": "example",
                "tags": ["mesh", "production"], "tagOwners": ["admin@example.com"]}}),
            1 => json!({"type": "vpn"}),
            _ => json!({"type": "istio", "istio": {"meshId": "mesh-1"}}),
        },
    );
    root.insert(
        "authorization".into(),
        json!({"allowSameTrustDomain": plan.allow_same_trust_domain, "publicActions": plan.public_actions}),
    );
    let central = &site_names[plan.metrics_central.index(site_names.len())];
    root.insert(
        "observability".into(),
        json!({
            "logging": {"level": "INFO", "format": "json"},
            "metrics": {"enabled": !plan.metrics_off, "central": central, "scrapeInterval": "15s", "federateInterval": "30s"},
            "tracing": {"enabled": true, "endpoint": "otel-collector.example.com:4317"},
        }),
    );
    if plan.min_available {
        root.insert("resilience".into(), json!({"minAvailable": 1, "zoneMaxSkew": 1}));
    }
    Value::Object(root)
}

/// The agents of a topology's JSON, wherever they are written.
fn agents_mut(root: &mut Value) -> Vec<&mut Value> {
    let mut agents = Vec::new();
    let Some(object) = root.as_object_mut() else { return agents };
    for (key, value) in object.iter_mut() {
        let sites: Vec<&mut Value> = match key.as_str() {
            "aws" | "gcp" | "azure" => vec![value],
            "sites" => value.as_object_mut().map(|sites| sites.values_mut().collect()).unwrap_or_default(),
            _ => continue,
        };
        for site in sites {
            if let Some(list) = site.get_mut("agents").and_then(Value::as_array_mut) {
                agents.extend(list.iter_mut());
            }
        }
    }
    agents
}

/// The sites of a topology's JSON, wherever they are written.
fn sites_mut(root: &mut Value) -> Vec<&mut Value> {
    let Some(object) = root.as_object_mut() else { return Vec::new() };
    let mut sites = Vec::new();
    for (key, value) in object.iter_mut() {
        match key.as_str() {
            "aws" | "gcp" | "azure" => sites.push(value),
            "sites" => sites.extend(value.as_object_mut().into_iter().flat_map(|sites| sites.values_mut())),
            _ => {}
        }
    }
    sites
}

/// Breaks a coherent topology in one way. `pick` chooses where, when there is a choice.
fn apply_fault(root: &mut Value, fault: Fault, pick: &Index) {
    match fault {
        Fault::WrongType => {
            let mut agents = agents_mut(root);
            if !agents.is_empty() {
                let position = pick.index(agents.len());
                agents[position]["replicas"] = json!("three");
            } else {
                root["mesh"]["port"] = json!("8443");
            }
        }
        Fault::UnknownKey => {
            let mut agents = agents_mut(root);
            if !agents.is_empty() {
                let position = pick.index(agents.len());
                agents[position]["replica"] = json!(2);
            } else {
                root["sitez"] = json!({});
            }
        }
        Fault::BadAgentName => {
            let mut agents = agents_mut(root);
            if !agents.is_empty() {
                let position = pick.index(agents.len());
                agents[position]["name"] = json!("Bad_Name/..");
            }
        }
        Fault::UnknownCallee => {
            let mut agents = agents_mut(root);
            if !agents.is_empty() {
                let position = pick.index(agents.len());
                agents[position]["calls"] = json!([{"agent": "ghost", "actions": ["search"]}]);
            }
        }
        Fault::BadTrustDomain => {
            let mut sites = sites_mut(root);
            let position = pick.index(sites.len().max(1));
            if let Some(site) = sites.get_mut(position) {
                site["trustDomain"] = json!("spiffe://Bad.Domain");
            }
        }
        Fault::UnfederatedCall => {
            root["federation"] = json!({"enabled": false});
            let names: Vec<String> = agents_mut(root)
                .iter()
                .filter_map(|agent| agent["name"].as_str().map(str::to_owned))
                .collect();
            let mut agents = agents_mut(root);
            if let Some(first) = names.first() {
                agents[0]["capabilities"] = json!(["search"]);
                let last_position = agents.len() - 1;
                agents[last_position]["calls"] = json!([{"agent": first, "actions": ["search"]}]);
            }
            let mut sites = sites_mut(root);
            for (position, site) in sites.iter_mut().enumerate() {
                site["trustDomain"] = json!(format!("domain{position}.example.com"));
            }
        }
        Fault::BadNetworkingType => root["networking"]["type"] = json!("carrier-pigeon"),
        Fault::MissingTrustDomain => {
            let mut sites = sites_mut(root);
            let position = pick.index(sites.len().max(1));
            if let Some(site) = sites.get_mut(position).and_then(|site| site.as_object_mut()) {
                site.remove("trustDomain");
            }
        }
        Fault::DuplicateAgent => {
            let mut agents = agents_mut(root);
            if agents.len() >= 2 {
                let name = agents[0]["name"].clone();
                let position = 1 + pick.index(agents.len() - 1);
                agents[position]["name"] = name;
            }
        }
        Fault::PortOutOfRange => root["mesh"]["port"] = json!(70000),
        Fault::NullSection => {
            let sections = ["mesh", "networking", "authorization", "observability", "spire", "federation"];
            root[sections[pick.index(sections.len())]] = Value::Null;
        }
        Fault::WrongBundlePort => root["spire"]["bundlePort"] = json!(9443),
        Fault::EmptyActions => {
            let mut agents = agents_mut(root);
            if let Some(agent) = agents.iter_mut().find(|agent| agent.get("calls").is_some()) {
                agent["calls"][0]["actions"] = json!([]);
            }
        }
        Fault::SameSiteFallback => {
            for site in sites_mut(root) {
                if let Some(agents) = site.get_mut("agents").and_then(Value::as_array_mut)
                    && agents.len() >= 2
                {
                    let name = agents[1]["name"].clone();
                    agents[0]["fallback"] = name;
                    break;
                }
            }
        }
        Fault::HighMinAvailable => root["resilience"] = json!({"minAvailable": 4}),
        Fault::DeclaredDomainTypo => root["global"] = json!({"trustDomains": ["az.company.com"]}),
        Fault::OverlappingPodCidrs => {
            root["networking"] = json!({"type": "vpn"});
            for site in sites_mut(root) {
                site["cluster"]["podCidr"] = json!("10.0.0.0/8");
            }
        }
        Fault::NonAsciiValues => {
            // Free-form values outside ASCII reach every emitter unchanged (no check constrains
            // them); each artifact must still be well-formed.
            for site in sites_mut(root) {
                site["region"] = json!("us-éast-1");
                site["cluster"]["nodeType"] = json!("t3.médium");
            }
            root["mesh"]["image"] = json!("registry.example.com/agënt:1.0");
            root["observability"]["tracing"]["endpoint"] = json!("otel-collector.exämple.com:4317");
        }
        Fault::InlineSecret => {
            root["spire"]["datastore"]["connectionSecret"] = json!("postgresql://spire:S3cret@db:5432/spire");
        }
    }
}

/// One change to a mesh, as a user makes between two builds.
#[derive(Debug, Clone, Copy)]
enum Change {
    Replicas,
    EdgeTier,
    DropCalls,
    Capabilities,
    Provider,
    Nodes,
    Spot,
    TrustDomain,
    RemoveAgent,
    Networking,
    MinAvailable,
    MetricsCentral,
    Metrics,
    MeshName,
    BundleEndpoint,
    Federation,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        Just(Change::Replicas),
        Just(Change::EdgeTier),
        Just(Change::DropCalls),
        Just(Change::Capabilities),
        Just(Change::Provider),
        Just(Change::Nodes),
        Just(Change::Spot),
        Just(Change::TrustDomain),
        Just(Change::RemoveAgent),
        Just(Change::Networking),
        Just(Change::MinAvailable),
        Just(Change::MetricsCentral),
        Just(Change::Metrics),
        Just(Change::MeshName),
        Just(Change::BundleEndpoint),
        Just(Change::Federation),
    ]
}

/// `plan` with one change, made to the site and agent `pick` chooses.
fn changed(plan: &MeshPlan, change: Change, pick: &Index) -> MeshPlan {
    let mut plan = plan.clone();
    let site = pick.index(plan.sites.len());
    let site = &mut plan.sites[site];
    let agent = (!site.agents.is_empty()).then(|| pick.index(site.agents.len()));
    match (change, agent) {
        (Change::Replicas, Some(agent)) => site.agents[agent].replicas = site.agents[agent].replicas % 4 + 1,
        (Change::EdgeTier, Some(agent)) => site.agents[agent].edge_tier = !site.agents[agent].edge_tier,
        (Change::DropCalls, Some(agent)) => site.agents[agent].calls.clear(),
        (Change::Capabilities, Some(agent)) => {
            let capabilities = &mut site.agents[agent].capabilities;
            if capabilities.pop().is_none() {
                capabilities.push(ACTIONS[0]);
            }
        }
        (Change::RemoveAgent, Some(agent)) => {
            site.agents.remove(agent);
        }
        (Change::Provider, _) => site.provider = (site.provider + 1) % PROVIDERS.len(),
        (Change::Nodes, _) => site.nodes = site.nodes % 5 + 1,
        (Change::Spot, _) => site.spot = !site.spot,
        (Change::TrustDomain, _) => site.trust_domain = (site.trust_domain + 1) % TRUST_DOMAINS.len(),
        (Change::Networking, _) => plan.networking = (plan.networking + 1) % 3,
        (Change::MinAvailable, _) => plan.min_available = !plan.min_available,
        // The central Prometheus moves to the chosen site (the same one, sometimes: no change).
        (Change::MetricsCentral, _) => plan.metrics_central = *pick,
        (Change::Metrics, _) => plan.metrics_off = !plan.metrics_off,
        (Change::MeshName, _) => plan.mesh_renamed = !plan.mesh_renamed,
        (Change::BundleEndpoint, _) => plan.moved_endpoint = Some(pick.index(plan.sites.len())),
        (Change::Federation, _) => plan.federation_enabled = !plan.federation_enabled,
        // A change to an agent of a site without agents: an agent appears instead.
        (_, None) => site.agents.push(AgentPlan {
            replicas: 1,
            capabilities: vec![ACTIONS[0]],
            calls: Vec::new(),
            fallback: None,
            edge_tier: false,
        }),
    }
    plan
}

/// Two coherent topologies as YAML text, the second the first with one change.
fn changed_pair() -> impl Strategy<Value = (String, String)> {
    (mesh_plan(), change(), any::<Index>()).prop_map(|(plan, change, pick)| {
        (to_yaml(&coherent(&plan)), to_yaml(&coherent(&changed(&plan, change, &pick))))
    })
}

/// A coherent topology as YAML text.
fn coherent_yaml() -> impl Strategy<Value = String> {
    mesh_plan().prop_map(|plan| to_yaml(&coherent(&plan)))
}

/// A topology that may carry up to three faults, as YAML text.
fn arbitrary_yaml() -> impl Strategy<Value = String> {
    (mesh_plan(), prop::collection::vec((fault(), any::<Index>()), 0..=3)).prop_map(|(plan, faults)| {
        let mut root = coherent(&plan);
        for (fault, pick) in &faults {
            apply_fault(&mut root, *fault, pick);
        }
        to_yaml(&root)
    })
}

fn to_yaml(root: &Value) -> String {
    serde_yaml_ng::to_string(root).expect("a JSON value serializes to YAML")
}

/// The diagnostics' codes and places, for failure messages.
fn summary(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|diagnostic| {
            let line = diagnostic.span.map_or(0, |span| span.line);
            format!("{} line {line}: {}", diagnostic.code, diagnostic.message)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every diagnostic has a span inside the text, on character boundaries, whose line and column agree
/// with its byte offset, and a help line.
fn assert_located(source: &Source, diagnostics: &[Diagnostic]) -> Result<(), TestCaseError> {
    let text = &source.text;
    for diagnostic in diagnostics {
        let Some(span) = diagnostic.span else {
            return Err(TestCaseError::fail(format!(
                "{} has no span: {}",
                diagnostic.code, diagnostic.message
            )));
        };
        prop_assert!(
            span.start <= span.end && span.end <= text.len(),
            "{} span {:?} outside the text",
            diagnostic.code,
            span
        );
        prop_assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
        let before = &text[..span.start];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |rest| rest.chars().count()) + 1;
        prop_assert_eq!(
            (span.line, span.column),
            (line, column),
            "{}: {}",
            diagnostic.code,
            diagnostic.message
        );
        prop_assert!(!diagnostic.help.trim().is_empty(), "{} has no help", diagnostic.code);
    }
    Ok(())
}

/// Every artifact of a compiled topology.
fn build(compiled: &weave::Compiled) -> BTreeMap<String, Vec<u8>> {
    let mut sink = MemorySink::default();
    weave::emit(compiled, &[], &mut sink).expect("a memory sink never fails");
    sink.artifacts
}

/// Parses one artifact with the grammar its consumer uses.
fn parse_back(path: &str, bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8"))?;
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".tf") || name.ends_with(".conf") {
        hcl::parse(text).map_err(|error| format!("{path} is not HCL: {error}"))?;
    } else if name.ends_with(".yaml") || name.ends_with(".yml") {
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            <serde_yaml_ng::Value as serde::Deserialize>::deserialize(document)
                .map_err(|error| format!("{path} is not YAML: {error}"))?;
        }
    } else if name.ends_with(".json") || name.ends_with(".hujson") {
        // HuJSON is JSON with comments; weave writes only whole-line comments.
        let json: Vec<&str> = text.lines().filter(|line| !line.trim_start().starts_with("//")).collect();
        serde_json::from_str::<Value>(&json.join("\n"))
            .map_err(|error| format!("{path} is not JSON: {error}"))?;
    } else if name.ends_with(".rego") {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy(path.to_owned(), text.to_owned())
            .map_err(|error| format!("{path} is not Rego: {error}"))?;
    }
    Ok(())
}

/// Builds a topology that has no error and checks every artifact.
fn assert_builds(text: &str, compiled: &weave::Compiled) -> Result<(), TestCaseError> {
    let artifacts = build(compiled);
    prop_assert!(!artifacts.is_empty());
    for (path, bytes) in &artifacts {
        prop_assert!(weave::write::safe_relative_path(path).is_ok(), "unsafe artifact path `{}`", path);
        if let Err(reason) = parse_back(path, bytes) {
            return Err(TestCaseError::fail(format!("{reason}\n--- input\n{text}")));
        }
    }
    Ok(())
}

/// Every input that once crashed the fuzzer (`fixtures/fuzz/`, read as bytes the way the fuzz target
/// reads them) now gives located diagnostics or builds to artifacts that parse back.
#[test]
fn former_fuzz_crashes_give_diagnostics_or_build() {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz");
    let mut paths: Vec<_> = std::fs::read_dir(&directory)
        .expect("fixtures/fuzz exists")
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixture in {}", directory.display());
    let mut failures = Vec::new();
    for path in &paths {
        let bytes = std::fs::read(path).expect("a readable fixture");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let outcome = std::panic::catch_unwind(|| -> Result<(), TestCaseError> {
            let source = Source::new("fuzz.yaml", text.as_str());
            let analysis = weave::analyze(&source, &Limits::default());
            assert_located(&source, &analysis.diagnostics)?;
            weave::diagnostics::render_human(&analysis.diagnostics, &source, false);
            if let Ok(compiled) = analysis.into_compiled() {
                assert_builds(&text, &compiled)?;
            }
            Ok(())
        });
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failures.push(format!("{name}: {error}")),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name}: panicked: {message}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures fail:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
}

proptest! {
    #![proptest_config(config())]

    /// Property 1 (and 2 for those without errors), over topologies that may carry faults.
    #[test]
    fn arbitrary_topologies_give_diagnostics_or_build(text in arbitrary_yaml()) {
        let source = Source::new("generated.yaml", text.as_str());
        let analysis = weave::analyze(&source, &Limits::default());
        assert_located(&source, &analysis.diagnostics)?;
        weave::diagnostics::render_human(&analysis.diagnostics, &source, false);
        if let Ok(compiled) = analysis.into_compiled() {
            assert_builds(&text, &compiled)?;
        }
    }

    /// Property 2: a topology that follows every rule has no error, and builds to artifacts that
    /// parse back.
    #[test]
    fn coherent_topologies_build_and_parse_back(text in coherent_yaml()) {
        let source = Source::new("generated.yaml", text.as_str());
        let analysis = weave::analyze(&source, &Limits::default());
        assert_located(&source, &analysis.diagnostics)?;
        match analysis.into_compiled() {
            Ok(compiled) => assert_builds(&text, &compiled)?,
            Err(diagnostics) => {
                return Err(TestCaseError::fail(format!("{}\n--- input\n{text}", summary(&diagnostics))));
            }
        }
    }

    /// Property 4: a build over the output of the topology before a change writes what a build from
    /// scratch writes: every file it keeps because its inputs digest is unchanged, it would have
    /// rendered to the same bytes.
    #[test]
    fn a_build_over_an_earlier_output_writes_what_a_fresh_build_writes((before, after) in changed_pair()) {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let out = directory.path().join("out");
        let mut last = None;
        for text in [&before, &after] {
            let compiled = weave::compile("generated.yaml", text)
                .map_err(|diagnostics| TestCaseError::fail(summary(&diagnostics)))?;
            weave::write::build_atomically(
                &out,
                false,
                weave::write::Origin::all("generated.yaml", text.as_bytes()),
                |sink| weave::emit_parallel(&compiled, &[], sink),
            )
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
            last = Some(compiled);
        }
        let expected = weave::review::diff::artifacts(
            &last.expect("two builds"),
            "generated.yaml",
            after.as_bytes(),
        );
        let written = weave::write::read_tree(&out).expect("the output reads back");
        let differing: Vec<&String> = expected
            .keys()
            .chain(written.keys())
            .filter(|path| expected.get(*path) != written.get(*path))
            .collect();
        prop_assert!(differing.is_empty(), "differs from a fresh build: {:?}\n--- before\n{}\n--- after\n{}", differing, before, after);
    }

    /// Property 5: `weave diff` of two topologies, which renders an artifact with declared inputs
    /// only where the two inputs digests differ, finds what comparing every rendered byte finds.
    #[test]
    fn a_diff_of_two_topologies_is_the_diff_of_their_bytes((before, after) in changed_pair()) {
        let compile = |text: &str| {
            weave::compile("generated.yaml", text).map_err(|diagnostics| TestCaseError::fail(summary(&diagnostics)))
        };
        let (old, new) = (compile(&before)?, compile(&after)?);
        let artifacts = |compiled, text: &str| weave::review::diff::artifacts(compiled, "generated.yaml", text.as_bytes());
        let expected =
            weave::review::diff::compare(None, artifacts(&old, &before), artifacts(&new, &after));
        let compared = weave::review::diff::compare_topologies(&old, &new, false);
        prop_assert_eq!(&compared.files, &expected.files, "--- before\n{}\n--- after\n{}", before, after);
        prop_assert_eq!(&compared.old, &expected.old);
        prop_assert_eq!(&compared.new, &expected.new);
        prop_assert_eq!(&compared.held_back, &expected.held_back);
    }

    /// Property 3: the same text gives the same diagnostics, and the same bytes when it builds.
    #[test]
    fn the_same_text_builds_to_the_same_bytes(text in arbitrary_yaml()) {
        let first = weave::compile("generated.yaml", &text);
        let second = weave::compile("generated.yaml", &text);
        match (first, second) {
            (Ok(first), Ok(second)) => {
                prop_assert_eq!(&first.diagnostics, &second.diagnostics);
                prop_assert!(build(&first) == build(&second), "two builds differ\n--- input\n{}", text);
            }
            (Err(first), Err(second)) => prop_assert_eq!(first, second),
            _ => prop_assert!(false, "the same text compiled once and failed once"),
        }
    }
}
