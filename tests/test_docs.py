"""The documentation cannot drift from the code.

* Every code block closes on a line of its own, and every Python code block in README.md and docs/*.md
  runs. A block followed by a ```text block prints exactly that text: the numbers a page shows are the
  numbers the code computes.
* Every relative link resolves, and a link to lines of code (``dense.py#L53-L57``) is named for what
  those lines hold (``Dense.backward``) and spans exactly that definition; after an edit to the code,
  ``python tools/relink_docs.py`` moves the line numbers.
* A table of measured numbers is written into its page by its script (``--update``), between markers,
  with the model and settings it was measured on; the test fails when those no longer match the code,
  and re-measures what is cheap to re-measure (the tie fractions at initialisation, with MNIST).
* The central-difference error figures are computed, and the same on every page that states them.
"""

import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```(?:\s*```text\n(.*?)```)?", re.DOTALL)
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
LINE_LINK = re.compile(r"^(?P<path>[^#]+)#L(?P<first>\d+)(?:-L(?P<last>\d+))?$")
NAME = re.compile(r"^`([\w.]+)(?:\(\))?`$")


def _relink_module():
    spec = importlib.util.spec_from_file_location("relink_docs", ROOT / "tools" / "relink_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_blocks():
    for document in DOCUMENTS:
        for index, match in enumerate(BLOCK.finditer(document.read_text())):
            yield pytest.param(match.group(1), match.group(2), id=f"{document.relative_to(ROOT)}#{index + 1}")


@pytest.mark.parametrize("code, expected", list(code_blocks()))
def test_code_block_runs_and_prints_what_the_page_shows(code, expected):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "<doc>", "exec"), {"__name__": "__doc_example__"})
    if expected is not None:
        assert printed.getvalue().rstrip() == expected.rstrip()


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_every_code_block_closes_on_a_line_of_its_own(document):
    """A closing fence with text after it (```` ``` The test... ````) closes nothing: the rest of the page
    would be shown as code."""
    opened = None
    for number, line in enumerate(document.read_text().splitlines(), start=1):
        fence = line.strip()
        if not fence.startswith("```"):
            continue
        if opened is None:
            opened = number
        else:
            assert fence == "```", (
                f"{document.name}:{number}: the block opened at line {opened} closes with text after it"
            )
            opened = None
    assert opened is None, f"{document.name}: the block opened at line {opened} never closes"


def test_there_are_examples_with_printed_output():
    blocks = list(code_blocks())
    assert len(blocks) >= 1
    assert sum(block.values[1] is not None for block in blocks) >= 9  # one worked example per derivation page


def links():
    for document in DOCUMENTS:
        for text, target in LINK.findall(document.read_text()):
            if "://" not in target and not target.startswith(("#", "mailto:")):
                yield pytest.param(document, text, target, id=f"{document.relative_to(ROOT)}->{target}")


@pytest.mark.parametrize("document, text, target", list(links()))
def test_relative_links_resolve(document, text, target):
    path = (document.parent / target.split("#")[0]).resolve()
    assert path.exists(), f"{document.name}: [{text}]({target}) points at nothing"
    line_link = LINE_LINK.match(target)
    if line_link is None:
        return
    assert NAME.match(text), (
        f"{document.name}: a link to lines of code is named for what they hold, e.g. [`Dense.backward`]: [{text}]"
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_line_links_span_the_definition_they_name(document):
    text, missing = _relink_module().relink(document)
    assert not missing, missing
    assert text == document.read_text(), f"{document.name}: line links are out of date: run python tools/relink_docs.py"


def test_the_central_difference_error_figures_are_computed_and_the_same_everywhere():
    """docs/gradient-checking.md, docs/testing.md, the gradcheck docstring and the float32 warning: at
    h = 1e-6 the truncation term is h^2/6 and the rounding term up to u/h (u the unit roundoff)."""
    from minidl import gradcheck
    from minidl.testing.gradients import FLOAT32_MEANINGLESS

    h = 1e-6
    truncation, rounding64, rounding32 = h**2 / 6, 2.0**-53 / h, 2.0**-24 / h
    assert (f"{truncation:.1e}", f"{rounding64:.1e}", f"{rounding32:.0e}") == ("1.7e-13", "1.1e-10", "6e-02")
    page = (ROOT / "docs" / "gradient-checking.md").read_text()
    for figure in (r"1.7 \times 10^{-13}", r"1.1 \times 10^{-10}", r"6 \times 10^{-2}"):
        assert figure in page, figure
    for text in (gradcheck.__doc__, FLOAT32_MEANINGLESS, (ROOT / "docs" / "testing.md").read_text()):
        assert "6e-2" in text, text[:80]
        assert "3e-2" not in text and "~1e-1" not in text


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generated_table(ties) -> str:
    text = ties.PAGE.read_text()
    start, end = ties.generated_block(text)
    return text[start:end]


def test_the_max_pooling_tie_table_was_measured_on_the_current_model_and_settings():
    from autoencoders.models import Autoencoder

    ties = _benchmark("maxpool_ties")
    settings = ties.arguments([])
    measured_on = ties.MEASURED_ON.search(_generated_table(ties))
    assert measured_on, f"{ties.PAGE.name}: the generated table names no model; run benchmarks/maxpool_ties.py --update"
    assert measured_on.group(1) == ties.fingerprint(Autoencoder(rng=settings.seed), settings), (
        f"{ties.PAGE.name}: the tie table was measured on another model: run python benchmarks/maxpool_ties.py --update"
    )


MNIST = Path(os.environ.get("MINIDL_DATA") or "/nonexistent") / "mnist"


@pytest.mark.skipif(not MNIST.is_dir(), reason="set MINIDL_DATA to a folder with the real datasets")
def test_the_max_pooling_tie_table_at_initialisation_matches_a_fresh_measurement():
    from experiments.datasets import load_mnist

    ties = _benchmark("maxpool_ties")
    settings = ties.arguments([])
    model, pools, batches, _, _ = ties.setup(settings, load_mnist(MNIST.parent, fetch=False)[0])
    fresh = ties.tie_fractions(model, pools, batches)
    rows = [line.split("|")[2].strip() for line in _generated_table(ties).splitlines() if line.startswith("| windows")]
    assert rows == [ties.percent_list(fresh["ties"]), ties.percent_list(fresh["positive"])], (
        f"{ties.PAGE.name}: the tie table is stale: run python benchmarks/maxpool_ties.py --update"
    )


def _hooks():
    pytest.importorskip("latex2mathml")
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MATH = '<math xmlns="http://www.w3.org/1998/Math/MathML"><mi>A</mi></math>'


@pytest.mark.parametrize(
    "page, shown",
    [
        ("<p>the backward pass of $\\bar y = $ <code>arange(16)</code></p>", True),  # closing $ after a space
        (f"<p>On the mean activity,\n${MATH}$</p>", True),  # $$ inside a paragraph
        ('<a class="md-nav__link"><span>the transposed layer is $A^\\top$</span></a>', True),  # a heading in the toc
        ("<span>Heading with \\(A^\\top\\) math</span>", True),  # arithmatex's delimiters
        ("<p>&lt;math&gt;&lt;mi&gt;A&lt;/mi&gt;&lt;/math&gt;</p>", True),  # MathML escaped into text
        (f'<p>the layer is {MATH}; <code>cost = $5</code></p><pre>print("$x$\\n")</pre>', False),
        ('<div class="clipboard-copy-txt">print(f"${x}$ \\n")</div><p>plain text</p>', False),
    ],
)
def test_unconverted_math_finds_tex_a_reader_would_see(page, shown):
    assert bool(_hooks().unconverted_math(page)) == shown


def test_the_site_is_strict_about_links():
    config = pytest.importorskip("mkdocs.config").load_config(str(ROOT / "mkdocs.yml"))
    links = config["validation"]["links"]
    assert config["strict"] and all(
        links[kind] >= 30
        for kind in (  # logging.WARNING: fatal under strict
            "not_found",
            "unrecognized_links",
            "anchors",
            "absolute_links",
        )
    )


def test_the_built_site_shows_every_formula_as_mathml(tmp_path):
    """Builds the site as `make test` does (strict, notebooks not executed) and scans every page for TeX a
    reader would see; the build's own hook fails on the same, so a failed build names the pages."""
    pytest.importorskip("mkdocs")
    _hooks()
    environment = {
        **os.environ,
        "MINIDL_DOCS_EXECUTE": "false",
        "NO_MKDOCS_2_WARNING": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    hooks = _hooks()
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20
    found = [
        f"{page.relative_to(site)}: {text}"
        for page in pages
        for text in hooks.unconverted_math(page.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)
