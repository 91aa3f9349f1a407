//! Parsing the units people type on a command line: durations (`250ms`, `5s`, `2m`, `1h`)
//! and sizes in bytes (`65536`, `64k`, `1m`).

use std::time::Duration;

/// Parses a duration written as a whole number and a unit: `ms`, `s`, `m` or `h`.
///
/// `0` alone is accepted (and means "off" where a flag allows it). On failure the error
/// says what was expected; the caller adds which flag the value belonged to.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let expected = || {
        format!(
            "invalid duration \"{text}\": expected a number and a unit (ms, s, m, h), e.g. 250ms or 5s"
        )
    };
    let number: u64 = number.parse().map_err(|_| expected())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(expected()),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration \"{text}\": too large"))
}

/// Parses a size in bytes: a whole number, optionally followed by `k` (KiB) or `m` (MiB).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let (number, multiplier) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 1024),
        Some((at, 'm' | 'M')) => (&text[..at], 1024 * 1024),
        _ => (text, 1),
    };
    let expected =
        || format!("invalid size \"{text}\": expected bytes, or a number with k or m, e.g. 64k");
    let number: usize = number.parse().map_err(|_| expected())?;
    number.checked_mul(multiplier).ok_or_else(|| format!("invalid size \"{text}\": too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        for bad in ["", "k", "1g", "-1k", "1.5m", "99999999999999999999m"] {
            assert!(parse_size(bad).unwrap_err().contains(&format!("\"{bad}\"")), "{bad}");
        }
    }

    #[test]
    fn rejects_with_the_value_named() {
        for bad in ["", "5", "s", "-1s", "1.5s", "5 s", "5sec", "99999999999999999999h"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("\"{bad}\"")), "{err}");
        }
    }
}
