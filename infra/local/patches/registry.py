"""What every patch shares: which runtime serves, what is patched, and the checks of moto.

A patch is a module of this package with a `PATCH` (`Patch`): what it replaces in moto
(`targets`), what it relies on there (`checks`, `settings`), and its own `verify()`.
`apply()` installs every patch's targets until `revert()`; `install_for_good()` keeps
one patch installed for the rest of the process (plain `mock_aws` tests, benchmarks).
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from infra.local.lambdas import LambdaRuntime

PINNED_MOTO_VERSION: Final = "5.2.5"


class PatchError(RuntimeError):
    """moto no longer has the shape a patch expects (see each patch's `verify()`)."""


_lock = threading.RLock()
# A stack, so a second local cloud in the same process (an integration test module
# beside a session-wide one) can take over and hand back; moto's backends are global.
_runtimes: list[LambdaRuntime] = []
# (owner object, attribute name, original value) for each attribute apply() patched;
# revert() restores them.
_originals: list[tuple[Any, str, Any]] = []
# The same for patches installed for the rest of the process (install_for_good);
# apply() leaves these as they are.
_lasting: list[tuple[Any, str, Any]] = []

# (module, class or "" for the module itself, attribute, replacement)
Target = tuple[str, str, str, Any]


def active_runtime() -> LambdaRuntime | None:
    with _lock:
        return _runtimes[-1] if _runtimes else None


def current_runtime() -> LambdaRuntime:
    """The runtime serving moto's calls into a patch, which only run while applied."""
    runtime = active_runtime()
    if runtime is None:
        raise PatchError("moto called a local-cloud patch after revert()")
    return runtime


def original(owner: Any, name: str) -> Any:
    """The unpatched attribute (also while patched)."""
    for patched_owner, patched_name, value in (*_originals, *_lasting):
        if patched_owner is owner and patched_name == name:
            return value
    return getattr(owner, name)


def _is_lasting(owner: Any, name: str) -> bool:
    return any(patched is owner and patched_name == name for patched, patched_name, _ in _lasting)


# -- checks ---------------------------------------------------------------------------


def _owner(module: str, owner: str) -> Any:
    loaded = importlib.import_module(module)
    return getattr(loaded, owner) if owner else loaded


def _name(module: str, owner: str, member: str) -> str:
    return f"{module}.{owner + '.' if owner else ''}{member}"


@dataclass(frozen=True)
class Checks:
    """What a patch relies on in moto: each `owner` is a class name, or "" for the module."""

    # (module, owner, member, expected parameters)
    signatures: Sequence[tuple[str, str, str, list[str]]] = ()
    # (module, owner, member, what its source must contain, what relies on it)
    sources: Sequence[tuple[str, str, str, tuple[str, ...], str]] = ()
    # (module, owner, attribute)
    attributes: Sequence[tuple[str, str, str]] = ()

    def problems(self) -> list[str]:
        """What no longer matches in the installed moto (read from the originals)."""
        problems = []
        for module, owner, member, expected in self.signatures:
            name = _name(module, owner, member)
            try:
                found = list(inspect.signature(original(_owner(module, owner), member)).parameters)
            except Exception as error:
                problems.append(f"{name}: {type(error).__name__}: {error}")
                continue
            if found != expected:
                problems.append(f"{name}: parameters are now {found}, the patch expects {expected}")
        for module, owner, member, needles, why in self.sources:
            name = _name(module, owner, member)
            try:
                text = inspect.getsource(original(_owner(module, owner), member))
            except Exception as error:
                problems.append(f"{name}: {type(error).__name__}: {error} ({why})")
                continue
            missing = [needle for needle in needles if needle not in text]
            if missing:
                problems.append(f"{name} no longer contains {missing}: {why}")
        for module, owner, attribute in self.attributes:
            name = _name(module, owner, attribute)
            try:
                present = hasattr(_owner(module, owner), attribute)
            except Exception as error:
                problems.append(f"{name}: {type(error).__name__}: {error}")
                continue
            if not present:
                problems.append(f"{name} is gone")
        return problems


def version_problems() -> list[str]:
    import moto

    if moto.__version__ == PINNED_MOTO_VERSION:
        return []
    return [
        f"moto {moto.__version__} is installed, the patches were written for "
        f"{PINNED_MOTO_VERSION}: re-check every patch in infra/local/patches/, then "
        "update PINNED_MOTO_VERSION"
    ]


def _no_problems() -> list[str]:
    return []


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Patch:
    """One change to moto's behaviour, and what it relies on there."""

    # The module's name in this package: problems and errors are named after it.
    name: str
    checks: Checks
    # What apply() replaces; moto is imported only when it does.
    targets: Sequence[Target] = ()
    # What the shape checks cannot see (moto's configuration, module references).
    settings: Callable[[], list[str]] = _no_problems
    # Called when the last apply() is reverted.
    reset: Callable[[], None] = _nothing

    def replacements(self) -> list[tuple[Any, str, Any]]:
        """(owner object, attribute, replacement) for each target."""
        return [
            (_owner(module, owner), attribute, replacement)
            for module, owner, attribute, replacement in self.targets
        ]

    def problems(self) -> list[str]:
        return [
            f"{self.name}: {problem}" for problem in (*self.settings(), *self.checks.problems())
        ]

    def verify(self) -> None:
        """Raise `PatchError`, naming the patch and what moved, if moto no longer fits it."""
        problems = version_problems() + self.problems()
        if problems:
            raise PatchError(
                f"cannot patch moto: the {self.name} patch (infra/local/patches/"
                f"{self.name}.py) no longer fits the installed moto:\n- " + "\n- ".join(problems)
            )


def problems_of(patches: Sequence[Patch]) -> list[str]:
    """What no longer matches the patches' expectations in the installed moto (empty: OK)."""
    return version_problems() + [problem for patch in patches for problem in patch.problems()]


# -- installing -----------------------------------------------------------------------


def apply(runtime: LambdaRuntime, patches: Sequence[Patch]) -> None:
    """Route moto's Lambda invocations to `runtime`, installing `patches` first.

    Nested applies stack: the latest runtime serves until its `revert()`.
    """
    with _lock:
        if not _runtimes:
            problems = problems_of(patches)
            if problems:
                raise PatchError("cannot patch moto:\n- " + "\n- ".join(problems))
            for patch in patches:
                for owner, name, replacement in patch.replacements():
                    if _is_lasting(owner, name):
                        continue
                    _originals.append((owner, name, getattr(owner, name)))
                    setattr(owner, name, replacement)
        _runtimes.append(runtime)


def install_for_good(patch: Patch) -> None:
    """Install `patch` for the rest of the process (idempotent; kept past revert())."""
    with _lock:
        pending = []
        for owner, name, replacement in patch.replacements():
            if _is_lasting(owner, name):
                continue
            applied = [i for i, (o, n, _) in enumerate(_originals) if o is owner and n == name]
            if applied:
                _lasting.append(_originals.pop(applied[0]))  # apply()'d: revert() now leaves it
                continue
            pending.append((owner, name, replacement))
        if not pending:
            return
        patch.verify()
        for owner, name, replacement in pending:
            _lasting.append((owner, name, getattr(owner, name)))
            setattr(owner, name, replacement)


def revert(patches: Sequence[Patch]) -> None:
    """Undo the latest `apply()`; the last one restores all that apply() patched.

    Patches installed for the rest of the process (`install_for_good`, also when called
    while applied) stay.
    """
    with _lock:
        if not _runtimes:
            return
        _runtimes.pop()
        if not _runtimes:
            while _originals:
                owner, name, value = _originals.pop()
                setattr(owner, name, value)
            for patch in patches:
                patch.reset()
