"""Rebates Lambda code: one package per domain plus the shared core.

In a Lambda container, importing the handler is the init phase every cold start pays, and
a sixth of it is the cyclic garbage collector walking, again and again, the modules,
classes and models the imports create, none of which is garbage. So in a Lambda
container (and only there: tests and tools import this package too) the collector is
paused from here, the first module any handler imports, until the handler's first
invocation, which freezes what init built (later collections skip it) and resumes it:
`functions.core.observability.instrumented`, which every handler is wrapped in.
"""

import gc
import os
from typing import Final

IN_LAMBDA_CONTAINER: Final = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
COLLECTOR_PAUSED_FOR_INIT: Final = IN_LAMBDA_CONTAINER and gc.isenabled()
if COLLECTOR_PAUSED_FOR_INIT:
    gc.disable()


def end_init() -> None:
    """Resume the collector paused for init, leaving what init built out of its walks."""
    if COLLECTOR_PAUSED_FOR_INIT and not gc.isenabled():
        gc.freeze()
        gc.enable()
