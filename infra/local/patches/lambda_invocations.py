"""Lambda invocations run the real handler in-process, instead of in Docker.

`LambdaFunction._invoke_lambda(self, event)` is replaced by `LambdaRuntime.run`,
returning `(payload_json, is_error, logs)`. Every Lambda delivery in moto funnels
through it via `LambdaFunction.invoke`, and every one hands it an already-parsed JSON
event (a dict), except an Invoke with an empty body, which arrives as the string "{}":

- Invoke (RequestResponse, Event and DryRun alike: moto runs all three synchronously
  inside the request; an Event invocation's error is only in the history);
- Step Functions Lambda tasks, both `Resource: <function ARN>` and
  `arn:aws:states:::lambda:invoke` (moto's ASL engine calls Invoke over HTTP on
  http://localhost:$MOTO_PORT, or in-process under `mock_aws`: the Invoke path);
- S3 notifications (moto: inside PutObject, the handler's error swallowed; the
  `s3_notifications` patch queues them for the local cloud's asynchronous invocations,
  which call `LambdaRuntime.invoke` after the request);
- SNS to Lambda (inside Publish; a fixed sample envelope around the message);
- SQS, Kinesis and DynamoDB-stream event source mappings (synchronously inside
  SendMessage/PutRecord/the write); SQS and stream mappings are detached from moto
  and delivered by the local pollers instead (`event_source_mappings`).
"""

from __future__ import annotations

import json
from typing import Any, Final

from infra.local.lambdas import LocalFunction, log_tail, save_logs_to_moto
from infra.local.patches.registry import Checks, Patch, current_runtime

_LAMBDA: Final = "moto.awslambda.models"


def _event_from_moto(event: Any) -> Any:
    # `LambdaFunction.invoke` json-loads the body, but substitutes the *string* "{}"
    # for an empty body; the Docker path then json.dumps it into `"{}"`. Lambda would
    # hand the handler an empty object.
    if event is None or event == "{}":
        return {}
    return event


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    runtime = current_runtime()
    invocation = runtime.run(LocalFunction.from_moto(self), _event_from_moto(event))
    if runtime.save_logs:
        # The moto request that called us holds the gate again by now.
        save_logs_to_moto(self, invocation.logs)
    tail = log_tail(invocation.logs)
    if invocation.error is not None:
        # The Python runtime's error document; Step Functions reads `errorType` from it
        # for Retry/Catch, and puts the whole document in the Cause.
        document = {
            "errorMessage": invocation.error["errorMessage"],
            "errorType": invocation.error["errorType"],
            "requestId": invocation.request_id,
            "stackTrace": invocation.error["stackTrace"],
        }
        return json.dumps(document), True, tail
    return json.dumps(invocation.payload), False, tail


def _settings() -> list[str]:
    from moto.core.config import default_user_config

    if default_user_config.get("lambda", {}).get("use_docker", True) is False:
        return [
            "moto's config has lambda.use_docker=False: invocations would go to its stub "
            "backend and never reach the hook"
        ]
    return []


PATCH: Final = Patch(
    name="lambda_invocations",
    checks=Checks(
        signatures=[
            (_LAMBDA, "LambdaFunction", "_invoke_lambda", ["self", "event"]),
            (
                _LAMBDA,
                "LambdaBackend",
                "get_function",
                ["self", "function_name_or_arn", "qualifier"],
            ),
        ],
        sources=[
            (
                _LAMBDA,
                "LambdaFunction",
                "invoke",
                ("json.loads(body)", "self._invoke_lambda(event=body)"),
                "every delivery reaches the hook with a parsed event",
            ),
            (
                _LAMBDA,
                "LambdaFunction",
                "__init__",
                (
                    "self.handler =",
                    "self.environment_vars =",
                    "self.timeout =",
                    "self.memory_size =",
                    "self.function_arn",
                    "self.function_name =",
                    "self.run_time =",
                    "self.logs_backend =",
                    "self.logs_group_name =",
                ),
                "LocalFunction.from_moto and the CloudWatch log copy read these attributes",
            ),
            (_LAMBDA, "LambdaBackend", "invoke", ("fn.invoke(",), "Invoke reaches the hook"),
            (
                _LAMBDA,
                "LambdaBackend",
                "_send_sqs_message",
                ("self.invoke(",),
                "SQS mappings reach the hook",
            ),
            (
                _LAMBDA,
                "LambdaBackend",
                "send_sns_message",
                ("func.invoke(",),
                "SNS reaches the hook",
            ),
            (
                _LAMBDA,
                "LambdaBackend",
                "send_dynamodb_items",
                ("func.invoke(",),
                "streams reach the hook",
            ),
            (
                _LAMBDA,
                "LambdaBackend",
                "send_kinesis_message",
                ("func.invoke(",),
                "Kinesis reaches the hook",
            ),
            (
                "moto.s3.notifications",
                "",
                "_invoke_awslambda",
                ("func.invoke(",),
                "S3 notifications reach the hook",
            ),
        ],
        attributes=[
            (_LAMBDA, "", "lambda_backends"),
            (_LAMBDA, "LambdaFunction", "save_logs"),
            ("moto.logs.models", "LogsBackend", "ensure_log_group"),
        ],
    ),
    targets=[(_LAMBDA, "LambdaFunction", "_invoke_lambda", _invoke_lambda)],
    settings=_settings,
)


def verify() -> None:
    """Raise `PatchError` naming what moved if moto no longer fits this patch."""
    PATCH.verify()
