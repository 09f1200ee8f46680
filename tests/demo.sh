#!/usr/bin/env bash
# `make demo`: Escher Extend end to end with no AWS account. moto stands in for AWS:
#   1. the CLI and the functions' binaries are built (one debug cargo build);
#   2. the bundled sample alerts of every cloud are normalized;
#   3. moto is installed (first run only) and started on 127.0.0.1;
#   4. the functions are zipped from that build (`package --emulator`: moto stores them and
#      never runs them) and `extend --cloud aws --yes` deploys the whole stack into moto;
#   5. an approval is added to the deployed approvals store, a bucket is made public, and the
#      CloudTrail alert about it is handed to the alert function's handler, run on this
#      machine with the deployed function's environment (read back from Lambda);
#   6. the story is printed: alert, decision, fix, verification, audit record, notification;
#   7. destroy takes the stack down again.
# Everything it writes goes into moto and .demo/ (the Escher folder is .demo/escher, through
# ESCHER_HOME): nothing in ~/.escher, and HOME is left alone for cargo, rustup and pip.
# DEMO_ARTIFACTS=DIR deploys DIR/alert.zip and DIR/scan.zip instead (`make package` output,
# say). Each phase prints its time, and the total is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
target_dir=${CARGO_TARGET_DIR:-target}
BIN=$target_dir/debug/escher-provision
demo=.demo
rm -rf "$demo"
mkdir -p "$demo"
PY=.venv/bin/python

started=$(date +%s)
phase_names=()
phase_times=()
phase_name=""
phase_start=$started
end_phase() {
  if [ -n "$phase_name" ]; then
    local took=$(($(date +%s) - phase_start))
    phase_names+=("$phase_name")
    phase_times+=("$took")
    printf '\033[2m   (%s: %d s)\033[0m\n' "$phase_name" "$took"
  fi
}
step() { # short name, then what is happening
  end_phase
  phase_name=$1
  phase_start=$(date +%s)
  shift
  printf '\n\033[1m== [%s] %s\033[0m\n' "$(date -u -d "@$((phase_start - started))" +%M:%S)" "$*"
}
summary() {
  end_phase
  phase_name=""
  printf '\n\033[1m== the demo took %d s\033[0m\n' "$(($(date +%s) - started))"
  local i
  for i in "${!phase_names[@]}"; do
    printf '   %-10s %4d s\n' "${phase_names[$i]}" "${phase_times[$i]}"
  done
}

step build "building the CLI and the functions (cargo build --workspace --bins; a cold build takes about 10 minutes on 2 cores, later runs seconds)"
"$CARGO" build --workspace --bins

step normalize "the bundled sample alerts of AWS, Azure and GCP, normalized into UnifiedEvents"
"$BIN" events normalize --dir tests/fixtures/aws --dir tests/fixtures/azure --dir tests/fixtures/gcp

step moto "starting moto on 127.0.0.1 (installed into .venv on first use)"
bash tests/emulators.sh start moto
trap 'bash tests/emulators.sh stop' EXIT
set -a && . ./.emulators/env && set +a
export MOTO="$ESCHER_TEST_AWS_ENDPOINT"
# Everything the demo creates goes into moto and $demo; the CLI's own folder (the default
# stores, the saved outputs) is $demo/escher instead of ~/.escher.
export ESCHER_HOME="$PWD/$demo/escher" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL

step package "the functions' zips"
if [ -n "${DEMO_ARTIFACTS:-}" ]; then
  artifacts=$DEMO_ARTIFACTS
  arch=${DEMO_ARCH:-arm64}
  echo "deploying $artifacts/alert.zip and $artifacts/scan.zip as given (DEMO_ARTIFACTS), architecture $arch (DEMO_ARCH)"
else
  # moto stores the functions and never runs them, so the demo deploys this machine's
  # debug build of the real binaries (built above) rather than the release build for
  # Lambda, which takes about 17 minutes cold (`make package`). extend checks them as any
  # zip: a bootstrap at the top, built for the configured architecture, glibc <= 2.34.
  artifacts=$target_dir/demo-artifacts
  case "$(uname -m)" in
    x86_64) arch=x86_64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "this machine's processor ($(uname -m)) is not one Lambda runs; use DEMO_ARTIFACTS" >&2; exit 1 ;;
  esac
  "$BIN" package --emulator "$artifacts"
  echo "deploying these: the real escher-alert and escher-scan binaries, debug builds for $arch (this machine), which moto stores but never runs"
fi
printf '[stack]\nname = "escher-demo"\n[aws.cloudtrail]\ncreate_trail = "auto"\n[aws.functions]\narchitecture = "%s"\n' "$arch" >"$demo/escher.toml"

step extend "escher-provision extend --cloud aws --yes (into moto at $MOTO)"
"$BIN" extend --cloud aws --yes --endpoint-url "$MOTO" --config "$demo/escher.toml" \
  --timezone UTC --artifacts "$artifacts"

step alert "an approval, a bucket made public, and the alert about it handled"
echo "-- the alert function's environment, as deployed (Lambda GetFunctionConfiguration)"
"$PY" - escher-demo "$MOTO" >"$demo/function.env" <<'PY'
import sys, shlex, boto3
cfn = boto3.client("cloudformation", endpoint_url=sys.argv[2], region_name="us-east-1")
# The stack's resource list names the function (moto leaves a change-set stack's Outputs empty).
function = next(r["PhysicalResourceId"] for r in cfn.list_stack_resources(StackName=sys.argv[1])["StackResourceSummaries"]
                if r["LogicalResourceId"] == "AlertFunction")
lam = boto3.client("lambda", endpoint_url=sys.argv[2], region_name="us-east-1")
env = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
for key, value in sorted(env.items()):
    # The stores are reached through moto here; on Lambda the same URIs reach S3.
    if key.endswith("_URI") and value.startswith("s3://"):
        value += "?region=us-east-1&endpoint=" + sys.argv[2]
    print(f"export {key}={shlex.quote(value)}")
PY
cat "$demo/function.env"
. "$demo/function.env"
export AWS_ENDPOINT_URL="$MOTO"

echo "-- a notification inbox: an SQS queue subscribed to the critical topic"
queue_url=$("$PY" - "$MOTO" "$ESCHER_CRITICAL_TOPIC" <<'PY'
import sys, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1")
sns = boto3.client("sns", endpoint_url=sys.argv[1], region_name="us-east-1")
url = sqs.create_queue(QueueName="escher-demo-oncall")["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
sns.subscribe(TopicArn=sys.argv[2], Protocol="sqs", Endpoint=arn)
print(url)
PY
)
echo "$queue_url"

echo "-- approvals add: public buckets named demo-public-* may be made private"
"$BIN" approvals add --by "${USER:-make-demo}" --action make_bucket_private --id demo-public-buckets \
  --resource 'demo-public-*' --reason "make demo: public demo buckets are a mistake"

echo "-- someone makes a production bucket public"
bucket=demo-public-$(date +%s)
"$PY" - "$MOTO" "$bucket" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
s3.create_bucket(Bucket=sys.argv[2], ACL="public-read")
s3.put_bucket_tagging(Bucket=sys.argv[2], Tagging={"TagSet": [{"Key": "environment", "Value": "production"}]})
grants = s3.get_bucket_acl(Bucket=sys.argv[2])["Grants"]
print(sys.argv[2], "grants:", [g["Grantee"].get("URI", g["Grantee"].get("ID")) + " " + g["Permission"] for g in grants])
PY

echo "-- the alert CloudTrail sends through EventBridge"
"$PY" - "$bucket" "$MOTO" >"$demo/alert.json" <<'PY'
import datetime, json, sys, uuid, boto3
event = json.load(open("tests/fixtures/aws/cloudtrail-eventbridge-putbucketacl-allusers.json"))
bucket = sys.argv[1]
# The bucket is in moto's account and region, so the alert says so too.
account = boto3.client("sts", endpoint_url=sys.argv[2], region_name="us-east-1").get_caller_identity()["Account"]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
event["id"] = str(uuid.uuid4())
event["time"] = now
event["account"] = account
event["region"] = "us-east-1"
detail = event["detail"]
detail["eventID"] = str(uuid.uuid4())
detail["eventTime"] = now
detail["awsRegion"] = "us-east-1"
detail["recipientAccountId"] = account
identity = detail["userIdentity"]
identity["accountId"] = account
identity["arn"] = identity["arn"].replace("210987654321", account)
identity["sessionContext"]["sessionIssuer"]["arn"] = identity["sessionContext"]["sessionIssuer"]["arn"].replace("210987654321", account)
detail["requestParameters"]["bucketName"] = bucket
detail["requestParameters"]["host"] = [f"{bucket}.s3.us-east-1.amazonaws.com"]
print(json.dumps(event, indent=2))
PY
"$PY" -c 'import json,sys; e=json.load(open(sys.argv[1])); d=e["detail"]; print(e["detail-type"], "|", d["eventName"], "on", d["requestParameters"]["bucketName"], "by", d["userIdentity"].get("arn", "?"))' "$demo/alert.json"

step handle "the alert function's handler, run here with the deployed environment (events handle)"
"$BIN" events handle "$demo/alert.json"

echo "-- the bucket now"
"$PY" - "$MOTO" "$bucket" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
grants = s3.get_bucket_acl(Bucket=sys.argv[2])["Grants"]
block = s3.get_public_access_block(Bucket=sys.argv[2])["PublicAccessBlockConfiguration"]
print("grants:", [g["Grantee"].get("URI", g["Grantee"].get("ID")) + " " + g["Permission"] for g in grants])
print("public access block:", block)
if any("AllUsers" in g["Grantee"].get("URI", "") for g in grants) or not all(block.values()):
    sys.exit("the bucket is still public: the approved fix did not happen")
PY

echo "-- the audit record (object-locked audit bucket), verified"
"$BIN" audit verify --store "$ESCHER_AUDIT_URI"
"$PY" - "$MOTO" "$ESCHER_AUDIT_URI" <<'PY'
import json, sys, urllib.parse, boto3
uri = urllib.parse.urlparse(sys.argv[2])
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
# The records are under audit/ in the store (their daily listings under listing/).
prefix = (uri.path.strip("/") + "/audit/").lstrip("/")
records = [o["Key"] for o in s3.list_objects_v2(Bucket=uri.netloc, Prefix=prefix).get("Contents", [])]
if not records:
    sys.exit(f"no audit record under s3://{uri.netloc}/{prefix}")
if records:
    body = s3.get_object(Bucket=uri.netloc, Key=records[-1])["Body"].read()
    print(f"s3://{uri.netloc}/{records[-1]}:")
    print(json.dumps(json.loads(body), indent=2)[:3000])
PY

echo "-- the notification on the critical topic (what the on-call e-mail/SMS subscribers get)"
"$PY" - "$MOTO" "$queue_url" <<'PY'
import json, sys, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1")
messages = sqs.receive_message(QueueUrl=sys.argv[2], MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
for m in messages:
    envelope = json.loads(m["Body"])
    print("Subject:", envelope.get("Subject"))
    print(envelope.get("Message"))
if not messages:
    print("(no message on the critical topic)")
    sys.exit("the critical alert sent no notification")
PY

step destroy "escher-provision destroy --cloud aws --delete-data --yes"
"$BIN" destroy --cloud aws --yes --delete-data --endpoint-url "$MOTO" --config "$demo/escher.toml"

summary
cat <<EOF

What ran:    $demo/escher.toml, $demo/alert.json, $demo/function.env (kept until the next demo)
Zips:        $artifacts/ (what extend deployed into moto)
Saved state: $demo/escher (the Escher folder of this demo; the outputs file is removed by destroy)
Code:        provisioner/src/deploy/ (flow.rs: extend, status, destroy; aws/: the AWS calls), templates/aws/ (the stack),
             handlers/aws/ (the alert function), handlers/core/src/pipeline/ (decide, fix, audit, notify)

Against your own account (credentials from AWS_PROFILE or the usual AWS chain):
  make package                                  # the functions' zips (cargo lambda, release, arm64; ~17 min cold)
  $BIN extend --cloud aws --region eu-west-1
  $BIN approvals --store s3://<StateBucketName>/approvals add \\
      --action make_bucket_private --resource 'demo-*' --reason "..."
  $BIN status --cloud aws
  $BIN destroy --cloud aws
EOF
