//! The record layer held to rustls itself: each end of ours against a rustls peer (the
//! stack every TLS test of rustls' own runs against), over an in-memory pipe.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

use super::protection::{HEADER_LEN, Opener, RecordError, Sealer, record_len};
use super::*;
use crate::auth::scram::TLS_EXPORTER_LABEL;

type Ours = (RecordReader<ReadHalf<DuplexStream>>, RecordWriter<WriteHalf<DuplexStream>>);

/// The native listener's configuration (with the certificate it would generate) and a client
/// configuration that trusts it.
pub(crate) fn configs() -> (Arc<ServerConfig>, ClientConfig) {
    static CONFIGS: std::sync::OnceLock<(Arc<ServerConfig>, ClientConfig)> = std::sync::OnceLock::new();
    CONFIGS.get_or_init(generated_configs).clone()
}

fn generated_configs() -> (Arc<ServerConfig>, ClientConfig) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    crate::tls::generate_if_missing(&cert, &key).unwrap();
    let server = crate::tls::native_server_config(&cert, &key).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for certificate in crate::tls::load_chain(&cert).unwrap() {
        roots.add(certificate).unwrap();
    }
    let client = ClientConfig::builder_with_provider(Arc::new(crate::tls::native_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server, client)
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// Our server against a rustls client; the channel binding each side computed.
async fn our_server() -> (Ours, tokio_rustls::client::TlsStream<DuplexStream>, [u8; 32]) {
    let (server, client) = configs();
    let (mut near, far) = tokio::io::duplex(64 << 10);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let (ours, theirs) = tokio::join!(accept(&mut near, &server), connector.connect(localhost(), far));
    let (ours, theirs) = (ours.unwrap(), theirs.unwrap());
    let exported = theirs.get_ref().1.export_keying_material([0u8; 32], TLS_EXPORTER_LABEL, None).unwrap();
    assert_eq!(ours.channel_binding, exported, "our exporter is rustls' exporter");
    let (read, write) = tokio::io::split(near);
    (ours.over(read, write), theirs, exported)
}

/// Our client against a rustls server that sends session tickets, as rustls does by default.
async fn our_client() -> (Ours, tokio_rustls::server::TlsStream<DuplexStream>) {
    let (server, client) = configs();
    let mut server = ServerConfig::clone(&server);
    server.send_tls13_tickets = 2;
    let (mut near, far) = tokio::io::duplex(64 << 10);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let (ours, theirs) = tokio::join!(connect(&mut near, client, localhost()), acceptor.accept(far));
    let (ours, theirs) = (ours.unwrap(), theirs.unwrap());
    let exported = theirs.get_ref().1.export_keying_material([0u8; 32], TLS_EXPORTER_LABEL, None).unwrap();
    assert_eq!(ours.channel_binding, exported);
    let (read, write) = tokio::io::split(near);
    (ours.over(read, write), theirs)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Sends `data` on `out` in uneven writes while `input` reads `expect.len()` bytes; what was read.
async fn exchange(
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
    data: &[u8],
    input: &mut (impl tokio::io::AsyncRead + Unpin),
    expect: usize,
) -> Vec<u8> {
    let send = async {
        for piece in data.chunks(40_000) {
            out.write_all(piece).await.unwrap();
        }
        out.flush().await.unwrap();
    };
    let receive = async {
        let mut got = vec![0u8; expect];
        input.read_exact(&mut got).await.unwrap();
        got
    };
    tokio::join!(send, receive).1
}

#[tokio::test]
async fn our_server_and_a_rustls_client_carry_a_mebibyte_each_way() {
    let ((mut reader, mut writer), theirs, _) = our_server().await;
    let (mut their_read, mut their_write) = tokio::io::split(theirs);
    let (up, down) = (pattern(1 << 20, 1), pattern((1 << 20) + 77, 2));
    let (got_up, got_down) = tokio::join!(
        exchange(&mut their_write, &up, &mut reader, up.len()),
        exchange(&mut writer, &down, &mut their_read, down.len()),
    );
    assert!(got_up == up && got_down == down);
}

#[tokio::test]
async fn our_client_and_a_rustls_server_carry_a_mebibyte_each_way_past_its_tickets() {
    let ((mut reader, mut writer), theirs) = our_client().await;
    let (mut their_read, mut their_write) = tokio::io::split(theirs);
    let (up, down) = (pattern(1 << 20, 3), pattern(999_999, 4));
    let (got_down, got_up) = tokio::join!(
        exchange(&mut their_write, &down, &mut reader, down.len()),
        exchange(&mut writer, &up, &mut their_read, up.len()),
    );
    assert!(got_up == up && got_down == down);
}

/// A client's first request may travel with its Finished, in one segment: rustls opens it
/// during the handshake, and the reader must hand it out first.
#[tokio::test]
async fn a_request_sent_with_the_last_handshake_message_is_kept() {
    let (server, client) = configs();
    let (mut near, mut far) = tokio::io::duplex(64 << 10);
    let serve = tokio::spawn(async move {
        let patience = std::time::Duration::from_secs(10);
        let established = accept(&mut near, &server).await.unwrap();
        let (read, write) = tokio::io::split(near);
        let (mut reader, _writer) = established.over(read, write);
        let mut got = vec![0u8; 14];
        tokio::time::timeout(patience, reader.read_exact(&mut got)).await.expect("the request was lost").unwrap();
        got
    });
    let mut conn = rustls::ClientConnection::new(Arc::new(client), localhost()).unwrap();
    handshake_by_hand(&mut conn, &mut far).await;
    // The Finished is still queued: the request joins it, and both go in one write.
    std::io::Write::write_all(&mut conn.writer(), b"first request!").unwrap();
    far.write_all(&queued(&mut conn)).await.unwrap();
    assert_eq!(serve.await.unwrap(), b"first request!");
}

/// Runs a rustls client's side of the handshake on `far` by hand, leaving its Finished queued.
async fn handshake_by_hand(conn: &mut rustls::ClientConnection, far: &mut DuplexStream) {
    let mut buffer = vec![0u8; 64 << 10];
    while conn.is_handshaking() {
        if conn.wants_write() {
            far.write_all(&queued(conn)).await.unwrap();
        } else {
            let n = far.read(&mut buffer).await.unwrap();
            conn.read_tls(&mut &buffer[..n]).unwrap();
            conn.process_new_packets().unwrap();
        }
    }
}

/// The records a rustls connection has queued.
fn queued(conn: &mut rustls::ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// Our server's end of a handshake with a rustls client driven by hand, after which the
/// client's bytes can be produced without a connection.
async fn established_with(conn: &mut rustls::ClientConnection) -> Established {
    let (server, _) = configs();
    let (mut near, mut far) = tokio::io::duplex(64 << 10);
    let client = async {
        handshake_by_hand(conn, &mut far).await;
        far.write_all(&queued(conn)).await.unwrap();
    };
    let (established, ()) = tokio::join!(accept(&mut near, &server), client);
    conn.set_buffer_limit(None);
    established.unwrap()
}

/// Bytes handed out in pieces of the given sizes, in turn: any cut of the stream a socket
/// might make, through record headers and bodies alike.
struct Cut {
    bytes: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl tokio::io::AsyncRead for Cut {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let size = this.sizes[this.turn % this.sizes.len()];
        this.turn += 1;
        let n = size.min(buf.remaining()).min(this.bytes.len() - this.at);
        buf.put_slice(&this.bytes[this.at..this.at + n]);
        this.at += n;
        std::task::Poll::Ready(Ok(()))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// What a peer sends between its records: data, or a key update.
#[derive(Debug, Clone)]
enum Step {
    Data(usize),
    KeyUpdate,
}

mod interleavings {
    use proptest::prelude::*;

    use super::*;

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        let step = prop_oneof![4 => (0..40_000usize).prop_map(Step::Data), 1 => Just(Step::KeyUpdate)];
        proptest::collection::vec(step, 1..10)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// rustls' records, with key updates anywhere between them, cut anywhere on the way:
        /// our reader hands out exactly the bytes sent, then the end at the close_notify.
        #[test]
        fn rustls_records_cut_anywhere_reach_our_reader_whole(
            steps in steps(),
            sizes in proptest::collection::vec(1..20_000usize, 1..12),
        ) {
            let (got, expected) = runtime().block_on(async {
                let (_, client) = configs();
                let mut conn = rustls::ClientConnection::new(Arc::new(client), localhost()).unwrap();
                let established = established_with(&mut conn).await;
                let mut expected = Vec::new();
                for (n, step) in steps.iter().enumerate() {
                    match step {
                        Step::Data(len) => {
                            let data = pattern(*len, n as u8);
                            std::io::Write::write_all(&mut conn.writer(), &data).unwrap();
                            expected.extend_from_slice(&data);
                        }
                        Step::KeyUpdate => conn.refresh_traffic_keys().unwrap(),
                    }
                }
                conn.send_close_notify();
                let wire = Cut { bytes: queued(&mut conn), at: 0, sizes, turn: 0 };
                let (mut reader, _writer) = established.over(wire, tokio::io::sink());
                let mut got = Vec::new();
                reader.read_to_end(&mut got).await.unwrap();
                (got, expected)
            });
            prop_assert!(got == expected, "{} bytes read, {} sent", got.len(), expected.len());
        }

        /// Our writer's records, from writes of any shape, with our keys worn out after any
        /// number of records: rustls opens exactly the bytes written.
        #[test]
        fn our_records_from_any_writes_reach_rustls_whole(
            writes in proptest::collection::vec(proptest::collection::vec(0..20_000usize, 1..4), 1..8),
            wear in 1..6u64,
        ) {
            let (got, expected) = runtime().block_on(async {
                let (_, client) = configs();
                let mut conn = rustls::ClientConnection::new(Arc::new(client), localhost()).unwrap();
                let established = established_with(&mut conn).await;
                let (_reader, mut writer) = established.over(tokio::io::empty(), Vec::new());
                writer.wear_out_after(wear);
                let mut expected = Vec::new();
                for (n, lens) in writes.iter().enumerate() {
                    let parts: Vec<Vec<u8>> = lens.iter().map(|len| pattern(*len, n as u8)).collect();
                    let mut slices: Vec<std::io::IoSlice<'_>> = parts.iter().map(|part| std::io::IoSlice::new(part)).collect();
                    let mut slices = &mut slices[..];
                    while !slices.is_empty() {
                        let written = writer.write_vectored(slices).await.unwrap();
                        std::io::IoSlice::advance_slices(&mut slices, written);
                    }
                    parts.iter().for_each(|part| expected.extend_from_slice(part));
                }
                writer.shutdown().await.unwrap();
                let mut wire = &writer.get_ref()[..];
                let mut got = Vec::new();
                while !wire.is_empty() {
                    conn.read_tls(&mut wire).unwrap();
                    conn.process_new_packets().unwrap();
                    let _ = std::io::Read::read_to_end(&mut conn.reader(), &mut got);
                }
                (got, expected)
            });
            prop_assert!(got == expected, "{} bytes opened, {} written", got.len(), expected.len());
        }
    }
}

/// rustls asks for a key update (it updates its own and requests ours): our reader follows
/// its new keys, and our writer answers with an update of its own before its next record.
#[tokio::test]
async fn key_updates_asked_by_the_peer_are_followed_and_answered() {
    let ((mut reader, mut writer), mut theirs, _) = our_server().await;
    let before = pattern(3 * protection::MAX_PLAINTEXT, 6);
    writer.write_all(&before).await.unwrap();
    writer.flush().await.unwrap();
    let mut got_before = vec![0u8; before.len()];
    theirs.read_exact(&mut got_before).await.unwrap();
    assert!(got_before == before);
    assert_eq!(writer.records_under_current_keys(), 3);
    theirs.get_mut().1.refresh_traffic_keys().unwrap();
    theirs.write_all(b"after the update").await.unwrap();
    theirs.flush().await.unwrap();
    let mut got = [0u8; 16];
    reader.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"after the update");
    writer.write_all(b"our answer").await.unwrap();
    writer.flush().await.unwrap();
    let mut answer = [0u8; 10];
    theirs.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"our answer", "rustls opened what we sealed after our update");
    assert_eq!(writer.records_under_current_keys(), 1, "the answer went under new keys");
}

/// Keys that reach their confidentiality limit are updated before the next record.
#[tokio::test]
async fn worn_out_keys_are_updated_before_the_next_record() {
    let ((_reader, mut writer), mut theirs, _) = our_server().await;
    writer.wear_out_after(3);
    let data = pattern(10 * protection::MAX_PLAINTEXT, 5);
    let got = exchange(&mut writer, &data, &mut theirs, data.len()).await;
    assert!(got == data, "rustls followed our key updates");
}

#[tokio::test]
async fn close_notify_ends_the_stream_and_a_cut_connection_is_an_error() {
    let ((mut reader, mut writer), mut theirs, _) = our_server().await;
    theirs.shutdown().await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(reader.read_to_end(&mut rest).await.unwrap(), 0, "the peer's close_notify is the end");
    writer.shutdown().await.unwrap();
    assert_eq!(theirs.read_to_end(&mut rest).await.unwrap(), 0, "rustls took our close_notify");

    let ((mut reader, _writer), theirs, _) = our_server().await;
    drop(theirs);
    let cut = reader.read_to_end(&mut rest).await.unwrap_err();
    assert_eq!(cut.kind(), std::io::ErrorKind::UnexpectedEof, "{cut}");
}

#[tokio::test]
async fn a_quiet_reader_holds_no_buffer() {
    let ((mut reader, _writer), mut theirs, _) = our_server().await;
    theirs.write_all(b"ping").await.unwrap();
    theirs.flush().await.unwrap();
    let mut got = [0u8; 4];
    reader.read_exact(&mut got).await.unwrap();
    assert!(futures::poll!(std::pin::pin!(reader.read(&mut got))).is_pending());
    assert_eq!(reader.buffer_capacity(), 0);
}

/// One direction's keys, as both ends hold them.
fn keys() -> (Sealer, Opener) {
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384.tls13().unwrap();
    let secrets = || rustls::ConnectionTrafficSecrets::Aes256Gcm {
        key: rustls::crypto::cipher::AeadKey::from([7u8; 32]),
        iv: rustls::crypto::cipher::Iv::from([9u8; 12]),
    };
    (Sealer::new(suite, secrets(), 0).unwrap(), Opener::new(suite, secrets(), 0).unwrap())
}

#[test]
fn an_altered_replayed_or_reordered_record_does_not_open() {
    let (mut sealer, mut opener) = keys();
    let first = sealer.seal(rustls::ContentType::ApplicationData, &[b"one", b" and two"]).unwrap();
    let second = sealer.seal(rustls::ContentType::ApplicationData, &[b"three"]).unwrap();
    assert_eq!(record_len(&first).unwrap(), Some(first.len()));

    let mut altered = first.clone();
    altered[HEADER_LEN + 2] ^= 1;
    assert!(matches!(keys().1.open(&mut altered), Err(RecordError::Open(_))));
    let mut reordered = second.clone();
    assert!(matches!(keys().1.open(&mut reordered), Err(RecordError::Open(_))), "sequence 1 opened as 0");

    let mut record = first.clone();
    let (typ, plain) = opener.open(&mut record).unwrap();
    assert_eq!((typ, &record[plain]), (rustls::ContentType::ApplicationData, &b"one and two"[..]));
    let mut replayed = first.clone();
    assert!(opener.open(&mut replayed).is_err(), "a record replayed does not open again");
}

#[test]
fn headers_no_tls13_peer_sends_are_refused() {
    assert_eq!(record_len(&[23, 3, 3, 0]).unwrap(), None, "a header not yet whole");
    assert!(matches!(record_len(&[22, 3, 3, 0, 5]), Err(RecordError::UnexpectedRecord(22))));
    assert!(matches!(record_len(&[23, 3, 1, 0, 5]), Err(RecordError::UnexpectedVersion(0x0301))));
    let too_long = (protection::MAX_CIPHERTEXT + 1) as u16;
    let [high, low] = too_long.to_be_bytes();
    assert!(matches!(record_len(&[23, 3, 3, high, low]), Err(RecordError::Oversized(_))));
}
