"""The control API's daemon-wide routes: reload, the trusted keys, the rejected files, the OCI
sources and their pull, and whoami (see :mod:`.routes` for the table)."""

from __future__ import annotations

from forgeoned.adapters.control.context import Context, Reply
from forgeoned.core.policy import Action


def reload(ctx: Context) -> Reply:
    report = ctx.backend.reload(ctx.caller.actor)
    return Reply(200, {"action": "reload", "ok": True, **report})


def keys(ctx: Context) -> Reply:
    return Reply(200, ctx.backend.trusted_keys())


def rejections(ctx: Context) -> Reply:
    # Like the plugin list: a caller sees the rejections of the plugins it may list, and
    # those no manifest names if it may list at all.
    rejected = [
        r
        for r in ctx.backend.rejected_files()
        if ctx.policy.authorize(ctx.caller, Action.LIST, r.get("plugin")).allowed
    ]
    return Reply(200, {"rejected": rejected})


def sources(ctx: Context) -> Reply:
    return Reply(200, {"sources": ctx.backend.sources()})


def pull(ctx: Context) -> Reply:
    name = ctx.request.head.path.strip("/").split("/")[2]
    return Reply(200, ctx.backend.pull(name, ctx.caller.actor))


def whoami(ctx: Context) -> Reply:
    caller = ctx.caller
    allowed = [a.value for a in Action if ctx.policy.authorize(caller, a, None).allowed]
    return Reply(
        200,
        {
            "uid": caller.uid,
            "gid": caller.gid,
            "pid": caller.pid,
            "user": caller.user,
            "groups": sorted(caller.groups),
            "actor": caller.actor,
            "actions": allowed,
        },
    )
