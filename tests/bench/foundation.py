"""Cold import time of every handler against `import boto3`, and the deployed size.

A cold start pays for the handler's imports; boto3 is the floor every function pays
anyway, so each handler is reported as a multiple of it (target <= 1.5). The code and
layer assets are measured unzipped, as Lambda counts them (target <= 30 MB).
"""

from __future__ import annotations

from pathlib import Path

from infra.build import BUILD_DIR, CODE_DIR, HOST_SITE_DIR, LAYER_DIR, build_host_site
from tests.bench.report import median_seconds, python, record, table
from tests.support.handlers import handler_modules

RUNS = 7
IMPORT_TARGET = 1.5
SIZE_TARGET_MB = 30.0
FORBIDDEN = ("aws_cdk", "moto", "duckdb")

# The child measures only the import and reports which forbidden packages got loaded.
PROBE = """
import sys, time
sys.path[:0] = {path!r}
started = time.perf_counter()
import {module}
elapsed = time.perf_counter() - started
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {forbidden!r})
print("forbidden:" + ",".join(loaded))
print(elapsed)
"""


def import_seconds(module: str) -> tuple[float, list[str]]:
    # As in a Lambda container: the function code and the layer's packages (built for
    # this machine) plus boto3 on the path, no site-packages (-S), no user env (-E).
    path = [str(CODE_DIR), str(HOST_SITE_DIR)]
    code = PROBE.format(module=module, forbidden=set(FORBIDDEN), path=path)
    # Bytecode goes to its own cache so the code asset stays exactly what is deployed.
    pycache = f"pycache_prefix={BUILD_DIR / 'bench-pycache'}"
    seconds, lines = median_seconds([python(), "-S", "-E", "-X", pycache, "-c", code], RUNS)
    listed = lines[0].removeprefix("forbidden:")
    return seconds, [name for name in listed.split(",") if name]


def tree_megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1_000_000


def run() -> None:
    build_host_site()
    # One untimed pass warms the bytecode cache, as a deployed package ships .pyc files.
    for module in ["boto3", *handler_modules()]:
        import_seconds(module)
    floor, _ = import_seconds("boto3")
    rows = []
    for module in handler_modules():
        seconds, forbidden = import_seconds(module)
        ratio = seconds / floor
        verdict = "ok" if ratio <= IMPORT_TARGET and not forbidden else "over target"
        rows.append(
            [
                f"`{module}`",
                f"{ratio:.2f}",
                f"{seconds * 1000:.0f} ms",
                ", ".join(forbidden) or "none",
                verdict,
            ]
        )
    code_mb = tree_megabytes(CODE_DIR)
    layer_mb = tree_megabytes(LAYER_DIR)
    total = code_mb + layer_mb
    body = (
        "Cold import in a fresh interpreter whose path holds only the code asset and the "
        "layer's packages plus boto3 (built for this machine), as a Lambda container's "
        f"does; median of {RUNS}; floor `import boto3` = "
        f"{floor * 1000:.0f} ms. Target: ratio <= {IMPORT_TARGET}.\n\n"
        + table(["handler module", "ratio to boto3", "time", "forbidden imports", "verdict"], rows)
        + "\n\nUnzipped deployment size (target <= 30 MB): code "
        f"{code_mb:.2f} MB + layer {layer_mb:.2f} MB = **{total:.2f} MB** "
        f"({total / SIZE_TARGET_MB:.2f} of the target)."
    )
    record("foundation", "Foundation: cold imports and deployment size", body)
