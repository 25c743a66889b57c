"""MkDocs hooks: the site reads docs/ as GitHub shows it, with nothing fetched from the internet.

* **Math** written as GitHub does (``$...$`` inline, ``$$...$$`` on their own lines) is converted to MathML
  at build time with ``latex2mathml``: the browser draws it natively, no script and no CDN. Headings'
  math is converted in the table of contents too, and the build fails if any page would still show TeX
  as text (a closing ``$`` after a space, ``$$`` inside a paragraph).
* **Links to the code** (``../minidl/layers/dense.py#L53-L57``, as they work on GitHub) point at generated
  pages of the repository's source with numbered, anchored lines (``code/...``).
* **The API reference** (``reference/...``) is generated from the packages' NumPy-style docstrings by
  mkdocstrings, one page per module, found by walking the packages.
* **The navigation** may name pages that are not in docs/ yet; they are left out until they arrive.
* **Nothing external**: the build fails if any page or stylesheet of the built site would load a script,
  a stylesheet, a font or a frame from another host.
"""

from __future__ import annotations

import html
import logging
import posixpath
import re
from html.parser import HTMLParser
from pathlib import Path

from latex2mathml.converter import convert as latex_to_mathml
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.minidl")

ROOT = Path(__file__).resolve().parent
PACKAGES = ("minidl", "autoencoders")
CODE_DIR = "code"
REFERENCE_DIR = "reference"

# -- navigation ------------------------------------------------------------------------------------


def _modules() -> list[str]:
    """Dotted names of every module of the documented packages, in file order."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _prune(nav: list, docs_dir: Path) -> list:
    """The nav without entries whose Markdown or notebook file does not exist (yet)."""
    kept = []
    for entry in nav:
        ((title, value),) = entry.items() if isinstance(entry, dict) else ((None, entry),)
        if isinstance(value, list):
            value = _prune(value, docs_dir)
            if value:
                kept.append({title: value})
        elif value == f"{REFERENCE_DIR}/":
            kept.append({title: [{name: f"{REFERENCE_DIR}/{name}.md"} for name in _modules()]})
        elif (docs_dir / value).exists():
            kept.append(entry)
        else:
            log.info("nav: %s is not in docs/ yet; left out", value)
    return kept


def on_config(config):
    config["nav"] = _prune(config["nav"], Path(config["docs_dir"]))
    return config


# -- generated pages: source listings and the API reference ---------------------------------------------


def _source_page(relative: str) -> str:
    text = (ROOT / relative).read_text(encoding="utf-8")
    language = {".py": "python", ".md": "markdown", ".cfg": "ini", ".toml": "toml"}.get(Path(relative).suffix, "text")
    fence = "````" if "```" in text else "```"
    return f'# `{relative}`\n\n{fence}{language} linenums="1"\n{text}{fence}\n'


def _directory_page(relative: str) -> str:
    lines = [f"# `{relative}/`", ""]
    for path in sorted((ROOT / relative).iterdir()):
        if path.is_file() and not path.name.startswith("."):
            lines.append(f"* [`{path.name}`]({path.name}.md)")
    return "\n".join(lines) + "\n"


def _linked_paths(docs_dir: Path) -> set[str]:
    """Repository files and folders outside docs/ that a docs page links to (relative to the root)."""
    found = set()
    for page in docs_dir.rglob("*.md"):
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            path = target.split("#")[0]
            if not path or "://" in path or path.startswith(("mailto:", "#")):
                continue
            resolved = (page.parent / path).resolve()
            if ROOT in resolved.parents and docs_dir not in (resolved, *resolved.parents) and resolved.exists():
                found.add(resolved.relative_to(ROOT).as_posix())
    return found


def on_files(files, config):
    docs_dir = Path(config["docs_dir"])
    for relative in sorted(_linked_paths(docs_dir)):
        if (ROOT / relative).is_dir():
            for path in sorted((ROOT / relative).iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    _add(files, config, f"{relative}/{path.name}")
            files.append(File.generated(config, f"{CODE_DIR}/{relative}/index.md", content=_directory_page(relative)))
        else:
            _add(files, config, relative)
    for name in _modules():
        files.append(File.generated(config, f"{REFERENCE_DIR}/{name}.md", content=f"# `{name}`\n\n::: {name}\n"))
    return files


def _add(files, config, relative: str) -> None:
    uri = f"{CODE_DIR}/{relative}.md"
    if files.get_file_from_path(uri) is None:
        files.append(File.generated(config, uri, content=_source_page(relative)))


# -- links into the repository ---------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")
LINE_ANCHOR = re.compile(r"^L(\d+)(?:-L\d+)?$")


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.startswith((CODE_DIR + "/", REFERENCE_DIR + "/")):
        return markdown
    docs_dir = Path(config["docs_dir"]).resolve()
    page_dir = (docs_dir / page.file.src_uri).parent

    def rewrite(match: re.Match) -> str:
        target = match.group(1)
        path, _, anchor = target.partition("#")
        if not path or "://" in path:
            return match.group(0)
        resolved = (page_dir / path).resolve()
        if docs_dir in (resolved, *resolved.parents) or ROOT not in resolved.parents:
            return match.group(0)
        relative = resolved.relative_to(ROOT).as_posix()
        generated = f"{relative}/index.md" if resolved.is_dir() else f"{relative}.md"
        new = posixpath.relpath(f"{CODE_DIR}/{generated}", posixpath.dirname(page.file.src_uri) or ".")
        line = LINE_ANCHOR.match(anchor)
        if line:
            new += f"#__codelineno-0-{line.group(1)}"
        elif anchor:
            new += f"#{anchor}"
        return f"]({new})"

    return LINK.sub(rewrite, markdown)


# -- math --------------------------------------------------------------------------------------------------

ARITHMATEX = re.compile(r'<(span|div) class="arithmatex">\s*\\[(\[](.*?)\\[)\]]\s*</\1>', re.DOTALL)
# nbconvert leaves a notebook's markdown math as $...$ / $$...$$ text and adds a CDN MathJax loader
MATHJAX_LOADER = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL)
# and a notebook cell's source kept as plain text for its copy button
VERBATIM = re.compile(
    r"(<pre.*?</pre>|<code.*?</code>|<script.*?</script>|<style.*?</style>"
    r'|<div class="clipboard-copy-txt".*?</div>)',
    re.DOTALL,
)
DOLLARS = re.compile(r"\$\$(.+?)\$\$|(?<![\\$\w])\$(?!\s)([^$\n]+?)(?<!\s)\$(?![\w$])", re.DOTALL)


def _mathml(latex: str, display: bool) -> str:
    return latex_to_mathml(html.unescape(latex).strip(), display="block" if display else "inline")


LINE_ID = re.compile(r'id="(__codelineno-\d+-\d+)"')


def on_page_content(content, page, config, files):
    if page.file.src_uri.startswith(CODE_DIR + "/") and page.present_anchor_ids is not None:
        # the highlighter writes the line anchors as raw HTML, which MkDocs does not scan for link targets
        page.present_anchor_ids.update(LINE_ID.findall(content))
    content = ARITHMATEX.sub(lambda m: _mathml(m.group(2), m.group(1) == "div"), content)
    if page.file.src_uri.endswith(".py"):
        content = MATHJAX_LOADER.sub("", content)
        parts = VERBATIM.split(content)
        for i in range(0, len(parts), 2):  # the even parts lie outside <pre>, <code>, <script>, <style>
            parts[i] = _dollars_to_mathml(parts[i])
        content = "".join(parts)
    # the table of contents repeats a heading's text with its math as written: \(...\) from a Markdown
    # page (arithmatex), $...$ from a notebook
    _toc_to_mathml(page.toc)
    return content


def _dollars_to_mathml(text: str) -> str:
    return DOLLARS.sub(lambda m: _mathml(m.group(1) or m.group(2), m.group(1) is not None), text)


TOC_MATH = re.compile(r"\\\((.+?)\\\)")


def _toc_to_mathml(items) -> None:
    for item in items:
        item.title = _dollars_to_mathml(TOC_MATH.sub(lambda m: _mathml(m.group(1), False), item.title))
        _toc_to_mathml(item.children)


# -- nothing fetched from elsewhere ----------------------------------------------------------------------

EXTERNAL = re.compile(
    r"""<script\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?//"""
    r"""|<link\b(?=[^>]*\brel\s*=\s*["']?(?:stylesheet|preload|modulepreload))[^>]*\bhref\s*=\s*["']?(?:https?:)?//"""
    r"""|<iframe\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?//"""
    r"""|@import\s+(?:url\()?\s*["']?(?:https?:)?//"""
    r"""|url\(\s*["']?(?:https?:)?//""",
    re.IGNORECASE,
)


# -- math that did not become MathML ----------------------------------------------------------------------

# What a reader would see as TeX: $...$, a $ beside a converted formula (a $$ block inside a paragraph),
# a TeX command, arithmatex's \( \[ delimiters, or MathML shown as text
RAW_TEX = re.compile(r"\$[^$\n]*\$|\$\s*\x00|\x00\s*\$|\\[A-Za-z]+|\\[\[\(\]\)]|<m[a-z]*[ >]")
COPY_TEXT = re.compile(r'<div class="clipboard-copy-txt".*?</div>', re.DOTALL)


class _VisibleText(HTMLParser):
    """The text a reader sees, with each <math> element as one NUL character; code and scripts left out."""

    HIDDEN = frozenset({"pre", "code", "script", "style", "svg", "textarea", "title"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hidden = self.math = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag == "math":
            if not self.math and not self.hidden:
                self.parts.append("\x00")
            self.math += 1

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self.hidden:
            self.hidden -= 1
        elif tag == "math" and self.math:
            self.math -= 1

    def handle_data(self, data):
        if not self.hidden and not self.math:
            self.parts.append(data)


def unconverted_math(page_html: str) -> list[str]:
    """Each piece of TeX a reader would see on the page as text, with some context."""
    parser = _VisibleText()
    parser.feed(COPY_TEXT.sub("", page_html))
    text = "".join(parser.parts)
    return [
        " ".join(text[max(match.start() - 40, 0) : match.end() + 20].replace("\x00", "<math>").split())
        for match in RAW_TEX.finditer(text)
    ]


def on_post_build(config):
    offenders, raw_math = [], []
    for path in Path(config["site_dir"]).rglob("*"):
        if path.suffix in (".html", ".css") and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            match = EXTERNAL.search(text)
            if match:
                offenders.append(f"{path.relative_to(config['site_dir'])}: {match.group(0)[:80]}")
            if path.suffix == ".html":
                raw_math += [f"{path.relative_to(config['site_dir'])}: {found}" for found in unconverted_math(text)]
    if offenders:
        raise PluginError("The site would load resources from other hosts:\n" + "\n".join(offenders))
    if raw_math:
        raise PluginError(
            "Math shown as TeX instead of MathML (write $...$ inline and $$...$$ on lines of its "
            "own, closing $ not after a space):\n" + "\n".join(raw_math)
        )
