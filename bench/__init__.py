"""Pochta's benchmark: accept, batch, drain, end to end and memory, against smtplib's ceiling.

Run it with `make bench` (or `.venv/bin/python -m bench --help`); bench/README.md says
what each figure means.
"""
