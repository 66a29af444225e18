//! SPIRE server and agent configuration of every site, and the federation bootstrap script.
//!
//! | artifact | what it is |
//! |---|---|
//! | `spire/<site>/server.conf` | the site's SPIRE server: trust domain, ports, TTLs, datastore, key manager, node attestor, upstream CA, trust bundle publisher, federation |
//! | `spire/<site>/agent.conf` | the site's SPIRE agent (a DaemonSet): the in-cluster server, the Workload API socket, node and workload attestors |
//! | `spire/federation-bootstrap.sh` | the one-time exchange of trust bundles between federated SPIRE servers |
//!
//! Both configuration files are built as hcl-rs bodies and printed by its formatter. SPIRE parses them
//! with HCL v1 (hashicorp/hcl), so only plain literals are used: strings, numbers, booleans, lists,
//! objects and blocks — no expressions, heredocs or interpolation.
//!
//! Nothing secret is ever written into a file. Values that differ per installation and are not part of
//! the topology (the database connection string, the GCP project and Azure tenant the node attestors
//! accept) are environment references (`$NAME`) that the SPIRE server expands when started with
//! `-expandEnv` ([`SERVER_ARGS`]); [`server_environment`] says where the Kubernetes manifests take each
//! one from. The `$NAME` form (not `${NAME}`) is deliberate: hcl-rs escapes `${` as a template sequence,
//! and SPIRE expands the file text before parsing it. With `-expandEnv`, every `$` in `server.conf` is a
//! reference; the strings the topology contributes (trust domains, host names, bundle endpoint URLs,
//! the ACME e-mail address) must not contain one.
//!
//! The paths, names and ports the Kubernetes manifests must agree with (mounts, Secrets, Services,
//! probes) are the public constants of this module, so that the two targets cannot drift apart.
//!
//! The trust bundle reaches the agents through the `k8s_configmap` BundlePublisher (the successor of
//! the deprecated `k8sbundle` Notifier), which keeps the ConfigMap [`BUNDLE_CONFIGMAP`] up to date in
//! PEM, the format `trust_bundle_path` reads; it needs SPIRE [`MINIMUM_SPIRE_VERSION`] or newer.

use std::io;

use hcl::format::{Format, Formatter};
use hcl::{Block, Body, Expression, Identifier, Object, ObjectKey};
use serde::Serialize;

use super::conventions;
use super::terraform::strings;
use super::{EmitContext, Sink, Target};
use crate::model::{DatastoreKind, FederationProfile, NodeAttestor, Site};
use crate::plan::paths;

pub const TARGET: Target = Target {
    name: "spire",
    description: "SPIRE server and agent configuration, federation bootstrap",
    emit,
    split: None,
};

/// The oldest SPIRE release that has every plugin and key these files use (the `k8s_configmap`
/// BundlePublisher).
pub const MINIMUM_SPIRE_VERSION: &str = "1.13.0";

/// Where the SPIRE server keeps its datastore (sqlite3) and keys: the StatefulSet's PersistentVolume.
pub const SERVER_DATA_DIR: &str = "/run/spire/data";

/// Where the SPIRE agent keeps its SVID, bundle and key. Mount a hostPath here so that an agent that
/// restarts keeps its identity: the cloud node attestors (`aws_iid`, `gcp_iit`, `azure_msi`) attest a
/// node only once.
pub const AGENT_DATA_DIR: &str = "/run/spire/data";

/// Where the server's and the agent's ConfigMaps are mounted.
pub const CONFIG_DIR: &str = "/run/spire/config";

/// The server's configuration file (ConfigMap key `server.conf`, mounted in `CONFIG_DIR`).
pub const SERVER_CONFIG_PATH: &str = "/run/spire/config/server.conf";

/// The agent's configuration file (ConfigMap key `agent.conf`, mounted in `CONFIG_DIR`).
pub const AGENT_CONFIG_PATH: &str = "/run/spire/config/agent.conf";

/// The arguments of the `spire-server` container (after the image's `run` entrypoint). `-expandEnv`
/// makes the server replace the `$NAME` references of [`server_environment`].
pub const SERVER_ARGS: [&str; 3] = ["-config", SERVER_CONFIG_PATH, "-expandEnv"];

/// The arguments of the `spire-agent` container (after the image's `run` entrypoint).
pub const AGENT_ARGS: [&str; 2] = ["-config", AGENT_CONFIG_PATH];

/// The `spire-server` binary inside the official image.
pub const SERVER_BINARY: &str = "/opt/spire/bin/spire-server";

/// The directory of the server's admin API socket (SPIRE's default place, so that `spire-server`
/// commands run with `kubectl exec` find it); needs a writable emptyDir under a read-only root.
pub const SERVER_SOCKET_DIR: &str = "/tmp/spire-server/private";

/// The server's admin API socket, inside `SERVER_SOCKET_DIR`.
pub const SERVER_SOCKET_PATH: &str = "/tmp/spire-server/private/api.sock";

/// The SPIRE server's StatefulSet, its headless/ClusterIP Service and its container.
pub const SERVER_NAME: &str = "spire-server";

/// The one pod of the server StatefulSet, the one the bootstrap script talks to.
pub const SERVER_POD: &str = "spire-server-0";

/// The SPIRE agent's DaemonSet, ServiceAccount and container.
pub const AGENT_NAME: &str = "spire-agent";

/// The ConfigMap the server publishes its trust bundle to and the agents mount at `BUNDLE_DIR`.
pub const BUNDLE_CONFIGMAP: &str = "spire-bundle";

/// The key of the trust bundle inside `BUNDLE_CONFIGMAP`.
pub const BUNDLE_CONFIGMAP_KEY: &str = "bundle.crt";

/// Where the agent mounts `BUNDLE_CONFIGMAP`.
pub const BUNDLE_DIR: &str = "/run/spire/bundle";

/// The trust bundle the agent bootstraps from (PEM), inside `BUNDLE_DIR`.
pub const BUNDLE_PATH: &str = "/run/spire/bundle/bundle.crt";

/// The Kubernetes TLS Secret (`tls.crt`, `tls.key`) holding the upstream CA every SPIRE server of a
/// trust domain signs with, with `spire.upstreamAuthority: disk`.
pub const UPSTREAM_CA_SECRET: &str = crate::plan::prerequisites::UPSTREAM_CA_SECRET;

/// Where `UPSTREAM_CA_SECRET` is mounted in the server.
pub const UPSTREAM_CA_DIR: &str = "/run/spire/upstream-ca";

/// The projected ServiceAccount token (audience `vault`) the server logs in to Vault with.
pub const VAULT_TOKEN_PATH: &str = "/var/run/secrets/tokens/vault/token";

/// The audience of `VAULT_TOKEN_PATH`.
pub const VAULT_AUDIENCE: &str = "vault";

/// The mount of Vault's Kubernetes auth method for one site's cluster: each cluster has its own
/// token issuer, so each has its own mount.
pub fn vault_auth_mount(site: &Site) -> String {
    crate::plan::prerequisites::vault_auth_mount(&site.name)
}

/// The upstream CA certificate inside `UPSTREAM_CA_DIR`.
pub const UPSTREAM_CA_CERT_PATH: &str = "/run/spire/upstream-ca/tls.crt";

/// The upstream CA key inside `UPSTREAM_CA_DIR`.
pub const UPSTREAM_CA_KEY_PATH: &str = "/run/spire/upstream-ca/tls.key";

/// The Kubernetes TLS Secret holding the bundle endpoint's Web PKI certificate (profile `https_web`
/// without `acmeEmail`; a cert-manager Certificate typically writes it).
pub const BUNDLE_ENDPOINT_TLS_SECRET: &str = "spire-bundle-endpoint-tls";

/// Where `BUNDLE_ENDPOINT_TLS_SECRET` is mounted in the server.
pub const BUNDLE_ENDPOINT_TLS_DIR: &str = "/run/spire/bundle-endpoint-tls";

/// The bundle endpoint certificate inside `BUNDLE_ENDPOINT_TLS_DIR`.
pub const BUNDLE_ENDPOINT_CERT_PATH: &str = "/run/spire/bundle-endpoint-tls/tls.crt";

/// The bundle endpoint key inside `BUNDLE_ENDPOINT_TLS_DIR`.
pub const BUNDLE_ENDPOINT_KEY_PATH: &str = "/run/spire/bundle-endpoint-tls/tls.key";

/// The environment variable holding the datastore connection string (postgres, mysql).
pub const DATASTORE_CONNECTION_ENV: &str = "SPIRE_DATASTORE_CONNECTION_STRING";

/// The key of the connection string inside the Secret named by `spire.datastore.connectionSecret`.
pub const DATASTORE_SECRET_KEY: &str = crate::plan::prerequisites::DATASTORE_SECRET_KEY;

/// The environment variable the `k8s` workload attestor reads the node name from (set it from
/// `spec.nodeName` in the agent DaemonSet).
pub const NODE_NAME_ENV: &str = "MY_NODE_NAME";

/// The projected ServiceAccount token the agent's `k8s_psat` attestor presents.
pub const PSAT_TOKEN_PATH: &str = "/var/run/secrets/tokens/spire-agent";

/// The audience of `PSAT_TOKEN_PATH` (the server plugin's default).
pub const PSAT_AUDIENCE: &str = "spire-server";

/// The port of the health endpoints (`LIVE_PATH`, `READY_PATH`) of both server and agent.
pub const HEALTH_PORT: u16 = 8080;

/// The liveness probe path.
pub const LIVE_PATH: &str = "/live";

/// The readiness probe path.
pub const READY_PATH: &str = "/ready";

/// The Prometheus metrics port of both server and agent (with `observability.metrics.enabled`).
pub const TELEMETRY_PORT: u16 = 9988;

/// Where a server environment variable takes its value from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EnvironmentSource {
    /// `valueFrom.secretKeyRef`.
    Secret { name: String, key: String },
    /// `valueFrom.configMapKeyRef`.
    ConfigMap { name: String, key: String },
}

/// One environment variable `server.conf` refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentVariable {
    pub name: String,
    pub source: EnvironmentSource,
}

/// The in-cluster DNS name of the SPIRE server Service.
pub fn server_address(context: &EmitContext<'_>) -> String {
    format!("{SERVER_NAME}.{}.svc", context.topology.spire.namespace)
}

/// The SPIFFE ID of the SPIRE server of a trust domain: what its bundle endpoint presents under the
/// `https_spiffe` profile.
pub fn server_spiffe_id(trust_domain: &str) -> String {
    crate::plan::server_spiffe_id(trust_domain)
}

/// Every environment variable the site's `server.conf` refers to, and where the StatefulSet takes it
/// from. Empty when the file refers to none.
pub fn server_environment(context: &EmitContext<'_>) -> Vec<EnvironmentVariable> {
    let mut variables = Vec::new();
    let datastore = &context.topology.spire.datastore;
    if datastore.kind != DatastoreKind::Sqlite3
        && let Some(secret) = &datastore.connection_secret
    {
        variables.push(EnvironmentVariable {
            name: DATASTORE_CONNECTION_ENV.to_owned(),
            source: EnvironmentSource::Secret { name: secret.clone(), key: DATASTORE_SECRET_KEY.to_owned() },
        });
    }
    variables
}

/// The site's `server.conf`.
pub fn server_conf(context: &EmitContext<'_>, site: &Site) -> String {
    let topology = context.topology;
    let spire = &topology.spire;
    let mut server = Block::builder("server")
        .add_attribute(("bind_address", "0.0.0.0"))
        .add_attribute(("bind_port", spire.server_port))
        .add_attribute(("socket_path", SERVER_SOCKET_PATH))
        .add_attribute(("trust_domain", site.trust_domain.as_str()))
        .add_attribute(("data_dir", SERVER_DATA_DIR))
        .add_attribute(("log_level", log_level(context)))
        .add_attribute(("log_format", log_format(context)))
        .add_attribute(("ca_ttl", spire.ca_ttl.as_str()))
        .add_attribute(("default_x509_svid_ttl", spire.svid_ttl.as_str()))
        .add_block(
            Block::builder("ca_subject")
                .add_attribute(("organization", strings([topology.mesh.name.as_str()])))
                .build(),
        );
    if let Some(federation) = federation_block(context, site) {
        server = server.add_block(federation);
    }

    let mut plugins = Block::builder("plugins")
        .add_block(datastore_plugin(context))
        .add_block(plugin(
            "KeyManager",
            "disk",
            Body::builder().add_attribute(("keys_path", format!("{SERVER_DATA_DIR}/keys.json"))).build(),
        ))
        .add_block(server_node_attestor(context, site));
    if spire.upstream_authority.as_deref() == Some("vault")
        && let Some(vault) = &spire.vault
    {
        plugins = plugins.add_block(plugin(
            "UpstreamAuthority",
            "vault",
            Body::builder()
                .add_attribute(("vault_addr", vault.address.as_str()))
                .add_attribute(("pki_mount_point", vault.pki_mount.as_str()))
                .add_block(
                    Block::builder("k8s_auth")
                        .add_attribute(("k8s_auth_mount_point", vault_auth_mount(site)))
                        .add_attribute(("k8s_auth_role_name", vault.role.as_str()))
                        .add_attribute(("token_path", VAULT_TOKEN_PATH))
                        .build(),
                )
                .build(),
        ));
    }
    if spire.upstream_authority.as_deref() == Some("disk") {
        plugins = plugins.add_block(plugin(
            "UpstreamAuthority",
            "disk",
            Body::builder()
                .add_attribute(("cert_file_path", UPSTREAM_CA_CERT_PATH))
                .add_attribute(("key_file_path", UPSTREAM_CA_KEY_PATH))
                .build(),
        ));
    }
    let mut publication = Object::new();
    publication.insert(key("configmap_name"), BUNDLE_CONFIGMAP.into());
    publication.insert(key("configmap_key"), BUNDLE_CONFIGMAP_KEY.into());
    publication.insert(key("namespace"), spire.namespace.as_str().into());
    publication.insert(key("format"), "pem".into());
    let mut clusters = Object::new();
    clusters.insert(quoted_key(&site.cluster.name), Expression::Object(publication));
    plugins = plugins.add_block(plugin(
        "BundlePublisher",
        "k8s_configmap",
        Body::builder().add_attribute(("clusters", Expression::Object(clusters))).build(),
    ));

    let mut body =
        Body::builder().add_block(server.build()).add_block(plugins.build()).add_block(health_checks());
    if let Some(telemetry) = telemetry(context) {
        body = body.add_block(telemetry);
    }
    render(&body.build())
}

/// The site's `agent.conf`.
pub fn agent_conf(context: &EmitContext<'_>, site: &Site) -> String {
    let topology = context.topology;
    let agent = Block::builder("agent")
        .add_attribute(("data_dir", AGENT_DATA_DIR))
        .add_attribute(("log_level", log_level(context)))
        .add_attribute(("log_format", log_format(context)))
        .add_attribute(("server_address", server_address(context)))
        .add_attribute(("server_port", topology.spire.server_port))
        .add_attribute(("socket_path", conventions::SPIRE_SOCKET_PATH))
        .add_attribute(("trust_bundle_path", BUNDLE_PATH))
        .add_attribute(("trust_bundle_format", "pem"))
        .add_attribute(("trust_domain", site.trust_domain.as_str()))
        .build();

    // `k8s_psat` on every site: the one attestor spire-controller-manager parents entries on (a
    // cloud attestor is E020).
    let node_attestor_data = Body::builder()
        .add_attribute(("cluster", site.cluster.name.as_str()))
        .add_attribute(("token_path", PSAT_TOKEN_PATH))
        .build();
    // The kubelet's serving certificate is self-signed on most managed clusters, so the attestor
    // authenticates to the kubelet with its ServiceAccount token but does not verify the kubelet
    // (SPIRE's and its Helm chart's Kubernetes default); it reaches the kubelet of its own node by name.
    let kubernetes_workloads = Body::builder()
        .add_attribute(("node_name_env", NODE_NAME_ENV))
        .add_attribute(("skip_kubelet_verification", true))
        .build();
    let plugins = Block::builder("plugins")
        .add_block(plugin("NodeAttestor", NodeAttestor::K8sPsat.as_str(), node_attestor_data))
        .add_block(plugin(
            "KeyManager",
            "disk",
            Body::builder().add_attribute(("directory", AGENT_DATA_DIR)).build(),
        ))
        .add_block(plugin("WorkloadAttestor", "k8s", kubernetes_workloads))
        .add_block(plugin("WorkloadAttestor", "unix", Body::builder().build()))
        .build();

    let mut body = Body::builder().add_block(agent).add_block(plugins).add_block(health_checks());
    if let Some(telemetry) = telemetry(context) {
        body = body.add_block(telemetry);
    }
    render(&body.build())
}

/// `spire/federation-bootstrap.sh`, when federation is enabled and at least one pair of trust
/// domains federates.
///
/// Under `https_spiffe` a server authenticates a peer's bundle endpoint with the peer's own trust
/// bundle, so it cannot fetch that bundle before it holds it once ("local copy of bundle not found"):
/// the script hands every server the current bundle of each domain it federates with, in both
/// directions of every pair. Under `https_web` the endpoints are authenticated with Web PKI and the
/// script is not required; it is emitted all the same (and says so), because running it only makes the
/// peers' bundles available before the first refresh.
pub fn federation_bootstrap(context: &EmitContext<'_>) -> Option<String> {
    bootstrap_inputs(context).map(|inputs| render_bootstrap(&inputs))
}

/// What [`federation_bootstrap`] renders; `None` when there is no federation to bootstrap.
fn bootstrap_inputs<'a>(context: &EmitContext<'a>) -> Option<ScriptData<'a>> {
    let topology = context.topology;
    let graph = context.graph.domains();
    if !topology.federation.enabled {
        return None;
    }
    let pairs = graph.federated_ids();
    if pairs.is_empty() {
        return None;
    }

    // Each federated domain's bundle is read once, from the first of its sites. The pairs name the
    // domains by their ids: each id's position among `domains`, when it is there.
    let mut domains: Vec<ScriptDomain> = Vec::new();
    let mut positions: Vec<Option<usize>> = vec![None; graph.trust_domains().count()];
    for (id, domain) in graph.trust_domains().enumerate() {
        if !graph.is_federated(domain) {
            continue;
        }
        let sites: Vec<String> = graph
            .sites_of_trust_domain(domain)
            .into_iter()
            .map(|index| topology.sites[index].name.clone())
            .collect();
        let Some(source) = sites.first().cloned() else { continue };
        positions[id] = Some(domains.len());
        domains.push(ScriptDomain { name: domain.to_owned(), source, sites });
    }
    let position = |id: usize| positions.get(id).copied().flatten();
    let script_pairs: Vec<ScriptPair> = pairs
        .iter()
        .filter_map(|&(left, right)| Some(ScriptPair { left: position(left)?, right: position(right)? }))
        .collect();

    Some(ScriptData {
        mesh: &topology.mesh.name,
        profile: topology.federation.profile.as_str(),
        required: topology.federation.profile == FederationProfile::HttpsSpiffe,
        namespace: &topology.spire.namespace,
        pod: SERVER_POD,
        container: SERVER_NAME,
        binary: SERVER_BINARY,
        socket: SERVER_SOCKET_PATH,
        domains,
        pairs: script_pairs,
    })
}

/// Renders the federation bootstrap script from its data.
fn render_bootstrap(data: &ScriptData<'_>) -> String {
    let mut environment = minijinja::Environment::new();
    environment.set_keep_trailing_newline(true);
    environment.set_trim_blocks(true);
    environment.set_lstrip_blocks(true);
    environment.add_filter("shell_quote", shell_quote);
    // The template is part of the program and the data is plain strings; rendering can only fail on
    // a defect in the template itself, which the tests exercise.
    environment
        .template_from_str(FEDERATION_BOOTSTRAP_TEMPLATE)
        .and_then(|template| template.render(data))
        .expect("the federation bootstrap template renders")
}

/// Quotes a value for a POSIX shell: single quotes, with each embedded `'` written as `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

const FEDERATION_BOOTSTRAP_TEMPLATE: &str = include_str!("../../targets/spire/federation-bootstrap.sh.j2");

/// Everything the federation bootstrap script is rendered from ([`super::inputs`]).
#[derive(Serialize)]
struct ScriptData<'a> {
    mesh: &'a str,
    profile: &'a str,
    required: bool,
    namespace: &'a str,
    pod: &'a str,
    container: &'a str,
    binary: &'a str,
    socket: &'a str,
    domains: Vec<ScriptDomain>,
    pairs: Vec<ScriptPair>,
}

#[derive(Serialize)]
struct ScriptDomain {
    name: String,
    /// The site whose server the bundle is read from.
    source: String,
    /// Every site of the domain: each has its own server, and each needs the peers' bundles.
    sites: Vec<String>,
}

#[derive(Serialize)]
struct ScriptPair {
    left: usize,
    right: usize,
}

fn emit(context: &EmitContext<'_>, sink: &mut dyn Sink) -> io::Result<()> {
    for site in &context.topology.sites {
        sink.put(paths::spire_server_conf(&site.name), server_conf(context, site).into_bytes())?;
        sink.put(paths::spire_agent_conf(&site.name), agent_conf(context, site).into_bytes())?;
    }
    if let Some(inputs) = bootstrap_inputs(context) {
        let render = |inputs: &ScriptData<'_>| render_bootstrap(inputs).into_bytes();
        super::inputs::put(sink, paths::FEDERATION_BOOTSTRAP.to_owned(), &inputs, render)?;
    }
    Ok(())
}

/// The `federation` block of a site's server: its own bundle endpoint, when it has one. `None`
/// otherwise. The federation relationships with the peers are not written here: each is a
/// `ClusterFederatedTrustDomain` that spire-controller-manager keeps in the server
/// (`k8s/<site>/registration.yaml`), so that the relationships change without restarting the server
/// and one source defines them.
fn federation_block(context: &EmitContext<'_>, site: &Site) -> Option<Block> {
    let topology = context.topology;
    let federation = &topology.federation;
    if !federation.enabled {
        return None;
    }
    let mut block = Block::builder("federation");
    let mut empty = true;
    if let Some(endpoint) = federation.bundle_endpoint(&site.name) {
        let profile = match federation.profile {
            FederationProfile::HttpsWeb => {
                let profile = Block::builder("profile").add_label("https_web");
                match &federation.acme_email {
                    Some(email) => profile.add_block(
                        Block::builder("acme")
                            .add_attribute(("domain_name", endpoint.host()))
                            .add_attribute(("email", email.as_str()))
                            .add_attribute(("tos_accepted", true))
                            .build(),
                    ),
                    None => profile.add_block(
                        Block::builder("serving_cert_file")
                            .add_attribute(("cert_file_path", BUNDLE_ENDPOINT_CERT_PATH))
                            .add_attribute(("key_file_path", BUNDLE_ENDPOINT_KEY_PATH))
                            .build(),
                    ),
                }
            }
            FederationProfile::HttpsSpiffe => Block::builder("profile").add_label("https_spiffe"),
        };
        block = block.add_block(
            Block::builder("bundle_endpoint")
                .add_attribute(("address", "0.0.0.0"))
                .add_attribute(("port", topology.spire.bundle_port))
                .add_block(profile.build())
                .build(),
        );
        empty = false;
    }
    if empty { None } else { Some(block.build()) }
}

/// `DataStore "sql"`: sqlite3 on the server's volume, or postgres/mysql with the connection string
/// taken from the environment (never written here).
fn datastore_plugin(context: &EmitContext<'_>) -> Block {
    let datastore = &context.topology.spire.datastore;
    let connection_string = match datastore.kind {
        DatastoreKind::Sqlite3 => format!("{SERVER_DATA_DIR}/datastore.sqlite3"),
        DatastoreKind::Postgres | DatastoreKind::Mysql => format!("${DATASTORE_CONNECTION_ENV}"),
    };
    plugin(
        "DataStore",
        "sql",
        Body::builder()
            .add_attribute(("database_type", datastore.kind.as_str()))
            .add_attribute(("connection_string", connection_string))
            .build(),
    )
}

/// The server side of the node attestor: `k8s_psat` for the site's cluster, accepting the SPIRE
/// agents' ServiceAccount and token audience.
fn server_node_attestor(context: &EmitContext<'_>, site: &Site) -> Block {
    let mut cluster = Object::new();
    cluster.insert(
        key("service_account_allow_list"),
        strings([format!("{}:{AGENT_NAME}", context.topology.spire.namespace)]),
    );
    cluster.insert(key("audience"), strings([PSAT_AUDIENCE]));
    let mut clusters = Object::new();
    clusters.insert(quoted_key(&site.cluster.name), Expression::Object(cluster));
    let data = Body::builder().add_attribute(("clusters", Expression::Object(clusters))).build();
    plugin("NodeAttestor", NodeAttestor::K8sPsat.as_str(), data)
}

/// `health_checks`: the endpoints the pods' liveness and readiness probes call.
fn health_checks() -> Block {
    Block::builder("health_checks")
        .add_attribute(("listener_enabled", true))
        .add_attribute(("bind_address", "0.0.0.0"))
        .add_attribute(("bind_port", HEALTH_PORT))
        .add_attribute(("live_path", LIVE_PATH))
        .add_attribute(("ready_path", READY_PATH))
        .build()
}

/// `telemetry { Prometheus { ... } }` when the mesh collects metrics.
fn telemetry(context: &EmitContext<'_>) -> Option<Block> {
    if !context.topology.observability.metrics.enabled {
        return None;
    }
    Some(
        Block::builder("telemetry")
            .add_block(
                Block::builder("Prometheus")
                    .add_attribute(("host", "0.0.0.0"))
                    .add_attribute(("port", TELEMETRY_PORT))
                    .build(),
            )
            .build(),
    )
}

/// A plugin block: `<kind> "<name>" { plugin_data { ... } }`.
fn plugin(kind: &str, name: &str, data: Body) -> Block {
    let plugin_data =
        Block { identifier: Identifier::sanitized("plugin_data"), labels: Vec::new(), body: data };
    Block::builder(kind).add_label(name).add_block(plugin_data).build()
}

/// SPIRE's log level: DEBUG, INFO, WARN or ERROR.
fn log_level(context: &EmitContext<'_>) -> String {
    context.topology.observability.logging.level.to_ascii_uppercase()
}

/// SPIRE's log format: `json` or `text`.
fn log_format(context: &EmitContext<'_>) -> &'static str {
    if context.topology.observability.logging.format.eq_ignore_ascii_case("text") { "text" } else { "json" }
}

/// An object key written bare (`name = ...`), for SPIRE's own key names.
fn key(name: &str) -> ObjectKey {
    ObjectKey::Identifier(Identifier::sanitized(name))
}

/// An object key written as a quoted string, for names that come from the topology.
fn quoted_key(name: &str) -> ObjectKey {
    ObjectKey::Expression(Expression::String(name.to_owned()))
}

/// Prints a body with hcl-rs's formatter: two-space indentation, lists on one line, and `{}` for an
/// empty block (the formatter writes `{  }`).
fn render(body: &Body) -> String {
    let mut formatter = Formatter::builder().compact_arrays(true).build_vec();
    // hcl-rs documents that formatting into a string cannot fail.
    let text = body.format_string(&mut formatter).expect("formatting HCL into a string cannot fail");
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        // A line cannot end inside a string (the formatter escapes newlines and no heredoc is used),
        // so a line ending in `{`, spaces and `}` ends with an empty block's braces, never with
        // string content.
        let empty_block = line
            .strip_suffix('}')
            .map(|head| head.trim_end_matches(' '))
            .and_then(|head| head.strip_suffix('{'));
        match empty_block {
            Some(head) => {
                out.push_str(head);
                out.push_str("{}");
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use hcl::{Body, Expression};

    use super::*;
    use crate::emit::MemorySink;

    /// Four sites: two of one trust domain sharing an upstream CA, an on-prem site attested with
    /// `k8s_psat`, and a GCP site; `https_spiffe`; only two of the three domain pairs federate;
    /// postgres datastore.
    const SPIFFE_MESH: &str = r#"
sites:
  east:
    provider: aws
    region: us-east-1
    trustDomain: aws.example.com
    cluster:
      podCidr: 10.1.0.0/16
      ingressCidr: 10.101.0.0/27
    agents:
      - name: planner
        capabilities: [plan]
        calls:
          - agent: searcher
            actions: [search]
  west:
    provider: aws
    region: us-west-2
    trustDomain: aws.example.com
    cluster:
      podCidr: 10.2.0.0/16
      ingressCidr: 10.102.0.0/27
    agents:
      - name: helper
        capabilities: [help]
  lab:
    provider: onprem
    trustDomain: lab.example.com
    cluster:
      name: lab-cluster
      podCidr: 10.3.0.0/16
      ingressCidr: 10.103.0.0/27
    agents:
      - name: searcher
        capabilities: [search]
  google:
    provider: gcp
    region: europe-west1
    trustDomain: gcp.example.com
    cluster:
      podCidr: 10.4.0.0/16
      ingressCidr: 10.104.0.0/27
    agents:
      - name: ranker
        capabilities: [rank]
federation:
  enabled: true
  profile: https_spiffe
  bundleEndpoints:
    east: https://spire-east.example.com:8443
    west: https://spire-west.example.com:8443
    lab: https://spire-lab.example.com:8443
    google: https://spire-gcp.example.com:8443
  pairs:
    - [aws.example.com, lab.example.com]
    - [lab.example.com, gcp.example.com]
spire:
  upstreamAuthority: vault
  vault:
    address: https://vault.example.com:8200
  datastore:
    type: postgres
    connectionSecret: spire-db
networking:
  type: vpn
"#;

    use crate::emit::test_support::{compiled, fixture};

    fn parse(text: &str) -> Body {
        hcl::parse(text).unwrap_or_else(|error| panic!("not HCL: {error}\n{text}"))
    }

    fn block<'a>(body: &'a Body, identifier: &str) -> &'a Body {
        body.blocks().find(|block| block.identifier() == identifier).map(|block| block.body()).unwrap()
    }

    fn blocks<'a>(body: &'a Body, identifier: &'a str) -> impl Iterator<Item = &'a hcl::Block> + 'a {
        body.blocks().filter(move |block| block.identifier() == identifier)
    }

    fn label(block: &hcl::Block) -> &str {
        block.labels()[0].as_str()
    }

    fn attribute<'a>(body: &'a Body, key: &str) -> &'a Expression {
        body.attributes().find(|attribute| attribute.key() == key).map(|attribute| attribute.expr()).unwrap()
    }

    fn string(body: &Body, key: &str) -> String {
        match attribute(body, key) {
            Expression::String(value) => value.clone(),
            other => panic!("{key} is not a string: {other:?}"),
        }
    }

    /// (type, name, plugin_data) of every plugin.
    fn plugins(body: &Body) -> Vec<(String, String, Body)> {
        block(body, "plugins")
            .blocks()
            .map(|plugin| {
                (
                    plugin.identifier().to_owned(),
                    label(plugin).to_owned(),
                    block(plugin.body(), "plugin_data").clone(),
                )
            })
            .collect()
    }

    #[test]
    fn server_conf_carries_the_site_and_spire_settings() {
        let compiled = compiled(SPIFFE_MESH);
        let context = EmitContext::of(&compiled);
        for site in &compiled.topology.sites {
            let text = server_conf(&context, site);
            let body = parse(&text);
            let server = block(&body, "server");
            assert_eq!(string(server, "trust_domain"), site.trust_domain);
            assert_eq!(
                attribute(server, "bind_port"),
                &Expression::from(compiled.topology.spire.server_port)
            );
            assert_eq!(string(server, "data_dir"), SERVER_DATA_DIR);
            assert_eq!(string(server, "ca_ttl"), compiled.topology.spire.ca_ttl);
            assert_eq!(string(server, "default_x509_svid_ttl"), compiled.topology.spire.svid_ttl);
            // SPIRE refuses to start on keys it removed.
            assert!(!text.contains("default_svid_ttl"), "{text}");
            // HCL v1 has no templates or heredocs.
            assert!(!text.contains("${") && !text.contains("<<"), "{text}");

            let plugins = plugins(&body);
            let kinds: Vec<&str> = plugins.iter().map(|(kind, _, _)| kind.as_str()).collect();
            assert_eq!(kinds.iter().filter(|kind| **kind == "DataStore").count(), 1);
            assert_eq!(kinds.iter().filter(|kind| **kind == "KeyManager").count(), 1);
            assert_eq!(kinds.iter().filter(|kind| **kind == "UpstreamAuthority").count(), 1);
            let (_, _, datastore) = plugins.iter().find(|(kind, _, _)| kind == "DataStore").unwrap();
            assert_eq!(string(datastore, "database_type"), "postgres");
            // The connection string is an environment reference, never the Secret's content.
            assert_eq!(string(datastore, "connection_string"), format!("${DATASTORE_CONNECTION_ENV}"));
            let attestors: Vec<&str> = plugins
                .iter()
                .filter(|(kind, _, _)| kind == "NodeAttestor")
                .map(|(_, name, _)| name.as_str())
                .collect();
            assert_eq!(attestors, [site.cluster.node_attestor.as_str()]);
        }
    }

    #[test]
    fn federation_peers_are_exactly_the_federated_domains_and_mutual() {
        let compiled = compiled(SPIFFE_MESH);
        let context = EmitContext::of(&compiled);
        let mut declared: BTreeSet<(String, String)> = BTreeSet::new();
        for (position, site) in compiled.topology.sites.iter().enumerate() {
            let body = parse(&server_conf(&context, site));
            let federation = block(block(&body, "server"), "federation");
            let endpoint = block(federation, "bundle_endpoint");
            assert_eq!(attribute(endpoint, "port"), &Expression::from(compiled.topology.spire.bundle_port));
            let profiles: Vec<&str> = blocks(endpoint, "profile").map(label).collect();
            assert_eq!(profiles, ["https_spiffe"]);
            // The relationships are ClusterFederatedTrustDomains of spire-controller-manager, not
            // server.conf blocks: one source for them.
            assert_eq!(blocks(federation, "federates_with").count(), 0);
            let peers: Vec<&str> = compiled.plan.sites[position]
                .federation
                .iter()
                .map(|peer| peer.trust_domain.as_str())
                .collect();
            assert_eq!(peers, compiled.graph.domains().federated_with(&site.trust_domain));
            for peer in &compiled.plan.sites[position].federation {
                assert!(peer.bundle_endpoint_url.starts_with("https://"), "{}", peer.bundle_endpoint_url);
                assert_eq!(
                    peer.endpoint_spiffe_id.as_deref(),
                    Some(format!("spiffe://{}/spire/server", peer.trust_domain).as_str())
                );
                declared.insert((site.trust_domain.clone(), peer.trust_domain.clone()));
            }
        }
        for (left, right) in &declared {
            assert!(
                declared.contains(&(right.clone(), left.clone())),
                "{left} federates with {right} one way only"
            );
        }
        // aws and gcp are not a listed pair.
        assert!(!declared.contains(&("aws.example.com".to_owned(), "gcp.example.com".to_owned())));
        assert_eq!(declared.len(), 4);
    }

    #[test]
    fn https_web_uses_acme_when_an_email_is_given_and_a_mounted_certificate_otherwise() {
        let with_acme = fixture("federated-mesh.yaml");
        let context = EmitContext::of(&with_acme);
        let site = &with_acme.topology.sites[0];
        let body = parse(&server_conf(&context, site));
        let endpoint = block(block(block(&body, "server"), "federation"), "bundle_endpoint");
        let profile = blocks(endpoint, "profile").next().unwrap();
        assert_eq!(label(profile), "https_web");
        let acme = block(profile.body(), "acme");
        let url = with_acme.topology.federation.bundle_endpoint(&site.name).unwrap();
        assert_eq!(string(acme, "domain_name"), url.host());
        assert_eq!(attribute(acme, "tos_accepted"), &Expression::Bool(true));

        let without_acme = fixture("seed-multi-cloud-values.yaml");
        let context = EmitContext::of(&without_acme);
        let body = parse(&server_conf(&context, &without_acme.topology.sites[0]));
        let endpoint = block(block(block(&body, "server"), "federation"), "bundle_endpoint");
        let profile = blocks(endpoint, "profile").next().unwrap();
        let serving = block(profile.body(), "serving_cert_file");
        assert_eq!(string(serving, "cert_file_path"), BUNDLE_ENDPOINT_CERT_PATH);
        assert_eq!(string(serving, "key_file_path"), BUNDLE_ENDPOINT_KEY_PATH);
    }

    #[test]
    fn agent_conf_matches_its_server() {
        let compiled = compiled(SPIFFE_MESH);
        let context = EmitContext::of(&compiled);
        for site in &compiled.topology.sites {
            let server = parse(&server_conf(&context, site));
            let agent_body = parse(&agent_conf(&context, site));
            let agent = block(&agent_body, "agent");
            assert_eq!(string(agent, "trust_domain"), site.trust_domain);
            assert_eq!(
                attribute(agent, "server_port"),
                &Expression::from(compiled.topology.spire.server_port)
            );
            assert_eq!(string(agent, "server_address"), "spire-server.spire-system.svc");
            assert_eq!(string(agent, "socket_path"), conventions::SPIRE_SOCKET_PATH);
            assert_eq!(string(agent, "trust_bundle_path"), BUNDLE_PATH);

            let agent_plugins = plugins(&agent_body);
            let (_, attestor, attestor_data) =
                agent_plugins.iter().find(|(kind, _, _)| kind == "NodeAttestor").unwrap();
            let server_plugins = plugins(&server);
            let (_, _, server_data) = server_plugins
                .iter()
                .find(|(kind, name, _)| kind == "NodeAttestor" && name == attestor)
                .unwrap_or_else(|| panic!("the server has no NodeAttestor {attestor}"));
            if attestor == "k8s_psat" {
                // The agent's cluster is the key of the server's `clusters`.
                let cluster = string(attestor_data, "cluster");
                assert_eq!(cluster, site.cluster.name);
                let Expression::Object(clusters) = attribute(server_data, "clusters") else { panic!() };
                assert!(clusters.keys().any(|key| key.to_string().trim_matches('"') == cluster));
            }
            let workload: Vec<&str> = agent_plugins
                .iter()
                .filter(|(kind, _, _)| kind == "WorkloadAttestor")
                .map(|(_, name, _)| name.as_str())
                .collect();
            assert_eq!(workload, ["k8s", "unix"]);
            // The publisher writes the bundle the agent reads.
            let (_, _, publisher) = server_plugins
                .iter()
                .find(|(kind, name, _)| kind == "BundlePublisher" && name == "k8s_configmap")
                .unwrap();
            let Expression::Object(clusters) = attribute(publisher, "clusters") else { panic!() };
            let Some(Expression::Object(target)) = clusters.values().next() else { panic!() };
            let values: Vec<String> = target.values().map(|value| value.to_string()).collect();
            assert!(
                values.contains(&format!("{BUNDLE_CONFIGMAP:?}")) && values.contains(&"\"pem\"".to_owned())
            );
        }
    }

    #[test]
    fn server_environment_names_every_reference_in_server_conf() {
        let compiled = compiled(SPIFFE_MESH);
        let context = EmitContext::of(&compiled);
        for site in &compiled.topology.sites {
            let text = server_conf(&context, site);
            let environment = server_environment(&context);
            for variable in &environment {
                assert!(text.contains(&format!("${}", variable.name)), "{} is not used", variable.name);
            }
            let referenced = text.matches('$').count();
            assert_eq!(referenced, environment.len(), "{text}");
            assert_eq!(
                environment[0].source,
                EnvironmentSource::Secret {
                    name: "spire-db".to_owned(),
                    key: DATASTORE_SECRET_KEY.to_owned()
                }
            );
        }
    }

    #[test]
    fn bootstrap_sets_each_peer_bundle_under_its_own_id_in_both_directions() {
        let compiled = compiled(SPIFFE_MESH);
        let context = EmitContext::of(&compiled);
        let script = federation_bootstrap(&context).unwrap();
        assert!(script.starts_with("#!/usr/bin/env bash\n"));
        assert!(script.contains("\nset -euo pipefail\n"));
        assert!(script.contains("this step is required"));
        assert!(
            script.contains(r#"bundle set -format spiffe -id "spiffe://$domain" <"$workdir/$domain.json""#)
        );
        let reads: Vec<&str> = script.lines().filter(|line| line.starts_with("read_bundle ")).collect();
        assert_eq!(
            reads,
            [
                "read_bundle 'east' 'aws.example.com'",
                "read_bundle 'google' 'gcp.example.com'",
                "read_bundle 'lab' 'lab.example.com'"
            ]
        );
        let stores: Vec<&str> = script.lines().filter(|line| line.starts_with("store_bundle ")).collect();
        // aws (two sites) <-> lab, then gcp <-> lab: every bundle under its own domain's ID.
        assert_eq!(
            stores,
            [
                "store_bundle 'east' 'lab.example.com'",
                "store_bundle 'west' 'lab.example.com'",
                "store_bundle 'lab' 'aws.example.com'",
                "store_bundle 'google' 'lab.example.com'",
                "store_bundle 'lab' 'gcp.example.com'",
            ],
            "{script}"
        );
        // Every read precedes every store.
        let last_read = script.rfind("\nread_bundle '").unwrap();
        let first_store = script.find("\nstore_bundle '").unwrap();
        assert!(last_read < first_store);
        let status = std::process::Command::new("bash").arg("-n").arg("-c").arg(&script).status().unwrap();
        assert!(status.success());
    }

    #[test]
    fn no_bootstrap_without_federation() {
        let compiled = fixture("single-trust-domain.yaml");
        let context = EmitContext::of(&compiled);
        assert!(federation_bootstrap(&context).is_none());
        let mut sink = MemorySink::default();
        emit(&context, &mut sink).unwrap();
        let paths: Vec<&str> = sink.artifacts.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "spire/aws/agent.conf",
                "spire/aws/server.conf",
                "spire/azure/agent.conf",
                "spire/azure/server.conf",
                "spire/gcp/agent.conf",
                "spire/gcp/server.conf"
            ]
        );
    }

    #[test]
    fn shell_quote_survives_single_quotes() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn output_is_deterministic_and_has_no_padded_empty_blocks() {
        let compiled = compiled(SPIFFE_MESH);
        let context = EmitContext::of(&compiled);
        let mut first = MemorySink::default();
        let mut second = MemorySink::default();
        emit(&context, &mut first).unwrap();
        emit(&context, &mut second).unwrap();
        assert_eq!(first.artifacts, second.artifacts);
        for (path, bytes) in &first.artifacts {
            let text = std::str::from_utf8(bytes).unwrap();
            assert!(!text.contains("{  "), "{path}:\n{text}");
            assert!(text.ends_with('\n'));
        }
    }
}
