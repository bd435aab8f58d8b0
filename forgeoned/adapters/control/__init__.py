"""The control API: HTTP/1.1 + JSON on a Unix socket.

server, connection, dispatch, routes, pool, socket (peer credentials), client."""
