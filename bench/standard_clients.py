#!/usr/bin/env python3
"""Standard FTP clients against ftp-actor's FTP listener, vsftpd and pyftpdlib in one run:
the same client for every server (Python's ftplib; curl for large files), the servers
interleaved round after round, medians. ftp-actor is measured twice: plain FTP (plaintext
login allowed on loopback, as for the peers) and FTPS (AUTH TLS, PROT P, the data connections
resuming the control connection's TLS session). The peers serve plain FTP. Started by
bench/ftp.sh, which builds the server and starts the peers; see docs/BENCHMARKS.md,
"Standard clients".

Workloads (--only):
  logins  connect + login + quit, one client after the other, per second
  small   50 clients at once, each: connect, login, 20 STORs of 64 KiB, quit; files per second
  light   the same 50 x 20 x 64 KiB with the load generator's FTP client (Rust, plain FTP): a
          client light enough that the servers' own cost decides (ftplib's clients take most
          of the 2 cores themselves); not for FTPS, which it does not speak
  pairs   2 clients at once, each: connect, login, 300 STORs of 64 KiB, quit; files per second
  single  the same with 1 client: one connection's pace
  pwd     PWD round trips on one logged-in session, per second
  list    LIST, then NLST, of a directory of --entries empty files, one session; entries per
          second (ftp-actor sends it a page of max_list_entries at a time)
  large   curl: one download and one upload of a large file (--size-mib), seconds each

With --with-floor, one more contender: bench/experiments/ftp_floor.c, the least an FTP server
can do (a thread per connection, no checks, no fsync), built with gcc. What the clients reach
against it is the ceiling this machine and client allow any server. With --renice N, one more:
ftp-actor with every thread at nice N (see docs/BENCHMARKS.md on what bounds 50 clients).
"""
import argparse
import ftplib
import multiprocessing
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (BENCH_PASSWORD, BENCH_USER, PEERS, FtpActor, Peer, Results, RunFailed,  # noqa: E402
                     clean_home, cpu_ticks, interleaved, loadgen, log, md5sum, number, process_tree,
                     settled_memory, steal_seconds)

OURS, OURS_TLS = "ftp-actor", "ftp-actor FTPS"
FLOOR = "floor"
PYFTPDLIB = "pyftpdlib"


class SessionReusingFtpTls(ftplib.FTP_TLS):
    """ftplib's FTPS client, with its data connections resuming the control connection's TLS
    session, as curl, lftp and rclone do (ftp-actor requires it by default; docs/INTEROP.md)."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


class Target:
    """One server as a client sees it: address, account, TLS or not, its files on disk, and
    the process whose tree serves it (for its CPU time)."""

    def __init__(self, name, host, port, user, password, home, pid, cafile=None):
        self.name, self.host, self.port = name, host, port
        self.user, self.password, self.home, self.pid, self.cafile = user, password, home, pid, cafile

    def connect(self):
        """Connects and logs in; with TLS, protects the data connections too (PROT P)."""
        if self.cafile:
            ftp = SessionReusingFtpTls(context=ssl.create_default_context(cafile=self.cafile))
            ftp.connect(self.host, self.port, timeout=60)
            ftp.login(self.user, self.password)
            ftp.prot_p()
        else:
            ftp = ftplib.FTP()
            ftp.connect(self.host, self.port, timeout=60)
            ftp.login(self.user, self.password)
        return ftp

    def url(self, name):
        return f"ftp://{self.user}:{self.password}@{'localhost' if self.cafile else self.host}:{self.port}/{name}"

    def curl_tls(self):
        return ["--ssl-reqd", "--cacert", str(self.cafile)] if self.cafile else []


def tree_cpu_seconds(pid):
    """CPU time of a process and its descendants, those that ended included (vsftpd serves
    each session in processes of its own, reaped by its listener)."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += sum(int(field) for field in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


class Run:
    """One timed run: operations per second, and the CPU the client and the server spent on
    each operation, in microseconds (the clients share the machine's cores with the server, so
    a server that spends less leaves more to them)."""

    def __init__(self, operations, seconds, client_cpu, server_cpu, idle=None):
        self.rate = operations / seconds
        self.client_us = client_cpu / operations * 1e6
        self.server_us = server_cpu / operations * 1e6
        self.idle = idle



class Floor:
    """bench/experiments/ftp_floor.c, built and started in `work`; its files go to `home`."""

    def __init__(self, work):
        self.home = work / "floor-home"
        self.home.mkdir(parents=True, exist_ok=True)
        binary = work / "ftp_floor"
        source = Path(__file__).resolve().parent / "experiments" / "ftp_floor.c"
        subprocess.run(["gcc", "-O2", "-pthread", "-o", binary, source], check=True)
        self.process = subprocess.Popen([binary, self.home], stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())

    def target(self):
        return Target(FLOOR, "127.0.0.1", self.port, BENCH_USER, BENCH_PASSWORD, self.home, self.process.pid)

    def stop(self):
        self.process.kill()
        self.process.wait()


def measured(target, run):
    """Runs `run(target)`, which returns (operations, seconds, client CPU seconds) and may add
    the share of the machine's CPU time that went idle."""
    before = tree_cpu_seconds(target.pid)
    operations, seconds, client_cpu, *idle = run(target)
    return Run(operations, seconds, client_cpu, tree_cpu_seconds(target.pid) - before, *idle)


def logins(target, seconds):
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        target.connect().quit()
        done += 1
    return done, time.perf_counter() - started, time.process_time() - cpu


def pwd_round_trips(target, seconds):
    ftp = target.connect()
    try:
        done, started, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - started < seconds:
            for _ in range(100):
                ftp.pwd()
            done += 100
        return done, time.perf_counter() - started, time.process_time() - cpu
    finally:
        ftp.quit()


def listed_entries(target, command, entries):
    """One listing of the directory `big` on a logged-in session: entries and seconds. Every
    entry must be listed."""
    ftp = target.connect()
    try:
        lines = []
        started, cpu = time.perf_counter(), time.process_time()
        ftp.retrlines(f"{command} big", lines.append)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if len(lines) != entries:
            raise RunFailed(f"{target.name}: {len(lines)} of {entries} entries listed by {command}")
        return len(lines), seconds, cpu
    finally:
        ftp.quit()


def make_big_directories(targets, entries):
    """The directory `big` with `entries` empty files in each server's home (once per home),
    owned as the home is."""
    for home in {target.home for target in targets}:
        big = home / "big"
        big.mkdir(exist_ok=True)
        owner = home.stat()
        for number in range(entries):
            path = big / f"file-{number:07d}.dat"
            path.touch()
            os.chown(path, owner.st_uid, owner.st_gid)
        os.chown(big, owner.st_uid, owner.st_gid)


def upload_files(target, client, files, payload, ready, start_at, results):
    """One client process: once every client is ready, sleeps until the common start instant,
    then connects, logs in, stores its files and quits. Reports its own end time and the CPU it
    spent from the start instant on (a clock and a CPU time of its own, so that neither the
    parent's scheduling nor the process's exit is counted), or its failure."""
    ready.wait()
    time.sleep(max(0.0, start_at.value - time.perf_counter()))
    cpu = time.process_time()
    try:
        ftp = target.connect()
        for number in range(files):
            ftp.storbinary(f"STOR c{client}-{number}.bin", _Reader(payload))
        ftp.quit()
        results.put((time.perf_counter(), time.process_time() - cpu, None))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which fails the run
        results.put((time.perf_counter(), time.process_time() - cpu, f"client {client}: {error!r}"))


class _Reader:
    """A file-like view of bytes for storbinary, without copying them."""

    def __init__(self, payload):
        self.view, self.at = memoryview(payload), 0

    def read(self, size):
        chunk = self.view[self.at:self.at + size]
        self.at += len(chunk)
        return chunk


def stored_files(target, clients, files, payload):
    """Clients in processes of their own (no client shares an interpreter lock with another),
    started together at one instant; the clock runs from that instant to the last client's
    QUIT, and the clients' CPU is what they spent in that window. Every file must then be in
    the server's home at its full size. Also returns the share of both cores' time that went
    idle in that window: with clients enough to keep them busy, time a server made everyone
    wait for it.

    The start is an instant on the monotonic clock that every process shares, not the release
    of a barrier: a `multiprocessing.Barrier` wakes its 50 waiters one after another over a few
    hundred milliseconds, and the parent, one of them, could be woken last and start the clock
    after most of the work was done (rates inflated by up to 2x, at random)."""
    context = multiprocessing.get_context("fork")
    ready, results = context.Barrier(clients + 1), context.Queue()
    start_at = context.Value("d", 0.0)
    workers = [context.Process(target=upload_files, args=(target, c, files, payload, ready, start_at, results))
               for c in range(clients)]
    for worker in workers:
        worker.start()
    try:
        # Long enough for the barrier to wake every client before the instant comes.
        start_at.value = time.perf_counter() + 0.1 + 0.01 * clients
        ready.wait(timeout=60)
        time.sleep(max(0.0, start_at.value - time.perf_counter()))
        ticks = cpu_ticks()
        reports = [results.get(timeout=600) for _ in workers]
        all_ticks, idle_ticks = (now - then for now, then in zip(cpu_ticks(), ticks))
        for worker in workers:
            worker.join()
        failures = [failure for _, _, failure in reports if failure]
        if failures:
            raise RunFailed(failures[0])
        elapsed = max(end for end, _, _ in reports) - start_at.value
        client_cpu = sum(cpu for _, cpu, _ in reports)
        stored = [p for p in target.home.iterdir() if p.name.startswith("c") and p.stat().st_size == len(payload)]
        if len(stored) != clients * files:
            raise RunFailed(f"{len(stored)} of {clients * files} files stored in full")
        return clients * files, elapsed, client_cpu, idle_ticks / max(1, all_ticks)
    finally:
        clean_home(target.home)


def loadgen_files(target, clients, files):
    """[`stored_files`] with the load generator's FTP client: its own clock, its CPU time."""
    cpu = os.times()
    try:
        done = loadgen("ftp", f"{target.host}:{target.port}", target.user, target.password, "small", "--clients",
                       str(clients), "--files", str(files), "--size", str(64 << 10))
        return int(done["files"]), float(done["seconds"]), sum(os.times()[2:4]) - sum(cpu[2:4])
    finally:
        clean_home(target.home)


def curl_seconds(target, *args):
    """Transfer time of one curl run: its total minus its pre-transfer time (connect, login)."""
    out = subprocess.run(["curl", "-sS", "-w", "%{time_pretransfer} %{time_total}", *target.curl_tls(), *args],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[-1]) - float(out[-2])


def large_files(args, targets, results):
    big = args.work / "large.bin"
    if not big.exists() or big.stat().st_size != args.size_mib << 20:
        subprocess.run(["head", "-c", f"{args.size_mib}M", "/dev/urandom"], check=True, stdout=open(big, "wb"))
    want = md5sum(big)
    back = args.work / "large-back.bin"

    def download(target):
        with settled_memory():
            seconds = curl_seconds(target, "-o", str(back), target.url("large.bin"))
        if md5sum(back) != want:
            raise RunFailed(f"{target.name}: the download's MD5 differs")
        back.unlink()
        return seconds

    def upload(target):
        with settled_memory():
            seconds = curl_seconds(target, "-T", str(big), target.url("upload.bin"))
        if md5sum(target.home / "upload.bin") != want:
            raise RunFailed(f"{target.name}: the upload's MD5 differs")
        (target.home / "upload.bin").unlink()
        return seconds

    for target in targets:
        if not (target.home / "large.bin").exists():
            subprocess.run(["cp", big, target.home / "large.bin"], check=True)
            os.chown(target.home / "large.bin", target.home.stat().st_uid, target.home.stat().st_gid)
    for what, run in [("download", download), ("upload", upload)]:
        log(f"workload: {args.size_mib} MiB {what} with curl")
        contenders = [(t.name, lambda t=t: run(t), not t.name.startswith(OURS)) for t in targets]
        runs, notes = interleaved(args.repeats, contenders)
        for target in targets:
            results.add(f"{args.size_mib} MiB {what} (curl)", target.name, "s", runs[target.name], notes[target.name])
    for target in targets:
        (target.home / "large.bin").unlink(missing_ok=True)  # ftp-actor's FTP and FTPS share a home


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--peers-env", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    # 50 clients on 2 cores finish in well under a second, and the last one decides the time:
    # this workload gets more rounds for a steadier median (as in bench/compare.py).
    parser.add_argument("--small-repeats", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--entries", type=int, default=100_000, help="files in the directory the list workload lists")
    parser.add_argument("--only", default="logins,small,light,pairs,single,pwd,list,large")
    parser.add_argument("--builds", default="", metavar="LABEL=BINARY,...",
                        help="other ftp-actor builds measured beside this tree's (plain FTP), for A/B runs")
    parser.add_argument("--with-floor", action="store_true",
                        help="measure bench/experiments/ftp_floor.c too: the ceiling for any server")
    parser.add_argument("--renice", type=int, metavar="NICE",
                        help="one more ftp-actor (this tree's build, plain FTP) whose every thread runs at this "
                             "nice value: what the scheduler's fair share costs its one network thread when "
                             "the clients take the same cores (needs root below 0)")
    args = parser.parse_args()
    env = dict(line.split("=", 1) for line in args.peers_env.read_text().split() if "=" in line)
    server = FtpActor(args.work)
    servers = [server]
    server.start(64, ftp=True)
    cert = server.data / "ftp-tls-cert.pem"
    pid = server.process.pid
    targets = [Target(OURS, "127.0.0.1", server.ftp_port, BENCH_USER, BENCH_PASSWORD, server.home, pid),
               Target(OURS_TLS, "localhost", server.ftp_port, BENCH_USER, BENCH_PASSWORD, server.home, pid, cert)]

    def another(label, work, *binary):
        """Starts one more ftp-actor, measured over plain FTP as `ftp-actor LABEL`."""
        servers.append(FtpActor(work, *binary))
        servers[-1].start(64, ftp=True)
        targets.append(Target(f"{OURS} {label}", "127.0.0.1", servers[-1].ftp_port, BENCH_USER, BENCH_PASSWORD,
                              servers[-1].home, servers[-1].process.pid))
        return servers[-1].process.pid

    for build in filter(None, args.builds.split(",")):
        label, binary = build.split("=", 1)
        another(label, args.work / f"build-{label}", Path(binary))
    if args.renice is not None:
        reniced = another(f"nice {args.renice}", args.work / "reniced")
        # Threads started later inherit the value from the thread that starts them.
        for thread in os.listdir(f"/proc/{reniced}/task"):
            os.setpriority(os.PRIO_PROCESS, int(thread), args.renice)
    floor = Floor(args.work) if args.with_floor else None
    if floor:
        targets.append(floor.target())
    for name in PEERS:
        peer = Peer(name, env)
        host, port = peer.addr.split(":")
        targets.append(Target(name, host, int(port), peer.user, peer.password, peer.home, peer.pid))
    payload = os.urandom(64 << 10)
    workloads = {
        "logins": ("logins (ftplib)", "logins/s", lambda t: logins(t, args.seconds)),
        "small": ("50 clients x 20 files of 64 KiB (ftplib)", "files/s", lambda t: stored_files(t, 50, 20, payload)),
        "light": ("50 clients x 20 files of 64 KiB (Rust FTP client)", "files/s", lambda t: loadgen_files(t, 50, 20)),
        "pairs": ("2 clients x 300 files of 64 KiB (ftplib)", "files/s", lambda t: stored_files(t, 2, 300, payload)),
        "single": ("1 client x 300 files of 64 KiB (ftplib)", "files/s", lambda t: stored_files(t, 1, 300, payload)),
        "pwd": ("PWD round trips, one session (ftplib)", "req/s", lambda t: pwd_round_trips(t, args.seconds)),
        "list": (f"LIST of {args.entries:,} entries (ftplib)", "entries/s",
                 lambda t: listed_entries(t, "LIST", args.entries)),
        "nlst": (f"NLST of {args.entries:,} entries (ftplib)", "entries/s",
                 lambda t: listed_entries(t, "NLST", args.entries)),
    }
    results = Results(args.repeats)
    cpu = {}
    steal = {}
    try:
        for key in args.only.split(","):
            before = steal_seconds()
            if key == "large":  # the floor does not download
                large_files(args, [t for t in targets if t.name != FLOOR], results)
            elif key == "list":  # nor list
                listing = [t for t in targets if t.name != FLOOR]
                make_big_directories(listing, args.entries)
                try:
                    for kind in ("list", "nlst"):
                        workload, unit, run = workloads[kind]
                        log(f"workload: {workload}")
                        contenders = [(t.name, lambda t=t, run=run: measured(t, run), not t.name.startswith(OURS))
                                      for t in listing]
                        runs, notes = interleaved(args.repeats + 1, contenders)
                        for target in listing:
                            kept = runs[target.name][1:]
                            results.add(workload, target.name, unit, [r.rate for r in kept], notes[target.name])
                            cpu[(workload, target.name)] = cpu_medians(kept)
                finally:
                    for home in {t.home for t in listing}:
                        shutil.rmtree(home / "big", ignore_errors=True)
            else:
                workload, unit, run = workloads[key]
                log(f"workload: {workload}")
                contenders = [(t.name, lambda t=t: measured(t, run), not t.name.startswith(OURS)) for t in targets
                              if key != "light" or not t.cafile]
                # The first round is a warm-up (ftp-actor's first login derives the password).
                repeats = args.small_repeats if key in ("small", "light") else args.repeats
                runs, notes = interleaved(repeats + 1, contenders)
                for target in (t for t in targets if t.name in runs):
                    kept = runs[target.name][1:]
                    results.add(workload, target.name, unit, [r.rate for r in kept], notes[target.name])
                    cpu[(workload, target.name)] = cpu_medians(kept)
                add_ratios_to(PYFTPDLIB, workload, runs, results)
            steal[key] = steal_seconds() - before
    finally:
        for started in servers + [floor] * bool(floor):
            started.stop()
    print(table(results))
    if results.paired:
        print(f"\nEach server's rate divided by {PYFTPDLIB}'s in the same round: median (range)\n")
        print("\n".join(f"- {row['ratio']}: {row['median']:.2f} ({min(row['runs']):.2f}-{max(row['runs']):.2f})"
                        for row in results.paired))
    print("\nCPU per operation, microseconds, medians: server / client(s) (the clients run on the same cores);"
          " for the ftplib file workloads, the share of both cores' time that went idle\n")
    print(cpu_table(cpu))
    print("\nCPU time stolen by the hypervisor during each workload (/proc/stat): "
          + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steal.items()))


def table(results):
    """One row per workload, one column per server, medians with the runs' range."""
    servers = list(dict.fromkeys(row["server"] for row in results.rows))
    workloads = list(dict.fromkeys(row["workload"] for row in results.rows))
    cells = {(row["workload"], row["server"]): row for row in results.rows}
    lines = ["| workload | unit | " + " | ".join(servers) + " |", "|---|---|" + "---:|" * len(servers)]
    for workload in workloads:
        row = [workload, cells[(workload, servers[0])]["unit"]]
        for server in servers:
            cell = cells.get((workload, server))
            if cell:
                low, high = min(cell["runs"]), max(cell["runs"])
                row.append(f"{number(cell['median'])} ({number(low)}-{number(high)})")
            else:
                row.append("")
        lines.append("| " + " | ".join(row) + " |")
    notes = [f"{row['server']}, {row['workload']}: {row['note']}" for row in results.rows if row["note"]]
    return "\n".join(lines + [""] + notes)


def add_ratios_to(reference, workload, runs, results):
    """Every other server's rate over `reference`'s, round by round (the same minutes for both,
    which cancels the host's drift better than a ratio of medians): how the targets of issue 31
    are judged, the floor's beside ftp-actor's."""
    if reference not in runs:
        return
    for name, kept in runs.items():
        if name != reference:
            results.add_paired(f"{workload}, {name}", [r.rate for r in kept[1:]],
                               [r.rate for r in runs[reference][1:]])


def cpu_medians(runs):
    """Server and client CPU per operation, and the idle share where the workload measured it."""
    idle = [run.idle for run in runs if run.idle is not None]
    return (statistics.median(r.server_us for r in runs), statistics.median(r.client_us for r in runs),
            statistics.median(idle) if idle else None)


def cpu_cell(server_us, client_us, idle):
    return f"{server_us:.0f} / {client_us:.0f}" + ("" if idle is None else f" (idle {idle * 100:.0f} %)")


def cpu_table(cpu):
    servers = list(dict.fromkeys(server for _, server in cpu))
    workloads = list(dict.fromkeys(workload for workload, _ in cpu))
    lines = ["| workload | " + " | ".join(servers) + " |", "|---|" + "---:|" * len(servers)]
    for workload in workloads:
        cells = [cpu_cell(*cpu[(workload, s)]) if (workload, s) in cpu else "" for s in servers]
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
