//! Reading a header map as proxy-wasm serializes it, without copying it apart.
//!
//! In Envoy, every value a host call returns costs a call back into the module to allocate its
//! buffer, and that round trip dominates the filter's cost (docs/performance.md has the cost of
//! each host call). So the filter asks once for all request headers
//! (`proxy_get_header_map_pairs`) and answers every match question (path, method, headers)
//! from that one buffer. The same format carries the headers of the filter's local reply.
//!
//! The format: a little-endian `u32` count of pairs, then a `u32` name size and a `u32` value
//! size per pair, then for each pair the name, a NUL, the value, a NUL. A malformed buffer
//! reads as a map with fewer (or no) headers; it never panics.

/// A serialized header map, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct HeaderPairs<'a> {
    bytes: &'a [u8],
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let word: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

impl<'a> HeaderPairs<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        HeaderPairs { bytes }
    }

    /// Every (name, value) pair, in the order Envoy holds them, up to the first malformed one.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let bytes = self.bytes;
        let count = read_u32(bytes, 0).unwrap_or(0);
        // The sizes table must fit, or nothing is read. Split off once, so that each pair's
        // sizes are read from an 8-byte chunk without a bounds check of their own: the native
        // module scans every request's headers a few times.
        let (table, data) = count
            .checked_mul(8)
            .and_then(|table_size| bytes.get(4..)?.split_at_checked(table_size))
            .unwrap_or((&[], &[]));
        // What follows the pairs read so far; `None` once past the end (the last pair's NUL may
        // be missing, and it is still read).
        let mut rest = Some(data);
        table.chunks_exact(8).map_while(move |sizes| {
            let size = |at: usize| {
                let word: [u8; 4] = sizes.get(at..at + 4)?.try_into().ok()?;
                usize::try_from(u32::from_le_bytes(word)).ok()
            };
            let (name_size, value_size) = (size(0)?, size(4)?);
            let pairs = rest?;
            let name = pairs.get(..name_size)?;
            let value_start = name_size.checked_add(1)?;
            let value_end = value_start.checked_add(value_size)?;
            let value = pairs.get(value_start..value_end)?;
            rest = pairs.get(value_end.checked_add(1)?..);
            Some((name, value))
        })
    }

    /// The first value of a header by its lower-case name, as Envoy's single-header read gives.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|(key, _)| *key == name.as_bytes())
            .map(|(_, value)| value)
    }
}

/// Serializes pairs the way the host does: the headers of the filter's local reply, and the
/// header maps of the tests' and the fuzzers' stand-in hosts. Sizes beyond `u32::MAX` are not
/// representable; the filter never builds them.
pub fn serialize_pairs<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Vec<u8> {
    serialize_pair_slices(
        pairs
            .iter()
            .map(|(name, value)| (name.as_ref(), value.as_ref())),
    )
}

/// [`serialize_pairs`] from an iterator of (name, value) slices, which it walks twice (sizes,
/// then bytes) into one allocation: the native module serializes every request's headers
/// this way, straight from the pointers Envoy lends.
pub fn serialize_pair_slices<'a, I>(pairs: I) -> Vec<u8>
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let size = |bytes: &[u8]| u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes();
    let (count, text) = pairs
        .clone()
        .fold((0usize, 0usize), |(count, text), (name, value)| {
            (count + 1, text + name.len() + value.len() + 2)
        });
    let mut bytes = Vec::with_capacity(4 + 8 * count + text);
    bytes.extend_from_slice(&u32::try_from(count).unwrap_or(u32::MAX).to_le_bytes());
    for (name, value) in pairs.clone() {
        bytes.extend_from_slice(&size(name));
        bytes.extend_from_slice(&size(value));
    }
    for (name, value) in pairs {
        bytes.extend_from_slice(name);
        bytes.push(0);
        bytes.extend_from_slice(value);
        bytes.push(0);
    }
    bytes
}

/// The value of the cookie `name` in a `cookie` request header (`a=1; session=xyz`), without
/// the double quotes RFC 6265 allows around it. Cookie names are case-sensitive.
pub fn cookie_value<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let equals = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = (pair.get(..equals)?, pair.get(equals + 1..)?);
        if key.trim_ascii() != name.as_bytes() {
            return None;
        }
        let value = value.trim_ascii();
        Some(
            value
                .strip_prefix(b"\"")
                .and_then(|inner| inner.strip_suffix(b"\""))
                .unwrap_or(value),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn serialize(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        serialize_pairs(pairs)
    }

    #[test]
    fn reads_pseudo_and_regular_headers() {
        let bytes = serialize(&[
            (":path", b"/hello?x=1"),
            (":method", b"GET"),
            ("x-env", b"prod"),
            ("x-env", b"second"),
            ("x-empty", b""),
            ("x-binary", b"\xff\x00\xfe"),
        ]);
        let headers = HeaderPairs::new(&bytes);
        assert_eq!(headers.get(":path"), Some(&b"/hello?x=1"[..]));
        assert_eq!(headers.get(":method"), Some(&b"GET"[..]));
        assert_eq!(headers.get("x-env"), Some(&b"prod"[..]), "the first value");
        assert_eq!(headers.get("x-empty"), Some(&b""[..]));
        assert_eq!(headers.get("x-binary"), Some(&b"\xff\x00\xfe"[..]));
        assert_eq!(headers.get("x-missing"), None);
        assert_eq!(headers.iter().count(), 6);
    }

    #[test]
    fn the_last_nul_may_be_missing_and_a_cut_buffer_reads_the_whole_pairs_before_the_cut() {
        let bytes = serialize(&[(":path", b"/a"), ("x-one", b"1"), ("x-two", b"22")]);
        let without_last_nul = &bytes[..bytes.len() - 1];
        assert_eq!(
            HeaderPairs::new(without_last_nul).get("x-two"),
            Some(&b"22"[..])
        );
        // Cut inside the last value: the pairs before it are read, the cut one is not.
        let cut = &bytes[..bytes.len() - 2];
        let pairs: Vec<_> = HeaderPairs::new(cut).iter().collect();
        assert_eq!(
            pairs,
            [(&b":path"[..], &b"/a"[..]), (&b"x-one"[..], &b"1"[..])]
        );
        // A sizes table longer than the buffer: nothing is read.
        assert_eq!(HeaderPairs::new(&bytes[..20]).iter().count(), 0);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = b"theme=dark; session=abc123;lang=en ; quoted=\"q v\"; empty=";
        assert_eq!(cookie_value(header, "session"), Some(&b"abc123"[..]));
        assert_eq!(cookie_value(header, "theme"), Some(&b"dark"[..]));
        assert_eq!(cookie_value(header, "lang"), Some(&b"en"[..]));
        assert_eq!(cookie_value(header, "quoted"), Some(&b"q v"[..]));
        assert_eq!(cookie_value(header, "empty"), Some(&b""[..]));
        assert_eq!(cookie_value(header, "Session"), None);
        assert_eq!(cookie_value(header, "sess"), None);
        assert_eq!(cookie_value(b"", "session"), None);
        assert_eq!(cookie_value(b"session", "session"), None);
        assert_eq!(
            cookie_value(b";;=;session==x\xff", "session"),
            Some(&b"=x\xff"[..])
        );
        assert_eq!(
            cookie_value(b"a=1; session=first; session=second", "session"),
            Some(&b"first"[..])
        );
    }

    #[test]
    fn empty_and_malformed_buffers_never_panic() {
        assert_eq!(HeaderPairs::new(&[]).iter().count(), 0);
        assert_eq!(HeaderPairs::new(&[1, 0]).iter().count(), 0);
        // A count far larger than the buffer.
        assert_eq!(
            HeaderPairs::new(&[255, 255, 255, 255, 0, 0]).iter().count(),
            0
        );
        let good = serialize(&[("a", b"1"), ("b", b"2")]);
        // Every truncation reads some prefix of the pairs, and never panics.
        for end in 0..good.len() {
            let headers = HeaderPairs::new(&good[..end]);
            assert!(headers.iter().count() <= 2);
            let _ = headers.get("b");
        }
        // Sizes that point past the end.
        let mut lying = good.clone();
        lying[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(HeaderPairs::new(&lying).get("b"), None);
    }
}
