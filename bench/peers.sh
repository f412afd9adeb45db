#!/usr/bin/env bash
# Start or stop the peer FTP servers that bench/compare.sh measures ftp-actor against.
# (Adapted from the workplace's shared peers script, so the benchmark sets them up itself.)
#   peers.sh start   -> vsftpd on 127.0.0.1:2201, pyftpdlib on 127.0.0.1:2202
#   peers.sh stop
#   peers.sh env     -> prints the connection settings as shell variables
# Both serve the same account: user "peer", password "peerpass", home $PEERS_DIR/home.
# Needs root (it creates a system user for vsftpd) and the Debian and PyPI registries.
# PEERS_DIR chooses where they keep their files: the benchmark puts it on the same filesystem
# as ftp-actor's data directory.
set -euo pipefail
PEERS_DIR=${PEERS_DIR:-/tmp/ftp-peers}
VSFTPD_PORT=${VSFTPD_PORT:-2201}
PYFTPD_PORT=${PYFTPD_PORT:-2202}
USER_NAME=peer
USER_PASS=peerpass

print_env() {
  cat <<ENV
PEER_USER=$USER_NAME
PEER_PASS=$USER_PASS
PEER_HOME=$PEERS_DIR/home
VSFTPD_ADDR=127.0.0.1:$VSFTPD_PORT
PYFTPD_ADDR=127.0.0.1:$PYFTPD_PORT
ENV
}

start() {
  stop
  mkdir -p "$PEERS_DIR/home" /var/run/vsftpd/empty
  # vsftpd: unpacked from its Debian package so it cannot conflict with another installed FTP server.
  if [ ! -x "$PEERS_DIR/vsftpd/usr/sbin/vsftpd" ]; then
    (cd "$PEERS_DIR" && apt-get download -qq vsftpd >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get download -qq vsftpd; })
    dpkg -x "$PEERS_DIR"/vsftpd_*.deb "$PEERS_DIR/vsftpd"
  fi
  # Its shared libraries (unpacking the package does not install its dependencies).
  if ldd "$PEERS_DIR/vsftpd/usr/sbin/vsftpd" | grep -q "not found"; then
    apt-get install -y -qq libwrap0 libcap2 libpam0g libssl3 libpam-modules >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq libwrap0 libcap2 libpam0g libssl3 libpam-modules >/dev/null; }
  fi
  python3 -c 'import pyftpdlib' 2>/dev/null || python3 -m pip install -q --root-user-action=ignore pyftpdlib >/dev/null
  # vsftpd serves the account's home from the password database: an account left by a run with
  # another PEERS_DIR is pointed at this one's home.
  if id "$USER_NAME" >/dev/null 2>&1; then
    usermod -d "$PEERS_DIR/home" "$USER_NAME"
  else
    useradd -M -d "$PEERS_DIR/home" -s /usr/sbin/nologin "$USER_NAME"
  fi
  echo "$USER_NAME:$USER_PASS" | chpasswd
  grep -qx /usr/sbin/nologin /etc/shells || echo /usr/sbin/nologin >> /etc/shells
  chown "$USER_NAME" "$PEERS_DIR/home"
  [ -f /etc/pam.d/vsftpd ] || printf 'auth required pam_unix.so\naccount required pam_unix.so\n' > /etc/pam.d/vsftpd
  cat > "$PEERS_DIR/vsftpd.conf" <<CONF
listen=YES
listen_address=127.0.0.1
listen_port=$VSFTPD_PORT
anonymous_enable=NO
local_enable=YES
write_enable=YES
chroot_local_user=YES
allow_writeable_chroot=YES
pasv_min_port=30000
pasv_max_port=30999
seccomp_sandbox=NO
background=NO
secure_chroot_dir=/var/run/vsftpd/empty
pam_service_name=vsftpd
max_clients=2000
max_per_ip=2000
CONF
  cat > "$PEERS_DIR/pyftpd.py" <<PY
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
a = DummyAuthorizer(); a.add_user("$USER_NAME", "$USER_PASS", "$PEERS_DIR/home", perm="elradfmwMT")
FTPHandler.authorizer = a; FTPHandler.passive_ports = range(31000, 31999)
s = FTPServer(("127.0.0.1", $PYFTPD_PORT), FTPHandler); s.max_cons = 2000; s.serve_forever()
PY
  setsid "$PEERS_DIR/vsftpd/usr/sbin/vsftpd" "$PEERS_DIR/vsftpd.conf" >"$PEERS_DIR/vsftpd.log" 2>&1 < /dev/null &
  echo $! > "$PEERS_DIR/vsftpd.pid"
  setsid python3 "$PEERS_DIR/pyftpd.py" >"$PEERS_DIR/pyftpd.log" 2>&1 < /dev/null &
  echo $! > "$PEERS_DIR/pyftpd.pid"
  for port in "$VSFTPD_PORT" "$PYFTPD_PORT"; do
    for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  done
  for name in vsftpd pyftpd; do
    kill -0 "$(cat "$PEERS_DIR/$name.pid")" 2>/dev/null || { cat "$PEERS_DIR/$name.log" >&2; echo "$name did not start" >&2; exit 1; }
  done
  curl -sS --user "$USER_NAME:$USER_PASS" "ftp://127.0.0.1:$VSFTPD_PORT/" >/dev/null
  curl -sS --user "$USER_NAME:$USER_PASS" "ftp://127.0.0.1:$PYFTPD_PORT/" >/dev/null
  print_env
}

stop() {
  for f in "$PEERS_DIR"/vsftpd.pid "$PEERS_DIR"/pyftpd.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
