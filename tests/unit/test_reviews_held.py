"""The review book is saved on each change, except inside ``Reviews.held()`` (the daemon's
start): there the first activations of a whole start are one save (issue 10, item 10: a
1,000-plugin start saved the growing book 1,000 times)."""

from __future__ import annotations

import pytest

from forgeoned.core.clock import ManualClock
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.review import ReviewBook
from forgeoned.errors import StateError
from forgeoned.service.reviews import Reviews


class Saves:
    def __init__(self) -> None:
        self.books: list[set[str]] = []  # the plugins each save held
        self.fail = False

    def __call__(self, book: ReviewBook) -> None:
        if self.fail:
            raise StateError("disk full")
        self.books.append(set(book.plugins))


def installed(name: str) -> AuditEvent:
    return AuditEvent(EventName.PLUGIN_INSTALLED, plugin=name, version="1.0.0")


def reviews(saves: Saves) -> Reviews:
    return Reviews(ReviewBook(), saves, ManualClock(), lambda: 90.0)


def test_outside_held_each_change_is_saved() -> None:
    saves = Saves()
    r = reviews(saves)
    r.observe(installed("a"))
    r.observe(installed("a"))  # not a change: no save
    r.observe(installed("b"))
    assert saves.books == [{"a"}, {"a", "b"}]


def test_inside_held_the_changes_are_one_save_on_leaving() -> None:
    saves = Saves()
    r = reviews(saves)
    with r.held():
        for i in range(100):
            r.observe(installed(f"p{i}"))
        with r.held():  # nested: still held
            r.observe(installed("late"))
        assert saves.books == []
    assert saves.books == [{f"p{i}" for i in range(100)} | {"late"}]
    r.observe(installed("after"))
    assert len(saves.books) == 2


def test_held_without_a_change_saves_nothing() -> None:
    saves = Saves()
    r = reviews(saves)
    with r.held():
        r.observe(AuditEvent(EventName.PLUGIN_PAUSED, plugin="a"))
    assert saves.books == []


def test_a_failed_save_on_leaving_is_counted_and_kept_for_the_next_change() -> None:
    saves = Saves()
    r = reviews(saves)
    saves.fail = True
    with r.held():
        r.observe(installed("a"))
    assert (saves.books, r.save_failures) == ([], 1)
    saves.fail = False
    r.observe(installed("b"))
    assert saves.books == [{"a", "b"}]


def test_an_exception_inside_held_still_saves_what_changed() -> None:
    saves = Saves()
    r = reviews(saves)
    with pytest.raises(RuntimeError), r.held():
        r.observe(installed("a"))
        raise RuntimeError("the start failed")
    assert saves.books == [{"a"}]
