//! Durations and byte sizes as people write them: `250ms`, `5s`, `2m`, `1h`, `64k`, `1m`.
//!
//! Both the command line and the config file read these, so they share one parser and
//! one error message. The grammar is deliberately small: a whole number followed by a
//! unit, with no spaces, no fractions and no combinations (`1m30s` is written `90s`).
//! Every duration needs a unit because a bare `30` could mean seconds or milliseconds,
//! except `0`, which is unambiguous and means "off" wherever a timeout is optional.
//!
//! The test `the_module_example` at the end of this file runs an example.

use std::time::Duration;

use crate::settings::Error;

// Errors are `expected WHAT, found "VALUE"` (a value error), so that the caller
// can say where the value came from: `--idle-timeout: expected ...` on the command line,
// `relay.conf:3:14: expected ...` in the config file.
const DURATION_EXPECTED: &str = "a duration such as 250ms, 5s, 2m, 1h or 0";
const SIZE_EXPECTED: &str = "a size in bytes such as 512, 64k, 1m or 1g";

fn expected(what: &str, text: &str) -> Error {
    Error::value(format!("expected {what}, found {text:?}"))
}

/// Parses a duration: a whole number followed by `ms`, `s`, `m` or `h`, or a bare `0`.
///
/// `0` (with or without a unit) gives [`Duration::ZERO`]; settings that can be turned off
/// document that zero means off.
///
/// # Errors
/// Returns `expected a duration such as 250ms, 5s, 2m, 1h or 0, found "TEXT"` when the unit
/// is missing or unknown, the number is not a whole non-negative number, or the duration
/// does not fit in a `Duration`.
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let error = || expected(DURATION_EXPECTED, text);
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let (number, unit) = split_number(text).ok_or_else(error)?;
    // Check "ms" before "m" and "s": the unit is the whole suffix, not its first letter.
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(error()),
    };
    let millis = number.checked_mul(millis_per_unit).ok_or_else(error)?;
    Ok(Duration::from_millis(millis))
}

/// Parses a byte size: a whole number, optionally followed by `k`, `m` or `g`
/// (powers of 1024, upper or lower case).
///
/// Sizes are binary because the things they size (stacks, buffers) are counted in
/// pages and powers of two; `64k` is 65536 bytes. The result is a `usize` because every
/// size tcprelay takes is the size of something in memory.
///
/// # Errors
/// Returns `expected a size in bytes such as 512, 64k, 1m or 1g, found "TEXT"` when the
/// unit is unknown, the number is not a whole non-negative number, or the size does not
/// fit in a `usize`.
pub fn parse_size(text: &str) -> Result<usize, Error> {
    let error = || expected(SIZE_EXPECTED, text);
    let (number, unit) = split_number(text).ok_or_else(error)?;
    let number = usize::try_from(number).map_err(|_| error())?;
    let bytes_per_unit: usize = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return Err(error()),
    };
    number.checked_mul(bytes_per_unit).ok_or_else(error)
}

/// Writes a duration back in the largest unit that represents it exactly, so that
/// `--check` prints `90s` for what the user wrote as `90s` and `2m` for `120s`.
///
/// Sub-millisecond parts are dropped: [`parse_duration`] never produces them.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0".to_string();
    }
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if millis % size == 0 {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

/// Writes a byte size back in the largest unit that represents it exactly (`64k`, `1m`,
/// `65537`), in a form [`parse_size`] reads.
pub fn format_size(bytes: usize) -> String {
    for (unit, size) in [("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if bytes != 0 && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// Splits `"250ms"` into `(250, "ms")`. Returns `None` unless the text starts with at
/// least one ASCII digit, and the number fits in a `u64`.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    // `u64::from_str` would also accept a leading `+`; `split_at` on ASCII digits rules it out.
    let number = digits.parse::<u64>().ok()?;
    Some((number, unit))
}

/// Parses a socket file mode: octal, three or four digits (`660`, `0660`, `0o660`), at most
/// `0777` (set-id and sticky bits mean nothing on a socket).
///
/// # Errors
/// A message naming the text when it is not such a number.
pub fn parse_socket_mode(text: &str) -> Result<u32, Error> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let valid =
        (3..=4).contains(&digits.len()) && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if valid && mode <= 0o777 => Ok(mode),
        _ => Err(Error::value(format!(
            "invalid socket mode \"{text}\": expected an octal mode from 000 to 0777, e.g. 0660"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn zero_means_off_with_or_without_unit() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_that_are_rejected() {
        for bad in [
            "",
            "30",
            "5x",
            "s",
            "-5s",
            "+5s",
            "1.5s",
            "5 s",
            " 5s",
            "5S",
            "1m30s",
            "5sec",
            "18446744073709551615h", // overflows when converted to milliseconds
            "99999999999999999999s", // does not fit in a u64 at all
        ] {
            let error = parse_duration(bad).expect_err(bad);
            assert!(error.to_string().ends_with(&format!("found {bad:?}")), "{error}");
        }
    }

    #[test]
    fn duration_error_names_the_value_and_the_expected_form() {
        assert_eq!(
            parse_duration("5x").unwrap_err().to_string(),
            r#"expected a duration such as 250ms, 5s, 2m, 1h or 0, found "5x""#
        );
    }

    #[test]
    fn sizes_in_every_unit() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64k"), Ok(65_536));
        assert_eq!(parse_size("64K"), Ok(65_536));
        assert_eq!(parse_size("1m"), Ok(1_048_576));
        assert_eq!(parse_size("2G"), Ok(2 * 1_073_741_824));
    }

    #[test]
    fn sizes_that_are_rejected() {
        for bad in ["", "k", "64kb", "64 k", "-1", "1.5m", "1t", "99999999999999999999g"] {
            let error = parse_size(bad).expect_err(bad);
            assert!(error.to_string().ends_with(&format!("found {bad:?}")), "{error}");
        }
        assert_eq!(
            parse_size("64kb").unwrap_err().to_string(),
            r#"expected a size in bytes such as 512, 64k, 1m or 1g, found "64kb""#
        );
    }

    #[test]
    fn format_duration_picks_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::ZERO), "0");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn format_size_round_trips() {
        for bytes in [0, 1, 8191, 8192, 65_536, 1 << 20, 3 << 30, usize::MAX] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes), "{bytes}");
        }
        assert_eq!(format_size(65_536), "64k");
        assert_eq!(format_size(1 << 20), "1m");
    }

    #[test]
    fn format_then_parse_gives_back_the_same_duration() {
        for millis in [1, 999, 1000, 59_000, 60_000, 3_600_000, 5_400_000] {
            let duration = Duration::from_millis(millis);
            assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }
    }

    /// The example the module documentation points to.
    #[test]
    fn the_module_example() {
        use crate::settings::units::{parse_duration, parse_size};
        use std::time::Duration;

        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_size("64k").unwrap(), 64 * 1024);
        assert!(parse_duration("30").is_err()); // seconds? milliseconds? say which
    }

    #[test]
    fn socket_modes_are_three_or_four_octal_digits_up_to_0777() {
        for (text, mode) in [("660", 0o660), ("0660", 0o660), ("0o600", 0o600), ("000", 0)] {
            assert_eq!(parse_socket_mode(text), Ok(mode), "{text}");
        }
        for wrong in ["", "66", "0888", "1777", "07777", "+660", "rw-rw----"] {
            let error = parse_socket_mode(wrong).expect_err(wrong);
            assert!(error.to_string().contains(&format!("\"{wrong}\"")), "{error}");
        }
    }
}
