"""`make run`: the local cloud until Ctrl-C (`python -m infra.local`)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from infra.local.cloud import LocalCloud, LocalCloudConfig
from infra.local.server import PortInUse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__)
    parser.add_argument("--moto-port", type=int, default=4566)
    parser.add_argument("--api-port", type=int, default=3000)
    parser.add_argument(
        "--template", type=Path, help="deploy this template instead of synthesizing the app"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    cloud = LocalCloud(LocalCloudConfig(moto_port=args.moto_port, api_port=args.api_port))
    try:
        template = json.loads(args.template.read_text()) if args.template else None
        outputs = cloud.start(template)
    except PortInUse as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(outputs, indent=2))
    print(
        f"Local cloud ready in {time.perf_counter() - started:.1f} s. "
        f"API {outputs['ApiUrl']}, AWS endpoint {outputs['AwsEndpoint']}; "
        "outputs in .local/outputs.json. Ctrl-C stops it.",
        flush=True,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        cloud.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
