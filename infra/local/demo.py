"""`make demo`: a whole campaign on the local cloud, played as its users would.

The cloud runs in its own process (`python -m infra.local`), as it does under
`make run`; this process is only a client. It talks to the stack through S3 uploads,
the AWS APIs an operator uses, and HTTP to the storefront API, and imports no handler
code, so what it shows is what a marketer, a storefront and an operator would see.

Each domain adds its act to `ACTS`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[2]
LOCAL_DIR = ROOT / ".local"
OUTPUTS = LOCAL_DIR / "outputs.json"
CLOUD_LOG = LOCAL_DIR / "demo-cloud.log"
READY_TIMEOUT_SECONDS = 180


@dataclass
class Http:
    base_url: str
    api_key: str

    def call(
        self, method: str, path: str, body: Any = None, *, key: bool = True
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        if key:
            request.add_header("x-api-key", self.api_key)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


@dataclass
class Demo:
    outputs: dict[str, str]
    http: Http
    summary: list[str] = field(default_factory=list)

    def aws(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.outputs["AwsEndpoint"],
            region_name=self.outputs["Region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fixed fake credentials
        )

    def check(self, claim: str, ok: bool) -> None:
        mark = "ok " if ok else "FAILED"
        print(f"  [{mark}] {claim}")
        self.summary.append(f"{'ok' if ok else 'FAILED'}: {claim}")
        if not ok:
            raise SystemExit(f"demo failed: {claim}")


def act_platform(demo: Demo) -> None:
    print("\n== The platform: what `make run` deployed ==")
    for key in (
        "ApiUrl",
        "AwsEndpoint",
        "CampaignBucketName",
        "EventBusName",
        "ClaimsStateMachineArn",
    ):
        print(f"  {key:22} {demo.outputs[key]}")
    status, body = demo.http.call("GET", "/v1/health", key=False)
    demo.check(f"storefront: GET /v1/health answers {status} {body}", status == 200)
    status, body = demo.http.call("GET", "/v1/nowhere")
    demo.check(f"storefront: an unknown route is refused by the gateway ({status})", status == 403)
    machines = demo.aws("stepfunctions").list_state_machines()["stateMachines"]
    claims = [m for m in machines if m["stateMachineArn"] == demo.outputs["ClaimsStateMachineArn"]]
    names = ", ".join(m["name"] for m in claims) or "none"
    demo.check(f"operator: the claims state machine is listed ({names})", bool(claims))
    buckets = {b["Name"] for b in demo.aws("s3").list_buckets()["Buckets"]}
    demo.check(
        "marketer: the campaigns bucket exists", demo.outputs["CampaignBucketName"] in buckets
    )


ACTS: list[Callable[[Demo], None]] = [act_platform]


def start_cloud() -> subprocess.Popen[bytes]:
    LOCAL_DIR.mkdir(exist_ok=True)
    OUTPUTS.unlink(missing_ok=True)
    log = CLOUD_LOG.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not OUTPUTS.exists():
        if process.poll() is not None:
            raise SystemExit(f"the local cloud stopped:\n{CLOUD_LOG.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"the local cloud was not ready in {READY_TIMEOUT_SECONDS} s")
        time.sleep(0.2)
    return process


def stop_cloud(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> int:
    started = time.perf_counter()
    print("Starting the local cloud (synthesizing the stack and deploying it into moto)...")
    process = start_cloud()
    try:
        outputs = json.loads(OUTPUTS.read_text())
        print(f"Ready in {time.perf_counter() - started:.1f} s.")
        demo = Demo(outputs, Http(outputs["ApiUrl"], outputs["ApiKey"]))
        for act in ACTS:
            act(demo)
    finally:
        stop_cloud(process)
    print(f"\n== Summary ({time.perf_counter() - started:.1f} s) ==")
    for line in demo.summary:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    sys.exit(main())
