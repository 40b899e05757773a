"""moto's own server app, with Step Functions executing ASL (`infra.local.server`).

Nothing is replaced here: `MotoServer` serves moto's WSGI app behind the gate, switches
Step Functions to executing state machines through moto's config, and sets MOTO_PORT
so service tasks call back into it. These are what it relies on.
"""

from __future__ import annotations

from typing import Final

from infra.local.patches.registry import Checks, Patch

_WERKZEUG_APP: Final = "moto.moto_server.werkzeug_app"

PATCH: Final = Patch(
    name="moto_server",
    checks=Checks(
        sources=[
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
        ],
        attributes=[
            (_WERKZEUG_APP, "", name)
            for name in ("DomainDispatcherApplication", "create_backend_app", "MotoRequestHandler")
        ],
    ),
)


def verify() -> None:
    """Raise `PatchError` naming what moved if moto no longer fits this module's assumptions."""
    PATCH.verify()
