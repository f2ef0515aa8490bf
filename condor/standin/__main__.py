"""``python -m condor.standin path`` prints the directory to put on PATH; ``... env`` prints an export line."""
from __future__ import annotations

import sys

from condor.standin import BIN_DIR


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "path"
    if what == "path":
        print(BIN_DIR)
    elif what == "env":
        print(f'export PATH="{BIN_DIR}:$PATH"')
    else:
        print("usage: python -m condor.standin [path|env]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
