//! Names: duplicates (E002) and names that become Kubernetes names or file paths (E013).

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use super::ModelContext;
use crate::diagnostics::{Code, Diagnostic};
use crate::model::Provider;

pub(super) fn check(context: &ModelContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    duplicates(context, diagnostics);
    labels(context, diagnostics);
}

fn duplicates(context: &ModelContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    // The model holds sites sorted by name; a duplicate is the later one in the file, and the
    // first is the one written first.
    let line_of = |pointer: &str| context.at(pointer).map_or(usize::MAX, |span| span.line);
    let mut site_order: Vec<&crate::model::Site> = topology.sites.iter().collect();
    site_order.sort_by_cached_key(|site| line_of(&site.pointer));
    let mut sites: BTreeMap<&str, &str> = BTreeMap::new();
    for site in site_order {
        if let Some(first) = sites.get(site.name.as_str()) {
            diagnostics.push(
                Diagnostic::error(
                    Code::E002,
                    format!("site `{}` is defined twice", site.name),
                    context.at(&site.pointer),
                    format!(
                        "the seed shorthand `{}:` and `sites.{}` name the same site; the first is `{}` at line {}: keep one",
                        site.name,
                        site.name,
                        crate::schema::display_pointer(first),
                        line_of(first)
                    ),
                )
                .with_label("second definition"),
            );
        } else {
            sites.insert(&site.name, &site.pointer);
        }
    }
    // The order of the agents' definitions costs locating each one in the file: worked out only
    // when two agents share a name or an identity, which few topologies have.
    if all_distinct(topology.agents.iter().map(|agent| agent.name.as_str()))
        && all_distinct(topology.agents.iter().map(|agent| agent.spiffe_id.as_str()))
    {
        return;
    }
    let mut agent_order: Vec<usize> = (0..topology.agents.len()).collect();
    agent_order.sort_by_cached_key(|&position| line_of(&topology.agents[position].pointer));
    // Looked up only, never walked in order: hashed.
    let mut agents: HashMap<&str, usize> = HashMap::with_capacity(topology.agents.len());
    let mut spiffe_ids: HashMap<&str, usize> = HashMap::with_capacity(topology.agents.len());
    for position in agent_order {
        let agent = &topology.agents[position];
        if let Some(&first) = agents.get(agent.name.as_str()) {
            let first_site = &topology.sites[topology.agents[first].site].name;
            let first_line = line_of(&topology.agents[first].pointer);
            diagnostics.push(
                Diagnostic::error(
                    Code::E002,
                    format!("agent name `{}` is used twice", agent.name),
                    context.value_at(&format!("{}/name", agent.pointer)),
                    format!(
                        "agent names are unique in the whole mesh (they name Deployments, tags and policy entries); the first `{}` is in site `{first_site}` at line {first_line}: rename one",
                        agent.name
                    ),
                )
                .with_label("second definition"),
            );
        } else {
            agents.insert(&agent.name, position);
        }
        if let Some(&first) = spiffe_ids.get(agent.spiffe_id.as_str()) {
            if topology.agents[first].name != agent.name {
                let pointer = if agent.explicit_spiffe_id {
                    format!("{}/spiffeId", agent.pointer)
                } else {
                    format!("{}/name", agent.pointer)
                };
                diagnostics.push(Diagnostic::error(
                    Code::E002,
                    format!(
                        "agent `{}` has the SPIFFE ID `{}`, already the identity of agent `{}`",
                        agent.name, agent.spiffe_id, topology.agents[first].name
                    ),
                    context.value_at(&pointer),
                    "two workloads with one identity cannot be told apart by mTLS or policy; give each agent its own spiffeId (or use {name} in identity.idTemplate)",
                ));
            }
        } else {
            spiffe_ids.insert(&agent.spiffe_id, position);
        }
    }
}

/// Whether no two of `names` are equal.
fn all_distinct<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> bool {
    let mut seen = HashSet::with_capacity(names.len());
    names.into_iter().all(|name| seen.insert(name))
}

fn labels(context: &ModelContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    // Each name with its pointer, as a written part and a fixed suffix: the pointer is put
    // together only for a name with a problem (a mesh has tens of thousands of agents).
    let mut named: Vec<((&str, &str), &str, &str)> = vec![
        (("", "/mesh/name"), topology.mesh.name.as_str(), "mesh name"),
        (("", "/mesh/namespace"), topology.mesh.namespace.as_str(), "namespace"),
        (("", "/spire/namespace"), topology.spire.namespace.as_str(), "namespace"),
        (
            ("", "/networking/tailscale/authKeySecret"),
            topology.networking.tailscale.auth_key_secret.as_str(),
            "Secret name",
        ),
    ];
    if let Some(secret) = &topology.spire.datastore.connection_secret {
        named.push((("", "/spire/datastore/connectionSecret"), secret.as_str(), "Secret name"));
    }
    for site in &topology.sites {
        // A shorthand site's name is its provider key, always a valid label.
        if Provider::parse(site.pointer.trim_start_matches('/')).is_none() {
            named.push(((&site.pointer, ""), site.name.as_str(), "site name"));
        }
        named.push(((&site.pointer, "/cluster/name"), site.cluster.name.as_str(), "cluster name"));
    }
    for agent in &topology.agents {
        named.push(((&agent.pointer, "/name"), agent.name.as_str(), "agent name"));
    }
    for ((written, suffix), name, what) in named {
        if super::secrets::known_secret(name).is_some() {
            // A pasted secret is reported once, as E012, and never echoed back into a log.
            continue;
        }
        if let Some(problem) = label_problem(name) {
            let pointer = format!("{written}{suffix}");
            if !context.written(&pointer) && what == "cluster name" {
                // A defaulted cluster name is derived from the mesh and site names, which are
                // checked themselves; one diagnostic at the source is enough.
                continue;
            }
            let escapes = name.contains('/') || name.contains('\\') || name == "." || name == "..";
            let help = if escapes {
                format!(
                    "this {what} becomes a directory or file name under the output directory; use letters, digits and `-` only"
                )
            } else {
                format!(
                    "a {what} must be a DNS-1123 label: at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit (for example `{}`)",
                    suggest_label(name)
                )
            };
            let located = context.document.locate(&pointer);
            let span = match located {
                // A site is named by its key; every other name by its value.
                Some(located) if what == "site name" => located.key.or(Some(located.value)),
                Some(located) => Some(located.value),
                None => context.at(&pointer),
            };
            diagnostics.push(Diagnostic::error(Code::E013, format!("{what} `{name}` {problem}"), span, help));
        }
    }
}

/// Why `name` is not a DNS-1123 label, if it is not.
pub(crate) fn label_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.contains('/') || name.contains('\\') || name == "." || name == ".." {
        return Some("would escape the output directory");
    }
    if name.len() > 63 {
        return Some("is longer than 63 characters");
    }
    if !name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-') {
        return Some("may hold only lowercase letters, digits and `-`");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must start and end with a letter or digit");
    }
    None
}

fn suggest_label(name: &str) -> String {
    let mut label: String = name
        .to_lowercase()
        .chars()
        .map(|character| if character.is_ascii_alphanumeric() { character } else { '-' })
        .collect();
    label = label.trim_matches('-').to_owned();
    label.truncate(63);
    if label.is_empty() { "agent-1".into() } else { label }
}
