"""The operations guide keeps its main path marked for the system test that runs it."""

from __future__ import annotations

from doc_steps import MAIN_PATH, main_path


def test_the_guide_marks_the_whole_main_path_in_order() -> None:
    steps = main_path()
    assert [s.name for s in steps] == list(MAIN_PATH)
    for step in steps:
        assert step.script.strip(), step.name
        assert not step.script.startswith(" "), step.name  # list indentation removed


def test_blocks_are_taken_as_written() -> None:
    text = "x\n<!-- system-test: main-path one -->\n   ```sh\n   a \\\n     b\n   c\n   ```\n"
    [step] = main_path(text)
    assert (step.name, step.script) == ("one", "a \\\n  b\nc\n")
