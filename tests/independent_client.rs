//! Runs `tests/independent_client.py`, a client written from docs/PROTOCOL.md alone with only
//! Python's standard library, against a real server, inside TLS with the server's generated
//! certificate as its trust: the spec is complete enough to build an interoperating client from.

mod common;

use common::*;

#[test]
fn a_client_written_from_the_spec_interoperates() {
    // Small pages, so that the client reads a listing page by page.
    let server = TestServer::start_with(|config| config.max_list_entries = 3);
    server.add_user("indie", "spec-pass", 1 << 30);
    let work = server.work_dir("indie");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/independent_client.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(["127.0.0.1", &server.addr().port().to_string(), "indie", "spec-pass"])
        .arg(&work)
        .arg(server.data_dir().join(ftp_actor::tls::GENERATED_CERT))
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("all steps passed"));
    // What it uploaded with a resume is on the server, byte for byte.
    let sent = std::fs::read(work.join("resume.bin")).unwrap();
    assert_eq!(std::fs::read(server.home("indie").join("indep/resume.bin")).unwrap(), sent);
}
