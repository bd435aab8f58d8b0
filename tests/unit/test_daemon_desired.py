"""The desired set: highest version per name, deterministic ties, conflicts reported."""

from __future__ import annotations

from forgeoned.core.desired import Candidate, desired_set


def c(version: str, sha: str, filename: str, name: str = "hello") -> Candidate:
    return Candidate(name, version, sha, filename)


def test_highest_version_wins_whatever_the_order() -> None:
    files = [c("1.2.0", "a", "x.wasm"), c("1.10.0", "b", "y.wasm"), c("1.9.9", "c", "z.wasm")]
    for order in (files, files[::-1]):
        assert desired_set(order, {}).wanted["hello"].version == "1.10.0"


def test_prerelease_is_below_the_release() -> None:
    files = [c("2.0.0-rc.1", "a", "a.wasm"), c("2.0.0", "b", "b.wasm")]
    assert desired_set(files, {}).wanted["hello"].sha256 == "b"


def test_same_version_same_bytes_is_no_conflict() -> None:
    files = [c("1.0.0", "a", "one.wasm"), c("1.0.0", "a", "two.wasm")]
    result = desired_set(files, {})
    assert result.wanted["hello"].sha256 == "a"
    assert result.conflicts == ()


def test_same_version_other_bytes_prefers_the_running_one_and_reports_it() -> None:
    files = [c("1.0.0", "a", "a.wasm"), c("1.0.0", "b", "b.wasm")]
    result = desired_set(files, {"hello": "b"})
    assert result.wanted["hello"].sha256 == "b"
    assert [x.loser.sha256 for x in result.conflicts] == ["a"]


def test_same_version_other_bytes_without_running_is_deterministic() -> None:
    files = [c("1.0.0", "b", "b.wasm"), c("1.0.0", "a", "a.wasm")]
    assert desired_set(files, {}).wanted["hello"].filename == "a.wasm"
    assert desired_set(files[::-1], {}).wanted["hello"].filename == "a.wasm"


def test_names_are_independent() -> None:
    files = [c("1.0.0", "a", "a.wasm"), c("3.0.0", "b", "b.wasm", name="other")]
    wanted = desired_set(files, {}).wanted
    assert sorted(wanted) == ["hello", "other"]
