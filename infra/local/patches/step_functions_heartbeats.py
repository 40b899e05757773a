"""A missed Step Functions heartbeat is ``States.HeartbeatTimeout``, as in AWS.

In AWS a task that misses its ``HeartbeatSeconds`` fails with ``States.HeartbeatTimeout``,
which a Retry or Catch on ``States.HeartbeatTimeout`` matches, and one on
``States.Timeout`` too (that name covers both the task's timeout and its heartbeat).
moto names a missed heartbeat ``States.Timeout`` alone, so a definition that tells the
two apart (the claims review: nobody deciding in time rejects the claim, nobody keeping
the wait alive is an error) would take the timeout's path locally.

`StateTaskServiceCallback._from_error` (the ``.waitForTaskToken`` tasks) is replaced:
a missed heartbeat is a ``TaskTimedOut`` event whose error is ``States.HeartbeatTimeout``,
matched by either name; every other failure is moto's as before.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from infra.local.patches.registry import Checks, Patch, original

_CALLBACK_TASK: Final = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
    "state_task_service_callback"
)
_SERVICE_TASK: Final = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service"
)
_CALLBACKS: Final = "moto.stepfunctions.parser.asl.eval.callback.callback"
_ERROR_NAMES: Final = "moto.stepfunctions.parser.asl.component.common.error_name"

HEARTBEAT_TIMEOUT: Final = "States.HeartbeatTimeout"
TIMEOUT: Final = "States.Timeout"


@functools.cache
def _heartbeat_timeout_name() -> Any:
    """The error name of a missed heartbeat: a `StatesErrorName` equal to either name.

    moto matches a failure against a Retry's or Catch's names with ``in``; as a subclass
    of their class, this one's ``__eq__`` is the one Python asks.
    """
    from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
        StatesErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )

    class HeartbeatTimeoutName(StatesErrorName):
        def __init__(self) -> None:
            super().__init__(typ=StatesErrorNameType.StatesHeartbeatTimeout)

        def matches(self, error_name: str | None) -> bool:
            return error_name in (HEARTBEAT_TIMEOUT, TIMEOUT)

        def __eq__(self, other: object) -> bool:
            return isinstance(other, ErrorName) and self.matches(other.error_name)

        __hash__ = None  # type: ignore[assignment]

    return HeartbeatTimeoutName()


def _from_error(self: Any, env: Any, ex: Exception) -> Any:
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (  # noqa: E501
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import HeartbeatTimeoutError

    if not isinstance(ex, HeartbeatTimeoutError):
        return original(StateTaskServiceCallback, "_from_error")(self, env, ex)
    timed_out = self._get_timed_out_failure_event(env)
    details: Any = dict(timed_out.event_details or {})
    details["taskTimedOutEventDetails"] = {
        **details.get("taskTimedOutEventDetails", {}),
        "error": HEARTBEAT_TIMEOUT,
    }
    return FailureEvent(
        env=env,
        error_name=_heartbeat_timeout_name(),
        event_type=timed_out.event_type,
        event_details=details,
    )


PATCH: Final = Patch(
    name="step_functions_heartbeats",
    checks=Checks(
        signatures=[
            (_CALLBACK_TASK, "StateTaskServiceCallback", "_from_error", ["self", "env", "ex"]),
            (_SERVICE_TASK, "StateTaskService", "_get_timed_out_failure_event", ["self", "env"]),
        ],
        sources=[
            (
                _CALLBACK_TASK,
                "StateTaskServiceCallback",
                "_eval_integration_pattern",
                ("raise HeartbeatTimeoutError()",),
                "a missed heartbeat is told from the task's timeout",
            ),
            (
                f"{_ERROR_NAMES}.error_equals_decl",
                "ErrorEqualsDecl",
                "_eval_body",
                ("error_name in self.error_names",),
                "States.Timeout matches a missed heartbeat too",
            ),
        ],
        attributes=[
            (_CALLBACKS, "", "HeartbeatTimeoutError"),
            (
                f"{_ERROR_NAMES}.states_error_name_type",
                "StatesErrorNameType",
                "StatesHeartbeatTimeout",
            ),
        ],
    ),
    targets=[(_CALLBACK_TASK, "StateTaskServiceCallback", "_from_error", _from_error)],
)


def verify() -> None:
    """Raise `PatchError` naming what moved if moto no longer fits this patch."""
    PATCH.verify()
