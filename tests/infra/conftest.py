"""Infra tests share one build and one synth per session (a synth costs seconds).

The session fixture builds the Lambda assets (a no-op when their stamps match;
pip needs PyPI the first time) and synthesizes the app in-process into a temporary
cloud assembly, with cdk-nag left to test_nag.py so a finding is reported there
rather than failing every test at synth.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Before aws_cdk starts its Node process (see infra/app.py).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from infra.app import STACK_NAME, build_app


@dataclass(frozen=True)
class Synth:
    app: App
    stack: Stack
    template: Template
    data: dict[str, Any]
    template_path: Path

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        """Logical id -> resource, for every resource of one CloudFormation type."""
        return {k: r for k, r in self.data["Resources"].items() if r["Type"] == type_}


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(str(outdir), nag=False)
    assembly = app.synth()
    path = Path(assembly.get_stack_by_name(STACK_NAME).template_full_path)
    data = json.loads(path.read_text())
    stack = app.node.find_child(STACK_NAME)
    assert isinstance(stack, Stack)
    return Synth(app, stack, Template.from_json(data), data, path)
