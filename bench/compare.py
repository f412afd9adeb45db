#!/usr/bin/env python3
"""Runs the benchmark workloads against ftp-actor, vsftpd and pyftpdlib in one run and prints
medians and ratios as a Markdown table. Started by bench/compare.sh (which builds the binaries
and starts the peers); see docs/BENCHMARKS.md for what each workload means.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/ftp-actor"
LOADGEN = ROOT / "target/release/examples/loadgen"
PEERS = {"vsftpd": "VSFTPD_ADDR", "pyftpdlib": "PYFTPD_ADDR"}
BENCH_USER = "bench"
BENCH_PASSWORD = "bench-password"


def log(message):
    print(message, file=sys.stderr, flush=True)


def parse_result(line):
    return dict(item.split("=", 1) for item in line.split())


def timed(command, **kwargs):
    """Runs a command, returns its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(command, check=True, **kwargs)
    return time.perf_counter() - started


def md5sum(path):
    out = subprocess.run(["md5sum", str(path)], check=True, capture_output=True, text=True).stdout
    return out.split()[0]


def cpu_seconds(pid):
    """User plus system CPU time of a process so far (clock ticks of 10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pss_kib(pids):
    """Proportional set size of a group of processes, KiB (shared pages split fairly)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def steal_seconds():
    """CPU time the hypervisor gave to others while this machine wanted to run (the `steal`
    column of /proc/stat, all CPUs): a contended host shows here, and slows every server."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


def process_tree(pid):
    """pid and all its descendants."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


class FtpActor:
    """A release ftp-actor server with its own data directory, restarted per workload."""

    def __init__(self, work):
        self.work = work
        self.data = work / "ftp-actor-data"
        self.process = None
        self.addr = None
        if not (self.data / "users.toml").exists():
            env = dict(os.environ, FTP_ACTOR_PASSWORD=BENCH_PASSWORD)
            subprocess.run([BIN, "user", "add", BENCH_USER, "--quota", "1TiB", "--data-dir", self.data],
                           check=True, env=env, stdout=subprocess.DEVNULL)
        self.home = self.data / "homes" / BENCH_USER

    def start(self, max_concurrency):
        self.stop()
        config = self.work / "ftp-actor.toml"
        config.write_text(
            f'listen = "127.0.0.1:0"\ndata_dir = "{self.data}"\nmax_concurrency = {max_concurrency}\n'
            f"max_sessions_per_address = 5000\nmax_sessions_per_user = 5000\n")
        out = open(self.work / "serve.out", "w")
        self.process = subprocess.Popen([BIN, "serve", "--config", config], stdout=out,
                                        stderr=open(self.work / "serve.log", "a"), stdin=subprocess.DEVNULL)
        for _ in range(200):
            text = (self.work / "serve.out").read_text()
            if "listening on" in text:
                self.addr = text.split("listening on ")[1].split()[0]
                return
            time.sleep(0.05)
        raise RuntimeError("ftp-actor did not start")

    def stop(self):
        if self.process:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=30)
            self.process = None

    def pids(self):
        return [self.process.pid]


class Peer:
    def __init__(self, name, env):
        self.name = name
        self.addr = env[PEERS[name]]
        self.user, self.password = env["PEER_USER"], env["PEER_PASS"]
        self.home = Path(env["PEER_HOME"])
        pid_file = Path(env["PEER_HOME"]).parent / ("vsftpd.pid" if name == "vsftpd" else "pyftpd.pid")
        self.pid = int(pid_file.read_text())

    def url(self, name):
        return f"ftp://{self.user}:{self.password}@{self.addr}/{name}"

    def pids(self):
        return process_tree(self.pid)


class LoadgenFailed(RuntimeError):
    pass


def loadgen(target, addr, user, password, *args):
    command = [LOADGEN, "--target", target, "--addr", addr, "--user", user, "--password", password, *args]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, RUST_BACKTRACE="0"))
    if done.returncode != 0:
        raise LoadgenFailed(f"{' '.join(map(str, args))}: {done.stderr.strip().splitlines()[:3]}")
    return parse_result(done.stdout.strip().splitlines()[-1])


def interleaved(rounds, contenders):
    """Runs every contender once per round, round after round, so that the machine's drift
    over time (it is shared and noisy) touches all servers alike. Each round starts one server
    later than the one before, so no server always runs right after the same other one.
    `contenders` are
    `(name, run, is_peer)`. A peer's failed run (a peer refusing or dropping a connection under
    load) is logged and repeated, at most twice per peer, and its note says so; a failure of
    ftp-actor ends the benchmark. Returns the runs and the notes by name."""
    runs = {name: [] for name, _, _ in contenders}
    failures = {name: [] for name, _, _ in contenders}
    for round_number in range(rounds):
        start = round_number % len(contenders)
        for name, run, is_peer in contenders[start:] + contenders[:start]:
            while True:
                try:
                    runs[name].append(run())
                    break
                except LoadgenFailed as failed:
                    if not is_peer or len(failures[name]) >= 2:
                        raise
                    log(f"  {name}: run failed and is repeated: {failed}")
                    failures[name].append(str(failed))
    notes = {name: f"{len(f)} failed run(s) repeated, first: {f[0]}" if f else "" for name, f in failures.items()}
    return runs, notes


def native(server, *args):
    return loadgen("native", server.addr, BENCH_USER, BENCH_PASSWORD, *args)


def peer_loadgen(peer, *args):
    return loadgen("ftp", peer.addr, peer.user, peer.password, *args)


def clean_home(home):
    for entry in home.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


class Results:
    def __init__(self, repeats):
        self.repeats = repeats
        self.rows = []

    def add(self, workload, server, unit, values, note=""):
        median = statistics.median(values)
        self.rows.append({"workload": workload, "server": server, "unit": unit, "median": median,
                          "runs": values, "note": note})
        log(f"  {workload} / {server}: median {median:.3f} {unit} over {[round(v, 3) for v in values]}")
        return median


def big_files(args, work, server, peers, results):
    big = work / "big.bin"
    if not big.exists() or big.stat().st_size != args.size_mib << 20:
        log(f"creating a {args.size_mib} MiB random file")
        subprocess.run(["head", "-c", f"{args.size_mib}M", "/dev/urandom"], check=True, stdout=open(big, "wb"))
    want = md5sum(big)
    out = work / "out"
    out.mkdir(exist_ok=True)
    server.start(args.max_concurrency)

    log("workload 1/2 floor: MD5 alone (md-5 crate) and md5sum")
    results.add("md5 (md-5 crate)", "-", "s", [float(native_md5(big)) for _ in range(args.repeats)])
    results.add("md5sum", "-", "s", [timed(["md5sum", big], stdout=subprocess.DEVNULL) for _ in range(args.repeats)])

    log("workload 2: verified upload")
    native_transfer(results, "upload, verified", server, want, "put", str(big), "big.bin")
    for peer in peers:
        both, verified, plain = [], [], []
        stored = peer.home / "big.bin"
        for attempt in range(args.repeats + 1):
            stored.unlink(missing_ok=True)
            started = time.perf_counter()
            assert md5sum(big) == want
            source_md5 = time.perf_counter() - started
            seconds = timed(["curl", "-sS", "-T", big, peer.url("big.bin")])
            started = time.perf_counter()
            assert md5sum(stored) == want
            stored_md5 = time.perf_counter() - started
            if attempt > 0:  # the first is a warm-up
                plain.append(seconds)
                verified.append(seconds + stored_md5)
                both.append(source_md5 + seconds + stored_md5)
        results.add("upload, verified", peer.name, "s", both, "md5sum of the source, curl -T, md5sum of the stored file")
        results.add("upload, stored copy hashed", peer.name, "s", verified,
                    "curl -T, then md5sum of the stored file (source digest known beforehand)")
        results.add("upload, unverified", peer.name, "s", plain, "curl -T")

    log("workload 1: verified download")
    native_transfer(results, "download, verified", server, want, "get", "big.bin", str(out / "big.bin"))
    (out / "big.bin").unlink()
    for peer in peers:
        shutil.copyfile(big, peer.home / "big.bin")
        shutil.chown(peer.home / "big.bin", peer.user)
        verified, plain = [], []
        for attempt in range(args.repeats + 1):
            target = out / "peer.bin"
            seconds = timed(["curl", "-sS", "-o", target, peer.url("big.bin")])
            started = time.perf_counter()
            assert md5sum(target) == want
            if attempt > 0:  # the first is a warm-up
                plain.append(seconds)
                verified.append(seconds + time.perf_counter() - started)
            target.unlink()
        results.add("download, verified", peer.name, "s", verified, "curl, then md5sum of the copy")
        results.add("download, unverified", peer.name, "s", plain, "curl")
        (peer.home / "big.bin").unlink()
    clean_home(server.home)
    server.stop()


def native_transfer(results, workload, server, want, *command):
    """Times ftp-actor transfers; also reports the CPU both processes used, whose sum over the
    machine's cores is a floor for the wall time when client and server share the machine."""
    runs, cpu = [], []
    native(server, *command)  # warm-up, not counted (as for the peers)
    for _ in range(results.repeats):
        before = cpu_seconds(server.process.pid)
        result = native(server, *command)
        assert result["md5"] == want, result
        runs.append(float(result["seconds"]))
        server_cpu = cpu_seconds(server.process.pid) - before
        cpu.append(float(result["cpu"]) + server_cpu)
        log(f"    {workload}: {result['seconds']} s, client CPU {result['cpu']} s, server CPU {server_cpu:.2f} s")
    cores = os.cpu_count()
    floor = statistics.median(cpu) / cores
    results.add(workload, "ftp-actor", "s", runs,
                f"client + server CPU {statistics.median(cpu):.2f} s: floor {floor:.2f} s on {cores} cores")


def native_md5(path):
    out = subprocess.run([LOADGEN, "md5", str(path)], check=True, capture_output=True, text=True).stdout
    return parse_result(out.strip())["seconds"]


def small_files(args, server, peers, results):
    log("workload 3: 50 clients x 20 files x 64 KiB")
    shape = ["small", "--clients", str(args.clients), "--files", "20", "--size", "65536"]
    server.start(max(args.max_concurrency, args.clients))

    def rate(load, home):
        try:
            return float(load(*shape)["files_per_sec"])
        finally:
            clean_home(home)

    contenders = [("ftp-actor", lambda: rate(lambda *a: native(server, *a), server.home), False)]
    contenders += [(p.name, lambda p=p: rate(lambda *a: peer_loadgen(p, *a), p.home), True) for p in peers]
    runs, notes = interleaved(args.small_repeats + 1, contenders)
    server.stop()
    for name, _, _ in contenders:
        what = "every file MD5-verified" if name == "ftp-actor" else "unverified"
        # The first round is a warm-up.
        results.add("small files", name, "files/s", runs[name][1:], f"{what}. {notes[name]}".strip(". "))


def idle_sessions(args, server, peers, results):
    log(f"workload 4: {args.idle} idle sessions")

    def measure(name, pids, start_loadgen):
        before = pss_kib(pids())
        holder = start_loadgen()
        line = holder.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"{name}: idle sessions not ready: {line} {holder.stderr.read()}")
        time.sleep(2)
        after = pss_kib(pids())
        holder.stdin.close()
        holder.wait(timeout=60)
        per_session = (after - before) / args.idle
        results.rows.append({"workload": "idle session memory", "server": name, "unit": "KiB/session",
                             "median": per_session, "runs": [per_session],
                             "note": f"PSS {before} KiB before, {after} KiB with {args.idle} sessions"})
        log(f"  {name}: {before} KiB -> {after} KiB, {per_session:.1f} KiB per session")

    def holder(target, addr, user, password):
        command = [LOADGEN, "--target", target, "--addr", addr, "--user", user, "--password", password,
                   "idle", "--count", str(args.idle)]
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    server.start(args.idle + 10)
    time.sleep(1)
    measure("ftp-actor", server.pids, lambda: holder("native", server.addr, BENCH_USER, BENCH_PASSWORD))
    server.stop()
    for peer in peers:
        measure(peer.name, peer.pids, lambda: holder("ftp", peer.addr, peer.user, peer.password))


def control_workloads(args, server, peers, results):
    server.start(args.max_concurrency)
    for name, workload, unit in [("round trips (pwd)", ["pwd", "--seconds", str(args.seconds)], "req/s"),
                                 ("logins", ["logins", "--seconds", str(args.seconds), "--clients", "4"],
                                  "logins/s")]:
        log(f"workload: {name}")
        contenders = [("ftp-actor", lambda: float(native(server, *workload)["per_sec"]), False)]
        contenders += [(p.name, lambda p=p: float(peer_loadgen(p, *workload)["per_sec"]), True) for p in peers]
        runs, notes = interleaved(args.repeats, contenders)
        for contender, _, _ in contenders:
            results.add(name, contender, unit, runs[contender], notes[contender])
    server.stop()


def transfer_memory(args, work, server, results):
    log(f"workload 7: server memory under a {args.memory_mib} MiB upload and download")
    big = work / "memory.bin"
    subprocess.run(["head", "-c", f"{args.memory_mib}M", "/dev/urandom"], check=True, stdout=open(big, "wb"))
    server.start(args.max_concurrency)
    native(server, "put", str(big), "memory.bin")
    big.unlink()
    native(server, "get", "memory.bin", str(work / "memory-back.bin"))
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    results.rows.append({"workload": f"peak memory, {args.memory_mib} MiB put + get", "server": "ftp-actor",
                         "unit": "MiB", "median": peak / 1024, "runs": [peak / 1024], "note": "VmHWM"})
    log(f"  ftp-actor peak RSS {peak / 1024:.1f} MiB")
    (work / "memory-back.bin").unlink()
    clean_home(server.home)
    server.stop()


def number(value):
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def table(results):
    lines = ["| workload | server | median | unit | ftp-actor ÷ peer | runs | note |",
             "|---|---|---:|---|---:|---|---|"]
    ours = {row["workload"]: row["median"] for row in results.rows if row["server"] == "ftp-actor"}
    for row in results.rows:
        base = ours.get(row["workload"]) or ours.get(row["workload"].split(",")[0] + ", verified")
        ratio = f"{base / row['median']:.3f}" if base and row["server"] != "ftp-actor" else ""
        runs = ", ".join(number(v) for v in row["runs"])
        lines.append(f"| {row['workload']} | {row['server']} | {number(row['median'])} | {row['unit']} | {ratio} "
                     f"| {runs} | {row['note']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--peers-env", type=Path, required=True)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--memory-mib", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    # A small-file run lasts under a second and pyftpdlib's rate varies a lot between runs, so
    # this workload gets more rounds than the others for a steadier median.
    parser.add_argument("--small-repeats", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--max-concurrency", type=int, default=64)
    parser.add_argument("--only", default="big,small,idle,control,memory")
    args = parser.parse_args()
    env = dict(line.split("=", 1) for line in args.peers_env.read_text().split() if "=" in line)
    peers = [Peer(name, env) for name in PEERS]
    server = FtpActor(args.work)
    results = Results(args.repeats)
    only = args.only.split(",")
    workloads = {
        "big": lambda: big_files(args, args.work, server, peers, results),
        "small": lambda: small_files(args, server, peers, results),
        "idle": lambda: idle_sessions(args, server, peers, results),
        "control": lambda: control_workloads(args, server, peers, results),
        "memory": lambda: transfer_memory(args, args.work, server, results),
    }
    steal = {}
    try:
        for name, run in workloads.items():
            if name in only:
                before = steal_seconds()
                run()
                steal[name] = steal_seconds() - before
    finally:
        server.stop()
        (args.work / "results.json").write_text(json.dumps({"rows": results.rows, "steal": steal}, indent=1))
        print(table(results))
        print("\nCPU time stolen by the hypervisor during each workload (/proc/stat): "
              + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steal.items()))


if __name__ == "__main__":
    main()
