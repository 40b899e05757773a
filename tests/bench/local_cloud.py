"""Local cloud start-up: time to ready (synth excluded and included) and peak memory.

Each figure comes from a fresh interpreter, as `make run` starts one. The floor is a
bare moto server started in the same way, so the ratio says what deploying the stack
costs on top of moto itself. Target: ready <= 5 s after synth.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.bench.report import ROOT, record, table

READY_TARGET_SECONDS = 5.0

CHILD = """
import json, resource, socket, sys, time
sys.path.insert(0, {root!r})

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

started = time.perf_counter()
mode = {mode!r}
if mode == "moto":
    from infra.local.server import MotoServer
    server = MotoServer("127.0.0.1", free_port())
    server.start()
    ready = time.perf_counter() - started
    server.stop()
else:
    from infra.local.cloud import LocalCloud, LocalCloudConfig
    template = None if mode == "synth" else json.loads(open({template!r}).read())
    config = LocalCloudConfig(moto_port=free_port(), api_port=free_port(), outputs_path=None)
    cloud = LocalCloud(config)
    cloud.start(template)
    ready = time.perf_counter() - started
    cloud.stop()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"ready": ready, "peak_mb": peak}}))
"""


def measure(mode: str, template: Path) -> dict[str, float]:
    code = CHILD.format(root=str(ROOT), mode=mode, template=str(template))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def run() -> None:
    from infra.local.cloud import synthesized_template

    template_path = ROOT / ".build" / "bench-template.json"
    template_path.write_text(json.dumps(synthesized_template()))
    floor = measure("moto", template_path)
    deployed = measure("template", template_path)
    synthesized = measure("synth", template_path)
    rows = [
        [
            name,
            f"{figures['ready']:.2f} s",
            f"{figures['ready'] / floor['ready']:.1f}",
            f"{figures['peak_mb']:.0f} MB",
        ]
        for name, figures in [
            ("bare moto server (floor)", floor),
            ("local cloud, synth excluded", deployed),
            ("local cloud, synth included", synthesized),
        ]
    ]
    verdict = "ok" if deployed["ready"] <= READY_TARGET_SECONDS else "over target"
    body = (
        "Start to ready in a fresh interpreter, and the peak resident memory of that "
        "process (the CDK's Node process, alive while synthesizing, is not counted). "
        "Target: ready <= "
        f"{READY_TARGET_SECONDS:.0f} s after synth: **{deployed['ready']:.2f} s ({verdict})**.\n\n"
        + table(["start", "ready", "ratio to floor", "peak memory"], rows)
    )
    record("local-cloud", "Local cloud: start to ready", body)
