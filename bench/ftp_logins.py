#!/usr/bin/env python3
"""FTP password logins with Python's ftplib against the release server (plain FTP on
loopback, production scrypt cost): connect + login + quit per second on one client, with the
login cache on and off, and the server's peak memory (VmHWM) over a flood of parallel logins
from a cold cache. See docs/BENCHMARKS.md, "FTP logins".

    cargo build --release && python3 bench/ftp_logins.py [--seconds 5] [--flood 50]
"""
import argparse, collections, ftplib, os, re, subprocess, sys, tempfile, threading, time
from pathlib import Path

BIN = Path(__file__).resolve().parent.parent / "target/release/ftp-actor"


def start(work, extra):
    config = work / f"c{len(extra)}.toml"
    config.write_text("max_concurrency = 100\nmax_sessions_per_user = 200\nmax_sessions_per_address = 200\n"
                      f"max_prelogin_per_address = 200\n{extra}[ftp]\nallow_plaintext_login = true\n")
    out = work / "serve.out"
    server = subprocess.Popen([BIN, "serve", "--config", config, "--data-dir", work / "data", "--listen",
                               "127.0.0.1:0", "--ftp-listen", "127.0.0.1:0"], stdout=open(out, "w"),
                              stderr=subprocess.DEVNULL)
    for _ in range(100):
        found = re.search(r"FTP and FTPS \(AUTH TLS\) on 127\.0\.0\.1:(\d+);", out.read_text())
        if found:
            return server, int(found.group(1))
        time.sleep(0.05)
    raise RuntimeError("the server did not start")


def login(port):
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=120)
    try:
        ftp.login("bench", "bench-password")
        return "230"
    except ftplib.all_errors as error:
        return str(error)[:9]
    finally:
        ftp.close()


def rate(port, seconds):
    login(port)
    done, started = 0, time.time()
    while time.time() - started < seconds:
        assert login(port) == "230"
        done += 1
    return done / (time.time() - started)


def peak_kib(pid):
    return int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--flood", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = dict(os.environ, FTP_ACTOR_PASSWORD="bench-password")
        subprocess.run([BIN, "user", "add", "bench", "--data-dir", work / "data"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        for name, extra in [("cache on (default)", ""), ("cache off", "login_cache_secs = 0\n")]:
            server, port = start(work, extra)
            try:
                print(f"logins per second, one ftplib client, {name}: {rate(port, args.seconds):.1f}")
            finally:
                server.terminate()
                server.wait()
        server, port = start(work, "")
        try:
            before = peak_kib(server.pid)
            answers = []
            threads = [threading.Thread(target=lambda: answers.append(login(port))) for _ in range(args.flood)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            print(f"{args.flood} parallel logins from a cold cache: {dict(collections.Counter(answers))}; "
                  f"server peak {peak_kib(server.pid) / 1024:.0f} MiB (before {before / 1024:.0f} MiB)")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    sys.exit(main())
