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

/// Bytes in [`state_to_bytes`]'s form besides the buffered tail: the blocks hashed, then the
/// four state words.
const STATE_HEAD: usize = 8 + 16;

/// `hasher`'s state as bytes, for another process to go on with ([`state_from_bytes`]): the
/// number of 64-byte blocks hashed (u64), the four state words (u32 each), all little-endian,
/// then the 0 to 63 bytes still buffered.
pub fn state_to_bytes(hasher: &Md5) -> Vec<u8> {
    let (core, buffer) = hasher.clone().decompose();
    let mut out = Vec::with_capacity(STATE_HEAD + buffer.get_pos());
    out.extend_from_slice(&core.blocks.to_le_bytes());
    for word in core.state {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(buffer.get_data());
    out
}

/// The hasher [`state_to_bytes`] described; `None` for bytes of another form.
pub fn state_from_bytes(bytes: &[u8]) -> Option<Md5> {
    let (head, tail) = bytes.split_at_checked(STATE_HEAD)?;
    if tail.len() >= 64 {
        return None;
    }
    let (blocks, words) = head.split_first_chunk::<8>()?;
    let mut state = [0u32; 4];
    for (word, bytes) in state.iter_mut().zip(words.chunks_exact(4)) {
        *word = u32::from_le_bytes(bytes.try_into().ok()?);
    }
    let mut hasher = Md5::from_core(Md5Core { blocks: u64::from_le_bytes(*blocks), state });
    // Fewer than a block: buffered, as they were.
    hasher.update(tail);
    Some(hasher)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_in_bytes_goes_on_as_the_hasher_would() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 256) as u8).collect();
        for cut in [0, 1, 63, 64, 65, 640, 999] {
            let mut hasher = Md5::new();
            hasher.update(&data[..cut]);
            let bytes = state_to_bytes(&hasher);
            let mut resumed = state_from_bytes(&bytes).expect("its own form");
            assert_eq!(hashed_len(&resumed), cut as u64);
            resumed.update(&data[cut..]);
            hasher.update(&data[cut..]);
            assert_eq!(resumed.finalize(), hasher.finalize(), "cut at {cut}");
        }
        assert!(state_from_bytes(&[0; STATE_HEAD - 1]).is_none(), "too short");
        assert!(state_from_bytes(&[0; STATE_HEAD + 64]).is_none(), "a whole block cannot be buffered");
    }
}
