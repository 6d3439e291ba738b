"""Speed and memory benchmarks: scripts that print figures, never timed assertions."""
