"""Notifications: who hears about a run, and how a notification leaves the process.

- `targets`: the `notifications:` entries of a workflow, a template or the server's config
  (validated data, no I/O; imported by reviewflow.spec).
- reviewflow.store.outbox: the outbox rows the store derives from a run's events, in the same
  transaction as the events.
- `senders`: webhook (signed JSON), Slack (incoming webhook) and email (SMTP).
- `deliver`: the Deliverer, a thread that claims due outbox rows, sends them with timeouts and
  retries them with exponential backoff for a bounded time.

This module imports nothing, so the spec can import `targets` without the senders' libraries.
"""
