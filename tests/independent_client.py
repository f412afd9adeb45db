#!/usr/bin/env python3
"""An independent ftp-actor client, written from docs/PROTOCOL.md alone.

Standard library only: its own CBOR (RFC 8949) codec, SCRAM with hashlib.scrypt, MD5 from
hashlib, TLS 1.3 from ssl. Python's ssl module cannot export keying material, which the login's
channel binding needs (RFC 9266); `tls_exporter` asks OpenSSL, which ssl runs on, through
ctypes (also standard library), and says so if it cannot. It shares no code with the Rust client. tests/independent_client.rs
runs it against a real server; it exits 0 only if every step behaved as the document says.

usage: independent_client.py HOST PORT USER PASSWORD WORKDIR CAFILE
(CAFILE: the server's certificate, which the client trusts)
"""

import base64
import ctypes
import hashlib
import hmac
import os
import socket
import ssl
import _ssl
import struct
import sys


# ---- CBOR (the subset the protocol uses: uint, negint, bytes, text, array, map, simple) ----

def _head(major, value):
    if value < 24:
        return bytes([major << 5 | value])
    for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if value < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | extra]) + struct.pack(fmt, value)
    raise ValueError("integer too large")


def cbor_encode(value):
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _head(3, len(data)) + data
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(cbor_encode(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor_encode(k) + cbor_encode(v) for k, v in value.items())
    raise TypeError(type(value))


def cbor_decode(data):
    value, end = _decode(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes in frame")
    return value


def _decode(data, pos):
    initial = data[pos]
    major, info = initial >> 5, initial & 31
    pos += 1
    if info < 24:
        arg = info
    elif info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        arg = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    elif info == 31:
        arg = None  # indefinite length
    else:
        raise ValueError("bad additional info")
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        if arg is None:
            chunks = []
            while data[pos] != 0xFF:
                chunk, pos = _decode(data, pos)
                chunks.append(chunk)
            joined = (b"" if major == 2 else "").join(chunks)
            return joined, pos + 1
        raw = data[pos:pos + arg]
        return (bytes(raw) if major == 2 else raw.decode("utf-8")), pos + arg
    if major == 4:
        items = []
        while (arg is None and data[pos] != 0xFF) or (arg is not None and len(items) < arg):
            item, pos = _decode(data, pos)
            items.append(item)
        return items, pos + (1 if arg is None else 0)
    if major == 5:
        result = {}
        while (arg is None and data[pos] != 0xFF) or (arg is not None and len(result) < arg):
            key, pos = _decode(data, pos)
            result[key], pos = _decode(data, pos)
        return result, pos + (1 if arg is None else 0)
    if major == 7:
        return {20: False, 21: True, 22: None, 23: None}[info], pos
    raise ValueError("unsupported CBOR major type %d" % major)


# ---- frames -------------------------------------------------------------------------------

class Connection:
    def __init__(self, host, port, cafile=None):
        """Over TLS 1.3 checked against `cafile`; in plain TCP without one (section 1)."""
        self.sock = socket.create_connection((host, port))
        self.binding, self.offered = None, []
        if cafile:
            context = ssl.create_default_context(cafile=cafile)
            context.minimum_version = ssl.TLSVersion.TLSv1_3
            self.sock = context.wrap_socket(self.sock, server_hostname=host)
            self.binding = tls_exporter(self.sock)
        self.buffer = b""

    def welcome(self):
        welcome = self.recv()
        check(welcome["type"] == "welcome" and welcome["version"] == 2, "welcome, version 2")
        self.offered = welcome.get("channel_bindings", [])
        return welcome

    def send(self, message):
        body = cbor_encode(message)
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def _read(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:count], self.buffer[count:]
        return out

    def recv(self):
        (length,) = struct.unpack(">I", self._read(4))
        return cbor_decode(self._read(length))

    def call(self, message, expect):
        self.send(message)
        reply = self.recv()
        if reply["type"] != expect:
            raise Failure("%s: expected %s, got %r" % (message["type"], expect, reply))
        return reply


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


# ---- channel binding (RFC 9266) -------------------------------------------------------------

def tls_exporter(sock):
    """32 bytes of the TLS session's keying material, label EXPORTER-Channel-Binding, no
    context: OpenSSL's SSL_export_keying_material on the SSL* behind the ssl object (the field
    after the object header and one pointer in CPython's PySSLSocket). None if that does not
    hold (another Python), checked by asking OpenSSL the SSL*'s protocol version first."""
    try:
        lib = ctypes.CDLL(_ssl.__file__)
        pointer = ctypes.c_void_p.from_address(id(sock._sslobj) + 3 * ctypes.sizeof(ctypes.c_void_p)).value
        lib.SSL_version.argtypes, lib.SSL_version.restype = [ctypes.c_void_p], ctypes.c_int
        if lib.SSL_version(pointer) != 0x0304:  # TLS1_3_VERSION
            return None
        export = lib.SSL_export_keying_material
        export.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                           ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        out, label = ctypes.create_string_buffer(32), b"EXPORTER-Channel-Binding"
        if export(pointer, out, 32, label, len(label), None, 0, 0) != 1:
            return None
        return out.raw
    except (AttributeError, OSError):
        return None


# ---- the scenario -------------------------------------------------------------------------

def login(conn, user, password):
    """SCRAM, bound to the TLS session when the welcome offered tls-exporter (section 4)."""
    client_nonce = base64.b64encode(os.urandom(24)).decode()
    start = {"type": "auth_start", "user": user, "client_nonce": client_nonce}
    binding = conn.binding if "tls-exporter" in conn.offered else None
    if binding is not None:
        start["channel_binding"] = "tls-exporter"
    challenge = conn.call(start, "auth_challenge")
    nonce, salt = challenge["nonce"], challenge["salt"]
    log_n, r, p = challenge["log_n"], challenge["r"], challenge["p"]
    check(nonce.startswith(client_nonce) and len(nonce) > len(client_nonce), "nonce extends ours")
    check(128 * r * (1 << log_n) <= 1 << 30 and p <= 16, "parameters within our limit")
    salted = hashlib.scrypt(password.encode(), salt=salt, n=1 << log_n, r=r, p=p, dklen=32,
                            maxmem=(1 << 31) - 1)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    gs2 = b"n,," if binding is None else b"p=tls-exporter,," + binding
    auth_message = "n=%s,r=%s,r=%s,s=%s,k=scrypt:%d:%d:%d,c=%s,r=%s" % (
        user, client_nonce, nonce, base64.b64encode(salt).decode(), log_n, r, p, base64.b64encode(gs2).decode(), nonce)
    signature = hmac.new(stored_key, auth_message.encode(), hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = {"type": "auth_proof", "nonce": nonce, "proof": proof}
    if binding is not None:
        final["channel_binding_data"] = binding
    conn.send(final)
    reply = conn.recv()
    # Every slot may be taken: the login then waits, told its place, until auth_ok.
    while reply["type"] == "queued":
        check(isinstance(reply["position"], int) and reply["position"] >= 1, "queue positions count from 1")
        reply = conn.recv()
    check(reply["type"] == "auth_ok", "auth_proof: expected auth_ok, got %r" % reply)
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    expected = hmac.new(server_key, auth_message.encode(), hashlib.sha256).digest()
    check(hmac.compare_digest(reply["server_signature"], expected), "server signature verifies")


def put(conn, path, data, chunk_size):
    ready = conn.call({"type": "put", "path": path, "size": len(data)}, "put_ready")
    offset = ready["offset"]
    if hashlib.md5(data[:offset]).digest() != ready["prefix_md5"]:
        ready = conn.call({"type": "put_restart"}, "put_ready")
        offset = 0
    for start in range(offset, len(data), chunk_size):
        conn.send({"type": "data", "bytes": data[start:start + chunk_size]})
    md5 = hashlib.md5(data).digest()
    done = conn.call({"type": "put_end", "md5": md5}, "put_done")
    check(done["md5"] == md5 and done["size"] == len(data), "put_done echoes our MD5")
    return offset


def get(conn, path, have=b""):
    conn.send({"type": "get", "path": path, "offset": len(have), "prefix_md5": hashlib.md5(have).digest()})
    ready = conn.recv()
    check(ready["type"] == "get_ready", "get_ready: %r" % ready)
    data = have if ready["offset"] == len(have) and len(have) > 0 else b""
    while True:
        frame = conn.recv()
        if frame["type"] == "data":
            data += frame["bytes"]
        elif frame["type"] == "get_end":
            check(hashlib.md5(data).digest() == frame["md5"], "download MD5 matches")
            check(len(data) == ready["size"], "download size matches")
            return data, ready["offset"]
        else:
            raise Failure("unexpected %r during a download" % frame)


def expect_error(conn, message, code):
    conn.send(message)
    reply = conn.recv()
    check(reply["type"] == "error" and reply["code"] == code,
          "%s: expected error %d, got %r" % (message["type"], code, reply))
    check(isinstance(reply["message"], str) and reply["message"], "errors carry a sentence")


def main():
    host, port, user, password, workdir, cafile = sys.argv[1:7]
    # A client that does not start TLS (as version 1 did) is told so in plain text (section 1).
    old = Connection(host, int(port))
    refusal = old.recv()
    check(refusal["type"] == "error" and refusal["code"] == 103, "a plaintext client hears error 103")
    conn = Connection(host, int(port), cafile)
    welcome = conn.welcome()
    check(welcome["channel_bindings"] == ["tls-exporter"], "over TLS the server offers tls-exporter")
    check(conn.binding is not None, "this Python's OpenSSL exports keying material (see tls_exporter)")
    # Unbound over TLS: refused (error 207) unless the server allows it; the session stays.
    expect_error(conn, {"type": "auth_start", "user": user, "client_nonce": "u" * 24}, 207)
    chunk = welcome["chunk_size"]

    expect_error(conn, {"type": "pwd"}, 201)
    login(conn, user, password)
    check(conn.call({"type": "pwd"}, "cwd")["path"] == "/", "starts at /")
    conn.call({"type": "mkdir", "path": "indep"}, "done")
    check(conn.call({"type": "cd", "path": "indep"}, "cwd")["path"] == "/indep", "cd")
    expect_error(conn, {"type": "cd", "path": "../.."}, 300)
    expect_error(conn, {"type": "cd", "path": "missing"}, 301)
    expect_error(conn, {"type": "frobnicate"}, 100)

    data = os.urandom(3 * chunk + 1234)
    check(put(conn, "file.bin", data, chunk) == 0, "fresh upload starts at 0")
    listing = conn.call({"type": "list"}, "listing")
    entries = {e["name"]: e for e in listing["entries"]}
    check(entries["file.bin"]["kind"] == "file" and entries["file.bin"]["size"] == len(data), "listed")
    check(listing["truncated"] is False and listing["path"] == "/indep", "listing fields")

    # A directory larger than a page (the test server's max_list_entries is 3), read page by
    # page with `after`, as section 5 says: every name once, in order.
    conn.call({"type": "mkdir", "path": "many"}, "done")
    names = ["n%d" % n for n in range(8)]
    for name in reversed(names):
        put(conn, "many/" + name, name.encode(), chunk)
    listed, after = [], None
    while True:
        request = {"type": "list", "path": "many"}
        if after is not None:
            request["after"] = after
        page = conn.call(request, "listing")
        check(len(page["entries"]) <= 3, "a page holds at most max_list_entries")
        listed += [e["name"] for e in page["entries"]]
        if not page["truncated"]:
            break
        last = page["entries"][-1]
        after = {"name": last["name"], "partial": last["kind"] == "partial"}
    check(listed == names, "paged listing: %r" % listed)
    for name in names:
        conn.call({"type": "remove", "path": "many/" + name}, "done")
    conn.call({"type": "rmdir", "path": "many"}, "done")

    # The server knows the digest of what it stored: the same file again need not be sent.
    ready = conn.call({"type": "put", "path": "file.bin", "size": len(data)}, "put_ready")
    check(ready["offset"] == 0 and ready.get("existing_md5") == hashlib.md5(data).digest(),
          "put_ready offers the stored file's MD5")
    conn.call({"type": "noop"}, "done")
    conn.call({"type": "put_cancel"}, "done")
    conn.call({"type": "noop"}, "done")
    fresh = conn.call({"type": "put", "path": "other.bin", "size": len(data)}, "put_ready")
    check("existing_md5" not in fresh, "no offer where no file is stored")
    conn.call({"type": "put_cancel"}, "done")

    back, offset = get(conn, "/indep/file.bin")
    check(back == data and offset == 0, "download equals upload")
    rest, offset = get(conn, "file.bin", data[:1000])
    check(rest == data and offset == 1000, "download resumes from a matching prefix")
    again, offset = get(conn, "file.bin", b"x" * 1000)
    check(again == data and offset == 0, "a wrong prefix restarts from 0")

    # An upload interrupted after two chunks, resumed on a new connection.
    size = 4 * chunk
    big = os.urandom(size)
    conn.call({"type": "put", "path": "resume.bin", "size": size}, "put_ready")
    conn.send({"type": "data", "bytes": big[:chunk]})
    conn.send({"type": "data", "bytes": big[chunk:2 * chunk]})
    conn.call({"type": "pwd"}, "error")  # 102 during an upload; the upload goes on
    conn.sock.close()
    conn = Connection(host, int(port), cafile)
    conn.welcome()
    login(conn, user, password)
    for _ in range(50):
        conn.send({"type": "put", "path": "/indep/resume.bin", "size": size})
        ready = conn.recv()
        if ready["type"] == "put_ready" or ready.get("code") != 307:
            break
        import time
        time.sleep(0.1)
    check(ready["type"] == "put_ready" and ready["offset"] == 2 * chunk, "resume offset: %r" % ready)
    check(ready["prefix_md5"] == hashlib.md5(big[:2 * chunk]).digest(), "prefix MD5")
    for start in range(2 * chunk, size, chunk):
        conn.send({"type": "data", "bytes": big[start:start + chunk]})
    conn.call({"type": "put_end", "md5": hashlib.md5(big).digest()}, "put_done")

    # A wrong MD5 is refused and publishes nothing.
    conn.call({"type": "put", "path": "/indep/bad.bin", "size": 3}, "put_ready")
    conn.send({"type": "data", "bytes": b"abc"})
    expect_error(conn, {"type": "put_end", "md5": hashlib.md5(b"abd").digest()}, 500)
    expect_error(conn, {"type": "list", "path": "/indep/bad.bin"}, 301)

    quota = conn.call({"type": "quota"}, "quota_info")
    check(quota["used"] == len(data) + size, "quota counts the files: %r" % quota)
    conn.call({"type": "rename", "from": "/indep/file.bin", "to": "/indep/renamed.bin"}, "done")
    conn.call({"type": "remove", "path": "/indep/renamed.bin"}, "done")
    expect_error(conn, {"type": "rmdir", "path": "/indep"}, 305)
    conn.call({"type": "quit"}, "done")
    with open(os.path.join(workdir, "resume.bin"), "wb") as out:
        out.write(big)
    print("independent client: all steps passed")


if __name__ == "__main__":
    try:
        main()
    except Failure as failure:
        print("independent client: FAILED: %s" % failure, file=sys.stderr)
        sys.exit(1)
