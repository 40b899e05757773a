"""Logger, Tracer and Metrics, made once for every handler in the container.

Powertools reads the service name and metrics namespace from the function's
environment (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE), so the same
objects serve every domain. `instrumented` applies them to a handler in the one order
used everywhere: the logger wraps everything so that even a failure to flush metrics
is logged with the Lambda context attached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


def instrumented(handler: HandlerT) -> HandlerT:
    """Apply logging context, tracing and metrics flushing to a Lambda handler."""
    wrapped = metrics.log_metrics(handler)
    wrapped = tracer.capture_lambda_handler(wrapped)
    return cast(HandlerT, logger.inject_lambda_context(wrapped, clear_state=True))
