#!/usr/bin/env bash
# The test command of README.md: the Rust test suite, then every valid fixture built and checked by
# third-party tools (promtool, HashiCorp's HCL parser, kubernetes-validate in strict mode, kustomize,
# two Rego engines, hadolint, the OCI image-spec schemas, SPIRE's key sets, checkov), and the
# Terraform against the provider schemas of the pinned releases (check-tf-schema: no FAIL and no
# deprecated argument).
#
#   bash scripts/test.sh             the Rust tests, then the third-party validators on every fixture,
#                                    checkov included, skipping the check ids of
#                                    security/checkov-skip.txt (docs/security.md says why each)
#   WEAVE_CHECKOV=0 bash ...         the same without checkov
#   WEAVE_SKIP_VALIDATE=1 bash ...   the Rust tests only
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --locked

if [[ "${WEAVE_SKIP_VALIDATE:-0}" == 1 ]]; then
  exit 0
fi

validate_dir="${WEAVE_VALIDATE_DIR:-../shared/validate}"
if [[ ! -x "$validate_dir/check-artifacts" ]]; then
  echo "NOTICE: $validate_dir/check-artifacts not found (set WEAVE_VALIDATE_DIR); third-party checks skipped" >&2
  exit 0
fi
checkov="${WEAVE_CHECKOV:-1}"
install_log="${TMPDIR:-/tmp}/weave-validate-install.log"
if ! WEAVE_VALIDATE_CHECKOV="$checkov" bash "$validate_dir/install.sh" >"$install_log" 2>&1; then
  if [[ "$checkov" == 1 ]] && WEAVE_VALIDATE_CHECKOV=0 bash "$validate_dir/install.sh" >>"$install_log" 2>&1; then
    echo "NOTICE: checkov could not be installed (log: $install_log); the other third-party checks run without it" >&2
    checkov=0
  else
    echo "NOTICE: the validators could not be installed (log: $install_log); third-party checks skipped" >&2
    exit 0
  fi
fi

cargo build --locked --release
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
skip="$(sed -e 's/#.*//' -e 's/[[:space:]]//g' security/checkov-skip.txt | { grep -v '^$' || true; } | paste -sd, -)"
if [[ "$checkov" == 1 ]]; then
  echo "checkov on, skipping the ids of security/checkov-skip.txt: $skip"
fi
failed=0
for fixture in fixtures/valid/*.yaml; do
  name="$(basename "$fixture" .yaml)"
  ./target/release/weave build "$fixture" -o "$work/$name" 2>/dev/null
  if WEAVE_VALIDATE_CHECKOV="$checkov" WEAVE_VALIDATE_CHECKOV_SKIP="$skip" \
      "$validate_dir/check-artifacts" "$work/$name" >"$work/$name.log" 2>&1; then
    echo "ok   $fixture: $(tail -n 1 "$work/$name.log")"
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
done
exit "$failed"
