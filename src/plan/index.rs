//! The routes of a plan, indexed by path at configure time so that matching a request costs
//! what the routes whose path can match cost, not what the whole table does.
//!
//! Routes keep the meaning users rely on: tried in order, the first match wins. The index only
//! narrows which routes are tried. For a request's path it yields every route whose path part
//! can match, as a few lists in ascending route order:
//! - the routes with that exact path (a hash map);
//! - the routes filed under each prefix of the path: prefix routes under their prefix, regex
//!   routes under the literal text every match of theirs starts with
//!   ([`crate::plan::literal_prefix`]), routes without a path condition under the empty prefix.
//!   The prefixes sit in one sorted table where each knows the longest other prefix it starts
//!   with, so all prefixes of a path are found by one binary search and a walk up that chain.
//!
//! Each candidate is then checked with the same [`RouteMatch::matches`] a plain in-order scan
//! uses, lowest index first, and the first that matches wins. Since the candidates include
//! every route that can match, this is the scan's answer ([`RouteTable::first_match_linear`],
//! kept as the reference the tests compare with).
//!
//! [`RouteMatch::matches`]: crate::plan::RouteMatch::matches

use super::matcher::{matched_path, PathMatch, RequestView};
use super::route::Route;
use std::collections::{BTreeMap, HashMap};

/// The routes, in config order, and their index.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Routes with an exact path, by that path; each list ascending.
    exact: HashMap<Box<[u8]>, Vec<usize>>,
    /// Every prefix a route is filed under, sorted bytewise.
    prefixes: Vec<PrefixEntry>,
}

#[derive(Debug)]
struct PrefixEntry {
    prefix: Box<[u8]>,
    /// The entry of the longest other prefix in the table that this one starts with.
    parent: Option<usize>,
    /// The routes filed under this prefix, ascending.
    routes: Vec<usize>,
}

impl RouteTable {
    /// No routes (a pass-through plan's).
    pub fn empty() -> Self {
        RouteTable {
            routes: Vec::new(),
            exact: HashMap::new(),
            prefixes: Vec::new(),
        }
    }

    /// Indexes the routes; their order is the order they are tried in.
    pub fn new(routes: Vec<Route>) -> Self {
        let mut exact: HashMap<Box<[u8]>, Vec<usize>> = HashMap::new();
        let mut filed: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
        for (index, route) in routes.iter().enumerate() {
            match &route.matcher.path {
                Some(PathMatch::Exact(path)) => {
                    exact.entry(path.as_bytes().into()).or_default().push(index)
                }
                Some(PathMatch::Prefix(prefix)) => {
                    filed.entry(prefix.as_bytes()).or_default().push(index)
                }
                Some(PathMatch::Regex(regex)) => filed
                    .entry(regex.literal_prefix().as_bytes())
                    .or_default()
                    .push(index),
                None => filed.entry(b"").or_default().push(index),
            }
        }
        let prefixes = link_prefixes(filed);
        RouteTable {
            routes,
            exact,
            prefixes,
        }
    }

    /// The first route that matches the request, with its index. Only the routes whose path
    /// part can match are tried.
    pub fn first_match(&self, request: &mut impl RequestView) -> Option<(usize, &Route)> {
        let mut candidates = self.candidates(matched_path(request));
        let mut first: Option<usize> = None;
        // Each list is ascending, so a list is done at its first match, or at the first index
        // past a match already found in another list.
        while let Some(list) = candidates.next_list() {
            for &index in list {
                if first.is_some_and(|first| index >= first) {
                    break;
                }
                if self
                    .routes
                    .get(index)
                    .is_some_and(|route| route.matcher.matches(request))
                {
                    first = Some(index);
                    break;
                }
            }
        }
        let index = first?;
        Some((index, self.routes.get(index)?))
    }

    /// The same answer as [`RouteTable::first_match`] by trying every route in order: the
    /// reference semantics.
    pub fn first_match_linear(&self, request: &mut impl RequestView) -> Option<(usize, &Route)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.matcher.matches(request))
    }

    /// The lists of routes whose path part can match `path`.
    fn candidates(&self, path: &[u8]) -> Candidates<'_> {
        Candidates {
            exact: self.exact.get(path).map(Vec::as_slice),
            next_prefix: self.longest_prefix_of(path),
            prefixes: &self.prefixes,
        }
    }

    /// The entry of the longest filed prefix that `path` starts with.
    ///
    /// The entry just before where `path` would sort is the greatest prefix `s` ≤ `path`. Any
    /// prefix `q` of `path` in the table sorts at or before `s` (`q` ≤ `path`), and everything
    /// between `q` and `path` starts with `q`, so `s` does: the prefixes of `path` are all on
    /// `s`'s chain of parents, longest first.
    fn longest_prefix_of(&self, path: &[u8]) -> Option<usize> {
        let after = self
            .prefixes
            .partition_point(|entry| *entry.prefix <= *path);
        let mut at = after.checked_sub(1);
        while let Some(index) = at {
            let entry = self.prefixes.get(index)?;
            if path.starts_with(&entry.prefix) {
                return Some(index);
            }
            at = entry.parent;
        }
        None
    }
}

impl RouteTable {
    /// The routes, in config order, out of their index.
    pub fn into_routes(self) -> Vec<Route> {
        self.routes
    }
}

/// Read access to the routes in config order: `plan.routes.len()`, `plan.routes.get(i)`.
impl std::ops::Deref for RouteTable {
    type Target = [Route];

    fn deref(&self) -> &[Route] {
        &self.routes
    }
}

impl<'a> IntoIterator for &'a RouteTable {
    type Item = &'a Route;
    type IntoIter = std::slice::Iter<'a, Route>;

    fn into_iter(self) -> Self::IntoIter {
        self.routes.iter()
    }
}

/// The sorted prefix table, each entry linked to the longest other prefix it starts with.
///
/// In sorted order every prefix of an entry comes before it, and the longest one is on the
/// chain of the entry just before (which starts with it, as everything between a prefix and a
/// string that starts with it does), so one stack holding the previous entry's chain finds
/// every parent in a single pass.
fn link_prefixes(filed: BTreeMap<&[u8], Vec<usize>>) -> Vec<PrefixEntry> {
    let mut prefixes: Vec<PrefixEntry> = Vec::with_capacity(filed.len());
    let mut chain: Vec<usize> = Vec::new();
    for (prefix, routes) in filed {
        while let Some(&top) = chain.last() {
            if prefixes
                .get(top)
                .is_some_and(|entry| prefix.starts_with(&entry.prefix))
            {
                break;
            }
            chain.pop();
        }
        let parent = chain.last().copied();
        chain.push(prefixes.len());
        prefixes.push(PrefixEntry {
            prefix: prefix.into(),
            parent,
            routes,
        });
    }
    prefixes
}

/// The candidate lists of one request: the exact-path list, then the lists of each prefix of
/// the path, longest first.
struct Candidates<'a> {
    exact: Option<&'a [usize]>,
    next_prefix: Option<usize>,
    prefixes: &'a [PrefixEntry],
}

impl<'a> Candidates<'a> {
    fn next_list(&mut self) -> Option<&'a [usize]> {
        if let Some(exact) = self.exact.take() {
            return Some(exact);
        }
        let entry = self.prefixes.get(self.next_prefix?)?;
        self.next_prefix = entry.parent;
        Some(&entry.routes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile;
    use crate::plan::Plan;
    use serde_json::{json, Value};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A request as a list of headers (`:path` and `:method` among them), counting how often
    /// the matcher asks about it.
    #[derive(Clone, Debug, Default)]
    struct Request {
        headers: Vec<(String, Vec<u8>)>,
        reads: usize,
    }

    impl Request {
        fn new(headers: &[(&str, &[u8])]) -> Self {
            Request {
                headers: headers
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_vec()))
                    .collect(),
                reads: 0,
            }
        }
    }

    impl RequestView for Request {
        fn path(&mut self) -> Option<&[u8]> {
            self.header(":path")
        }
        fn method(&mut self) -> Option<&[u8]> {
            self.header(":method")
        }
        fn header(&mut self, name: &str) -> Option<&[u8]> {
            self.reads += 1;
            self.headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_slice())
        }
    }

    fn plan_of(matches: &[Value]) -> Plan {
        let routes: Vec<Value> = matches
            .iter()
            .enumerate()
            .map(|(index, matcher)| {
                json!({ "name": format!("r{index}"), "match": matcher,
                        "destinations": [{ "version": "v1", "weight": 1 }] })
            })
            .collect();
        let config = json!({ "routes": routes }).to_string();
        compile(config.as_bytes()).unwrap_or_else(|errors| panic!("{errors:?} in {config}"))
    }

    fn indexed(plan: &Plan, request: &Request) -> Option<usize> {
        plan.match_route(&mut request.clone())
            .map(|(index, _)| index)
    }

    fn linear(plan: &Plan, request: &Request) -> Option<usize> {
        plan.routes
            .first_match_linear(&mut request.clone())
            .map(|(index, _)| index)
    }

    fn get(path: &[u8]) -> Request {
        Request::new(&[(":method", b"GET"), (":path", path)])
    }

    #[test]
    fn the_first_route_in_config_order_wins_across_exact_prefix_regex_and_catch_all() {
        let plan = plan_of(&[
            json!({ "prefix": "/api/items", "methods": ["POST"] }),
            json!({ "regex": "/api/[a-z]+" }),
            json!({ "exact": "/api/items" }),
            json!({ "prefix": "/api" }),
            json!({}),
        ]);
        for (path, expected) in [
            (&b"/api/items"[..], Some(1)),
            (b"/api/items?x=1", Some(1)),
            (b"/api/items/7", Some(3)),
            (b"/api", Some(3)),
            (b"/ap", Some(4)),
            (b"", Some(4)),
        ] {
            assert_eq!(indexed(&plan, &get(path)), expected, "{path:?}");
            assert_eq!(linear(&plan, &get(path)), expected, "{path:?}");
        }
        let post = Request::new(&[(":method", b"POST"), (":path", b"/api/items/x")]);
        assert_eq!(indexed(&plan, &post), Some(0));
    }

    #[test]
    fn a_request_without_a_path_reaches_only_routes_that_accept_an_empty_one() {
        let plan = plan_of(&[
            json!({ "prefix": "/" }),
            json!({ "regex": ".*" }),
            json!({}),
        ]);
        let no_path = Request::new(&[(":method", b"GET")]);
        assert_eq!(indexed(&plan, &no_path), Some(1));
        assert_eq!(linear(&plan, &no_path), Some(1));
    }

    #[test]
    fn nested_prefixes_are_all_found_and_siblings_are_skipped() {
        let plan = plan_of(&[
            json!({ "prefix": "/a/b/c", "methods": ["POST"] }),
            json!({ "prefix": "/a/bz" }),
            json!({ "prefix": "/a/b", "methods": ["POST"] }),
            json!({ "prefix": "/a/" }),
            json!({ "prefix": "/a/b/d" }),
            json!({ "prefix": "/a" }),
        ]);
        assert_eq!(indexed(&plan, &get(b"/a/b/c/d")), Some(3));
        assert_eq!(indexed(&plan, &get(b"/a/bz")), Some(1));
        assert_eq!(indexed(&plan, &get(b"/a/b/d")), Some(3));
        assert_eq!(indexed(&plan, &get(b"/a")), Some(5));
        assert_eq!(indexed(&plan, &get(b"/b")), None);
    }

    #[test]
    fn matching_asks_about_the_request_only_for_routes_whose_path_can_match() {
        let mut matches: Vec<Value> = (0..1000)
            .map(|index| json!({ "prefix": format!("/service-{index}/"), "methods": ["GET"] }))
            .collect();
        matches.push(
            json!({ "prefix": "/api", "headers": [{ "name": "x-tenant", "prefix": "acme" }] }),
        );
        let plan = plan_of(&matches);
        let mut request = Request::new(&[
            (":method", b"GET"),
            (":path", b"/api/items"),
            ("x-tenant", b"acme-corp"),
        ]);
        assert_eq!(
            plan.match_route(&mut request).map(|(index, _)| index),
            Some(1000)
        );
        // The path to look it up, the path again and the header of the one candidate.
        assert_eq!(request.reads, 3);
        let mut unmatched = get(b"/nothing/here");
        assert_eq!(plan.match_route(&mut unmatched).map(|(i, _)| i), None);
        assert_eq!(unmatched.reads, 1);
    }

    /// Where a random scenario takes its decisions: a list of numbers, read in turn, zero once
    /// used up. proptest shrinks the list towards fewer and smaller numbers, which reads as
    /// fewer and simpler routes and requests.
    struct Choices<'a> {
        values: &'a [u32],
        at: usize,
    }

    impl Choices<'_> {
        fn below(&mut self, bound: usize) -> usize {
            let value = self.values.get(self.at).copied().unwrap_or(0);
            self.at += 1;
            value as usize % bound
        }

        fn one_of<'s>(&mut self, options: &[&'s str]) -> &'s str {
            options[self.below(options.len())]
        }

        /// A short path over a small alphabet, so that routes and requests overlap often.
        fn path(&mut self) -> String {
            let mut path = String::from("/");
            for _ in 0..self.below(5) {
                path.push_str(self.one_of(&["a", "b", "/", "ab", "a/"]));
            }
            path
        }

        fn header_rule(&mut self) -> Value {
            let name = self.one_of(&["x-a", "x-b", ":authority"]);
            let value = self.one_of(&["", "a", "ab", "b"]);
            match self.below(4) {
                0 => json!({ "name": name, "exact": value }),
                1 => json!({ "name": name, "prefix": value }),
                2 => json!({ "name": name, "present": true }),
                _ => json!({ "name": name, "regex": format!("{value}[ab]*") }),
            }
        }

        fn route_match(&mut self) -> Value {
            let mut matcher = serde_json::Map::new();
            let literal = self.path();
            match self.below(5) {
                0 => {}
                1 => {
                    matcher.insert("prefix".into(), json!(literal));
                }
                2 => {
                    matcher.insert("exact".into(), json!(literal));
                }
                3 => {
                    let pattern = match self.below(7) {
                        0 => literal,
                        1 => format!("{literal}.*"),
                        2 => format!("{literal}[ab/]+"),
                        3 => format!("{literal}b?"),
                        4 => format!("({literal}|/b)"),
                        5 => format!("(?i){literal}A"),
                        _ => "[/a]+b*".to_string(),
                    };
                    matcher.insert("regex".into(), json!(pattern));
                }
                _ => {
                    matcher.insert("prefix".into(), json!("/"));
                }
            }
            match self.below(4) {
                1 => {
                    matcher.insert("methods".into(), json!(["GET"]));
                }
                2 => {
                    matcher.insert("methods".into(), json!(["POST", "GET"]));
                }
                _ => {}
            }
            let rules: Vec<Value> = (0..self.below(3)).map(|_| self.header_rule()).collect();
            if !rules.is_empty() {
                matcher.insert("headers".into(), Value::Array(rules));
            }
            Value::Object(matcher)
        }

        fn request(&mut self) -> Request {
            let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
            if self.below(8) != 0 {
                let mut path = self.path().into_bytes();
                match self.below(6) {
                    0 => path.extend_from_slice(b"?a"),
                    1 => path.push(0xff),
                    2 => path.make_ascii_uppercase(),
                    _ => {}
                }
                headers.push((":path".into(), path));
            }
            if self.below(4) != 0 {
                let method = self.one_of(&["GET", "POST"]);
                headers.push((":method".into(), method.into()));
            }
            for name in ["x-a", "x-b", ":authority"] {
                if self.below(2) == 0 {
                    let value = self.one_of(&["", "a", "ab", "b", "ba"]);
                    headers.push((name.into(), value.into()));
                }
            }
            Request { headers, reads: 0 }
        }
    }

    /// A random route table and requests against it: the index and the in-order scan must
    /// pick the same route for every request.
    fn check_equivalence(values: &[u32]) {
        let mut choices = Choices { values, at: 0 };
        let matches: Vec<Value> = (0..1 + choices.below(24))
            .map(|_| choices.route_match())
            .collect();
        let plan = plan_of(&matches);
        for _ in 0..16 {
            let request = choices.request();
            assert_eq!(
                indexed(&plan, &request),
                linear(&plan, &request),
                "routes {matches:?}, request {:?}",
                request.headers
            );
        }
    }

    /// xorshift64: deterministic, dependency-free randomness for the wasm32 run.
    fn xorshift_values(seed: u64, count: usize) -> Vec<u32> {
        let mut state = seed.max(1);
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u32
            })
            .collect()
    }

    #[test]
    fn the_index_picks_what_the_in_order_scan_picks_on_seeded_random_tables() {
        for seed in 1..=300 {
            check_equivalence(&xorshift_values(seed, 600));
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        #[test]
        fn the_index_picks_what_the_in_order_scan_picks_on_random_tables(
            values in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..600)
        ) {
            check_equivalence(&values);
        }
    }
}
