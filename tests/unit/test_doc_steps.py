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


def test_the_guide_states_what_every_exports_status_does() -> None:
    """The operator's guide states the status semantics of every export (issue 11)."""
    from doc_steps import OPERATIONS

    from forgeoned.core.abi import LifecycleExport

    text = OPERATIONS.read_text()
    section = text.split("### What a plugin's status codes do\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = {n.strip() for row in rows for n in row.split("|")[1].replace("`", "").split(",")}
    assert named == {e.value for e in LifecycleExport} | {"handle", "tick"}
    assert "### What runs\n" in text  # and the rule for what runs
