"""The lease's timings, and the outage tolerance they bound, are checked where they are set."""

from __future__ import annotations

import pytest

from plait.eventstore.leases import LeaseTimings
from plait.execution.settings import Settings


def test_the_default_outage_tolerance_ends_a_cut_off_driver_before_its_lease_expires() -> None:
    settings = Settings()
    timings = settings.leases
    assert settings.outage_tolerance + timings.renew_every < timings.ttl
    assert timings.takeover_bound == timings.ttl + timings.takeover_every


def test_an_outage_tolerance_that_outlasts_the_lease_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than the lease TTL"):
        Settings(outage_tolerance=60.0)
    with pytest.raises(ValueError, match="shorter than the lease TTL"):
        Settings(outage_tolerance=20.0, leases=LeaseTimings(ttl=30.0, renew_every=10.0))
    Settings(outage_tolerance=50.0, leases=LeaseTimings(ttl=90.0, renew_every=30.0))


def test_a_renewal_interval_over_half_the_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="at most half the lease TTL"):
        LeaseTimings(ttl=30.0, renew_every=20.0)
    with pytest.raises(ValueError, match="takeover interval"):
        LeaseTimings(takeover_every=0.0)
