"""``STATE_DIR/reviews.json``: the review book (:mod:`forgeoned.core.review`), replaced
atomically on each change; a missing file is an empty book."""

from __future__ import annotations

import json
from pathlib import Path

from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.core.review import ReviewBook
from forgeoned.errors import StateError

REVIEWS_FILE = "reviews.json"


class ReviewStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / REVIEWS_FILE

    def load(self) -> ReviewBook:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return ReviewBook()
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            return ReviewBook.from_json(json.loads(raw))
        except ValueError as exc:
            raise StateError(f"{self.path}: {exc}") from exc

    def save(self, book: ReviewBook) -> None:
        data = json.dumps(book.to_json(), indent=1, sort_keys=True).encode()
        try:
            atomic_write(self.path, data)
        except OSError as exc:
            raise StateError(f"cannot write {self.path}: {exc.strerror}") from exc
