"""`rebates local ...`: drive a running local cloud through its control plane."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cli.target import LOCAL_OUTPUTS

OUTPUTS = LOCAL_OUTPUTS
_DURATION = re.compile(r"^(-?\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class LocalCloudUnavailable(RuntimeError):
    pass


def parse_duration(text: str) -> int:
    """`90s`, `15m`, `2h`, `3d`, `-1d` → seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r}: expected a number and a unit, e.g. 3d, 2h, 15m, 90s")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def control(
    method: str,
    path: str,
    body: Any = None,
    *,
    outputs: Path | None = None,
    api_url: str | None = None,
) -> Any:
    """Call the local cloud's control plane at `api_url`, else the ApiUrl in `outputs`."""
    if api_url is None:
        outputs = outputs or OUTPUTS
        if not outputs.exists():
            raise LocalCloudUnavailable(
                f"{outputs} not found: start the local cloud with `make run`"
            )
        api_url = json.loads(outputs.read_text())["ApiUrl"]
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{api_url}/_local/{path}", data=data, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise LocalCloudUnavailable(json.loads(error.read()).get("message", str(error))) from error
    except urllib.error.URLError as error:
        raise LocalCloudUnavailable(f"no local cloud at {api_url}: {error.reason}") from error
