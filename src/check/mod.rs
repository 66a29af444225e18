//! Check: the semantic rules of DESIGN.md §5 over the model and the graph.
//!
//! One file per rule family. Each rule reads the normalized [`Topology`] and the [`MeshGraph`], and
//! points back into the file through the element's JSON pointer and the loaded document's spans.
//! Every rule runs, whatever the others found: `validate` reports all problems at once, sorted by
//! position.
//!
//! Architecture invariant: anything an emitter could fail on is a check here, so emitters never fail.

mod actions;
mod federation;
mod identity;
mod names;
mod networking;
mod references;
mod resilience;
mod secrets;
mod sites;

use crate::diagnostics::{Diagnostic, Span};
use crate::graph::MeshGraph;
use crate::load::{Document, Limits};
use crate::model::Topology;

/// What every rule reads.
pub struct CheckContext<'a> {
    pub topology: &'a Topology,
    pub graph: &'a MeshGraph,
    pub document: &'a Document,
    pub limits: &'a Limits,
}

impl CheckContext<'_> {
    /// The span to underline for the element at `pointer`: its key when it is a mapping entry,
    /// else its value; the nearest written ancestor when the element is a default.
    pub fn at(&self, pointer: &str) -> Option<Span> {
        Some(self.document.locate_nearest(pointer).primary())
    }

    /// The span of the value at `pointer` (the nearest written ancestor's when absent).
    pub fn value_at(&self, pointer: &str) -> Option<Span> {
        Some(self.document.locate_nearest(pointer).value)
    }

    /// Whether the document has a node at `pointer` (the key was written, not defaulted).
    pub fn written(&self, pointer: &str) -> bool {
        self.document.locate(pointer).is_some()
    }
}

/// A rule family: appends its diagnostics.
type Rule = fn(&CheckContext<'_>, &mut Vec<Diagnostic>);

/// Every rule family, in the order of DESIGN.md §5.
const RULES: &[Rule] = &[
    sites::check,
    names::check,
    references::check,
    identity::check,
    federation::check,
    actions::check,
    resilience::check,
    networking::check,
    secrets::check,
];

/// Runs every rule. Diagnostics come back sorted by position, then code.
pub fn run(context: &CheckContext<'_>) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for rule in RULES {
        rule(context, &mut diagnostics);
    }
    sort(&mut diagnostics);
    diagnostics
}

/// Sorts diagnostics by line, column and code, and drops exact duplicates.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|left, right| {
        let position = |diagnostic: &Diagnostic| diagnostic.span.map(|span| (span.line, span.column));
        position(left)
            .cmp(&position(right))
            .then(left.code.cmp(right.code))
            .then(left.message.cmp(&right.message))
    });
    diagnostics.dedup();
}

/// Every code this module can report, with its one-line rule (DESIGN.md §5), for docs and tests.
pub const CODES: &[(&str, &str)] = &[
    ("E000", "YAML syntax error, duplicate key, alias bomb, or input over the size, depth or count limits"),
    ("E001", "schema: wrong type, missing required key, unknown key"),
    ("E002", "duplicate site or agent name; duplicate SPIFFE ID"),
    ("E003", "unknown reference: calls.agent, fallback, metrics.central, bundleEndpoints key, pairs entry"),
    ("E004", "invalid trust domain name or SPIFFE ID"),
    ("E005", "global.trustDomains disagrees with the sites' trust domains"),
    ("E006", "a call crosses trust domains that are not federated"),
    (
        "E007",
        "federation inconsistent: missing bundle endpoint, federation within one domain, bad bundle URL",
    ),
    ("E008", "an action in calls is not among the callee's capabilities"),
    ("E009", "fallback in the same site, or serving fewer actions than its primary"),
    ("E010", "overlapping or missing pod CIDRs (vpn)"),
    ("E011", "PodDisruptionBudget minAvailable ≥ replicas"),
    ("E012", "a secret inline"),
    ("E013", "a name that is not a DNS-1123 label, or would escape the output directory"),
    ("E014", "one trust domain spans several sites without spire.upstreamAuthority"),
    ("E015", "networking.type and networking.tailscale.enabled disagree; tailscale without tailnet"),
    ("W101", "an agent that serves nothing and calls nothing"),
    ("W102", "a public action also granted explicitly on an edge"),
    ("W103", "a site with no agents"),
    ("W104", "a secret-looking value in a field that is not meant to hold one"),
    ("W105", "federation.pairs is `all` while only some federated pairs are ever called"),
    ("W106", "allowSameTrustDomain while one trust domain spans several sites"),
    ("W107", "a wildcard or empty action list on a call"),
];
