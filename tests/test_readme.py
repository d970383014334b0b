"""The README's promises: its test command is what CI runs, and its table is what the code prints."""

import re
from pathlib import Path

from resnets.analysis.summary import paper_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def quickstart_commands() -> list[str]:
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quickstart)


def test_quickstart_has_two_commands_and_ci_runs_the_test_one():
    commands = quickstart_commands()
    assert len(commands) == 2
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci


def test_readme_summary_table_is_current():
    table = README.split("<!-- summary-table -->\n", 1)[1].split("\n<!-- /summary-table -->", 1)[0]
    assert table == paper_table(markdown=True)
