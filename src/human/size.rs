//! Human byte sizes: `10MiB`, `512KiB`, `1GiB`, `10MB`, `4096`, `1.5GiB`.

/// A size string that is not a number with a known unit, overflows 64 bits, or does not come
/// to a whole number of bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSize {
    #[error("invalid size {0:?}: use bytes or a number with a unit (KB, MB, GB, TB, KiB, MiB, GiB, TiB)")]
    Unreadable(String),
    #[error("invalid size {0:?}: not a whole number of bytes")]
    NotWholeBytes(String),
}

/// Parses a size with the `parse-size` crate: a number (fractions allowed), an optional space,
/// and a unit, case-insensitive; `KB`/`MB`/`GB`/`TB` (and `K`, `M`, ...) are powers of 1000,
/// `KiB`/`MiB`/`GiB`/`TiB` powers of 1024. A size past 64 bits is refused, not saturated, and
/// so is a fraction of a byte (`1.5`, `0.3KiB`), which the crate would round.
pub fn parse_size(text: &str) -> Result<u64, InvalidSize> {
    let bytes = parse_size::parse_size(text.trim()).map_err(|_| InvalidSize::Unreadable(text.to_string()))?;
    match whole_bytes(text.trim()) {
        true => Ok(bytes),
        false => Err(InvalidSize::NotWholeBytes(text.to_string())),
    }
}

/// Whether a size the crate read (`NUMBER[.FRACTION] [UNIT]`) is a whole number of bytes:
/// FRACTION × the unit is a multiple of 10 to the number of FRACTION's digits.
fn whole_bytes(text: &str) -> bool {
    let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let Some((_, fraction)) = number.split_once('.') else { return true };
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        return true;
    }
    let (Ok(unit), Ok(digits), true) =
        (parse_size::parse_size(format!("1{unit}")), fraction.parse::<u128>(), fraction.len() <= 20)
    else {
        return false;
    };
    (digits * u128::from(unit)) % 10u128.pow(fraction.len() as u32) == 0
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
        // Fractions that come to whole bytes.
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("1.5KB"), Ok(1500));
        assert_eq!(parse_size("2.50 KiB"), Ok(2560));
        assert_eq!(parse_size("7.0"), Ok(7));
    }

    #[test]
    fn a_fraction_of_a_byte_is_refused() {
        for fractional in ["1.5", "0.3KiB", "1.0001KB", "1.5 B", "0.000000000000000000001GiB"] {
            assert_eq!(parse_size(fractional), Err(InvalidSize::NotWholeBytes(fractional.to_string())), "{fractional}");
        }
        assert_eq!(parse_size("1.5").unwrap_err().to_string(), "invalid size \"1.5\": not a whole number of bytes");
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
