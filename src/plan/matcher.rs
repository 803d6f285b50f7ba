//! What a route matches (path, methods, headers), against a [`RequestView`] of the request.

use regex_lite::Regex;

/// What a route matches; every part given must match. An empty match matches everything.
#[derive(Debug, Default)]
pub struct RouteMatch {
    pub path: Option<PathMatch>,
    /// Empty means any method.
    pub methods: Vec<String>,
    pub headers: Vec<HeaderMatch>,
}

#[derive(Debug)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    /// Anchored at both ends: the whole path must match, as in Envoy's `safe_regex`.
    Regex(WholeValueRegex),
}

#[derive(Debug)]
pub struct HeaderMatch {
    /// Lower case.
    pub name: String,
    pub rule: HeaderRule,
}

#[derive(Debug)]
pub enum HeaderRule {
    Exact(String),
    Prefix(String),
    /// Anchored at both ends.
    Regex(WholeValueRegex),
    Present,
}

/// A regex that must match a whole value, with the literal text every match starts with,
/// found at configure time. Most values a route sees are misses, and most miss on their first
/// bytes (`/api/items` against `/v[0-9]+/orders/.*`): comparing the prefix settles those
/// without running the regex, which costs several times more.
#[derive(Debug)]
pub struct WholeValueRegex {
    /// Compiled as `^(?:pattern)$`.
    regex: Regex,
    literal_prefix: String,
}

impl WholeValueRegex {
    /// `anchored` is `pattern` compiled as `^(?:pattern)$`.
    pub fn new(pattern: &str, anchored: Regex) -> Self {
        WholeValueRegex {
            regex: anchored,
            literal_prefix: literal_prefix(pattern),
        }
    }

    /// The anchored pattern, `^(?:pattern)$`.
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    /// The literal text every match starts with (see [`literal_prefix`]).
    pub fn literal_prefix(&self) -> &str {
        &self.literal_prefix
    }

    /// A value that is not UTF-8 never matches.
    pub fn matches(&self, value: &[u8]) -> bool {
        value.starts_with(self.literal_prefix.as_bytes())
            && std::str::from_utf8(value).is_ok_and(|text| self.regex.is_match(text))
    }
}

/// The literal text at the start of every whole-value match of `pattern`; empty when there is
/// none, or when the pattern is too clever to tell (an alternation anywhere, a group or class
/// first, an escape, a flag). Only ever too short, never too long: a character followed by a
/// quantifier that allows zero (`*`, `?`, `{`) is not part of it.
pub fn literal_prefix(pattern: &str) -> String {
    if pattern.contains('|') {
        return String::new();
    }
    let mut prefix = String::new();
    for character in pattern.chars() {
        match character {
            '*' | '?' | '{' => {
                prefix.pop();
                break;
            }
            '\\' | '.' | '+' | '(' | ')' | '[' | ']' | '}' | '^' | '$' => break,
            literal => prefix.push(literal),
        }
    }
    prefix
}

/// The request as the matcher sees it. The adapter asks the host only when a route first needs
/// to know something about the request. Values are bytes: a client may send anything, and a
/// header that is not UTF-8 must not break matching.
pub trait RequestView {
    /// The `:path` pseudo-header, query string included.
    fn path(&mut self) -> Option<&[u8]>;
    /// The `:method` pseudo-header.
    fn method(&mut self) -> Option<&[u8]>;
    /// The first value of a request header, by lower-case name.
    fn header(&mut self, name: &str) -> Option<&[u8]>;
}

/// The request's path as routes match it: without the query string, as Envoy's route matcher
/// does; empty when the request has no `:path`.
pub fn matched_path(request: &mut impl RequestView) -> &[u8] {
    let path = request.path().unwrap_or_default();
    match path.iter().position(|&b| b == b'?') {
        Some(query_start) => path.get(..query_start).unwrap_or_default(),
        None => path,
    }
}

impl RouteMatch {
    pub fn matches(&self, request: &mut impl RequestView) -> bool {
        if let Some(path_match) = &self.path {
            let path = matched_path(request);
            let path_ok = match path_match {
                PathMatch::Prefix(prefix) => path.starts_with(prefix.as_bytes()),
                PathMatch::Exact(exact) => path == exact.as_bytes(),
                PathMatch::Regex(regex) => regex.matches(path),
            };
            if !path_ok {
                return false;
            }
        }
        if !self.methods.is_empty() {
            let method = request.method().unwrap_or_default();
            if !self
                .methods
                .iter()
                .any(|allowed| allowed.as_bytes() == method)
            {
                return false;
            }
        }
        self.headers.iter().all(|header| {
            let value = request.header(&header.name);
            match (&header.rule, value) {
                (HeaderRule::Present, value) => value.is_some(),
                (_, None) => false,
                (HeaderRule::Exact(exact), Some(value)) => value == exact.as_bytes(),
                (HeaderRule::Prefix(prefix), Some(value)) => value.starts_with(prefix.as_bytes()),
                (HeaderRule::Regex(regex), Some(value)) => regex.matches(value),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn whole(pattern: &str) -> WholeValueRegex {
        let anchored = regex_lite::Regex::new(&format!("^(?:{pattern})$")).unwrap();
        WholeValueRegex::new(pattern, anchored)
    }

    #[test]
    fn literal_prefix_stops_before_anything_that_is_not_plain_text() {
        for (pattern, prefix) in [
            ("/v[0-9]+/orders/[0-9]+", "/v"),
            ("/api/items", "/api/items"),
            ("/api/.*", "/api/"),
            ("/apis?/x", "/api"),
            ("/ab*c", "/a"),
            ("/ab+c", "/ab"),
            ("/a{0,2}", "/"),
            ("/a\\.b", "/a"),
            ("(?i)/admin", ""),
            ("[a-z]+/x", ""),
            ("/a|/b", ""),
            ("/(a|b)", ""),
            ("^/x", ""),
            ("", ""),
            ("/ü/x", "/ü/x"),
        ] {
            assert_eq!(literal_prefix(pattern), prefix, "{pattern:?}");
        }
    }

    #[test]
    fn the_prefix_never_changes_what_a_regex_matches() {
        let values: &[&[u8]] = &[
            b"/v1/orders/7",
            b"/v/orders/7",
            b"/api/items",
            b"/apis/x",
            b"/api/x",
            b"/ac",
            b"/abbc",
            b"/abc",
            b"/",
            b"/aa",
            b"/a.b",
            b"/aXb",
            b"/ADMIN",
            b"/admin",
            b"/a",
            b"/b",
            b"",
            b"/\xff",
            "/ü/x".as_bytes(),
        ];
        for pattern in [
            "/v[0-9]+/orders/[0-9]+",
            "/api/.*",
            "/apis?/x",
            "/ab*c",
            "/ab+c",
            "/a{0,2}",
            "/a\\.b",
            "(?i)/admin",
            "/a|/b",
            "/(a|b)",
            "/ü/x",
            "",
        ] {
            let anchored = regex_lite::Regex::new(&format!("^(?:{pattern})$")).unwrap();
            let with_prefix = whole(pattern);
            for value in values {
                let plain = std::str::from_utf8(value).is_ok_and(|text| anchored.is_match(text));
                assert_eq!(
                    with_prefix.matches(value),
                    plain,
                    "{pattern:?} on {value:?}"
                );
            }
        }
    }
}
