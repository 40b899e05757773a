"""Every resource type the local cloud knows: a deployer, or a reason it has no local effect."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from infra.local.deploy import (
    apigateway,
    athena,
    cloudwatch,
    dynamodb,
    events,
    firehose,
    glue,
    iam,
    kinesis,
    kms,
    lambda_,
    s3,
    secretsmanager,
    ses,
    sns,
    sqs,
    stepfunctions,
)
from infra.local.deploy.core import DeployContext, Deployer, resource_name
from infra.local.deploy.records import Deployed
from infra.local.template import resources_of

DEPLOYERS: Final[dict[str, Deployer]] = {
    "AWS::ApiGateway::ApiKey": apigateway.deploy_api_key,
    "AWS::ApiGateway::Deployment": apigateway.deploy_api_deployment,
    "AWS::ApiGateway::GatewayResponse": apigateway.deploy_gateway_response,
    "AWS::ApiGateway::Method": apigateway.deploy_api_method,
    "AWS::ApiGateway::RequestValidator": apigateway.deploy_request_validator,
    "AWS::ApiGateway::Resource": apigateway.deploy_api_resource,
    "AWS::ApiGateway::RestApi": apigateway.deploy_rest_api,
    "AWS::ApiGateway::Stage": apigateway.deploy_api_stage,
    "AWS::ApiGateway::UsagePlan": apigateway.deploy_usage_plan,
    "AWS::ApiGateway::UsagePlanKey": apigateway.deploy_usage_plan_key,
    "AWS::Athena::WorkGroup": athena.deploy_work_group,
    "AWS::CloudWatch::Alarm": cloudwatch.deploy_alarm,
    "AWS::DynamoDB::Table": dynamodb.deploy_table,
    "AWS::Events::EventBus": events.deploy_event_bus,
    "AWS::Events::Rule": events.deploy_rule,
    "AWS::Glue::Database": glue.deploy_glue_database,
    "AWS::Glue::Table": glue.deploy_glue_table,
    "AWS::IAM::Role": iam.deploy_role,
    "AWS::KMS::Key": kms.deploy_kms_key,
    "AWS::Kinesis::Stream": kinesis.deploy_stream,
    "AWS::KinesisFirehose::DeliveryStream": firehose.deploy_delivery_stream,
    "AWS::Lambda::EventInvokeConfig": lambda_.deploy_event_invoke_config,
    "AWS::Lambda::EventSourceMapping": lambda_.deploy_event_source_mapping,
    "AWS::Lambda::Function": lambda_.deploy_function,
    "AWS::Lambda::LayerVersion": lambda_.deploy_layer,
    "AWS::S3::Bucket": s3.deploy_bucket,
    "AWS::SecretsManager::Secret": secretsmanager.deploy_secret,
    "AWS::SES::EmailIdentity": ses.deploy_email_identity,
    "AWS::SNS::Subscription": sns.deploy_subscription,
    "AWS::SNS::Topic": sns.deploy_topic,
    "AWS::SQS::Queue": sqs.deploy_queue,
    "AWS::StepFunctions::StateMachine": stepfunctions.deploy_state_machine,
    "Custom::S3BucketNotifications": s3.deploy_bucket_notifications,
}


# Types with no local effect, each with the reason. They are still "deployed" as a name
# (and an ARN where something reads one), so references to them resolve.
NO_OP_TYPES: Final[dict[str, str]] = {
    "AWS::ApiGateway::Account": "account-wide CloudWatch role for API Gateway execution logs; "
    "the local API keeps no API Gateway logs",
    "AWS::CDK::Metadata": "CDK's usage metadata for CloudFormation; nothing to create",
    "AWS::CloudWatch::Dashboard": "a console view; no local effect",
    "AWS::IAM::ManagedPolicy": "moto does not evaluate IAM policies",
    "AWS::IAM::Policy": "moto does not evaluate IAM policies (roles are created: Lambda and "
    "Step Functions need their ARNs to exist)",
    "AWS::Lambda::Permission": "resource policy letting a service invoke a function; the local "
    "cloud invokes functions directly and moto enforces no permissions",
    "AWS::Logs::LogGroup": "the local runtime logs to the console; nothing reads CloudWatch "
    "Logs locally (Ref gives the name, Arn a log-group ARN)",
    "AWS::Logs::LogStream": "a stream in a no-op log group (e.g. Firehose error logging)",
    "AWS::Logs::MetricFilter": "metric filters over CloudWatch Logs, which are not kept locally",
    "AWS::S3::BucketPolicy": "moto does not enforce bucket policies (TLS-only, log delivery)",
    "AWS::SNS::TopicPolicy": "moto does not enforce topic policies",
    "AWS::SQS::QueuePolicy": "moto does not enforce queue policies; EventBridge and S3 deliver "
    "to queues without them",
}


# Ref/GetAtt of the no-ops that something reads: anything else is just a name.
_NO_OP_NAMES: Final = {
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Logs::LogStream": "LogStreamName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
}


def deploy_no_op(
    context: DeployContext, logical_id: str, resource_type: str, properties: Mapping[str, Any]
) -> Deployed:
    explicit = properties.get(_NO_OP_NAMES.get(resource_type, ""))
    name = resource_name(context, logical_id, explicit, limit=64)
    if resource_type == "AWS::Logs::LogGroup":
        return Deployed(name, {"Arn": context.arn("logs", f"log-group:{name}:*")})
    if resource_type == "AWS::IAM::ManagedPolicy":
        arn = context.arn("iam", f"policy/{name}", regional=False)
        return Deployed(arn, {"PolicyArn": arn})
    return Deployed(name)


def unsupported_resources(
    template: Mapping[str, Any], skipped: Iterable[str] = ()
) -> dict[str, str]:
    """Logical id -> type for every active resource that is neither deployable nor a no-op."""
    ignored = set(skipped)
    return {
        logical_id: definition.get("Type", "<no Type>")
        for logical_id, definition in resources_of(template).items()
        if logical_id not in ignored
        and definition.get("Type") not in DEPLOYERS
        and definition.get("Type") not in NO_OP_TYPES
    }
