"""`python -m effnet …` runs the bundled `effnet` binary (for when bin/ is not on PATH)."""

import os
import sys

from effnet import EffnetError, binary


def main() -> int:
    try:
        exe = binary()
    except EffnetError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    argv = [exe, *sys.argv[1:]]
    if os.name == "posix":
        os.execv(exe, argv)
    import subprocess

    return subprocess.call(argv)


if __name__ == "__main__":
    sys.exit(main())
