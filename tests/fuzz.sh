#!/usr/bin/env bash
# `make fuzz`: every fuzz target, one after the other, each seeded at run time from the
# repository's own samples (the bundled alerts, the shipped policies, the example
# escher.toml files, the approvals `escher-provision approvals init` writes), and each
# target's executions printed. Needs `cargo install cargo-fuzz`; runs on stable with
# `--sanitizer none`. Each fuzz project builds into its own fuzz/target (git-ignored).
#
#   FUZZ_SECONDS=120 (per target)   FUZZ_RUNS=N (stop after N executions instead)
#   FUZZ_TARGETS="approval escher_toml" (a subset; default: all)
set -euo pipefail

cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
FUZZ_SECONDS=${FUZZ_SECONDS:-120}
FUZZ_RUNS=${FUZZ_RUNS:-}
FIXTURES=tests/fixtures
BIN=target/debug/escher-provision

# target → the crate folder whose fuzz/ project holds it.
declare -A PROJECT=(
  [normalize]=handlers/core [lambda_alert]=handlers/core [approval]=handlers/core
  [policies]=handlers/core [report_settings]=handlers/core
  [scan_invocation]=handlers/scan [azure_functions]=handlers/azure
  [gcp_service]=handlers/gcp [escher_toml]=provisioner
)
ORDER=(normalize lambda_alert approval policies report_settings scan_invocation azure_functions gcp_service escher_toml)
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ORDER[*]}}"

corpus() { # target → its corpus folder, created
  local dir="${PROJECT[$1]}/fuzz/corpus/$1"
  mkdir -p "$dir"
  echo "$dir"
}

seed() {
  local target=$1 dir
  dir=$(corpus "$target")
  case $target in
    normalize | lambda_alert)
      cp "$FIXTURES"/aws/*.json "$FIXTURES"/azure/*.json "$FIXTURES"/gcp/*.json "$dir"/ ;;
    approval)
      # The approvals the setup wizard writes, as `approvals list --json` prints them, and
      # each one alone (the form `approvals add --file` reads).
      [ -x "$BIN" ] || $CARGO build --workspace --bins
      local store
      store=$(mktemp -d)
      "$BIN" approvals --store "fs://$store" init --yes --by fuzz >/dev/null 2>&1
      "$BIN" approvals --store "fs://$store" list --json | jq 'map(del(.status))' >"$dir/list.json"
      jq -c '.[]' "$dir/list.json" | split -l 1 - "$dir/approval-"
      rm -rf "$store" ;;
    policies)
      cp policies/remediations.yaml policies/approvals.default.yaml policies/severity.yaml "$dir"/ ;;
    report_settings)
      cp policies/report.yaml "$dir"/ ;;
    escher_toml)
      cp provisioner/tests/fixtures/escher.toml "$dir/escher.toml"
      cp provisioner/tests/golden/escher.toml "$dir/escher-old-spellings.toml" ;;
    scan_invocation)
      # The schedule's event, and the hand-off the function sends itself for that event.
      local event=$FIXTURES/aws/scheduled-event-nightly-scan.json
      cp "$event" "$dir"/
      jq -c '{escher_scan_run: {date: (.time[0:10]), run: ("event-" + .id), invocation: 2}}' \
        "$event" >"$dir/handed-on.json" ;;
    azure_functions)
      # The Functions host's requests around each Azure sample: the Event Grid trigger's,
      # the HTTP trigger's (the body as text, as the host passes it), the timer's.
      for f in "$FIXTURES"/azure/*.json; do
        case $f in *.expected.json) continue ;; esac
        local name
        name=$(basename "$f" .json)
        jq -c '{Data: {event: .}, Metadata: {}}' "$f" >"$dir/events-$name.json"
        jq -c '{Data: {req: {Method: "POST", Body: tojson, Headers: {}}}, Metadata: {}}' "$f" \
          >"$dir/alert-$name.json"
      done
      echo '{"Data":{"timer":{"IsPastDue":false}},"Metadata":{}}' >"$dir/nightly.json" ;;
    gcp_service)
      # A request as the target reads it: the Authorization header's value, a newline, the
      # body. The header holds a token shaped like Google's (RS256, a key id, its claims;
      # the signature is made up), the bodies are the Google Cloud samples (push envelopes
      # and what they carry) and the Scheduler job's marker.
      local b64 header claims bearer
      b64() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
      header=$(printf '{"alg":"RS256","kid":"6f7254101f56e41cf35c9926de84a2d552b4c6f1","typ":"JWT"}' | b64)
      claims=$(printf '{"aud":"https://escher-abc-ew.a.run.app","email":"escher-invoker@acme-prod.iam.gserviceaccount.com","email_verified":true,"exp":1764754364,"iat":1764750764,"iss":"https://accounts.google.com","sub":"1"}' | b64)
      bearer="Bearer $header.$claims.c2lnbmF0dXJl"
      for f in "$FIXTURES"/gcp/*.json; do
        case $f in *.expected.json) continue ;; esac
        { echo "$bearer"; cat "$f"; } >"$dir/$(basename "$f")"
      done
      { echo "$bearer"; echo '{"escher":"nightly-scan"}'; } >"$dir/scan.json"
      { echo "Bearer $header"; echo '{}'; } >"$dir/two-parts.json" ;;
  esac
}

for target in "${TARGETS[@]}"; do
  [ -n "${PROJECT[$target]:-}" ] || { echo "no fuzz target named $target; known: ${ORDER[*]}" >&2; exit 2; }
  seed "$target"
done

if [ -n "$FUZZ_RUNS" ]; then limit=(-runs="$FUZZ_RUNS"); else limit=(-max_total_time="$FUZZ_SECONDS"); fi
summary=()
for target in "${TARGETS[@]}"; do
  project=${PROJECT[$target]}
  # The whole libFuzzer output stays beside the target's artifacts (git-ignored).
  mkdir -p "$project/fuzz/artifacts"
  log="$project/fuzz/artifacts/$target.log"
  echo "== $target ($project/fuzz)"
  start=$(date +%s)
  set +e
  (cd "$project" && $CARGO fuzz run "$target" --sanitizer none -- "${limit[@]}" -print_final_stats=1) >"$log" 2>&1
  status=$?
  set -e
  grep -aE '^(Done [0-9]+ runs|==[0-9]+== ERROR|SUMMARY|Test unit written|thread .* panicked)' "$log" || true
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  wall=$(($(date +%s) - start))
  result="no crash"
  [ "$status" -eq 0 ] || result="FAILED (exit $status): see $log and $project/fuzz/artifacts/$target/"
  summary+=("$(printf '%-16s %12s executions %8s exec/s %6ss  %s' "$target" "${runs:-?}" "${speed:-?}" "$wall" "$result")")
  echo "${summary[-1]}"
  [ "$status" -eq 0 ] || break
done
echo
printf '%s\n' "${summary[@]}"
for line in "${summary[@]}"; do case $line in *FAILED*) exit 1 ;; esac; done
