//! The typed, normalized topology that every later stage reads.
//!
//! `normalize` turns the validated input (the seed's `aws:`/`gcp:`/`azure:` shorthand and the general
//! `sites:` form alike) into one [`Topology`]: sites sorted by name, every default of DESIGN.md §2
//! applied, every agent's SPIFFE ID derived. Nothing here is optional that has a default; what stays
//! an `Option` is genuinely absent from the mesh (an on-prem site has no region).
//!
//! Each element keeps the JSON pointer of the place it was written (`pointer`), so that checks can
//! point back into the file. Pointers are skipped when the model is serialized: two spellings of the
//! same mesh serialize to the same model.

mod normalize;

#[cfg(test)]
pub use normalize::normalize_json;
pub use normalize::{SHORTHAND_SITES, normalize};

use std::collections::BTreeMap;

use foldhash::HashMap;
use serde::Serialize;

/// The whole mesh, normalized.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Topology {
    pub mesh: Mesh,
    pub identity: Identity,
    /// Enabled sites, sorted by name.
    pub sites: Vec<Site>,
    /// The agents of enabled sites: site by site (in `sites` order), then in the order written.
    pub agents: Vec<Agent>,
    /// Sites written with `enabled: false`; they and their agents are left out of everything.
    pub disabled_sites: Vec<String>,
    /// `global.trustDomains` as written, when given.
    pub declared_trust_domains: Option<Vec<Named>>,
    pub federation: Federation,
    pub spire: Spire,
    pub networking: Networking,
    pub authorization: Authorization,
    pub observability: Observability,
    pub resilience: Resilience,
    pub delivery: Delivery,
    /// Each agent's position in `agents` by name (the first, for a name given twice): hashed, as
    /// every call is resolved through it several times.
    #[serde(skip)]
    agent_index: HashMap<String, usize>,
    #[serde(skip)]
    site_index: BTreeMap<String, usize>,
}

impl Topology {
    /// The agent called `name`, if there is one (the first, when the name is duplicated).
    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agent_index.get(name).map(|&index| &self.agents[index])
    }

    /// The index in `agents` of the agent called `name`.
    pub fn agent_position(&self, name: &str) -> Option<usize> {
        self.agent_index.get(name).copied()
    }

    /// The enabled site called `name`.
    pub fn site(&self, name: &str) -> Option<&Site> {
        self.site_index.get(name).map(|&index| &self.sites[index])
    }

    /// The index in `sites` of the enabled site called `name`.
    pub fn site_position(&self, name: &str) -> Option<usize> {
        self.site_index.get(name).copied()
    }

    /// The site an agent runs in.
    pub fn site_of(&self, agent: &Agent) -> &Site {
        &self.sites[agent.site]
    }

    /// The agents of one site, in the order written.
    pub fn agents_of<'a>(&'a self, site: &'a Site) -> impl Iterator<Item = &'a Agent> + 'a {
        site.agents.iter().map(move |&index| &self.agents[index])
    }

    /// The site whose Prometheus federates all others: `observability.metrics.central`, or the
    /// first site by name.
    pub fn central_metrics_site(&self) -> Option<&Site> {
        match &self.observability.metrics.central {
            Some(central) => self.site(&central.name),
            None => self.sites.first(),
        }
    }
}

/// A string value together with the place it was written.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(transparent)]
pub struct Named {
    pub name: String,
    #[serde(skip)]
    pub pointer: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Mesh {
    /// Prefix of generated names and tags.
    pub name: String,
    /// The Kubernetes namespace of the agents.
    pub namespace: String,
    /// The default agent image.
    pub image: String,
    /// The agents' mTLS port.
    pub port: u16,
    /// The agents' metrics port.
    pub metrics_port: u16,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Template of agent SPIFFE IDs; placeholders `{trustDomain}`, `{site}`, `{provider}`, `{region}`, `{name}`.
    pub id_template: String,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Aws,
    Gcp,
    Azure,
    Onprem,
    Oracle,
    Ibm,
}

impl Provider {
    pub const ALL: [Provider; 6] =
        [Provider::Aws, Provider::Gcp, Provider::Azure, Provider::Onprem, Provider::Oracle, Provider::Ibm];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Gcp => "gcp",
            Provider::Azure => "azure",
            Provider::Onprem => "onprem",
            Provider::Oracle => "oracle",
            Provider::Ibm => "ibm",
        }
    }

    pub fn parse(text: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|provider| provider.as_str() == text)
    }

    /// Whether weave provisions the cluster (every provider but on-prem).
    pub fn is_cloud(self) -> bool {
        self != Provider::Onprem
    }

    pub fn default_node_type(self) -> Option<&'static str> {
        match self {
            Provider::Aws => Some("t3.medium"),
            Provider::Gcp => Some("e2-medium"),
            Provider::Azure => Some("Standard_B2s"),
            Provider::Oracle => Some("VM.Standard.E4.Flex"),
            Provider::Ibm => Some("bx2.4x16"),
            Provider::Onprem => None,
        }
    }
}

/// A SPIRE node attestor plugin.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum NodeAttestor {
    AwsIid,
    GcpIit,
    AzureMsi,
    K8sPsat,
}

impl NodeAttestor {
    pub const ALL: [NodeAttestor; 4] =
        [NodeAttestor::AwsIid, NodeAttestor::GcpIit, NodeAttestor::AzureMsi, NodeAttestor::K8sPsat];

    /// The plugin name SPIRE knows it by.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeAttestor::AwsIid => "aws_iid",
            NodeAttestor::GcpIit => "gcp_iit",
            NodeAttestor::AzureMsi => "azure_msi",
            NodeAttestor::K8sPsat => "k8s_psat",
        }
    }

    pub fn parse(text: &str) -> Option<NodeAttestor> {
        NodeAttestor::ALL.into_iter().find(|attestor| attestor.as_str() == text)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    pub name: String,
    pub provider: Provider,
    /// Absent only for on-prem sites that name none.
    pub region: Option<String>,
    pub trust_domain: String,
    pub cluster: Cluster,
    /// Indices into `Topology::agents`.
    pub agents: Vec<usize>,
    /// `/sites/<name>` or `/<provider>` for the seed shorthand.
    #[serde(skip)]
    pub pointer: String,
}

impl Site {
    /// The region, or the site name for an on-prem site without one (used in labels).
    pub fn region_or_name(&self) -> &str {
        self.region.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub name: String,
    pub kubernetes_version: String,
    /// Absent on-prem, where weave does not provision nodes.
    pub node_type: Option<String>,
    pub nodes: u32,
    /// A spot / preemptible node pool.
    pub spot: bool,
    pub pod_cidr: Option<String>,
    /// With a VPN: the range of the internal load balancers of the agents other sites call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_cidr: Option<String>,
    pub node_attestor: NodeAttestor,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Edge,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub name: String,
    /// Index into `Topology::sites`.
    pub site: usize,
    pub replicas: u32,
    pub image: String,
    pub spiffe_id: String,
    /// The actions this agent serves, in the order written.
    pub capabilities: Vec<String>,
    pub calls: Vec<Call>,
    pub fallback: Option<Named>,
    pub tier: Option<Tier>,
    #[serde(skip)]
    pub pointer: String,
    /// Whether `spiffeId` was written explicitly (otherwise derived from the template).
    #[serde(skip)]
    pub explicit_spiffe_id: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Call {
    pub agent: String,
    pub actions: Vec<String>,
    #[serde(skip)]
    pub pointer: String,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FederationProfile {
    HttpsWeb,
    HttpsSpiffe,
}

impl FederationProfile {
    pub fn as_str(self) -> &'static str {
        match self {
            FederationProfile::HttpsWeb => "https_web",
            FederationProfile::HttpsSpiffe => "https_spiffe",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Federation {
    pub enabled: bool,
    pub profile: FederationProfile,
    pub acme_email: Option<String>,
    /// The cert-manager ClusterIssuer of the `https_web` bundle endpoints' certificates (without
    /// ACME); unset: `<mesh>-bundle-endpoint`.
    pub certificate_issuer: Option<String>,
    /// Site name → bundle endpoint URL, sorted by site.
    pub bundle_endpoints: Vec<BundleEndpoint>,
    pub pairs: FederationPairs,
    #[serde(skip)]
    pub pointer: String,
}

impl Federation {
    /// The bundle endpoint URL written for a site.
    pub fn bundle_endpoint(&self, site: &str) -> Option<&BundleEndpoint> {
        self.bundle_endpoints.iter().find(|endpoint| endpoint.site == site)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BundleEndpoint {
    pub site: String,
    pub url: String,
    #[serde(skip)]
    pub pointer: String,
}

impl BundleEndpoint {
    /// The host name of the URL (`spire-aws.company.com` of `https://spire-aws.company.com:8443`).
    pub fn host(&self) -> &str {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        match authority.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => authority,
        }
    }

    /// The explicit port of the URL, if any.
    pub fn port(&self) -> Option<u16> {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        let (_, port) = authority.rsplit_once(':')?;
        port.parse().ok()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum FederationPairs {
    /// Every pair of distinct trust domains.
    All,
    /// Only these pairs (each unordered).
    List(Vec<FederationPair>),
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FederationPair {
    pub a: String,
    pub b: String,
    #[serde(skip)]
    pub pointer: String,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatastoreKind {
    Sqlite3,
    Postgres,
    Mysql,
}

impl DatastoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DatastoreKind::Sqlite3 => "sqlite3",
            DatastoreKind::Postgres => "postgres",
            DatastoreKind::Mysql => "mysql",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Spire {
    /// SPIRE server replicas per site: 1 with sqlite3, `spire.replicas` (default 2) with a shared
    /// SQL datastore.
    pub replicas: u32,
    pub namespace: String,
    pub server_port: u16,
    pub bundle_port: u16,
    pub ca_ttl: String,
    pub svid_ttl: String,
    pub datastore: Datastore,
    /// `vault` (or `disk` for a trust domain of one site).
    pub upstream_authority: Option<String>,
    /// The Vault PKI engine of `upstream_authority: vault`.
    pub vault: Option<Vault>,
}

/// The Vault PKI engine that signs the SPIRE servers' intermediate CAs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Vault {
    pub address: String,
    pub pki_mount: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Datastore {
    pub kind: DatastoreKind,
    /// Kubernetes Secret holding the connection string (postgres/mysql); its key is `connection-string`.
    pub connection_secret: Option<String>,
    #[serde(skip)]
    pub pointer: String,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkKind {
    Tailscale,
    Vpn,
    Istio,
}

impl NetworkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkKind::Tailscale => "tailscale",
            NetworkKind::Vpn => "vpn",
            NetworkKind::Istio => "istio",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Networking {
    pub kind: NetworkKind,
    pub tailscale: Tailscale,
    pub istio: Istio,
    #[serde(skip)]
    pub pointer: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Tailscale {
    /// As written (`networking.tailscale.enabled`); defaults to `networking.type == tailscale`.
    pub enabled: bool,
    /// Name of the Kubernetes Secret holding the auth key (key `TS_AUTHKEY`).
    pub auth_key_secret: String,
    /// Agents are reached at `<agent>.<tailnet>.ts.net:<port>`.
    pub tailnet: Option<String>,
    /// Tags every agent carries besides its own.
    pub tags: Vec<String>,
    pub tag_owners: Vec<String>,
    /// Userspace networking: the sidecar needs no NET_ADMIN.
    pub userspace: bool,
    /// Capabilities asked for beyond the derived ones; granted only in kernel mode (W108).
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Istio {
    pub mesh_id: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    pub allow_same_trust_domain: bool,
    pub public_actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Observability {
    pub logging: Logging,
    pub metrics: Metrics,
    pub tracing: Tracing,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Logging {
    /// DEBUG, INFO, WARN or ERROR.
    pub level: String,
    /// json or text.
    pub format: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub enabled: bool,
    /// The site whose Prometheus federates the others, as written.
    pub central: Option<Named>,
    pub scrape_interval: String,
    pub federate_interval: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    pub enabled: bool,
    /// OTLP gRPC endpoint of the tracing backend (`host:port`).
    pub endpoint: Option<String>,
    pub ca_file: Option<String>,
}

/// How the output reaches the clusters besides `kubectl`: GitOps tools reading it from a repository.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub gitops: GitOps,
}

/// The repository Argo CD and Flux read the committed output from.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitOps {
    /// The repository's URL; unset, Argo CD reads it from the cluster's registration and Flux uses
    /// the GitRepository `flux bootstrap` made.
    #[serde(rename = "repoURL")]
    pub repo_url: Option<String>,
    /// The branch the tools follow.
    pub branch: String,
    /// The directory of the repository the output is committed to (empty: its root).
    #[serde(rename = "path")]
    pub directory: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resilience {
    pub zone_max_skew: u32,
    pub region_max_skew: u32,
    /// PodDisruptionBudget minAvailable for agents with replicas > 1; unset → maxUnavailable 1.
    pub min_available: Option<u32>,
    #[serde(skip)]
    pub pointer: String,
}
