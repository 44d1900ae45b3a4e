"""Workers mode: many `reviewflow worker` processes executing runs from one PostgreSQL database.

`queue` holds the database operations (submit, claim, record, heartbeat, maintain, control),
`dag` the rules by which a run advances inside those transactions, `worker` the process that
claims and runs attempts.
"""
