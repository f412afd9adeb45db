#!/usr/bin/env python3
"""Runs a program on a pseudo-terminal and types into it as a person would.

Usage: pty_session.py PROMPT COMMAND [ARG...]

PROMPT may list several prompts separated by `|` (any of them counts). Each line of standard
input is typed in turn once the program shows a prompt again; a `\\t` in
a line stands for the Tab key, pressed with a pause after it so the program can complete. The
line ends with Enter. After the last line the program must exit; everything it wrote on its
terminal is printed. Standard library only.
"""
import os
import pty
import select
import sys
import time


def main():
    prompts = [p.encode() for p in sys.argv[1].split("|")]
    argv = sys.argv[2:]
    lines = [line.replace("\\t", "\t") for line in sys.stdin.read().splitlines()]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    out = bytearray()

    def read_for(seconds):
        """Reads what the program writes for `seconds`; False once it has closed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    return False
                if not data:
                    return False
                out.extend(data)
        return True

    def shown():
        return sum(out.count(prompt) for prompt in prompts)

    def wait_for_prompt(after, limit=60):
        deadline = time.monotonic() + limit
        while shown() <= after and time.monotonic() < deadline:
            if not read_for(0.05):
                return

    wait_for_prompt(0)
    for line in lines:
        parts = line.split("\t")
        for index, part in enumerate(parts):
            os.write(fd, part.encode())
            if index < len(parts) - 1:
                os.write(fd, b"\t")
                read_for(0.5)
        before = shown()
        os.write(fd, b"\r")
        wait_for_prompt(before)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and read_for(0.1):
        pass
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(out.decode("utf-8", "replace"))
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
