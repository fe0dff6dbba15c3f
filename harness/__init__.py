"""Local services for the tests and the benchmark: free ports (ports), private PostgreSQL
and Redis servers (services), Postfix (postfix), scripted ESMTP relays (relay) and Pochta's
own processes (stack). Not installed with Pochta; processes are started through
app/processes.py, which is.
"""
