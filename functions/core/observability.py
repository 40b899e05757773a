"""Logger, Metrics and Tracer, made once for every handler in the container.

Powertools reads the service name and metrics namespace from the function's
environment (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE), so the same
objects serve every domain. `instrumented` applies them to a handler in the one order
used everywhere: the logger wraps everything so that even a failure to flush metrics
is logged with the Lambda context attached.

Tracing: Lambda's active tracing (set on every function by the stack) records each
invocation in X-Ray without any SDK. The Powertools Tracer adds subsegments for every
AWS call, but the X-Ray SDK it needs builds an X-Ray client when imported, which costs
about 170 ms of every cold start. So it is opt-in per deployment:
REBATES_DETAILED_TRACING=true makes `instrumented` and `traced` use it, and only then
is the SDK imported.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger()
metrics = Metrics()

DETAILED_TRACING_ENV = "REBATES_DETAILED_TRACING"

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


def detailed_tracing_enabled() -> bool:
    return os.environ.get(DETAILED_TRACING_ENV, "false").strip().lower() == "true"


@functools.cache
def get_tracer() -> Tracer:
    """The Powertools Tracer; importing it loads the X-Ray SDK, so only on demand."""
    from aws_lambda_powertools import Tracer

    return Tracer()


def instrumented(handler: HandlerT) -> HandlerT:
    """Apply logging context, metrics flushing and (when enabled) tracing to a handler.

    The chain is assembled on the first invocation, when the environment is known.
    """
    chain: Callable[..., Any] | None = None

    @functools.wraps(handler)
    def invoke(event: Any, context: Any) -> Any:
        nonlocal chain
        if chain is None:
            inner: Callable[..., Any] = metrics.log_metrics(_with_service(handler))
            if detailed_tracing_enabled():
                inner = get_tracer().capture_lambda_handler(inner)
            chain = logger.inject_lambda_context(inner, clear_state=True)
        return chain(event, context)

    return cast(HandlerT, invoke)


def _with_service(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Stamp every log line with this function's service.

    Logger reads POWERTOOLS_SERVICE_NAME once, at import; in AWS that is this function's.
    Where several functions share a process (the local cloud), it is re-read per call.
    """

    @functools.wraps(handler)
    def call(event: Any, context: Any) -> Any:
        service = os.environ.get("POWERTOOLS_SERVICE_NAME")
        if service:
            logger.append_keys(service=service)
        return handler(event, context)

    return call


def traced(function: HandlerT) -> HandlerT:
    """A subsegment around `function` when detailed tracing is on; otherwise nothing."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not detailed_tracing_enabled():
            return function(*args, **kwargs)
        with get_tracer().provider.in_subsegment(f"## {function.__qualname__}"):
            return function(*args, **kwargs)

    return cast(HandlerT, call)
