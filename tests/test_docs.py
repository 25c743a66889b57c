"""Every Python code block in README.md and docs/*.md runs, so the docs cannot drift from the code."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def code_blocks():
    for document in DOCUMENTS:
        for index, match in enumerate(BLOCK.finditer(document.read_text())):
            yield pytest.param(match.group(1), id=f"{document.relative_to(ROOT)}#{index + 1}")


@pytest.mark.parametrize("code", list(code_blocks()))
def test_code_block_runs(code):
    exec(compile(code, "<doc>", "exec"), {"__name__": "__doc_example__"})


def test_there_are_examples():
    assert len(list(code_blocks())) >= 1
