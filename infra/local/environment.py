"""Per-function environment variables inside one process.

In AWS every function has its own process and its own environment. Locally several
functions run in this one process, concurrently, on different threads (moto's server
threads, SQS pollers, the local API). Handlers, botocore, Powertools and PynamoDB all
read `os.environ` / `os.getenv`, so `install_overlay()` replaces `os.environ` with a
mapping that answers from the environment of the function running in the current
context (a ContextVar), and from the real process environment everywhere else.

`os.getenv` looks `environ` up in the `os` module's globals on every call, so it
follows the replacement (tests check it). Code that kept a reference to the original
object (`from os import environ`, or a botocore session created before the overlay)
keeps reading the real environment; install the overlay before any boto3 session is
created.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

__all__ = [
    "PASS_THROUGH",
    "PASS_THROUGH_PREFIXES",
    "EnvironmentOverlay",
    "current_function_environment",
    "function_environment",
    "install_overlay",
    "overlay_installed",
    "pass_through_environment",
    "real_environ",
    "uninstall_overlay",
]

# What a function sees of the host: enough for the interpreter, locale and temporary
# files to behave, nothing of the developer's AWS profile or test settings.
PASS_THROUGH: Final = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP"})
PASS_THROUGH_PREFIXES: Final = ("PYTHON", "LC_")

_current: ContextVar[dict[str, str] | None] = ContextVar(
    "rebates_function_environment", default=None
)


def _check_str(value: object, what: str) -> str:
    # os._Environ refuses non-str keys and values the same way; keep that contract so
    # a bug does not behave differently locally.
    if not isinstance(value, str):
        raise TypeError(f"str expected, not {type(value).__name__} (environment {what})")
    return value


class EnvironmentOverlay(MutableMapping[str, str]):
    """`os.environ` that is the current function's environment inside one.

    Reads and writes go to the function environment held by the current context, or
    to the real process environment (keeping `putenv` in step) outside any function.
    """

    def __init__(self, real: MutableMapping[str, str]) -> None:
        self._real = real

    @property
    def real(self) -> MutableMapping[str, str]:
        """The process environment, whatever context the caller is in."""
        return self._real

    def _view(self) -> MutableMapping[str, str]:
        env = _current.get()
        return self._real if env is None else env

    def __getitem__(self, key: str) -> str:
        return self._view()[key]

    def __setitem__(self, key: str, value: str) -> None:
        self._view()[_check_str(key, "key")] = _check_str(value, "value")

    def __delitem__(self, key: str) -> None:
        del self._view()[key]

    def __iter__(self) -> Iterator[str]:
        # A snapshot, as other threads may write to the real environment meanwhile.
        return iter(list(self._view()))

    def __len__(self) -> int:
        return len(self._view())

    def __contains__(self, key: object) -> bool:
        return key in self._view()

    def copy(self) -> dict[str, str]:
        return dict(self._view())

    def __repr__(self) -> str:
        scope = "function" if _current.get() is not None else "process"
        return f"EnvironmentOverlay({scope}, {dict(self._view())!r})"

    # os._Environ supports the dict union operators (3.9+); keep them.
    def __or__(self, other: Mapping[str, str]) -> dict[str, str]:
        merged = self.copy()
        merged.update(other)
        return merged

    def __ror__(self, other: Mapping[str, str]) -> dict[str, str]:
        merged = dict(other)
        merged.update(self.copy())
        return merged

    def __ior__(self, other: Mapping[str, str]) -> EnvironmentOverlay:
        self.update(other)
        return self


class _Installs:
    lock = threading.Lock()
    count = 0
    original: MutableMapping[str, str] | None = None


def install_overlay() -> None:
    """Replace `os.environ` with the overlay. Installs are counted: each needs an
    `uninstall_overlay()`, and the last one restores the original object."""
    with _Installs.lock:
        if _Installs.count == 0:
            _Installs.original = os.environ
            # Rebinding (not clearing) os.environ is the point: os.getenv and everything
            # reading `os.environ` at call time now go through the overlay.
            os.environ = EnvironmentOverlay(os.environ)  # type: ignore[assignment]  # noqa: B003
            _reset_boto3_default_session()
        _Installs.count += 1


def uninstall_overlay() -> None:
    with _Installs.lock:
        if _Installs.count == 0:
            return
        _Installs.count -= 1
        original = _Installs.original
        if _Installs.count == 0 and original is not None:
            if isinstance(os.environ, EnvironmentOverlay):
                os.environ = original  # type: ignore[assignment]  # noqa: B003
            _Installs.original = None


def overlay_installed() -> bool:
    return isinstance(os.environ, EnvironmentOverlay)


def real_environ() -> MutableMapping[str, str]:
    """The process environment, even inside a function context."""
    environ: MutableMapping[str, str] = os.environ
    return environ.real if isinstance(environ, EnvironmentOverlay) else environ


def _reset_boto3_default_session() -> None:
    # A botocore session captures the `os.environ` object when it is created and reads
    # region, endpoint and credentials settings from it. boto3's default session,
    # created before the overlay, would keep answering from the process environment
    # for every handler's `boto3.client(...)`; dropping it makes the next call build
    # one that reads through the overlay. Clients already made are unaffected.
    if "boto3" in sys.modules:  # never import it just for this
        import boto3

        boto3.DEFAULT_SESSION = None


def pass_through_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host variables a function sees (PATH, HOME, locale, TZ, TMPDIR, PYTHON*)."""
    environ = real_environ() if source is None else source
    return {
        key: value
        for key, value in environ.items()
        if key in PASS_THROUGH or key.startswith(PASS_THROUGH_PREFIXES)
    }


def current_function_environment() -> dict[str, str] | None:
    """The environment of the function running in this context, if any."""
    return _current.get()


@contextmanager
def function_environment(env: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Make `env` (copied) what `os.environ` is in the current context for the block.

    Yields the live mapping, so the caller can see what the function wrote to it.
    """
    if not overlay_installed():
        # Without the overlay the handler would silently read the process
        # environment: the wrong table names, the developer's AWS profile.
        raise RuntimeError("install_overlay() must be called before function_environment()")
    view = {_check_str(k, "key"): _check_str(v, "value") for k, v in env.items()}
    token = _current.set(view)
    try:
        yield view
    finally:
        _current.reset(token)
