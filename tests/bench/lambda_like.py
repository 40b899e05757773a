"""A Lambda-like import path for benchmarks, with bytecode exactly where Lambda has it.

Lambda imports a function from its code asset (/var/task), its layer (/opt/python) and
the runtime's own boto3, on a read-only filesystem: a module shipped without bytecode is
compiled from source at every cold start, and nothing is ever cached. The runtime's boto3
and the standard library come with bytecode. The assets are built for Lambda (CPython 3.12
on arm64), so the benchmarks import from what `infra.build` builds for this machine
instead (the code asset, and `HOST_SITE_DIR`: the layer's packages plus boto3), copied
into `.build/bench-lambda/` and given bytecode for this interpreter where Lambda has it:

- the runtime-provided distributions (boto3, botocore...) always, as the runtime ships;
- the code asset's modules and the layer's packages only if their asset ships bytecode,
  with the invalidation mode the asset's bytecode has.

Children then run with `-I -S -B`: isolated from the user's environment and
site-packages, and never writing bytecode, so what is not shipped compiles every time,
as on Lambda.
"""

from __future__ import annotations

import compileall
import hashlib
import json
import py_compile
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.build import (
    BUILD_DIR,
    CODE_DIR,
    HOST_SITE_DIR,
    LAMBDA_PYTHON,
    LAYER_DIR,
    RUNTIME_PROVIDED,
    build_all,
    build_host_site,
    normalise,
)

MIRROR_DIR = BUILD_DIR / "bench-lambda"
# Bump when what the mirror holds changes in a way its inputs' stamps do not show.
MIRROR_RECIPE = "1"
# How a child must start so the path is all it imports from and it never writes bytecode.
ISOLATED_FLAGS = ("-I", "-S", "-B")

_PYC_HASH_BASED = 0b01
_PYC_CHECK_SOURCE = 0b10


@dataclass(frozen=True)
class LambdaLikePath:
    code: Path
    site: Path
    # How the deployed assets carry bytecode: None (none, compiled at every cold start)
    # or the invalidation mode of their .pyc files.
    code_bytecode: py_compile.PycInvalidationMode | None
    layer_bytecode: py_compile.PycInvalidationMode | None

    @property
    def entries(self) -> list[str]:
        return [str(self.code), str(self.site)]


def shipped_bytecode(directory: Path) -> py_compile.PycInvalidationMode | None:
    """The invalidation mode of the Lambda-Python bytecode `directory` ships, if any."""
    tag = f"cpython-{LAMBDA_PYTHON.replace('.', '')}"
    pyc = next(iter(sorted(directory.rglob(f"__pycache__/*.{tag}.pyc"))), None)
    if pyc is None:
        return None
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    if not flags & _PYC_HASH_BASED:
        return py_compile.PycInvalidationMode.TIMESTAMP
    if flags & _PYC_CHECK_SOURCE:
        return py_compile.PycInvalidationMode.CHECKED_HASH
    return py_compile.PycInvalidationMode.UNCHECKED_HASH


def describe_bytecode(mode: py_compile.PycInvalidationMode | None) -> str:
    if mode is None:
        return "no bytecode (every module compiled at each cold start)"
    return f"CPython {LAMBDA_PYTHON} bytecode ({mode.name.lower().replace('_', '-')})"


def _stamp_text(output: Path) -> str:
    stamp = output.with_name(f"{output.name}.sha256")
    return stamp.read_text().strip() if stamp.is_file() else ""


def _distributions(site: Path) -> dict[str, set[str]]:
    """Normalised distribution name -> its top-level modules and packages in `site`."""
    found: dict[str, set[str]] = {}
    for dist_info in sorted(site.glob("*.dist-info")):
        name = ""
        for line in (dist_info / "METADATA").read_text(encoding="utf-8").splitlines():
            if line.startswith("Name:"):
                name = normalise(line.removeprefix("Name:").strip())
                break
        tops: set[str] = set()
        for line in (dist_info / "RECORD").read_text().splitlines():
            parts = line.split(",", 1)[0].split("/")
            first = parts[0]
            if not first or first in {"..", "bin", "__pycache__"} or first.endswith(".dist-info"):
                continue
            if len(parts) > 1 or first.endswith(".py"):
                tops.add(first)
        found[name] = tops
    return found


def _compile(targets: list[Path], mode: py_compile.PycInvalidationMode) -> None:
    for target in targets:
        if target.is_dir():
            ok = compileall.compile_dir(
                target, quiet=2, workers=0, invalidation_mode=mode, maxlevels=sys.maxsize
            )
        elif target.suffix == ".py":
            ok = compileall.compile_file(target, quiet=2, invalidation_mode=mode)
        else:
            continue
        if not ok:
            raise RuntimeError(f"could not compile {target}")


def _fill(
    mirror: Path,
    code_mode: py_compile.PycInvalidationMode | None,
    layer_mode: py_compile.PycInvalidationMode | None,
) -> None:
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(CODE_DIR, mirror / "code", ignore=ignore)
    site = mirror / "site"
    shutil.copytree(HOST_SITE_DIR, site, ignore=ignore)
    runtime: list[Path] = []
    layer: list[Path] = []
    for name, tops in _distributions(site).items():
        (runtime if name in RUNTIME_PROVIDED else layer).extend(site / top for top in sorted(tops))
    # The runtime's pip-installed SDK: ordinary timestamp-checked bytecode.
    _compile(runtime, py_compile.PycInvalidationMode.TIMESTAMP)
    if layer_mode is not None:
        _compile(layer, layer_mode)
    if code_mode is not None:
        _compile([mirror / "code"], code_mode)


def lambda_like_path() -> LambdaLikePath:
    """Build the assets (a no-op when current) and their Lambda-like mirror; its path."""
    build_all()
    build_host_site()
    code_mode = shipped_bytecode(CODE_DIR)
    layer_mode = shipped_bytecode(LAYER_DIR)
    digest = hashlib.sha256(
        json.dumps(
            {
                "recipe": MIRROR_RECIPE,
                "code": _stamp_text(CODE_DIR),
                "layer": _stamp_text(LAYER_DIR),
                "host": _stamp_text(HOST_SITE_DIR),
                "python": sys.version,
                "modes": [str(code_mode), str(layer_mode)],
            }
        ).encode()
    ).hexdigest()
    stamp = MIRROR_DIR.with_name(f"{MIRROR_DIR.name}.sha256")
    if not (MIRROR_DIR.is_dir() and stamp.is_file() and stamp.read_text().strip() == digest):
        stamp.unlink(missing_ok=True)
        shutil.rmtree(MIRROR_DIR, ignore_errors=True)
        staged = MIRROR_DIR.with_name(f"{MIRROR_DIR.name}.staged")
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        _fill(staged, code_mode, layer_mode)
        staged.rename(MIRROR_DIR)
        stamp.write_text(digest + "\n")
    return LambdaLikePath(MIRROR_DIR / "code", MIRROR_DIR / "site", code_mode, layer_mode)
