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
#[cfg(test)]
mod free_text;
mod identity;
mod names;
mod networking;
mod references;
mod resilience;
pub mod secrets;
mod sites;
mod values;

use crate::diagnostics::{Diagnostic, Span, shorten};
use crate::graph::MeshGraph;
use crate::load::{Document, Limits};
use crate::model::Topology;
use crate::plan::Plan;

/// What the rules that read no plan read: the model, the graph and the document.
pub struct ModelContext<'a> {
    pub topology: &'a Topology,
    pub graph: &'a MeshGraph,
    pub document: &'a Document,
    pub limits: &'a Limits,
    /// [`secrets::scan`] of the document, run before the rules (beside the schema).
    pub secrets: &'a [Diagnostic],
}

/// What every rule reads: the [`ModelContext`] and the plan.
pub struct CheckContext<'a> {
    pub model: ModelContext<'a>,
    pub plan: &'a Plan,
}

impl<'a> std::ops::Deref for CheckContext<'a> {
    type Target = ModelContext<'a>;

    fn deref(&self) -> &ModelContext<'a> {
        &self.model
    }
}

impl ModelContext<'_> {
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

/// A rule family: appends its diagnostics. Most read the model alone, and run while the plan is
/// built ([`run_model_rules`]); the others read the plan too.
enum Rule {
    Model(fn(&ModelContext<'_>, &mut Vec<Diagnostic>)),
    Plan(PlanRule),
}

/// Every rule family, in the order of DESIGN.md §5.
const RULES: &[Rule] = &[
    Rule::Model(sites::check),
    Rule::Model(names::check),
    Rule::Model(references::check),
    Rule::Plan(identity::check),
    Rule::Plan(federation::check),
    Rule::Plan(actions::check),
    Rule::Model(resilience::check),
    Rule::Plan(networking::check),
    Rule::Model(secrets::check),
    Rule::Model(values::check),
];

/// The diagnostics of the rules that read no plan, each with its rule's position in [`RULES`].
pub struct ModelFindings(Vec<(usize, Vec<Diagnostic>)>);

/// Runs the rules that read no plan (`analyze` runs them while it builds the plan).
pub fn run_model_rules(context: &ModelContext<'_>) -> ModelFindings {
    let findings = RULES
        .iter()
        .enumerate()
        .filter_map(|(index, rule)| match rule {
            Rule::Model(rule) => {
                let mut diagnostics = Vec::new();
                rule(context, &mut diagnostics);
                Some((index, diagnostics))
            }
            Rule::Plan(_) => None,
        })
        .collect();
    ModelFindings(findings)
}

/// At most this many semantic diagnostics are reported; the rest are counted in one last
/// diagnostic. 100,000 calls to a misspelt agent would otherwise print a 30 MB report.
const MAX_DIAGNOSTICS: usize = 200;

/// Runs the rules that read the plan, and gathers every rule's diagnostics with `model`'s (what
/// [`run_model_rules`] found of the same model). Diagnostics come back sorted by position, then code
/// (past [`MAX_DIAGNOSTICS`], the first ones and a count of the rest).
pub fn run(context: &CheckContext<'_>, model: ModelFindings) -> Vec<Diagnostic> {
    let mut diagnostics: Vec<Diagnostic> = run_rules(context, model).into_iter().flatten().collect();
    sort(&mut diagnostics);
    for diagnostic in &mut diagnostics {
        shorten(&mut diagnostic.message);
        shorten(&mut diagnostic.help);
    }
    if diagnostics.len() > MAX_DIAGNOSTICS {
        let not_shown = diagnostics.len() - MAX_DIAGNOSTICS;
        let first = diagnostics[MAX_DIAGNOSTICS].clone();
        diagnostics.truncate(MAX_DIAGNOSTICS);
        diagnostics.push(Diagnostic::error(
            first.code,
            format!("{not_shown} more problems are not shown; the first of them: {}", first.message),
            first.span,
            first.help,
        ));
    }
    diagnostics
}

/// Each rule's diagnostics, in the order of [`RULES`]: `model`'s, and those of the rules that read
/// the plan. Those only read the context, so they run on two threads, each taking the next rule not
/// yet taken; the result does not depend on which thread ran which rule.
fn run_rules(context: &CheckContext<'_>, model: ModelFindings) -> Vec<Vec<Diagnostic>> {
    let plan_rules: Vec<(usize, PlanRule)> = RULES
        .iter()
        .enumerate()
        .filter_map(|(index, rule)| match rule {
            Rule::Plan(rule) => Some((index, *rule)),
            Rule::Model(_) => None,
        })
        .collect();
    let done = crate::work::run(
        vec![Vec::new(), Vec::new()],
        plan_rules.len(),
        |done: &mut Vec<(usize, Vec<Diagnostic>)>, task| {
            let (index, rule) = plan_rules[task];
            let mut diagnostics = Vec::new();
            rule(context, &mut diagnostics);
            done.push((index, diagnostics));
            Ok::<(), std::convert::Infallible>(())
        },
    );
    let mut by_rule: Vec<Vec<Diagnostic>> = vec![Vec::new(); RULES.len()];
    for (index, diagnostics) in model.0.into_iter().chain(done.unwrap_or_default().into_iter().flatten()) {
        by_rule[index] = diagnostics;
    }
    by_rule
}

type PlanRule = fn(&CheckContext<'_>, &mut Vec<Diagnostic>);

/// Sorts diagnostics by line, column and code, and drops exact duplicates.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|left, right| {
        let position = |diagnostic: &Diagnostic| diagnostic.span.map(|span| (span.line, span.column));
        position(left)
            .cmp(&position(right))
            .then(left.code.cmp(&right.code))
            .then(left.message.cmp(&right.message))
    });
    diagnostics.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::MAX_MESSAGE_BYTES;

    #[test]
    fn long_messages_keep_their_start_and_end() {
        let mut message = format!("agent name `{}é` is longer than 63 characters", "a".repeat(10_000));
        shorten(&mut message);
        assert!(message.len() <= MAX_MESSAGE_BYTES + "…".len() + 1);
        assert!(message.starts_with("agent name `aaa"));
        assert!(message.ends_with("é` is longer than 63 characters"));
        let mut short = "duplicate key `a`".to_owned();
        shorten(&mut short);
        assert_eq!(short, "duplicate key `a`");
    }

    #[test]
    fn a_flood_of_problems_is_cut_short_and_counted() {
        let calls: String = (0..1_000)
            .map(|index| format!("          - agent: ghost{index}\n            actions: [a]\n"))
            .collect();
        let text = format!(
            "sites:\n  aws:\n    provider: aws\n    region: us-east-1\n    trustDomain: aws.example.com\n    agents:\n      - name: caller\n        calls:\n{calls}"
        );
        let analysis =
            crate::analyze(&crate::source::Source::new("flood.yaml", text), &crate::load::Limits::default());
        let unknown: Vec<&Diagnostic> =
            analysis.diagnostics.iter().filter(|diagnostic| diagnostic.code == "E003").collect();
        assert!(unknown.len() <= MAX_DIAGNOSTICS + 1, "{} diagnostics", unknown.len());
        let last = analysis.diagnostics.last().unwrap();
        assert!(last.message.contains("more problems are not shown"), "{}", last.message);
        assert!(last.span.is_some());
    }
}
