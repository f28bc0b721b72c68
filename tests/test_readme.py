"""The README stays true: its file tree lists every package file, and its first commands are make targets."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _tree_entries() -> set[str]:
    block = README.split("<!-- tree -->")[1].split("<!-- /tree -->")[0]
    entries, stack = set(), []
    for line in block.splitlines():
        m = re.match(r"^(\s*)(\S+?)(/?)\s{2,}#", line) or re.match(r"^(\s*)(\S+?)(/?)\s*$", line)
        if not m or m.group(2).startswith("```"):
            continue
        depth = len(m.group(1)) // 2
        stack = [*stack[:depth], m.group(2)]
        entries.add("/".join(stack) + m.group(3))
    return entries


def test_every_package_file_is_in_the_readme_tree():
    listed = _tree_entries()
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "dina").rglob("*.py"))
    missing = [f for f in files if f not in listed]
    assert not missing, f"README tree lacks: {missing}"
    stale = [e for e in listed if e.endswith(".py") and not (ROOT / e).exists()]
    assert not stale, f"README tree lists files that do not exist: {stale}"


def test_first_two_commands_are_demo_and_test():
    commands = re.findall(r"^make (\w+)", README, flags=re.M)
    assert commands[:2] == ["demo", "test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
