//! What only the deployer can supply: secrets, an issuer, a default StorageClass where the cluster
//! has none, DNS records weave's Terraform does not create. `out/prerequisites.json` lists them, each
//! with why the output needs it and how to create it; `DEPLOY.md` refers to the list. Nothing a
//! manifest mounts or names is missing from both the output and this list.

use serde::Serialize;

use crate::model::{DatastoreKind, FederationProfile, NetworkKind, Provider, Topology};

/// The Secret key the Tailscale sidecar reads its auth key from.
pub const TAILSCALE_AUTH_KEY: &str = "TS_AUTHKEY";

/// The Secret key the SPIRE server reads its datastore connection string from.
pub const DATASTORE_SECRET_KEY: &str = "connection-string";

/// The Secret holding the upstream CA of a trust domain that spans sites (`upstreamAuthority: disk`).
pub const UPSTREAM_CA_SECRET: &str = "spire-upstream-ca";

/// The mount of Vault's Kubernetes auth method for one site's cluster.
pub fn vault_auth_mount(site: &str) -> String {
    format!("kubernetes-{site}")
}

/// The ClusterIssuer of the bundle endpoints' web certificates when the topology names none.
pub fn default_certificate_issuer(topology: &Topology) -> String {
    format!("{}-bundle-endpoint", topology.mesh.name)
}

/// Whether a site runs anything the Tailscale operator proxies: agents (which other sites may dial,
/// or which dial other sites) or a Prometheus that federation crosses sites for.
fn uses_tailnet(topology: &Topology, site: &crate::model::Site) -> bool {
    let populated = topology.sites.iter().filter(|site| !site.agents.is_empty()).count();
    let federation = topology.observability.metrics.enabled
        && topology.central_metrics_site().is_some_and(|central| {
            (central.name == site.name && populated > usize::from(!central.agents.is_empty()))
                || (central.name != site.name && !site.agents.is_empty())
        });
    federation || (!site.agents.is_empty() && populated > 1)
}

/// One thing the deployer supplies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prerequisite {
    /// The site that needs it, or `*` for every site.
    pub site: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// For `kind: component`: the component's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<&'static str>,
    /// For a StorageClass: whether it must be the cluster's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
    pub why: String,
    pub how: String,
}

/// Every prerequisite of the topology's output, sorted by site, kind and name.
pub fn prerequisites(topology: &Topology) -> Vec<Prerequisite> {
    let mut list = Vec::new();
    let spire_namespace = &topology.spire.namespace;
    for site in &topology.sites {
        let mut push = |kind: &'static str, namespace: Option<&str>, name: &str, why: String, how: String| {
            list.push(Prerequisite {
                site: site.name.clone(),
                kind,
                namespace: namespace.map(str::to_owned),
                name: name.to_owned(),
                component: None,
                default: None,
                why,
                how,
            });
        };
        if topology.networking.kind == NetworkKind::Istio && !site.agents.is_empty() {
            // istiod discovers the endpoints of another cluster's Services (the callee behind a stub
            // Service here) only through that cluster's remote secret.
            for other in
                topology.sites.iter().filter(|other| other.name != site.name && !other.agents.is_empty())
            {
                push(
                    "Secret",
                    Some("istio-system"),
                    &format!("istio-remote-secret-{}", other.cluster.name),
                    format!(
                        "istiod of site {} reads the Services and endpoints of cluster {} (site {}) with it, so that calls to agents there resolve and route through its east-west gateway",
                        site.name, other.cluster.name, other.name
                    ),
                    format!(
                        "`istioctl create-remote-secret --context=<context of {}> --name={} | kubectl apply --context=<context of {}> -f -` once both control planes are installed",
                        other.name, other.cluster.name, site.name
                    ),
                );
            }
        }
        let datastore = &topology.spire.datastore;
        if datastore.kind != DatastoreKind::Sqlite3
            && let Some(secret) = &datastore.connection_secret
        {
            push(
                "Secret",
                Some(spire_namespace),
                secret,
                format!(
                    "the SPIRE server reads its {} connection string from key `{DATASTORE_SECRET_KEY}`",
                    datastore.kind.as_str()
                ),
                format!(
                    "`kubectl -n {spire_namespace} create secret generic {secret} --from-literal={DATASTORE_SECRET_KEY}='<DSN>'` with the DSN of a database reachable from site {}",
                    site.name
                ),
            );
        }
        if topology.spire.upstream_authority.as_deref() == Some("disk") {
            push(
                "Secret",
                Some(spire_namespace),
                UPSTREAM_CA_SECRET,
                format!(
                    "the SPIRE server of site {} signs with the upstream CA that all sites of trust domain {} share",
                    site.name, site.trust_domain
                ),
                format!(
                    "`kubectl -n {spire_namespace} create secret generic {} --from-file=tls.crt=ca.crt --from-file=tls.key=ca.key` with the trust domain's upstream CA",
                    UPSTREAM_CA_SECRET
                ),
            );
        }
        if topology.spire.upstream_authority.as_deref() == Some("vault")
            && let Some(vault) = &topology.spire.vault
        {
            let mount = vault_auth_mount(&site.name);
            push(
                "VaultKubernetesAuthRole",
                None,
                &format!("{mount}/{}", vault.role),
                format!(
                    "the SPIRE server of site {} logs in to {} with its ServiceAccount token (audience `vault`) to get its intermediate CA signed by `{}/root/sign-intermediate`",
                    site.name, vault.address, vault.pki_mount
                ),
                format!(
                    "`vault auth enable -path={mount} kubernetes`, configure it with cluster {}'s API server and CA, then `vault write auth/{mount}/role/{} bound_service_account_names=spire-server bound_service_account_namespaces={spire_namespace} audience=vault token_policies=<a policy allowing update on {}/root/sign-intermediate>`",
                    site.cluster.name, vault.role, vault.pki_mount
                ),
            );
        }
        let bundle_endpoint =
            if topology.federation.enabled { topology.federation.bundle_endpoint(&site.name) } else { None };
        if let Some(endpoint) = bundle_endpoint {
            if topology.federation.profile == FederationProfile::HttpsWeb
                && topology.federation.acme_email.is_none()
            {
                let issuer = topology
                    .federation
                    .certificate_issuer
                    .clone()
                    .unwrap_or_else(|| default_certificate_issuer(topology));
                list.push(Prerequisite {
                    site: site.name.clone(),
                    kind: "component",
                    namespace: None,
                    name: "cert-manager".to_owned(),
                    component: Some("cert-manager"),
                    default: None,
                    why: format!(
                        "the web certificate of site {}'s bundle endpoint ({}) is a cert-manager Certificate",
                        site.name,
                        endpoint.host()
                    ),
                    how: "install cert-manager (with its CRDs) in the cluster before the site's manifests"
                        .to_owned(),
                });
                list.push(Prerequisite {
                    site: site.name.clone(),
                    kind: "ClusterIssuer",
                    namespace: None,
                    name: issuer.clone(),
                    component: None,
                    default: None,
                    why: format!(
                        "cert-manager issues the bundle endpoint certificate for {} from this ClusterIssuer",
                        endpoint.host()
                    ),
                    how: format!(
                        "create ClusterIssuer `{issuer}` for a public CA the other trust domains trust (for example an ACME issuer with a DNS-01 solver for {})",
                        endpoint.host()
                    ),
                });
            }
            if site.provider == Provider::Onprem {
                // Resolved by the peers' servers, whatever their site.
                list.push(Prerequisite {
                    site: "*".to_owned(),
                    kind: "DNSRecord",
                    namespace: None,
                    name: endpoint.host().to_owned(),
                    component: None,
                    default: None,
                    why: format!(
                        "the other trust domains fetch site {}'s bundle from {}",
                        site.name, endpoint.url
                    ),
                    how: format!(
                        "point {} at the address of Service spire-bundle-endpoint in namespace {spire_namespace} (`kubectl -n {spire_namespace} get svc spire-bundle-endpoint`)",
                        endpoint.host()
                    ),
                });
            }
        }
        if topology.networking.kind == NetworkKind::Vpn
            && site.provider == Provider::Onprem
            && !site.agents.is_empty()
            && let Some(ingress_cidr) = &site.cluster.ingress_cidr
        {
            // The agents other sites dial are LoadBalancer Services at fixed addresses of the
            // ingress range (`metallb.io/loadBalancerIPs`); on-prem, MetalLB assigns them.
            list.push(Prerequisite {
                site: site.name.clone(),
                kind: "component",
                namespace: None,
                name: "metallb".to_owned(),
                component: Some("metallb"),
                default: None,
                why: "the internal load balancers of the agents other sites dial over the VPN are LoadBalancer Services at fixed addresses of cluster.ingressCidr, which MetalLB assigns and announces on-prem".to_owned(),
                how: "`helm upgrade --install metallb metallb/metallb --namespace metallb-system --create-namespace` (chart repo https://metallb.github.io/metallb), with an L2Advertisement or BGPAdvertisement for the pool below that your VPN device routes to".to_owned(),
            });
            list.push(Prerequisite {
                site: site.name.clone(),
                kind: "IPAddressPool",
                namespace: Some("metallb-system".to_owned()),
                name: format!("{}-ingress", topology.mesh.name),
                component: None,
                default: None,
                why: format!(
                    "MetalLB gives the agents' LoadBalancer Services the addresses weave assigned them from {ingress_cidr}"
                ),
                how: format!(
                    "an `IPAddressPool` (metallb.io/v1beta1) with `spec.addresses: [{ingress_cidr}]` and `autoAssign: false`, so only the Services that ask for these addresses get them"
                ),
            });
        }
        if topology.networking.kind == NetworkKind::Tailscale
            && let Some(tailnet) = &topology.networking.tailscale.tailnet
            && uses_tailnet(topology, site)
        {
            use super::tailnet::{OPERATOR_NAMESPACE, OPERATOR_OAUTH_SECRET, OPERATOR_TAG};
            list.push(Prerequisite {
                site: site.name.clone(),
                kind: "component",
                namespace: None,
                name: "tailscale-operator".to_owned(),
                component: Some("tailscale-operator"),
                default: None,
                why: format!(
                    "the Tailscale Kubernetes operator turns the site's `tailscale` LoadBalancer Services and `tailscale.com/tailnet-fqdn` Services into proxies on tailnet {tailnet}"
                ),
                how: format!(
                    "apply tailscale/policy.hujson first (it declares {OPERATOR_TAG}), then `helm upgrade --install tailscale-operator tailscale/tailscale-operator --namespace {OPERATOR_NAMESPACE} --create-namespace --set-string oauth.clientId=<id> --set-string oauth.clientSecret=<secret> --set-string operatorConfig.hostname=tailscale-operator-{}` (chart repo https://pkgs.tailscale.com/helmcharts)",
                    site.name
                ),
            });
            list.push(Prerequisite {
                site: site.name.clone(),
                kind: "Secret",
                namespace: Some(OPERATOR_NAMESPACE.to_owned()),
                name: OPERATOR_OAUTH_SECRET.to_owned(),
                component: None,
                default: None,
                why: "the operator creates its proxies' devices with this OAuth client (keys `client_id`, `client_secret`)".to_owned(),
                how: format!(
                    "create an OAuth client in the Tailscale admin console with the `devices:core` and `auth_keys` write scopes and tag {OPERATOR_TAG}; the component's Helm install (`oauth.clientId`, `oauth.clientSecret`) stores it as Secret {OPERATOR_OAUTH_SECRET}"
                ),
            });
        }
        if topology.networking.kind == NetworkKind::Istio {
            list.push(Prerequisite {
                site: site.name.clone(),
                kind: "component",
                namespace: None,
                name: "istio".to_owned(),
                component: Some("istio"),
                default: None,
                why: "the site's east-west gateway and the agents' sidecars are Istio's (istio.yaml)".to_owned(),
                how: format!(
                    "install Istio's CRDs and control plane for multi-cluster mesh `{}` (istioctl install, or the base and istiod Helm charts), network `{}`",
                    topology.networking.istio.mesh_id, site.name
                ),
            });
        }
        if site.provider == Provider::Onprem {
            list.push(Prerequisite {
                site: site.name.clone(),
                kind: "StorageClass",
                namespace: None,
                name: "default".to_owned(),
                component: None,
                default: Some(true),
                why: "the SPIRE server's volume claim takes the cluster's default StorageClass".to_owned(),
                how: "mark one StorageClass default (`storageclass.kubernetes.io/is-default-class: \"true\"`), for example local-path-provisioner or your storage vendor's CSI class".to_owned(),
            });
        }
    }
    list.extend(super::monitoring::prerequisites(topology));
    list.sort_by(|left, right| {
        (left.site.as_str(), left.kind, left.name.as_str()).cmp(&(
            right.site.as_str(),
            right.kind,
            right.name.as_str(),
        ))
    });
    list.dedup();
    list
}
