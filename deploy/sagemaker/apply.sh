#!/usr/bin/env bash
# Registers a SageMaker endpoint variant with Application Auto Scaling and attaches inferd's
# policies (the JSON files next to this script; deploy/README.md says how their targets were
# derived). Needs the AWS CLI and credentials allowed to call application-autoscaling and
# cloudwatch.
#
#   ENDPOINT_NAME=churn [VARIANT_NAME=AllTraffic] [MIN=1] [MAX=4] deploy/sagemaker/apply.sh realtime
#   ENDPOINT_NAME=churn-async [MIN=0] [MAX=4] deploy/sagemaker/apply.sh async
#
# realtime: target tracking on SageMakerVariantInvocationsPerInstance and on the high-resolution
#           SageMakerVariantConcurrentRequestsPerModelHighResolution; the larger answer wins.
# async:    target tracking on ApproximateBacklogSizePerInstance, plus a step policy that a
#           CloudWatch alarm on HasBacklogWithoutCapacity fires, so that the endpoint leaves zero
#           instances on the first request rather than once the backlog passes the target.
# Running it again updates the policies and the alarm in place.
set -euo pipefail

usage() {
  echo "usage: ENDPOINT_NAME=NAME [VARIANT_NAME=AllTraffic] [MIN=N] [MAX=N] $0 realtime|async" >&2
  exit 2
}

mode=${1:-}
case "$mode" in
  realtime) default_min=1 ;;
  async) default_min=0 ;;
  *) usage ;;
esac
[ $# -eq 1 ] || usage

ENDPOINT_NAME=${ENDPOINT_NAME:-}
VARIANT_NAME=${VARIANT_NAME:-AllTraffic}
MIN=${MIN:-$default_min}
MAX=${MAX:-4}

# SageMaker's own name rules; they also keep the names safe to substitute into the JSON below.
name_rule='^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$'
[[ $ENDPOINT_NAME =~ $name_rule ]] || { echo "apply.sh: ENDPOINT_NAME must be a SageMaker endpoint name, got '$ENDPOINT_NAME'" >&2; usage; }
[[ $VARIANT_NAME =~ $name_rule ]] || { echo "apply.sh: VARIANT_NAME must be a SageMaker variant name, got '$VARIANT_NAME'" >&2; usage; }
[[ $MIN =~ ^[0-9]+$ && $MAX =~ ^[0-9]+$ ]] || { echo "apply.sh: MIN and MAX must be whole numbers" >&2; exit 2; }
((MIN <= MAX && MAX >= 1)) || { echo "apply.sh: need MIN <= MAX and MAX >= 1 (MIN=$MIN, MAX=$MAX)" >&2; exit 2; }
# Only asynchronous endpoints can have zero instances: a real-time variant would have none to answer.
if [ "$mode" = realtime ] && ((MIN < 1)); then
  echo "apply.sh: a real-time variant needs MIN >= 1" >&2
  exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The JSON files hold ${ENDPOINT_NAME} and ${STEP_POLICY_ARN} where the endpoint decides the value.
render() { # file [step policy ARN] → file:// URL of the filled-in copy
  local file=$1 arn=${2:-}
  arn=${arn//\\/\\\\}
  arn=${arn//&/\\&}
  arn=${arn//|/\\|}
  sed -e "s|\${ENDPOINT_NAME}|${ENDPOINT_NAME}|g" -e "s|\${STEP_POLICY_ARN}|${arn}|g" "$here/$file" >"$work/$file"
  echo "file://$work/$file"
}

target=(
  --service-namespace sagemaker
  --resource-id "endpoint/${ENDPOINT_NAME}/variant/${VARIANT_NAME}"
  --scalable-dimension sagemaker:variant:DesiredInstanceCount
)

echo "registering endpoint/${ENDPOINT_NAME}/variant/${VARIANT_NAME}: $MIN to $MAX instances" >&2
aws application-autoscaling register-scalable-target "${target[@]}" --min-capacity "$MIN" --max-capacity "$MAX"

# Assignments first: under set -e a failed $(render) stops the script only there.
if [ "$mode" = realtime ]; then
  invocations=$(render realtime-invocations-per-instance.json)
  concurrency=$(render realtime-concurrent-requests.json)
  aws application-autoscaling put-scaling-policy "${target[@]}" \
    --policy-name inferd-invocations-per-instance --policy-type TargetTrackingScaling \
    --target-tracking-scaling-policy-configuration "$invocations"
  aws application-autoscaling put-scaling-policy "${target[@]}" \
    --policy-name inferd-concurrent-requests --policy-type TargetTrackingScaling \
    --target-tracking-scaling-policy-configuration "$concurrency"
else
  backlog=$(render async-backlog-per-instance.json)
  step=$(render async-scale-from-zero.json)
  aws application-autoscaling put-scaling-policy "${target[@]}" \
    --policy-name inferd-backlog-per-instance --policy-type TargetTrackingScaling \
    --target-tracking-scaling-policy-configuration "$backlog"
  step_policy_arn=$(aws application-autoscaling put-scaling-policy "${target[@]}" \
    --policy-name inferd-scale-from-zero --policy-type StepScaling \
    --step-scaling-policy-configuration "$step" \
    --query PolicyARN --output text)
  if [ -z "$step_policy_arn" ] || [ "$step_policy_arn" = None ]; then
    echo "apply.sh: put-scaling-policy returned no PolicyARN" >&2
    exit 1
  fi
  alarm=$(render async-backlog-without-capacity-alarm.json "$step_policy_arn")
  aws cloudwatch put-metric-alarm --cli-input-json "$alarm"
fi
echo "done: aws application-autoscaling describe-scaling-policies --service-namespace sagemaker --resource-id endpoint/${ENDPOINT_NAME}/variant/${VARIANT_NAME}" >&2
