"""Lynx's cron schedules agree with APScheduler 3.11.3 on every recorded vector."""

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from lynx.cron import build
from lynx.errors import ConfigError

VECTORS = json.loads((Path(__file__).parent / "data" / "apscheduler_vectors.json").read_text(encoding="utf-8"))


def fire_times(vector):
    """Fire times as the vectors README asks: first >= start, then each strictly after the last."""
    schedule = build(vector["cron"])
    fires, after, inclusive = [], datetime.fromisoformat(vector["start"]), vector["inclusive"]
    while len(fires) < vector["count"]:
        fire = schedule.next_fire(after, inclusive=inclusive)
        if fire is None:
            break
        fires.append(fire)
        after, inclusive = fire, False
    return fires


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["id"] for vector in VECTORS])
def test_vector(vector):
    if vector["error"]:
        with pytest.raises(ConfigError):
            build(vector["cron"])
        return
    expected = [datetime.fromisoformat(text) for text in vector["expected"]]
    fires = fire_times(vector)
    # compare in UTC: an aware datetime in a repeated hour never equals one in another zone (PEP 495)
    assert [fire.astimezone(timezone.utc) for fire in fires] == [e.astimezone(timezone.utc) for e in expected]
    assert [fire.utcoffset() for fire in fires] == [e.utcoffset() for e in expected]
