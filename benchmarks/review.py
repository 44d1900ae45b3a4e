"""Wall time of `reviewflow review` on this project against running its tools by hand, one by one.

    python benchmarks/review.py                        # tests/unit as the tests (~8 s a review)
    python benchmarks/review.py --tests tests/cli      # a test run of ~55 s instead
    python benchmarks/review.py --repeat 5 --wait-idle 1200 --keep   # idle CPUs; keep the files

What is reviewed: a throwaway clone of this repository (`git clone`, its committed HEAD) with a
synthetic change on top, one commit that appends a small private function to `--files` (20)
Python files picked evenly from the sorted tracked `src/**.py` and `tests/**.py` (no
`__init__.py`). The review's base is the clone's original HEAD. Every process gets
PYTHONPATH=<clone>/src: the reviewflow doing the review is the one under review, and the
tests import the code they test (coverage measures `--source=<clone>`).

The template (written to the temp dir) is the shipped `security` template, so security and
secrets always run next to the pr checks, with the test command narrowed:

    name: benchmark
    extends: security
    checks:
      tests: {options: {command: [pytest, -q, <--tests>]}}

Per repeat (each measurement goes first in turn; one untimed warm-up round before):

- review: `python -m reviewflow review <clone> --base <base> --template <file> --db <tmp>
  --out <tmp> --run-id bench-N`, run from a temp folder, timed from spawn to exit.
- by hand: the argv each check runs, one after another, each in its own process (a person at a
  shell): syntax (ast.parse of the files in a fresh python), `ruff check --output-format=json`,
  `ruff format --check --diff`, `coverage run -m pytest -q <--tests>` + `coverage combine` +
  `coverage json`, `bandit -f json`, `detect-secrets scan FILES`. pip-audit is not run by hand:
  the `dependencies` check skips because no dependency file changed. The serial sum is the sum
  of these steps.
- two shells: the same steps at once in two threads, no engine: the review's critical path
  (syntax, ruff check, coverage run/combine/json) in one, ruff format, bandit and
  detect-secrets in the other. What running the checks in parallel can gain on this machine.
- longest tool chain: the longest path through the DAG of checks (needs from the run's stored
  spec), weighted by each check's `duration_s` from report.json. Overhead = review wall time
  minus that chain. The overhead is split with the run's stored timestamps (same clock,
  time.time()): spawn -> run created (interpreter start, imports, template, git diff, spec,
  submit), the `change` task, gaps between tasks on the critical path, the `summary` task (the
  reports), run finished -> process exit.
- CPU: user+sys of each process tree (RUSAGE_CHILDREN before and after); other processes' CPU
  meanwhile = the machine's busy time (/proc/stat) minus ours, to spot a disturbed round.
  `--wait-idle SECONDS` waits for idle CPUs before each measurement.
- two CPU-bound processes: a pure-Python loop alone, then two at once (before and after): on
  two free cores the pair has 2.0x the throughput of one.
- process start: `python -m reviewflow --version` and `python -c pass`, 5 times each.

- cold review and warm re-review: the review above runs cold (the clone's .reviewflow/cache
  removed: no cached check result, no coverage map), so its tests check runs the whole suite
  and the map is made (`impacted: map` in the template; `--no-impact` leaves it out): by a
  background recorder after the verdict (`--record-map background`, the default: the
  benchmark waits for it, untimed, and reports how long after the review's exit the map was
  there) or inside the review's own run (`--record-map inline`). The warm
  round reviews the benchmark change cold once more (untimed), commits a one-line change to
  one of the changed files on top, and times the review of that (cached checks reused, the
  tests check running the tests the map selects).
- pre-commit: `pre-commit run --config <tmp> --files <changed files>`, every by-hand step as a
  local hook (`language: system`, the same argv; per-file tools get pre-commit's file list).
- `--mutation`: benchmarks/mutation.py on the same tests (the impact selection's catch rate).

Stdout gets one JSON line per measurement, then a table (median and min over the repeats),
then the issue's targets (cold <= 0.9x serial by hand, warm <= 0.25x cold, overhead <= 0.5 s,
run created <= 0.3 s after spawn, 20/20 mutants caught), each with its measured value.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
PY = sys.executable

SNIPPET = '''

def _review_benchmark_{n}(values: list[int]) -> int:
    """Added by benchmarks/review.py: a small change for the review to look at."""
    total = 0
    for value in values:
        total += value * 2
    return total
'''

TEMPLATE = """\
# benchmarks/review.py: the shipped security template (security, secrets and dependencies
# always on) with the test command narrowed.
name: benchmark
description: security review with a narrowed test command (benchmark)
extends: security
checks:
  tests:
    options: {{command: {command}, impacted: {impacted}}}
"""


# ---------------------------------------------------------------------------------- setup


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def pick_files(clone: Path, count: int) -> list[str]:
    tracked = git(clone, "ls-files", "--", "src/*.py", "tests/*.py").splitlines()
    tracked = sorted(p for p in tracked if not p.endswith("__init__.py"))
    if count > len(tracked):
        raise SystemExit(f"--files {count}: only {len(tracked)} Python files to change")
    if count == 1:
        return [tracked[0]]
    step = (len(tracked) - 1) / (count - 1)
    return [tracked[round(i * step)] for i in range(count)]


@dataclass
class Setup:
    tmp: Path
    clone: Path
    base: str
    head: str
    files: list[str]
    template: Path
    tests: list[str]
    env: dict[str, str]
    workdir: Path
    counter: int = 0
    info: dict[str, Any] = field(default_factory=dict)


def make_setup(tmp: Path, repo: Path, count: int, tests: list[str], impact: bool = True) -> Setup:
    clone = tmp / "repo"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    base = git(clone, "rev-parse", "HEAD")
    files = pick_files(clone, count)
    for n, rel in enumerate(files, start=1):
        path = clone / rel
        text = path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):
            text += "\n"
        path.write_text(text + SNIPPET.format(n=n), encoding="utf-8")
    git(clone, "checkout", "-q", "-b", "benchmark-change")
    git(clone, "add", "--", *files)
    git(
        clone,
        "-c",
        "user.name=benchmark",
        "-c",
        "user.email=benchmark@invalid",
        "commit",
        "-q",
        "-m",
        f"benchmark change: a small function appended to {len(files)} files",
    )
    head = git(clone, "rev-parse", "HEAD")
    own = project_tests_command(clone)
    if own is not None and own[1:] != ["-q", *tests]:
        # The project's [tool.reviewflow.review.checks.tests] wins over the template: the
        # review runs that command, so the tools by hand run it too.
        print(f"note: the project's own tests command {own} replaces --tests", file=sys.stderr)
        tests = [a for a in own[1:] if a != "-q"]
    template = tmp / "benchmark.yaml"
    command = json.dumps(["pytest", "-q", *tests])
    template.write_text(
        TEMPLATE.format(command=command, impacted="map" if impact else "false"), encoding="utf-8"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(clone / "src"), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    workdir = tmp / "cwd"
    workdir.mkdir()
    lines = sum(1 for _ in SNIPPET.strip("\n").splitlines())
    setup = Setup(tmp, clone, base, head, files, template, tests, env, workdir)
    setup.info = {
        "repo": str(repo),
        "base": base,
        "base_subject": git(clone, "log", "-1", "--format=%s", base),
        "files": files,
        "lines_added_per_file": lines,
        "template": template.read_text(encoding="utf-8"),
    }
    return setup


def project_tests_command(clone: Path) -> list[str] | None:
    """The pytest command the project's pyproject.toml sets for the review's tests check."""
    try:
        data = tomllib.loads((clone / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    node: Any = data
    for key in ("tool", "reviewflow", "review", "checks", "tests", "options", "command"):
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, list) and node[:1] == ["pytest"]:
        return [str(a) for a in node]
    return None


# ---------------------------------------------------------------------------------- timing


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Percent of all CPUs busy over `seconds` (from /proc/stat), None where there is none."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:8]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError):
        return None
    total = total1 - total0
    return 100.0 * (total - (idle1 - idle0)) / total if total else None


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat ((0, 0) without).

    Busy is user + nice + system + irq + softirq; steal is time the hypervisor gave the vCPUs
    to someone else.
    """
    try:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / tick, v[7] / tick


def wait_idle(limit: float) -> None:
    """Wait (at most `limit` seconds) until the CPUs are < 8% busy in 3 seconds in a row."""
    deadline = time.monotonic() + limit
    calm, said = 0, False
    while calm < 3 and time.monotonic() < deadline:
        busy = cpu_busy()
        if busy is None:
            return
        calm = calm + 1 if busy < 8 else 0
        if calm == 0 and not said:
            print(f"waiting for idle CPUs ({busy:.0f}% busy)...", file=sys.stderr, flush=True)
            said = True
    if calm < 3:
        print(f"warning: CPUs still busy after {limit:g} s; going on", file=sys.stderr)


@dataclass
class Timed:
    wall: float
    cpu: float
    code: int
    stdout: str
    stderr: str
    started: float  # time.time() just before the spawn
    ended: float
    foreign: float  # CPU seconds other processes used meanwhile (machine busy - ours)
    steal: float


def timed(argv: list[str], *, cwd: Path, env: dict[str, str]) -> Timed:
    cpu0 = children_cpu()
    busy0, steal0 = machine_cpu()
    started = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    ended = time.time()
    busy1, steal1 = machine_cpu()
    cpu = children_cpu() - cpu0
    return Timed(
        wall,
        cpu,
        proc.returncode,
        proc.stdout,
        proc.stderr,
        started,
        ended,
        max(0.0, busy1 - busy0 - cpu),
        steal1 - steal0,
    )


def longest_chain(
    durations: dict[str, float], needs: dict[str, list[str]]
) -> tuple[float, list[str]]:
    """The heaviest path through the DAG restricted to the tasks in `durations`."""
    memo: dict[str, tuple[float, list[str]]] = {}

    def best(name: str) -> tuple[float, list[str]]:
        if name not in memo:
            before = [best(d) for d in needs.get(name, []) if d in durations]
            prev = max(before, key=lambda b: b[0], default=(0.0, []))
            memo[name] = (prev[0] + durations[name], [*prev[1], name])
        return memo[name]

    return max((best(n) for n in durations), key=lambda b: b[0], default=(0.0, []))


# ---------------------------------------------------------------------------------- review


def run_review(s: Setup, *, warm: bool = False) -> dict[str, Any]:
    """One review of the clone: cold (its .reviewflow/cache removed first: no cached check
    result, no coverage map) or warm (whatever the reviews before left there)."""
    if not warm:
        shutil.rmtree(s.clone / ".reviewflow" / "cache", ignore_errors=True)
    s.counter += 1
    rid = f"bench-{s.counter}"
    out, db = s.tmp / f"out-{s.counter}", s.tmp / f"db-{s.counter}.sqlite"
    argv = [
        PY,
        "-m",
        "reviewflow",
        "review",
        str(s.clone),
        "--base",
        s.base,
        "--template",
        str(s.template),
        "--db",
        str(db),
        "--out",
        str(out),
        "--run-id",
        rid,
    ]
    t = timed(argv, cwd=s.workdir, env=s.env)
    recorder = wait_for_map(s.clone, t.ended)
    report_path = out / "report.json"
    if t.code not in (0, 1) or not report_path.is_file():
        raise SystemExit(f"review failed (exit {t.code}):\n{t.stdout}\n{t.stderr}")
    report = json.loads(report_path.read_text(encoding="utf-8"))

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        created, r_start, r_end, spec_text = con.execute(
            "SELECT created_at, started_at, finished_at,"
            " coalesce((SELECT s.spec FROM run_specs s WHERE s.run_id = runs.run_id), spec)"
            " FROM runs WHERE run_id = ?",
            (rid,),
        ).fetchone()
        rows = con.execute(
            "SELECT name, started_at, finished_at FROM tasks WHERE run_id = ?", (rid,)
        ).fetchall()
    finally:
        con.close()
    spec = json.loads(spec_text)
    needs = {name: list(body.get("needs") or []) for name, body in spec["tasks"].items()}
    task_s = {
        name: (end - start) for name, start, end in rows if start is not None and end is not None
    }
    checks = report["checks"]
    check_s = {n: float(c["duration_s"] or 0.0) for n, c in checks.items()}
    chain_s, chain = longest_chain(check_s, needs)
    full_s, full = longest_chain(task_s, needs)
    first_start = min(start for _, start, _ in rows if start is not None)
    return {
        "wall_s": t.wall,
        "cpu_s": t.cpu,
        "foreign_cpu_s": t.foreign,
        "steal_s": t.steal,
        "exit": t.code,
        "verdict": report["verdict"],
        "reasons": report["reasons"],
        "changed_files": len(report["change"]["files"]),
        "checks": {
            n: {
                "status": c["status"],
                "duration_s": c["duration_s"],
                "summary": c["summary"],
                "cached": bool(c.get("cached")),
            }
            for n, c in checks.items()
        },
        "map_recorder": recorder,
        "tool_chain_s": chain_s,
        "tool_chain": chain,
        "overhead_s": t.wall - chain_s,
        "task_chain_s": full_s,
        "task_chain": full,
        "split": {
            "spawn_to_run_created_s": created - t.started,
            "run_created_to_first_task_s": first_start - created,
            "change_task_s": task_s.get("change", 0.0),
            "summary_task_s": task_s.get("summary", 0.0),
            # inside the run, what the critical path (change .. summary) does not explain
            "gaps_on_critical_path_s": (r_end - (r_start or first_start)) - full_s,
            "run_finished_to_exit_s": t.ended - r_end,
        },
    }


def wait_for_map(clone: Path, exited: float, limit: float = 3600.0) -> dict[str, Any] | None:
    """Untimed: wait for the coverage map the review records in the background after its
    verdict (`record_map: background`), so no recorder runs beside the next measurement.
    What it took: seconds from the review's exit until the map was stored, and its run."""
    folder = clone / ".reviewflow" / "cache" / "testmap"
    deadline = time.monotonic() + limit
    while True:
        docs = []
        for path in folder.glob("*.recording.json"):
            try:
                docs.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        if not docs:
            return None
        gone = [d for d in docs if d.get("finished_at") is None and not _recorder_alive(d)]
        if gone:  # it will never finish: say so now, not after `limit`
            raise SystemExit(f"the coverage map recorder ended without a result: {gone}")
        if all(d.get("finished_at") is not None for d in docs):
            d = max(docs, key=lambda d: d["finished_at"])
            return {
                "result": d.get("result"),
                "recording_s": d["finished_at"] - (d.get("started_at") or d["finished_at"]),
                "map_after_exit_s": d["finished_at"] - exited,
            }
        if time.monotonic() > deadline:
            raise SystemExit(f"the coverage map recorder did not finish in {limit:.0f} s: {docs}")
        time.sleep(0.2)


def _recorder_alive(doc: dict[str, Any]) -> bool:
    """A recorder that may still finish: its process runs, or it was requested moments ago
    (testmap_record.STARTING). One that could not start (it could not import reviewflow) or
    died (killed, out of memory) never writes `finished_at`."""
    pid = doc.get("pid")
    if pid is None:
        return time.time() - float(doc.get("requested_at") or 0) < 60.0
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


# ---------------------------------------------------------------------------------- by hand

CHAIN_STEPS = (
    "syntax (ast.parse)",
    "ruff check",
    "coverage run -m pytest",
    "coverage combine",
    "coverage json",
)


def bandit_config(root: Path) -> list[str]:
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return []
    return ["-c", str(root / "pyproject.toml")] if "bandit" in data.get("tool", {}) else []


Step = tuple[str, list[str], dict[str, str]]


def starts_xdist(root: Path) -> bool:
    """Whether the project's pytest addopts start pytest-xdist workers (`-n`/--numprocesses)."""
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    opts = data.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("addopts", "")
    args = opts.split() if isinstance(opts, str) else [str(a) for a in opts]
    return any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in args)


def hand_steps(s: Setup) -> list[Step]:
    """The checks' tools with the checks' arguments (a fresh coverage data folder each time)."""
    root, files = s.clone, s.files
    py_files = [f for f in files if f.endswith(".py")]
    s.counter += 1
    cov_dir = s.tmp / f"cov-{s.counter}"
    cov_dir.mkdir()
    data, report = cov_dir / ".coverage", cov_dir / "coverage.json"
    test_env = {**s.env, "PYTHONDONTWRITEBYTECODE": "1", "COVERAGE_PROCESS_START": ""}
    pytest_extras = ["-p", "no:cacheprovider", "-rfE"]
    if find_spec("pytest_cov") is not None:
        pytest_extras.append("--no-cov")
    if starts_xdist(root):
        # The project's addopts start pytest-xdist workers, which `coverage run` does not
        # follow: without -n 0 it would measure no test at all (an empty report), a faster
        # run than any that gives the review's information. The tests check does the same.
        pytest_extras += ["-n", "0"]
    parse = (
        "import ast, sys\nfor f in sys.argv[1:]:\n    ast.parse(open(f, 'rb').read(), filename=f)"
    )
    return [
        ("syntax (ast.parse)", [PY, "-c", parse, *py_files], s.env),
        (
            "ruff check",
            [
                PY,
                "-m",
                "ruff",
                "check",
                "--output-format=json",
                "--no-cache",
                "--no-fix",
                "--force-exclude",
                "--exit-zero",
                "--",
                *py_files,
            ],
            s.env,
        ),
        (
            "ruff format --check",
            [
                PY,
                "-m",
                "ruff",
                "format",
                "--check",
                "--diff",
                "--no-cache",
                "--force-exclude",
                "--",
                *py_files,
            ],
            s.env,
        ),
        (
            "coverage run -m pytest",
            [
                PY,
                "-m",
                "coverage",
                "run",
                "--parallel-mode",
                f"--data-file={data}",
                f"--source={root}",
                "-m",
                "pytest",
                "-q",
                *s.tests,
                *pytest_extras,
            ],
            test_env,
        ),
        ("coverage combine", [PY, "-m", "coverage", "combine", f"--data-file={data}"], test_env),
        (
            "coverage json",
            [
                PY,
                "-m",
                "coverage",
                "json",
                f"--data-file={data}",
                "-o",
                str(report),
                "--ignore-errors",
            ],
            test_env,
        ),
        (
            "bandit",
            [PY, "-m", "bandit", "-f", "json", "-q", *bandit_config(root), "--", *py_files],
            s.env,
        ),
        ("detect-secrets scan", [str(Path(PY).parent / "detect-secrets"), "scan", *files], s.env),
    ]


def run_by_hand(s: Setup) -> dict[str, Any]:
    """The checks' tools one after another, each in its own process."""
    out: dict[str, Any] = {"steps": {}, "exit": {}}
    cpu = foreign = steal = 0.0
    t0 = time.perf_counter()
    for name, argv, env in hand_steps(s):
        t = timed(argv, cwd=s.clone, env=env)
        if t.code not in (0, 1):
            print(f"warning: {name} exited with {t.code}: {t.stderr[-500:]}", file=sys.stderr)
        out["steps"][name] = t.wall
        out["exit"][name] = t.code
        cpu, foreign, steal = cpu + t.cpu, foreign + t.foreign, steal + t.steal
    out["total_wall_s"] = time.perf_counter() - t0
    out["serial_sum_s"] = sum(out["steps"].values())
    # The same chain as the review's critical path (syntax -> lint -> tests), by hand: no
    # schedule on any number of cores can finish the review before this.
    out["chain_s"] = sum(out["steps"][n] for n in CHAIN_STEPS)
    out["cpu_s"] = cpu
    out["foreign_cpu_s"] = foreign
    out["steal_s"] = steal
    return out


def run_two_shells(s: Setup) -> dict[str, Any]:
    """The same tools in two shells at once, no engine: the chain (syntax, ruff check, the
    tests) in one, ruff format, bandit and detect-secrets in the other. What running the
    checks in parallel gains on this machine when scheduling them costs nothing."""
    steps = hand_steps(s)
    groups = [
        [st for st in steps if st[0] in CHAIN_STEPS],
        [st for st in steps if st[0] not in CHAIN_STEPS],
    ]
    ends: list[float] = [0.0, 0.0]

    def shell(i: int) -> None:
        for _, argv, env in groups[i]:
            subprocess.run(argv, cwd=s.clone, env=env, capture_output=True, check=False)
        ends[i] = time.perf_counter()

    cpu0 = children_cpu()
    busy0, steal0 = machine_cpu()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=shell, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    busy1, steal1 = machine_cpu()
    return {
        "wall_s": wall,
        "chain_shell_s": ends[0] - t0,
        "other_shell_s": ends[1] - t0,
        "cpu_s": cpu,
        "foreign_cpu_s": max(0.0, busy1 - busy0 - cpu),
        "steal_s": steal1 - steal0,
    }


def run_warm(s: Setup) -> dict[str, Any]:
    """A re-review after a one-line change: a cold review of the benchmark change first
    (untimed: it leaves the check cache and the coverage map), then one more commit that
    changes one line of one changed file, reviewed with what the first review left."""
    git(s.clone, "reset", "-q", "--hard", s.head)
    run_review(s)
    path = s.clone / s.files[0]
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("total += value * 2", "total += value * 3", 1), encoding="utf-8")
    git(s.clone, "add", "--", s.files[0])
    git(
        s.clone,
        "-c",
        "user.name=benchmark",
        "-c",
        "user.email=benchmark@invalid",
        "commit",
        "-q",
        "-m",
        "benchmark: one line changed",
    )
    try:
        return run_review(s, warm=True)
    finally:
        git(s.clone, "reset", "-q", "--hard", s.head)


PRE_COMMIT = """\
# benchmarks/review.py: the review's tools as local pre-commit hooks (no hook repository to
# fetch), in the order the review's checks run them.
repos:
  - repo: local
    hooks:
{hooks}
"""


def pre_commit_config(s: Setup) -> Path:
    """A .pre-commit-config.yaml with one local hook per by-hand step (same argv)."""
    hooks = []
    for name, argv, _env in hand_steps(s):
        # The steps name their files; pre-commit passes them itself to the per-file hooks.
        per_file = name in ("syntax (ast.parse)", "ruff check", "ruff format --check", "bandit")
        if per_file:
            argv = argv[: argv.index("--") + 1] if "--" in argv else argv[:3]
        elif name == "detect-secrets scan":
            argv, per_file = argv[:2], True
        hook_id = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        hooks.append(
            f"      - id: {hook_id}\n"
            f"        name: {json.dumps(name)}\n"
            f"        entry: {json.dumps(shlex.join(argv))}\n"
            "        language: system\n"
            f"        pass_filenames: {'true' if per_file else 'false'}\n"
            f"        always_run: {'false' if per_file else 'true'}\n"
            + ("        types: [python]\n" if per_file and name != "detect-secrets scan" else "")
        )
    config = s.tmp / "pre-commit-config.yaml"
    config.write_text(PRE_COMMIT.format(hooks="".join(hooks)), encoding="utf-8")
    return config


def run_pre_commit(s: Setup) -> dict[str, Any]:
    """`pre-commit run --files <changed files>` with the same tools as local hooks."""
    exe = Path(PY).parent / "pre-commit"
    if not exe.is_file():
        return {"wall_s": None, "why": "pre-commit is not installed (pip install pre-commit)"}
    config = pre_commit_config(s)
    env = {**s.env, "PRE_COMMIT_HOME": str(s.tmp / "pre-commit-home"), "SKIP": ""}
    env.update(PYTHONDONTWRITEBYTECODE="1", COVERAGE_PROCESS_START="")
    t = timed(
        [str(exe), "run", "--config", str(config), "--files", *s.files],
        cwd=s.clone,
        env=env,
    )
    return {"wall_s": t.wall, "cpu_s": t.cpu, "exit": t.code, "foreign_cpu_s": t.foreign}


def run_mutation(tests: list[str]) -> dict[str, Any]:
    """benchmarks/mutation.py's summary: mutants caught by the impact selection."""
    argv = [PY, str(HERE / "mutation.py"), "--json", "--tests", " ".join(tests)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr or done.stdout)[-2000:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


SPIN = (
    "import time\nt = time.perf_counter()\ns = 0\nfor i in range(25_000_000):\n    s += i\n"
    "print(time.perf_counter() - t)"
)


def two_cores() -> dict[str, Any]:
    """How much a second CPU-bound process slows the first: a pure-Python loop alone, then two
    at once. On two free cores both take as long as one; a shared or throttled machine shows
    a slowdown, which caps what running checks in parallel can gain."""

    def spawn() -> subprocess.Popen[str]:
        return subprocess.Popen([PY, "-c", SPIN], stdout=subprocess.PIPE, text=True)

    alone = []
    for _ in range(2):
        proc = spawn()
        alone.append(float(proc.communicate()[0]))
    pair = [spawn(), spawn()]
    together = [float(p.communicate()[0]) for p in pair]
    return {
        "alone_s": min(alone),
        "together_s": together,
        "slowdown": max(together) / min(alone),
        "throughput_of_two": 2 * min(alone) / max(together),
    }


def start_cost(s: Setup, times: int) -> dict[str, Any]:
    version = [
        timed([PY, "-m", "reviewflow", "--version"], cwd=s.workdir, env=s.env).wall
        for _ in range(times)
    ]
    bare = [timed([PY, "-c", "pass"], cwd=s.workdir, env=s.env).wall for _ in range(times)]
    return {"reviewflow_version_s": version, "python_pass_s": bare}


# ---------------------------------------------------------------------------------- report


def med_min(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), min(values)


def table(rows: list[tuple[str, str, str, str]], title: str) -> None:
    heads = ("measurement", "median", "min", "note")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        width = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
        print(title)
        print("  ".join(h.ljust(w) for h, w in zip(heads, width, strict=True)))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)))
        return
    t = Table(title=title)
    for h in heads:
        t.add_column(h, justify="right" if h in ("median", "min") else "left")
    for r in rows:
        t.add_row(*r)
    Console(file=sys.stdout, width=150).print(t)


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument(
        "--tests",
        default="tests/unit",
        help="what pytest runs, space-separated (default tests/unit)",
    )
    parser.add_argument("--files", type=int, default=20, help="Python files changed (20)")
    parser.add_argument("--repo", type=Path, default=PROJECT, help="repository to clone")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed round")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each measurement, wait up to SECONDS for idle CPUs (< 8%% busy 3 s)",
    )
    parser.add_argument(
        "--no-impact",
        action="store_true",
        help="the tests check without `impacted: map` (the whole suite every review)",
    )
    parser.add_argument(
        "--record-map",
        choices=("background", "inline"),
        default="background",
        help="where the tests check records its coverage map (REVIEWFLOW_RECORD_MAP; default"
        " background: after the verdict, waited for untimed before the next measurement)",
    )
    parser.add_argument(
        "--mutation",
        action="store_true",
        help="also run benchmarks/mutation.py on --tests (long: a whole suite, then 20 mutants)",
    )
    args = parser.parse_args()

    busy = cpu_busy()
    if busy is not None and busy > 8:
        print(
            f"warning: the CPUs were {busy:.0f}% busy over the last second; results on a busy"
            " machine are slower and noisier",
            file=sys.stderr,
        )
    tmp = Path(tempfile.mkdtemp(prefix="rfbench-review-"))
    try:
        s = make_setup(
            tmp, args.repo.resolve(), args.files, args.tests.split(), impact=not args.no_impact
        )
        s.env["REVIEWFLOW_RECORD_MAP"] = args.record_map
        emit(
            {
                "kind": "meta",
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "python": platform.python_version(),
                "nproc": os.cpu_count(),
                "platform": platform.platform(),
                "loadavg": os.getloadavg(),
                "cpu_busy_percent": busy,
                "repeat": args.repeat,
                "tests": s.tests,
                **s.info,
            }
        )
        cores = two_cores()
        emit({"kind": "cores", "when": "before", **cores})
        if not args.no_warmup:
            run_review(s)
            run_by_hand(s)
            run_two_shells(s)
            run_pre_commit(s)
        reviews: list[dict[str, Any]] = []
        hands: list[dict[str, Any]] = []
        shells: list[dict[str, Any]] = []
        commits: list[dict[str, Any]] = []
        warms: list[dict[str, Any]] = []
        for i in range(args.repeat):
            order = [
                ("review", run_review, reviews),
                ("by_hand", run_by_hand, hands),
                ("two_shells", run_two_shells, shells),
                ("pre_commit", run_pre_commit, commits),
                ("warm_review", run_warm, warms),
            ]
            n = len(order)
            for kind, fn, results in order[i % n :] + order[: i % n]:  # each first in turn
                if args.wait_idle:
                    wait_idle(args.wait_idle)
                result = fn(s)
                results.append(result)
                emit({"kind": kind, "round": i + 1, **result})
        mutation = run_mutation(s.tests) if args.mutation else None
        if mutation is not None:
            emit({"kind": "mutation", **mutation})
        start = start_cost(s, 5)
        emit({"kind": "start", **start})
        cores_after = two_cores()
        emit({"kind": "cores", "when": "after", **cores_after})
        emit({"kind": "meta", "name": "end", "loadavg": os.getloadavg()})
        summarize(reviews, hands, shells, start, s, [cores, cores_after])
        summarize_targets(reviews, hands, commits, warms, mutation)
    finally:
        if args.keep:
            print(f"kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def summarize(
    reviews: list[dict[str, Any]],
    hands: list[dict[str, Any]],
    shells: list[dict[str, Any]],
    start: dict[str, Any],
    s: Setup,
    cores: list[dict[str, Any]],
) -> None:
    def row(label: str, values: list[float], note: str = "") -> tuple[str, str, str, str]:
        m, lo = med_min(values)
        return (label, f"{m:.2f} s", f"{lo:.2f} s", note)

    wall = [r["wall_s"] for r in reviews]
    serial = [h["serial_sum_s"] for h in hands]
    chains = {" -> ".join(r["tool_chain"]) for r in reviews}
    rows = [
        row(
            "review wall time",
            wall,
            f"verdict {reviews[0]['verdict']}, {reviews[0]['changed_files']} files",
        ),
        row("by hand, serial sum", serial, f"{len(hands[0]['steps'])} tool runs"),
        (
            "review / serial",
            f"{statistics.median(wall) / statistics.median(serial):.2f}",
            f"{min(wall) / min(serial):.2f}",
            "ratio of medians; of mins",
        ),
        (
            "serial - review",
            f"{statistics.median(serial) - statistics.median(wall):.2f} s",
            "",
            "difference of medians",
        ),
        row(
            "by hand, syntax+lint+tests steps",
            [h["chain_s"] for h in hands],
            "floor for any schedule",
        ),
        row(
            "by hand, two shells at once",
            [x["wall_s"] for x in shells],
            "chain | format, bandit, detect-secrets; no engine",
        ),
        row("longest tool chain", [r["tool_chain_s"] for r in reviews], " | ".join(chains)),
        row("engine overhead", [r["overhead_s"] for r in reviews], "review wall - chain"),
    ]
    for key in reviews[0]["split"]:
        rows.append(
            row(f"  {key.removesuffix('_s').replace('_', ' ')}", [r["split"][key] for r in reviews])
        )
    rows.append(row("review CPU (user+sys)", [r["cpu_s"] for r in reviews], "whole process tree"))
    rows.append(row("by hand CPU (user+sys)", [h["cpu_s"] for h in hands]))
    rows.append(row("two shells CPU (user+sys)", [x["cpu_s"] for x in shells]))
    for label, runs in (("review", reviews), ("by hand", hands), ("two shells", shells)):
        foreign = [r["foreign_cpu_s"] for r in runs]
        rows.append(
            (
                f"other processes' CPU, {label}",
                f"{statistics.median(foreign):.2f} s",
                f"max {max(foreign):.2f} s",
                f"steal max {max(r['steal_s'] for r in runs):.2f} s; ~0 on an idle machine",
            )
        )
    rows.append(row("reviewflow --version", start["reviewflow_version_s"], "process start"))
    rows.append(row("python -c pass", start["python_pass_s"], "interpreter alone"))
    speed = [c["throughput_of_two"] for c in cores]
    rows.append(
        (
            "2 CPU-bound processes",
            f"{statistics.median(speed):.2f}x",
            f"{min(speed):.2f}x",
            "throughput of two vs one (before, after); 2.00x = two free cores",
        )
    )
    for name in reviews[0]["checks"]:
        status = reviews[0]["checks"][name]["status"]
        values = [float(r["checks"][name]["duration_s"] or 0.0) for r in reviews]
        rows.append(row(f"check {name}", values, f"in the review ({status})"))
    for name in hands[0]["steps"]:
        rows.append(row(f"by hand: {name}", [h["steps"][name] for h in hands]))
    table(
        rows,
        f"reviewflow review vs by hand ({len(reviews)} rounds; tests: "
        f"{' '.join(s.tests)}; {len(s.files)} files changed)",
    )


def summarize_targets(
    reviews: list[dict[str, Any]],
    hands: list[dict[str, Any]],
    commits: list[dict[str, Any]],
    warms: list[dict[str, Any]],
    mutation: dict[str, Any] | None,
) -> None:
    """The issue's targets, one line each: measured, target, met or not."""
    cold = statistics.median(r["wall_s"] for r in reviews)
    serial = statistics.median(h["serial_sum_s"] for h in hands)
    lines = [f"cold review / serial by hand: {cold / serial:.2f} (target <= 0.90)"]
    walls = [c["wall_s"] for c in commits if c.get("wall_s") is not None]
    if walls:
        pc = statistics.median(walls)
        lines.append(
            f"pre-commit, same tools as local hooks: {pc:.2f} s (cold review {cold:.2f} s)"
        )
    elif commits:
        lines.append(f"pre-commit: {commits[0].get('why')}")
    if warms:
        warm = statistics.median(w["wall_s"] for w in warms)
        cached = sorted(n for n, c in warms[0]["checks"].items() if c.get("cached"))
        tests = warms[0]["checks"].get("tests", {}).get("summary", "")
        lines.append(
            f"warm re-review after a one-line change: {warm:.2f} s = {warm / cold:.2f} x cold "
            f"(target <= 0.25); cached: {', '.join(cached) or 'none'}; tests: {tests}"
        )
    maps = [r["map_recorder"] for r in reviews if r.get("map_recorder")]
    if maps:
        after = statistics.median(m["map_after_exit_s"] for m in maps)
        took = statistics.median(m["recording_s"] for m in maps)
        lines.append(
            f"coverage map recorded in the background: ready {after:.2f} s after the cold "
            f"review's exit (its run {took:.2f} s; {maps[0]['result']})"
        )
    over = statistics.median(r["overhead_s"] for r in reviews)
    lines.append(f"engine overhead (wall - longest tool chain): {over:.2f} s (target <= 0.5)")
    created = statistics.median(r["split"]["spawn_to_run_created_s"] for r in reviews)
    lines.append(f"spawn -> run created: {created:.2f} s (target <= 0.3)")
    if mutation is not None:
        if "error" in mutation:
            lines.append(f"mutation benchmark failed: {mutation['error'][-300:]}")
        else:
            lines.append(
                f"mutants caught by the impact selection: {mutation['caught']}/"
                f"{mutation['mutants']} (target 20/20; {mutation['skipped']} skipped: "
                "the whole suite does not catch them either)"
            )
    print("\n".join(["targets:", *(f"  {ln}" for ln in lines)]), flush=True)


if __name__ == "__main__":
    main()
