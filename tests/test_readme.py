"""The README's and the manual's promises: the README is a front page whose test command is what CI runs, the
tables the docs show are what the code prints, and the links between the pages lead somewhere."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from resnets.models.summary import paper_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]  # the front page and the manual (not the run folders)


def quickstart_blocks() -> list[str]:
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quickstart, flags=re.DOTALL)


def marked(text: str, name: str) -> str:
    """The text between `<!-- name -->` and `<!-- /name -->`."""
    return text.split(f"<!-- {name} -->\n", 1)[1].split(f"\n<!-- /{name} -->", 1)[0]


def test_quickstart_has_two_blocks_and_ci_runs_the_test_one():
    blocks = quickstart_blocks()
    assert len(blocks) == 2
    first = blocks[0].splitlines()
    assert first[0] == "resnets evaluate --model resnet20 --weights resnets-cifar10"  # offline, from the package alone
    assert any(line.startswith("resnets train --model resnet20 --recipe cifar10-paper") for line in first[1:])
    assert "pytest" in blocks[1] and "\n" not in blocks[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert blocks[1] in ci


def test_the_quickstarts_first_command_runs_offline_from_the_checkout_alone(tmp_path):
    command = shlex.split(quickstart_blocks()[0].splitlines()[0])
    assert command[:2] == ["resnets", "evaluate"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESNETS_")}
    env |= {"HOME": str(tmp_path / "home"), "RESNETS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT / "src")}
    # No network: a download would go through a proxy that is not there, and fail.
    env |= {k: "http://127.0.0.1:9" for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
    env["NO_PROXY"] = env["no_proxy"] = ""
    run = subprocess.run(
        [sys.executable, "-m", "resnets", *command[1:]], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "1,000-image slice of the CIFAR-10 test split shipped with the package" in run.stderr
    assert re.fullmatch(r"resnet20 on test, full view \(1000 images\): top-1 error \d+\.\d\d%.*\n", run.stdout)


def test_readme_is_a_front_page():
    assert len(README.splitlines()) <= 250


def test_summary_table_is_current():
    table = marked((DOCS / "models.md").read_text(), "summary-table")
    assert table == paper_table(markdown=True)


def test_table6_results_are_the_same_on_the_front_page_and_in_the_manual():
    assert marked(README, "table6-results") == marked((DOCS / "experiments.md").read_text(), "table6-results")


def anchors(page: Path) -> set[str]:
    """The ids of a page's headings, as mkdocs' toc (and, for these headings, GitHub) makes them."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    ids = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
        ids.add(re.sub(r"[-\s]+", "-", slug))
    return ids


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_lead_to_files_and_headings(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https://...
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file)):
            broken.append(target)
    assert not broken
