"""GET /v1/health: liveness and the deployed version; the one route without an API key."""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from functions.core.api import ResolverPerThread
from functions.core.observability import instrumented
from functions.core.settings import CoreSettings, load_settings

router = Router()


class Health(BaseModel):
    status: Literal["ok"]
    version: str


@router.get("/v1/health", summary="Liveness and version", tags=["health"])
def get_health() -> Health:
    return Health(status="ok", version=load_settings(CoreSettings).version)


app = ResolverPerThread(router)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
