//! The header map as the host serializes it, from raw bytes.

use arbitrary::{Arbitrary, Unstructured};
use traffic_split::request::headers::{serialize_pairs, HeaderPairs};

/// A header map as the host serializes it, from arbitrary bytes: reading never panics, never
/// reads past the buffer, and `get` agrees with `iter`. The same bytes, read as a list of
/// pairs, must survive serializing and reading back unchanged.
pub fn check_header_map(bytes: &[u8]) {
    let headers = HeaderPairs::new(bytes);
    let pairs: Vec<(&[u8], &[u8])> = headers.iter().collect();
    // Each name and value is followed by a NUL, which the last value may lack.
    let read: usize = pairs
        .iter()
        .map(|(name, value)| name.len() + value.len() + 2)
        .sum();
    if !pairs.is_empty() {
        assert!(
            4 + 8 * pairs.len() + read - 1 <= bytes.len(),
            "read past the buffer"
        );
    }
    for (name, _) in &pairs {
        if let Ok(name) = std::str::from_utf8(name) {
            let first = pairs
                .iter()
                .find(|(key, _)| *key == name.as_bytes())
                .map(|(_, value)| *value);
            assert_eq!(headers.get(name), first, "get gives the first value");
        }
    }
    let Ok(pairs) = Vec::<(Vec<u8>, Vec<u8>)>::arbitrary(&mut Unstructured::new(bytes)) else {
        return;
    };
    let serialized = serialize_pairs(&pairs);
    let read_back: Vec<(Vec<u8>, Vec<u8>)> = HeaderPairs::new(&serialized)
        .iter()
        .map(|(name, value)| (name.to_vec(), value.to_vec()))
        .collect();
    assert_eq!(read_back, pairs, "a serialized map reads back unchanged");
}
