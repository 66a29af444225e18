//! Actions: calls granting actions the callee does not serve (E008), idle agents (W101), grants the
//! public actions already make (W102), wildcard or empty grants (W107).

use super::CheckContext;
use crate::diagnostics::{Code, Diagnostic};

pub(super) fn check(context: &CheckContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let topology = context.topology;
    let plan = context.plan;
    for agent in &topology.agents {
        if agent.capabilities.is_empty() && agent.calls.is_empty() {
            diagnostics.push(Diagnostic::error(
                Code::W101,
                format!("agent `{}` serves nothing and calls nothing", agent.name),
                context.value_at(&format!("{}/name", agent.pointer)),
                "give it `capabilities` (the actions it serves) or `calls`, or remove it",
            ));
        }
        for call in &agent.calls {
            if call.actions.is_empty() {
                diagnostics.push(Diagnostic::error(
                    Code::W107,
                    format!("the call from `{}` to `{}` grants no action", agent.name, call.agent),
                    context.at(&format!("{}/agent", call.pointer)),
                    "list the actions this call needs under `actions:`; an empty grant allows nothing and opens the network path anyway",
                ));
            }
            let callee = topology.agent(&call.agent);
            for (position, action) in call.actions.iter().enumerate() {
                // Locating a node walks the document; do it only for a diagnostic.
                let span = || context.value_at(&format!("{}/actions/{position}", call.pointer));
                if action == "*" || action.contains('*') {
                    diagnostics.push(Diagnostic::error(
                        Code::W107,
                        format!(
                            "the call from `{}` to `{}` grants the wildcard action `{action}`",
                            agent.name, call.agent
                        ),
                        span(),
                        "weave grants actions by exact name; list the actions this call needs",
                    ));
                    continue;
                }
                if plan.is_public(action) {
                    diagnostics.push(Diagnostic::error(
                        Code::W102,
                        format!("`{action}` is a public action; granting it on this call is redundant"),
                        span(),
                        "remove it from this call: authorization.publicActions already lets every mesh member call it",
                    ));
                }
                let Some(callee) = callee else { continue };
                if !callee.capabilities.contains(action) {
                    let served = if callee.capabilities.is_empty() {
                        "serves no action".to_owned()
                    } else {
                        format!("serves {}", callee.capabilities.join(", "))
                    };
                    diagnostics.push(
                        Diagnostic::error(
                            Code::E008,
                            format!("`{}` is granted `{action}` on `{}`, which {served}", agent.name, callee.name),
                            span(),
                            format!("grant one of the callee's capabilities, or add `{action}` to the capabilities of `{}`", callee.name),
                        )
                        .with_label("not served by the callee"),
                    );
                }
            }
        }
    }
}
