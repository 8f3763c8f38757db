"""The three dependency descriptions agree: pyproject.toml (ranges), requirements.lock (what `make` installs)
and environment.yml (the conda-forge equivalent).

`make` never uses conda, so nothing else would notice environment.yml drifting; these tests do. Every failure
names the package concerned.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from kofukin.paths import SOURCE_ROOT

# conda-forge names that differ from the PyPI name (normalised). None today; add pairs here if one is needed.
CONDA_TO_PYPI: dict[str, str] = {}
# Entries of environment.yml that are not project dependencies.
CONDA_TOOLING = {"python", "pip"}


def canonical(name: str) -> str:
    """PEP 503 name without extras: ``Pagefind[extended]`` → ``pagefind``, ``PyYAML`` → ``pyyaml``."""
    return re.sub(r"[-_.]+", "-", name.split("[", 1)[0].strip()).lower()


@cache
def pyproject() -> dict[str, SpecifierSet]:
    """Runtime dependencies plus the ``test`` extra: canonical name → specifier."""
    data = tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    reqs = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["test"]
    out: dict[str, SpecifierSet] = {}
    for line in reqs:
        req = Requirement(line)
        name = canonical(req.name)
        assert name not in out, f"{name} is listed twice in pyproject.toml"
        out[name] = req.specifier
    return out


@cache
def environment() -> dict[str, tuple[str, str]]:
    """environment.yml: canonical name → (pinned version, ``conda`` or ``pip``)."""
    data = yaml.safe_load((SOURCE_ROOT / "environment.yml").read_text(encoding="utf-8"))
    out: dict[str, tuple[str, str]] = {}

    def add(name: str, version: str, source: str) -> None:
        name = canonical(CONDA_TO_PYPI.get(canonical(name), name))
        assert name not in out, f"{name} is listed twice in environment.yml ({out[name][1]} and {source})"
        out[name] = (version, source)

    for dep in data["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"unexpected section in environment.yml: {sorted(dep)}"
            for line in dep["pip"]:
                if line.startswith("-e"):
                    continue
                m = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*==\s*(\S+)", line)
                assert m, f"pip entry {line!r} in environment.yml is not pinned with =="
                add(m.group(1), m.group(2), "pip")
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(?:==?\s*(\S+))?", dep)
        assert m, f"cannot read conda entry {dep!r} in environment.yml"
        name, version = m.group(1), m.group(2)
        if canonical(name) in CONDA_TOOLING:
            out[canonical(name)] = (version or "", "conda")
            continue
        assert version, f"{name} is not pinned in environment.yml (write {name}=<version>)"
        add(name, version, "conda")
    return out


@cache
def lock() -> dict[str, str]:
    """requirements.lock: canonical name → exact version."""
    out: dict[str, str] = {}
    for raw in (SOURCE_ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)==(\S+)", line)
        assert m, f"requirements.lock line {raw!r} is not name==version"
        name = canonical(m.group(1))
        assert name not in out, f"{name} is listed twice in requirements.lock"
        out[name] = m.group(2)
    return out


def project_packages_in_environment() -> dict[str, tuple[str, str]]:
    return {k: v for k, v in environment().items() if k not in CONDA_TOOLING}


def test_environment_uses_conda_forge_only_and_has_a_pip_section() -> None:
    data = yaml.safe_load((SOURCE_ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert data["channels"] == ["conda-forge"]
    assert any(isinstance(d, dict) and "pip" in d for d in data["dependencies"]), "no pip: section"
    assert "pip" in environment(), "environment.yml installs a pip: section but not pip itself"
    assert "-e ." in next(d["pip"] for d in data["dependencies"] if isinstance(d, dict))


def test_same_packages_in_environment_and_pyproject() -> None:
    env, proj = set(project_packages_in_environment()), set(pyproject())
    assert not (proj - env), f"in pyproject.toml but missing from environment.yml: {sorted(proj - env)}"
    assert not (env - proj), f"in environment.yml but missing from pyproject.toml: {sorted(env - proj)}"


@pytest.mark.parametrize("name", sorted(pyproject()))
def test_environment_pin_satisfies_pyproject_and_equals_lock(name: str) -> None:
    pinned, source = project_packages_in_environment().get(name, (None, None))
    assert pinned is not None, f"{name}: not in environment.yml"
    spec = pyproject()[name]
    assert spec.contains(Version(pinned), prereleases=True), (
        f"{name}: environment.yml pins {pinned} ({source}), outside pyproject.toml's {spec}"
    )
    locked = lock().get(name)
    assert locked is not None, f"{name}: in pyproject.toml but not in requirements.lock"
    assert Version(pinned) == Version(locked), (
        f"{name}: environment.yml pins {pinned} ({source}) but requirements.lock has {locked}"
    )
    assert spec.contains(Version(locked), prereleases=True), f"{name}: lock {locked} outside {spec}"


def test_python_version_satisfies_requires_python() -> None:
    data = tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    python = environment()["python"][0]
    assert SpecifierSet(data["project"]["requires-python"]).contains(Version(python)), (
        f"python: environment.yml pins {python}, outside requires-python {data['project']['requires-python']}"
    )


def test_jupyter_book_is_pinned_to_the_1x_line() -> None:
    assert pyproject()["jupyter-book"] == SpecifierSet(">=1.0.4.post1,<2")
    assert Version(environment()["jupyter-book"][0]) == Version("1.0.4.post1")
    assert Version(lock()["jupyter-book"]) == Version("1.0.4.post1")


def test_pip_section_holds_only_what_conda_forge_lacks() -> None:
    pip_only = sorted(k for k, (_, source) in project_packages_in_environment().items() if source == "pip")
    assert pip_only == ["matplotlib-fontja", "pagefind"]
    # the pagefind extra (the extended binary) must survive in both files
    env_text = (SOURCE_ROOT / "environment.yml").read_text(encoding="utf-8")
    assert "pagefind[extended]==" in env_text
    assert any(d.startswith("pagefind[extended]") for d in _pyproject_lines())
    assert "pagefind-bin-extended" in lock(), "pagefind[extended] needs pagefind_bin_extended in the lock"


def _pyproject_lines() -> list[str]:
    data = tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data["project"]["dependencies"]


def test_canonical_names() -> None:
    assert canonical("PyYAML") == "pyyaml"
    assert canonical("pagefind[extended]") == "pagefind"
    assert canonical("python_calamine") == canonical("Python-Calamine") == "python-calamine"
    assert canonical("jupyter.book") == "jupyter-book"
