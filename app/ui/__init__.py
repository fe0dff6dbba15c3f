"""The web dashboard at /ui (SPEC §11): server-rendered pages over the domain services."""
