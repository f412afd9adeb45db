//! The MD5 that every transfer is verified with, on both ends of the wire.
//!
//! MD5 is the floor of every verified transfer: a download cannot finish before the client
//! has hashed every byte once, nor an upload before both ends have. Our own block function
//! ([`compress`]) orders each step so that only the newest word waits on the one before it,
//! which ran about a quarter faster than the md-5 crate on an AMD host, and where the processor
//! has AVX-512, a second one ([`compress_avx512`]) shortens that chain by one more operation in
//! half the steps; which of the two runs is measured once per process ([`block_function`]),
//! since the faster one depends on the processor (see docs/DEPENDENCIES.md). The rest
//! (buffering, padding, the `Digest` API) is the RustCrypto `digest` crate's, exactly as the
//! md-5 crate builds it, so [`Md5`] is used like `md5::Md5`. MD5 here detects accidental
//! damage, not tampering by someone who can also rewrite the digest.

pub mod block_function;
mod compress;
#[cfg(target_arch = "x86_64")]
mod compress_avx512;

use std::fmt;

pub use digest::Digest;
use digest::block_buffer::Eager;
use digest::core_api::{
    AlgorithmName, Block, BlockSizeUser, Buffer, BufferKindUser, CoreWrapper, FixedOutputCore, OutputSizeUser, Reset,
    UpdateCore,
};
use digest::typenum::{U16, U64, Unsigned};
use digest::{HashMarker, Output};

/// An MD5 hasher: feed it with `update` in pieces of any size, read the digest with `finalize`.
pub type Md5 = CoreWrapper<Md5Core>;

/// MD5's state between whole 64-byte blocks; [`Md5`] buffers the bytes in between.
#[derive(Clone)]
pub struct Md5Core {
    blocks: u64,
    state: [u32; 4],
}

impl HashMarker for Md5Core {}

impl BlockSizeUser for Md5Core {
    type BlockSize = U64;
}

impl BufferKindUser for Md5Core {
    type BufferKind = Eager;
}

impl OutputSizeUser for Md5Core {
    type OutputSize = U16;
}

impl UpdateCore for Md5Core {
    fn update_blocks(&mut self, blocks: &[Block<Self>]) {
        self.blocks = self.blocks.wrapping_add(blocks.len() as u64);
        compress::compress_blocks(&mut self.state, blocks.iter().map(as_array));
    }
}

impl FixedOutputCore for Md5Core {
    fn finalize_fixed_core(&mut self, buffer: &mut Buffer<Self>, out: &mut Output<Self>) {
        let block_bytes = Self::BlockSize::U64;
        let bits = self.blocks.wrapping_mul(block_bytes).wrapping_add(buffer.get_pos() as u64).wrapping_mul(8);
        let mut state = self.state;
        buffer.len64_padding_le(bits, |block| compress::compress_blocks(&mut state, std::iter::once(as_array(block))));
        for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
    }
}

/// How many bytes `hasher` has been fed: what its state stands for. A saved state is used
/// only for a file of exactly this length (see `storage::resume_states`).
pub fn hashed_len(hasher: &Md5) -> u64 {
    let (core, buffer) = hasher.clone().decompose();
    core.blocks.wrapping_mul(<Md5Core as BlockSizeUser>::BlockSize::U64).wrapping_add(buffer.get_pos() as u64)
}

/// A block as the array it is (the `digest` crate hands blocks over as `GenericArray`s).
fn as_array(block: &Block<Md5Core>) -> &[u8; 64] {
    block.as_slice().try_into().expect("MD5 blocks are 64 bytes")
}

impl Default for Md5Core {
    fn default() -> Self {
        Md5Core { blocks: 0, state: compress::INITIAL_STATE }
    }
}

impl Reset for Md5Core {
    fn reset(&mut self) {
        *self = Md5Core::default();
    }
}

impl AlgorithmName for Md5Core {
    fn write_alg_name(f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Md5")
    }
}

impl fmt::Debug for Md5Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Md5Core { .. }")
    }
}
