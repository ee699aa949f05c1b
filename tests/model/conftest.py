"""Fixtures of the model tests (helpers they share live in ``tests.model.helpers``)."""

from __future__ import annotations

import pytest

from tests.model.helpers import SyntheticCity, make_city


@pytest.fixture(scope="session")
def city() -> SyntheticCity:
    return make_city()
