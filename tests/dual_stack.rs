//! A listener on `[::]` takes IPv4 clients too (Linux's dual stack), and reports their
//! addresses as IPv4-mapped IPv6 (`::ffff:127.0.0.1`). Such a client must be served exactly as
//! on an IPv4 listener: PASV, a plaintext login from loopback where allowed, and bans and
//! per-address limits counted against its one address whichever listener it came through.

mod common;

use std::net::SocketAddr;

use common::{TestServer, ftplib_script, must_succeed};

/// Over FTPS (as every client not on this machine must log in), stores a file with ftplib and
/// reads it back, printing the data commands the client used; argv: host, port, certificate,
/// user, password.
const FTPS_ROUND_TRIP: &str = r#"
import io, os, ssl, sys
host, port, cert, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
sent = []
class Client(ReusingFTP_TLS):
    def putcmd(self, line):
        sent.append(line.split(" ")[0])
        super().putcmd(line)
ftp = Client(context=ssl.create_default_context(cafile=cert))
ftp.connect(host, port, timeout=30)
ftp.login(user, password)
ftp.prot_p()
payload = os.urandom(300000)
ftp.storbinary("STOR round.bin", io.BytesIO(payload))
back = bytearray()
ftp.retrbinary("RETR round.bin", back.extend)
assert bytes(back) == payload, "the file read back differs"
ftp.delete("round.bin")
ftp.quit()
print(" ".join(sorted({verb for verb in sent if verb in ("PASV", "EPSV")})))
"#;

fn ftps_round_trip(test: &TestServer, host: &str) -> String {
    let (port, cert) = (test.ftp_addr().port().to_string(), test.cert());
    ftplib_script(&format!("FTPS over {host}"), FTPS_ROUND_TRIP, &[host, &port, cert.to_str().unwrap(), "alice", "pw"])
}

fn on(host: &str, listener: SocketAddr) -> SocketAddr {
    SocketAddr::new(host.parse().unwrap(), listener.port())
}

fn dual_stack_server(tune: impl FnOnce(&mut ftp_actor::config::Config)) -> TestServer {
    let test = TestServer::start_with(|config| {
        config.listen = "[::]:0".parse().unwrap();
        config.ftp.listen = Some("[::]:0".parse().unwrap());
        config.ftp.allow_plaintext_login = true;
        config.sftp.listen = Some("[::]:0".parse().unwrap());
        tune(config);
    });
    test.add_user("alice", "pw", 1 << 30);
    test
}

#[test]
fn ftps_clients_over_ipv4_and_ipv6_on_one_dual_stack_listener() {
    let test = dual_stack_server(|_| {});
    // Over IPv4 ftplib asks PASV, whose reply must carry an IPv4 address.
    assert_eq!(ftps_round_trip(&test, "127.0.0.1"), "PASV");
    // Over IPv6 it asks EPSV.
    assert_eq!(ftps_round_trip(&test, "::1"), "EPSV");
}

/// `ftp.allow_plaintext_login` allows loopback clients: 127.0.0.1 is one, however the
/// listener reports it.
#[test]
fn a_plaintext_login_from_loopback_is_allowed_through_a_dual_stack_listener() {
    let test = dual_stack_server(|_| {});
    let script = r#"
import sys
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=30)
ftp.login("alice", "pw")
print(ftp.pwd())
"#;
    assert_eq!(ftplib_script("a plaintext login", script, &[&test.ftp_addr().port().to_string()]), "/");
}

#[test]
fn openssh_over_ipv4_on_a_dual_stack_listener() {
    let test = dual_stack_server(|_| {});
    let output = common::sftp::OpenSsh::new(&test, "alice", "pw").sftp("mkdir made-over-sftp\nls\n");
    must_succeed("sftp over 127.0.0.1", &output);
    assert!(test.home("alice").join("made-over-sftp").is_dir());
}

#[actix_rt::test]
async fn the_native_client_over_ipv4_and_ipv6_on_one_dual_stack_listener() {
    let test = dual_stack_server(|_| {});
    for host in ["127.0.0.1", "::1"] {
        let mut client =
            ftp_actor::client::Client::connect(on(host, test.addr()), &test.trust(), |_| {}).await.unwrap();
        client.login("alice", "pw").await.unwrap();
        client.mkdir(&format!("made over {host}")).await.unwrap();
        assert!(test.home("alice").join(format!("made over {host}")).is_dir());
    }
}

/// Failed logins through the dual-stack FTP listener ban 127.0.0.1 on the IPv4-only native
/// listener too: one client, one address. (The guesses are at another name than the one that
/// logs in after them, so that only the address's ban can refuse it.)
#[actix_rt::test]
async fn a_ban_earned_through_a_dual_stack_listener_holds_on_an_ipv4_one() {
    let test = dual_stack_server(|config| {
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.login_failures_before_ban = 3;
        config.login_delay_base_ms = 0;
    });
    let (port, cert) = (test.ftp_addr().port().to_string(), test.cert());
    let script = r#"
import ssl, sys
for attempt in range(3):
    ftp = ReusingFTP_TLS(context=ssl.create_default_context(cafile=sys.argv[2]))
    ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=30)
    try:
        ftp.login("nobody", "wrong")
        raise SystemExit("a wrong password was accepted")
    except ftplib.error_perm as refused:
        assert str(refused).startswith("530"), refused
    ftp.close()
"#;
    ftplib_script("wrong FTPS logins", script, &[&port, cert.to_str().unwrap()]);
    let Err(refused) = test.try_login("alice", "pw").await else { panic!("a banned address must be refused") };
    assert_eq!(refused.code(), Some(ftp_actor::net::ErrorCode::LoginBanned), "{refused}");
}
