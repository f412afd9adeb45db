#!/usr/bin/env python3
"""Runs the benchmark workloads against ftp-actor, vsftpd and pyftpdlib in one run and prints
medians and ratios as a Markdown table. Started by bench/compare.sh (which builds the binaries
and starts the peers); see docs/BENCHMARKS.md for what each workload means.
"""
import argparse
import contextlib
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


def random_file(path, size_mib):
    """`path`, made of `size_mib` MiB of random bytes unless it already has that size."""
    if not path.exists() or path.stat().st_size != size_mib << 20:
        log(f"creating a {size_mib} MiB random file")
        subprocess.run(["head", "-c", f"{size_mib}M", "/dev/urandom"], check=True, stdout=open(path, "wb"))
    return path


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


def cpu_fields():
    """The first eight columns of /proc/stat's `cpu` line (all CPUs), in clock ticks: user,
    nice, system, idle, iowait, irq, softirq, steal."""
    return [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def steal_seconds():
    """CPU time the hypervisor gave to others while this machine wanted to run (the `steal`
    column of /proc/stat, all CPUs): a contended host shows here, and slows every server."""
    return cpu_fields()[7] / os.sysconf("SC_CLK_TCK")


def cpu_ticks():
    """(all, idle) clock ticks of every CPU so far (idle counts iowait)."""
    fields = cpu_fields()
    return sum(fields), fields[3] + fields[4]


PAGE_REPORTING = Path("/sys/module/page_reporting/parameters/reported_kib")


def settle_freed_memory(quiet_seconds=5, limit_seconds=25):
    """Waits until the guest has handed the memory freed so far back to the host.

    This VM reports freed memory to its host (free page reporting, in passes every 2 s), and
    the first write to reported memory faults in the hypervisor: writing a GiB costs 1.2 s of
    CPU right after a delete and 3 to 4 s once the freed GiB has been reported (measured with
    `loadgen floor move`; see docs/BENCHMARKS.md). So every timed transfer starts after the
    reporting has settled, rather than in the middle of it. What the transfer then finds also
    depends on the guest's own free pool (`settled_memory`). Returns the seconds waited;
    without page reporting (another machine) it returns at once."""
    if not PAGE_REPORTING.exists():
        return 0.0
    started = time.monotonic()
    last, changed = PAGE_REPORTING.read_text(), started
    while time.monotonic() - started < limit_seconds:
        time.sleep(0.25)
        now = PAGE_REPORTING.read_text()
        if now != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed >= quiet_seconds:
            break
    return time.monotonic() - started


BUDDYINFO = Path("/proc/buddyinfo")


def warm_free_mib():
    """Free memory still on the guest kernel's own free lists (zone Normal of /proc/buddyinfo),
    in MiB. On this machine's kernel, memory reported to the host leaves those lists, so this
    is what a write can get without the cost of reported memory (see docs/BENCHMARKS.md)."""
    for line in BUDDYINFO.read_text().splitlines():
        fields = line.split()
        if fields[3] == "Normal":
            return sum(int(count) << order for order, count in enumerate(fields[4:])) * 4 // 1024
    return 0


@contextlib.contextmanager
def settled_memory():
    """Runs a timed large transfer after the reporting of freed memory has settled
    (`settle_freed_memory`), and records the guest's own free pool (`warm_free_mib`) at the
    start and at the end of the transfer, in MiB, for the log.

    The pool decides what a transfer's new pages cost: from the pool they are warm; beyond it
    they come from memory reported to the host, at about twice the CPU per page or more. Its
    size after settling depends on what ran and was freed before, and on the host: from
    about 1 to 20 GiB was seen. Taking it down to a fixed size with a ballast file was tried and dropped:
    allocating the ballast pulled reported memory back into the pool (see docs/BENCHMARKS.md).
    So the state is logged, not forced; interleaving spreads it over the contenders."""
    settle_freed_memory()
    sizes = {}
    if PAGE_REPORTING.exists() and BUDDYINFO.exists():
        sizes["start"] = warm_free_mib()
    yield sizes
    if sizes:
        sizes["end"] = warm_free_mib()


def log_pool(what, sizes):
    if sizes:
        log(f"    {what}: the guest's own free pool {sizes['start']} MiB at the start, {sizes['end']} MiB at the end")


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

    def __init__(self, work, binary=BIN, extra_config="", plaintext=False):
        """`extra_config`: TOML tables appended to the config (e.g. the metrics endpoint);
        `plaintext`: the native listener without TLS (`plaintext_native`)."""
        self.work, self.binary, self.extra_config, self.plaintext = work, binary, extra_config, plaintext
        work.mkdir(parents=True, exist_ok=True)
        self.data = work / "ftp-actor-data"
        self.process = None
        self.addr = None
        if not (self.data / "users.toml").exists():
            env = dict(os.environ, FTP_ACTOR_PASSWORD=BENCH_PASSWORD)
            subprocess.run([binary, "user", "add", BENCH_USER, "--quota", "1TiB", "--data-dir", self.data],
                           check=True, env=env, stdout=subprocess.DEVNULL)
        self.home = self.data / "homes" / BENCH_USER

    def start(self, max_concurrency, ftp=False):
        """Starts the server; with `ftp`, its FTP listener too (plaintext logins allowed, as
        loopback benchmarks need), whose port is then in `ftp_port`."""
        self.stop()
        config = self.work / "ftp-actor.toml"
        config.write_text(
            f'listen = "127.0.0.1:0"\ndata_dir = "{self.data}"\nmax_concurrency = {max_concurrency}\n'
            f"max_sessions_per_address = 5000\nmax_sessions_per_user = 5000\n"
            + ("plaintext_native = true\n" if self.plaintext else "")
            + ('[ftp]\nlisten = "127.0.0.1:0"\nallow_plaintext_login = true\n' if ftp else "")
            + self.extra_config)
        out = open(self.work / "serve.out", "w")
        self.process = subprocess.Popen([self.binary, "serve", "--config", config], stdout=out,
                                        stderr=open(self.work / "serve.log", "a"), stdin=subprocess.DEVNULL)
        for _ in range(200):
            text = (self.work / "serve.out").read_text()
            if "listening on" in text and (not ftp or "FTPS (AUTH TLS) on" in text):
                self.addr = text.split("listening on ")[1].split()[0]
                if ftp:
                    self.ftp_port = int(text.split("FTPS (AUTH TLS) on ")[1].split()[0].rstrip(";").rsplit(":", 1)[1])
                return
            time.sleep(0.05)
        raise RuntimeError("ftp-actor did not start")

    def trust_args(self):
        """How the load generator trusts this server: its certificate, or no TLS at all."""
        return ["--plaintext"] if self.plaintext else ["--cacert", str(self.data / "ftp-tls-cert.pem")]

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


class RunFailed(RuntimeError):
    """One run of a workload that failed (a loadgen or client error); a peer's run is repeated."""


def loadgen(target, addr, user, password, *args):
    command = [LOADGEN, "--target", target, "--addr", addr, "--user", user, "--password", password, *args]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, RUST_BACKTRACE="0"))
    if done.returncode != 0:
        raise RunFailed(f"{' '.join(map(str, args))}: {done.stderr.strip().splitlines()[:3]}")
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
                except RunFailed as failed:
                    if not is_peer or len(failures[name]) >= 2:
                        raise
                    log(f"  {name}: run failed and is repeated: {failed}")
                    failures[name].append(str(failed))
    notes = {name: f"{len(f)} failed run(s) repeated, first: {f[0]}" if f else "" for name, f in failures.items()}
    return runs, notes


def native(server, *args):
    return loadgen("native", server.addr, BENCH_USER, BENCH_PASSWORD, *server.trust_args(), *args)


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
        self.paired = []
        self.steal_per_round = []

    def add(self, workload, server, unit, values, note=""):
        median = statistics.median(values)
        self.rows.append({"workload": workload, "server": server, "unit": unit, "median": median,
                          "runs": values, "note": note})
        log(f"  {workload} / {server}: median {median:.3f} {unit} over {[round(v, 3) for v in values]}")
        return median

    def add_paired(self, name, numerators, denominators):
        """A ratio taken within each round (the same minutes for both sides), then its median."""
        ratios = [a / b for a, b in zip(numerators, denominators, strict=True)]
        self.paired.append({"ratio": name, "median": statistics.median(ratios), "runs": ratios})
        log(f"  {name}: median {statistics.median(ratios):.3f} over {[round(r, 3) for r in ratios]}")


def big_files(args, work, servers, peers, results):
    """Workloads 1 and 2 with their references (MD5 alone, md5sum, and the CPU of a copy with
    no protocol and no hashing, from which each round's lower bounds come), interleaved: each round runs every contender once, starting one
    contender later than the round before, so a host that slows down for a minute slows every
    contender's run in that round rather than one contender's whole block. The ratios that
    decide the targets are also taken within each round (paired), which cancels that drift."""
    big = random_file(work / "big.bin", args.size_mib)
    want = md5sum(big)
    out = work / "out"
    out.mkdir(exist_ok=True)
    for _, each in servers:
        each.start(args.max_concurrency)

    def references():
        # The targets' reference is the md-5 crate: whichever of its two lines is faster on
        # this host in this round. ftp-actor verifies with its own MD5, whose time is the floor.
        builds = {build: native_md5(big, build) for build in ("md-5-0.10", "md-5-0.11")}
        crate = min(builds, key=lambda build: float(builds[build]["seconds"]))
        log("  md-5 builds: " + ", ".join(f"{build} {float(r['seconds']):.3f} s" for build, r in builds.items()))
        ours = native_md5(big, "ftp-actor")
        log(f"  ftp-actor's MD5: {float(ours['seconds']):.3f} s with its {ours.get('block', '?')} block function")
        run = {"md5 (md-5 crate)": float(builds[crate]["seconds"]), "md5 hashing alone": float(builds[crate]["hashing"]),
               OUR_MD5: float(ours["seconds"]), OUR_HASHING: float(ours["hashing"]),
               "md5sum": timed(["md5sum", big], stdout=subprocess.DEVNULL)}
        with settled_memory() as pool:
            moved = parse_result(subprocess.run([LOADGEN, "floor", "move", str(big), str(out / "moved.bin")],
                                                check=True, capture_output=True, text=True).stdout.strip())
        log_pool("copy with no protocol", pool)
        (out / "moved.bin").unlink()
        run[MOVE] = float(moved["cpu"])
        # Any verified upload hashes every byte twice (the source, the stored copy) and moves
        # it once; a verified download hashes once (the server may know the digest) and moves
        # it once, and one MD5 pass cannot be split across cores. On this machine's cores that
        # CPU takes at least this long, in this round's conditions (see docs/BENCHMARKS.md on
        # reported memory).
        hashing, cores = run[OUR_HASHING], os.cpu_count()
        run[UPLOAD_BOUND] = (2 * hashing + run[MOVE]) / cores
        run[DOWNLOAD_BOUND] = max(hashing, (hashing + run[MOVE]) / cores)
        return run

    def ours(name, server):
        run = {}
        # As for the peers, the upload does not replace a stored copy (which would free a GiB
        # inside the timed run).
        (server.home / "big.bin").unlink(missing_ok=True)
        for workload, command in [("upload, verified", ["put", str(big), "big.bin"]),
                                  ("download, verified", ["get", "big.bin", str(out / "big.bin")])]:
            with settled_memory() as pool:
                before = cpu_seconds(server.process.pid)
                result = native(server, *command)
                server_cpu = cpu_seconds(server.process.pid) - before
            assert result["md5"] == want, result
            log_pool(f"{name} {workload}", pool)
            run[workload] = float(result["seconds"])
            run[workload + " cpu"] = float(result["cpu"]) + server_cpu
            log(f"    {name} {workload}: {result['seconds']} s, client CPU {result['cpu']} s, "
                f"server CPU {server_cpu:.2f} s")
        (out / "big.bin").unlink()
        return run

    def verified_md5_seconds(path):
        """md5sum of `path`, checked against the source's digest; returns its time."""
        started = time.perf_counter()
        assert md5sum(path) == want, path
        return time.perf_counter() - started

    def peer_run(peer):
        stored, copy = peer.home / "big.bin", out / "peer.bin"
        stored.unlink(missing_ok=True)
        source_md5 = verified_md5_seconds(big)
        with settled_memory() as pool:
            upload = timed(["curl", "-sS", "-T", big, peer.url("big.bin")])
        log_pool(f"{peer.name} upload", pool)
        stored_md5 = verified_md5_seconds(stored)
        with settled_memory() as pool:
            download = timed(["curl", "-sS", "-o", copy, peer.url("big.bin")])
        log_pool(f"{peer.name} download", pool)
        copy_md5 = verified_md5_seconds(copy)
        copy.unlink()
        return {"upload, verified": source_md5 + upload + stored_md5, "upload, stored copy hashed": upload + stored_md5,
                "upload, unverified": upload, "download, verified": download + copy_md5,
                "download, unverified": download}

    def with_steal(run):
        def measured():
            before = steal_seconds()
            result = run()
            result["steal"] = steal_seconds() - before
            return result
        return measured

    contenders = [("references", with_steal(references), False)]
    contenders += [(name, with_steal(lambda name=name, each=each: ours(name, each)), False) for name, each in servers]
    contenders += [(p.name, with_steal(lambda p=p: peer_run(p)), False) for p in peers]
    log(f"workloads 1 and 2: a warm-up round, then {args.repeats} interleaved rounds")
    runs, _ = interleaved(args.repeats + 1, contenders)
    runs = {name: rounds[1:] for name, rounds in runs.items()}  # the first round is a warm-up
    for _, each in servers:
        clean_home(each.home)
        each.stop()

    def column(name, key):
        return [run[key] for run in runs[name]]

    for key, note in REFERENCE_NOTES.items():
        results.add(key, "-", "s", column("references", key), note)
    cores = os.cpu_count()
    for workload in ["upload, verified", "download, verified"]:
        for name, _ in servers:
            cpu = statistics.median(column(name, workload + " cpu"))
            results.add(workload, name, "s", column(name, workload),
                        f"client + server CPU {cpu:.2f} s: floor {cpu / cores:.2f} s on {cores} cores")
        for peer in peers:
            for variant, note in PEER_NOTES[workload]:
                results.add(variant, peer.name, "s", column(peer.name, variant), note)

    md5_alone = column("references", "md5 (md-5 crate)")
    for workload, short, bound in [("upload, verified", "upload", UPLOAD_BOUND),
                                   ("download, verified", "download", DOWNLOAD_BOUND)]:
        mine, least = column("ftp-actor", workload), column("references", bound)
        results.add_paired(f"verified {short} ÷ MD5 alone", mine, md5_alone)
        for peer in peers:
            results.add_paired(f"verified {short} ÷ {peer.name}'s verified {short}", mine,
                               column(peer.name, workload))
        for label, _ in servers[1:]:
            results.add_paired(f"verified {short} ÷ {label}'s verified {short}", mine, column(label, workload))
        results.add_paired(f"verified {short}'s lower bound ÷ MD5 alone", least, md5_alone)
        results.add_paired(f"verified {short} ÷ that lower bound", mine, least)
    results.steal_per_round = [round(sum(runs[name][i]["steal"] for name in runs), 1) for i in range(args.repeats)]


MOVE = "moving the bytes alone, CPU"
OUR_MD5 = "md5 (ftp-actor's)"
OUR_HASHING = "ftp-actor's md5 hashing alone"
UPLOAD_BOUND = "verified upload with ftp-actor's MD5, lower bound"
DOWNLOAD_BOUND = "verified download with ftp-actor's MD5, lower bound"
REFERENCE_NOTES = {
    "md5 (md-5 crate)": "loadgen md5: the file read in 1 MiB blocks and hashed, one thread; the faster of md-5 0.10 (asm) and 0.11 in each round",
    "md5 hashing alone": "the same run, time inside MD5 only (one pass's CPU)",
    OUR_MD5: "loadgen md5 --with ftp-actor: the same with the MD5 ftp-actor verifies with",
    OUR_HASHING: "the same run, time inside MD5 only",
    "md5sum": "coreutils",
    MOVE: "loadgen floor move: one thread reads and sends, one receives and writes; no hashing; both threads' CPU",
    UPLOAD_BOUND: "(2 x ftp-actor's MD5 hashing alone + moving the bytes) / cores, per round",
    DOWNLOAD_BOUND: "max(ftp-actor's MD5 hashing alone, (that + moving the bytes) / cores), per round",
}
PEER_NOTES = {
    "upload, verified": [
        ("upload, verified", "md5sum of the source, curl -T, md5sum of the stored file"),
        ("upload, stored copy hashed", "curl -T, then md5sum of the stored file (source digest known beforehand)"),
        ("upload, unverified", "curl -T")],
    "download, verified": [
        ("download, verified", "curl, then md5sum of the copy"),
        ("download, unverified", "curl")],
}


def native_md5(path, build):
    out = subprocess.run([LOADGEN, "md5", "--with", build, str(path)], check=True, capture_output=True,
                         text=True).stdout
    return parse_result(out.strip())


def small_files(args, servers, peers, results):
    log("workload 3: 50 clients x 20 files x 64 KiB")
    shape = ["small", "--clients", str(args.clients), "--files", "20", "--size", "65536"]
    for _, server in servers:
        server.start(max(args.max_concurrency, args.clients))

    def rate(load, home):
        try:
            return float(load(*shape)["files_per_sec"])
        finally:
            clean_home(home)

    contenders = [(name, lambda s=s: rate(lambda *a: native(s, *a), s.home), False) for name, s in servers]
    contenders += [(p.name, lambda p=p: rate(lambda *a: peer_loadgen(p, *a), p.home), True) for p in peers]
    runs, notes = interleaved(args.small_repeats + 1, contenders)
    for _, server in servers:
        server.stop()
    ours = {name for name, _ in servers}
    for name, _, _ in contenders:
        what = "every file MD5-verified" if name in ours else "unverified"
        # The first round is a warm-up.
        results.add("small files", name, "files/s", runs[name][1:], f"{what}. {notes[name]}".strip(". "))


def idle_sessions(args, servers, peers, results):
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

    def holder(target, addr, user, password, *trust):
        command = [LOADGEN, "--target", target, "--addr", addr, "--user", user, "--password", password,
                   *trust, "idle", "--count", str(args.idle)]
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    for name, each in servers:
        each.start(args.idle + 10)
        time.sleep(1)
        measure(name, each.pids, lambda: holder("native", each.addr, BENCH_USER, BENCH_PASSWORD, *each.trust_args()))
        each.stop()
    for peer in peers:
        measure(peer.name, peer.pids, lambda: holder("ftp", peer.addr, peer.user, peer.password))


def silent_sockets(args, server, peers, results):
    """Connections that never send a byte, from 50 source addresses: the memory each costs the
    server, and how long a real login from another address takes meanwhile."""
    log(f"workload: {args.silent} silent sockets from 50 addresses")

    def measure(name, pids, target, addr, user, password, *trust):
        before = pss_kib(pids())
        command = [LOADGEN, "--target", target, "--addr", addr, "--user", user, "--password", password,
                   *trust, "silent", "--count", str(args.silent), "--addresses", "50"]
        holder = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        line = holder.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"{name}: silent sockets not ready: {line} {holder.stderr.read()}")
        time.sleep(2)
        after = pss_kib(pids())
        logins, failures = [], []
        for _ in range(args.repeats):
            holder.stdin.write("login\n")
            holder.stdin.flush()
            answer = parse_result(holder.stdout.readline().strip())
            if "login_seconds" in answer:
                logins.append(float(answer["login_seconds"]) * 1000)
            else:
                failures.append(answer.get("login_failed", "?"))
        holder.stdin.close()
        holder.wait(timeout=60)
        per_socket = (after - before) / args.silent
        results.rows.append({"workload": "silent socket memory", "server": name, "unit": "KiB/socket",
                             "median": per_socket, "runs": [per_socket],
                             "note": f"PSS {before} KiB before, {after} KiB with {args.silent} silent sockets"})
        note = f"{len(failures)} of {args.repeats} logins failed: {failures[0]}" if failures else ""
        if logins:
            results.add("login under silent sockets", name, "ms", logins, note)
        else:
            results.rows.append({"workload": "login under silent sockets", "server": name, "unit": "ms",
                                 "median": float("nan"), "runs": [], "note": note})
        log(f"  {name}: {per_socket:.2f} KiB per socket; logins {logins} {note}")

    server.start(args.max_concurrency)
    time.sleep(1)
    measure("ftp-actor", server.pids, "native", server.addr, BENCH_USER, BENCH_PASSWORD, *server.trust_args())
    server.stop()
    for peer in peers:
        measure(peer.name, peer.pids, "ftp", peer.addr, peer.user, peer.password)


def control_workloads(args, servers, peers, results):
    for _, server in servers:
        server.start(args.max_concurrency)
    for name, workload, unit in [("round trips (pwd)", ["pwd", "--seconds", str(args.seconds)], "req/s"),
                                 ("logins", ["logins", "--seconds", str(args.seconds), "--clients", "4"],
                                  "logins/s")]:
        log(f"workload: {name}")
        contenders = [(label, lambda s=s, w=workload: float(native(s, *w)["per_sec"]), False) for label, s in servers]
        contenders += [(p.name, lambda p=p, w=workload: float(peer_loadgen(p, *w)["per_sec"]), True) for p in peers]
        runs, notes = interleaved(args.repeats, contenders)
        for contender, _, _ in contenders:
            results.add(name, contender, unit, runs[contender], notes[contender])
    for _, server in servers:
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
    if results.paired:
        lines += ["", "Ratios within each round of the large transfers (paired), then their median:", "",
                  "| ratio | median | per round |", "|---|---:|---|"]
        lines += [f"| {row['ratio']} | {row['median']:.3f} | {', '.join(f'{r:.3f}' for r in row['runs'])} |"
                  for row in results.paired]
        lines += ["", "CPU time stolen by the hypervisor in each round of the large transfers: "
                  + ", ".join(f"{s} s" for s in results.steal_per_round)]
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
    parser.add_argument("--silent", type=int, default=1000)
    parser.add_argument("--max-concurrency", type=int, default=64)
    parser.add_argument("--only", default="big,small,idle,silent,control,memory")
    parser.add_argument("--builds", default="", help="LABEL=BINARY,...: other ftp-actor builds, run beside this "
                        "tree's in the big, small and control workloads (an A/B of a change)")
    parser.add_argument("--without-peers", action="store_true", help="ftp-actor builds only")
    parser.add_argument("--with-metrics", default="", metavar="LABEL",
                        help="also run this tree's build with the metrics endpoint on, under LABEL")
    parser.add_argument("--with-plaintext", default="", metavar="LABEL",
                        help="also run this tree's build without TLS on the native listener, under LABEL")
    args = parser.parse_args()
    env = dict(line.split("=", 1) for line in args.peers_env.read_text().split() if "=" in line)
    peers = [] if args.without_peers else [Peer(name, env) for name in PEERS]
    server = FtpActor(args.work)
    servers = [("ftp-actor", server)]
    for build in filter(None, args.builds.split(",")):
        label, binary = build.split("=", 1)
        servers.append((label, FtpActor(args.work / label, Path(binary).resolve())))
    if args.with_metrics:
        metrics_on = '[metrics]\nlisten = "127.0.0.1:0"\n'
        servers.append((args.with_metrics, FtpActor(args.work / args.with_metrics, BIN, metrics_on)))
    if args.with_plaintext:
        servers.append((args.with_plaintext, FtpActor(args.work / args.with_plaintext, BIN, plaintext=True)))
    results = Results(args.repeats)
    only = args.only.split(",")
    workloads = {
        "big": lambda: big_files(args, args.work, servers, peers, results),
        "small": lambda: small_files(args, servers, peers, results),
        "idle": lambda: idle_sessions(args, [s for s in servers if s[1].binary == BIN], peers, results),
        "silent": lambda: silent_sockets(args, server, peers, results),
        "control": lambda: control_workloads(args, servers, peers, results),
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
        for _, each in servers:
            each.stop()
        (args.work / "results.json").write_text(json.dumps({"rows": results.rows, "paired": results.paired, "steal": steal,
                                                            "steal_per_round": results.steal_per_round}, indent=1))
        print(table(results))
        print("\nCPU time stolen by the hypervisor during each workload (/proc/stat): "
              + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steal.items()))


if __name__ == "__main__":
    main()
