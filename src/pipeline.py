"""The threaded pipeline that keeps the network busy: one thread reads and prepares the next photographs and a pool
of writers finishes the previous ones while the network runs (decoding, OpenCV, PNG encoding and the
measurements release the GIL). At most PREFETCH photographs wait for the network and MAX_FINISHING for the
writers, so memory stays bounded whatever their number.
"""

import collections
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lib.errors import UserError
from lib.imageio import STDERR_LOCK
from lib.progress import progress

PREFETCH = 2  # photographs read ahead of the network
WRITERS = 2  # threads finishing photographs (maps, measurements, PNGs)
MAX_FINISHING = 3  # photographs handed to the writers and not yet written; beyond it the network waits


def report(message) -> None:
    with STDERR_LOCK:  # the reading thread may have sent stderr to /dev/null for a moment
        print(f"error: {message}", file=sys.stderr, flush=True)


def run_pipeline(images: list[Path], load, predict, finish, record) -> int:
    """Read ahead, predict and finish ``images``, calling ``record(row)`` for each one done; returns how many
    failed (each reported on one line).

    ``load(path)`` runs on the reading thread, the network (``predict(photo)``) on this one,
    ``finish(photo, probability)`` on the writers. On an interruption nothing more is read, the photographs the
    network has done are finished (a second or two) and recorded, and the interruption goes on.
    """
    failures = 0

    def collect(path: Path, future) -> None:
        nonlocal failures
        try:
            record(future.result())
        except UserError as error:
            report(error)
            failures += 1
        except OSError as error:
            report(f"{path}: cannot write the results ({error.strerror or error}); check the output folder")
            failures += 1

    with ThreadPoolExecutor(1, "read") as reader, ThreadPoolExecutor(WRITERS, "write") as writers:
        waiting = iter(images[PREFETCH:])
        reading = collections.deque((path, reader.submit(load, path)) for path in images[:PREFETCH])
        finishing = collections.deque()
        try:
            for _ in progress(images, "segmented"):
                path, future = reading.popleft()
                if (following := next(waiting, None)) is not None:
                    reading.append((following, reader.submit(load, following)))
                try:
                    photo = future.result()
                except UserError as error:
                    report(error)
                    failures += 1
                    continue
                start = time.perf_counter()
                probability = predict(photo)
                photo.seconds += time.perf_counter() - start
                finishing.append((path, writers.submit(finish, photo, probability)))
                while finishing and (finishing[0][1].done() or len(finishing) > MAX_FINISHING):
                    collect(*finishing.popleft())
            while finishing:
                collect(*finishing.popleft())
        finally:  # interrupted: read no more, and let the writers finish what the network has done
            for _, future in reading:
                future.cancel()
            writers.shutdown(wait=True)
            while finishing:
                collect(*finishing.popleft())
    return failures
