"""Step Functions waits on a time scale.

Wait states and Retry intervals sleep for real in moto, which has no setting for it.
`set_step_functions_time_scale(0.01)` shortens both (default 1: real time) while the
patches are applied; the last `revert()` restores real time.
"""

from __future__ import annotations

import time
from typing import Any, Final

from infra.local.patches.registry import Checks, Patch, original

_WAIT: Final = "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function"
_RETRY: Final = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl"


class _TimeScale:
    value = 1.0


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


def _real_time() -> None:
    _TimeScale.value = 1.0


def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )

    scale = _TimeScale.value
    if scale == 1.0:
        original(WaitFunction, "_wait_interval")(self, env, wait_seconds)
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


def _settings() -> list[str]:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    if original(retrier_decl, "time") is not time:
        return [f"{_RETRY} no longer sleeps through the time module"]
    return []


PATCH: Final = Patch(
    name="step_functions_time",
    checks=Checks(
        signatures=[(_WAIT, "WaitFunction", "_wait_interval", ["self", "env", "wait_seconds"])],
        sources=[
            (
                _WAIT,
                "WaitFunction",
                "_wait_interval",
                ("program_state_event",),
                "the Wait time scale",
            ),
            (_RETRY, "RetrierDecl", "_eval_body", ("time.sleep(",), "the Retry time scale"),
        ],
    ),
    targets=[
        (_WAIT, "WaitFunction", "_wait_interval", _wait_interval),
        (_RETRY, "", "time", _ScaledTime()),
    ],
    settings=_settings,
    reset=_real_time,
)


def verify() -> None:
    """Raise `PatchError` naming what moved if moto no longer fits this patch."""
    PATCH.verify()
