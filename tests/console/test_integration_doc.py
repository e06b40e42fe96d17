"""docs/integration.md stays true: its Python adoption is at most 20 lines that compile and import what exists, and
the JSON in its curl and Kafka examples are valid saga events."""

import ast
import importlib
import json
import re
from pathlib import Path

from sagas.recording import validate_event

DOC = Path(__file__).resolve().parents[2] / "docs" / "integration.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


def test_it_keeps_the_python_adoption_within_20_lines_of_real_imports():
    python = _blocks("python")
    assert len(python) == 1
    code = python[0]
    assert len([line for line in code.splitlines() if line.strip()]) <= 20
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), (
                    f"{node.module}.{alias.name}"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
    from dlq.consumer_kit import RetryingConsumer
    from sagas import sdk

    assert {"dead_letter_to", "attempts"} <= set(RetryingConsumer.__init__.__code__.co_varnames)
    assert callable(sdk.define) and callable(sdk.start) and sdk.Step("s", print, print).compensate is print


def test_it_shows_valid_saga_events_in_the_curl_and_kafka_examples():
    shells = "\n".join(_blocks("sh"))
    events = [json.loads(text) for text in re.findall(r"'(\{.*?\})'", shells)]
    assert len(events) == 2
    for event in events:
        validated, errors = validate_event(event)
        assert validated is not None and not errors, errors
