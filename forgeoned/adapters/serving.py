"""Stopping an asyncio server so that no connection outlives it, not even a half-made one.

``Server.close()`` stops accepting but leaves the connections: a connection accepted in the
same loop iteration may still be being made (asyncio makes its transport in a task that waits
for ``connection_made``), and a transport closed with unsent bytes waits for the peer to read
them. Stopping the loop then would leave their sockets open until the garbage collector finds
them (a ``ResourceWarning``, and file descriptors held meanwhile). Used by the control and
metrics servers, whose loops run in their own threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

_TURNS = 3  # loop iterations for a connection being made to be made


async def stop_serving(
    server: asyncio.AbstractServer, transports: Callable[[], Iterable[asyncio.Transport]]
) -> None:
    """Close ``server``, then every connection: those being made (their tasks cancelled:
    asyncio closes the transport) and every one ``transports()`` names (aborted)."""
    server.close()
    for _ in range(_TURNS):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is not current:
            task.cancel()
    for transport in list(transports()):
        transport.abort()
    for _ in range(_TURNS):  # the aborts' connection_lost callbacks close the sockets
        await asyncio.sleep(0)
