//! Durations as users write them: deadlines, turned into Envoy's millisecond deadlines, and
//! the lengths of a rollout's steps and of a sticky cookie's life.
//!
//! Two spellings are accepted, because users arrive from two worlds: protobuf JSON durations
//! (`"0.002s"`, `"1.5s"`, as Istio's `VirtualService.timeout` is written) and durations with a
//! unit (`"2ms"`, `"2s"`, `"1m"`, `"1h"`). Arithmetic is exact (integers, no floats), so
//! `"0.002s"` is 2 ms, never 1.9999 ms.

/// The shortest deadline we accept: Envoy's `x-envoy-upstream-rq-timeout-ms` counts whole ms.
pub const MIN_TIMEOUT_MS: u64 = 1;
/// The longest deadline we accept; longer ones are almost always a unit mistake.
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

const NANOS_PER_MS: u128 = 1_000_000;

/// The durations a field accepts, with the bounds spelt as the error message shows them.
#[derive(Clone, Copy, Debug)]
pub struct DurationRange {
    pub min_ms: u64,
    pub max_ms: u64,
    pub min_text: &'static str,
    pub max_text: &'static str,
    /// Why a fraction of a millisecond is refused, if the field has a reason of its own.
    pub why_whole_ms: &'static str,
}

/// A deadline: 1 ms to 24 h.
pub const TIMEOUT_RANGE: DurationRange = DurationRange {
    min_ms: MIN_TIMEOUT_MS,
    max_ms: MAX_TIMEOUT_MS,
    min_text: "1ms",
    max_text: "24h",
    why_whole_ms: " (Envoy deadlines have millisecond resolution)",
};

/// Parses a duration and returns it in whole milliseconds, within
/// [`MIN_TIMEOUT_MS`]..=[`MAX_TIMEOUT_MS`].
pub fn parse_timeout_ms(text: &str) -> Result<u64, String> {
    parse_duration_ms(text, TIMEOUT_RANGE)
}

/// Parses a duration and returns it in whole milliseconds, within `range`.
pub fn parse_duration_ms(text: &str, range: DurationRange) -> Result<u64, String> {
    let too_long = || format!("{text:?} is longer than the maximum of {}", range.max_text);
    // A number too large for the arithmetic is longer than any maximum.
    let nanos = parse_nanos(text)?.ok_or_else(too_long)?;
    if nanos % NANOS_PER_MS != 0 {
        return Err(format!(
            "{text:?} is not a whole number of milliseconds{}",
            range.why_whole_ms
        ));
    }
    let millis = nanos / NANOS_PER_MS;
    if millis < u128::from(range.min_ms) {
        return Err(format!(
            "{text:?} is shorter than the minimum of {}",
            range.min_text
        ));
    }
    if millis > u128::from(range.max_ms) {
        return Err(too_long());
    }
    u64::try_from(millis).map_err(|_| format!("{text:?} is out of range"))
}

/// The duration in nanoseconds; `None` when it does not fit in a `u128`.
fn parse_nanos(text: &str) -> Result<Option<u128>, String> {
    let invalid = || {
        format!(
            "expected a duration such as \"0.002s\", \"1.5s\", \"2ms\", \"1m\" or \"1h\", got {text:?}"
        )
    };
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(number_end);
    let nanos_per_unit: u128 = match unit {
        "ms" => NANOS_PER_MS,
        "s" => 1_000 * NANOS_PER_MS,
        "m" => 60 * 1_000 * NANOS_PER_MS,
        "h" => 60 * 60 * 1_000 * NANOS_PER_MS,
        _ => return Err(invalid()),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // Protobuf durations carry at most nanoseconds: 9 fractional digits.
    if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) || fraction.len() > 9 {
        return Err(invalid());
    }
    if number.ends_with('.') {
        return Err(invalid());
    }
    let whole: u128 = if whole.len() > 20 {
        return Ok(None);
    } else {
        whole.parse().map_err(|_| invalid())?
    };
    let mut fraction_nanos: u128 = 0;
    let mut scale: u128 = 1_000_000_000;
    for digit in fraction.bytes() {
        scale /= 10;
        fraction_nanos += u128::from(digit - b'0') * scale;
    }
    // fraction_nanos is in billionths of one unit.
    let fraction_nanos = fraction_nanos * nanos_per_unit / 1_000_000_000;
    Ok(whole
        .checked_mul(nanos_per_unit)
        .and_then(|whole_nanos| whole_nanos.checked_add(fraction_nanos)))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn protobuf_json_durations() {
        assert_eq!(parse_timeout_ms("0.002s"), Ok(2));
        assert_eq!(parse_timeout_ms("1.5s"), Ok(1500));
        assert_eq!(parse_timeout_ms("2s"), Ok(2000));
        assert_eq!(parse_timeout_ms("0.001000000s"), Ok(1));
        assert_eq!(parse_timeout_ms("86400s"), Ok(MAX_TIMEOUT_MS));
    }

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_timeout_ms("2ms"), Ok(2));
        assert_eq!(parse_timeout_ms("1m"), Ok(60_000));
        assert_eq!(parse_timeout_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_timeout_ms("1.5m"), Ok(90_000));
        assert_eq!(parse_timeout_ms("24h"), Ok(MAX_TIMEOUT_MS));
    }

    #[test]
    fn below_one_millisecond_is_refused() {
        assert!(parse_timeout_ms("0s").unwrap_err().contains("minimum"));
        assert!(parse_timeout_ms("0ms").unwrap_err().contains("minimum"));
        assert!(parse_timeout_ms("0.0005s")
            .unwrap_err()
            .contains("whole number"));
        assert!(parse_timeout_ms("1.5ms")
            .unwrap_err()
            .contains("whole number"));
    }

    #[test]
    fn above_a_day_is_refused() {
        assert!(parse_timeout_ms("25h").unwrap_err().contains("maximum"));
        assert!(parse_timeout_ms("86400.001s")
            .unwrap_err()
            .contains("maximum"));
        assert!(parse_timeout_ms("99999999999999999999999999h")
            .unwrap_err()
            .contains("maximum"));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for text in [
            "",
            "s",
            "2",
            "2 s",
            "-2s",
            "+2s",
            "2sec",
            "1.s",
            ".5s",
            "1..5s",
            "1.2.3s",
            "2S",
            "0.0000000001s",
            "1e3ms",
            "２s",
            "2µs",
            "2us",
        ] {
            let error = parse_timeout_ms(text).unwrap_err();
            assert!(error.contains("expected a duration"), "{text:?}: {error}");
        }
    }
}
