"""The per-function environment overlay: what handlers see through os.environ/os.getenv."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from infra.local.environment import (
    EnvironmentOverlay,
    function_environment,
    install_overlay,
    overlay_installed,
    pass_through_environment,
    real_environ,
    uninstall_overlay,
)


@pytest.fixture
def overlay() -> Iterator[None]:
    original = os.environ
    install_overlay()
    try:
        yield
    finally:
        uninstall_overlay()
    assert os.environ is original


def test_install_replaces_and_uninstall_restores_os_environ() -> None:
    original = os.environ
    install_overlay()
    try:
        assert isinstance(os.environ, EnvironmentOverlay)
        assert overlay_installed()
        install_overlay()  # nested installs are counted
        uninstall_overlay()
        assert isinstance(os.environ, EnvironmentOverlay)
    finally:
        uninstall_overlay()
    assert os.environ is original
    assert not overlay_installed()


@pytest.mark.usefixtures("overlay")
def test_outside_a_function_reads_and_writes_the_real_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REBATES_OVERLAY_PROBE", "process")
    assert os.environ["REBATES_OVERLAY_PROBE"] == "process"
    assert os.getenv("REBATES_OVERLAY_PROBE") == "process"
    assert real_environ()["REBATES_OVERLAY_PROBE"] == "process"
    os.environ["REBATES_OVERLAY_PROBE"] = "written"
    assert real_environ()["REBATES_OVERLAY_PROBE"] == "written"


@pytest.mark.usefixtures("overlay")
def test_inside_a_function_only_its_environment_is_visible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REBATES_HOST_ONLY", "host")
    with function_environment({"TABLE": "offers", "PATH": "/bin"}):
        assert os.environ["TABLE"] == "offers"
        assert os.getenv("TABLE") == "offers"
        assert os.getenv("REBATES_HOST_ONLY") is None
        assert "REBATES_HOST_ONLY" not in os.environ
        assert dict(os.environ) == {"TABLE": "offers", "PATH": "/bin"}
        assert len(os.environ) == 2
    assert os.getenv("TABLE") is None
    assert os.getenv("REBATES_HOST_ONLY") == "host"


@pytest.mark.usefixtures("overlay")
def test_writes_inside_a_function_stay_in_its_view() -> None:
    with function_environment({"A": "1"}) as view:
        os.environ["B"] = "2"
        assert os.environ.setdefault("C", "3") == "3"
        assert os.environ.pop("A") == "1"
        del os.environ["C"]
        assert view == {"B": "2"}
    assert "B" not in os.environ
    assert os.getenv("B") is None


@pytest.mark.usefixtures("overlay")
def test_mapping_behaviour_matches_os_environ() -> None:
    with function_environment({"A": "1", "B": "2"}):
        copy = os.environ.copy()
        assert copy == {"A": "1", "B": "2"}
        assert type(copy) is dict
        assert sorted(os.environ.keys()) == ["A", "B"]
        assert sorted(os.environ.items()) == [("A", "1"), ("B", "2")]
        assert os.environ.get("MISSING", "default") == "default"
        assert (os.environ | {"C": "3"}) == {"A": "1", "B": "2", "C": "3"}
        assert ({"C": "3"} | os.environ) == {"A": "1", "B": "2", "C": "3"}
        os.environ |= {"D": "4"}
        assert os.environ["D"] == "4"
        assert "function" in repr(os.environ)
        with pytest.raises(KeyError):
            os.environ["MISSING"]
        with pytest.raises(TypeError):
            os.environ["E"] = 5  # type: ignore[assignment]


@pytest.mark.usefixtures("overlay")
def test_contexts_are_isolated_between_threads() -> None:
    barrier = threading.Barrier(2)
    seen: dict[str, set[str | None]] = {}

    def worker(name: str) -> None:
        with function_environment({"FUNCTION": name}):
            barrier.wait()
            observed = set()
            for _ in range(2000):
                observed.add(os.getenv("FUNCTION"))
                os.environ["LAST"] = name
                observed.add(os.environ["LAST"])
            seen[name] = observed

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("offers", "wallet")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"offers": {"offers"}, "wallet": {"wallet"}}
    assert os.getenv("FUNCTION") is None
    assert os.getenv("LAST") is None


@pytest.mark.usefixtures("overlay")
def test_a_new_thread_sees_the_process_environment() -> None:
    # Threads start with an empty context: code a handler runs on another thread reads
    # the process environment, as documented.
    seen: list[str | None] = []
    with function_environment({"FUNCTION": "offers"}):
        thread = threading.Thread(target=lambda: seen.append(os.getenv("FUNCTION")))
        thread.start()
        thread.join()
    assert seen == [None]


@pytest.mark.usefixtures("overlay")
def test_monkeypatch_still_works_over_the_overlay(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setenv("REBATES_MONKEYPATCHED", "yes")
        assert os.environ["REBATES_MONKEYPATCHED"] == "yes"
    assert "REBATES_MONKEYPATCHED" not in os.environ


def test_function_environment_requires_the_overlay() -> None:
    with pytest.raises(RuntimeError, match="install_overlay"), function_environment({}):
        pass


def test_pass_through_keeps_only_host_basics() -> None:
    source = {
        "PATH": "/usr/bin",
        "HOME": "/home/dev",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "TMPDIR": "/tmp",
        "PYTHONHASHSEED": "0",
        "AWS_PROFILE": "prod",
        "AWS_ACCESS_KEY_ID": "real",
        "REBATES_ALLOW_DEFAULT_TABLES": "1",
    }
    assert pass_through_environment(source) == {
        "PATH": "/usr/bin",
        "HOME": "/home/dev",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "TMPDIR": "/tmp",
        "PYTHONHASHSEED": "0",
    }


@pytest.mark.usefixtures("overlay")
def test_pass_through_reads_the_process_environment_inside_a_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/host/bin")
    with function_environment({"PATH": "/function/bin"}):
        assert pass_through_environment()["PATH"] == "/host/bin"
