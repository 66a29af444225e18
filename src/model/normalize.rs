//! From the validated input tree to the normalized [`Topology`].
//!
//! The input is read through serde into the `Raw*` structs below, which mirror the file as written:
//! every key optional, unknown keys ignored (the schema has already reported them, and semantic
//! checks should still see the rest of the file). Normalization then merges the seed shorthand with
//! the `sites:` form, applies the defaults of DESIGN.md §2 and derives SPIFFE IDs.

use std::collections::BTreeMap;

use foldhash::HashMapExt;
use serde::Deserialize;
use serde_json::Value;

use super::*;

/// The defaults of DESIGN.md §2, in one place so README and `weave init` can quote them.
pub mod defaults {
    pub const MESH_NAME: &str = "agentweave";
    pub const NAMESPACE: &str = "agentweave";
    pub const IMAGE: &str = "ghcr.io/agentweave/agent:1.0.0";
    pub const PORT: u16 = 8443;
    pub const METRICS_PORT: u16 = 9090;
    pub const ID_TEMPLATE: &str = "spiffe://{trustDomain}/agent/{name}";
    /// A minor version every managed Kubernetes offers and keeps in standard support (EKS gives
    /// each minor 14 months: 1.34 left on 2 December 2026, 1.35 leaves on 27 March 2027, when this
    /// default must move on).
    pub const KUBERNETES_VERSION: &str = "1.35";
    pub const NODES: u32 = 3;
    pub const SPIRE_NAMESPACE: &str = "spire-system";
    pub const SPIRE_SERVER_PORT: u16 = 8081;
    pub const SPIRE_SERVER_REPLICAS: u32 = 2;
    pub const SPIRE_BUNDLE_PORT: u16 = 8443;
    pub const CA_TTL: &str = "24h";
    pub const SVID_TTL: &str = "1h";
    pub const TAILSCALE_AUTH_SECRET: &str = "tailscale-auth";
    pub const SCRAPE_INTERVAL: &str = "15s";
    pub const FEDERATE_INTERVAL: &str = "30s";
    pub const ZONE_MAX_SKEW: u32 = 1;
    pub const GITOPS_BRANCH: &str = "main";
    pub const REGION_MAX_SKEW: u32 = 2;
}

/// The top-level keys of the seed shorthand, each a site of that provider.
pub const SHORTHAND_SITES: [Provider; 3] = [Provider::Aws, Provider::Gcp, Provider::Azure];

/// Normalizes the input tree. Fails only when the tree does not have the shape serde needs (a
/// wrong type somewhere); the schema stage has then already reported the reason with its place.
pub fn normalize(root: &crate::load::Node) -> Result<Topology, String> {
    let raw =
        RawTopology::deserialize(crate::load::NodeDeserializer(root)).map_err(|error| error.to_string())?;
    Ok(build(raw))
}

/// [`normalize`] of the tree's JSON copy: what the tree's deserializer is tested against (it behaves
/// as the JSON value's does).
#[cfg(test)]
pub fn normalize_json(input: &Value) -> Result<Topology, String> {
    let raw = RawTopology::deserialize(input).map_err(|error| error.to_string())?;
    Ok(build(raw))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawTopology {
    mesh: Option<RawMesh>,
    global: Option<RawGlobal>,
    identity: Option<RawIdentity>,
    sites: Option<BTreeMap<String, RawSite>>,
    aws: Option<RawSite>,
    gcp: Option<RawSite>,
    azure: Option<RawSite>,
    federation: Option<RawFederation>,
    spire: Option<RawSpire>,
    networking: Option<RawNetworking>,
    authorization: Option<RawAuthorization>,
    observability: Option<RawObservability>,
    resilience: Option<RawResilience>,
    delivery: Option<RawDelivery>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMesh {
    name: Option<String>,
    namespace: Option<String>,
    image: Option<String>,
    port: Option<u16>,
    metrics_port: Option<u16>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawGlobal {
    trust_domains: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawIdentity {
    id_template: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawSite {
    provider: Option<Provider>,
    enabled: Option<bool>,
    region: Option<String>,
    trust_domain: Option<String>,
    cluster: Option<RawCluster>,
    agents: Option<Vec<RawAgent>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawCluster {
    name: Option<String>,
    kubernetes_version: Option<Value>,
    node_type: Option<String>,
    nodes: Option<u32>,
    spot: Option<bool>,
    pod_cidr: Option<String>,
    ingress_cidr: Option<String>,
    node_attestor: Option<NodeAttestor>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawAgent {
    name: String,
    replicas: Option<u32>,
    image: Option<String>,
    spiffe_id: Option<String>,
    capabilities: Option<Vec<String>>,
    calls: Option<Vec<RawCall>>,
    fallback: Option<String>,
    tier: Option<Tier>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawCall {
    agent: String,
    actions: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawFederation {
    enabled: Option<bool>,
    profile: Option<FederationProfile>,
    acme_email: Option<String>,
    certificate_issuer: Option<String>,
    bundle_endpoints: Option<BTreeMap<String, String>>,
    pairs: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawSpire {
    namespace: Option<String>,
    server_port: Option<u16>,
    bundle_port: Option<u16>,
    ca_ttl: Option<String>,
    svid_ttl: Option<String>,
    datastore: Option<RawDatastore>,
    upstream_authority: Option<String>,
    replicas: Option<u32>,
    vault: Option<RawVault>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawVault {
    address: Option<String>,
    pki_mount: Option<String>,
    role: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawDatastore {
    #[serde(rename = "type")]
    kind: Option<DatastoreKind>,
    connection_secret: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawNetworking {
    #[serde(rename = "type")]
    kind: Option<NetworkKind>,
    tailscale: Option<RawTailscale>,
    istio: Option<RawIstio>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawTailscale {
    enabled: Option<bool>,
    auth_key_secret: Option<String>,
    tailnet: Option<String>,
    tags: Option<Vec<String>>,
    tag_owners: Option<Vec<String>>,
    userspace: Option<bool>,
    capabilities: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawIstio {
    mesh_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawAuthorization {
    allow_same_trust_domain: Option<bool>,
    public_actions: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawObservability {
    logging: Option<RawLogging>,
    metrics: Option<RawMetrics>,
    tracing: Option<RawTracing>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawLogging {
    level: Option<String>,
    format: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMetrics {
    enabled: Option<bool>,
    central: Option<String>,
    scrape_interval: Option<String>,
    federate_interval: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawTracing {
    enabled: Option<bool>,
    endpoint: Option<String>,
    ca_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawResilience {
    zone_max_skew: Option<u32>,
    region_max_skew: Option<u32>,
    min_available: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawDelivery {
    gitops: Option<RawGitOps>,
}

#[derive(Deserialize, Default)]
struct RawGitOps {
    #[serde(rename = "repoURL")]
    repo_url: Option<String>,
    branch: Option<String>,
    path: Option<String>,
}

fn build(raw: RawTopology) -> Topology {
    let raw_mesh = raw.mesh.unwrap_or_default();
    let mesh = Mesh {
        name: raw_mesh.name.unwrap_or_else(|| defaults::MESH_NAME.to_owned()),
        namespace: raw_mesh.namespace.unwrap_or_else(|| defaults::NAMESPACE.to_owned()),
        image: raw_mesh.image.unwrap_or_else(|| defaults::IMAGE.to_owned()),
        port: raw_mesh.port.unwrap_or(defaults::PORT),
        metrics_port: raw_mesh.metrics_port.unwrap_or(defaults::METRICS_PORT),
    };
    let identity = Identity {
        id_template: raw
            .identity
            .and_then(|identity| identity.id_template)
            .unwrap_or_else(|| defaults::ID_TEMPLATE.to_owned()),
    };

    // Both spellings of sites, with the pointer each was written at.
    let mut written: Vec<(String, String, Option<Provider>, RawSite)> = Vec::new();
    for (provider, site) in SHORTHAND_SITES.into_iter().zip([raw.aws, raw.gcp, raw.azure]) {
        if let Some(site) = site {
            let name = provider.as_str().to_owned();
            written.push((name.clone(), format!("/{name}"), Some(provider), site));
        }
    }
    for (name, site) in raw.sites.unwrap_or_default() {
        let pointer = format!("/sites/{}", crate::load::escape_token(&name));
        written.push((name, pointer, None, site));
    }
    written.sort_by(|left, right| left.0.cmp(&right.0).then(left.1.cmp(&right.1)));

    let mut sites = Vec::new();
    // Sized at once: an agent is a large value, and growing the list by doubling copies them all.
    let mut agents =
        Vec::with_capacity(written.iter().map(|(.., site)| site.agents.as_ref().map_or(0, Vec::len)).sum());
    let mut disabled_sites = Vec::new();
    for (name, pointer, shorthand_provider, raw_site) in written {
        if raw_site.enabled == Some(false) {
            disabled_sites.push(name);
            continue;
        }
        let provider = raw_site.provider.or(shorthand_provider).unwrap_or(Provider::Onprem);
        let raw_cluster = raw_site.cluster.unwrap_or_default();
        let cluster = Cluster {
            name: raw_cluster.name.unwrap_or_else(|| format!("{}-{}", mesh.name, name)),
            kubernetes_version: match raw_cluster.kubernetes_version {
                Some(Value::String(version)) => version,
                Some(Value::Number(version)) => version.to_string(),
                _ => defaults::KUBERNETES_VERSION.to_owned(),
            },
            node_type: raw_cluster.node_type.or_else(|| provider.default_node_type().map(str::to_owned)),
            nodes: raw_cluster.nodes.unwrap_or(defaults::NODES),
            spot: raw_cluster.spot.unwrap_or(false),
            pod_cidr: raw_cluster.pod_cidr,
            ingress_cidr: raw_cluster.ingress_cidr,
            node_attestor: raw_cluster.node_attestor.unwrap_or(NodeAttestor::K8sPsat),
        };
        let site_position = sites.len();
        let trust_domain = raw_site.trust_domain.unwrap_or_default();
        let region = raw_site.region;
        let mut site_agents = Vec::new();
        for (agent_position, raw_agent) in raw_site.agents.unwrap_or_default().into_iter().enumerate() {
            let agent_pointer = format!("{pointer}/agents/{agent_position}");
            let spiffe_id = match &raw_agent.spiffe_id {
                Some(id) => id.clone(),
                None => expand_id_template(
                    &identity.id_template,
                    &trust_domain,
                    &name,
                    provider,
                    region.as_deref(),
                    &raw_agent.name,
                ),
            };
            let calls = raw_agent
                .calls
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(call_position, call)| Call {
                    agent: call.agent,
                    actions: call.actions.unwrap_or_default(),
                    pointer: format!("{agent_pointer}/calls/{call_position}"),
                })
                .collect();
            site_agents.push(agents.len());
            agents.push(Agent {
                name: raw_agent.name,
                site: site_position,
                replicas: raw_agent.replicas.unwrap_or(1),
                image: raw_agent.image.unwrap_or_else(|| mesh.image.clone()),
                explicit_spiffe_id: raw_agent.spiffe_id.is_some(),
                spiffe_id,
                capabilities: raw_agent.capabilities.unwrap_or_default(),
                calls,
                fallback: raw_agent
                    .fallback
                    .map(|fallback| Named { name: fallback, pointer: format!("{agent_pointer}/fallback") }),
                tier: raw_agent.tier,
                pointer: agent_pointer,
            });
        }
        sites.push(Site { name, provider, region, trust_domain, cluster, agents: site_agents, pointer });
    }

    let declared_trust_domains = raw.global.and_then(|global| global.trust_domains).map(|domains| {
        domains
            .into_iter()
            .enumerate()
            .map(|(position, name)| Named { name, pointer: format!("/global/trustDomains/{position}") })
            .collect()
    });

    let raw_federation = raw.federation.unwrap_or_default();
    let federation = Federation {
        enabled: raw_federation.enabled.unwrap_or(false),
        profile: raw_federation.profile.unwrap_or(FederationProfile::HttpsWeb),
        acme_email: raw_federation.acme_email,
        certificate_issuer: raw_federation.certificate_issuer,
        bundle_endpoints: raw_federation
            .bundle_endpoints
            .unwrap_or_default()
            .into_iter()
            .map(|(site, url)| BundleEndpoint {
                pointer: format!("/federation/bundleEndpoints/{}", crate::load::escape_token(&site)),
                site,
                url,
            })
            .collect(),
        pairs: match raw_federation.pairs {
            Some(Value::Array(pairs)) => FederationPairs::List(
                pairs
                    .iter()
                    .enumerate()
                    .filter_map(|(position, pair)| {
                        let pair = pair.as_array()?;
                        Some(FederationPair {
                            a: pair.first()?.as_str()?.to_owned(),
                            b: pair.get(1)?.as_str()?.to_owned(),
                            pointer: format!("/federation/pairs/{position}"),
                        })
                    })
                    .collect(),
            ),
            _ => FederationPairs::All,
        },
        pointer: "/federation".to_owned(),
    };

    let raw_spire = raw.spire.unwrap_or_default();
    let raw_datastore = raw_spire.datastore.unwrap_or_default();
    let datastore_kind = raw_datastore.kind.unwrap_or(DatastoreKind::Sqlite3);
    let spire = Spire {
        // sqlite3 lives on one server's volume: one replica. A shared SQL datastore: two by default.
        replicas: match datastore_kind {
            DatastoreKind::Sqlite3 => 1,
            DatastoreKind::Postgres | DatastoreKind::Mysql => {
                raw_spire.replicas.unwrap_or(defaults::SPIRE_SERVER_REPLICAS)
            }
        },
        namespace: raw_spire.namespace.unwrap_or_else(|| defaults::SPIRE_NAMESPACE.to_owned()),
        server_port: raw_spire.server_port.unwrap_or(defaults::SPIRE_SERVER_PORT),
        bundle_port: raw_spire.bundle_port.unwrap_or(defaults::SPIRE_BUNDLE_PORT),
        ca_ttl: raw_spire.ca_ttl.unwrap_or_else(|| defaults::CA_TTL.to_owned()),
        svid_ttl: raw_spire.svid_ttl.unwrap_or_else(|| defaults::SVID_TTL.to_owned()),
        datastore: Datastore {
            kind: datastore_kind,
            connection_secret: raw_datastore.connection_secret,
            pointer: "/spire/datastore".to_owned(),
        },
        upstream_authority: raw_spire.upstream_authority,
        vault: raw_spire.vault.and_then(|vault| {
            Some(Vault {
                address: vault.address?,
                pki_mount: vault.pki_mount.unwrap_or_else(|| "pki".to_owned()),
                role: vault.role.unwrap_or_else(|| "spire-server".to_owned()),
            })
        }),
    };

    let raw_networking = raw.networking.unwrap_or_default();
    let kind = raw_networking.kind.unwrap_or(NetworkKind::Tailscale);
    let raw_tailscale = raw_networking.tailscale.unwrap_or_default();
    let networking = Networking {
        kind,
        tailscale: Tailscale {
            enabled: raw_tailscale.enabled.unwrap_or(kind == NetworkKind::Tailscale),
            auth_key_secret: raw_tailscale
                .auth_key_secret
                .unwrap_or_else(|| defaults::TAILSCALE_AUTH_SECRET.to_owned()),
            tailnet: raw_tailscale.tailnet,
            tags: raw_tailscale.tags.unwrap_or_else(|| vec![mesh.name.clone()]),
            tag_owners: raw_tailscale.tag_owners.unwrap_or_else(|| vec!["autogroup:admin".to_owned()]),
            userspace: raw_tailscale.userspace.unwrap_or(true),
            capabilities: raw_tailscale.capabilities.unwrap_or_default(),
        },
        istio: Istio {
            mesh_id: raw_networking
                .istio
                .and_then(|istio| istio.mesh_id)
                .unwrap_or_else(|| format!("{}-mesh", mesh.name)),
        },
        pointer: "/networking".to_owned(),
    };

    let raw_authorization = raw.authorization.unwrap_or_default();
    let authorization = Authorization {
        allow_same_trust_domain: raw_authorization.allow_same_trust_domain.unwrap_or(false),
        public_actions: raw_authorization.public_actions.unwrap_or_default(),
    };

    let raw_observability = raw.observability.unwrap_or_default();
    let raw_logging = raw_observability.logging.unwrap_or_default();
    let raw_metrics = raw_observability.metrics.unwrap_or_default();
    let raw_tracing = raw_observability.tracing.unwrap_or_default();
    let observability = Observability {
        logging: Logging {
            level: raw_logging.level.unwrap_or_else(|| "INFO".to_owned()).to_uppercase(),
            format: raw_logging.format.unwrap_or_else(|| "json".to_owned()),
        },
        metrics: Metrics {
            enabled: raw_metrics.enabled.unwrap_or(true),
            central: raw_metrics
                .central
                .map(|name| Named { name, pointer: "/observability/metrics/central".to_owned() }),
            scrape_interval: raw_metrics
                .scrape_interval
                .unwrap_or_else(|| defaults::SCRAPE_INTERVAL.to_owned()),
            federate_interval: raw_metrics
                .federate_interval
                .unwrap_or_else(|| defaults::FEDERATE_INTERVAL.to_owned()),
        },
        tracing: Tracing {
            enabled: raw_tracing.enabled.unwrap_or(raw_tracing.endpoint.is_some()),
            endpoint: raw_tracing.endpoint,
            ca_file: raw_tracing.ca_file,
        },
    };

    let raw_resilience = raw.resilience.unwrap_or_default();
    let resilience = Resilience {
        zone_max_skew: raw_resilience.zone_max_skew.unwrap_or(defaults::ZONE_MAX_SKEW),
        region_max_skew: raw_resilience.region_max_skew.unwrap_or(defaults::REGION_MAX_SKEW),
        min_available: raw_resilience.min_available,
        pointer: "/resilience/minAvailable".to_owned(),
    };

    let raw_gitops = raw.delivery.unwrap_or_default().gitops.unwrap_or_default();
    let delivery = Delivery {
        gitops: GitOps {
            repo_url: raw_gitops.repo_url,
            branch: raw_gitops.branch.unwrap_or_else(|| defaults::GITOPS_BRANCH.to_owned()),
            directory: raw_gitops.path.map(|path| path.trim_matches('/').to_owned()).unwrap_or_default(),
        },
    };

    let mut agent_index = HashMap::with_capacity(agents.len());
    for (position, agent) in agents.iter().enumerate() {
        agent_index.entry(agent.name.clone()).or_insert(position);
    }
    let mut site_index = BTreeMap::new();
    for (position, site) in sites.iter().enumerate() {
        site_index.entry(site.name.clone()).or_insert(position);
    }

    Topology {
        mesh,
        identity,
        sites,
        agents,
        disabled_sites,
        declared_trust_domains,
        federation,
        spire,
        networking,
        authorization,
        observability,
        resilience,
        delivery,
        agent_index,
        site_index,
    }
}

/// Fills `identity.idTemplate` for one agent.
pub fn expand_id_template(
    template: &str,
    trust_domain: &str,
    site: &str,
    provider: Provider,
    region: Option<&str>,
    name: &str,
) -> String {
    template
        .replace("{trustDomain}", trust_domain)
        .replace("{site}", site)
        .replace("{provider}", provider.as_str())
        .replace("{region}", region.unwrap_or(site))
        .replace("{name}", name)
}
