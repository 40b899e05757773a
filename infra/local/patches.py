"""Every change the local cloud makes to moto's behaviour, and a check that it still fits.

moto 5.2.5 is pinned because these reach into private members. `verify()` checks each
target still exists with the shape the patch expects; tests/unit/local/test_patches.py
fails loudly (naming what moved) when a moto upgrade breaks one.

The patches:

1. `LambdaFunction._invoke_lambda(self, event)` runs the real handler in-process
   (`LambdaRuntime.run`) instead of in Docker, returning `(payload_json, is_error,
   logs)`. Every Lambda delivery in moto funnels through it via `LambdaFunction.invoke`,
   and every one hands it an already-parsed JSON event (a dict), except an Invoke with
   an empty body, which arrives as the string "{}":
   - Invoke (RequestResponse, Event and DryRun alike: moto runs all three synchronously
     inside the request; an Event invocation's error is only in the history);
   - Step Functions Lambda tasks, both `Resource: <function ARN>` and
     `arn:aws:states:::lambda:invoke` (moto's ASL engine calls Invoke over HTTP on
     http://localhost:$MOTO_PORT, or in-process under `mock_aws`: the Invoke path);
   - S3 notifications (inside PutObject; moto swallows the handler's error);
   - SNS to Lambda (inside Publish; a fixed sample envelope around the message);
   - SQS, Kinesis and DynamoDB-stream event source mappings (synchronously inside
     SendMessage/PutRecord/the write). SQS mappings are detached from moto
     (`detach_sqs_event_source`) and delivered by `pollers.SqsPoller` instead.
2. `Queue.wait_for_messages(self, timeout)` releases the gate while a long-polling
   ReceiveMessage waits, so `aws sqs receive-message --wait-time-seconds 20` or a
   poller does not stall every other request into moto for that long; it also waits
   in 0.1 s slices so a message made visible again is picked up promptly.
3. Step Functions Wait states and Retry intervals sleep for real; moto has no setting
   for it. `set_step_functions_time_scale(0.01)` shortens both (default 1: real time).
"""

from __future__ import annotations

import importlib
import inspect
import json
import threading
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Final

from infra.local.lambdas import LocalFunction, log_tail, save_logs_to_moto

if TYPE_CHECKING:
    from infra.local.lambdas import LambdaRuntime

__all__ = [
    "PINNED_MOTO_VERSION",
    "PatchError",
    "active_runtime",
    "apply",
    "detach_sqs_event_source",
    "revert",
    "set_step_functions_time_scale",
    "step_functions_time_scale",
    "verify",
]

PINNED_MOTO_VERSION: Final = "5.2.5"


class PatchError(RuntimeError):
    """moto no longer has the shape a patch expects (see `verify()`)."""


_lock = threading.RLock()
# A stack, so a second local cloud in the same process (an integration test module
# beside a session-wide one) can take over and hand back; moto's backends are global.
_runtimes: list[LambdaRuntime] = []
# (owner object, attribute name, original value) for each patched attribute.
_originals: list[tuple[Any, str, Any]] = []


class _TimeScale:
    value = 1.0


def active_runtime() -> LambdaRuntime | None:
    with _lock:
        return _runtimes[-1] if _runtimes else None


def _runtime() -> LambdaRuntime:
    runtime = active_runtime()
    if runtime is None:
        raise PatchError("moto called a local-cloud patch after revert()")
    return runtime


def _original(owner: Any, name: str) -> Any:
    """The unpatched attribute (also while patched)."""
    for patched_owner, patched_name, value in _originals:
        if patched_owner is owner and patched_name == name:
            return value
    return getattr(owner, name)


# -- 1. Lambda invocations run the real handler -----------------------------------------


def _event_from_moto(event: Any) -> Any:
    # `LambdaFunction.invoke` json-loads the body, but substitutes the *string* "{}"
    # for an empty body; the Docker path then json.dumps it into `"{}"`. Lambda would
    # hand the handler an empty object.
    if event is None or event == "{}":
        return {}
    return event


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    runtime = _runtime()
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


# -- 2. long polls do not hold the gate ------------------------------------------------


# moto's wait wakes on SendMessage only; a message becoming visible again (a retry
# after ChangeMessageVisibility, an expired visibility timeout) is noticed when the
# wait times out. receive_message loops until its own deadline anyway, so shorter
# waits change nothing but how soon such a message is picked up.
_LONG_POLL_SLICE_SECONDS: Final = 0.1


def _wait_for_messages(self: Any, timeout: int) -> None:
    from moto.sqs.models import Queue

    original = _original(Queue, "wait_for_messages")
    # receive_message only reads queue state again after this wait returns, so other
    # requests may run meanwhile.
    with _runtime().gate.released():
        original(self, min(timeout, _LONG_POLL_SLICE_SECONDS))


# -- 3. Step Functions waits ----------------------------------------------------------


def set_step_functions_time_scale(scale: float) -> None:
    """Multiply every Step Functions Wait state and Retry interval by `scale` (>0).

    For tests and the demo: 0.01 makes a 60 s Wait take 0.6 s. Applies from the next
    wait on, while the patches are applied.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    _TimeScale.value = float(scale)


def step_functions_time_scale() -> float:
    return _TimeScale.value


def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )

    scale = _TimeScale.value
    if scale == 1.0:
        _original(WaitFunction, "_wait_interval")(self, env, wait_seconds)
        return
    # moto's own loop rounds waited time to whole seconds, so a fractional wait would
    # never finish there; this keeps its contract: wake early only if the execution
    # stops (program_state_event), otherwise wait out the (scaled) interval.
    deadline = time.monotonic() + wait_seconds * scale
    while env.is_running():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if env.program_state_event.wait(remaining) and env.is_running():
            time.sleep(min(remaining, 0.05))


class _ScaledTime:
    """Stands in for the `time` module inside moto's retrier: scaled `sleep`."""

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds * _TimeScale.value)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


# -- apply / revert -------------------------------------------------------------------


def _targets() -> list[tuple[Any, str, Any]]:
    from moto.awslambda.models import LambdaFunction
    from moto.sqs.models import Queue
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )

    return [
        (LambdaFunction, "_invoke_lambda", _invoke_lambda),
        (Queue, "wait_for_messages", _wait_for_messages),
        (WaitFunction, "_wait_interval", _wait_interval),
        (retrier_decl, "time", _ScaledTime()),
    ]


def apply(runtime: LambdaRuntime) -> None:
    """Route moto's Lambda invocations to `runtime` (and install the other patches).

    Nested applies stack: the latest runtime serves until its `revert()`.
    """
    with _lock:
        if not _runtimes:
            problems = verify()
            if problems:
                raise PatchError("cannot patch moto:\n- " + "\n- ".join(problems))
            for owner, name, replacement in _targets():
                _originals.append((owner, name, getattr(owner, name)))
                setattr(owner, name, replacement)
        _runtimes.append(runtime)


def revert() -> None:
    """Undo the latest `apply()`; the last one restores moto entirely."""
    with _lock:
        if not _runtimes:
            return
        _runtimes.pop()
        if not _runtimes:
            while _originals:
                owner, name, value = _originals.pop()
                setattr(owner, name, value)
            _TimeScale.value = 1.0


# -- SQS event source mappings ----------------------------------------------------------


def detach_sqs_event_source(queue_arn: str, function_arn: str) -> None:
    """Stop moto delivering `queue_arn` to `function_arn`; the mapping stays listed.

    moto delivers at SendMessage, synchronously, with ApproximateReceiveCount "1",
    fixed timestamps, no message attributes, no partial batch responses and a failed
    batch made visible again at once (Queue.add_message): no real retries or redrive.
    The mapping itself stays in moto's Lambda backend (list-event-source-mappings shows
    it); `pollers.SqsPoller` delivers instead.
    """
    from moto.sqs.models import sqs_backends

    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {queue_arn!r}")
    region, account, name = parts[3], parts[4], parts[5]
    runtime = active_runtime()
    with runtime.gate.held() if runtime is not None else nullcontext():
        queue = sqs_backends[account][region].queues.get(name)
        if queue is None:
            raise LookupError(f"moto has no queue {queue_arn}")
        mappings: dict[str, Any] = queue.lambda_event_source_mappings
        if mappings.pop(function_arn, None) is None:
            raise LookupError(
                f"moto has no event source mapping from {queue_arn} to {function_arn} "
                f"(mapped functions: {sorted(mappings) or 'none'})"
            )


# -- verification ---------------------------------------------------------------------

_LAMBDA: Final = "moto.awslambda.models"
_SQS: Final = "moto.sqs.models"
_WAIT: Final = "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function"
_RETRY: Final = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl"

# (module, class or "" for a module function, member, expected parameters)
_SIGNATURES: Final = [
    (_LAMBDA, "LambdaFunction", "_invoke_lambda", ["self", "event"]),
    (_LAMBDA, "LambdaBackend", "get_function", ["self", "function_name_or_arn", "qualifier"]),
    (_SQS, "Queue", "wait_for_messages", ["self", "timeout"]),
    (_WAIT, "WaitFunction", "_wait_interval", ["self", "env", "wait_seconds"]),
]

# (module, class or "", member, what its source must contain, what relies on it)
_SOURCES: Final = [
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
    (_LAMBDA, "LambdaBackend", "send_sns_message", ("func.invoke(",), "SNS reaches the hook"),
    (_LAMBDA, "LambdaBackend", "send_dynamodb_items", ("func.invoke(",), "streams reach the hook"),
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
    (_SQS, "Queue", "__init__", ("self.lambda_event_source_mappings",), "detach_sqs_event_source"),
    (
        _SQS,
        "Queue",
        "add_message",
        ("self.lambda_event_source_mappings.items()",),
        "detach_sqs_event_source stops moto's delivery at SendMessage",
    ),
    (
        _SQS,
        "SQSBackend",
        "receive_message",
        (
            "queue.wait_for_messages(",
            'queue.redrive_policy["maxReceiveCount"]',
            "dead_letter_queue.add_message(",
        ),
        "long polls release the gate; receives move poison messages to the DLQ",
    ),
    (
        "moto.stepfunctions.responses",
        "",
        "get_backend",
        ('"execute_state_machine"',),
        "MotoServer switches Step Functions to executing ASL",
    ),
    (
        "moto.stepfunctions.parser.asl.utils.boto_client",
        "",
        "boto_client_for",
        ("moto_server_port()",),
        "service tasks call this server on localhost:$MOTO_PORT",
    ),
    (_WAIT, "WaitFunction", "_wait_interval", ("program_state_event",), "the Wait time scale"),
    (_RETRY, "RetrierDecl", "_eval_body", ("time.sleep(",), "the Retry time scale"),
]

# (module, class or "", attribute)
_ATTRIBUTES: Final = [
    (_LAMBDA, "", "lambda_backends"),
    (_LAMBDA, "LambdaFunction", "save_logs"),
    (_SQS, "", "sqs_backends"),
    ("moto.logs.models", "LogsBackend", "ensure_log_group"),
    ("moto.moto_server.werkzeug_app", "", "DomainDispatcherApplication"),
    ("moto.moto_server.werkzeug_app", "", "create_backend_app"),
    ("moto.moto_server.werkzeug_app", "", "MotoRequestHandler"),
]


def _owner(module: str, owner: str) -> Any:
    loaded = importlib.import_module(module)
    return getattr(loaded, owner) if owner else loaded


def _name(module: str, owner: str, member: str) -> str:
    return f"{module}.{owner + '.' if owner else ''}{member}"


def _settings_problems() -> list[str]:
    import moto
    from moto.core.config import default_user_config

    problems = []
    if moto.__version__ != PINNED_MOTO_VERSION:
        problems.append(
            f"moto {moto.__version__} is installed, the patches were written for "
            f"{PINNED_MOTO_VERSION}: re-check every patch in infra/local/patches.py, then "
            "update PINNED_MOTO_VERSION"
        )
    if default_user_config.get("lambda", {}).get("use_docker", True) is False:
        problems.append(
            "moto's config has lambda.use_docker=False: invocations would go to its stub "
            "backend and never reach the hook"
        )
    if _original(_owner(_RETRY, ""), "time") is not time:
        problems.append(f"{_RETRY} no longer sleeps through the time module")
    return problems


def verify() -> list[str]:
    """What no longer matches the patches' expectations in the installed moto (empty: OK)."""
    problems = _settings_problems()
    for module, owner, member, expected in _SIGNATURES:
        name = _name(module, owner, member)
        try:
            found = list(inspect.signature(_original(_owner(module, owner), member)).parameters)
        except Exception as error:
            problems.append(f"{name}: {type(error).__name__}: {error}")
            continue
        if found != expected:
            problems.append(f"{name}: parameters are now {found}, the patch expects {expected}")
    for module, owner, member, needles, why in _SOURCES:
        name = _name(module, owner, member)
        try:
            text = inspect.getsource(_original(_owner(module, owner), member))
        except Exception as error:
            problems.append(f"{name}: {type(error).__name__}: {error} ({why})")
            continue
        missing = [needle for needle in needles if needle not in text]
        if missing:
            problems.append(f"{name} no longer contains {missing}: {why}")
    for module, owner, attribute in _ATTRIBUTES:
        try:
            present = hasattr(_owner(module, owner), attribute)
        except Exception as error:
            problems.append(f"{_name(module, owner, attribute)}: {type(error).__name__}: {error}")
            continue
        if not present:
            problems.append(f"{_name(module, owner, attribute)} is gone")
    return problems
