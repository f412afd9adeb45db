#!/usr/bin/env python3
"""The cluster mode measured side by side in one run (started by bench/cluster.sh, which builds
the binaries and starts a three-node Garage and a PostgreSQL): verified 1 GiB put and get
through ftp-actor's S3 backend against rclone copying the same file to the same Garage, small
files per second through one and through two instances, and what the shared state adds to a
namespace operation (the same session's mkdir, list, rename and rmdir on an instance on local
state and files, and on one on PostgreSQL and Garage). Medians, Markdown table on stdout; see
docs/BENCHMARKS.md, "The cluster mode".
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (BENCH_PASSWORD, BENCH_USER, BIN, LOADGEN, interleaved, log, md5sum,  # noqa: E402
                     parse_result, random_file)


class Instance:
    """One `ftp-actor serve` with its own data directory; `shared` is the state and storage
    config of the cluster (empty: local state and files)."""

    def __init__(self, work, name, shared):
        self.work = work / name
        self.work.mkdir(parents=True, exist_ok=True)
        self.name, self.shared = name, shared
        self.process, self.addr = None, None
        self.data = self.work / "data"

    def start(self, max_concurrency=64):
        config = self.work / "ftp-actor.toml"
        config.write_text(f'listen = "127.0.0.1:0"\ndata_dir = "{self.data}"\nmax_concurrency = {max_concurrency}\n'
                          "max_sessions_per_address = 5000\nmax_sessions_per_user = 5000\n" + self.shared)
        out = self.work / "serve.out"
        self.process = subprocess.Popen([BIN, "serve", "--config", config], stdout=open(out, "w"),
                                        stderr=open(self.work / "serve.log", "a"), stdin=subprocess.DEVNULL)
        for _ in range(400):
            text = out.read_text()
            if "listening on" in text:
                self.addr = text.split("listening on ")[1].split()[0]
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start: see {self.work / 'serve.log'}")

    def add_user(self):
        """Adds the benchmark's user (on the shared database, for a cluster instance)."""
        config = self.work / "ftp-actor.toml"
        if not config.exists():
            config.write_text(self.shared)
        env = dict(os.environ, FTP_ACTOR_PASSWORD=BENCH_PASSWORD)
        subprocess.run([BIN, "user", "add", BENCH_USER, "--quota", "1TiB", "--config", config, "--data-dir", self.data],
                       check=True, env=env, stdout=subprocess.DEVNULL)

    def loadgen(self, *args):
        command = [LOADGEN, "--target", "native", "--addr", self.addr, "--user", BENCH_USER, "--password",
                   BENCH_PASSWORD, "--cacert", str(self.data / "ftp-tls-cert.pem"), *args]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: loadgen {' '.join(args)}: {done.stderr.strip()} (log: {self.work})")
        return parse_result(done.stdout.strip().splitlines()[-1])

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


def rclone(*args):
    """rclone with its defaults (4 parts in flight on a put, 4 streams on a get of a big file;
    it checks the MD5 of what it copied), on the `garage` remote bench/cluster.sh configures."""
    started = time.perf_counter()
    subprocess.run(["rclone", "-q", *args], check=True)
    return time.perf_counter() - started


def big_files(args, work, cluster, rows):
    big = random_file(work / "big.bin", args.size_mib)
    want = md5sum(big)
    copy = work / "copy.bin"
    remote = f"garage:{args.bucket}/rclone-bench/big.bin"

    rounds = iter(range(1_000_000))

    def ours():
        # A new name each round: a put onto a name holding the same bytes sends nothing.
        name = f"big-{next(rounds)}.bin"
        put = cluster.loadgen("put", str(big), name)
        get = cluster.loadgen("get", name, str(copy))
        assert put["md5"] == want and get["md5"] == want, (put, get)
        copy.unlink()
        return {"put": float(put["seconds"]), "get": float(get["seconds"])}

    def theirs():
        put = rclone("copyto", str(big), remote)
        get = rclone("copyto", remote, str(copy))
        assert md5sum(copy) == want
        copy.unlink()
        rclone("deletefile", remote)
        return {"put": put, "get": get}

    log(f"big files: a warm-up round, then {args.repeats} interleaved rounds")
    runs, _ = interleaved(args.repeats + 1, [("ftp-actor", ours, False), ("rclone", theirs, False)])
    for direction in ["put", "get"]:
        mine = [run[direction] for run in runs["ftp-actor"][1:]]
        peer = [run[direction] for run in runs["rclone"][1:]]
        mib = args.size_mib
        rows.append((f"{mib} MiB {direction}, verified", "ftp-actor (native, S3 backend)",
                     f"{statistics.median(mine):.2f} s", f"{mib / statistics.median(mine):.0f} MiB/s"))
        rows.append((f"{mib} MiB {direction}, verified", "rclone copyto (defaults)",
                     f"{statistics.median(peer):.2f} s", f"{mib / statistics.median(peer):.0f} MiB/s"))
        ratios = [a / b for a, b in zip(mine, peer, strict=True)]
        rows.append((f"{mib} MiB {direction}: ftp-actor ÷ rclone", "paired per round",
                     f"{statistics.median(ratios):.2f}x", f"runs {[round(r, 2) for r in ratios]}"))


def small_files(args, instances, rows):
    """The same load (CLIENTS x FILES files of 64 KiB) through one instance, then split over two."""
    clients, files = args.clients, args.files
    # Unmeasured first: each instance opens its database and HTTP connections on first use.
    for each in instances:
        each.loadgen("small", "--clients", str(clients), "--files", str(files))
    one, two, theirs = [], [], []
    batch = instances[0].work.parent / "small-files"
    batch.mkdir(exist_ok=True)
    for n in range(clients * files):
        (batch / f"f{n}.bin").write_bytes(os.urandom(65536))
    for round_number in range(args.repeats):
        one.append(float(instances[0].loadgen("small", "--clients", str(clients), "--files", str(files))["seconds"]))
        halves = [subprocess.Popen([LOADGEN, "--target", "native", "--addr", each.addr, "--user", BENCH_USER,
                                    "--password", BENCH_PASSWORD, "--cacert", str(each.data / "ftp-tls-cert.pem"),
                                    "small", "--clients", str(clients // 2), "--files", str(files)],
                                   stdout=subprocess.PIPE, text=True) for each in instances]
        outputs = [half.communicate()[0] for half in halves]
        assert all(half.returncode == 0 for half in halves), outputs
        # Each half times its sessions from their logins on (its one key derivation before is
        # not counted, as for one instance); both derive at once, so their timed parts overlap.
        two.append(max(float(parse_result(out.strip().splitlines()[-1])["seconds"]) for out in outputs))
        # The same number of files through rclone, as many at once, to the same Garage: what the
        # object store gives any client.
        theirs.append(rclone("copy", "--transfers", str(clients), "--checkers", str(clients), str(batch),
                             f"garage:{args.bucket}/rclone-small-{round_number}"))
    total = clients * files
    for label, runs in [("ftp-actor, one instance", one), ("ftp-actor, two instances", two),
                        (f"rclone copy --transfers {clients}", theirs)]:
        rows.append((f"{clients} clients x {files} files of 64 KiB", label,
                     f"{total / statistics.median(runs):.0f} files/s", f"runs {[round(total / r) for r in runs]}"))


def namespace(args, local, cluster, rows):
    results = {}
    for label, each in [("local", local), ("cluster", cluster)]:
        runs = [each.loadgen("namespace", "--rounds", str(args.rounds)) for _ in range(args.repeats)]
        results[label] = {key: statistics.median(float(run[key]) for run in runs) for key in runs[0] if key != "rounds"}
    for operation in ["mkdir", "list", "rename", "rmdir", "rm"]:
        key = f"{operation}_median_us"
        mine, base = results["cluster"][key], results["local"][key]
        rows.append((f"{operation}, one session, median latency", "cluster (PostgreSQL) / local",
                     f"{mine:.0f} / {base:.0f} µs", f"shared state adds {mine - base:.0f} µs"))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--shared-config", type=Path, required=True, help="the [state] and [storage] tables")
    parser.add_argument("--bucket", default="ftp-actor")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--only", default="big,small,namespace")
    args = parser.parse_args()
    only = set(args.only.split(","))
    shared = args.shared_config.read_text()
    a, b = Instance(args.work, "instance-a", shared), Instance(args.work, "instance-b", shared)
    local = Instance(args.work, "local", "")
    a.add_user()
    local.add_user()
    rows = []
    try:
        for each in (a, b, local):
            each.start()
        if "namespace" in only:
            namespace(args, local, a, rows)
        if "small" in only:
            small_files(args, [a, b], rows)
        if "big" in only:
            big_files(args, args.work, a, rows)
    finally:
        for each in (a, b, local):
            each.stop()
    print("| workload | server / client | median | note |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
