"""How long `interceptor --help` takes, next to the cost of starting its interpreter with click alone.

`interceptor --help` (and a mistyped command, which prints the same list) should cost a Python start,
not the import of every command's module. In the same run, alternating, each measured `--runs` times
in its own process:

- baseline: `python -c "import click"` with the same interpreter, the floor for any click command;
- `interceptor --help`: the command list;
- `interceptor --version`.

Medians in milliseconds and their ratio to the baseline. `--interceptor PATH` measures another
checkout's command (e.g. the main branch's) in the same run, for a before/after figure.

    .venv/bin/python bench/cli_startup.py [--runs 30] [--interceptor /path/to/other/.venv/bin/interceptor]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(sys.executable).parent / "interceptor"


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--interceptor", type=Path, action="append", default=[],
                        help="another `interceptor` to measure alongside this checkout's")
    arguments = parser.parse_args()
    commands = {"baseline: python -c 'import click'": [sys.executable, "-c", "import click"],
                "interceptor --help": [str(HERE), "--help"], "interceptor --version": [str(HERE), "--version"]}
    for other in arguments.interceptor:
        commands[f"{other} --help"] = [str(other), "--help"]
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(arguments.runs):  # alternating, so a busy moment of the machine hits every command
        for name, command in commands.items():
            samples[name].append(timed(command))
    baseline = statistics.median(samples["baseline: python -c 'import click'"])
    print(f"{'command':<60} {'median ms':>10} {'ratio':>7}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<60} {median:>10.1f} {median / baseline:>7.2f}")


if __name__ == "__main__":
    main()
