"""The messages domain's SQL, one module per caller: api.py (the routes' services),
queue.py (the scheduler, publisher and worker claiming and leasing), recording.py (the
worker writing what attempts settled)."""
