"""What the benchmark scripts share: running each mode in its own process and printing the table."""

import json
import resource
import subprocess
import sys


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_modes(module: str, modes: list[str], arguments: list[str]) -> list[dict]:
    """Run ``python -m module --single MODE`` per mode, so each peak memory figure is that mode's alone."""
    results = []
    for mode in modes:
        print(f"running {mode} ...", file=sys.stderr, flush=True)
        completed = subprocess.run(
            [sys.executable, "-m", module, "--single", mode, *arguments], capture_output=True, text=True
        )
        lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        if completed.returncode or not lines:
            sys.stderr.write(completed.stderr[-3000:])
            raise SystemExit(f"error: mode {mode} failed (exit {completed.returncode})")
        results.append(json.loads(lines[-1]))
    return results


def print_table(columns: list[tuple[str, str, str]], rows: list[dict]) -> None:
    """A Markdown table: columns are (key, heading, format)."""
    print("| " + " | ".join(heading for _, heading, _ in columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        cells = [format(row[key], fmt) if row.get(key) is not None else "" for key, _, fmt in columns]
        print("| " + " | ".join(cells) + " |")
