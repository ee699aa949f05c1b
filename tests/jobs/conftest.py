"""A webhook receiver on loopback for the alert tests: apprise posts to ``json://`` URLs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webhook import Receiver, webhook_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as webhook:
        yield webhook
