"""Reads before a change ride out a node API that is unreachable or busy for a moment; anything else stops at once."""

from __future__ import annotations

import pytest
from ansible.module_utils.talos import TalosctlError, is_transient, retried

UNAVAILABLE = 'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing"'


def failing_then(answers: list[object]):
    """A read that raises or returns each of `answers` in turn; the calls made are counted in `calls`."""
    calls: list[int] = []

    def read() -> object:
        calls.append(1)
        answer = answers[len(calls) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    read.calls = calls  # type: ignore[attr-defined]
    return read


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (TalosctlError("talosctl version", 1, UNAVAILABLE), True),
        (TalosctlError("talosctl version", 1, "rpc error: code = DeadlineExceeded desc = context deadline"), True),
        (TalosctlError("talosctl version", None, "timed out after 30s"), True),
        (TalosctlError("talosctl version", 1, "rpc error: code = PermissionDenied desc = not authorized"), False),
        (TalosctlError("talosctl version", None, "cannot run talosctl: No such file or directory"), False),
        (TalosctlError("talosctl get mc", 1, 'rpc error: code = NotFound desc = resource "x" not found'), False),
    ],
    ids=["unavailable", "deadline", "no answer in time", "permission", "no talosctl", "not found"],
)
def test_what_counts_as_transient(error, transient):
    assert is_transient(error) is transient


def test_a_read_is_asked_again_after_transient_failures():
    pauses: list[float] = []
    read = failing_then([TalosctlError("c", 1, UNAVAILABLE), TalosctlError("c", None, "timed out after 5s"), "v1.13.2"])
    assert retried(read, sleep=pauses.append) == "v1.13.2"
    assert len(read.calls) == 3 and pauses == [1, 2]


def test_the_third_transient_failure_is_raised():
    read = failing_then([TalosctlError("c", 1, UNAVAILABLE)] * 3)
    with pytest.raises(TalosctlError, match="Unavailable"):
        retried(read, sleep=lambda _: None)
    assert len(read.calls) == 3


def test_a_definite_refusal_is_raised_without_asking_again():
    read = failing_then([TalosctlError("c", 1, "rpc error: code = PermissionDenied desc = not authorized")])
    with pytest.raises(TalosctlError, match="PermissionDenied"):
        retried(read, sleep=lambda _: pytest.fail("no pause expected"))
    assert len(read.calls) == 1
