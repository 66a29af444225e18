//! The generated OPA policy, evaluated with regorus, decides every call of every valid fixture exactly
//! as `MeshGraph::allowed` does (DESIGN.md §4), and the generated `opa test` rules all pass.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regorus::{Engine, Value};
use weave::Compiled;
use weave::emit::{EmitContext, opa};

/// Every valid fixture, sorted.
fn fixtures() -> Vec<PathBuf> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/valid");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", directory.display());
    paths
}

fn compile(path: &Path) -> Compiled {
    let text = std::fs::read_to_string(path).unwrap();
    weave::compile(&path.display().to_string(), &text)
        .unwrap_or_else(|diagnostics| panic!("{}: {diagnostics:?}", path.display()))
}

/// An engine holding the generated policy and data.
fn policy_engine(context: &EmitContext<'_>) -> Engine {
    let mut engine = Engine::new();
    engine.add_policy("authz.rego".to_owned(), opa::policy(context)).unwrap();
    let data = String::from_utf8(opa::data_json(context)).unwrap();
    engine.add_data(Value::from_json_str(&data).unwrap()).unwrap();
    engine
}

/// An engine holding the generated policy and one agent's own data (what its OPA sidecar loads).
fn agent_engine(context: &EmitContext<'_>, agent: usize) -> Engine {
    let mut engine = Engine::new();
    engine.add_policy("authz.rego".to_owned(), opa::policy(context)).unwrap();
    let data = String::from_utf8(opa::agent_data_json(context, agent)).unwrap();
    engine.add_data(Value::from_json_str(&data).unwrap()).unwrap();
    engine
}

fn decide(engine: &mut Engine, caller: &str, callee: &str, action: &str) -> bool {
    let input = serde_json::json!({"caller_spiffe_id": caller, "callee_spiffe_id": callee, "action": action});
    engine.set_input(Value::from_json_str(&input.to_string()).unwrap());
    let decision = engine.eval_rule(opa::ALLOW_QUERY.to_owned()).unwrap();
    match decision {
        Value::Bool(allowed) => allowed,
        other => panic!("allow is not a boolean: {other:?}"),
    }
}

/// Every action the mesh mentions, plus one it does not.
fn actions(compiled: &Compiled) -> Vec<String> {
    let topology = &compiled.topology;
    let mut actions: BTreeSet<String> = topology.authorization.public_actions.iter().cloned().collect();
    for agent in &topology.agents {
        actions.extend(agent.capabilities.iter().cloned());
        for call in &agent.calls {
            actions.extend(call.actions.iter().cloned());
        }
    }
    let mut unknown = "never-declared".to_owned();
    while actions.contains(&unknown) {
        unknown.push('-');
    }
    actions.insert(unknown);
    actions.into_iter().collect()
}

/// Three trust domains where only one pair federates, no public actions, no same-domain rule: the
/// fixtures do not cover untrusted pairs.
const PARTIAL_FEDERATION: &str = r#"
sites:
  one:
    provider: aws
    region: us-east-1
    trustDomain: one.example.com
    agents:
      - name: alpha
        capabilities: [read, write]
        calls:
          - agent: beta
            actions: [read]
      - name: gamma
        capabilities: [read]
  two:
    provider: gcp
    region: us-central1
    trustDomain: two.example.com
    agents:
      - name: beta
        capabilities: [read, write]
  three:
    provider: azure
    region: eastus
    trustDomain: three.example.com
    agents:
      - name: delta
        capabilities: [read]
federation:
  enabled: true
  profile: https_spiffe
  bundleEndpoints:
    one: https://spire-one.example.com:8443
    two: https://spire-two.example.com:8443
    three: https://spire-three.example.com:8443
  pairs:
    - [one.example.com, two.example.com]
authorization:
  allowSameTrustDomain: false
networking:
  type: tailscale
  tailscale:
    tailnet: example
"#;

/// Evaluates the policy for every (caller, callee, action) and compares with the graph.
fn assert_policy_matches_graph(label: &str, compiled: &Compiled) {
    let context = EmitContext::of(compiled);
    let mut engine = policy_engine(&context);
    let agents = &compiled.topology.agents;
    let actions = actions(compiled);
    let mut checked = 0;
    for (caller, caller_agent) in agents.iter().enumerate() {
        for (callee, callee_agent) in agents.iter().enumerate() {
            for action in &actions {
                let expected = compiled.plan.allowed(caller, callee, action);
                let decided = decide(&mut engine, &caller_agent.spiffe_id, &callee_agent.spiffe_id, action);
                assert_eq!(
                    decided, expected,
                    "{label}: {} -> {} with {action}: OPA says {decided}, the graph says {expected}",
                    caller_agent.name, callee_agent.name
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, agents.len() * agents.len() * actions.len());

    // Each callee's OPA, on that agent's own data only, decides every call into it the same way.
    for (callee, callee_agent) in agents.iter().enumerate() {
        let mut engine = agent_engine(&context, callee);
        for (caller, caller_agent) in agents.iter().enumerate() {
            for action in &actions {
                let expected = compiled.plan.allowed(caller, callee, action);
                let decided = decide(&mut engine, &caller_agent.spiffe_id, &callee_agent.spiffe_id, action);
                assert_eq!(
                    decided, expected,
                    "{label}: {} -> {} with {action} on {}'s own data: OPA says {decided}, the plan says {expected}",
                    caller_agent.name, callee_agent.name, callee_agent.name
                );
            }
        }
        // And it knows no other callee.
        if let Some(other) = agents.iter().position(|agent| agent.spiffe_id != callee_agent.spiffe_id) {
            for action in &actions {
                assert!(
                    !decide(&mut engine, &callee_agent.spiffe_id, &agents[other].spiffe_id, action),
                    "{label}: {}'s OPA decides a call into {}",
                    callee_agent.name,
                    agents[other].name
                );
            }
        }
    }
}

/// Runs every `test_*` rule of the generated test module.
fn assert_generated_tests_pass(label: &str, compiled: &Compiled) {
    let context = EmitContext::of(compiled);
    let mut engine = policy_engine(&context);
    let tests = opa::tests(&context);
    engine.add_policy("authz_test.rego".to_owned(), tests.clone()).unwrap();
    let rules: Vec<&str> = tests
        .lines()
        .filter(|line| line.starts_with("test_"))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(rules.len(), opa::test_cases(&context).len(), "{label}: one rule per case");
    for rule in rules {
        let value = engine.eval_rule(format!("data.{}.{rule}", opa::TEST_PACKAGE)).unwrap();
        assert_eq!(value, Value::from(true), "{label}: {rule} fails");
    }
}

#[test]
fn policy_decides_every_call_as_the_graph_does() {
    for path in fixtures() {
        assert_policy_matches_graph(&path.display().to_string(), &compile(&path));
    }
}

#[test]
fn policy_denies_untrusted_pairs_as_the_graph_does() {
    let compiled = weave::compile("partial-federation.yaml", PARTIAL_FEDERATION)
        .unwrap_or_else(|diagnostics| panic!("{diagnostics:?}"));
    // alpha (one) and delta (three) do not trust each other; alpha and gamma share a domain but
    // allowSameTrustDomain is off.
    let position = |name: &str| compiled.topology.agent_position(name).unwrap();
    assert!(!compiled.plan.trusted(position("alpha"), position("delta")));
    assert!(!compiled.plan.allowed(position("alpha"), position("gamma"), "read"));
    assert_policy_matches_graph("partial federation", &compiled);
    assert_generated_tests_pass("partial federation", &compiled);
}

#[test]
fn unknown_spiffe_ids_are_denied() {
    for path in fixtures() {
        let compiled = compile(&path);
        let context = EmitContext::of(&compiled);
        let mut engine = policy_engine(&context);
        let public = compiled.topology.authorization.public_actions.clone();
        for (index, agent) in compiled.topology.agents.iter().enumerate() {
            let mut own = agent_engine(&context, index);
            // A callee the facts do not describe is never called.
            let impostor = format!("{}-impostor", agent.spiffe_id);
            // A caller of an untrusted trust domain, or with no SPIFFE ID at all, is never trusted.
            let outsider = "spiffe://outsider.invalid/agent/x";
            for action in public.iter().chain(agent.capabilities.iter()) {
                for engine in [&mut engine, &mut own] {
                    assert!(!decide(engine, &agent.spiffe_id, &impostor, action), "{}", path.display());
                    assert!(!decide(engine, outsider, &agent.spiffe_id, action), "{}", path.display());
                    assert!(!decide(engine, "outsider", &agent.spiffe_id, action), "{}", path.display());
                    assert!(!decide(engine, "spiffe://", &agent.spiffe_id, action), "{}", path.display());
                    // A workload of a trusted domain that is no agent gets no declared edge's grant.
                    let granted_only_by_edge =
                        !public.contains(action) && !compiled.topology.authorization.allow_same_trust_domain;
                    if granted_only_by_edge {
                        assert!(!decide(engine, &impostor, &agent.spiffe_id, action), "{}", path.display());
                    }
                }
            }
        }
    }
}

#[test]
fn generated_tests_pass() {
    for path in fixtures() {
        assert_generated_tests_pass(&path.display().to_string(), &compile(&path));
    }
}

#[test]
fn cases_file_agrees_with_the_policy() {
    for path in fixtures() {
        let compiled = compile(&path);
        let context = EmitContext::of(&compiled);
        let mut engine = policy_engine(&context);
        let cases: serde_json::Value = serde_json::from_slice(&opa::cases_json(&context)).unwrap();
        let cases = cases.as_array().unwrap();
        assert!(!cases.is_empty());
        for case in cases {
            let input = &case["input"];
            let decided = decide(
                &mut engine,
                input["caller_spiffe_id"].as_str().unwrap(),
                input["callee_spiffe_id"].as_str().unwrap(),
                input["action"].as_str().unwrap(),
            );
            assert_eq!(Some(decided), case["expect"].as_bool(), "{}: {}", path.display(), case["name"]);
        }
    }
}
