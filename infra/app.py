"""The Rebates CDK app: `python infra/app.py` synthesizes `cdk.out/` offline.

No CDK CLI is needed: the app reads `cdk.json`'s context (feature flags and
settings) itself, builds the Lambda assets (infra/build.py, a no-op when they are
current) and runs cdk-nag's AwsSolutions pack as a validation plugin, so a finding
that is neither fixed nor acknowledged fails the synth.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# `python infra/app.py` puts infra/ first on sys.path, where the infra/constructs
# package would shadow the `constructs` library: import from the repository root.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "infra":
    sys.path[0] = str(ROOT)
# jsii prints a Node end-of-life banner on every call unless told the major we accept;
# it must be set before aws_cdk starts its Node process.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Validations  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.build import build_all  # noqa: E402
from infra.stack import RebatesStack  # noqa: E402

STACK_NAME = "Rebates"


def cdk_context(path: Path = ROOT / "cdk.json") -> dict[str, Any]:
    """cdk.json's `context`: only the CDK CLI reads it, so the app loads it itself."""
    context: dict[str, Any] = json.loads(path.read_text())["context"]
    return context


def build_app(outdir: str | None = None, *, nag: bool = True) -> App:
    """The app with its one stack, ready to `synth()`.

    `outdir` defaults to the CLI's choice (CDK_OUTDIR) or `cdk.out/`. Tests pass
    `nag=False` and run the checks themselves, so findings are reported, not raised.
    """
    code_dir, layer_dir = build_all()
    app = App(
        context={**cdk_context(), "aws:cdk:enable-asset-metadata": True},
        outdir=outdir or os.environ.get("CDK_OUTDIR") or str(ROOT / "cdk.out"),
        # 5-8 s and ~0.8 GB per synth; cfn-lint checks the template instead.
        builtin_cloud_formation_validation=False,
    )
    RebatesStack(app, STACK_NAME, code_dir=code_dir, layer_dir=layer_dir)
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
