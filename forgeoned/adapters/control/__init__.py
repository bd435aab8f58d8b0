"""The control API: HTTP/1.1 + JSON on a Unix socket.

- serving: server (one loop thread), connection and connection_state (one asyncio protocol
  per client: admission, reading, answering), parser (llhttp), admission (per-uid limits,
  reserved admin slots), socket (peer credentials), lanes and pool (control and invoke
  workers), inline (which invokes may run on the loop thread), streaming (chunked answers);
- deciding: verdict (the request head checked against RBAC before any body is read),
  dispatch (a request to its handler, audited), records (throttled refusals, call
  summaries and live call records);
- answering: routes (the path table), plugin_routes, daemon_routes, audit_routes, context,
  views, answers (application errors' bodies), http (requests, responses, JSON errors);
- client: forgeonectl's side of the socket.
"""
