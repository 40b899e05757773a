"""Each moto patch is a module of infra.local.patches with its own loud `verify()`."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

import pytest
from moto.sqs.models import Queue

from infra.local import patches
from infra.local.patches import sqs_long_polls

# The shared machinery, not a patch.
NOT_PATCHES = {"registry"}


def patch_modules() -> list[ModuleType]:
    names = sorted(info.name for info in pkgutil.iter_modules(patches.__path__))
    return [
        importlib.import_module(f"{patches.__name__}.{name}")
        for name in names
        if name not in NOT_PATCHES
    ]


def test_the_package_has_its_patch_modules() -> None:
    assert len(patch_modules()) >= 8


@pytest.mark.parametrize("module", patch_modules(), ids=lambda module: module.__name__)
def test_every_patch_module_verifies_against_the_installed_moto(module: ModuleType) -> None:
    assert callable(getattr(module, "verify", None)), f"{module.__name__} has no verify()"
    module.verify()  # raises PatchError naming what moved


@pytest.mark.parametrize("module", patch_modules(), ids=lambda module: module.__name__)
def test_every_patch_is_named_after_its_module_and_applied(module: ModuleType) -> None:
    assert module.PATCH.name == module.__name__.rsplit(".", 1)[-1]
    assert module.PATCH in patches.PATCHES


def test_a_patch_verify_names_the_patch_and_what_moto_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def reshaped(self: Any, seconds: float, extra: int) -> None:
        return None

    monkeypatch.setattr(Queue, "wait_for_messages", reshaped)

    with pytest.raises(patches.PatchError) as raised:
        sqs_long_polls.verify()

    message = str(raised.value)
    assert "sqs_long_polls patch (infra/local/patches/sqs_long_polls.py)" in message
    assert (
        "moto.sqs.models.Queue.wait_for_messages: parameters are now "
        "['self', 'seconds', 'extra'], the patch expects ['self', 'timeout']"
    ) in message


def test_a_patch_verify_fails_on_another_moto_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto

    monkeypatch.setattr(moto, "__version__", "9.9.9")

    with pytest.raises(patches.PatchError, match=r"moto 9\.9\.9 is installed"):
        sqs_long_polls.verify()
