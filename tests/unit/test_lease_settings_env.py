"""The lease's timings come from the environment, checked: a bad value is one clear refusal."""

from __future__ import annotations

import argparse

import pytest

from plait.cli.common import settings
from plait.cli.errors import UsageError


def test_the_lease_timings_and_the_outage_tolerance_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLAIT_LEASE_TTL", "4")
    monkeypatch.setenv("PLAIT_LEASE_RENEW_EVERY", "1")
    monkeypatch.setenv("PLAIT_TAKEOVER_EVERY", "0.5")
    given = settings(argparse.Namespace())
    assert (given.leases.ttl, given.leases.renew_every, given.leases.takeover_every) == (4, 1, 0.5)
    assert given.leases.takeover_bound == 4.5
    # Shorter than the default 15 s, so a driver cut off gives up before its lease expires.
    assert given.outage_tolerance == 1.5


@pytest.mark.parametrize("value", ["soon", "-1", "0", "nan", "inf"])
def test_a_lease_setting_that_is_not_a_positive_number_of_seconds_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PLAIT_LEASE_TTL", value)
    with pytest.raises(UsageError, match="PLAIT_LEASE_TTL"):
        settings(argparse.Namespace())


def test_timings_that_would_let_a_lease_lapse_between_renewals_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLAIT_LEASE_TTL", "4")
    monkeypatch.setenv("PLAIT_LEASE_RENEW_EVERY", "3")
    with pytest.raises(UsageError, match="at most half the lease TTL"):
        settings(argparse.Namespace())


def test_an_outage_tolerance_longer_than_the_lease_allows_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLAIT_OUTAGE_TOLERANCE", "60")
    with pytest.raises(UsageError, match="shorter than the lease TTL"):
        settings(argparse.Namespace())


def test_tasks_get_pooled_repositories_unless_fresh_ones_are_asked_for() -> None:
    from plait.cli import build_parser

    parse = build_parser().parse_args
    assert settings(parse(["run", "plan.yaml"])).reuse_worktrees
    assert settings(parse(["run", "plan.yaml", "--reuse-worktrees"])).reuse_worktrees
    assert not settings(parse(["run", "plan.yaml", "--fresh-worktrees"])).reuse_worktrees
    assert not settings(parse(["serve", "--fresh-worktrees"])).reuse_worktrees
