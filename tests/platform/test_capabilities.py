"""Apps ask an adapter what it can do, never which broker it is (issue 11): a new adapter, or a broker that gains a
feature, then needs no change in the apps. The check reads the apps' code the way a reviewer would."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("dlq", "monitoring", "outbox", "sagas", "console")
KINDS = {"kafka", "sqs", "rabbitmq", "nats", "sns"}
# Where a kind's name is data, not a branch on behaviour: URI schemes parsed into a connection key, choices of
# model fields, the default kind of a form field, and migrations (frozen history).
ALLOWED = {
    "outbox/models.py",  # split_destination: rabbitmq:// URIs carry exchange/routing-key, a syntax of the scheme
    "console/brokers.py",  # split_destination: sns:// names a topic on an sqs connection (the AWS account)
    "monitoring/operations.py",  # a bare connection name in the offset-reset form means a Kafka one; checked after
}


def _branches_on_kind(tree: ast.AST):
    """Comparisons of anything with a broker kind's literal name: `x == "kafka"`, `x in ("sqs", ...)`, dict
    dispatch on kinds ({"kafka": f, ...}[x])."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for comparator in [node.left, *node.comparators]:
                names = []
                if isinstance(comparator, ast.Constant):
                    names = [comparator.value]
                elif isinstance(comparator, ast.Tuple | ast.List | ast.Set):
                    names = [e.value for e in comparator.elts if isinstance(e, ast.Constant)]
                if any(n in KINDS for n in names):
                    yield node.lineno
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Dict):
            keys = [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
            if sum(k in KINDS for k in keys) >= 2:
                yield node.lineno
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            if isinstance(node.func.value, ast.Dict):
                keys = [k.value for k in node.func.value.keys if isinstance(k, ast.Constant)]
                if sum(k in KINDS for k in keys) >= 2:
                    yield node.lineno


def test_it_finds_no_branch_on_a_broker_kind_in_the_apps():
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative or relative in ALLOWED:
                continue
            for line in _branches_on_kind(ast.parse(path.read_text(), relative)):
                found.append(f"{relative}:{line}")
    assert found == []


def test_it_catches_each_form_of_branching_on_a_kind():
    # The check itself must see what it forbids, or the test above passes by seeing nothing.
    code = """
if broker == "kafka": pass
if kind in ("sqs", "nats"): pass
f = {"kafka": 1, "sqs": 2}[kind]
g = {"sqs": {}, "nats": {}}.get(kind, {})
"""
    assert sorted(_branches_on_kind(ast.parse(code))) == [2, 3, 4, 5]
