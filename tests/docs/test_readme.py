"""README.md stays true: its headline figures are the result files', and its Python snippets fit the SDK.

Every ```python block of the README is compiled and run (the OpenAI-SDK ones against a real gateway, in
tests/gateway/test_readme_openai.py). SDK objects that need no server (`Requirements`,
`Sampling`, ...) are the real ones; the clients (`QuantmeshClient`, `AsyncQuantmeshClient`, their `profiles` and `batches`)
are `unittest.mock.create_autospec` fakes (their `batches` too), which bind every call to the real signature (`inspect.signature().bind`),
so a snippet calling a method that does not exist, or with a keyword the SDK does not take, fails here.
"""

from __future__ import annotations

import re
from unittest import mock

import pytest

import clients
from clients import admin, batches, sdk
from tools.paths import REPO_ROOT
from tools.readme_figures import END_MARKER, START_MARKER, headline_table

README = (REPO_ROOT / "README.md").read_text()
# (first line of the code in README.md, code) per ```python block.
ALL_SNIPPETS = [(README.count("\n", 0, match.start(1)) + 1, match.group(1))
                for match in re.finditer(r"^```python\n(.*?)^```$", README, re.MULTILINE | re.DOTALL)]
OPENAI_SNIPPETS = [(line, code) for line, code in ALL_SNIPPETS if "from openai import" in code]
SNIPPETS = [snippet for snippet in ALL_SNIPPETS if snippet not in OPENAI_SNIPPETS]
FAKED_CLIENTS = ((sdk.QuantmeshClient, admin.ProfilesAdmin, batches.Batches, "__enter__"),
                 (sdk.AsyncQuantmeshClient, admin.AsyncProfilesAdmin, batches.AsyncBatches, "__aenter__"))


@pytest.fixture
def fake_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replaces both clients, in `clients` and `clients.sdk`, by signature-checking fakes that need no router."""
    for client_class, admin_class, batches_class, enter in FAKED_CLIENTS:
        fake = mock.create_autospec(client_class)
        getattr(fake.return_value, enter).return_value = fake.return_value
        fake.return_value.profiles = mock.create_autospec(admin_class, instance=True)
        fake.return_value.batches = mock.create_autospec(batches_class, instance=True)
        for module in (clients, sdk):
            monkeypatch.setattr(module, client_class.__name__, fake)


def run_snippet(code: str, first_line: int) -> None:
    """Compiles and runs `code` as README.md's lines from `first_line` on (tracebacks name the README's lines)."""
    compiled = compile("\n" * (first_line - 1) + code, "README.md", "exec")
    exec(compiled, {"__name__": "readme_snippet"})  # noqa: S102 - the README's own snippets


def test_headline_figures_are_the_result_files() -> None:
    between = README.split(START_MARKER, 1)[1].split(END_MARKER, 1)[0]
    assert between.strip() == headline_table().strip(), (
        "README.md's headline figures differ from the result files: paste the output of "
        "`python -m tools.readme_figures` between the headline-figures markers")


def test_readme_has_python_snippets() -> None:
    assert SNIPPETS


@pytest.mark.parametrize(("first_line", "code"), SNIPPETS, ids=[f"README.md:{line}" for line, _ in SNIPPETS])
def test_snippet_runs_against_the_sdk(first_line: int, code: str, fake_clients: None) -> None:
    run_snippet(code, first_line)


def test_a_keyword_the_sdk_does_not_take_fails(fake_clients: None) -> None:
    snippet = ('from clients import QuantmeshClient\n'
               'with QuantmeshClient("localhost:50051") as client:\n'
               '    client.generate("What is 17 x 23?", latency_budget_ms=2000)\n')
    with pytest.raises(TypeError, match="latency_budget_ms"):
        run_snippet(snippet, 1)
