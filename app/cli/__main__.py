"""`python -m app.cli`: the same command as `pochta`."""

from app.cli.main import main

# Guarded so that importing every module (the runtime-install test does) runs nothing.
if __name__ == "__main__":
    main()
