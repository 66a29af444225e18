"""Whole-process benchmark of weave and its comparison with Jsonnet, KCL and Jinja2; bench/run.sh runs it.

Prints one markdown report on stdout (progress goes to stderr): wall time, CPU time and peak RSS of
`weave validate` and `weave build` per topology size, the scaling ratios, a note on disk writes,
the time of each phase (from `cargo bench --bench phases -- --table --json`), and weave against
the peer programs of bench/peers/ on the same Kubernetes manifests. Only the standard library is
used here; the peers run in the Python that --peer-python names (bench/.venv).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
SEED = REPOSITORY / "fixtures" / "valid" / "seed-multi-cloud-values.yaml"
RUN_PEERS = REPOSITORY / "bench" / "peers" / "run_peers.py"

# Runs per size: more where a run takes milliseconds and noise matters, one at 50,000 agents.
REPETITIONS = {None: 20, 100: 10, 1_000: 5, 10_000: 3, 50_000: 1}
# The peers take seconds where weave takes a fraction of one: fewer runs, and none at 50,000.
PEER_REPETITIONS = {100: 5, 1_000: 3, 10_000: 3}
# Sizes at which each peer's objects are compared with weave's, field by field.
COMPARED_SIZES = {100, 1_000}
# Runs of the builds also timed writing to disk, by size.
DISK_REPETITIONS = {1_000: 3, 10_000: 2}
PEER_NAMES = {"jsonnet": "Jsonnet", "jrsonnet": "jrsonnet", "kcl": "KCL", "jinja2": "Jinja2"}
PEER_PACKAGES = {"jsonnet": "gojsonnet", "jrsonnet": "jrsonnet (cargo install)", "kcl": "kcl-lib", "jinja2": "jinja2"}
# Timed runs of each rebuild figure, by size.
# (fresh builds, every other measurement): a fresh build of 50,000 agents on a busy disk takes
# minutes, the one-agent change and the checks seconds.
REBUILD_REPETITIONS = {1_000: (5, 5), 10_000: (5, 5), 50_000: (1, 5)}


def log(message):
    print(message, file=sys.stderr, flush=True)


class Runs:
    """Repeated runs of one command: wall and CPU seconds, peak RSS in KiB, and how it ended."""

    def __init__(self):
        self.walls = []
        self.cpus = []
        self.peak_kib = 0
        self.failed = None
        self.outputs = []
        # Files and bytes in the output directory after the warm-up run, when there is one.
        self.files = None
        self.bytes = None

    def record(self, repetition, wall, cpu, code, errors):
        """Keeps one run's times (not the warm-up's, repetition 0); False once the command failed,
        with its last error line kept in `failed`."""
        if code != 0:
            self.failed = errors.strip().splitlines()[-1] if errors.strip() else f"exit {code}"
            return False
        if repetition:
            self.walls.append(wall)
            self.cpus.append(cpu)
        return True

    @property
    def wall(self):
        return statistics.median(self.walls) if self.walls else None

    @property
    def cpu(self):
        return statistics.median(self.cpus) if self.cpus else None


def gnu_time():
    """/usr/bin/time when it is GNU time (it has -f and -o), else None."""
    try:
        completed = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", os.devnull, "true"], capture_output=True)
    except OSError:
        return None
    return "/usr/bin/time" if completed.returncode == 0 else None


# The peak RSS of a process started from this script is measured through GNU time: the kernel counts
# in a process's peak the memory of the process it was forked from (this Python, tens of MiB) up to
# its exec, while GNU time is a small process of its own. Without it, the peak comes from wait4 and
# is at least this script's own.
TIME = gnu_time()


def stop(process_group):
    """Kills a run that went over its time, with whatever it started."""
    try:
        os.killpg(process_group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def plural(number, noun):
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def tree_size(directory):
    files = 0
    total = 0
    for root, _, names in os.walk(directory):
        for name in names:
            files += 1
            total += os.lstat(os.path.join(root, name)).st_size
    return files, total


def run_once(runs, command, out_parent, timeout, warm_up=False):
    """One run of COMMAND into RUNS. `{out}` in the command becomes a fresh directory under
    OUT_PARENT, removed after the run, outside the timing.

    The warm-up run is not timed: it brings the program and its input into the page cache, gives
    the peak RSS (run under GNU time) and the size of the output. The timed runs start the command
    directly, so that nothing but the command is in their time."""
    work = Path(tempfile.mkdtemp(prefix="run-", dir=out_parent)) if out_parent else None
    arguments = [str(work / "out") if argument == "{out}" else argument for argument in command]
    with tempfile.NamedTemporaryFile(prefix="rss-") as peak:
        if warm_up and TIME:
            arguments = [TIME, "-f", "%M", "-o", peak.name, *arguments]
        # Output goes to files: a pipe nobody reads while the run lasts could fill and stall it.
        with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            started = time.perf_counter()
            process = subprocess.Popen(
                arguments, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, start_new_session=True
            )
            timer = threading.Timer(timeout, stop, (process.pid,))
            timer.start()
            _, wait_status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - started
            timer.cancel()
            process.returncode = os.waitstatus_to_exitcode(wait_status)
            stdout.seek(0)
            stderr.seek(0)
            output = stdout.read().decode(errors="replace")
            errors = stderr.read().decode(errors="replace").strip()
        peak_lines = Path(peak.name).read_text().split()
    try:
        if wall >= timeout and process.returncode != 0:
            runs.failed = f"stopped after {timeout:.0f} s"
        elif process.returncode != 0:
            last = errors.splitlines()[-1] if errors else ""
            runs.failed = f"exit {process.returncode}: {last}"
        elif warm_up:
            if TIME and peak_lines and peak_lines[-1].isdigit():
                runs.peak_kib = int(peak_lines[-1])
            if work is not None and (work / "out").is_dir():
                runs.files, runs.bytes = tree_size(work / "out")
        else:
            runs.walls.append(wall)
            runs.cpus.append(usage.ru_utime + usage.ru_stime)
            if not TIME:
                runs.peak_kib = max(runs.peak_kib, usage.ru_maxrss)
            runs.outputs.append(output)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def measure(command, repetitions, out_parent=None, timeout=300.0):
    """A warm-up run, then REPETITIONS timed runs of COMMAND."""
    runs = Runs()
    run_once(runs, command, out_parent, timeout, warm_up=True)
    for _ in range(repetitions):
        if runs.failed:
            break
        run_once(runs, command, out_parent, timeout)
    return runs


# ---------------------------------------------------------------------------------------- formatting


def milliseconds(seconds):
    if seconds is None:
        return "—"
    value = seconds * 1000
    if value < 1:
        return f"{value:.2f}"
    if value < 10:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def mebibytes(count):
    if not count:
        return "—"
    value = count / (1024 * 1024)
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def time_cell(runs):
    if runs is None:
        return "—"
    if runs.failed:
        return runs.failed
    return milliseconds(runs.wall)


def ratio(numerator, denominator, digits=1):
    if not numerator or not denominator:
        return "—"
    return f"{numerator / denominator:.{digits}f}"


def count(value):
    return "—" if value is None else f"{value:,}"


def size_label(agents):
    return "seed example" if agents is None else f"{agents:,} agents"


def input_size(path):
    size = path.stat().st_size
    if size < 10 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024:,.0f} KiB" if size < 1024 * 1024 else f"{size / (1024 * 1024):.1f} MiB"


def filesystem(path):
    try:
        output = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, check=True).stdout
        return output.splitlines()[1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


# ---------------------------------------------------------------------------------------- topologies


def generate(arguments, agents, sites):
    path = arguments.cache / f"topology-{agents}-agents-{sites}-sites.yaml"
    if not path.is_file():
        log(f"generating {path.name}")
        text = subprocess.run(
            [sys.executable, str(arguments.generator), "--agents", str(agents), "--sites", str(sites)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        partial = path.with_suffix(".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    return path


def seed_sites(arguments):
    """The number of sites of the seed example, from its graph (None when that fails)."""
    completed = subprocess.run([str(arguments.weave), "graph", str(SEED), "--format", "json"],
                               capture_output=True, text=True)
    try:
        return sum(1 for node in json.loads(completed.stdout)["nodes"] if node.get("kind") == "site")
    except (ValueError, KeyError, TypeError):
        return None


def topologies(arguments):
    """(agents, sites, path, note) for the seed and each size; agents is None for the seed."""
    found = [(None, seed_sites(arguments), SEED, None)]
    for agents in arguments.sizes:
        sites = max(1, agents // 100)
        path = generate(arguments, agents, sites)
        note = None
        if sites == 1 and subprocess.run([str(arguments.weave), "validate", str(path)], capture_output=True).returncode:
            # One site is one trust domain, and the generator turns federation on: weave rejects that
            # topology (E007), so the smallest size runs on two sites.
            path = generate(arguments, agents, 2)
            sites = 2
            note = "on 2 sites: on one site the generator's topology is rejected (federation on, one trust domain: E007)"
        found.append((agents, sites, path, note))
    return found


# ------------------------------------------------------------------------------------------- measure


def whole_process(arguments, inputs):
    weave = str(arguments.weave)
    rows = []
    for agents, sites, path, note in inputs:
        repetitions = REPETITIONS.get(agents, 3)
        log(f"whole process: {size_label(agents)}, {plural(repetitions, 'run')} each after a warm-up")
        validate = measure([weave, "validate", str(path)], repetitions, timeout=arguments.timeout)
        build = measure([weave, "build", str(path), "-o", "{out}"], repetitions, arguments.tmpfs, arguments.timeout)
        disk = None
        if arguments.disk and agents in DISK_REPETITIONS:
            disk_repetitions = DISK_REPETITIONS[agents]
            log(f"whole process: {size_label(agents)} on disk, {plural(disk_repetitions, 'run')} after a warm-up")
            disk = measure([weave, "build", str(path), "-o", "{out}"], disk_repetitions, arguments.disk,
                           arguments.timeout)
        rows.append({"agents": agents, "sites": sites, "path": path, "note": note, "runs": repetitions,
                     "validate": validate, "build": build, "disk": disk})
    return rows


def timed(command):
    """One run of COMMAND: (wall seconds, CPU seconds, exit code, stderr)."""
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, stdin=subprocess.DEVNULL)
        _, wait_status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    return wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(wait_status), errors


def one_agent_change(path):
    """A copy of the topology with one agent's replica count changed: a one-agent change."""
    text = path.read_text(encoding="utf-8")
    start = text.index("replicas: ") + len("replicas: ")
    end = text.index("\n", start)
    replicas = int(text[start:end])
    changed = path.with_name(path.stem + "-one-agent-changed.yaml")
    if not changed.is_file():
        changed.write_text(text[:start] + str(replicas % 5 + 1) + text[end:], encoding="utf-8")
    return changed


def rebuild(arguments, inputs):
    """Builds into an existing OUT on the ordinary file system: a fresh build for reference, a
    one-agent change, and `build --check` of an unchanged OUT."""
    weave = str(arguments.weave)
    rows = []
    for agents, sites, path, _ in inputs:
        if agents not in REBUILD_REPETITIONS or not arguments.disk:
            continue
        fresh_repetitions, repetitions = REBUILD_REPETITIONS[agents]
        log(f"rebuild: {size_label(agents)} on disk, {plural(fresh_repetitions, 'fresh run')} and "
            f"{plural(repetitions, 'run')} of each other after a warm-up")
        changed = one_agent_change(path)
        work = Path(tempfile.mkdtemp(prefix="rebuild-", dir=arguments.disk))
        out = work / "out"
        try:
            fresh = Runs()
            for repetition in range(fresh_repetitions + 1):
                shutil.rmtree(out, ignore_errors=True)
                subprocess.run(["sync"], check=False)
                if not fresh.record(repetition, *timed([weave, "build", str(path), "-o", str(out)])):
                    break
            change = Runs()
            written = []
            # OUT holds `path`'s build: each run is a one-agent change, back and forth.
            for repetition in range(repetitions + 1):
                topology = changed if repetition % 2 == 0 else path
                wall, cpu, code, errors = timed([weave, "build", str(topology), "-o", str(out)])
                if not change.record(repetition, wall, cpu, code, errors):
                    break
                if repetition:
                    found = re.search(r"(\d+) files written, (\d+) removed", errors)
                    if found:
                        written.append(int(found.group(1)) + int(found.group(2)))
            current = changed if repetitions % 2 == 0 else path
            check = Runs()
            for repetition in range(repetitions + 1):
                if not check.record(repetition, *timed([weave, "build", "--check", str(current), "-o", str(out)])):
                    break
            unchanged = Runs()
            for repetition in range(repetitions + 1):
                if not unchanged.record(repetition, *timed([weave, "build", str(current), "-o", str(out)])):
                    break
            files, _ = tree_size(out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        runs = str(repetitions) if fresh_repetitions == repetitions else f"{fresh_repetitions} / {repetitions}"
        rows.append({"agents": agents, "sites": sites, "runs": runs, "fresh": fresh, "change": change,
                     "check": check, "unchanged": unchanged, "touched": max(written) if written else None, "files": files})
    return rows


def phases(arguments, inputs):
    files = [str(path) for _, _, path, _ in inputs]
    log("phases: cargo bench --bench phases -- --table --json (compiles the bench first)")
    completed = subprocess.run(
        ["cargo", "bench", "--quiet", "--locked", "--bench", "phases", "--", "--table", "--json", *files],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, WEAVE_BENCH_OUT=str(arguments.tmpfs)),
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        last = completed.stderr.strip().splitlines()[-1:] or ["no output"]
        return None, f"the phase table failed: {last[0]}"
    return json.loads(lines[-1]), None


def peer_availability(arguments):
    """{peer: None when it can run, else why not}, for the peers asked for, with jinja2 added in
    place of any that cannot run."""
    wanted = list(arguments.peers)
    status = {}
    for peer in wanted:
        if peer in arguments.install_failed:
            status[peer] = f"pip could not install {PEER_PACKAGES[peer]} here"
            continue
        completed = subprocess.run(
            [str(arguments.peer_python), str(RUN_PEERS), "probe", peer], capture_output=True, text=True
        )
        status[peer] = None if completed.returncode == 0 else (completed.stderr.strip() or "it does not run")
    if any(status[peer] for peer in wanted) and "jinja2" not in status:
        completed = subprocess.run(
            [str(arguments.peer_python), str(RUN_PEERS), "probe", "jinja2"], capture_output=True, text=True
        )
        if "jinja2" in arguments.install_failed:
            status["jinja2"] = "pip could not install jinja2 here"
        else:
            status["jinja2"] = None if completed.returncode == 0 else (completed.stderr.strip() or "it does not run")
    return status


def peers(arguments, inputs, available):
    python = str(arguments.peer_python)
    weave = str(arguments.weave)
    rows = []
    for agents, sites, path, _ in inputs:
        if agents not in PEER_REPETITIONS:
            continue
        repetitions = PEER_REPETITIONS[agents]
        log(f"peers: {size_label(agents)}, {plural(repetitions, 'run')} of weave and of {', '.join(available)} "
            f"after a warm-up, interleaved")
        commands = {"weave": [weave, "build", str(path), "-o", "{out}", "--only", "k8s"]}
        for peer in available:
            commands[peer] = [python, str(RUN_PEERS), "render", peer, str(path), "{out}"]
        measured = {tool: Runs() for tool in commands}
        # Interleaved, so that a burst of other work on the machine hits every tool alike.
        for repetition in range(repetitions + 1):
            for tool, command in commands.items():
                if not measured[tool].failed:
                    run_once(measured[tool], command, arguments.tmpfs, arguments.timeout, warm_up=repetition == 0)
        checks = {}
        if agents in COMPARED_SIZES:
            for peer in available:
                checks[peer] = same_objects(arguments, path, peer)
        rows.append({"agents": agents, "sites": sites, "runs": repetitions, "measured": measured, "checks": checks})
    return rows


def same_objects(arguments, path, peer):
    """run_peers.py compare on one render of weave and one of PEER: (identical, summary)."""
    python = str(arguments.peer_python)
    with tempfile.TemporaryDirectory(dir=arguments.tmpfs) as work:
        weave_out = Path(work) / "weave"
        peer_out = Path(work) / "peer"
        subprocess.run([str(arguments.weave), "build", str(path), "-o", str(weave_out), "--only", "k8s"],
                       capture_output=True, check=True)
        subprocess.run([python, str(RUN_PEERS), "render", peer, str(path), str(peer_out)],
                       capture_output=True, check=True)
        completed = subprocess.run([python, str(RUN_PEERS), "compare", str(weave_out), str(peer_out)],
                                   capture_output=True, text=True)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return False, {"error": completed.stderr.strip().splitlines()[-1:] or ["compare failed"]}
    return completed.returncode == 0, json.loads(lines[-1])


# -------------------------------------------------------------------------------------------- report


def machine(arguments):
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPOSITORY,
                           capture_output=True, text=True)
    revision = commit.stdout.strip() or "unknown commit"
    if dirty.stdout.strip():
        revision += " with uncommitted changes"
    version = subprocess.run([str(arguments.weave), "--version"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} × {cpu}, Linux {platform.release()}, load average {load:.1f} at the start; "
            f"{version or 'weave'} at {revision}, release build")


def peak_rss_note():
    if TIME:
        return "peak RSS: the maximum resident set of the warm-up run, as GNU time reports it"
    return ("peak RSS: the largest `wait4` reports for the runs, which counts this Python script's "
            "memory too (no GNU time at /usr/bin/time): figures of a few tens of MiB are that floor")


def print_whole_process(rows, arguments):
    print("### Whole process")
    print()
    print(f"`weave validate FILE` and `weave build FILE -o OUT` (every target), each run as its own process "
          f"and timed from start to exit; OUT is a new directory on {filesystem(arguments.tmpfs)} "
          f"({arguments.tmpfs}). Each command runs once to warm up, then the number of runs given; "
          f"time: the median of those runs; CPU: user + system time, median; {peak_rss_note()}.")
    print()
    print("| topology | sites | input | runs | validate (ms) | validate CPU (ms) | validate peak RSS (MiB) "
          "| build (ms) | build CPU (ms) | build peak RSS (MiB) | files written | MiB written |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes = []
    for row in rows:
        label = size_label(row["agents"])
        if row["note"]:
            notes.append(row["note"])
            label += f" [{len(notes)}]"
        validate, build = row["validate"], row["build"]
        print(f"| {label} | {count(row['sites'])} | {input_size(row['path'])} | {row['runs']} "
              f"| {time_cell(validate)} | {milliseconds(validate.cpu)} | {mebibytes(validate.peak_kib * 1024)} "
              f"| {time_cell(build)} | {milliseconds(build.cpu)} | {mebibytes(build.peak_kib * 1024)} "
              f"| {count(build.files)} | {mebibytes(build.bytes)} |")
    for position, note in enumerate(notes, start=1):
        print(f"\n[{position}] {note}.")
    print()


def print_scaling(rows):
    by_agents = {row["agents"]: row for row in rows}
    pairs = [(small, large) for small, large in ((1_000, 10_000), (10_000, 50_000))
             if small in by_agents and large in by_agents]
    if not pairs:
        return
    print("### Scaling")
    print()
    print("time(larger) ÷ time(smaller) from the table above; 10.0 (or 5.0) is linear, less is better "
          "than linear (fixed costs such as process start and the schema compile weigh less).")
    print()
    print("| sizes | agents × | validate (wall) | validate (CPU) | build (wall) | build (CPU) | build peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for small, large in pairs:
        a, b = by_agents[small], by_agents[large]
        print(f"| {large:,} ÷ {small:,} | {large / small:.0f} "
              f"| {ratio(b['validate'].wall, a['validate'].wall)} | {ratio(b['validate'].cpu, a['validate'].cpu)} "
              f"| {ratio(b['build'].wall, a['build'].wall)} | {ratio(b['build'].cpu, a['build'].cpu)} "
              f"| {ratio(b['build'].peak_kib, a['build'].peak_kib)} |")
    print()


def print_disk(rows, arguments):
    disk_rows = [row for row in rows if row["disk"] is not None]
    if not disk_rows:
        return
    print("### Disk writes")
    print()
    print(f"The same `weave build` writing to {filesystem(arguments.disk)} ({arguments.disk}) instead of "
          f"tmpfs. weave does not fsync: a build ends when the files are in the page cache, so the "
          f"difference is the file system's cost of creating tens of thousands of files and renaming "
          f"the directory, not the disk's write speed; it varies with the file system and with other "
          f"I/O on the machine, which is why the other tables use tmpfs.")
    print()
    print("| topology | runs on tmpfs / disk | build on tmpfs (ms) | build on disk (ms) | disk ÷ tmpfs | files |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in disk_rows:
        runs = f"{row['runs']} / {len(row['disk'].walls)}"
        print(f"| {size_label(row['agents'])} | {runs} | {time_cell(row['build'])} | {time_cell(row['disk'])} "
              f"| {ratio(row['disk'].wall, row['build'].wall)} | {count(row['build'].files)} |")
    print()


def print_rebuild(rows, arguments):
    if not rows:
        return
    print("### Rebuild")
    print()
    print(f"Builds into an existing OUT on {filesystem(arguments.disk)} ({arguments.disk}), not tmpfs. "
          "*Fresh*: `weave build FILE -o OUT` where OUT does not exist (removed and `sync`ed before each "
          "run, outside the timing). *One-agent change*: `weave build` of the topology with one agent's "
          "replica count changed, into the OUT of the topology before the change (the runs go back and "
          "forth between the two), which rewrites only the files whose bytes change. *Check*: `weave "
          "build --check` of an OUT that is up to date. *Unchanged build*: `weave build` of the same "
          "topology into that OUT (analysed, its warnings printed, nothing written). Medians after a warm-up run "
          "(*runs*: of each, or of the fresh build / of each other). Goals (#18): the "
          "one-agent change at most 1 s and at most 0.2 × the fresh build; the check at most 0.5 s.")
    print()
    print("| topology | runs | fresh build (ms) | one-agent change (ms) | change ÷ fresh | files touched "
          "| `build --check` unchanged (ms) | unchanged build (ms) | files in OUT |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        touched = count(row["touched"]) if row["touched"] is not None else "—"
        print(f"| {size_label(row['agents'])} | {row['runs']} | {time_cell(row['fresh'])} "
              f"| {time_cell(row['change'])} | {ratio(row['change'].wall, row['fresh'].wall, 2)} "
              f"| {touched} | {time_cell(row['check'])} | {time_cell(row['unchanged'])} "
              f"| {count(row['files'])} |")
    print()


def print_phases(table, failure, rows):
    print("### Phases")
    print()
    if failure:
        print(f"({failure})")
        print()
        return
    columns = table["columns"]
    print("`cargo bench --bench phases -- --table FILE...`: each phase in one process, timed with a "
          "clock, one after the other, the fastest of up to 5 runs (no run is started after 10 s per file); "
          "emitters render into memory and `write` writes all their files (and the lock file) on "
          "tmpfs. The last row is the whole back half as `weave build` runs it: targets on threads "
          "of their own, rendering straight into the files.")
    print()
    labels = []
    for column in columns:
        row = next((row for row in rows if row["path"].name == column["file"]), None)
        label = size_label(row["agents"]) if row else column["file"]
        labels.append(f"{label} ({plural(column['runs'], 'run')})")
    positions = {row["agents"]: index for index, row in enumerate(rows)}
    ratio_columns = []
    if 1_000 in positions and 10_000 in positions and len(columns) == len(rows):
        ratio_columns.append((positions[10_000], positions[1_000], "10,000 ÷ 1,000"))
    header = "| phase (ms) | " + " | ".join(labels) + "".join(f" | {name}" for _, _, name in ratio_columns) + " |"
    print(header)
    print("|---|" + "---:|" * (len(columns) + len(ratio_columns)))
    build_row = columns[0]["rows"][-1]["phase"]

    def phase_row(name, values):
        cells = [milliseconds(value / 1000) for value in values]
        cells += [ratio(values[large], values[small]) for large, small, _ in ratio_columns]
        print(f"| {name} | " + " | ".join(cells) + " |")

    for position, entry in enumerate(columns[0]["rows"]):
        if entry["phase"] == build_row:
            sums = [sum(item["ms"] for item in column["rows"] if item["phase"] != build_row) for column in columns]
            phase_row("**sum of the phases above**", sums)
        phase_row(entry["phase"], [column["rows"][position]["ms"] for column in columns])
    print()
    print(f"The JSON Schema is compiled once per process, on its first use: "
          f"{milliseconds(table.get('schema_compile_ms', 0) / 1000)} ms, in no row above.")
    print()


def print_peers(peer_rows, status, arguments):
    print("### Against Jsonnet, KCL and Jinja2")
    print()
    for peer, reason in status.items():
        if reason:
            replacement = " Jinja2 renders in its place." if peer != "jinja2" else ""
            print(f"- **{PEER_NAMES[peer]} could not be measured**: {reason}.{replacement}")
    if any(status.values()):
        print()
    if not peer_rows:
        print("(no peer could run)")
        print()
        return
    print("weave: `weave build FILE -o OUT --only k8s`, as a whole process, like the other tables. Each "
          "peer: `python3 bench/peers/run_peers.py render PEER FILE OUT`, as a whole process (Python "
          "start-up, reading the same topology YAML, evaluating the program of bench/peers/, writing "
          f"the files) on the same tmpfs. A warm-up run of each tool, then runs of weave and of the "
          f"peers in turn; time and CPU are medians, peak RSS as above. `evaluate` is the peer's "
          f"library call alone (parsing the topology included). "
          f"weave ÷ peer below 1 means weave is faster. The peers render a subset of what weave "
          f"writes: of SPIRE only the registration (ClusterSPIFFEIDs, ClusterFederatedTrustDomains), no "
          f"OPA policy, allow NetworkPolicies or kustomization, no lock file, and they check nothing; the `files` and `MiB` columns show how much each wrote.")
    print()
    print("| topology | tool | runs | time (ms) | CPU (ms) | peak RSS (MiB) | evaluate (ms) | files | MiB "
          "| weave ÷ tool (time) | weave ÷ tool (CPU) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in peer_rows:
        weave = row["measured"]["weave"]
        for tool, runs in row["measured"].items():
            evaluations = [json.loads(output)["evaluate"] for output in runs.outputs if output.strip().startswith("{")]
            evaluate = milliseconds(statistics.median(evaluations)) if evaluations else "—"
            name = "weave" if tool == "weave" else PEER_NAMES[tool]
            versus_time = "—" if tool == "weave" else ratio(weave.wall, runs.wall, 3)
            versus_cpu = "—" if tool == "weave" else ratio(weave.cpu, runs.cpu, 3)
            print(f"| {size_label(row['agents'])} | {name} | {len(runs.walls)} | {time_cell(runs)} "
                  f"| {milliseconds(runs.cpu)} | {mebibytes(runs.peak_kib * 1024)} | {evaluate} "
                  f"| {count(runs.files)} | {mebibytes(runs.bytes)} | {versus_time} | {versus_cpu} |")
    print()
    print("Objects compared with weave's (`run_peers.py compare`: the same objects, field by field, "
          "except the `managed-by` label and weave's inputs digest, which is checked against weave's "
          "own ConfigMaps):")
    print()
    for row in peer_rows:
        for peer, (same, summary) in row["checks"].items():
            if "error" in summary:
                print(f"- {PEER_NAMES[peer]}, {size_label(row['agents'])}: **the comparison failed**: {summary['error'][0]}")
                continue
            kinds = ", ".join(f"{kind} {number:,}" for kind, number in summary["peer"].items())
            objects = sum(summary["peer"].values())
            if same:
                print(f"- {PEER_NAMES[peer]}, {size_label(row['agents'])}: {objects:,} objects ({kinds}), "
                      f"all identical to weave's.")
            else:
                print(f"- {PEER_NAMES[peer]}, {size_label(row['agents'])}: **differs from weave** "
                      f"({summary['problems']} differences; {summary['differing']} objects differ; first: "
                      f"`{summary['first_problem']}`); peer {kinds}.")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weave", type=Path, required=True)
    parser.add_argument("--generator", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="where generated topologies are kept")
    parser.add_argument("--tmpfs", type=Path, required=True, help="where builds write (a fast file system)")
    parser.add_argument("--disk", type=Path, help="also time builds writing here (1,000 and 10,000 agents)")
    parser.add_argument("--sizes", default="100,1000,10000,50000")
    parser.add_argument("--peer-python", type=Path, help="the Python with the peers installed; none: no peers")
    parser.add_argument("--peers", default="jsonnet,jrsonnet,kcl,jinja2")
    parser.add_argument("--install-failed", action="append", default=[], help="a peer pip could not install")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before one run is stopped")
    parser.add_argument("--no-phases", action="store_true")
    arguments = parser.parse_args()
    arguments.sizes = [int(size) for size in arguments.sizes.split(",") if size]
    arguments.peers = [peer for peer in arguments.peers.split(",") if peer]
    unknown = [peer for peer in arguments.peers if peer not in PEER_NAMES]
    if unknown:
        parser.error(f"unknown peer {unknown[0]}; the peers are {', '.join(PEER_NAMES)}")
    arguments.cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    header = f"Measured {datetime.date.today().isoformat()} on {machine(arguments)}."

    inputs = topologies(arguments)
    rows = whole_process(arguments, inputs)
    rebuild_rows = rebuild(arguments, inputs)
    table, failure = (None, "skipped: --no-phases") if arguments.no_phases else phases(arguments, inputs)
    status, peer_rows = {}, []
    if arguments.peer_python and arguments.peers:
        status = peer_availability(arguments)
        available = [peer for peer, reason in status.items() if reason is None]
        peer_rows = peers(arguments, inputs, available) if available else []

    print(header)
    print()
    print_whole_process(rows, arguments)
    print_scaling(rows)
    print_disk(rows, arguments)
    print_rebuild(rebuild_rows, arguments)
    print_phases(table, failure, rows)
    if arguments.peer_python and arguments.peers:
        print_peers(peer_rows, status, arguments)
    print(f"The report took {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
