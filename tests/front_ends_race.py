#!/usr/bin/env python3
"""FTP and SFTP sessions of one user racing each other, for tests/front_ends_race.rs.

Two FTP sessions (ftplib, plain FTP on loopback) and two SFTP sessions (paramiko) run as
processes of their own. Each line `go` on standard input starts a round: every session makes
OPS random operations on a few shared names (whole uploads, appends, resumes with REST,
uploads cut by ABOR or by a dropped connection, removals, renames over other names,
directories made and removed), then the driver prints `done`. The test checks the home between
rounds, when no client operation is running, while the native sessions race in the same
rounds. At the end of input the driver prints one JSON line: the refusals each session got,
and anything unexpected (a reply out of step, a crash), which fails the test.

usage: front_ends_race.py FTP_PORT SFTP_PORT USER PASSWORD SEED OPS NAMES DIRS SIZES
(NAMES, DIRS and SIZES comma-separated: the names the sessions race on, the directories they
make and remove, the sizes of their uploads; the test's own, which its native sessions use)
"""

import ftplib
import io
import json
import multiprocessing
import os
import queue
import random
import sys

import paramiko

FTP_PORT, SFTP_PORT, USER, PASSWORD, SEED, OPS = sys.argv[1:7]
FTP_PORT, SFTP_PORT, SEED, OPS = int(FTP_PORT), int(SFTP_PORT), int(SEED), int(OPS)
NAMES, DIRS = sys.argv[7].split(","), sys.argv[8].split(",")
SIZES = [int(size) for size in sys.argv[9].split(",")]


def payload(rnd, size):
    return rnd.randbytes(16) * (size // 16) + b"t" * (size % 16)


def change_names(op, rnd, name, remove, rename, mkdir, rmdir):
    """The operations on names, alike in every front end: a removal, a rename over another
    name, a directory made or removed. False if `op` is not one of them."""
    if op == "remove":
        remove(name)
    elif op == "rename":
        rename(name, rnd.choice(NAMES))
    elif op == "mkdir":
        mkdir(rnd.choice(DIRS))
    elif op == "rmdir":
        rmdir(rnd.choice(DIRS))
    else:
        return False
    return True


def ftp_login():
    ftp = ftplib.FTP(timeout=30)
    ftp.connect("127.0.0.1", FTP_PORT)
    ftp.login(USER, PASSWORD)
    return ftp


def ftp_operation(ftp, rnd):
    """One random operation; returns the session to go on with (a new one after a drop)."""
    op = rnd.choice(["stor", "stor", "appe", "rest", "abor", "drop", "remove", "rename", "mkdir", "rmdir"])
    name, data = rnd.choice(NAMES), payload(rnd, rnd.choice(SIZES))
    if change_names(op, rnd, name, ftp.delete, ftp.rename, ftp.mkd, ftp.rmd):
        pass
    elif op == "stor":
        ftp.storbinary(f"STOR {name}", io.BytesIO(data))
    elif op == "appe":
        ftp.storbinary(f"APPE {name}", io.BytesIO(data))
    elif op == "rest":
        ftp.storbinary(f"STOR {name}", io.BytesIO(data), rest=rnd.choice(SIZES))
    elif op in ("abor", "drop"):
        conn = ftp.transfercmd(f"STOR {name}")
        try:
            conn.sendall(data[: len(data) // 2])
        except OSError:
            pass  # the server refused the upload (its quota) and closed the data connection
        if op == "drop":
            conn.close()
            ftp.close()  # closes the control connection with the data's end: publish or keep
            return ftp_login()
        try:
            ftp.abort()
            conn.close()
            ftp.voidresp()  # 226 after ABOR's 426
        except ftplib.error_proto:
            # The upload had been refused (its quota) before ABOR was read: the refusal came
            # where ABOR's 426 was expected. The replies are then out of step: start again.
            conn.close()
            ftp.close()
            return ftp_login()
    return ftp


def sftp_login():
    transport = paramiko.Transport(("127.0.0.1", SFTP_PORT))
    transport.connect(username=USER, password=PASSWORD)
    return transport, paramiko.SFTPClient.from_transport(transport)


def sftp_operation(session, rnd):
    transport, sftp = session
    op = rnd.choice(["put", "put", "append", "cut", "remove", "rename", "mkdir", "rmdir"])
    name, data = rnd.choice(NAMES), payload(rnd, rnd.choice(SIZES))
    if change_names(op, rnd, name, sftp.remove, sftp.rename, sftp.mkdir, sftp.rmdir):
        pass
    elif op == "put":
        with sftp.open(name, "wb") as file:
            file.write(data)
    elif op == "append":
        with sftp.open(name, "ab") as file:
            file.write(data)
    elif op == "cut":
        file = sftp.open(name, "wb")
        file.write(data[: len(data) // 2])
        transport.close()
        return sftp_login()
    return session


def ftp_refusal(error):
    """The stable refusals an FTP client may get here: a name that is missing or busy, a
    directory in the way, a REST past the end (554), the quota (552)."""
    return isinstance(error, ftplib.error_perm) and str(error)[:3] in ("550", "552", "553", "554")


def sftp_refusal(error):
    """paramiko turns the server's SSH_FX failures into IOError; its text says which."""
    return isinstance(error, IOError) and not isinstance(error, (ConnectionError, TimeoutError))


def next_round(rounds, driver):
    """Waits for the next round; False at the end, or once the driver is gone (a failed test
    kills it), so that no session outlives it."""
    while os.getppid() == driver:
        try:
            return rounds.get(timeout=0.5) is not None
        except queue.Empty:
            pass
    return False


def session(kind, number, rounds, done, driver):
    rnd = random.Random(SEED * 100 + number)
    login, operation, refusal = {
        "ftp": (ftp_login, ftp_operation, ftp_refusal),
        "sftp": (sftp_login, sftp_operation, sftp_refusal),
    }[kind]
    refused, unexpected = {}, []
    state = login()
    while next_round(rounds, driver):
        for _ in range(OPS):
            try:
                state = operation(state, rnd)
            except Exception as error:  # noqa: BLE001: every other failure is reported
                if refusal(error):
                    key = str(error)[:3] if kind == "ftp" else str(error).split("(error ")[-1][:3]
                    refused[key] = refused.get(key, 0) + 1
                else:
                    unexpected.append(f"{kind} {number}: {type(error).__name__}: {error}")
                    state = login()
        done.put(None)
    done.put({"session": f"{kind} {number}", "refused": refused, "unexpected": unexpected})


def main():
    context = multiprocessing.get_context("fork")
    kinds = ["ftp", "ftp", "sftp", "sftp"]
    queues, done = [context.Queue() for _ in kinds], context.Queue()
    workers = [context.Process(target=session, args=(kind, n, queues[n], done, os.getpid()))
               for n, kind in enumerate(kinds)]
    for worker in workers:
        worker.start()
    for line in sys.stdin:
        if line.strip() != "go":
            break
        for queue in queues:
            queue.put(1)
        for _ in workers:
            done.get()
        print("done", flush=True)
    for queue in queues:
        queue.put(None)
    reports = [done.get() for _ in workers]
    for worker in workers:
        worker.join()
    print(json.dumps(reports), flush=True)


if __name__ == "__main__":
    main()
