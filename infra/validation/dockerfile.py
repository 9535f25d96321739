"""Static checks of infra/docker/Dockerfile (no Docker engine needed): the base image is the rayproject/ray
build of the pinned Ray and Python, puzzle-ray is installed from the repository with constraints.txt and
nothing else, the final user is a numeric non-root uid, and no ARG/ENV looks like a secret."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .hygiene import SECRET_NAME
from .problem import Problem
from .repo import RepoFacts

BASE_IMAGE = re.compile(r"rayproject/ray:(?P<ray>[0-9.]+)-(?P<python>py\d+)-(?P<platform>cpu|cu\d+)")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_PROJECT_REQUIREMENT = re.compile(r"\.(?:\[(?P<extras>[\w,\s-]+)\])?")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    value: str  # the arguments, continuation lines joined
    line: int  # 1-based line of the keyword


@dataclass
class Dockerfile:
    path: Path
    instructions: list[Instruction]
    args: dict[str, str] = field(default_factory=dict)  # ARG defaults (the last declaration with a value wins)

    def where(self, instruction: Instruction) -> str:
        return f"{self.path.name}:{instruction.line}"

    def expand(self, text: str) -> str:
        """Substitute ${ARG} / $ARG with the build arguments' defaults."""
        return _VARIABLE.sub(lambda m: self.args.get(m.group(1) or m.group(2), m.group(0)), text)


def parse_dockerfile(path: Path) -> Dockerfile:
    instructions, buffer, start = [], "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not buffer and not stripped):
            continue  # comments (also between continuation lines) and parser directives
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        keyword, _, value = (buffer + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip(), start))
        buffer = ""
    if buffer:
        raise ValueError(f"{path}: line continuation at the end of the file")
    dockerfile = Dockerfile(path, instructions)
    for instruction in instructions:
        if instruction.keyword == "ARG":
            name, eq, default = instruction.value.partition("=")
            if eq:
                dockerfile.args[name.strip()] = default.strip().strip('"')
    return dockerfile


def check_dockerfile(dockerfile: Dockerfile, facts: RepoFacts) -> list[Problem]:
    problems = _secret_problems(dockerfile)
    froms = [i for i in dockerfile.instructions if i.keyword == "FROM"]
    if not froms:
        return problems + [Problem(dockerfile.path.name, "no FROM")]
    final = froms[-1]
    base = dockerfile.expand(final.value.split()[0])
    match = BASE_IMAGE.fullmatch(base)
    if match is None:
        problems.append(
            Problem(dockerfile.where(final), f"base {base!r} is not rayproject/ray:<ray>-<python>-<platform>")
        )
    else:
        if match["ray"] != facts.ray_version:
            problems.append(
                Problem(dockerfile.where(final), f"base Ray {match['ray']} != constraints.txt ray=={facts.ray_version}")
            )
        if match["python"] != facts.python_tag:
            problems.append(
                Problem(
                    dockerfile.where(final), f"base Python {match['python']} != {facts.python_tag} (requires-python)"
                )
            )
        if not match["platform"].startswith("cu"):
            problems.append(
                Problem(dockerfile.where(final), "the default build must be the CUDA variant (GPU workers)")
            )
    stage = dockerfile.instructions[dockerfile.instructions.index(final) :]
    problems += _user_problems(dockerfile, stage)
    problems += _install_problems(dockerfile, stage, facts)
    problems += _copy_problems(dockerfile, stage, facts.root)
    return problems


def final_user(dockerfile: Dockerfile) -> str | None:
    users = [i.value for i in dockerfile.instructions if i.keyword == "USER"]
    return users[-1] if users else None


def _user_problems(dockerfile: Dockerfile, stage: list[Instruction]) -> list[Problem]:
    users = [i for i in stage if i.keyword == "USER"]
    if not users:
        return [Problem(dockerfile.path.name, "no USER: the image would run as root")]
    uid = dockerfile.expand(users[-1].value).split(":", 1)[0]
    if not uid.isdigit():
        return [Problem(dockerfile.where(users[-1]), f"USER {uid!r}: give a numeric uid so runAsNonRoot can verify it")]
    if int(uid) == 0:
        return [Problem(dockerfile.where(users[-1]), "USER is root")]
    return []


def _secret_problems(dockerfile: Dockerfile) -> list[Problem]:
    problems = []
    for instruction in dockerfile.instructions:
        if instruction.keyword not in ("ARG", "ENV"):
            continue
        for pair in shlex.split(instruction.value):
            name = pair.split("=", 1)[0]
            if SECRET_NAME.search(name):
                problems.append(
                    Problem(
                        dockerfile.where(instruction), f"{instruction.keyword} {name}: secrets never go into the image"
                    )
                )
    return problems


def pip_installs(command: str) -> list[list[str]]:
    """The argument lists of every `pip install` (or `python -m pip install`) that a shell command runs."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    # One simple command per list: split at the shell's command separators.
    commands, current = [], []
    for token in lexer:
        if token in _SEPARATORS:
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    found = []
    for argv in commands:
        if argv[:2] in (["pip", "install"], ["pip3", "install"]):
            found.append(argv[2:])
        elif len(argv) >= 4 and argv[0] in ("python", "python3") and argv[1:4] == ["-m", "pip", "install"]:
            found.append(argv[4:])
    return found


_SEPARATORS = ("&&", "||", ";", "|", "&")


def _install_problems(dockerfile: Dockerfile, stage: list[Instruction], facts: RepoFacts) -> list[Problem]:
    problems, project_installs = [], 0
    for instruction in stage:
        if instruction.keyword != "RUN":
            continue
        for args in pip_installs(dockerfile.expand(instruction.value)):
            where = dockerfile.where(instruction)
            constraints, requirements, i = [], [], 0
            while i < len(args):
                arg = args[i]
                if arg in ("-c", "--constraint"):
                    constraints.append(args[i + 1] if i + 1 < len(args) else "")
                    i += 1
                elif arg.startswith("--constraint="):
                    constraints.append(arg.split("=", 1)[1])
                elif not arg.startswith("-"):
                    requirements.append(arg)
                i += 1
            if constraints != ["constraints.txt"]:
                problems.append(Problem(where, f"pip install must use `-c constraints.txt` (found {constraints})"))
            for requirement in requirements:
                match = _PROJECT_REQUIREMENT.fullmatch(requirement)
                if match is None and "--no-deps" in args and requirement in facts.no_deps_packages:
                    continue  # installed exactly as the README installs it
                if match is None:
                    problems.append(
                        Problem(
                            where, f"pip install {requirement!r}: dependencies belong in pyproject.toml, not the image"
                        )
                    )
                    continue
                project_installs += 1
                extras = {e.strip() for e in (match["extras"] or "").split(",") if e.strip()}
                for extra in sorted(extras - facts.extras):
                    problems.append(
                        Problem(where, f"extra {extra!r} is not in pyproject.toml [project.optional-dependencies]")
                    )
    if project_installs != 1:
        problems.append(
            Problem(
                dockerfile.path.name,
                f"puzzle-ray must be installed once (`pip install -c constraints.txt .`), found {project_installs}",
            )
        )
    return problems


def _copy_problems(dockerfile: Dockerfile, stage: list[Instruction], root: Path) -> list[Problem]:
    problems = []
    for instruction in stage:
        if instruction.keyword == "ADD" and "://" in instruction.value:
            problems.append(
                Problem(dockerfile.where(instruction), "ADD from a URL: the build would download unpinned content")
            )
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        parts = [p for p in shlex.split(instruction.value) if not p.startswith("--")]
        if any(p.startswith("--from") for p in shlex.split(instruction.value)):
            continue
        for source in parts[:-1]:
            if not (root / dockerfile.expand(source)).exists():
                problems.append(
                    Problem(dockerfile.where(instruction), f"COPY source {source!r} is not in the repository")
                )
    return problems
