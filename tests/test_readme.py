"""The README's quickstart and CI must run the same test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for b in blocks for line in b.splitlines() if line.strip() and not line.startswith("#")]


def test_quickstart_is_exactly_two_commands():
    cmds = quickstart_commands()
    assert len(cmds) == 2, cmds
    assert "pip install" in cmds[0] and "puzzle-ray" in cmds[0]
    assert "pip install" in cmds[1] and "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert quickstart_commands()[1] in ci.splitlines()


def test_no_command_downloads_from_a_hub():
    for cmd in quickstart_commands():
        assert "huggingface" not in cmd and "hf_hub" not in cmd and "wget" not in cmd and "curl" not in cmd
