"""The local API on the running local cloud: a storefront's burst of clients, and requests
API Gateway would refuse, over real connections on the loopback interface."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from infra.local.cloud import LocalCloud

CLIENTS = 200
# Generous: the first calls of each handler thread pay for a cold start.
DEADLINE_SECONDS = 120.0


@dataclass(frozen=True)
class Exchange:
    status: int
    body: Any


def _address(cloud: LocalCloud) -> tuple[str, int]:
    url = urlsplit(cloud.outputs["ApiUrl"])
    assert url.hostname == "127.0.0.1" and url.port is not None
    return url.hostname, url.port


def _ask(
    connection: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str]
) -> Exchange:
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    return Exchange(response.status, json.loads(response.read()))


def test_two_hundred_clients_at_once_are_each_answered(cloud: LocalCloud) -> None:
    host, port = _address(cloud)
    keyed = {"x-api-key": cloud.outputs["ApiKey"]}
    # Every client connects at the same moment, as a storefront's visitors do.
    start = threading.Barrier(CLIENTS, timeout=DEADLINE_SECONDS)
    outcomes: dict[int, list[Exchange] | BaseException] = {}

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=DEADLINE_SECONDS)
        try:
            start.wait()
            outcomes[number] = [
                _ask(connection, "GET", "/v1/health", {}),
                _ask(connection, "GET", f"/v1/campaigns/burst-{number}", keyed),
            ]
        except BaseException as error:  # ConnectionResetError, RemoteDisconnected...
            outcomes[number] = error
        finally:
            connection.close()

    threads = [
        threading.Thread(target=client, args=(n,), name=f"client-{n}", daemon=True)
        for n in range(CLIENTS)
    ]
    deadline = time.monotonic() + DEADLINE_SECONDS
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))

    assert not [thread.name for thread in threads if thread.is_alive()]
    failures = {n: repr(o) for n, o in outcomes.items() if isinstance(o, BaseException)}
    assert failures == {}
    for exchanges in outcomes.values():
        assert not isinstance(exchanges, BaseException)
        health, campaign = exchanges
        assert (health.status, health.body["status"]) == (200, "ok")
        assert campaign.status == 404, campaign
    assert len(outcomes) == CLIENTS


def _raw(cloud: LocalCloud, data: bytes) -> bytes:
    """What the local API answers `data` with, read until it closes the connection."""
    with socket.create_connection(_address(cloud), timeout=10) as connection:
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def test_a_method_no_route_declares_is_refused_as_api_gateway_does(cloud: LocalCloud) -> None:
    host, port = _address(cloud)
    for method, path in [("TRACE", "/v1/health"), ("PATCH", "/v1/health"), ("BREW", "/v1")]:
        connection = http.client.HTTPConnection(host, port, timeout=10)
        try:
            answer = _ask(connection, method, path, {})
        finally:
            connection.close()
        assert answer.status == 403
        assert answer.body["error"]["code"] == "route_not_found"
        assert answer.body["error"]["details"]["requestId"]


def test_malformed_requests_are_answered_and_the_api_keeps_serving(cloud: LocalCloud) -> None:
    garbage = [
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello
        b"POST /v1/health HTTP/1.1\r\nContent-Length: nope\r\n\r\n{}",
        b"POST /v1/health HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}and more",
        b"POST /v1/health HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n{}",
    ]
    for data in garbage:
        assert _raw(cloud, data).startswith(b"HTTP/1.1 4"), data
    answer = _raw(cloud, b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
