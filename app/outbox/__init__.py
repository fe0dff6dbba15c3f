"""The outbox: getting committed messages onto the broker (the producing side).

broker.py is the Celery app the API, the scheduler and the worker share; publisher.py
publishes delivery tasks and releases the dispatch lease when the broker fails;
doorbell.py publishes for each API process from one thread; scheduler.py publishes what
is due later (scheduled, deferred, or lost with a dead worker). worker/ only consumes.
"""
