//! Single values as the config writes them, parsed or refused with the message users see:
//! names, header names, weights and other bounded numbers, percentages, durations, regexes,
//! keywords. Pure functions: the section that calls one reports its error at the field's path.

use crate::config::read::show;
use crate::plan::WholeValueRegex;
use crate::units::duration::parse_timeout_ms;
use regex_lite::RegexBuilder;
use serde_json::Value;

/// The longest route name or version: they become metric labels.
pub const MAX_NAME_LEN: usize = 64;
/// The largest weight of one destination: Gateway API's `backendRefs[].weight` range, so a
/// split written for either reads the same.
pub const MAX_WEIGHT: u32 = 1_000_000;
/// Limits that keep a regex from blowing up the module's memory. Matching itself is linear
/// in the input (regex-lite never backtracks).
pub const MAX_REGEX_LEN: usize = 1024;
const MAX_REGEX_COMPILED_BYTES: usize = 256 * 1024;
const MAX_REGEX_NESTING: u32 = 32;
/// The budget of all regexes of a config together, in [`regex_units`]: about 100 bytes of a
/// worker VM's memory per unit once compiled and used (docs/config.md, "Size limits"), so
/// 10,000 routes of `.{7000}`, each within the limits above, cannot take gigabytes per VM.
pub const MAX_REGEX_UNITS: u64 = 1_000_000;

/// What a value's parse gives: the value, or the message to report at its path.
pub type Parsed<T> = Result<T, String>;

/// A route name or a version: 1-[`MAX_NAME_LEN`] of `[A-Za-z0-9_-]`.
pub fn name(text: &str) -> Parsed<String> {
    let is_name = !text.is_empty()
        && text.len() <= MAX_NAME_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !is_name {
        return Err(format!(
            "expected 1-{MAX_NAME_LEN} characters of [A-Za-z0-9_-], got {text:?}"
        ));
    }
    Ok(text.to_string())
}

/// RFC 9110 token characters: what a header name, a method or a cookie name may hold.
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header name, lower-cased; a pseudo-header (`:authority`) only if `allow_pseudo`.
pub fn header_name(name: &str, allow_pseudo: bool) -> Parsed<String> {
    let bare = match name.strip_prefix(':') {
        Some(bare) if allow_pseudo => bare,
        _ => name,
    };
    if !is_token(bare) {
        return Err(format!("expected an HTTP header name, got {name:?}"));
    }
    Ok(name.to_ascii_lowercase())
}

/// The size of a regex with every bounded repetition expanded, computed from the pattern alone
/// so that the checker (64-bit) and the filter (wasm32) agree (the compiled size does not: it
/// counts pointers). A literal, a class, `.` or an escape is 1; a group or a sequence is the sum
/// of its parts, `x|y` the sum of both sides; `e{n}` and `e{n,m}` are `max(n, m) × e`, and `e*`,
/// `e+`, `e?` and `e{n,}` are `(n + 1) × e`. Saturating: a pattern regex-lite refuses may
/// count anything.
pub fn regex_units(pattern: &str) -> u64 {
    let chars: Vec<char> = pattern.chars().collect();
    let mut at = 0;
    let mut total = 0u64;
    // Alternatives at the top level, until the pattern ends.
    loop {
        total = total.saturating_add(sequence_units(&chars, &mut at));
        match chars.get(at) {
            Some('|') | Some(')') => at += 1,
            _ => return total,
        }
    }
}

/// The units of alternatives up to the `)` that closes a group (consumed).
fn alternatives_units(chars: &[char], at: &mut usize) -> u64 {
    let mut total = 0u64;
    loop {
        total = total.saturating_add(sequence_units(chars, at));
        match chars.get(*at) {
            Some('|') => *at += 1,
            Some(')') => {
                *at += 1;
                return total;
            }
            _ => return total,
        }
    }
}

/// The units of a sequence up to `|`, `)` or the end (not consumed).
fn sequence_units(chars: &[char], at: &mut usize) -> u64 {
    let mut total = 0u64;
    while let Some(&c) = chars.get(*at) {
        let atom = match c {
            '|' | ')' => return total,
            '(' => {
                *at += 1;
                if chars.get(*at) == Some(&'?') {
                    // `(?:`, `(?P<name>`, `(?i:`; a bare flag group `(?i)` holds nothing.
                    while let Some(&c) = chars.get(*at) {
                        *at += 1;
                        if c == ':' || c == '>' {
                            break;
                        }
                        if c == ')' {
                            *at -= 1;
                            break;
                        }
                    }
                }
                alternatives_units(chars, at)
            }
            '[' => {
                *at += 1;
                skip_class(chars, at);
                1
            }
            '\\' => {
                let braced = matches!(chars.get(*at + 1), Some('x' | 'u' | 'p' | 'P'));
                *at += 2;
                if braced && chars.get(*at) == Some(&'{') {
                    // `\x{41}`, `\u{41}`, `\p{L}`.
                    skip_past(chars, at, '}');
                }
                1
            }
            _ => {
                *at += 1;
                1
            }
        };
        total = total.saturating_add(repeated(chars, at, atom));
    }
    total
}

/// `atom`'s units under the repetitions that follow it (each consumed, lazy `?` included).
fn repeated(chars: &[char], at: &mut usize, mut atom: u64) -> u64 {
    loop {
        let times = match chars.get(*at) {
            Some('*') | Some('?') => 1,
            Some('+') => 2,
            Some('{') => match counted_repetition(chars, *at) {
                Some((times, end)) => {
                    *at = end - 1;
                    times
                }
                None => return atom,
            },
            _ => return atom,
        };
        *at += 1;
        if chars.get(*at) == Some(&'?') {
            *at += 1;
        }
        atom = atom.saturating_mul(times);
    }
}

/// `{n}`, `{n,}` or `{n,m}` at `start`: its factor and the index past its `}`.
fn counted_repetition(chars: &[char], start: usize) -> Option<(u64, usize)> {
    let close = start + chars.get(start..)?.iter().position(|&c| c == '}')?;
    let inner: String = chars.get(start + 1..close)?.iter().collect();
    let number = |text: &str| text.trim().parse::<u64>().ok();
    let times = match inner.split_once(',') {
        None => number(&inner)?,
        Some((low, "")) => number(low)?.saturating_add(1),
        Some((low, high)) => number(low)?.max(number(high)?),
    };
    Some((times, close + 1))
}

/// Past the `]` that closes a class opened just before `at` (a `]` first in it is a literal).
fn skip_class(chars: &[char], at: &mut usize) {
    if chars.get(*at) == Some(&'^') {
        *at += 1;
    }
    if chars.get(*at) == Some(&']') {
        *at += 1;
    }
    while let Some(&c) = chars.get(*at) {
        *at += 1;
        match c {
            '\\' => *at += 1,
            '[' => skip_class(chars, at),
            ']' => return,
            _ => {}
        }
    }
}

fn skip_past(chars: &[char], at: &mut usize, end: char) {
    while let Some(&c) = chars.get(*at) {
        *at += 1;
        if c == end {
            return;
        }
    }
}

/// A regex matched against a whole value, within the size limits above.
pub fn regex(pattern: &str) -> Parsed<WholeValueRegex> {
    if pattern.len() > MAX_REGEX_LEN {
        return Err(format!("regex is longer than {MAX_REGEX_LEN} characters"));
    }
    // Anchored: Envoy's and Istio's regex matches are whole-value matches.
    let anchored = format!("^(?:{pattern})$");
    match RegexBuilder::new(&anchored)
        .size_limit(MAX_REGEX_COMPILED_BYTES)
        .nest_limit(MAX_REGEX_NESTING)
        .build()
    {
        Ok(regex) => Ok(WholeValueRegex::new(pattern, regex)),
        Err(error) => {
            let first_line = error.to_string();
            let first_line = first_line.lines().last().unwrap_or("").trim().to_string();
            Err(format!("invalid regex {pattern:?}: {first_line}"))
        }
    }
}

/// A deadline (a route's or destination's timeout, a per-try timeout, a delay), in ms.
pub fn timeout(text: &str) -> Parsed<u64> {
    parse_timeout_ms(text)
}

/// One of the `allowed` spellings.
pub fn keyword<T: Copy>(given: &str, allowed: &[(&str, T)]) -> Parsed<T> {
    let found = allowed
        .iter()
        .find(|(spelling, _)| *spelling == given)
        .map(|(_, value)| *value);
    found.ok_or_else(|| {
        let spellings: Vec<String> = allowed
            .iter()
            .map(|(spelling, _)| format!("{spelling:?}"))
            .collect();
        format!("expected one of {}, got {given:?}", spellings.join(", "))
    })
}

/// Any JSON value may arrive here: what is not an integer from 0 to [`MAX_WEIGHT`] is
/// refused, with the value.
pub fn weight(value: &Value) -> Parsed<u32> {
    integer_in(value, (0, MAX_WEIGHT))
}

/// A whole number within `range` (`70.0` reads as 70).
pub fn integer_in(value: &Value, (low, high): (u32, u32)) -> Parsed<u32> {
    value
        .as_f64()
        .filter(|number| {
            number.fract() == 0.0 && (f64::from(low)..=f64::from(high)).contains(number)
        })
        .map(|number| number as u32)
        .ok_or_else(|| {
            format!(
                "expected an integer from {low} to {high}, got {}",
                show(value)
            )
        })
}

/// A number within `range`, as a float (Istio hands every number over as a double).
pub fn number_in(value: &Value, range: (f64, f64), what: &str) -> Parsed<f64> {
    value
        .as_f64()
        .filter(|number| (range.0..=range.1).contains(number))
        .ok_or_else(|| format!("expected {what}, got {}", show(value)))
}

/// A percentage from 0 to `max_percent` with at most two decimals, in hundredths of a
/// percent. (The bound is a whole number: formatting a float would link the float printing
/// code into the module for one message; docs/performance.md has what that costs.)
pub fn basis_points(value: &Value, max_percent: u32) -> Parsed<u32> {
    let percent = number_in(
        value,
        (0.0, f64::from(max_percent)),
        &format!("a percentage from 0 to {max_percent} with at most two decimals"),
    )?;
    let basis_points = (percent * 100.0).round();
    if (basis_points - percent * 100.0).abs() > 1e-6 {
        return Err(format!(
            "expected a percentage with at most two decimals, got {}",
            show(value)
        ));
    }
    Ok(basis_points as u32)
}

/// A share of a route in percent from 0 to 100 with at most four decimals, in millionths of
/// the route.
pub fn share_millionths(value: &Value) -> Parsed<u32> {
    let percent = number_in(
        value,
        (0.0, 100.0),
        "a percentage from 0 to 100 with at most four decimals",
    )?;
    let millionths = (percent * 10_000.0).round();
    if (millionths - percent * 10_000.0).abs() > 1e-6 {
        return Err(format!(
            "expected a percentage with at most four decimals, got {}",
            show(value)
        ));
    }
    Ok(millionths as u32)
}

#[cfg(test)]
mod regex_units_tests {
    use super::regex_units;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn bounded_repetitions_are_expanded() {
        assert_eq!(regex_units("abc"), 3);
        assert_eq!(regex_units(".{7000}"), 7000);
        assert_eq!(regex_units("/r1/.{5000}"), 5004);
        assert_eq!(regex_units("[a-z]{1,64}"), 64);
        assert_eq!(regex_units("(ab|c){10}"), 30);
        assert_eq!(regex_units("a*b+c?"), 1 + 2 + 1);
        assert_eq!(regex_units("a{3,}"), 4);
        assert_eq!(regex_units("(?:x{10}){10}"), 100);
        assert_eq!(regex_units("(?i)ab"), 2);
        assert_eq!(regex_units(r"\d{4}-[[:alpha:]\]]+"), 4 + 1 + 2);
        assert_eq!(regex_units(r"\x{41}{2}"), 2);
        assert_eq!(regex_units("/api/v[0-9]+/users/[a-z0-9-]{1,64}"), 79);
    }

    #[test]
    fn huge_counts_saturate() {
        assert_eq!(
            regex_units("(((a{1000000}){1000000}){1000000}){1000000}"),
            u64::MAX
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_configs::{assert_error, errors_of, route_with_match};
    use crate::config::MAX_REGEX_LEN;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn re2_syntax_regex_lite_lacks_is_refused_with_the_reason() {
        for (pattern, reason) in [
            (r"\\p{L}+", "Unicode character classes are not supported"),
            (r"\\Q.\\E", "unrecognized escape sequence"),
            (r"\\101", "backreferences are not supported"),
            ("[a-z&&b]", "character class intersection is not supported"),
        ] {
            let errors = errors_of(&route_with_match(&format!(r#"{{ "regex": "{pattern}" }}"#)));
            let [error] = &errors[..] else {
                panic!("one error for {pattern}: {errors:?}")
            };
            assert!(
                error.starts_with("routes[0].match.regex: invalid regex ")
                    && error.ends_with(reason),
                "{error}"
            );
        }
    }

    #[test]
    fn regexes_that_would_blow_up_are_refused() {
        let huge = "a{1000}{1000}";
        let errors = errors_of(&route_with_match(&format!(r#"{{ "regex": "{huge}" }}"#)));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].match.regex: invalid regex")),
            "{errors:?}"
        );
        let nested = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        let errors = errors_of(&route_with_match(&format!(r#"{{ "regex": "{nested}" }}"#)));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].match.regex: invalid regex")),
            "{errors:?}"
        );
        let long = "a".repeat(MAX_REGEX_LEN + 1);
        assert_error(
            &route_with_match(&format!(r#"{{ "regex": "{long}" }}"#)),
            "routes[0].match.regex: regex is longer than 1024 characters",
        );
    }
}
