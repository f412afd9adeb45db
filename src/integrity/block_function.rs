//! Which MD5 block function this process hashes with, chosen once by timing both.
//!
//! The AVX-512 block function ([`super::compress_avx512`]) has one operation fewer on MD5's
//! chain in half the steps, which made it 9 % faster than the portable one on an Intel Xeon.
//! On an AMD EPYC (Zen 4), which has the same instructions, it was 23 % *slower* (1.72 s
//! against 1.40 s of hashing for 1 GiB): the processor's feature flags do not say which is
//! faster, so the first hash of the process times both on the same blocks and keeps the
//! faster. `FTP_ACTOR_MD5=portable` or `=avx512` in the environment overrides the measurement,
//! for comparisons (docs/BENCHMARKS.md).

use std::fmt;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// The environment variable that overrides the measured choice.
pub const OVERRIDE_VARIABLE: &str = "FTP_ACTOR_MD5";

/// One of the block functions this build has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockFunction {
    /// Scalar code, on every processor ([`super::compress`]).
    Portable,
    /// Three-input logic in vector registers, where the processor has AVX-512F and VL.
    Avx512,
}

impl fmt::Display for BlockFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockFunction::Portable => "portable",
            BlockFunction::Avx512 => "avx512",
        })
    }
}

/// How the block function in use was chosen, for the server's start-up log and `loadgen md5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The processor has only the portable one.
    OnlyOne,
    /// Set by [`OVERRIDE_VARIABLE`].
    Overridden,
    /// Both timed on the same blocks; the best of several rounds each.
    Measured { portable: Duration, avx512: Duration },
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::OnlyOne => f.write_str("the only one this processor runs"),
            Choice::Overridden => write!(f, "set by {OVERRIDE_VARIABLE}"),
            Choice::Measured { portable, avx512 } => write!(
                f,
                "measured: portable {:.1} µs, avx512 {:.1} µs for {TIMED_BLOCKS} blocks",
                portable.as_secs_f64() * 1e6,
                avx512.as_secs_f64() * 1e6
            ),
        }
    }
}

/// The block function every hash of this process uses, and how it was chosen.
pub fn in_use() -> (BlockFunction, Choice) {
    static CHOSEN: LazyLock<(BlockFunction, Choice)> = LazyLock::new(choose);
    *CHOSEN
}

/// Reads the override; a value that names no block function is ignored with a warning (the
/// measured choice in its place), since hashing must work whatever the environment says.
pub fn parse_override(value: Option<&str>) -> Option<BlockFunction> {
    match value?.trim().to_ascii_lowercase().as_str() {
        "portable" => Some(BlockFunction::Portable),
        "avx512" => Some(BlockFunction::Avx512),
        _ => None,
    }
}

/// The faster of two measured block functions; a tie keeps the portable one, which runs the
/// same everywhere.
pub fn faster(portable: Duration, avx512: Duration) -> BlockFunction {
    if avx512 < portable { BlockFunction::Avx512 } else { BlockFunction::Portable }
}

fn choose() -> (BlockFunction, Choice) {
    let requested = std::env::var(OVERRIDE_VARIABLE).ok();
    let wanted = parse_override(requested.as_deref());
    if let (Some(value), None) = (&requested, wanted) {
        tracing::warn!(value, "{OVERRIDE_VARIABLE} names no MD5 block function (portable, avx512); ignored");
    }
    if !avx512_available() {
        if wanted == Some(BlockFunction::Avx512) {
            tracing::warn!("{OVERRIDE_VARIABLE}=avx512, but this processor has no AVX-512: hashing portably");
        }
        return (BlockFunction::Portable, Choice::OnlyOne);
    }
    if let Some(function) = wanted {
        return (function, Choice::Overridden);
    }
    let (portable, avx512) = time_both();
    (faster(portable, avx512), Choice::Measured { portable, avx512 })
}

fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::compress_avx512::available();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Blocks per timing: 16 KiB, about 20 µs of hashing, small enough to stay in L1.
const TIMED_BLOCKS: usize = 256;
/// Rounds per block function, alternating; the best of each counts, so that an interruption
/// in one round does not decide the choice. About 0.3 ms in all, once per process.
const TIMING_ROUNDS: usize = 7;

/// The best time of each block function over the same blocks, measured in alternation.
fn time_both() -> (Duration, Duration) {
    let blocks: Vec<[u8; 64]> =
        (0..TIMED_BLOCKS).map(|i| std::array::from_fn(|j| (i * 64 + j).wrapping_mul(0x9d) as u8)).collect();
    let mut best = [Duration::MAX; 2];
    for _ in 0..TIMING_ROUNDS {
        for (slot, function) in [BlockFunction::Portable, BlockFunction::Avx512].into_iter().enumerate() {
            let mut state = super::compress::INITIAL_STATE;
            let started = Instant::now();
            run(function, &mut state, blocks.iter());
            best[slot] = best[slot].min(started.elapsed());
            std::hint::black_box(state);
        }
    }
    (best[0], best[1])
}

/// Folds the blocks into the state with the given block function.
pub(super) fn run<'a>(function: BlockFunction, state: &mut [u32; 4], blocks: impl Iterator<Item = &'a [u8; 64]>) {
    match function {
        #[cfg(target_arch = "x86_64")]
        BlockFunction::Avx512 if avx512_available() => {
            // SAFETY: the processor has the features the function is compiled for.
            unsafe { super::compress_avx512::compress_blocks(state, blocks) }
        }
        _ => blocks.for_each(|block| super::compress::compress_block_portable(state, block)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_names_a_block_function_or_nothing() {
        assert_eq!(parse_override(Some("portable")), Some(BlockFunction::Portable));
        assert_eq!(parse_override(Some(" AVX512 ")), Some(BlockFunction::Avx512));
        assert_eq!(parse_override(Some("sse")), None);
        assert_eq!(parse_override(Some("")), None);
        assert_eq!(parse_override(None), None);
    }

    #[test]
    fn the_faster_block_function_wins_and_a_tie_stays_portable() {
        let ms = Duration::from_millis;
        assert_eq!(faster(ms(3), ms(2)), BlockFunction::Avx512);
        assert_eq!(faster(ms(2), ms(3)), BlockFunction::Portable);
        assert_eq!(faster(ms(2), ms(2)), BlockFunction::Portable);
    }

    /// The timing itself: both functions ran (a measured choice has two real times) and the
    /// choice is the faster of them.
    #[test]
    fn a_measured_choice_is_the_faster_of_two_real_timings() {
        let (function, choice) = in_use();
        match choice {
            Choice::Measured { portable, avx512 } => {
                assert!(portable > Duration::ZERO && avx512 > Duration::ZERO);
                assert_eq!(function, faster(portable, avx512));
            }
            Choice::OnlyOne => assert_eq!(function, BlockFunction::Portable),
            Choice::Overridden => {
                assert_eq!(Some(function), parse_override(std::env::var(OVERRIDE_VARIABLE).ok().as_deref()))
            }
        }
    }
}
