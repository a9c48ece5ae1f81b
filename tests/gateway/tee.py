"""Run a command, recording the exact bytes it receives and sends on stdio.

``python tee.py RECORD_DIR COMMAND [ARGS]...`` writes ``RECORD_DIR/to_server.bin`` (what
reached the command's stdin) and ``RECORD_DIR/from_server.bin`` (what it wrote to stdout);
its exit code is the command's.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path


def main() -> int:
    record = Path(sys.argv[1])
    child = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    child_in, child_out = child.stdin, child.stdout

    def upstream() -> None:
        with (record / "to_server.bin").open("ab") as log:
            while chunk := sys.stdin.buffer.read1(65536):
                log.write(chunk)
                log.flush()
                child_in.write(chunk)
                child_in.flush()
        child_in.close()

    threading.Thread(target=upstream, daemon=True).start()
    with (record / "from_server.bin").open("ab") as log:
        while chunk := child_out.read1(65536):
            log.write(chunk)
            log.flush()
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
