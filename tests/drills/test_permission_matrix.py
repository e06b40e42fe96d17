"""Every URL pattern and WebSocket route × every principal (tests/drills/matrix.py), printed as a matrix; 0 wrong."""

import pytest

from tests.drills import figures, hostile, matrix

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_checks_every_url_and_socket_for_every_principal_and_gets_none_wrong(world, capsys):
    sane = hostile.seed(world.admin)
    result = matrix.http_matrix(world, sane)
    matrix.socket_cells(result, world)
    matrix.reason_cells(result, world, hostile.seed(world.admin))  # fresh rows: the cells above may have used them
    with capsys.disabled():
        print("\n" + result.render())
    figures.record("permission matrix", cells=result.cells, wrong=len(result.wrong))
    assert result.cells > 600
    assert not result.wrong, "\n".join(result.wrong)
