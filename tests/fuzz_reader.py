"""Worker of tests/test_fuzz.py: reads the fuzzed cloud files named on stdin, one per line, with one reader.

Usage: ``python fuzz_reader.py {whole|chunked} SECONDS MEGABYTES``. The process limits its own
address space to MEGABYTES and arms a SECONDS alarm before each case (the alarm's default action
kills the process, so a hang inside native code is caught too). For each case it prints
``start <path>`` before reading and ``done <outcome> <detail>`` after, flushed, where outcome is
``ok`` (with the points read and the header's count), ``pcseg`` (a PcsegError) or ``foreign``
(any other exception). A case that kills the process leaves a ``start`` line without its ``done``.
"""

import re
import resource
import signal
import struct
import sys
import warnings


def declared_count(path: str) -> int:
    """The point count the file's header declares, as read from its bytes (-1 when unknown)."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head.startswith(b"LASF") and len(head) >= 375:
        legacy = struct.unpack_from("<I", head, 107)[0]
        wide = struct.unpack_from("<Q", head, 247)[0] if head[25] >= 4 else 0
        return wide or legacy
    if head.startswith(b"LASF") and len(head) >= 111:
        return struct.unpack_from("<I", head, 107)[0]
    match = re.search(rb"element vertex (\d+)", head)
    return int(match.group(1)) if match else -1


def read(kind: str, path: str) -> int:
    """Points read from ``path`` by the whole-file or the chunked reader."""
    from pcseg.io import read_cloud
    from pcseg.io.chunked import open_chunked

    if kind == "whole":
        return len(read_cloud(path))
    reader = open_chunked(path)
    total = sum(len(chunk.xyz) for chunk in reader.chunks(size=4096))
    if total != reader.count:
        raise AssertionError(f"the chunks held {total} points, the reader's count says {reader.count}")
    return total


def main() -> None:
    kind, seconds, megabytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_AS, (megabytes << 20, megabytes << 20))
    from pcseg.errors import PcsegError
    import pcseg.io.chunked  # noqa: F401  (imports outside the timed cases)

    for line in sys.stdin:
        path = line.strip()
        print(f"start {path}", flush=True)
        signal.alarm(seconds)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                count = read(kind, path)
            short_warned = any("could be read" in str(w.message) for w in caught)
            outcome = f"ok {count} {declared_count(path)} {int(short_warned)}"
        except PcsegError as exc:
            text = str(exc)
            outcome = f"pcseg {int(chr(10) in text)} {text[:200]!r}"
        except BaseException as exc:  # noqa: B902 - every other failure is what the fuzz test counts
            outcome = f"foreign {type(exc).__name__}: {str(exc)[:200]!r}"
        signal.alarm(0)
        print(f"done {outcome}", flush=True)


if __name__ == "__main__":
    main()
