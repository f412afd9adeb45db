//! The native protocol's TLS after the handshake: records sealed and opened on buffers we own.
//!
//! rustls does the handshake and the cryptography; this module only decides where the bytes
//! sit. Through rustls' reader, every received record is decrypted in its buffer, copied
//! into a buffer of its own, then copied again into ours, and the unfinished record moved to
//! the front after each socket read: for a verified 1 GiB upload that was 0.24 s of `memmove`
//! on the server, beside 0.12 s for AES-GCM itself (docs/BENCHMARKS.md). Here a record is
//! opened where it was read and copied out once. It is the arrangement rustls offers kernel
//! TLS (`KernelConnection`), with user space in the kernel's place:
//!
//! - [`handshake`]: rustls' unbuffered handshake over the socket, then its secrets;
//! - [`protection`]: one direction's records, with rustls' encrypter and decrypter;
//! - [`reader`], [`writer`]: the two halves, as `AsyncRead` and `AsyncWrite`, and [`stream`]
//!   both in one;
//! - [`key_updates`]: key updates, either way (rustls derives the secrets);
//! - [`exporter`]: the `tls-exporter` channel binding the login is bound to.

pub mod exporter;
pub mod handshake;
pub mod key_updates;
pub mod protection;
pub mod reader;
pub mod stream;
pub mod writer;

#[cfg(test)]
pub(crate) mod tests;

pub use handshake::{Established, HandshakeError, accept, connect};
pub use protection::RecordError;
pub use reader::RecordReader;
pub use stream::RecordStream;
pub use writer::RecordWriter;
