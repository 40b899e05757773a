"""One local cloud per test session: the real stack plus the wiring probe.

It listens on free ports, never 4566/3000, so it runs beside a developer's `make run`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from infra.app import STACK_NAME, build_app
from infra.build import build_all
from infra.local.cloud import LocalCloud, LocalCloudConfig
from infra.stack import RebatesStack
from tests.integration.wiring.probe import WiringProbe


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def probed_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    build_all()
    app = build_app(str(tmp_path_factory.mktemp("cdk.out")), nag=False)
    stack = app.node.find_child(STACK_NAME)
    assert isinstance(stack, RebatesStack)
    WiringProbe(stack, "WiringProbe", platform=stack.platform, api=stack.api)
    assembly = app.synth()
    path = Path(assembly.get_stack_by_name(STACK_NAME).template_full_path)
    template: dict[str, Any] = json.loads(path.read_text())
    return template


@pytest.fixture(scope="session")
def cloud(
    probed_template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCloud]:
    config = LocalCloudConfig(
        moto_port=free_port(),
        api_port=free_port(),
        outputs_path=tmp_path_factory.mktemp("local") / "outputs.json",
    )
    with LocalCloud(config) as running:
        running.start(probed_template)
        yield running
