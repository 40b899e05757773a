"""Names the public contract (../shared/DESIGN.md) fixes, written once for every suite."""

from __future__ import annotations

# "Local cloud": the stack outputs, the same keys in CfnOutputs and .local/outputs.json.
STACK_OUTPUTS = frozenset(
    {
        "ApiUrl",
        "CampaignBucketName",
        "ArchiveBucketName",
        "EventBusName",
        "ClaimsStateMachineArn",
        "EventsStreamName",
        "SenderEmail",
    }
)
# Only the local cloud publishes these.
LOCAL_OUTPUTS = frozenset({"AwsEndpoint", "Region", "ApiKey"})
