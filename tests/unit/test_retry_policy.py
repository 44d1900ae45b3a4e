"""RetryPolicy.delay: exponential backoff, capped, with "equal jitter"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reviewflow.config import validate_spec
from reviewflow.spec import RetryPolicy


def test_delay_without_jitter_is_exponential() -> None:
    policy = RetryPolicy(base_delay=0.1, multiplier=2, max_delay=100, jitter=False)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.2, 0.4, 0.8])


def test_delay_is_capped_by_max_delay() -> None:
    policy = RetryPolicy(base_delay=1, multiplier=3, max_delay=5, jitter=False)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 10)] == pytest.approx([1, 3, 5, 5, 5])


def test_multiplier_one_gives_a_constant_delay() -> None:
    policy = RetryPolicy(base_delay=0.25, multiplier=1, jitter=False)
    assert {policy.delay(n) for n in range(1, 20)} == {0.25}


def test_jitter_scales_between_half_and_full_delay() -> None:
    policy = RetryPolicy(base_delay=2, multiplier=2, max_delay=100, jitter=True)
    assert policy.delay(1, rand=0.0) == pytest.approx(1.0)
    assert policy.delay(1, rand=1.0) == pytest.approx(2.0)
    assert policy.delay(2, rand=0.5) == pytest.approx(3.0)
    # jitter never exceeds the cap
    assert policy.delay(30, rand=1.0) == pytest.approx(100.0)
    assert policy.delay(30, rand=0.0) == pytest.approx(50.0)


def test_jitter_false_ignores_rand() -> None:
    policy = RetryPolicy(base_delay=1, jitter=False)
    assert policy.delay(1, rand=0.0) == policy.delay(1, rand=1.0) == 1.0


@given(
    base=st.floats(0.001, 10),
    multiplier=st.floats(1, 4),
    max_delay=st.floats(0.001, 600),
    attempt=st.integers(1, 60),
    rand=st.floats(0, 1),
)
def test_jittered_delay_lies_within_half_and_full_capped_delay(
    base: float, multiplier: float, max_delay: float, attempt: int, rand: float
) -> None:
    policy = RetryPolicy(base_delay=base, multiplier=multiplier, max_delay=max_delay)
    capped = min(base * multiplier ** (attempt - 1), max_delay)
    delay = policy.delay(attempt, rand)
    assert 0.5 * capped - 1e-12 <= delay <= capped + 1e-12
    assert delay <= max_delay + 1e-12


def test_delay_stays_capped_for_very_many_retries() -> None:
    """A task allowed to retry "forever" (large max_retries, delay capped at a minute) must get
    the capped delay however many attempts it has made — not an exception."""
    policy = RetryPolicy(max_retries=100_000, base_delay=1, multiplier=2, max_delay=60)
    assert policy.delay(1030, rand=1.0) == pytest.approx(60.0)


def test_retry_policy_from_a_spec_parses_durations_and_defaults() -> None:
    spec = validate_spec(
        {
            "name": "wf",
            "defaults": {"retry": {"max_retries": 5, "base_delay": "100ms"}},
            "tasks": {
                "a": {"run": "true", "retry": {"multiplier": 3}},
                "b": {"run": "true", "retry": {"max_retries": 0}},
            },
        }
    )
    a, b = spec.tasks["a"].retry, spec.tasks["b"].retry
    assert (a.max_retries, a.base_delay, a.multiplier) == (5, 0.1, 3)
    assert (b.max_retries, b.base_delay) == (0, 0.1)
