"""Point every link to lines of code in README.md and docs/*.md at the lines of the name it shows.

A link such as [`Dense.backward`](../minidl/layers/dense.py#L53-L57) names a class, function, method or
module-level constant; this script finds that name in the file (with ``ast``) and rewrites the line
range to the definition's first and last lines. Run it after editing code that the docs link to:

    python tools/relink_docs.py            # rewrite the files
    python tools/relink_docs.py --check    # only report links that are out of date (exit 1 if any)
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE_LINK = re.compile(r"\[`(?P<name>[\w.]+)(?:\(\))?`\]\((?P<path>[^)#\s]+)#L\d+(?:-L\d+)?\)")


def definition_lines(source: str, name: str) -> tuple[int, int] | None:
    """First and last line of the definition of the dotted ``name`` in ``source``, or None."""
    body = ast.parse(source).body
    node = None
    for part in name.split("."):
        node = next((n for n in body if _defines(n, part)), None)
        if node is None:
            return None
        body = getattr(node, "body", [])
    return node.lineno, node.end_lineno


def _defines(node: ast.AST, name: str) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name
    return False


def relink(document: Path) -> tuple[str, list[str]]:
    """The document's text with every line link re-anchored, and the names that could not be found."""
    missing = []

    def replace(match: re.Match) -> str:
        path = (document.parent / match["path"]).resolve()
        lines = definition_lines(path.read_text(), match["name"]) if path.suffix == ".py" and path.exists() else None
        if lines is None:
            missing.append(f"{document.name}: {match['name']} not found in {match['path']}")
            return match.group(0)
        first, last = lines
        anchor = f"L{first}" if first == last else f"L{first}-L{last}"
        return match.group(0).split("#")[0] + f"#{anchor})"

    return LINE_LINK.sub(replace, document.read_text()), missing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report out-of-date links instead of fixing them")
    args = parser.parse_args(argv)
    stale, missing = [], []
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text, not_found = relink(document)
        missing += not_found
        if text != document.read_text():
            stale.append(document.relative_to(ROOT).as_posix())
            if not args.check:
                document.write_text(text)
    for line in missing:
        print(line, file=sys.stderr)
    if stale:
        print(("out of date: " if args.check else "relinked: ") + ", ".join(stale))
    return 1 if missing or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
