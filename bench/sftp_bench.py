#!/usr/bin/env python3
"""SFTP with OpenSSH's own client against ftp-actor and against OpenSSH's sftp-server (sshd
on loopback), taking turns round by round; medians. Started by bench/sftp.sh.

Workloads (--only, comma-separated):
  big    1 GiB put, then get, one file, `sftp -b` (each stored or fetched file checked by MD5
         once, outside the timing)
  small  N files of 64 KiB put in one session, files per second
  list   `ls -1` of a directory of --entries empty files, one session (connection included),
         entries per second; every name must be listed
  idle   memory per idle logged-in session: the server's resident memory (ftp-actor: its
         process; sshd: every sshd and sftp-server process) with N sessions open, minus before

Both servers keep their files in the same tmpfs directory tree (BENCH_DIR), log in with the
same Ed25519 key, and get the ciphers OpenSSH's client negotiates by default (the report
says which).
"""

import argparse
import hashlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "ftp-actor")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def md5_of(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def descendants(pid):
    """pid and every process below it."""
    found = [pid]
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children = {}
    for line in out.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


class Server:
    def __init__(self, name, port, user, remote_dir, process):
        self.name, self.port, self.user, self.remote_dir, self.process = name, port, user, remote_dir, process

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_ftp_actor(work, key):
    data = os.path.join(work, "ftp-actor-data")
    shutil.rmtree(data, ignore_errors=True)
    port = free_port()
    env = dict(os.environ, FTP_ACTOR_PASSWORD="bench password")
    subprocess.run([BINARY, "user", "add", "bench", "--quota", "100GiB", "--data-dir", data], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([BINARY, "user", "key", "add", "bench", key + ".pub", "--data-dir", data], check=True,
                   stdout=subprocess.DEVNULL)
    # Every session of the benchmark is the one user's, from one address.
    config = os.path.join(work, "ftp-actor.toml")
    with open(config, "w") as f:
        f.write("max_concurrency = 600\nmax_queued = 100\nmax_sessions_per_user = 1000\nmax_sessions_per_address = 1000\n")
    log = open(os.path.join(work, "ftp-actor.log"), "w")
    process = subprocess.Popen([BINARY, "serve", "--config", config, "--data-dir", data, "--listen", "127.0.0.1:0",
                                "--sftp-listen", f"127.0.0.1:{port}"],
                               stdout=log, stderr=log, env=dict(os.environ, RUST_LOG="warn"))
    wait_for_port(port)
    return Server("ftp-actor", port, "bench", "/", process)


def start_sshd(work, key):
    sshd_dir = os.path.join(work, "sshd")
    files = os.path.join(work, "sshd-files")
    shutil.rmtree(sshd_dir, ignore_errors=True)
    shutil.rmtree(files, ignore_errors=True)
    os.makedirs(sshd_dir)
    os.makedirs(files)
    os.makedirs("/run/sshd", exist_ok=True)
    host_key = os.path.join(sshd_dir, "host_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", host_key], check=True)
    shutil.copy(key + ".pub", os.path.join(sshd_dir, "authorized_keys"))
    port = free_port()
    config = os.path.join(sshd_dir, "sshd_config")
    with open(config, "w") as f:
        f.write(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {sshd_dir}/sshd.pid
AuthorizedKeysFile {sshd_dir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
MaxStartups 500
MaxSessions 500
Subsystem sftp /usr/lib/openssh/sftp-server
""")
    log = open(os.path.join(work, "sshd.log"), "w")
    process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", config], stdout=log, stderr=log)
    wait_for_port(port)
    return Server("OpenSSH sftp-server", port, "root", files + "/", process)


def sftp_args(server, key, known_hosts):
    return ["sftp", "-q", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", key, "-P", str(server.port)]


def run_batch(server, key, known_hosts, commands):
    started = time.perf_counter()
    done = subprocess.run(sftp_args(server, key, known_hosts) + ["-b", "-", f"{server.user}@127.0.0.1"],
                          input=commands, text=True, capture_output=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{server.name}: sftp failed: {done.stderr}")
    return took


def cipher(server, key, known_hosts):
    done = subprocess.run(sftp_args(server, key, known_hosts) + ["-v", "-b", "-", f"{server.user}@127.0.0.1"],
                          input="pwd\n", text=True, capture_output=True)
    found = re.search(r"kex: server->client cipher: (\S+)", done.stderr)
    return found.group(1) if found else "?"


def stored_path(server, work, name):
    if server.name == "ftp-actor":
        return os.path.join(work, "ftp-actor-data", "homes", "bench", name)
    return os.path.join(server.remote_dir, name)


def big(servers, work, key, known_hosts, rounds, results):
    source = os.path.join(work, "client", "big.bin")
    if not os.path.exists(source) or os.path.getsize(source) != 1 << 30:
        with open(source, "wb") as f:
            for _ in range(1024):
                f.write(os.urandom(1 << 20))
    expected = md5_of(source)
    fetched = os.path.join(work, "client", "fetched.bin")
    for round_ in range(rounds):
        for server in servers if round_ % 2 == 0 else list(reversed(servers)):
            remote = server.remote_dir + "big.bin"
            results.setdefault((server.name, "put"), []).append(
                run_batch(server, key, known_hosts, f"put {source} {remote}\n"))
            if round_ == 0 and md5_of(stored_path(server, work, "big.bin")) != expected:
                raise SystemExit(f"{server.name}: the stored file's MD5 differs")
            if os.path.exists(fetched):
                os.remove(fetched)
            results.setdefault((server.name, "get"), []).append(
                run_batch(server, key, known_hosts, f"get {remote} {fetched}\n"))
            if round_ == 0 and md5_of(fetched) != expected:
                raise SystemExit(f"{server.name}: the fetched file's MD5 differs")


def small(servers, work, key, known_hosts, rounds, count, results):
    folder = os.path.join(work, "client", "small")
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        path = os.path.join(folder, f"f{i:04}.bin")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(os.urandom(64 << 10))
    for round_ in range(rounds):
        for server in servers if round_ % 2 == 0 else list(reversed(servers)):
            remote = server.remote_dir + f"small{round_}"
            commands = f"mkdir {remote}\n" + "".join(
                f"put {folder}/f{i:04}.bin {remote}/f{i:04}.bin\n" for i in range(count))
            took = run_batch(server, key, known_hosts, commands)
            results.setdefault((server.name, "small"), []).append(count / took)


def listing(servers, work, key, known_hosts, rounds, entries, results):
    for server in servers:
        folder = stored_path(server, work, "big")
        os.makedirs(folder, exist_ok=True)
        for number in range(entries):
            open(os.path.join(folder, f"file-{number:07d}.dat"), "w").close()
    try:
        for round_ in range(rounds):
            for server in servers if round_ % 2 == 0 else list(reversed(servers)):
                started = time.perf_counter()
                done = subprocess.run(sftp_args(server, key, known_hosts) + ["-b", "-", f"{server.user}@127.0.0.1"],
                                      input=f"ls -1 {server.remote_dir}big\n", text=True, capture_output=True)
                took = time.perf_counter() - started
                listed = sum(1 for line in done.stdout.splitlines() if line.endswith(".dat"))
                if done.returncode != 0 or listed != entries:
                    raise SystemExit(f"{server.name}: ls listed {listed} of {entries}: {done.stderr}")
                results.setdefault((server.name, "list"), []).append(entries / took)
    finally:
        for server in servers:
            shutil.rmtree(stored_path(server, work, "big"), ignore_errors=True)


def idle(servers, key, known_hosts, sessions, results):
    for server in servers:
        before = rss_kib(descendants(server.process.pid))
        clients = []
        for _ in range(sessions):
            client = subprocess.Popen(sftp_args(server, key, known_hosts) + [f"{server.user}@127.0.0.1"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True)
            client.stdin.write("pwd\n")
            client.stdin.flush()
            answer = client.stdout.readline()
            while answer and "Remote working directory" not in answer:
                answer = client.stdout.readline()
            if not answer:
                raise SystemExit(f"{server.name}: an idle session did not log in")
            clients.append(client)
        time.sleep(1)
        after = rss_kib(descendants(server.process.pid))
        results[(server.name, "idle")] = [(after - before) / sessions]
        for client in clients:
            client.stdin.close()
        for client in clients:
            client.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--only", default="big,small,list,idle")
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = os.path.abspath(args.work)
    os.makedirs(os.path.join(work, "client"), exist_ok=True)
    key = os.path.join(work, "client", "id_ed25519")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", key], check=True)
    known_hosts = os.path.join(work, "client", "known_hosts")
    if os.path.exists(known_hosts):
        os.remove(known_hosts)
    servers = [start_ftp_actor(work, key), start_sshd(work, key)]
    results = {}
    try:
        ciphers = {server.name: cipher(server, key, known_hosts) for server in servers}
        if "big" in only:
            big(servers, work, key, known_hosts, args.rounds, results)
        if "small" in only:
            small(servers, work, key, known_hosts, args.rounds, args.files, results)
        if "list" in only:
            listing(servers, work, key, known_hosts, args.rounds, args.entries, results)
        if "idle" in only:
            idle(servers, key, known_hosts, args.sessions, results)
    finally:
        for server in servers:
            server.stop()
    ssh_version = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    print(f"client: {ssh_version}; ciphers: " + ", ".join(f"{name} {c}" for name, c in ciphers.items()))
    print(f"rounds: {args.rounds}; medians (range)")
    print("| workload | " + " | ".join(server.name for server in servers) + " |")
    print("|---|" + "---|" * len(servers))
    rows = [("put", "1 GiB put, s"), ("get", "1 GiB get, s"), ("small", f"{args.files} files of 64 KiB, files/s"),
            ("list", f"ls -1 of {args.entries:,} entries, entries/s"),
            ("idle", f"memory per idle session ({args.sessions} open), KiB")]
    for workload, title in rows:
        cells = []
        for server in servers:
            values = results.get((server.name, workload))
            if not values:
                cells.append("")
                continue
            median = statistics.median(values)
            shown = (lambda v: f"{v:,.2f}") if median < 100 else (lambda v: f"{v:,.0f}")
            spread = f" ({shown(min(values))}-{shown(max(values))})" if len(values) > 1 else ""
            cells.append(shown(median) + spread)
        if any(cells):
            print(f"| {title} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
