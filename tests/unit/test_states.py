"""The run and task state machines (reviewflow.states)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reviewflow.errors import InvalidTransition
from reviewflow.states import (
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    TASK_TERMINAL,
    TASK_TRANSITIONS,
    RunState,
    TaskState,
    check_run,
    check_task,
)

R, T = RunState, TaskState

RUN_ALLOWED = sorted((a, b) for a, nxt in RUN_TRANSITIONS.items() for b in nxt)
TASK_ALLOWED = sorted((a, b) for a, nxt in TASK_TRANSITIONS.items() for b in nxt)
RUN_FORBIDDEN = sorted(
    (a, b) for a, b in itertools.product(RunState, RunState) if b not in RUN_TRANSITIONS[a]
)
TASK_FORBIDDEN = sorted(
    (a, b) for a, b in itertools.product(TaskState, TaskState) if b not in TASK_TRANSITIONS[a]
)


def _id(pair: tuple[str, str]) -> str:
    return f"{pair[0]}->{pair[1]}"


def test_tables_cover_every_state() -> None:
    assert set(RUN_TRANSITIONS) == set(RunState)
    assert set(TASK_TRANSITIONS) == set(TaskState)


def test_terminal_states_are_exactly_the_final_outcomes() -> None:
    assert {R.SUCCEEDED, R.FAILED, R.CANCELLED} == RUN_TERMINAL
    assert {T.SUCCEEDED, T.FAILED, T.CANCELLED, T.SKIPPED} == TASK_TERMINAL
    for state in RUN_TERMINAL:
        assert RUN_TRANSITIONS[state] == frozenset()
    for state in TASK_TERMINAL:
        assert TASK_TRANSITIONS[state] == frozenset()


def test_the_documented_edges_users_rely_on_exist() -> None:
    # The task life cycle: blocked -> ready -> running -> succeeded, with retry and timeout
    # detours, and running -> ready as the recovery edge of a lost attempt.
    for edge in [
        (T.BLOCKED, T.READY),
        (T.READY, T.RUNNING),
        (T.RUNNING, T.SUCCEEDED),
        (T.RUNNING, T.RETRY_WAIT),
        (T.RETRY_WAIT, T.READY),
        (T.RUNNING, T.TIMED_OUT),
        (T.TIMED_OUT, T.RETRY_WAIT),
        (T.TIMED_OUT, T.FAILED),
        (T.RUNNING, T.READY),
        (T.BLOCKED, T.SKIPPED),
        (T.RUNNING, T.CANCELLED),
    ]:
        assert edge in TASK_ALLOWED, edge
    for edge in [
        (R.PENDING, R.RUNNING),
        (R.RUNNING, R.PAUSED),
        (R.PAUSED, R.RUNNING),
        (R.RUNNING, R.SUCCEEDED),
        (R.RUNNING, R.FAILED),
        (R.PAUSED, R.CANCELLED),
    ]:
        assert edge in RUN_ALLOWED, edge


@pytest.mark.parametrize("pair", RUN_ALLOWED, ids=_id)
def test_allowed_run_transition_is_accepted(pair: tuple[RunState, RunState]) -> None:
    check_run("run-1", *pair)  # must not raise


@pytest.mark.parametrize("pair", TASK_ALLOWED, ids=_id)
def test_allowed_task_transition_is_accepted(pair: tuple[TaskState, TaskState]) -> None:
    check_task("lint", *pair)  # must not raise


@pytest.mark.parametrize(
    "pair",
    [
        (R.SUCCEEDED, R.RUNNING),
        (R.FAILED, R.RUNNING),
        (R.CANCELLED, R.PENDING),
        (R.RUNNING, R.PENDING),
        (R.PENDING, R.SUCCEEDED),
        (R.RUNNING, R.RUNNING),
    ],
    ids=_id,
)
def test_forbidden_run_transition_raises_naming_both_states(
    pair: tuple[RunState, RunState],
) -> None:
    frm, to = pair
    with pytest.raises(InvalidTransition) as info:
        check_run("run-1", frm, to)
    err = info.value
    assert (err.kind, err.name, err.from_state, err.to_state) == ("run", "run-1", frm, to)
    assert f"{frm.value} -> {to.value}" in str(err)
    assert "run-1" in str(err)


@pytest.mark.parametrize(
    "pair",
    [
        (T.BLOCKED, T.RUNNING),
        (T.BLOCKED, T.SUCCEEDED),
        (T.READY, T.SUCCEEDED),
        (T.RETRY_WAIT, T.RUNNING),
        (T.SUCCEEDED, T.READY),
        (T.FAILED, T.RETRY_WAIT),
        (T.SKIPPED, T.READY),
        (T.CANCELLED, T.RUNNING),
        (T.TIMED_OUT, T.SUCCEEDED),
        (T.RUNNING, T.BLOCKED),
        (T.RUNNING, T.SKIPPED),
    ],
    ids=_id,
)
def test_forbidden_task_transition_raises_naming_both_states(
    pair: tuple[TaskState, TaskState],
) -> None:
    frm, to = pair
    with pytest.raises(InvalidTransition) as info:
        check_task("lint", frm, to)
    err = info.value
    assert (err.kind, err.name, err.from_state, err.to_state) == ("task", "lint", frm, to)
    assert f"{frm.value} -> {to.value}" in str(err)
    assert "'lint'" in str(err)


def test_every_pair_outside_the_tables_is_refused() -> None:
    for frm, to in RUN_FORBIDDEN:
        with pytest.raises(InvalidTransition):
            check_run("r", frm, to)
    for frm, to in TASK_FORBIDDEN:
        with pytest.raises(InvalidTransition):
            check_task("t", frm, to)


def _reachable(table: dict, start: object) -> set:
    seen, stack = {start}, [start]
    while stack:
        for nxt in table[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def test_every_task_state_is_reachable_and_can_still_end() -> None:
    assert _reachable(TASK_TRANSITIONS, T.BLOCKED) == set(TaskState)
    for state in TaskState:
        assert _reachable(TASK_TRANSITIONS, state) & TASK_TERMINAL, state


def test_every_run_state_is_reachable_and_can_still_end() -> None:
    assert _reachable(RUN_TRANSITIONS, R.PENDING) == set(RunState)
    for state in RunState:
        assert _reachable(RUN_TRANSITIONS, state) & RUN_TERMINAL, state


@given(st.lists(st.sampled_from(list(TaskState)), max_size=40))
def test_random_task_transition_sequences_stay_inside_the_table(
    attempts: list[TaskState],
) -> None:
    state = T.BLOCKED
    for target in attempts:
        before = state
        try:
            check_task("t", state, target)
        except InvalidTransition as err:
            assert target not in TASK_TRANSITIONS[before]
            assert (err.from_state, err.to_state) == (before, target)
        else:
            assert target in TASK_TRANSITIONS[before]
            assert before not in TASK_TERMINAL, "a terminal state was left"
            state = target
    if state in TASK_TERMINAL:
        for target in TaskState:
            with pytest.raises(InvalidTransition):
                check_task("t", state, target)


@given(st.lists(st.sampled_from(list(RunState)), max_size=30))
def test_random_run_transition_sequences_stay_inside_the_table(
    attempts: list[RunState],
) -> None:
    state = R.PENDING
    for target in attempts:
        before = state
        try:
            check_run("r", state, target)
        except InvalidTransition:
            assert target not in RUN_TRANSITIONS[before]
        else:
            assert target in RUN_TRANSITIONS[before]
            assert before not in RUN_TERMINAL, "a terminal state was left"
            state = target
