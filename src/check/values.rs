//! Values: settings each within its own range, but together ones the consumer rejects or misreads
//! (E016): a SPIRE TTL of zero, an SVID TTL not shorter than the CA TTL that signs it, and the agent
//! port equal to the metrics port.

use super::ModelContext;
use crate::diagnostics::{Code, Diagnostic};

pub(super) fn check(context: &ModelContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    ttls(context, diagnostics);
    ports(context, diagnostics);
}

fn ttls(context: &ModelContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let spire = &context.topology.spire;
    let ca = duration_ms(&spire.ca_ttl);
    let svid = duration_ms(&spire.svid_ttl);
    for (key, written, value) in [("caTtl", &spire.ca_ttl, ca), ("svidTtl", &spire.svid_ttl, svid)] {
        if value == Some(0) {
            diagnostics.push(
                Diagnostic::error(
                    Code::E016,
                    format!("spire.{key} is `{written}`, a lifetime of zero"),
                    context.value_at(&format!("/spire/{key}")),
                    "give a lifetime such as `24h` (caTtl) or `1h` (svidTtl); SPIRE reads zero as \"use the default\", so the file would not say what the server does",
                )
                .with_label("zero"),
            );
        }
    }
    if let (Some(ca), Some(svid)) = (ca, svid)
        && ca > 0
        && svid >= ca
    {
        diagnostics.push(
            Diagnostic::error(
                Code::E016,
                format!(
                    "spire.svidTtl `{}` is not shorter than spire.caTtl `{}`: an SVID cannot outlive the CA that signs it",
                    spire.svid_ttl, spire.ca_ttl
                ),
                context.value_at("/spire/svidTtl"),
                "make svidTtl at most a sixth of caTtl (SPIRE's advice: `24h` and `4h`, or the defaults), so SVIDs are renewed well before the CA rotates",
            )
            .with_label("not shorter than caTtl"),
        );
    }
}

fn ports(context: &ModelContext<'_>, diagnostics: &mut Vec<Diagnostic>) {
    let mesh = &context.topology.mesh;
    if mesh.port == mesh.metrics_port {
        let pointer = if context.written("/mesh/metricsPort") { "/mesh/metricsPort" } else { "/mesh/port" };
        diagnostics.push(
            Diagnostic::error(
                Code::E016,
                format!("mesh.port and mesh.metricsPort are both {}", mesh.port),
                context.value_at(pointer),
                "give the metrics endpoint its own port (the default is 9090): a container cannot serve two ports on one number, and Kubernetes rejects a Service with two ports of the same number",
            )
            .with_label("the same port as mesh.port"),
        );
    }
}

/// A SPIRE duration (`1h30m`, `500ms`, the form the schema allows) in milliseconds; `None` when it is
/// not of that form (the schema reports it) or too large to count.
pub(crate) fn duration_ms(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, length) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else {
            return None;
        };
        rest = &rest[length..];
        total = total.checked_add(number.checked_mul(unit)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_spire_reads_them() {
        assert_eq!(duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(duration_ms("500ms"), Some(500));
        assert_eq!(duration_ms("0s"), Some(0));
        assert_eq!(duration_ms("99999999999999999999h"), None);
        assert_eq!(duration_ms("1d"), None);
        assert_eq!(duration_ms(""), None);
    }

    fn codes(text: &str) -> Vec<(crate::diagnostics::Code, usize)> {
        let analysis =
            crate::analyze(&crate::source::Source::new("values.yaml", text), &crate::load::Limits::default());
        analysis
            .diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.code == "E016")
            .map(|diagnostic| (diagnostic.code, diagnostic.span.map_or(0, |span| span.line)))
            .collect()
    }

    const SITE: &str = "sites:\n  aws:\n    provider: aws\n    region: us-east-1\n    trustDomain: aws.example.com\n    agents:\n      - name: a\n        capabilities: [x]\n";

    #[test]
    fn zero_and_inverted_ttls_are_refused() {
        assert_eq!(
            codes(&format!("{SITE}spire:\n  caTtl: 24h\n  svidTtl: 0s\n")),
            [(crate::diagnostics::Code::E016, 11)]
        );
        assert_eq!(
            codes(&format!("{SITE}spire:\n  caTtl: 1h\n  svidTtl: 2h\n")),
            [(crate::diagnostics::Code::E016, 11)]
        );
        assert_eq!(codes(&format!("{SITE}spire:\n  caTtl: 24h\n  svidTtl: 1h\n")), []);
    }

    #[test]
    fn the_agent_port_and_the_metrics_port_differ() {
        assert_eq!(codes(&format!("mesh:\n  port: 9090\n{SITE}")), [(crate::diagnostics::Code::E016, 2)]);
        assert_eq!(
            codes(&format!("mesh:\n  port: 8443\n  metricsPort: 8443\n{SITE}")),
            [(crate::diagnostics::Code::E016, 3)]
        );
        assert_eq!(codes(&format!("mesh:\n  port: 8443\n{SITE}")), []);
    }
}
