//! Identity: trust domain names and SPIFFE IDs (E004), the declared trust domains against the sites
//! (E005), shared trust domains (E014, W106), node attestors that cannot register workloads (E020),
//! and the issuer of the bundle endpoints' web certificates (W109).

use std::collections::BTreeSet;

use super::CheckContext;
use crate::diagnostics::{Code, Diagnostic};
use crate::schema::did_you_mean;

/// The placeholders `identity.idTemplate` may use.
pub const TEMPLATE_PLACEHOLDERS: [&str; 5] = ["trustDomain", "site", "provider", "region", "name"];

pub(super) fn check(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;

    template(context, diagnostics);
    node_attestors(context, diagnostics);
    certificate_issuer(context, diagnostics);

    for site in &topology.sites {
        if !context.written(&format!("{}/trustDomain", site.pointer)) {
            // A missing trust domain is a schema error (E001), reported there.
            continue;
        }
        if let Some(problem) = trust_domain_problem(&site.trust_domain) {
            diagnostics.push(Diagnostic::error(
                Code::E004,
                format!("trust domain `{}` {problem}", site.trust_domain),
                context.value_at(&format!("{}/trustDomain", site.pointer)),
                "a SPIFFE trust domain holds only lowercase letters, digits, `.`, `-` and `_` (for example `aws.company.com`)",
            ));
        }
    }

    for agent in &topology.agents {
        let site = &topology.sites[agent.site];
        if trust_domain_problem(&site.trust_domain).is_some() {
            continue;
        }
        let pointer = if agent.explicit_spiffe_id {
            format!("{}/spiffeId", agent.pointer)
        } else {
            "/identity/idTemplate".to_owned()
        };
        match spiffe_id_problem(&agent.spiffe_id) {
            Some(problem) => diagnostics.push(Diagnostic::error(
                Code::E004,
                format!("the SPIFFE ID of `{}`, `{}`, {problem}", agent.name, agent.spiffe_id),
                context.value_at(&pointer),
                "a SPIFFE ID is `spiffe://<trust domain>/<path>`, with path segments of letters, digits, `.`, `-` and `_`",
            )),
            None => {
                let id_domain = agent.spiffe_id["spiffe://".len()..].split('/').next().unwrap_or_default();
                if agent.explicit_spiffe_id && id_domain != site.trust_domain {
                    diagnostics.push(Diagnostic::error(
                        Code::E004,
                        format!(
                            "the SPIFFE ID of `{}` is in trust domain `{id_domain}`, but its site `{}` is in `{}`",
                            agent.name, site.name, site.trust_domain
                        ),
                        context.value_at(&pointer),
                        format!("SPIRE in `{}` can only issue IDs of its own trust domain; write `spiffe://{}/...`", site.trust_domain, site.trust_domain),
                    ));
                }
            }
        }
    }

    declared_domains(context, diagnostics);
    shared_domains(context, diagnostics);
}

/// E020: a cloud node attestor on a site. Every site runs Kubernetes, where spire-controller-manager
/// registers the workloads and parents their entries on the IDs `k8s_psat` gives the nodes' SPIRE
/// agents; an agent attested by a cloud attestor has another ID, so no pod of the site would get an
/// SVID. `azure_msi` cannot attest more than one node of a scale set at all (spiffe/spire#2527).
fn node_attestors(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    use crate::model::NodeAttestor;
    for site in &context.topology.sites {
        let attestor = site.cluster.node_attestor;
        if attestor == NodeAttestor::K8sPsat {
            continue;
        }
        let why = if attestor == NodeAttestor::AzureMsi {
            "the nodes of an AKS scale set share one managed identity, so only the first node attests (spiffe/spire#2527), and"
        } else {
            "a node attested by it gets a SPIRE agent ID that"
        };
        diagnostics.push(Diagnostic::error(
            Code::E020,
            format!(
                "site `{}` attests its nodes with `{}`: {why} spire-controller-manager parents workload entries only on `k8s_psat` agent IDs, so no agent of the site would get an SVID",
                site.name,
                attestor.as_str()
            ),
            context.value_at(&format!("{}/cluster/nodeAttestor", site.pointer)),
            "remove `nodeAttestor` (`k8s_psat` is the default and needs no cloud IAM) or set it to `k8s_psat`",
        ));
    }
}

/// W109: `https_web` bundle endpoints without ACME and without a named ClusterIssuer.
fn certificate_issuer(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    use crate::model::FederationProfile;
    let federation = &context.topology.federation;
    if !federation.enabled
        || federation.profile != FederationProfile::HttpsWeb
        || federation.acme_email.is_some()
        || federation.certificate_issuer.is_some()
        || federation.bundle_endpoints.is_empty()
    {
        return;
    }
    let issuer = crate::plan::prerequisites::default_certificate_issuer(context.topology);
    diagnostics.push(Diagnostic::error(
        Code::W109,
        format!(
            "the `https_web` bundle endpoints need a web certificate, and neither `acmeEmail` nor `certificateIssuer` says where it comes from: the Certificates name ClusterIssuer `{issuer}`, which you must create (prerequisites.json)"
        ),
        context.at("/federation"),
        format!(
            "set `federation.certificateIssuer` to the cert-manager ClusterIssuer you use, or `acmeEmail` for SPIRE's own ACME; or create ClusterIssuer `{issuer}`"
        ),
    ));
}

fn template(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let template = &context.topology.identity.id_template;
    let mut rest = template.as_str();
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let placeholder = &after[..close];
        if !TEMPLATE_PLACEHOLDERS.contains(&placeholder) {
            let known: Vec<String> = TEMPLATE_PLACEHOLDERS.iter().map(|name| name.to_string()).collect();
            diagnostics.push(Diagnostic::error(
                Code::E004,
                format!("identity.idTemplate uses `{{{placeholder}}}`, which is not a placeholder"),
                context.value_at("/identity/idTemplate"),
                match did_you_mean(placeholder, &known) {
                    Some(suggestion) => format!("did you mean `{{{suggestion}}}`?"),
                    None => format!("the placeholders are {{{}}}", TEMPLATE_PLACEHOLDERS.join("}, {")),
                },
            ));
        }
        rest = &after[close + 1..];
    }
    if context.written("/identity/idTemplate")
        && !template.contains("{name}")
        && context.topology.agents.len() > 1
    {
        diagnostics.push(Diagnostic::error(
            Code::E004,
            "identity.idTemplate does not contain `{name}`, so agents would share SPIFFE IDs",
            context.value_at("/identity/idTemplate"),
            "include `{name}` in the path, as in `spiffe://{trustDomain}/agent/{name}`",
        ));
    }
}

fn declared_domains(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    let Some(declared) = &topology.declared_trust_domains else { return };
    // A site without `trustDomain` is one E001, reported by the schema: its domain is unknown, so it
    // is neither an undeclared domain nor proof that a declared one is unused.
    let (sites, unwritten): (Vec<_>, Vec<_>) =
        topology.sites.iter().partition(|site| context.written(&format!("{}/trustDomain", site.pointer)));
    let used: BTreeSet<&str> = sites.iter().map(|site| site.trust_domain.as_str()).collect();
    let declared_names: BTreeSet<&str> = declared.iter().map(|named| named.name.as_str()).collect();
    // A misspelled declaration is close to a domain the sites use and that is not declared yet.
    let used_list: Vec<String> = used.difference(&declared_names).map(|name| name.to_string()).collect();
    for named in declared {
        if !used.contains(named.name.as_str()) && unwritten.is_empty() {
            let help = match did_you_mean(&named.name, &used_list) {
                Some(suggestion) => format!(
                    "the sites use `{suggestion}`: write that here, so SPIRE, OPA and the trust bundles agree"
                ),
                None => "remove it, or add a site in this trust domain".to_owned(),
            };
            diagnostics.push(
                Diagnostic::error(
                    Code::E005,
                    format!("global.trustDomains lists `{}`, which no enabled site uses", named.name),
                    context.value_at(&named.pointer),
                    help,
                )
                .with_label("declared here, used nowhere"),
            );
        }
    }
    for site in sites {
        if !declared_names.contains(site.trust_domain.as_str()) {
            diagnostics.push(Diagnostic::error(
                Code::E005,
                format!(
                    "site `{}` uses trust domain `{}`, which global.trustDomains does not list",
                    site.name, site.trust_domain
                ),
                context.value_at(&format!("{}/trustDomain", site.pointer)),
                "add it to global.trustDomains, or correct the spelling here",
            ));
        }
    }
}

fn shared_domains(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    for domain in context.graph.domains().trust_domains() {
        let sites = context.graph.domains().sites_of_trust_domain(domain);
        if sites.len() < 2 {
            continue;
        }
        let second = &topology.sites[sites[1]];
        let names: Vec<&str> = sites.iter().map(|&site| topology.sites[site].name.as_str()).collect();
        match topology.spire.upstream_authority.as_deref() {
            None => diagnostics.push(Diagnostic::error(
                Code::E014,
                format!("trust domain `{domain}` spans sites {} without a shared upstream CA", names.join(", ")),
                context.value_at(&format!("{}/trustDomain", second.pointer)),
                "set `spire.upstreamAuthority: vault` with `spire.vault.address`, so every SPIRE server of the domain gets its intermediate from one Vault PKI engine, or give each site its own trust domain and federate them",
            )),
            Some("disk") => diagnostics.push(Diagnostic::error(
                Code::E014,
                format!(
                    "trust domain `{domain}` spans sites {} with `upstreamAuthority: disk`, which copies the domain's CA private key into every one of those clusters",
                    names.join(", ")
                ),
                context.value_at("/spire/upstreamAuthority"),
                "use `spire.upstreamAuthority: vault` with `spire.vault.address`: the root key stays in Vault and each server holds only its own intermediate",
            )),
            Some("vault") if topology.spire.vault.is_none() => diagnostics.push(Diagnostic::error(
                Code::E014,
                format!(
                    "trust domain `{domain}` spans sites {} with `upstreamAuthority: vault`, but `spire.vault` does not say which Vault signs",
                    names.join(", ")
                ),
                context.value_at("/spire/upstreamAuthority"),
                "add `spire.vault: {address: https://vault.example.com:8200}` (and `pkiMount`, `role` if not `pki` and `spire-server`)",
            )),
            Some(_) => {}
        }
        if context.plan.allow_same_trust_domain() {
            diagnostics.push(Diagnostic::error(
                Code::W106,
                format!(
                    "allowSameTrustDomain with trust domain `{domain}` spanning sites {}: every agent may call every other across clouds",
                    names.join(", ")
                ),
                context.value_at("/authorization/allowSameTrustDomain"),
                "declare the calls you need instead, or give each site its own trust domain",
            ));
        }
    }
}

/// Why `name` is not a valid SPIFFE trust domain name, if it is not.
pub(crate) fn trust_domain_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.len() > 255 {
        return Some("is longer than 255 characters");
    }
    if name.contains("://") {
        return Some("is a URL; a trust domain is a bare name");
    }
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'.' | b'-' | b'_'))
    {
        return Some("may hold only lowercase letters, digits, `.`, `-` and `_`");
    }
    None
}

/// Why `id` is not a valid SPIFFE ID, if it is not.
pub(crate) fn spiffe_id_problem(id: &str) -> Option<String> {
    let Some(rest) = id.strip_prefix("spiffe://") else {
        return Some("does not start with `spiffe://`".into());
    };
    let (domain, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    if let Some(problem) = trust_domain_problem(domain) {
        return Some(format!("has a trust domain that {problem}"));
    }
    if path.is_empty() {
        return Some("has no path, so it names the trust domain rather than a workload".into());
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Some("has an empty path segment (`//` or a trailing `/`)".into());
        }
        if segment == "." || segment == ".." {
            return Some("has a `.` or `..` path segment".into());
        }
        if !segment.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_')) {
            return Some(format!(
                "has path segment `{segment}` with characters other than letters, digits, `.`, `-` and `_`"
            ));
        }
    }
    None
}
