"""The deploy path, short of AWS: the pinned CDK CLI synthesizes the app as `make deploy` would.

The CLI is installed the way the Makefile installs it (`make node`, a no-op when its
stamp matches), runs cdk.json's "app" with no AWS credentials and nothing that calls
home, and the cloud assembly it writes must carry the stack and both Lambda assets,
with the layer built for the runtime and architecture the functions declare.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import cli.target
from infra import build
from infra.app import ROOT, STACK_NAME
from tests.support.contract import STACK_OUTPUTS

CDK = ROOT / "node_modules" / ".bin" / "cdk"
# What pip's platform tag calls each Lambda architecture.
_PLATFORM_ARCH = {"arm64": "aarch64", "x86_64": "x86_64"}


def offline_env(home: Path) -> dict[str, str]:
    """This process's environment minus every way to an AWS account or a CDK server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        AWS_CONFIG_FILE=str(home / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        CDK_DISABLE_VERSION_CHECK="1",
        CDK_DISABLE_CLI_TELEMETRY="true",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        # ~/.cdk holds the CLI's caches; keep the developer's own out of it.
        HOME=str(home),
    )
    return env


@dataclass(frozen=True)
class Assembly:
    outdir: Path
    manifest: dict[str, Any]
    template: dict[str, Any]
    assets: dict[str, Any]
    seconds: float


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    subprocess.run(["make", "--no-print-directory", "-s", "node"], cwd=ROOT, check=True)
    home = tmp_path_factory.mktemp("home")
    outdir = tmp_path_factory.mktemp("cdk-cli.out")
    started = time.monotonic()
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "--no-notices", "--output", str(outdir)],
        cwd=ROOT,
        env=offline_env(home),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"cdk synth failed:\n{result.stdout}\n{result.stderr}"
    manifest = json.loads((outdir / "manifest.json").read_text())
    stack = manifest["artifacts"][STACK_NAME]["properties"]
    assets = manifest["artifacts"][f"{STACK_NAME}.assets"]["properties"]
    return Assembly(
        outdir=outdir,
        manifest=manifest,
        template=json.loads((outdir / stack["templateFile"]).read_text()),
        assets=json.loads((outdir / assets["file"]).read_text()),
        seconds=seconds,
    )


def _resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == type_}


def _asset_dir(assembly: Assembly, code: dict[str, Any]) -> Path:
    """The staged directory behind a resource's `{S3Bucket, S3Key}` in the assembly."""
    asset_hash = code["S3Key"].removesuffix(".zip")
    source = assembly.assets["files"][asset_hash]["source"]
    assert source["packaging"] == "zip"
    path: Path = assembly.outdir / source["path"]
    assert path.is_dir(), f"asset {asset_hash} not staged in the assembly"
    return path


def test_the_cli_is_the_pinned_one(assembly: Assembly) -> None:
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    installed = json.loads((ROOT / "node_modules" / "aws-cdk" / "package.json").read_text())
    pinned = package["devDependencies"]["aws-cdk"]
    assert pinned.startswith("2."), "aws-cdk-lib 2.x's assembly needs a 2.x CLI"
    assert lock["packages"]["node_modules/aws-cdk"]["version"] == pinned
    assert installed["version"] == pinned


def test_synth_writes_the_stack(assembly: Assembly) -> None:
    artifact = assembly.manifest["artifacts"][STACK_NAME]
    assert artifact["type"] == "aws:cloudformation:stack"
    # Environment-agnostic: `make deploy` goes to the account and region of the credentials.
    assert artifact["environment"] == "aws://unknown-account/unknown-region"
    assert set(assembly.template["Outputs"]) >= STACK_OUTPUTS
    print(f"\ncdk synth through the pinned CLI: {assembly.seconds:.1f} s")


def test_the_cli_stack_is_the_one_rebates_reads() -> None:
    assert cli.target.STACK_NAME == STACK_NAME


def test_every_python_function_runs_what_the_layer_was_built_for(assembly: Assembly) -> None:
    functions = _resources(assembly.template, "AWS::Lambda::Function")
    ours = {k: f for k, f in functions.items() if "S3Key" in f["Properties"]["Code"]}
    assert ours, "no function deploys the code asset"
    for logical_id, function in ours.items():
        properties = function["Properties"]
        assert properties["Runtime"] == f"python{build.LAMBDA_PYTHON}", logical_id
        (architecture,) = properties["Architectures"]
        platform = f"manylinux2014_{_PLATFORM_ARCH[architecture]}"
        assert platform == build.LAMBDA_PLATFORM, logical_id


def test_the_code_asset_carries_functions_and_events(assembly: Assembly) -> None:
    functions = _resources(assembly.template, "AWS::Lambda::Function")
    staged = {
        _asset_dir(assembly, f["Properties"]["Code"])
        for f in functions.values()
        if "S3Key" in f["Properties"]["Code"]
    }
    assert len(staged) == 1, "every function shares one code asset"
    (code,) = staged
    assert (code / "functions" / "core" / "health.py").is_file()
    assert list((code / "events").rglob("*.schema.json"))


def test_the_layer_asset_is_built_for_the_lambda_platform(assembly: Assembly) -> None:
    (layer,) = _resources(assembly.template, "AWS::Lambda::LayerVersion").values()
    site = _asset_dir(assembly, layer["Properties"]["Content"]) / "python"
    arch = build.LAMBDA_PLATFORM.removeprefix("manylinux2014_")
    abi = build.LAMBDA_PYTHON.replace(".", "")
    assert list(site.glob(f"pydantic_core/_pydantic_core.cpython-{abi}-{arch}-linux-gnu.so"))
    assert not list(site.glob("boto3")), "the runtime provides boto3"


def test_deploy_without_credentials_stops_before_the_cli(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", "deploy"],
        cwd=ROOT,
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    assert "make deploy: no AWS credentials found" in result.stderr
    assert "AWS_PROFILE" in result.stderr
    assert "cdk" not in result.stdout, "the CDK CLI ran without credentials"
    assert time.monotonic() - started < 30
