#!/usr/bin/env python3
"""Forwards connections on 127.0.0.1 (the port printed first) to SERVER, cutting each one
(both sides closed) once AFTER bytes have gone from the server to the client: interrupted
downloads, for bench/resume.sh. Runs until killed."""
import socket
import sys
import threading

server_addr, after = sys.argv[1], int(sys.argv[2])
host, port = server_addr.rsplit(":", 1)
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)


def pump(src, dst, limit, both):
    sent = 0
    try:
        while limit is None or sent < limit:
            data = src.recv(1 << 16 if limit is None else min(1 << 16, limit - sent))
            if not data:
                break
            dst.sendall(data)
            sent += len(data)
    except OSError:
        pass
    for s in both:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


while True:
    client, _ = listener.accept()
    upstream = socket.create_connection((host, int(port)))
    both = (client, upstream)
    threading.Thread(target=pump, args=(client, upstream, None, both), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client, after, both), daemon=True).start()
