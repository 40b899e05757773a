"""What the in-process benchmarks share: moto with every table, AWS calls counted and
replayed bare, and time split between moto and the client.

Everything runs on in-process moto (`mock_aws`), so a floor of bare calls pays moto's
cost too, and each ratio is what our code adds on top; the time spent inside moto is
measured so that each side's own time can be shown apart.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any
from unittest import mock

from botocore import xform_name
from botocore.client import BaseClient
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

from functions.core.models import ALLOW_DEFAULT_TABLES_ENV, reset_connections
from functions.core.tables import ALL_TABLES
from tests.support.tables import create_tables

Call = tuple[str, dict[str, Any]]


@contextmanager
def in_process_aws() -> Iterator[None]:
    """Fake credentials, default table names and every table, on moto, as the unit tests
    have them (tests/support/aws.py); the environment is restored afterwards."""
    with mock.patch.dict(os.environ):
        for spec in ALL_TABLES:
            os.environ.pop(spec.env_var, None)
        for variable in (
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_PROFILE",
            "AWS_REGION",
        ):
            os.environ.pop(variable, None)
        os.environ.update(
            {
                "AWS_DEFAULT_REGION": "ap-northeast-1",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                ALLOW_DEFAULT_TABLES_ENV: "1",
            }
        )
        reset_connections()
        try:
            with mock_aws():
                create_tables()
                yield
        finally:
            reset_connections()


@contextmanager
def recorded_calls() -> Iterator[list[Call]]:
    """Every AWS API call any botocore client makes meanwhile: operation and parameters.

    PynamoDB and boto3 both send through `BaseClient._make_api_call`, whatever session
    built the client, so this sees every call the handler makes (moto answers after it).
    """
    calls: list[Call] = []
    original = BaseClient._make_api_call

    def counted(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        calls.append((operation_name, json.loads(json.dumps(api_params))))
        return original(client, operation_name, api_params)

    with mock.patch.object(BaseClient, "_make_api_call", counted):
        yield calls


def send(client: Any, call: Call) -> Any:
    operation, params = call
    return getattr(client, xform_name(operation))(**params)


def send_all(client: Any, calls: list[Call]) -> None:
    for call in calls:
        send(client, call)


def seconds_of(action: Callable[..., object], *args: Any) -> float:
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


class MotoClock:
    """Seconds spent inside moto answering requests, so far (while `running`).

    mock_aws answers from a botocore ``before-send`` handler (`BotocoreStubber`): what
    happens before it (building, signing) and after it (parsing) is the client's work.
    """

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def running(self) -> Iterator[MotoClock]:
        original = BotocoreStubber.__call__

        def timed(stubber: BotocoreStubber, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(stubber, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        with mock.patch.object(BotocoreStubber, "__call__", timed):
            yield self


@dataclass
class Split:
    """Time of some work, and how much of it moto took answering."""

    total: float = 0.0
    moto: float = 0.0

    @property
    def own(self) -> float:
        return self.total - self.moto

    def add(
        self, clock: MotoClock, action: Callable[..., object], *args: Any, **kwargs: Any
    ) -> None:
        before = clock.seconds
        self.total += seconds_of(partial(action, *args, **kwargs))
        self.moto += clock.seconds - before


def replayed(template: list[Call], ids: dict[str, str]) -> list[Call]:
    """`template`'s requests with each id replaced by its fresh counterpart."""
    text = json.dumps(template)
    for old, new in ids.items():
        text = text.replace(old, new)
    return [(operation, params) for operation, params in json.loads(text)]
