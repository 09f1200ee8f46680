#!/usr/bin/env bash
# `make demo`: Escher Extend end to end with no AWS account. moto stands in for AWS:
#   1. extend --cloud aws --yes deploys the whole stack into moto;
#   2. an approval is added to the deployed approvals store;
#   3. a bucket is made public, and the CloudTrail alert about it is handed to the alert
#      function's handler, run on this machine with the deployed function's environment
#      (read back from Lambda; moto cannot run the function itself without Docker);
#   4. the story is printed: alert, decision, fix, verification, audit record, notification;
#   5. destroy takes the stack down again.
# The functions' zips: DEMO_ARTIFACTS=DIR (alert.zip, scan.zip) deploys those as they are;
# otherwise extend builds them with cargo lambda when missing or stale (`make package`;
# a release build: measured ~17 minutes for both functions on 2 cores from a cold cache).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/debug/escher-provision}
demo=.demo
rm -rf "$demo"
mkdir -p "$demo/home"
PY=.venv/bin/python

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting moto on 127.0.0.1 (installed into .venv on first use)"
bash tests/emulators.sh start
trap 'bash tests/emulators.sh stop' EXIT
set -a && . ./.emulators/env && set +a
export MOTO="$ESCHER_TEST_AWS_ENDPOINT"
# Everything the demo creates goes into moto and into $demo/home, never into ~/.escher.
export HOME="$PWD/$demo/home" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo
unset AWS_PROFILE AWS_SESSION_TOKEN
printf '[stack]\nname = "escher-demo"\n[cloudtrail]\ncreate_trail = "auto"\n' >"$demo/escher.toml"

step "escher-provision extend --cloud aws --yes (into moto at $MOTO)"
artifacts=()
[ -n "${DEMO_ARTIFACTS:-}" ] && artifacts=(--artifacts "$DEMO_ARTIFACTS")
"$BIN" extend --cloud aws --yes --endpoint-url "$MOTO" --config "$demo/escher.toml" \
  --timezone UTC "${artifacts[@]}"

step "the alert function's environment, as deployed (Lambda GetFunctionConfiguration)"
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

step "a notification inbox: an SQS queue subscribed to the critical topic"
queue_url=$("$PY" - "$MOTO" "$ESCHER_CRITICAL_TOPIC_ARN" <<'PY'
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

step "approvals add: public buckets named demo-public-* may be made private"
"$BIN" approvals add --by "${USER:-make-demo}" --action make_bucket_private --id demo-public-buckets \
  --resource 'demo-public-*' --reason "make demo: public demo buckets are a mistake"

step "someone makes a production bucket public"
bucket=demo-public-$(date +%s)
"$PY" - "$MOTO" "$bucket" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
s3.create_bucket(Bucket=sys.argv[2], ACL="public-read")
s3.put_bucket_tagging(Bucket=sys.argv[2], Tagging={"TagSet": [{"Key": "environment", "Value": "production"}]})
grants = s3.get_bucket_acl(Bucket=sys.argv[2])["Grants"]
print(sys.argv[2], "grants:", [g["Grantee"].get("URI", g["Grantee"].get("ID")) + " " + g["Permission"] for g in grants])
PY

step "the alert CloudTrail sends through EventBridge"
"$PY" - "$bucket" >"$demo/alert.json" <<'PY'
import json, sys, uuid
event = json.load(open("tests/fixtures/aws/cloudtrail-eventbridge-putbucketacl-allusers.json"))
bucket = sys.argv[1]
event["id"] = str(uuid.uuid4())
event["detail"]["eventID"] = str(uuid.uuid4())
event["detail"]["requestParameters"]["bucketName"] = bucket
event["detail"]["requestParameters"]["host"] = [f"{bucket}.s3.us-east-1.amazonaws.com"]
print(json.dumps(event, indent=2))
PY
"$PY" -c 'import json,sys; e=json.load(open(sys.argv[1])); d=e["detail"]; print(e["detail-type"], "|", d["eventName"], "on", d["requestParameters"]["bucketName"], "by", d["userIdentity"].get("arn", "?"))' "$demo/alert.json"

step "the alert function's handler, run here with the deployed environment (events handle)"
"$BIN" events handle "$demo/alert.json"

step "the bucket now"
"$PY" - "$MOTO" "$bucket" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
grants = s3.get_bucket_acl(Bucket=sys.argv[2])["Grants"]
block = s3.get_public_access_block(Bucket=sys.argv[2])["PublicAccessBlockConfiguration"]
print("grants:", [g["Grantee"].get("URI", g["Grantee"].get("ID")) + " " + g["Permission"] for g in grants])
print("public access block:", block)
PY

step "the audit record (object-locked audit bucket), verified"
"$BIN" audit verify --store "$ESCHER_AUDIT_URI"
"$PY" - "$MOTO" "$ESCHER_AUDIT_URI" <<'PY'
import json, sys, urllib.parse, boto3
uri = urllib.parse.urlparse(sys.argv[2])
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=uri.netloc, Prefix=uri.path.lstrip("/")).get("Contents", [])]
records = [k for k in keys if k.endswith(".json") and "/listing/" not in k]
if records:
    body = s3.get_object(Bucket=uri.netloc, Key=records[-1])["Body"].read()
    print(f"s3://{uri.netloc}/{records[-1]}:")
    print(json.dumps(json.loads(body), indent=2)[:3000])
PY

step "the notification on the critical topic (what the on-call e-mail/SMS subscribers get)"
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
PY

step "escher-provision destroy --cloud aws --delete-data --yes"
"$BIN" destroy --cloud aws --yes --delete-data --endpoint-url "$MOTO" --config "$demo/escher.toml"

step "where to look, and the same against a real account"
cat <<EOF
What ran:    $demo/escher.toml, $demo/alert.json, $demo/function.env (kept until the next demo)
Saved state: $demo/home/.escher (the outputs file is removed by destroy)
Code:        provisioner/src/deploy/ (extend, status, destroy), templates/aws/ (the stack),
             handlers/aws/ (the alert function), handlers/core/src/pipeline/ (decide, fix, audit, notify)

Against your own account (credentials from AWS_PROFILE or the usual AWS chain):
  make package                                  # the functions' zips (cargo lambda, ~17 min cold)
  cargo run -q -p escher-provision -- extend --cloud aws --region eu-west-1
  cargo run -q -p escher-provision -- approvals --store s3://<StateBucketName>/approvals add \\
      --action make_bucket_private --resource 'demo-*' --reason "..."
  cargo run -q -p escher-provision -- status --cloud aws
  cargo run -q -p escher-provision -- destroy --cloud aws
EOF
