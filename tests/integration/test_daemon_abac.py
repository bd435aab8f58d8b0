"""ABAC through a real daemon (issue 13 item 1): rules that name the invoked function, the
signer of the active version (trust-file name or key id), the manifest's labels and the
caller's groups are judged against what the daemon itself knows of the plugin, deny rules
first; every refusal is a 403 naming the rule, a ``control.denied`` event, and nothing runs.

The caller is root with ``root_is_admin = false``, so root holds only what the rules grant."""

from __future__ import annotations

from pathlib import Path

import pytest
from daemon_kit import KEY, Env, drop, in_process, plugin
from hooks_wat import HOOKS_WAT, hooks_manifest, hooks_plugin

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.crypto.keys import public_key_bytes
from forgeoned.cli.devtools import make_signed_plugin, test_key
from forgeoned.core.signature import default_key_id
from forgeoned.errors import ForbiddenError

OTHER = test_key(42)  # trusted too, as other.pub

RULES = """
[[control.rules]]
name = "no-gauge"
anyone = true
actions = ["invoke"]
plugins = ["*"]
functions = ["gauge"]
effect = "deny"

[[control.rules]]
name = "edge-checks"
uid = 0
groups = ["root"]
actions = ["invoke"]
plugins = ["*"]
functions = ["check", "gauge"]
signers = ["{key_id}"]
labels = {{ team = "ed*" }}

[[control.rules]]
name = "plain-by-signer-name"
uid = 0
actions = ["invoke"]
plugins = ["plain"]
signers = ["test"]

[[control.rules]]
name = "edge-handle-for-ops-only"
uid = 0
groups = ["no-such-group-here"]
actions = ["invoke"]
plugins = ["edge"]
functions = ["handle"]
"""


def test_rules_see_the_daemons_own_signers_labels_functions_and_groups(
    tmp_path: Path,
) -> None:
    key_id = default_key_id(KEY.public_key).hex()  # as reload's trusted_keys list it
    env = Env(tmp_path)
    (env.root / "trusted.d/other.pub").write_bytes(public_key_bytes(OTHER.public_key))
    env.write_config(RULES.format(key_id=key_id))
    text = env.config.read_text()
    env.config.write_text(text.replace("[control]\n", "[control]\nroot_is_admin = false\n"))
    drop(env.plugins, "edge.wasm", hooks_plugin())  # labels team=edge, signed by "test"
    west = hooks_manifest(name="west", labels={"team": "west"})  # another label value
    drop(env.plugins, "west.wasm", make_signed_plugin(HOOKS_WAT, west, KEY))
    east = hooks_manifest(name="east")  # team=edge, but signed by the other trusted key
    drop(env.plugins, "east.wasm", make_signed_plugin(HOOKS_WAT, east, OTHER))
    drop(env.plugins, "plain.wasm", plugin("plain", "1.0.0"))  # no labels, signed by "test"
    with in_process(env) as d:
        for name in ("edge", "west", "east", "plain"):
            d.events.wait("plugin.installed", name)
        with ControlClient(env.socket, timeout=60) as client:
            # key id, label glob and group all hold: allowed
            assert client.invoke("edge", b"verdict=allow", function="check") == b"3"
            # the signer by its trust-file name
            assert client.invoke("plain", b"y") == b"plain@1.0.0:y"
            refused: dict[tuple[str, str | None], str] = {}
            for name, fn in [("edge", "gauge"), ("edge", None), ("west", "check"),
                             ("east", "check")]:  # fmt: skip
                with pytest.raises(ForbiddenError) as denied:
                    client.invoke(name, b"verdict=allow", function=fn)
                refused[(name, fn)] = str(denied.value)
        calls = {n: d.view(n).stats.totals().calls for n in ("edge", "west", "east")}
        denials = [e for e in d.events.seen if e.event.label == "control.denied"]
    # deny first, although edge-checks would grant gauge
    assert "(rule no-gauge)" in refused[("edge", "gauge")]
    # handle: edge-checks names other functions; the handle rule needs a group root lacks
    assert "(rule default-deny)" in refused[("edge", None)]
    assert "(rule default-deny)" in refused[("west", "check")]  # label team=west
    assert "(rule default-deny)" in refused[("east", "check")]  # signer "other"
    assert [(e.plugin, e.details.get("function"), e.reason) for e in denials] == [
        ("edge", "gauge", "no-gauge"),
        ("edge", "handle", "default-deny"),
        ("west", "check", "default-deny"),
        ("east", "check", "default-deny"),
    ]
    # only the allowed call ran: nothing refused reached a plugin
    assert calls["edge"][("check", "ok")] == 1, calls
    assert not [k for k in calls["edge"] if k[0] in ("gauge", "handle")], calls
    assert not [k for n in ("west", "east") for k in calls[n] if k[0] == "check"], calls
