"""LambdaRuntime: real handlers run in-process with their environment, context and errors."""

from __future__ import annotations

import decimal
import io
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local.environment import install_overlay, uninstall_overlay
from infra.local.lambdas import FunctionNotFound, LambdaRuntime, LocalFunction
from infra.local.server import SerialGate, process_environment
from tests.integration.local import handlers

ROOT = Path(__file__).resolve().parents[3]
REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
HANDLERS = "tests.integration.local.handlers"
# No AWS_ENDPOINT_URL: under mock_aws boto3 calls are intercepted in-process.
RUNTIME_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


@pytest.fixture
def gate() -> SerialGate:
    return SerialGate()


@pytest.fixture
def runtime(gate: SerialGate) -> Iterator[LambdaRuntime]:
    install_overlay()
    runtime = LambdaRuntime(gate, RUNTIME_ENV, project_root=ROOT)
    try:
        yield runtime
    finally:
        runtime.close()
        uninstall_overlay()


def function(
    handler: str, environment: dict[str, str] | None = None, **fields: Any
) -> LocalFunction:
    name = fields.pop("name", f"rt-{handler}")
    return LocalFunction(
        name=name,
        arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        handler=f"{HANDLERS}.{handler}" if "." not in handler else handler,
        environment=environment or {},
        timeout_seconds=fields.pop("timeout_seconds", 30),
        memory_mb=fields.pop("memory_mb", 256),
        **fields,
    )


def test_runs_the_handler_with_a_lambda_context(runtime: LambdaRuntime) -> None:
    invocation = runtime.run(function("echo", memory_mb=512), {"hello": ("tuple", 1)})

    assert invocation.error is None and not invocation.is_error
    payload = invocation.payload
    assert payload["event"] == {"hello": ["tuple", 1]}  # a JSON document, as Lambda sends
    assert payload["function_name"] == "rt-echo"
    assert payload["memory_limit_in_mb"] == 512
    assert payload["invoked_function_arn"].endswith(":function:rt-echo")
    assert payload["aws_request_id"] == invocation.request_id
    assert 0 < payload["remaining_ms"] <= 30_000
    assert invocation.function_name == "rt-echo"
    assert invocation.duration_ms >= 0
    assert runtime.history[-1] is invocation


def test_the_handler_sees_exactly_its_function_environment(
    runtime: LambdaRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REBATES_HOST_ONLY", "leak")
    keys = [
        "OFFERS_TABLE",
        "POWERTOOLS_TRACE_DISABLED",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_EXECUTION_ENV",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "LAMBDA_TASK_ROOT",
        "_HANDLER",
        "REBATES_CLOCK_OFFSET_SECONDS",
        "PATH",
        "REBATES_HOST_ONLY",
    ]
    fn = function(
        "read_env",
        {
            "OFFERS_TABLE": "offers-table",
            # A function may not override what Lambda reserves.
            "AWS_LAMBDA_FUNCTION_NAME": "impostor",
        },
    )
    runtime.clock_offset_seconds = 3600

    payload = runtime.run(fn, {"keys": keys}).payload

    assert payload["environ"] == payload["getenv"]
    env = payload["environ"]
    assert env["OFFERS_TABLE"] == "offers-table"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "rt-read_env"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == REGION
    assert env["AWS_ACCESS_KEY_ID"] == "testing"
    assert env["LAMBDA_TASK_ROOT"] == str(ROOT)
    assert env["_HANDLER"] == f"{HANDLERS}.read_env"
    assert env["REBATES_CLOCK_OFFSET_SECONDS"] == "3600"
    assert env["PATH"]
    assert env["REBATES_HOST_ONLY"] is None


def test_the_function_configuration_can_turn_tracing_back_on(runtime: LambdaRuntime) -> None:
    fn = function("read_env", {"POWERTOOLS_TRACE_DISABLED": "false"})
    payload = runtime.run(fn, {"keys": ["POWERTOOLS_TRACE_DISABLED"]}).payload
    assert payload["environ"] == {"POWERTOOLS_TRACE_DISABLED": "false"}


def test_environment_writes_do_not_outlive_the_invocation(runtime: LambdaRuntime) -> None:
    runtime.run(function("write_env"), {"key": "SCRATCH", "value": "x"})
    payload = runtime.run(function("read_env"), {"keys": ["SCRATCH"]}).payload
    assert payload["environ"] == {"SCRATCH": None}


def test_handlers_see_the_shifted_clock(runtime: LambdaRuntime) -> None:
    runtime.clock_offset_seconds = 86_400
    before = time.time()
    seen = runtime.run(function("now"), {}).payload["now"]
    assert before + 86_400 <= seen <= time.time() + 86_400


def test_an_exception_is_a_lambda_error_named_after_its_class(runtime: LambdaRuntime) -> None:
    invocation = runtime.run(function("fail_verification"), {"claim": "c-1"})

    assert invocation.is_error
    assert invocation.payload is None
    error = invocation.error
    assert error is not None
    assert error["errorType"] == "VerificationFailed"
    assert error["errorMessage"] == "VerificationFailed for {'claim': 'c-1'}"
    assert isinstance(error["stackTrace"], list)
    assert any("handlers.py" in frame for frame in error["stackTrace"])
    assert "[ERROR] VerificationFailed: VerificationFailed for" in invocation.logs
    assert invocation.error_type == "VerificationFailed"


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        (
            "tests.integration.local.no_such_module.handler",
            "Runtime.ImportModuleError",
            "Unable to import module",
        ),
        (
            f"{HANDLERS}.no_such_handler",
            "Runtime.HandlerNotFound",
            "Handler 'no_such_handler' missing",
        ),
        ("handler", "Runtime.MalformedHandlerName", "Bad handler"),
        (f"{HANDLERS}.exit_early", "Runtime.ExitError", "exit status 3"),
        (f"{HANDLERS}.unserialisable", "Runtime.MarshalError", "Unable to marshal response"),
    ],
)
def test_runtime_failures_are_reported_as_lambda_does(
    runtime: LambdaRuntime, handler: str, error_type: str, message: str
) -> None:
    fn = LocalFunction(
        "rt-broken",
        "arn:aws:lambda:ap-northeast-1:123456789012:function:rt-broken",
        handler,
        {},
        3,
        128,
    )
    invocation = runtime.run(fn, {})
    assert invocation.error is not None
    assert invocation.error["errorType"] == error_type
    assert message in invocation.error["errorMessage"]


def test_decimals_are_returned_as_numbers(runtime: LambdaRuntime) -> None:
    handlers.CALLBACKS["decimals"] = lambda: {
        "int": decimal.Decimal(3),
        "float": decimal.Decimal("1.5"),
    }
    payload = runtime.run(function("call_back"), {"name": "decimals"}).payload
    assert payload == {"int": 3, "float": 1.5}


def test_the_handlers_output_is_its_log(
    runtime: LambdaRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    invocation = runtime.run(function("printing"), {"say": "hello from the handler"})
    assert invocation.logs == "hello from the handler\n"
    assert "hello from the handler" in capsys.readouterr().out

    runtime.echo_logs = False
    quiet = runtime.run(function("printing"), {"say": "only in the log"})
    assert quiet.logs == "only in the log\n"
    assert "only in the log" not in capsys.readouterr().out


def test_the_gate_is_released_while_the_handler_runs(
    runtime: LambdaRuntime, gate: SerialGate
) -> None:
    def elsewhere() -> bool:
        # What a moto server thread serving the handler's own request does.
        acquired: list[bool] = []

        def take() -> None:
            with gate.held():
                acquired.append(True)

        thread = threading.Thread(target=take)
        thread.start()
        thread.join(timeout=2)
        return acquired == [True]

    handlers.CALLBACKS["gate"] = elsewhere
    with gate.held():
        invocation = runtime.run(function("call_back"), {"name": "gate"})
        assert gate.holds()
    assert invocation.payload is True


def test_the_handler_module_is_imported_once_inside_the_function_environment(
    runtime: LambdaRuntime, tmp_path: Path
) -> None:
    module = f"rt_import_probe_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text(
        "import os\n"
        "IMPORTS = []\n"
        "IMPORTS.append(os.environ.get('AT_IMPORT'))\n"
        "def handler(event, context):\n"
        "    return IMPORTS\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        fn = function(f"{module}.handler", {"AT_IMPORT": "function env"})
        assert runtime.run(fn, {}).payload == ["function env"]
        assert runtime.run(fn, {}).payload == ["function env"]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module, None)


def test_wait_for_finds_past_and_future_invocations(runtime: LambdaRuntime) -> None:
    runtime.run(function("echo", name="rt-first"), {})
    assert (
        runtime.wait_for(lambda i: i.function_name == "rt-first", timeout=0).function_name
        == "rt-first"
    )

    later = threading.Timer(0.1, lambda: runtime.run(function("echo", name="rt-later"), {}))
    later.start()
    found = runtime.wait_for(lambda i: i.function_name == "rt-later", timeout=5)
    later.join()
    assert found.function_name == "rt-later"

    with pytest.raises(TimeoutError, match="rt-later"):
        runtime.wait_for(lambda i: i.function_name == "rt-never", timeout=0.05)


def test_history_is_bounded(gate: SerialGate) -> None:
    install_overlay()
    try:
        runtime = LambdaRuntime(gate, RUNTIME_ENV, project_root=ROOT, history_limit=3)
        for n in range(5):
            runtime.run(function("echo"), {"n": n})
        assert [i.event["n"] for i in runtime.history] == [2, 3, 4]
        runtime.clear_history()
        assert runtime.history == []
    finally:
        uninstall_overlay()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "")
    return buffer.getvalue()


@mock_aws
def test_invoke_runs_the_function_moto_knows(runtime: LambdaRuntime) -> None:
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="rt-role", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    created = boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="rt-registered",
        Runtime="python3.12",
        Role=role,
        Handler=f"{HANDLERS}.read_env",
        Code={"ZipFile": _zip()},
        Timeout=12,
        MemorySize=1024,
        Environment={"Variables": {"CAMPAIGNS_TABLE": "campaigns"}},
    )

    for reference in ("rt-registered", created["FunctionArn"]):
        invocation = runtime.invoke(
            reference, {"keys": ["CAMPAIGNS_TABLE", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]}
        )
        assert invocation.payload["environ"] == {
            "CAMPAIGNS_TABLE": "campaigns",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        }
    looked_up = runtime.lookup("rt-registered")
    assert (looked_up.timeout_seconds, looked_up.memory_mb) == (12, 1024)
    assert looked_up.arn == created["FunctionArn"]

    with pytest.raises(FunctionNotFound, match="rt-missing"):
        runtime.invoke("rt-missing", {})


# -- the gate and the process environment (server.py) ----------------------------------


def test_the_gate_is_reentrant_and_per_thread(gate: SerialGate) -> None:
    assert not gate.holds()
    with gate.held():
        assert gate.holds()
        with gate.held():
            assert gate.holds()
        assert gate.holds()
        other: list[bool] = []
        thread = threading.Thread(target=lambda: other.append(gate.holds()))
        thread.start()
        thread.join()
        assert other == [False]
    assert not gate.holds()


def test_released_lets_other_threads_in_and_takes_the_gate_back(gate: SerialGate) -> None:
    entered = threading.Event()

    def other() -> None:
        with gate.held():
            entered.set()

    with gate.held(), gate.held():
        thread = threading.Thread(target=other)
        thread.start()
        assert not entered.wait(0.05)  # held: the other thread waits
        with gate.released():
            assert not gate.holds()
            assert entered.wait(2)
            thread.join()
        assert gate.holds()
    assert not gate.holds()


def test_released_is_a_no_op_without_the_gate(gate: SerialGate) -> None:
    with gate.released():
        assert not gate.holds()
    with gate.held():  # still usable
        assert gate.holds()


def test_process_environment_points_clients_at_the_local_cloud() -> None:
    assert process_environment("http://127.0.0.1:4566") == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_DEFAULT_REGION": "ap-northeast-1",
        "AWS_REGION": "ap-northeast-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MOTO_PORT": "4566",
    }
    assert process_environment("http://127.0.0.1:5555", "us-east-1")["AWS_REGION"] == "us-east-1"
    with pytest.raises(ValueError, match="port"):
        process_environment("http://127.0.0.1")
