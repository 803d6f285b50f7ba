//! RFC 3339 timestamps (`2026-12-01T10:00:00Z`, `2026-12-01T11:00:00+01:00`) to and from Unix
//! milliseconds: a rollout's `start` is written so, and the checker prints its schedule so.
//!
//! Hand-written rather than a date crate: the grammar is small, and the module only ever needs
//! this one conversion. Integer arithmetic only (days from the civil calendar after Howard
//! Hinnant's `days_from_civil`), so it is exact on every target.

const MILLIS_PER_SECOND: i64 = 1_000;
const MILLIS_PER_MINUTE: i64 = 60 * MILLIS_PER_SECOND;
const MILLIS_PER_DAY: i64 = 24 * 60 * MILLIS_PER_MINUTE;

/// Parses an RFC 3339 date-time with a `Z` or a numeric offset, to milliseconds since the Unix
/// epoch. Fractions of a second below a millisecond are dropped. Leap seconds (`:60`) are
/// refused: the proxy's clock has none either.
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, String> {
    let invalid = || {
        format!(
            "expected an RFC 3339 time such as \"2026-12-01T10:00:00Z\" or \"2026-12-01T11:00:00+01:00\", got {text:?}"
        )
    };
    let bytes = text.as_bytes();
    let number = |from: usize, len: usize| -> Option<i64> {
        let digits = bytes.get(from..from + len)?;
        digits.iter().try_fold(0i64, |value, &digit| {
            digit
                .is_ascii_digit()
                .then(|| value * 10 + i64::from(digit - b'0'))
        })
    };
    let separator = |at: usize, allowed: &[u8]| bytes.get(at).is_some_and(|b| allowed.contains(b));
    if !(separator(4, b"-")
        && separator(7, b"-")
        && separator(10, b"Tt ")
        && separator(13, b":")
        && separator(16, b":"))
    {
        return Err(invalid());
    }
    let fields = (|| {
        Some((
            number(0, 4)?,
            number(5, 2)?,
            number(8, 2)?,
            number(11, 2)?,
            number(14, 2)?,
            number(17, 2)?,
        ))
    })();
    let Some((year, month, day, hour, minute, second)) = fields else {
        return Err(invalid());
    };
    let mut at = 19;
    let mut millis = 0;
    if separator(at, b".") {
        at += 1;
        let digits = bytes
            .get(at..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return Err(invalid());
        }
        let mut scale = 100;
        for offset in 0..digits.min(3) {
            millis += number(at + offset, 1).unwrap_or(0) * scale;
            scale /= 10;
        }
        at += digits;
    }
    let offset_minutes = match bytes.get(at..) {
        Some(b"Z" | b"z") => 0,
        Some([sign @ (b'+' | b'-'), _, _, b':', _, _]) => {
            let (Some(hours), Some(minutes)) = (number(at + 1, 2), number(at + 4, 2)) else {
                return Err(invalid());
            };
            if hours > 23 || minutes > 59 {
                return Err(invalid());
            }
            let offset = hours * 60 + minutes;
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return Err(invalid()),
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(format!("{text:?} is not a valid time of day and date"));
    }
    let days = days_from_civil(year, month, day);
    let local =
        days * MILLIS_PER_DAY + (hour * 60 + minute) * MILLIS_PER_MINUTE + second * 1_000 + millis;
    Ok(local - offset_minutes * MILLIS_PER_MINUTE)
}

/// Formats Unix milliseconds as RFC 3339 in UTC: `2026-12-01T10:03:00Z`, with `.250` when the
/// time is not a whole second.
pub fn format_rfc3339_ms(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(MILLIS_PER_DAY);
    let of_day = unix_ms.rem_euclid(MILLIS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (of_day / 3_600_000, of_day / MILLIS_PER_MINUTE % 60);
    let (second, millis) = (of_day / 1_000 % 60, of_day % 1_000);
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}")
    };
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z")
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day counted from 1970-01-01: the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn utc_and_offsets_name_the_same_instant() {
        // `date -u -d 2026-12-01T10:00:00Z +%s` = 1796119200
        let expected = 1_796_119_200_000;
        for text in [
            "2026-12-01T10:00:00Z",
            "2026-12-01t10:00:00z",
            "2026-12-01 10:00:00Z",
            "2026-12-01T11:00:00+01:00",
            "2026-12-01T04:30:00-05:30",
            "2026-12-01T10:00:00.000Z",
            "2026-12-01T10:00:00.0009Z",
            "2026-12-01T10:00:00+00:00",
            "2026-12-01T10:00:00-00:00",
        ] {
            assert_eq!(parse_rfc3339_ms(text), Ok(expected), "{text}");
        }
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59.5Z"), Ok(-500));
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T12:34:56.789Z"),
            Ok(1_709_210_096_789)
        );
    }

    #[test]
    fn formatting_is_the_inverse_of_parsing() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2026-12-01T10:03:00Z",
            "2024-02-29T23:59:59.999Z",
            "2000-03-01T00:00:00Z",
            "2100-02-28T12:00:00.001Z",
            "1969-07-20T20:17:40Z",
            "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
        ] {
            assert_eq!(format_rfc3339_ms(parse_rfc3339_ms(text).unwrap()), text);
        }
        // Every day for eight years, leap days and century rules included, round-trips.
        let start = parse_rfc3339_ms("1999-01-01T00:00:00Z").unwrap();
        for day in 0..(8 * 366) {
            let unix_ms = start + day * MILLIS_PER_DAY + 12_345;
            assert_eq!(
                parse_rfc3339_ms(&format_rfc3339_ms(unix_ms)),
                Ok(unix_ms),
                "day {day}"
            );
        }
    }

    #[test]
    fn malformed_times_are_refused_with_an_example() {
        for text in [
            "",
            "2026-12-01",
            "2026-12-01T10:00:00",
            "2026-12-01T10:00Z",
            "2026-12-01T10:00:00ZZ",
            "2026-12-01T10:00:00+0100",
            "2026-12-01T10:00:00+01",
            "2026-12-01T10:00:00.Z",
            "2026/12/01T10:00:00Z",
            "26-12-01T10:00:00Z",
            "2026-12-01T10:00:00 Z",
            "+2026-12-01T10:00:00Z",
            "2026-12-01T10:00:00+24:00",
            "2026-12-01T10:00:00+01:60",
            "２026-12-01T10:00:00Z",
            "1796119200",
        ] {
            let error = parse_rfc3339_ms(text).unwrap_err();
            assert!(
                error.starts_with("expected an RFC 3339 time"),
                "{text:?}: {error}"
            );
        }
    }

    #[test]
    fn impossible_dates_and_times_are_refused() {
        for text in [
            "2026-02-29T10:00:00Z",
            "2100-02-29T10:00:00Z",
            "2026-13-01T10:00:00Z",
            "2026-00-01T10:00:00Z",
            "2026-04-31T10:00:00Z",
            "2026-12-00T10:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T10:60:00Z",
            "2026-12-31T23:59:60Z",
        ] {
            assert_eq!(
                parse_rfc3339_ms(text),
                Err(format!("{text:?} is not a valid time of day and date")),
            );
        }
        assert!(parse_rfc3339_ms("2024-02-29T10:00:00Z").is_ok());
        assert!(parse_rfc3339_ms("2000-02-29T10:00:00Z").is_ok());
    }
}
