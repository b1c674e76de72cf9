"""README.md's OpenAI-SDK snippet runs as written against a running gateway (only its URL and API key are this
mesh's), and prints the streamed answer and the `quantmesh` summary."""

from __future__ import annotations

import contextlib
import io

from tests.docs.test_readme import OPENAI_SNIPPETS, run_snippet
from tests.fixtures.gateway import ROUTE_KEY, GatewayMesh

README_URL = "http://127.0.0.1:8080/v1"
README_KEY = "<a key of the router's callers file, or anything>"


def test_the_readme_openai_snippet_streams_an_answer(gateway_mesh: GatewayMesh) -> None:
    assert len(OPENAI_SNIPPETS) == 1
    first_line, code = OPENAI_SNIPPETS[0]
    assert README_URL in code and README_KEY in code
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        run_snippet(code.replace(README_URL, f"{gateway_mesh.url}/v1").replace(README_KEY, ROUTE_KEY), first_line)
    printed = output.getvalue()
    assert printed.startswith("lorem ipsum dolor") and "'served_by': 'syn-" in printed and "'cost_usd':" in printed
