//! MD5's block function (RFC 1321, section 3.4), written for the latency of its chain.
//!
//! MD5 is one long dependency chain: each of its 64 steps needs the word the step before it
//! produced (`b` below), so a block takes as long as that chain, whatever else the processor
//! could do in parallel. Each step therefore computes everything that does not depend on `b`
//! first (the oldest word `a`, the message word, the constant, and in round 2 the `c & !d`
//! half of G, whose two halves never share a bit so that `|` can be `+`), and adds the part
//! that depends on `b` last. That leaves 5, 4, 4 and 5 operations after `b` in rounds 1 to 4
//! (64 steps: 288 operations a block). Left alone, the optimiser re-associates the additions
//! and puts the constant after the part that waits on `b`, one more operation on the chain in
//! every step, which is why [`settled`] pins the early sum.

/// A, B, C and D before the first block.
pub const INITIAL_STATE: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// The sine-derived constants, one per step.
#[rustfmt::skip]
pub(super) const K: [u32; 64] = [
    0xd76a_a478, 0xe8c7_b756, 0x2420_70db, 0xc1bd_ceee, 0xf57c_0faf, 0x4787_c62a, 0xa830_4613, 0xfd46_9501,
    0x6980_98d8, 0x8b44_f7af, 0xffff_5bb1, 0x895c_d7be, 0x6b90_1122, 0xfd98_7193, 0xa679_438e, 0x49b4_0821,
    0xf61e_2562, 0xc040_b340, 0x265e_5a51, 0xe9b6_c7aa, 0xd62f_105d, 0x0244_1453, 0xd8a1_e681, 0xe7d3_fbc8,
    0x21e1_cde6, 0xc337_07d6, 0xf4d5_0d87, 0x455a_14ed, 0xa9e3_e905, 0xfcef_a3f8, 0x676f_02d9, 0x8d2a_4c8a,
    0xfffa_3942, 0x8771_f681, 0x6d9d_6122, 0xfde5_380c, 0xa4be_ea44, 0x4bde_cfa9, 0xf6bb_4b60, 0xbebf_bc70,
    0x289b_7ec6, 0xeaa1_27fa, 0xd4ef_3085, 0x0488_1d05, 0xd9d4_d039, 0xe6db_99e5, 0x1fa2_7cf8, 0xc4ac_5665,
    0xf429_2244, 0x432a_ff97, 0xab94_23a7, 0xfc93_a039, 0x655b_59c3, 0x8f0c_cc92, 0xffef_f47d, 0x8584_5dd1,
    0x6fa8_7e4f, 0xfe2c_e6e0, 0xa301_4314, 0x4e08_11a1, 0xf753_7e82, 0xbd3a_f235, 0x2ad7_d2bb, 0xeb86_d391,
];

/// A block's sixteen little-endian message words.
#[inline(always)]
pub(super) fn message_words(block: &[u8; 64]) -> [u32; 16] {
    let mut x = [0u32; 16];
    for (word, bytes) in x.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    x
}

/// MD5's 64 steps in groups of four (RFC 1321, section 3.4): `$four_steps!(round, first step,
/// [message words], [shifts])` for each group, with `$f` to `$i` naming each round's step (a
/// function, or the truth table of the AVX-512 block function). Both block functions expand
/// this one schedule.
macro_rules! every_step {
    ($four_steps:ident, $f:tt, $g:tt, $h:tt, $i:tt) => {
        $four_steps!($f, 0, [0, 1, 2, 3], [7, 12, 17, 22]);
        $four_steps!($f, 4, [4, 5, 6, 7], [7, 12, 17, 22]);
        $four_steps!($f, 8, [8, 9, 10, 11], [7, 12, 17, 22]);
        $four_steps!($f, 12, [12, 13, 14, 15], [7, 12, 17, 22]);
        $four_steps!($g, 16, [1, 6, 11, 0], [5, 9, 14, 20]);
        $four_steps!($g, 20, [5, 10, 15, 4], [5, 9, 14, 20]);
        $four_steps!($g, 24, [9, 14, 3, 8], [5, 9, 14, 20]);
        $four_steps!($g, 28, [13, 2, 7, 12], [5, 9, 14, 20]);
        $four_steps!($h, 32, [5, 8, 11, 14], [4, 11, 16, 23]);
        $four_steps!($h, 36, [1, 4, 7, 10], [4, 11, 16, 23]);
        $four_steps!($h, 40, [13, 0, 3, 6], [4, 11, 16, 23]);
        $four_steps!($h, 44, [9, 12, 15, 2], [4, 11, 16, 23]);
        $four_steps!($i, 48, [0, 7, 14, 5], [6, 10, 15, 21]);
        $four_steps!($i, 52, [12, 3, 10, 1], [6, 10, 15, 21]);
        $four_steps!($i, 56, [8, 15, 6, 13], [6, 10, 15, 21]);
        $four_steps!($i, 60, [4, 11, 2, 9], [6, 10, 15, 21]);
    };
}
pub(super) use every_step;

/// Hides a value from the optimiser, so that it cannot re-associate the additions after it
/// and put the constant after the part that waits on `b`. It emits no instruction.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[inline(always)]
fn settled(mut value: u32) -> u32 {
    // SAFETY: the template is an assembler comment: no instruction, no memory, no flags. It
    // only tells the compiler that `value` may have changed, which it has not.
    unsafe { core::arch::asm!("/* {0:e} */", inout(reg) value, options(pure, nomem, nostack, preserves_flags)) };
    value
}

/// Elsewhere the order is the optimiser's: still correct, possibly slower.
#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
#[inline(always)]
fn settled(value: u32) -> u32 {
    value
}

/// Round 1: F(b, c, d) = d ^ (b & (c ^ d)), the bitwise "if b then c else d".
#[inline(always)]
fn step_f(a: u32, b: u32, c: u32, d: u32, word: u32, k: u32, shift: u32) -> u32 {
    let early = settled(a.wrapping_add(word).wrapping_add(k));
    early.wrapping_add(d ^ (b & (c ^ d))).rotate_left(shift).wrapping_add(b)
}

/// Round 2: G(b, c, d) = (b & d) | (c & !d); the halves share no bit, so `|` is `+` and the
/// half without `b` joins the early sum.
#[inline(always)]
fn step_g(a: u32, b: u32, c: u32, d: u32, word: u32, k: u32, shift: u32) -> u32 {
    let early = settled(a.wrapping_add(word).wrapping_add(k).wrapping_add(c & !d));
    early.wrapping_add(b & d).rotate_left(shift).wrapping_add(b)
}

/// Round 3: H(b, c, d) = b ^ c ^ d.
#[inline(always)]
fn step_h(a: u32, b: u32, c: u32, d: u32, word: u32, k: u32, shift: u32) -> u32 {
    let early = settled(a.wrapping_add(word).wrapping_add(k));
    early.wrapping_add(b ^ c ^ d).rotate_left(shift).wrapping_add(b)
}

/// Round 4: I(b, c, d) = c ^ (b | !d).
#[inline(always)]
fn step_i(a: u32, b: u32, c: u32, d: u32, word: u32, k: u32, shift: u32) -> u32 {
    let early = settled(a.wrapping_add(word).wrapping_add(k));
    early.wrapping_add(c ^ (b | !d)).rotate_left(shift).wrapping_add(b)
}

/// Folds 64-byte blocks into the state with the block function this process chose once
/// ([`super::block_function`]): the AVX-512 one where the processor has it and it measured
/// faster, else the portable one.
pub fn compress_blocks<'a>(state: &mut [u32; 4], blocks: impl Iterator<Item = &'a [u8; 64]>) {
    super::block_function::run(super::block_function::in_use().0, state, blocks);
}

/// The block function without vector instructions, for every processor.
pub(super) fn compress_block_portable(state: &mut [u32; 4], block: &[u8; 64]) {
    let x = message_words(block);
    let [mut a, mut b, mut c, mut d] = *state;
    // Four steps: the step function, the first step's number, the four message words, the
    // four shifts. Each step writes the word the previous one read as `d`.
    macro_rules! four_steps {
        ($step:ident, $n:expr, [$x0:expr, $x1:expr, $x2:expr, $x3:expr], [$s0:expr, $s1:expr, $s2:expr, $s3:expr]) => {
            a = $step(a, b, c, d, x[$x0], K[$n], $s0);
            d = $step(d, a, b, c, x[$x1], K[$n + 1], $s1);
            c = $step(c, d, a, b, x[$x2], K[$n + 2], $s2);
            b = $step(b, c, d, a, x[$x3], K[$n + 3], $s3);
        };
    }
    every_step!(four_steps, step_f, step_g, step_h, step_i);
    for (word, add) in state.iter_mut().zip([a, b, c, d]) {
        *word = word.wrapping_add(add);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Both block functions give the same state for the same blocks, from any state.
    #[test]
    fn the_avx512_block_function_matches_the_portable_one() {
        if !super::super::compress_avx512::available() {
            eprintln!("this processor has no AVX-512: only the portable block function runs here");
            return;
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut block = [0u8; 64];
            for byte in &mut block {
                *byte = next() as u8;
            }
            let start = [next() as u32, next() as u32, next() as u32, next() as u32];
            let (mut portable, mut vector) = (start, start);
            compress_block_portable(&mut portable, &block);
            // SAFETY: checked above.
            unsafe { super::super::compress_avx512::compress_block(&mut vector, &block) };
            assert_eq!(portable, vector, "block {block:02x?} from {start:08x?}");
        }
    }
}
