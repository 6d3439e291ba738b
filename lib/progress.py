"""A dependency-free progress line for loops that take more than a few seconds: one line per item in a log file
(``nohup = True``, a job's output), one line redrawn in a terminal. (``rich.progress``, which Keras brings, draws
nothing into a log until the loop ends: a user following a long run's log would see no progress.)"""

import sys
import time


def progress(items, label: str, stream=None):
    """Yield from ``items`` while printing 'label i/n, elapsed, remaining' after each one."""
    items = list(items)
    stream = stream or sys.stdout
    start = time.perf_counter()
    for index, item in enumerate(items, 1):
        yield item
        elapsed = time.perf_counter() - start
        remaining = elapsed / index * (len(items) - index)
        end = "\n" if index == len(items) or not stream.isatty() else "\r"
        print(
            f"{label} {index}/{len(items)}  {elapsed:6.1f} s elapsed, ~{remaining:5.0f} s left",
            end=end,
            file=stream,
            flush=True,
        )
