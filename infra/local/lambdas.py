"""Running the real Lambda handlers in this process, as Lambda would.

moto holds the function registry (the deployer creates every function in moto with
the template's handler and environment); this module runs one invocation of one
function: it imports the handler module once (inside the function's environment,
since module-level Powertools and boto3 objects read it), builds a Lambda context,
runs the handler with the function's environment and the Lambda runtime variables,
and turns an exception into the error Lambda reports (`errorType` is the exception's
class name, which Step Functions Retry/Catch match on).

Invocations come from moto (Invoke, Step Functions Lambda tasks, SNS deliveries,
through `patches`), from the SQS, table stream and Kinesis stream pollers, from the local
API, and from the asynchronous invocations S3 notifications queue (`invoke_async`).
"""

from __future__ import annotations

import contextlib
import decimal
import importlib
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TextIO

from functions.core.clock import CLOCK_OFFSET_ENV
from infra.local.environment import function_environment, pass_through_environment
from infra.local.proxy_event import LambdaContextStub
from infra.local.server import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, SerialGate

__all__ = [
    "DEFAULT_FUNCTION_ENVIRONMENT",
    "FunctionNotFound",
    "Invocation",
    "LambdaRuntime",
    "LocalFunction",
    "log_tail",
    "save_logs_to_moto",
]

log = logging.getLogger(__name__)

# Below the function's own variables, so its template can still turn them around.
# No X-Ray daemon listens locally, and the X-Ray SDK's recorder and its botocore
# patching are process-wide: one function tracing would trace every function here.
DEFAULT_FUNCTION_ENVIRONMENT: Final[Mapping[str, str]] = {"POWERTOOLS_TRACE_DISABLED": "true"}

# Lambda returns at most the last 4 KB of the log in `x-amz-log-result`.
_LOG_TAIL_BYTES: Final = 4096
# Bound each recorded invocation's log so a chatty handler cannot grow the history.
_LOG_KEEP_CHARS: Final = 64 * 1024


@dataclass
class LocalFunction:
    """What running one function needs; moto's `LambdaFunction` is the source."""

    name: str
    arn: str
    handler: str
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    runtime: str = "python3.12"

    @classmethod
    def from_moto(cls, function: Any) -> LocalFunction:
        """From a `moto.awslambda.models.LambdaFunction`."""
        return cls(
            name=str(function.function_name),
            arn=str(function.function_arn),
            handler=str(function.handler),
            environment={str(k): str(v) for k, v in (function.environment_vars or {}).items()},
            timeout_seconds=int(function.timeout),
            memory_mb=int(function.memory_size),
            runtime=str(function.run_time or "python3.12"),
        )

    @property
    def region(self) -> str | None:
        parts = self.arn.split(":")
        return parts[3] if len(parts) > 3 and parts[3] else None


@dataclass
class Invocation:
    """One finished invocation: what the handler returned, or the error Lambda reports."""

    function_name: str
    payload: Any
    # {"errorType", "errorMessage", "stackTrace"} as the Python runtime reports it.
    error: dict[str, Any] | None
    logs: str
    duration_ms: float
    request_id: str
    event: Any = None
    finished_at: float = field(default_factory=time.time)

    @property
    def is_error(self) -> bool:
        return self.error is not None

    @property
    def error_type(self) -> str | None:
        return None if self.error is None else str(self.error.get("errorType"))


class FunctionNotFound(LookupError):
    """No function of that name or ARN exists in moto."""


class AsyncQueue(Protocol):
    """Where asynchronous invocations wait for delivery (`async_invocations`)."""

    def submit(self, function_name_or_arn: str, event: Any, *, ordering_key: str) -> None: ...


class _InvocationError(Exception):
    """A failure the Lambda runtime itself reports (import, handler name, marshalling)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


# -- log capture ----------------------------------------------------------------------


@dataclass
class _Capture:
    parts: list[str] = field(default_factory=list)
    size: int = 0
    echo: bool = True

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * _LOG_KEEP_CHARS:
            kept = "".join(self.parts)[-_LOG_KEEP_CHARS:]
            self.parts, self.size = [kept], len(kept)

    def text(self) -> str:
        return "".join(self.parts)[-_LOG_KEEP_CHARS:]


_capture: ContextVar[_Capture | None] = ContextVar("rebates_lambda_log_capture", default=None)
_tee_lock = threading.Lock()


class _TeeStream:
    """sys.stdout/sys.stderr that also copies what a handler writes into its invocation.

    Outside an invocation it is a pass-through. Powertools' Logger binds the stream at
    construction, so its lines are captured when the handler module (and with it
    `functions.core.observability`) is first imported by this runtime; a Logger built
    earlier in the process writes straight to the old stream and is not captured.
    """

    def __init__(self, target: TextIO) -> None:
        self._target = target

    def write(self, text: str) -> int:
        capture = _capture.get()
        if capture is not None:
            capture.add(text)
            if not capture.echo:
                return len(text)
        return self._target.write(text)

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _install_tee() -> None:
    # Checked on every invocation because pytest swaps sys.stdout around each test;
    # wrapping whatever is current keeps its capture working.
    with _tee_lock:
        if not isinstance(sys.stdout, _TeeStream):
            sys.stdout = _TeeStream(sys.stdout)
        if not isinstance(sys.stderr, _TeeStream):
            sys.stderr = _TeeStream(sys.stderr)


# -- the runtime ----------------------------------------------------------------------


class LambdaRuntime:
    """Runs functions' real handlers in-process with their environment and context.

    The environment overlay (`environment.install_overlay()`) must be installed while
    it runs invocations; the local cloud installs it before creating the runtime.

    `clock_offset_seconds` is passed to every invocation as REBATES_CLOCK_OFFSET_SECONDS,
    so handlers see the shifted clock (functions/core/clock.py) from the next call on.
    """

    def __init__(
        self,
        gate: SerialGate,
        runtime_environment: Mapping[str, str],
        *,
        project_root: Path,
        history_limit: int = 1000,
        echo_logs: bool = True,
        save_logs: bool = True,
    ) -> None:
        self.gate = gate
        self.runtime_environment = dict(runtime_environment)
        self.project_root = project_root.resolve()
        self.clock_offset_seconds: int = 0
        self.echo_logs = echo_logs
        # Copy each invocation's log to moto's CloudWatch Logs (/aws/lambda/<name>),
        # so `aws logs tail` works as in AWS.
        self.save_logs = save_logs
        # Lambda's queue of asynchronous invocations (the local cloud's); without one,
        # `invoke_async` runs the invocation at once, inside the call that made it.
        self.async_queue: AsyncQueue | None = None
        self._history: deque[Invocation] = deque(maxlen=history_limit)
        self._recorded = threading.Condition()
        self._handlers: dict[tuple[str, str], Callable[[Any, Any], Any]] = {}
        self._handlers_lock = threading.Lock()
        self._closed = False
        # Handlers are imported by dotted path from the project, as Lambda imports them
        # from the code asset's root.
        if str(self.project_root) not in sys.path:
            sys.path.insert(0, str(self.project_root))

    # -- environment --

    def environment_for(self, function: LocalFunction) -> dict[str, str]:
        """Exactly what `os.environ` is for one invocation of `function`.

        Precedence as in Lambda: host pass-through and local defaults, then the
        function's configuration, then the local cloud's endpoint and credentials, then
        the variables Lambda reserves (which a function cannot override).
        """
        region = (
            function.region
            or self.runtime_environment.get("AWS_REGION")
            or self.runtime_environment.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION
        )
        env = pass_through_environment()
        env.update(DEFAULT_FUNCTION_ENVIRONMENT)
        env.update(function.environment)
        env.update(self.runtime_environment)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": _log_group(function),
                "AWS_LAMBDA_LOG_STREAM_NAME": _log_stream(),
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                "LAMBDA_TASK_ROOT": str(self.project_root),
                "_HANDLER": function.handler,
                CLOCK_OFFSET_ENV: str(int(self.clock_offset_seconds)),
            }
        )
        return env

    # -- invoking --

    def run(
        self, function: LocalFunction, event: Any, *, request_id: str | None = None
    ) -> Invocation:
        """Run one invocation of `function` with `event`; never raises for handler errors.

        `request_id`: the invocation's id (a retry of an asynchronous one keeps it);
        a fresh one when not given.
        """
        if self._closed:
            raise RuntimeError("this LambdaRuntime is closed")
        # Lambda hands the handler a freshly parsed JSON document: no shared objects
        # with the caller, no types JSON cannot carry.
        event = json.loads(json.dumps(event))
        request_id = request_id or str(uuid.uuid4())
        env = self.environment_for(function)
        started_wall = time.time()
        context = LambdaContextStub(
            function_name=function.name,
            memory_limit_in_mb=function.memory_mb,
            invoked_function_arn=function.arn,
            aws_request_id=request_id,
            function_version="$LATEST",
            log_group_name=env["AWS_LAMBDA_LOG_GROUP_NAME"],
            log_stream_name=env["AWS_LAMBDA_LOG_STREAM_NAME"],
            deadline_ms=(started_wall + function.timeout_seconds) * 1000,
        )
        capture = _Capture(echo=self.echo_logs)
        _install_tee()
        token = _capture.set(capture)
        payload: Any = None
        error: dict[str, Any] | None = None
        started = time.perf_counter()
        try:
            # Release the gate if a moto request (Invoke, an S3 notification...) is
            # running us: the handler's own calls into moto need it.
            with function_environment(env), self.gate.released():
                try:
                    handler = self._load_handler(function)
                    payload = _marshal(handler(event, context))
                except _InvocationError as failure:
                    error = _error(failure.error_type, failure.message, failure)
                except SystemExit as exit_:
                    error = _error(
                        "Runtime.ExitError",
                        f"RequestId: {request_id} Error: Runtime exited with error: "
                        f"exit status {exit_.code}",
                        exit_,
                    )
                except Exception as failure:
                    error = _error(type(failure).__name__, str(failure), failure)
                if error is not None:
                    # The Python runtime logs the failure in the function's log too.
                    trace = "".join(error["stackTrace"])
                    sys.stderr.write(
                        f"[ERROR] {error['errorType']}: {error['errorMessage']}\n{trace}"
                    )
        finally:
            _capture.reset(token)
        duration_ms = (time.perf_counter() - started) * 1000
        if duration_ms > function.timeout_seconds * 1000:
            # A thread cannot be stopped: say so rather than pretend it was.
            log.warning(
                "%s ran %.0f ms, beyond its %d s timeout (not enforced locally)",
                function.name,
                duration_ms,
                function.timeout_seconds,
            )
        invocation = Invocation(
            function_name=function.name,
            payload=payload,
            error=error,
            logs=capture.text(),
            duration_ms=duration_ms,
            request_id=request_id,
            event=event,
        )
        self._record(invocation)
        return invocation

    def lookup(self, function_name_or_arn: str) -> LocalFunction:
        """The function as moto has it (handler, environment, timeout, memory)."""
        return LocalFunction.from_moto(self._moto_function(function_name_or_arn))

    def invoke(
        self, function_name_or_arn: str, event: Any, *, request_id: str | None = None
    ) -> Invocation:
        """Run the function moto knows by this name or ARN (pollers, the local API)."""
        moto_function = self._moto_function(function_name_or_arn)
        invocation = self.run(LocalFunction.from_moto(moto_function), event, request_id=request_id)
        if self.save_logs:
            with self.gate.held():
                save_logs_to_moto(moto_function, invocation.logs)
        return invocation

    def invoke_async(self, function_name_or_arn: str, event: Any, *, ordering_key: str) -> None:
        """An asynchronous invocation (InvocationType Event), as S3 makes them.

        Queued on `async_queue` and delivered after the caller returns, with Lambda's
        retries; events with the same `ordering_key` (an object's key) are delivered one
        after another, in the order they were made. Without a queue it runs at once and
        its error is only logged, as moto would.
        """
        if self.async_queue is not None:
            self.async_queue.submit(function_name_or_arn, event, ordering_key=ordering_key)
            return
        try:
            self.invoke(function_name_or_arn, event)
        except FunctionNotFound:
            log.exception("asynchronous invocation of a function that does not exist")

    def _moto_function(self, function_name_or_arn: str) -> Any:
        from moto.awslambda.models import lambda_backends

        account, region = (
            DEFAULT_ACCOUNT_ID,
            self.runtime_environment.get("AWS_REGION", DEFAULT_REGION),
        )
        parts = function_name_or_arn.split(":")
        if function_name_or_arn.startswith("arn:") and len(parts) >= 7:
            region, account = parts[3], parts[4]
        with self.gate.held():
            try:
                return lambda_backends[account][region].get_function(function_name_or_arn)
            except Exception as missing:  # moto's UnknownFunctionException
                raise FunctionNotFound(
                    f"no Lambda function {function_name_or_arn!r} in moto "
                    f"(account {account}, region {region})"
                ) from missing

    def _load_handler(self, function: LocalFunction) -> Callable[[Any, Any], Any]:
        key = (function.name, function.handler)
        with self._handlers_lock:
            cached = self._handlers.get(key)
        if cached is not None:
            return cached
        # "functions.core.health.handler" (Lambda also accepts "path/to/module.fn").
        module_name, _, attribute = function.handler.replace("/", ".").rpartition(".")
        if not module_name or not attribute:
            raise _InvocationError(
                "Runtime.MalformedHandlerName",
                f"Bad handler '{function.handler}': not enough values to unpack",
            )
        try:
            # Python's import lock makes concurrent first imports of one module safe.
            module = importlib.import_module(module_name)
        except Exception as failure:
            # Not cached: like a Lambda init failure, the next invocation tries again.
            raise _InvocationError(
                "Runtime.ImportModuleError",
                f"Unable to import module '{module_name}': {failure}",
            ) from failure
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise _InvocationError(
                "Runtime.HandlerNotFound",
                f"Handler '{attribute}' missing on module '{module_name}'",
            )
        with self._handlers_lock:
            self._handlers[key] = handler
        return handler  # type: ignore[no-any-return]

    # -- history --

    def _record(self, invocation: Invocation) -> None:
        with self._recorded:
            self._history.append(invocation)
            self._recorded.notify_all()

    @property
    def history(self) -> list[Invocation]:
        """The recorded invocations, oldest first (a snapshot; bounded)."""
        with self._recorded:
            return list(self._history)

    def clear_history(self) -> None:
        with self._recorded:
            self._history.clear()

    def wait_for(self, predicate: Callable[[Invocation], bool], timeout: float = 5.0) -> Invocation:
        """The first recorded invocation matching `predicate`, waiting for one if needed.

        Raises TimeoutError (listing the recent invocations) when none arrives in time.
        """
        deadline = time.monotonic() + timeout
        with self._recorded:
            while True:
                for invocation in self._history:
                    if predicate(invocation):
                        return invocation
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    recent = ", ".join(
                        f"{i.function_name}({i.error_type or 'ok'})"
                        for i in list(self._history)[-10:]
                    )
                    raise TimeoutError(
                        f"no matching invocation within {timeout:g} s; recent: {recent or 'none'}"
                    )
                self._recorded.wait(remaining)

    # -- lifecycle --

    def close(self) -> None:
        """Refuse further invocations (the overlay is the caller's to uninstall)."""
        self._closed = True

    def __enter__(self) -> LambdaRuntime:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def save_logs_to_moto(moto_function: Any, logs: str) -> None:
    """Append an invocation's log to moto's CloudWatch Logs group for the function.

    The caller holds the gate (this writes to moto's logs backend).
    """
    if not logs:
        return
    with contextlib.suppress(Exception):
        # Logs are a convenience: a logs-backend hiccup must not fail the invocation.
        moto_function.logs_backend.ensure_log_group(moto_function.logs_group_name)
        moto_function.save_logs(logs)


def log_tail(logs: str) -> str:
    """The last 4 KB of a log, as Lambda returns in `x-amz-log-result`."""
    encoded = logs.encode("utf-8")
    if len(encoded) <= _LOG_TAIL_BYTES:
        return logs
    return encoded[-_LOG_TAIL_BYTES:].decode("utf-8", errors="ignore")


def _log_group(function: LocalFunction) -> str:
    return f"/aws/lambda/{function.name}"


def _log_stream() -> str:
    today = datetime.now(UTC).strftime("%Y/%m/%d")
    return f"{today}/[$LATEST]{uuid.uuid4().hex}"


def _decimal_default(value: object) -> Any:
    # The Python runtime's marshaller turns Decimal (PynamoDB, boto3 resource numbers)
    # into a JSON number rather than failing.
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _marshal(result: Any) -> Any:
    """The handler's result as the caller receives it: JSON, or Runtime.MarshalError."""
    try:
        return json.loads(json.dumps(result, default=_decimal_default))
    except (TypeError, ValueError) as failure:
        raise _InvocationError(
            "Runtime.MarshalError", f"Unable to marshal response: {failure}"
        ) from failure


def _error(error_type: str, message: str, failure: BaseException) -> dict[str, Any]:
    frames = traceback.extract_tb(failure.__traceback__)
    return {
        "errorType": error_type,
        "errorMessage": message,
        "stackTrace": traceback.format_list(frames),
    }
