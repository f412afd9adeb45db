//! Human byte sizes: `10MiB`, `512KiB`, `1GiB`, `10MB`, `4096`, `1.5GiB`.

/// A size string that is not a number with a known unit, or overflows 64 bits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {0:?}: use bytes or a number with a unit (KB, MB, GB, TB, KiB, MiB, GiB, TiB)")]
pub struct InvalidSize(pub String);

/// Parses a size with the `parse-size` crate: a number (fractions allowed), an optional space,
/// and a unit, case-insensitive; `KB`/`MB`/`GB`/`TB` (and `K`, `M`, ...) are powers of 1000,
/// `KiB`/`MiB`/`GiB`/`TiB` powers of 1024. A size past 64 bits is refused, not saturated.
pub fn parse_size(text: &str) -> Result<u64, InvalidSize> {
    parse_size::parse_size(text.trim()).map_err(|_| InvalidSize(text.to_string()))
}

/// Formats bytes for people: `512 B`, `1.5 KiB`, `10.0 MiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2 gib"), Ok(2 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        // Fractions, since the crate took over (they used to be refused).
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
    }

    #[test]
    fn rejects_garbage_and_overflow() {
        for bad in ["", "MiB", "10XB", "-5", "99999999999TiB", "18446744073709551616"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(10 << 20), "10.0 MiB");
    }

    proptest! {
        #[test]
        fn plain_numbers_parse_to_themselves(n in any::<u64>()) {
            prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
        }

        #[test]
        fn binary_units_multiply(n in 0u64..1_000_000, unit in 0usize..4) {
            let (suffix, shift) = [("KiB", 10), ("MiB", 20), ("GiB", 30), ("TiB", 40)][unit];
            prop_assert_eq!(parse_size(&format!("{n}{suffix}")), Ok(n << shift));
        }

        #[test]
        fn never_panics(text in ".*") {
            let _ = parse_size(&text);
        }
    }
}
