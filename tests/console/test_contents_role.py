"""SWITCHYARD_CONTENTS_ROLE: who reads message contents, decided by one helper that the templates see too."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from console.access import can_read_contents, roles
from console.settings import envchoice


def test_it_reads_the_setting_as_one_of_its_choices(monkeypatch):
    monkeypatch.delenv("SWITCHYARD_CONTENTS_ROLE", raising=False)
    assert envchoice("SWITCHYARD_CONTENTS_ROLE", "viewer", ("viewer", "operator")) == "viewer"
    monkeypatch.setenv("SWITCHYARD_CONTENTS_ROLE", " Operator ")
    assert envchoice("SWITCHYARD_CONTENTS_ROLE", "viewer", ("viewer", "operator")) == "operator"
    monkeypatch.setenv("SWITCHYARD_CONTENTS_ROLE", "operators")  # a typo stops start-up, it does not open contents
    with pytest.raises(ImproperlyConfigured, match="SWITCHYARD_CONTENTS_ROLE='operators' is not one of"):
        envchoice("SWITCHYARD_CONTENTS_ROLE", "viewer", ("viewer", "operator"))


def test_it_lets_everyone_who_sees_a_page_read_contents_by_default(world):
    assert [can_read_contents(u) for u in (world.viewer, world.operator, world.admin, world.outsider)] == [
        True,
        True,
        True,
        False,
    ]


def test_it_keeps_contents_from_viewers_when_set_to_operator(world, settings):
    settings.CONTENTS_ROLE = "operator"
    assert [can_read_contents(u) for u in (world.viewer, world.operator, world.admin, world.outsider)] == [
        False,
        True,
        True,
        False,
    ]
    request = RequestFactory().get("/")
    request.user = world.viewer
    assert roles(request)["can_read_contents"] is False and roles(request)["can_view"] is True
    request.user = world.operator
    assert roles(request)["can_read_contents"] is True
