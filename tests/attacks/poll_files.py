"""Run on a test host as an unprivileged user: for SECONDS, read every file it can under the
given folders, over and over, and report whether any ever held the CANARY (a secret that a
deploy is writing at that moment). Bounded in time; standard library only.

    python3 poll_files.py CANARY SECONDS FOLDER...

Prints ``seen: PATH`` for each file the canary was read from, then ``reads: N``.
"""

import os
import sys
import time


def main(canary: bytes, seconds: float, folders: list[str]) -> None:
    seen: set[str] = set()
    reads = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for folder in folders:
            for root, _dirs, names in os.walk(folder):
                for name in names:
                    path = os.path.join(root, name)
                    try:
                        with open(path, "rb") as handle:
                            data = handle.read(1 << 20)
                    except OSError:
                        continue
                    reads += 1
                    if canary in data:
                        seen.add(path)
        time.sleep(0.001)
    for path in sorted(seen):
        print(f"seen: {path}")
    print(f"reads: {reads}")


if __name__ == "__main__":
    main(sys.argv[1].encode(), float(sys.argv[2]), sys.argv[3:])
