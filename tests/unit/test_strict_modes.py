"""StrictModes for the config file, the trust store and the credentials dir: real files in a
temporary directory, real chmod and chown (the tests run as root, so chown to another uid
stands in for a file written by another user)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
from daemon_fakes import RecordingAudit

from forgeoned.adapters.crypto.keys import load_trust_dir, public_key_bytes
from forgeoned.adapters.files.strict_modes import (
    Problem,
    Violation,
    check_path,
    check_trusted_inputs,
    enforce,
)
from forgeoned.cli.devtools import test_key
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.errors import AuditError, ConfigError, InsecurePathError

ROOT_ONLY = frozenset({0})
OTHER_UID = 65534  # nobody
KEY = public_key_bytes(test_key(3).public_key)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A clean layout: etc/forgeoned.toml, trusted.d/rt.pub, creds/api-token."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/forgeoned.toml").write_text('mode = "production"\n')
    trusted = tmp_path / "trusted.d"
    trusted.mkdir(mode=0o755)
    (trusted / "rt.pub").write_bytes(KEY)
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    (creds / "api-token").write_text("s3cret")
    (creds / "api-token").chmod(0o400)
    return tmp_path


def inputs(root: Path, owners: frozenset[int] = ROOT_ONLY) -> list[Violation]:
    return check_trusted_inputs(
        root / "etc/forgeoned.toml", root / "trusted.d", root / "creds", owners
    )


def only(found: list[Violation]) -> Violation:
    assert len(found) == 1, found
    return found[0]


def test_a_clean_layout_has_no_problem(store: Path) -> None:
    assert inputs(store) == []


@pytest.mark.parametrize(
    ("mode", "who"),
    [(0o666, "group and others (mode 0666)"), (0o646, "others (mode 0646)"),
     (0o664, "group (mode 0664)")],
)  # fmt: skip
def test_a_key_file_others_can_write_is_named_with_its_mode_and_the_fix(
    store: Path, mode: int, who: str
) -> None:
    key = store / "trusted.d/rt.pub"
    key.chmod(mode)
    v = only(inputs(store))
    assert (v.path, v.problem) == (key, Problem.WRITABLE)
    assert str(v) == f"{key}: writable by {who} (fix: chmod go-w {key})"


def test_a_trust_dir_others_can_write_is_refused_even_when_sticky(store: Path) -> None:
    trusted = store / "trusted.d"
    trusted.chmod(0o1777)  # sticky excuses a directory on the way, not the store itself
    v = only(inputs(store))
    assert (v.path, v.problem) == (trusted, Problem.WRITABLE)
    assert "mode 1777" in v.detail


def test_a_key_owned_by_another_user_is_refused(store: Path) -> None:
    key = store / "trusted.d/rt.pub"
    os.chown(key, OTHER_UID, OTHER_UID)
    v = only(inputs(store))
    assert (v.path, v.problem) == (key, Problem.FOREIGN_OWNER)
    assert f"owned by uid {OTHER_UID}" in v.detail
    assert v.fix == f"chown root {key}"


def test_the_daemons_own_uid_may_own_everything(store: Path) -> None:
    for path in (store, *store.rglob("*")):
        os.chown(path, OTHER_UID, OTHER_UID, follow_symlinks=False)
    assert {v.problem for v in inputs(store)} == {Problem.FOREIGN_OWNER}
    assert inputs(store, frozenset({0, OTHER_UID})) == []


def test_a_symlinked_key_is_refused_even_if_its_target_is_safe(store: Path) -> None:
    safe = store / "elsewhere.pub"
    (store / "trusted.d/rt.pub").rename(safe)
    link = store / "trusted.d/rt.pub"
    link.symlink_to(safe)
    v = only(inputs(store))
    assert (v.path, v.problem) == (link, Problem.SYMLINK)


def test_a_directory_named_like_a_key_is_not_a_regular_file(store: Path) -> None:
    (store / "trusted.d/odd.pem").mkdir()
    assert only(inputs(store)).problem is Problem.NOT_REGULAR


def test_entries_the_daemon_never_reads_are_not_judged(store: Path) -> None:
    for name in (".hidden.pub", "README", "rt.pub.bak"):
        (store / "trusted.d" / name).write_text("x")
        (store / "trusted.d" / name).chmod(0o666)
    (store / "trusted.d/notes").symlink_to("/etc/passwd")
    assert inputs(store) == []


def test_the_config_file_and_each_credential_are_checked(store: Path) -> None:
    config, secret = store / "etc/forgeoned.toml", store / "creds/api-token"
    config.chmod(0o664)
    os.chown(secret, OTHER_UID, -1)
    found = inputs(store)
    assert [(v.path, v.problem) for v in found] == [
        (config, Problem.WRITABLE),
        (secret, Problem.FOREIGN_OWNER),
    ]


def test_a_directory_on_the_way_that_others_can_write_is_refused(store: Path) -> None:
    store.chmod(0o777)  # anyone could rename trusted.d away and put their own in its place
    found = inputs(store)
    assert {v.path for v in found} == {store}
    assert all(v.problem is Problem.WRITABLE for v in found)
    store.chmod(0o1777)  # sticky: others may add entries but not replace ours
    assert inputs(store) == []


def test_a_directory_on_the_way_owned_by_another_user_is_refused(store: Path) -> None:
    os.chown(store / "etc", OTHER_UID, -1)
    v = only(inputs(store))
    assert (v.path, v.problem) == (store / "etc", Problem.FOREIGN_OWNER)


def test_a_symlinked_config_is_judged_by_its_target_and_by_every_directory_of_the_link(
    store: Path,
) -> None:
    real = store / "etc/forgeoned.toml"
    links = store / "links"
    links.mkdir()
    link = links / "forgeoned.toml"
    link.symlink_to(Path("../etc/forgeoned.toml"))
    assert check_path(link, ROOT_ONLY) == []
    real.chmod(0o666)
    assert only(check_path(link, ROOT_ONLY)).path == real
    real.chmod(0o644)
    links.chmod(0o777)  # whoever may write here could point the link elsewhere
    assert only(check_path(link, ROOT_ONLY)).path == links


def test_a_missing_path_is_left_to_whoever_reads_it(tmp_path: Path) -> None:
    assert check_trusted_inputs(tmp_path / "no.toml", tmp_path / "none", None, ROOT_ONLY) == []


def test_a_link_loop_is_left_to_whoever_reads_it(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert check_path(tmp_path / "a", ROOT_ONLY) == []


# --- enforce: refuse, or warn in development mode -------------------------------------------


def test_production_refuses_names_every_path_and_audits(store: Path) -> None:
    key = store / "trusted.d/rt.pub"
    key.chmod(0o666)
    (store / "trusted.d").chmod(0o777)
    audit = RecordingAudit()
    with pytest.raises(InsecurePathError) as caught:
        enforce(inputs(store), audit, development=False)
    text = str(caught.value)
    assert f"{key}: writable by group and others (mode 0666)" in text
    assert f"chmod go-w {store / 'trusted.d'}" in text
    assert caught.value.code == "insecure_permissions"
    assert isinstance(caught.value, ConfigError)  # a start exits 78 (EX_CONFIG)
    (event,) = audit.events
    assert event.event is EventName.CONFIG_INSECURE
    assert event.reason == "insecure_permissions" and event.message == text
    assert event.details["paths"] == [str(store / "trusted.d"), str(key)]


def test_development_warns_loudly_and_audits_instead_of_refusing(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = store / "trusted.d/rt.pub"
    key.chmod(0o664)
    audit = RecordingAudit()
    with caplog.at_level(logging.WARNING, logger="forgeoned"):
        enforce(inputs(store), audit, development=True)
    assert [e.event for e in audit.events] == [EventName.CONFIG_INSECURE]
    assert audit.events[0].message.startswith("INSECURE (development mode): ")
    assert any(str(key) in r.getMessage() for r in caplog.records)


def test_development_still_refuses_a_symlinked_key(store: Path) -> None:
    (store / "trusted.d/rt.pub").rename(store / "rt.pub")
    (store / "trusted.d/rt.pub").symlink_to(store / "rt.pub")
    with pytest.raises(InsecurePathError, match="symbolic link"):
        enforce(inputs(store), RecordingAudit(), development=True)


class BrokenAudit:
    def record(self, event: AuditEvent) -> None:
        raise AuditError("cannot write the audit log: No space left on device")


def test_an_unwritable_audit_log_does_not_lift_the_refusal(store: Path) -> None:
    (store / "trusted.d/rt.pub").chmod(0o666)
    with pytest.raises(InsecurePathError, match=r"rt\.pub"):
        enforce(inputs(store), BrokenAudit(), development=False)


def test_nothing_wrong_nothing_recorded(store: Path) -> None:
    audit = RecordingAudit()
    enforce(inputs(store), audit, development=False)
    assert audit.events == []


# --- load_trust_dir names what it will not read ----------------------------------------------


def test_load_trust_dir_refuses_a_symlinked_key_by_name(store: Path) -> None:
    trusted = store / "trusted.d"
    (trusted / "ops.pub").symlink_to(trusted / "rt.pub")
    with pytest.raises(ConfigError, match=re.escape(f"{trusted / 'ops.pub'} is a symbolic link")):
        load_trust_dir(trusted)
    (trusted / "ops.pub").unlink()
    (trusted / "ops.pub").mkdir()
    with pytest.raises(ConfigError, match=r"ops\.pub is not a regular file"):
        load_trust_dir(trusted)


def test_the_per_plugin_config_files_are_checked(tmp_path: Path) -> None:
    """``plugins.conf.d/NAME.toml`` tells a plugin what to do (an endpoint, a limit): whoever
    may change it changes the plugin's behaviour, so it is held to the config file's rule."""
    conf_d = tmp_path / "plugins.conf.d"
    conf_d.mkdir(mode=0o755)
    (conf_d / "edge.toml").write_text('endpoint = "https://api.example.net"\n')
    (conf_d / "notes.txt").write_text("never read")
    (conf_d / "notes.txt").chmod(0o666)

    def found() -> list[Violation]:
        return check_trusted_inputs(None, tmp_path / "none", None, ROOT_ONLY, conf_d)

    assert found() == []  # a file the daemon never reads is not judged
    (conf_d / "edge.toml").chmod(0o664)
    v = only(found())
    assert (v.path.name, v.problem, v.fix) == (
        "edge.toml",
        Problem.WRITABLE,
        f"chmod go-w {v.path}",
    )
    (conf_d / "edge.toml").chmod(0o644)
    conf_d.chmod(0o777)
    assert only(found()).path == conf_d
    conf_d.chmod(0o755)
    os.chown(conf_d / "edge.toml", OTHER_UID, -1)
    assert only(found()).problem is Problem.FOREIGN_OWNER
