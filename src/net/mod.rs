//! The wire: frames, the CBOR codec, and the message types shared by server and client.

pub mod activity;
pub mod address;
pub mod codec;
pub mod data_frame;
pub mod error_code;
pub mod frame;
pub mod lean_read;
pub mod message;
pub mod native_tls;
pub mod strict;

pub use error_code::{ErrorCode, WireError};
pub use frame::{FrameCodec, FrameError, MalformedFrame};
pub use message::{Entry, EntryKind, ListAfter, PROTOCOL_VERSION, Request, Response};
