#!/usr/bin/env bash
# The test command of README.md: the Rust test suite, then every valid fixture built and checked by
# third-party tools (promtool, HashiCorp's HCL parser, kubernetes-validate in strict mode, kustomize,
# two Rego engines, hadolint, the OCI image-spec schemas, SPIRE's key sets, checkov), and the
# Terraform against the provider schemas of the pinned releases (check-tf-schema: no FAIL and no
# deprecated argument).
#
# The third-party tools come from the conformance toolkit, which is not part of this repository: the
# `shared/validate` directory beside it (../shared/validate), or WEAVE_VALIDATE_DIR.
#
#   bash scripts/test.sh             the Rust tests, then the third-party validators on every fixture,
#                                    checkov included, skipping the check ids of
#                                    security/checkov-skip.txt (docs/security.md says why each)
#   WEAVE_CHECKOV=0 bash ...         the same without checkov
#   WEAVE_SKIP_VALIDATE=1 bash ...   the Rust tests only (the checks left out are listed)
#
# When the toolkit is missing or cannot be installed, the script lists every check that did not run.
# Locally it then exits 0 after the Rust tests; with CI=true it exits 1, since a CI run must not pass
# on checks it never made. The same holds for checkov unless WEAVE_CHECKOV=0 asks to leave it out.
set -euo pipefail
cd "$(dirname "$0")/.."

in_ci=0
if [[ "${CI:-}" == true || "${CI:-}" == 1 ]]; then
  in_ci=1
fi

# What check-artifacts verifies, by artifact (../shared/validate/README.md has the details).
not_checked() {
  local reason="$1" checkov="$2"
  {
    echo "NOT CHECKED: $reason"
    echo "  The Rust tests ran; these third-party checks of the built fixtures did not:"
    echo "    terraform/<site>/*.tf       HashiCorp's HCL parser (hcl2json), python-hcl2, undeclared references"
    echo "    spire/<site>/*.conf         pyhcl (the HCL v1 parser SPIRE uses), SPIRE's own key sets"
    echo "    k8s/<site>/*.yaml           kubernetes-validate in strict mode, upstream CRD schemas, kustomize"
    echo "    prometheus/*.yml            promtool check config"
    echo "    otel/<site>/collector.yaml  OpenTelemetry Collector pipeline structure"
    echo "    tailscale/policy.hujson     HuJSON syntax and Tailscale ACL rules and tests"
    echo "    opa/*.rego                  rego-cpp and regorus (parse, evaluate, authz_test.rego, cases)"
    echo "    image/<agent>/              hadolint, the OCI image-spec schemas"
    echo "    every YAML file             yamllint"
    echo "    weave.lock.json             every listed file and digest"
    if [[ "$checkov" == 1 ]]; then
      echo "    .tf, k8s YAML, Dockerfiles  checkov security checks, less the ids of security/checkov-skip.txt"
    fi
  } >&2
}

fail_in_ci() {
  if [[ "$in_ci" == 1 ]]; then
    echo "FAIL: CI=true, and a CI run must make every check (install the toolkit, see README.md)" >&2
    exit 1
  fi
  echo "(locally this is not a failure; with CI=true it is)" >&2
}

cargo test --locked

checkov="${WEAVE_CHECKOV:-1}"
if [[ "${WEAVE_SKIP_VALIDATE:-0}" == 1 ]]; then
  not_checked "WEAVE_SKIP_VALIDATE=1 asked for the Rust tests only" "$checkov"
  exit 0
fi

validate_dir="${WEAVE_VALIDATE_DIR:-../shared/validate}"
if [[ ! -x "$validate_dir/check-artifacts" || ! -f "$validate_dir/install.sh" ]]; then
  not_checked "the conformance toolkit is missing: no $validate_dir/check-artifacts (set WEAVE_VALIDATE_DIR to its directory)" "$checkov"
  fail_in_ci
  exit 0
fi
install_log="${TMPDIR:-/tmp}/weave-validate-install.log"
if ! WEAVE_VALIDATE_CHECKOV="$checkov" bash "$validate_dir/install.sh" >"$install_log" 2>&1; then
  if [[ "$checkov" == 1 ]] && WEAVE_VALIDATE_CHECKOV=0 bash "$validate_dir/install.sh" >>"$install_log" 2>&1; then
    echo "NOT CHECKED: checkov could not be installed (log: $install_log), so no checkov security check" >&2
    echo "  of the built fixtures runs; every other third-party check does" >&2
    if [[ "$in_ci" == 1 ]]; then
      echo "FAIL: CI=true and checkov is missing (WEAVE_CHECKOV=0 leaves it out on purpose)" >&2
      exit 1
    fi
    checkov=0
  else
    not_checked "the conformance toolkit could not be installed (log: $install_log)" "$checkov"
    fail_in_ci
    exit 0
  fi
fi

# The binary `cargo test` built for the CLI tests. Not `cargo build`: without the dev-dependencies
# the features of shared dependencies differ, and it would compile a dozen of them again; nor a
# release build, which would compile every dependency a second time for a few small fixtures.
weave="${CARGO_TARGET_DIR:-target}/debug/weave"
if [[ ! -x "$weave" ]]; then
  echo "FAIL: cargo test did not leave $weave" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
skip="$(sed -e 's/#.*//' -e 's/[[:space:]]//g' security/checkov-skip.txt | { grep -v '^$' || true; } | paste -sd, -)"
if [[ "$checkov" == 1 ]]; then
  echo "checkov on, skipping the ids of security/checkov-skip.txt: $skip"
fi
# check-deploy checks left open (a `|` list of check names, none by default; every other check must
# pass on every fixture).
deploy_open="${WEAVE_DEPLOY_OPEN:-}"
# One check-deploy finding is the validator's, not the output's: on Tailscale without a tailnet name,
# the central Prometheus reaches the other sites' Prometheus by their short MagicDNS names through its
# sidecar's HTTP proxy, named in the federation jobs' `proxy_url` (Prometheus reads its proxy from
# the scrape config, and the proxy environment variables only with `proxy_from_environment`, which
# Prometheus 2.42 lacks); check-deploy only looks for HTTPS_PROXY/ALL_PROXY in the container's
# environment. src/emit/k8s/monitoring.rs tests that proxy_url names the sidecar's proxy.
proxy_url_only='^FAIL [^:]+: telemetry: (prometheus/prometheus\.yml job federate-[a-z0-9-]+ target prometheus-[a-z0-9-]+:[0-9]+: prometheus-[a-z0-9-]+:[0-9]+: single-label name prometheus-[a-z0-9-]+ is no Service in site [a-z0-9-]+ and the caller is not on the tailnet(; |$))+$'
# A tailscale-acl failure whose every error is an accept test that "no acl allows" (see below).
grants_only='^FAIL tailscale-acl [^:]*: (tests\[[0-9]+\]: expected [^;]* to be accepted, but no acl allows it(; |$))+$'
failed=0
for fixture in fixtures/valid/*.yaml; do
  name="$(basename "$fixture" .yaml)"
  "$weave" build "$fixture" -o "$work/$name" 2>/dev/null
  if WEAVE_VALIDATE_CHECKOV="$checkov" WEAVE_VALIDATE_CHECKOV_SKIP="$skip" \
      "$validate_dir/check-artifacts" "$work/$name" >"$work/$name.log" 2>&1; then
    echo "ok   $fixture: $(tail -n 1 "$work/$name.log")"
  elif ! grep -E '^FAIL' "$work/$name.log" | grep -vqE "$grants_only" && grep -qE '^FAIL' "$work/$name.log"; then
    # The validator evaluates a tailnet policy's tests against `acls` only; weave writes `grants`,
    # which Tailscale's tests cover too ("assertions about access policies (ACLs and network-level
    # grants)", tailscale.com/s/acl-format). tests/it/tailnet.rs evaluates them against the grants.
    echo "ok   $fixture: $(tail -n 1 "$work/$name.log") (tailnet tests are checked against grants by tests/it/tailnet.rs)"
  else
    echo "FAIL $fixture:"
    grep -E '^FAIL' "$work/$name.log" || tail -n 20 "$work/$name.log"
    failed=1
  fi
  if [[ -x "$validate_dir/tf-schema/check-tf-schema" ]]; then
    # WARN lines are deprecated arguments, which fail here too.
    if "$validate_dir/tf-schema/check-tf-schema" "$work/$name" >"$work/$name.tf-schema.log" 2>/dev/null \
        && ! grep -q '^WARN' "$work/$name.tf-schema.log"; then
      echo "ok   $fixture: tf-schema: $(tail -n 1 "$work/$name.tf-schema.log")"
    else
      echo "FAIL $fixture: tf-schema:"
      grep -E '^(FAIL|WARN)' "$work/$name.tf-schema.log" || tail -n 20 "$work/$name.tf-schema.log"
      failed=1
    fi
  fi
  # What a real cluster would hit at apply and run time (check-deploy). Every check of every site
  # must pass but those named in WEAVE_DEPLOY_OPEN, which are reported and left open.
  if [[ -x "$validate_dir/check-deploy" ]]; then
    "$validate_dir/check-deploy" "$work/$name" >"$work/$name.deploy.log" 2>/dev/null || true
    open_checks="${deploy_open:-^$}"
    problems="$(grep -E '^FAIL' "$work/$name.deploy.log" | grep -vE ": ($open_checks):" | grep -vE "$proxy_url_only" || true)"
    open="$(grep -E '^FAIL' "$work/$name.deploy.log" | grep -E ": ($open_checks):|$proxy_url_only" || true)"
    if [[ -z "$problems" ]] && grep -qE '^[0-9]+ passed' "$work/$name.deploy.log"; then
      echo "ok   $fixture: check-deploy: $(tail -n 1 "$work/$name.deploy.log")"
    else
      echo "FAIL $fixture: check-deploy:"
      echo "${problems:-$(tail -n 5 "$work/$name.deploy.log")}"
      failed=1
    fi
    if [[ -n "$open" ]]; then
      echo "     left open (WEAVE_DEPLOY_OPEN=$deploy_open, or the proxy_url finding explained above):"
      echo "$open" | cut -c1-160 | sed 's/^/       /'
    fi
  fi
done
exit "$failed"
