"""moto as an in-process HTTP server, with every request into it serialised.

The local cloud runs moto's WSGI application (the one `moto_server` and
`ThreadedMotoServer` run) on a werkzeug threaded server in a daemon thread, so that
`AWS_ENDPOINT_URL=http://127.0.0.1:4566 aws ...`, the handlers' own boto3/PynamoDB
clients and moto's Step Functions engine all reach the same backends.

moto keeps its state in plain Python objects and does not lock them per operation:
two threads can interleave inside one DynamoDB `UpdateItem`, and a conditional write
can then succeed twice. DynamoDB itself is atomic per request, so every request runs
while holding one `SerialGate`. A request that runs a Lambda handler (Invoke, an S3
notification, SNS to Lambda...) releases the gate while the handler runs, or the
handler's own calls into moto would wait for the request that is waiting for them.
"""

from __future__ import annotations

import errno
import io
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import urlparse

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_PORT",
    "DEFAULT_REGION",
    "LISTEN_BACKLOG",
    "MotoServer",
    "PortInUse",
    "SerialGate",
    "process_environment",
]

DEFAULT_PORT: Final = 4566
DEFAULT_REGION: Final = "ap-northeast-1"
# moto's default account: anything signed with a key moto does not know maps to it.
DEFAULT_ACCOUNT_ID: Final = "123456789012"
# Connections each local listener queues before a thread accepts them: a burst of clients
# (a storefront's, each handler's SDK calls into moto) must wait, not be reset. The
# kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG: Final = 1024

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class PortInUse(RuntimeError):
    """The port the local cloud wants is taken (usually by another `make run`)."""


class SerialGate:
    """One request into moto at a time, as DynamoDB is atomic per request.

    Re-entrant per thread: code already holding the gate (a moto request that invokes
    a handler which looks up another function, say) may enter `held()` again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Only ever compared with the current thread's id: a thread sees its own id
        # here exactly when it holds the lock, so reading it unlocked is safe.
        self._owner: int | None = None
        self._depth = 0

    def holds(self) -> bool:
        """Whether the current thread holds the gate."""
        return self._owner == threading.get_ident()

    def _acquire(self) -> None:
        if self.holds():
            self._depth += 1
            return
        self._lock.acquire()
        self._owner = threading.get_ident()
        self._depth = 1

    def _release(self) -> None:
        if not self.holds():
            raise RuntimeError("SerialGate released by a thread that does not hold it")
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the gate for the block (re-entrant)."""
        self._acquire()
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Let other requests into moto for the block, if this thread holds the gate.

        Used while a Lambda handler runs inside a moto request: the handler's HTTP
        calls into moto are served by other server threads, which need the gate. The
        gate is taken back (at the same depth) before the moto request continues.
        A no-op for a thread that does not hold it (pollers, the local API, tests).
        """
        if not self.holds():
            yield
            return
        depth, self._depth, self._owner = self._depth, 0, None
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()
            self._owner, self._depth = threading.get_ident(), depth


class _GatedApp:
    """WSGI middleware: each request into moto runs while holding the gate."""

    def __init__(self, app: WsgiApp, gate: SerialGate) -> None:
        self._app = app
        self._gate = gate

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        # Read the body before taking the gate: a slow client uploading a large object
        # must not stall every other request. (Chunked bodies without a length are
        # left to werkzeug; boto3 and the aws CLI always send a Content-Length.)
        length = environ.get("CONTENT_LENGTH")
        if length and length.isdigit():
            body = environ["wsgi.input"].read(int(length))
            environ["wsgi.input"] = io.BytesIO(body)
        with self._gate.held():
            result = self._app(environ, start_response)
            try:
                # moto builds its responses eagerly; materialise them inside the gate
                # anyway so no backend state is read after the gate is released.
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def process_environment(endpoint: str, region: str = DEFAULT_REGION) -> dict[str, str]:
    """The variables the local cloud sets for itself and hands to clients.

    Credentials are moto's conventional dummies (moto maps unknown keys to account
    123456789012). AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled stops botocore 1.44 from
    building account-based DynamoDB endpoints, which breaks Streams on moto.
    AWS_EC2_METADATA_DISABLED keeps a credential lookup that falls through the
    environment from waiting on the instance metadata service.
    """
    port = urlparse(endpoint).port
    if port is None:
        raise ValueError(f"endpoint must include a port, got {endpoint!r}")
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "AWS_EC2_METADATA_DISABLED": "true",
        # moto's Step Functions service tasks call http://localhost:$MOTO_PORT.
        "MOTO_PORT": str(port),
    }


class MotoServer:
    """moto's server app on `host:port`, in a daemon thread, behind a `SerialGate`.

    `port=0` binds a free port (tests); `endpoint` then tells which one.
    Starting also switches moto's Step Functions to executing state machines for real
    and sets MOTO_PORT in the process environment so its service tasks call this
    server; `stop()` restores both.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        gate: SerialGate | None = None,
        log_requests: bool = False,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.gate = gate or SerialGate()
        self._log_requests = log_requests
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._previous_sfn_config: dict[str, Any] | None = None
        self._previous_moto_port: str | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> MotoServer:
        if self._server is not None:
            raise RuntimeError("the moto server is already running")
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        listener = self._bind()
        try:
            handler: type[Any] = MotoRequestHandler
            if not self._log_requests:
                handler = _quiet_handler(MotoRequestHandler)
            app = _GatedApp(DomainDispatcherApplication(create_backend_app), self.gate)
            # werkzeug's own bind prints to stderr and calls sys.exit(1) when the port
            # is taken; binding here first and handing over the descriptor turns that
            # into a PortInUse the caller can report.
            server = make_server(
                self.host,
                listener.getsockname()[1],
                app,
                threaded=True,
                request_handler=handler,
                fd=listener.fileno(),
            )
        finally:
            # werkzeug duplicated the descriptor; ours is no longer needed.
            listener.close()
        self._server = server
        self._enable_step_functions_execution()
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"moto-server:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def _bind(self) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Lets a restarted `make run` reuse a port left in TIME_WAIT; Linux still
        # refuses a port another process is listening on.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self._requested_port))
            listener.listen(LISTEN_BACKLOG)
        except OSError as error:
            listener.close()
            if error.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"{self.host}:{self._requested_port} is already in use — is another "
                    "`make run` running? (stop it or pass --port)"
                ) from error
            raise
        return listener

    def _enable_step_functions_execution(self) -> None:
        from moto.core.config import default_user_config

        # What POST /moto-api/config does, done in-process: moto then serves Step
        # Functions from its ASL interpreter instead of recording executions only.
        self._previous_sfn_config = dict(default_user_config.get("stepfunctions", {}))
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        self._previous_moto_port = os.environ.get("MOTO_PORT")
        os.environ["MOTO_PORT"] = str(self.port)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        from moto.core.config import default_user_config

        if self._previous_sfn_config is not None:
            default_user_config["stepfunctions"] = self._previous_sfn_config  # type: ignore[typeddict-item]
            self._previous_sfn_config = None
        if self._previous_moto_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = self._previous_moto_port

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _quiet_handler(base: type[Any]) -> type[Any]:
    """moto's request handler without werkzeug's one-line-per-request access log."""

    class QuietMotoRequestHandler(base):  # type: ignore[misc]
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return QuietMotoRequestHandler
