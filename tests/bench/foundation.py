"""Cold start of every deployed handler against a boto3 floor, and the deployed size.

A cold start pays for the handler's imports, then for whatever its first request does
that a warm one does not (clients made lazily, imports deferred, caches filled).
boto3 is the floor every function pays anyway, so each handler is reported as a
multiple of it (target <= 1.5), both for the import alone and for the cold start
(import + first request - warm request), so a cost moved from the import to the first
request is still counted. Which handlers, how they are run and the floor:
`tests.bench.cold_start`; the Lambda-like path and its bytecode:
`tests.bench.lambda_like`. The code and layer assets are measured unzipped, as Lambda
counts them (target <= 30 MB).

Run only this part with `python -m tests.bench foundation`.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from infra.build import BUILD_DIR, CODE_DIR, LAYER_DIR
from tests.bench.cold_start import (
    REPRESENTATIVE,
    Deployed,
    Samples,
    Skipped,
    deployed_functions,
    run_child,
    seeded_cloud,
    targets_for,
)
from tests.bench.lambda_like import describe_bytecode, lambda_like_path
from tests.bench.report import record, table

RUNS = 7
TARGET = 1.5
SIZE_TARGET_MB = 30.0
ASSEMBLY_DIR = BUILD_DIR / "bench-cdk.out"


def synthesized() -> dict[str, Any]:
    """Synthesize the app into its own cloud assembly (cdk.out/ is left alone)."""
    from infra.app import STACK_NAME, build_app

    shutil.rmtree(ASSEMBLY_DIR, ignore_errors=True)
    assembly = build_app(str(ASSEMBLY_DIR), nag=False).synth()
    path = Path(assembly.get_stack_by_name(STACK_NAME).template_full_path)
    template: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return template


def tree_megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1_000_000


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def first_imports(names: list[str]) -> str:
    """`N modules (pkg n, ...)`: what the first request imported that the import did not."""
    if not names:
        return "none"
    packages = Counter(name.split(".")[0] for name in names)
    top = ", ".join(f"{name} {count}" for name, count in packages.most_common(3))
    return f"{len(names)} modules ({top})"


def run() -> None:
    path = lambda_like_path()
    template = synthesized()
    deployed, skipped = deployed_functions(template, ASSEMBLY_DIR, CODE_DIR)
    by_handler: dict[str, list[Deployed]] = {}
    for function in deployed:
        by_handler.setdefault(function.handler, []).append(function)
    with seeded_cloud(template) as seeded:
        floor, targets = targets_for([fns[0] for fns in by_handler.values()], seeded, path)
        floor_samples = Samples()
        samples = {function.handler: Samples() for function, _ in targets}
        # Round-robin, so a slow spell of the machine spreads over every figure.
        for _ in range(RUNS):
            run_child(floor, floor_samples)
            for function, target in targets:
                run_child(target, samples[function.handler])
    body = report(by_handler, skipped, floor_samples, samples, path)
    record("foundation", "Foundation: cold start and deployment size", body)


def verdict(import_ratio: float, cold_ratio: float | None, forbidden: set[str]) -> str:
    if forbidden:
        return "forbidden import"
    if cold_ratio is None:
        return "no first-request figure: add a representative event"
    return "ok" if import_ratio <= TARGET and cold_ratio <= TARGET else "over target"


def report(
    by_handler: dict[str, list[Deployed]],
    skipped: list[Skipped],
    floor: Samples,
    samples: dict[str, Samples],
    path: Any,
) -> str:
    floor_import = floor.import_seconds
    floor_cold = floor.cold_seconds
    assert floor_cold is not None
    rows = []
    for handler, functions in by_handler.items():
        s = samples[handler]
        import_ratio = s.import_seconds / floor_import
        cold = s.cold_seconds
        cold_ratio = None if cold is None else cold / floor_cold
        rows.append(
            [
                f"`{handler}`",
                ", ".join(f.logical_id for f in functions),
                f"{import_ratio:.2f}",
                ms(s.import_seconds),
                ms(s.first_seconds),
                ms(s.warm_seconds),
                ms(s.extra_seconds),
                "-" if cold_ratio is None else f"**{cold_ratio:.2f}**",
                ms(cold),
                first_imports(s.first_imports) if s.firsts else "-",
                ", ".join(sorted(s.forbidden)) or "none",
                verdict(import_ratio, cold_ratio, s.forbidden),
            ]
        )
    events = "; ".join(
        f"`{handler.rsplit('.', 2)[-2]}`: {REPRESENTATIVE[handler].what}"
        for handler in by_handler
        if handler in REPRESENTATIVE
    )
    skipped_text = (
        "; ".join(f"`{s.logical_id}` (`{s.handler}`, {s.why})" for s in skipped) or "none"
    )
    code_mb = tree_megabytes(CODE_DIR)
    layer_mb = tree_megabytes(LAYER_DIR)
    total = code_mb + layer_mb
    return (
        "Every `AWS::Lambda::Function` of the synthesized template whose code is the "
        f"project's code asset ({len(by_handler)} handlers); not measured, as not ours: "
        f"{skipped_text}.\n\n"
        "Each sample is a fresh interpreter whose path holds only the code asset and the "
        "layer's packages plus boto3 (built for this machine), as a Lambda container's "
        "does, with the function's deployed environment, against a local cloud (moto "
        "server) from the same template: it imports the handler, then runs a first and "
        "a warm request. Bytecode as on Lambda's read-only filesystem: the code asset "
        f"ships {describe_bytecode(path.code_bytecode)}, the layer "
        f"{describe_bytecode(path.layer_bytecode)}; the runtime's boto3 and the standard "
        f"library have theirs. Median of {RUNS}, round-robin. Floor: a function that "
        f"imports boto3 ({ms(floor_import)}) and on its first request makes a DynamoDB "
        f"client and one GetItem (first {ms(floor.first_seconds)}, warm "
        f"{ms(floor.warm_seconds)}): cold start {ms(floor_cold)}. Target: both ratios "
        f"<= {TARGET}; cold start = import + (first - warm).\n\n"
        + table(
            [
                "handler",
                "functions",
                "import, ratio to floor",
                "import",
                "first request",
                "warm request",
                "first - warm",
                "cold start, ratio to floor",
                "cold start",
                "imported by the first request",
                "forbidden imports",
                "verdict",
            ],
            rows,
        )
        + f"\n\nRequests: {events}.\n\n"
        "Unzipped deployment size (target <= 30 MB): code "
        f"{code_mb:.2f} MB + layer {layer_mb:.2f} MB = **{total:.2f} MB** "
        f"({total / SIZE_TARGET_MB:.2f} of the target)."
    )
