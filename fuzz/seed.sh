#!/usr/bin/env bash
# Seeds the fuzz corpus (fuzz/corpus/pipeline/) from the topology fixtures: every valid and invalid
# fixture, the review fixtures, and every input that once crashed the fuzzer (fixtures/fuzz/).
# Files are named by their sha1, as libFuzzer names the inputs it adds, so running this again adds
# nothing twice.
set -euo pipefail
cd "$(dirname "$0")/.."

corpus="fuzz/corpus/pipeline"
mkdir -p "$corpus"
added=0
while IFS= read -r -d '' file; do
  digest="$(sha1sum "$file" | cut -d' ' -f1)"
  if [[ ! -e "$corpus/$digest" ]]; then
    cp "$file" "$corpus/$digest"
    added=$((added + 1))
  fi
done < <(find fixtures/valid fixtures/invalid fixtures/review fixtures/fuzz -name '*.yaml' -type f -print0 2>/dev/null)
echo "seeded $corpus: $added new, $(find "$corpus" -type f | wc -l) in all"
