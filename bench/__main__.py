"""`python -m bench` (what `make bench` runs): see bench/README.md."""

from __future__ import annotations

import sys

from bench.options import Options
from bench.runner import run


def main() -> int:
    options = Options.parse()
    try:
        return run(options)
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    except RuntimeError as error:
        print(f"bench: {error}\n(process logs in {options.logdir}/)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
