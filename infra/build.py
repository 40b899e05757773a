"""Build the two Lambda assets without Docker, skipping work whose inputs have not changed.

- `.build/code/`: the `functions/` package plus the `events/` JSON files. The event
  publisher validates every detail against `events/detail/*.schema.json`, which it
  finds beside `functions/` at runtime, so both travel in one asset.
- `.build/layer/python/`: the runtime dependencies from `pyproject.toml`, installed
  by pip as wheels for the Lambda platform (Linux arm64, CPython 3.12) so that the
  compiled ones (pydantic_core, wrapt) are the right binaries whatever machine builds.

Both carry CPython 3.12 bytecode beside their sources (`compile_bytecode`): Lambda's
filesystem is read-only, so a module shipped without it is compiled again at every cold
start. Compiling needs a Python 3.12 interpreter (`lambda_python`); without one the
assets are built without bytecode, with a warning.

Each build is recorded in a stamp file holding the hash of its inputs; a build whose
stamp matches returns at once, so tests and `infra/app.py` can call it every time.
Builds go to a temporary directory and replace the output only when complete, under
a file lock, so an interrupted or concurrent build never leaves a half-written asset.

Run `python -m infra.build` to build both.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".build"
CODE_DIR = BUILD_DIR / "code"
LAYER_DIR = BUILD_DIR / "layer"
# What a Lambda container would import from, built for this machine instead: the
# layer's packages plus the runtime's boto3. Benchmarks import handlers against it so
# the dev venv's hundreds of packages do not distort cold-import figures.
HOST_SITE_DIR = BUILD_DIR / "host-site"

# Bump when the build recipe changes in a way the hashed inputs do not show.
RECIPE_VERSION = "3"

# The Lambda target: must match the runtime and architecture DomainFunction deploys.
LAMBDA_PLATFORM = "manylinux2014_aarch64"
LAMBDA_PYTHON = "3.12"
# Where Lambda mounts the code asset and the layer: the paths compiled bytecode names, so
# tracebacks read as on Lambda and the bytes do not depend on the build directory.
LAMBDA_TASK_ROOT = "/var/task"
LAMBDA_LAYER_ROOT = "/opt"
# An interpreter of LAMBDA_PYTHON to compile the bytecode with, when the one building is
# another version and none is found on PATH (or under pyenv).
LAMBDA_PYTHON_ENV = "REBATES_LAMBDA_PYTHON"

# The Lambda Python runtime ships boto3 and its dependency closure, so the layer
# leaves them out: that keeps the layer small and lets AWS patch the SDK. The names
# are PEP 503-normalised distribution names.
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}
)

_IGNORED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})


def normalise(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The distribution name at the start of a PEP 508 requirement string."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    if match is None:
        raise ValueError(f"cannot read a distribution name from {requirement!r}")
    return normalise(match.group(0))


def _project(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, Any]:
    with pyproject.open("rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def project_version() -> str:
    """`[project].version`: what REBATES_VERSION (and GET /v1/health) reports."""
    return str(_project()["version"])


def layer_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """`[project].dependencies` minus what the Lambda runtime already provides."""
    dependencies: list[str] = _project(pyproject)["dependencies"]
    return sorted(d for d in dependencies if requirement_name(d) not in RUNTIME_PROVIDED)


def _source_files(directory: Path, pattern: str = "*") -> Iterator[Path]:
    for path in sorted(directory.rglob(pattern)):
        relative = path.relative_to(directory)
        if path.is_file() and path.suffix != ".pyc" and not _IGNORED_DIRS & set(relative.parts):
            yield path


def _code_sources() -> list[tuple[Path, Path]]:
    """(source, path inside the asset) for every file the code asset carries."""
    functions = [(p, p.relative_to(ROOT)) for p in _source_files(ROOT / "functions")]
    events = [(p, p.relative_to(ROOT)) for p in _source_files(ROOT / "events", "*.json")]
    return functions + events


def _python_version(executable: str) -> str | None:
    """`major.minor` of the interpreter at `executable`, None when it does not run."""
    try:
        out = subprocess.run(  # noqa: S603 - an interpreter path, fixed arguments
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.cache
def lambda_python() -> str | None:
    """A Python of Lambda's version (LAMBDA_PYTHON) to compile the assets' bytecode with.

    `$REBATES_LAMBDA_PYTHON` if set (and it must be one), else this interpreter, else
    `python3.12` on PATH, else pyenv's; None when there is none.
    """
    configured = os.environ.get(LAMBDA_PYTHON_ENV)
    if configured:
        if _python_version(configured) != LAMBDA_PYTHON:
            raise RuntimeError(f"{LAMBDA_PYTHON_ENV}={configured} is not Python {LAMBDA_PYTHON}")
        return configured
    if f"{sys.version_info.major}.{sys.version_info.minor}" == LAMBDA_PYTHON:
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(f"python{LAMBDA_PYTHON}")]
    candidates += [
        str(p)
        for p in sorted(pyenv.glob(f"{LAMBDA_PYTHON}.*/bin/python{LAMBDA_PYTHON}"), reverse=True)
    ]
    for candidate in candidates:
        if candidate and _python_version(candidate) == LAMBDA_PYTHON:
            return candidate
    return None


def _bytecode_recipe() -> str:
    """What bytecode the assets get: part of their hashes, so finding a compiler rebuilds."""
    return "none" if lambda_python() is None else f"cpython-{LAMBDA_PYTHON}:unchecked-hash"


def compile_bytecode(directory: Path, deployed_at: str) -> None:
    """Compile every module under `directory` for Lambda's Python, beside its source.

    Hash-based and unchecked (`--invalidation-mode unchecked-hash`): Lambda loads the
    .pyc without reading or stat-ing its source for a date, and the bytes do not depend
    on file times, so an unchanged source keeps the asset hash. The asset is immutable,
    so the check would never find a difference. Paths inside are `deployed_at`'s (where
    Lambda mounts `directory`). A module that does not compile fails the build, not a
    cold start. Without a Python of that version: a warning, and no bytecode.
    """
    python = lambda_python()
    if python is None:
        print(
            f"warning: no Python {LAMBDA_PYTHON} found (set {LAMBDA_PYTHON_ENV}): "
            f"{directory.name} ships no bytecode, every cold start compiles every module",
            file=sys.stderr,
        )
        return
    command = [
        python,
        "-m",
        "compileall",
        "-q",
        "-j0",
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        str(directory),
        "-p",
        deployed_at,
        str(directory),
    ]
    subprocess.run(command, check=True)  # noqa: S603 - fixed argv, no shell


def _code_hash(sources: list[tuple[Path, Path]]) -> str:
    digest = hashlib.sha256(f"code:{RECIPE_VERSION}:{_bytecode_recipe()}".encode())
    for source, target in sources:
        digest.update(str(target).encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()


def _layer_hash(requirements: list[str]) -> str:
    recipe = {
        "recipe": RECIPE_VERSION,
        "requirements": requirements,
        "excluded": sorted(RUNTIME_PROVIDED),
        "platform": LAMBDA_PLATFORM,
        "python": LAMBDA_PYTHON,
        "bytecode": _bytecode_recipe(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


@contextmanager
def _locked() -> Iterator[None]:
    BUILD_DIR.mkdir(exist_ok=True)
    with (BUILD_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _stamp(output: Path) -> Path:
    return output.with_name(f"{output.name}.sha256")


def _is_current(output: Path, digest: str) -> bool:
    stamp = _stamp(output)
    return output.is_dir() and stamp.is_file() and stamp.read_text().strip() == digest


def _build(output: Path, digest: str, fill: Callable[[Path], None]) -> Path:
    """Run `fill` into a staging directory unless `output` is current, then swap it in.

    The stamp is removed before the swap and written after it, so a crash in between
    leaves no stamp and the next call rebuilds.
    """
    with _locked():
        if _is_current(output, digest):
            return output
        staged = Path(tempfile.mkdtemp(prefix=f"{output.name}-", dir=BUILD_DIR))
        staged.chmod(0o755)  # mkdtemp makes it private; the asset is not a secret
        try:
            fill(staged)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        _stamp(output).unlink(missing_ok=True)
        if output.exists():
            shutil.rmtree(output)
        staged.rename(output)
        _stamp(output).write_text(digest + "\n")
    return output


def build_code() -> Path:
    """Assemble `.build/code/` (functions/ + events/*.json); return its path."""
    sources = _code_sources()
    digest = _code_hash(sources)

    def copy(staged: Path) -> None:
        for source, target in sources:
            (staged / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staged / target)
        compile_bytecode(staged, LAMBDA_TASK_ROOT)

    return _build(CODE_DIR, digest, copy)


def _remove_distribution(site: Path, dist_info: Path) -> None:
    """Delete every file pip's RECORD lists for one installed distribution."""
    for line in (dist_info / "RECORD").read_text().splitlines():
        if not line:
            continue
        relative = line.split(",", 1)[0]
        target = (site / relative).resolve()
        # RECORD may list console scripts outside the target (../../bin): skip those.
        if target.is_relative_to(site):
            target.unlink(missing_ok=True)
    shutil.rmtree(dist_info, ignore_errors=True)


def _distribution_name(dist_info: Path) -> str:
    for line in (dist_info / "METADATA").read_text(encoding="utf-8").splitlines():
        if line.startswith("Name:"):
            return normalise(line.removeprefix("Name:").strip())
    raise ValueError(f"{dist_info} has no Name in METADATA")


def _prune(site: Path) -> None:
    """Drop runtime-provided distributions, then bytecode and the empty dirs left over.

    Bytecode is compiled afterwards, for Lambda's Python (`compile_bytecode`).
    """
    for dist_info in sorted(site.glob("*.dist-info")):
        if _distribution_name(dist_info) in RUNTIME_PROVIDED:
            _remove_distribution(site, dist_info)
    # Console scripts (jmespath's jp.py...) are useless in a layer: nothing runs them.
    shutil.rmtree(site / "bin", ignore_errors=True)
    for cache in sorted(site.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    for directory in sorted((p for p in site.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def _check_layer(site: Path) -> None:
    """Fail the build, not the first cold start, when a compiled wheel is missing."""
    binaries = list(site.glob("pydantic_core/_pydantic_core.cpython-312-aarch64-linux-gnu.so"))
    if not binaries:
        raise RuntimeError("layer lacks pydantic_core's CPython 3.12 aarch64 extension")
    leftovers = {_distribution_name(d) for d in site.glob("*.dist-info")} & RUNTIME_PROVIDED
    if leftovers:
        raise RuntimeError(f"layer still carries runtime-provided packages: {sorted(leftovers)}")


def _pip_install(site: Path, requirements: list[str], *target_args: str) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-compile",
        *target_args,
        "--target",
        str(site),
        *requirements,
    ]
    subprocess.run(command, check=True)  # noqa: S603 - fixed argv, no shell


def build_layer() -> Path:
    """Install the layer's dependencies into `.build/layer/python/`; return `.build/layer`."""
    requirements = layer_requirements()

    def install(staged: Path) -> None:
        site = staged / "python"
        # Resolve with dependencies for the Lambda platform (pip picks the aarch64
        # wheels), then prune what the runtime provides: `--no-deps` alone would
        # miss transitive packages such as pydantic_core and wrapt.
        _pip_install(
            site,
            requirements,
            "--platform",
            LAMBDA_PLATFORM,
            "--implementation",
            "cp",
            "--python-version",
            LAMBDA_PYTHON,
            "--only-binary=:all:",
        )
        _prune(site)
        compile_bytecode(site, f"{LAMBDA_LAYER_ROOT}/python")
        _check_layer(site)

    return _build(LAYER_DIR, _layer_hash(requirements), install)


def build_host_site() -> Path:
    """The layer's requirements plus boto3, for this machine's Python: a Lambda-like path."""
    dependencies: list[str] = _project()["dependencies"]
    requirements = sorted(d for d in dependencies if requirement_name(d) == "boto3")
    requirements += layer_requirements()
    digest = hashlib.sha256(
        json.dumps({"recipe": RECIPE_VERSION, "host": requirements, "python": sys.version}).encode()
    ).hexdigest()
    return _build(HOST_SITE_DIR, digest, lambda staged: _pip_install(staged, requirements))


def build_all() -> tuple[Path, Path]:
    """Both assets: (code directory, layer directory)."""
    return build_code(), build_layer()


def _size_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 1_000_000


if __name__ == "__main__":
    code, layer = build_all()
    print(f"code:  {code} ({_size_mb(code):.1f} MB)")
    print(f"layer: {layer} ({_size_mb(layer):.1f} MB)")
