//! The bytes of a [`RouteGuardState`] in proxy-wasm shared data, which every worker of the
//! proxy reads: a format version, the number of destinations, then per version its ejection,
//! latch, held flag and buckets, little-endian.

use super::trip::RouteGuardState;
use super::window::{Tally, VersionState, BUCKETS};

const FORMAT_VERSION: u8 = 3;

impl RouteGuardState {
    /// Reads what [`RouteGuardState::encode`] wrote. Anything else (nothing yet, another
    /// format, a route with another number of destinations after a reconfiguration) reads as
    /// a fresh state: the guard starts counting again rather than trusting bytes it cannot
    /// account for. More buckets than [`BUCKETS`] (which no merge writes) are read, the last
    /// ones kept: they never cost the route its ejections.
    pub fn decode(bytes: &[u8], destinations: usize) -> Self {
        Self::try_decode(bytes, destinations).unwrap_or_else(|| Self::new(destinations))
    }

    fn try_decode(bytes: &[u8], destinations: usize) -> Option<Self> {
        let mut reader = Reader { bytes, at: 0 };
        if reader.u8()? != FORMAT_VERSION || usize::from(reader.u8()?) != destinations {
            return None;
        }
        let mut versions = Vec::with_capacity(destinations);
        for _ in 0..destinations {
            let ejected_until_ms = reader.u64()?;
            let latch = reader.u64()?;
            let held = reader.u8()? != 0;
            let count = reader.u8()?;
            let mut buckets = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                buckets.push((reader.u64()?, reader.tally()?));
            }
            let excess = buckets.len().saturating_sub(BUCKETS as usize);
            buckets.drain(..excess);
            versions.push(VersionState {
                buckets,
                ejected_until_ms,
                held,
                latch,
            });
        }
        (reader.at == bytes.len()).then_some(RouteGuardState { versions })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![
            FORMAT_VERSION,
            u8::try_from(self.versions.len()).unwrap_or(u8::MAX),
        ];
        for version in &self.versions {
            bytes.extend_from_slice(&version.ejected_until_ms.to_le_bytes());
            bytes.extend_from_slice(&version.latch.to_le_bytes());
            bytes.push(u8::from(version.held));
            bytes.push(u8::try_from(version.buckets.len()).unwrap_or(u8::MAX));
            for (index, tally) in &version.buckets {
                bytes.extend_from_slice(&index.to_le_bytes());
                put_tally(&mut bytes, *tally);
            }
        }
        bytes
    }
}

fn put_tally(bytes: &mut Vec<u8>, tally: Tally) {
    bytes.extend_from_slice(&tally.requests.to_le_bytes());
    bytes.extend_from_slice(&tally.errors.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.at.checked_add(N)?;
        let chunk: [u8; N] = self.bytes.get(self.at..end)?.try_into().ok()?;
        self.at = end;
        Some(chunk)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[byte]| byte)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }

    fn tally(&mut self) -> Option<Tally> {
        Some(Tally {
            requests: self.u32()?,
            errors: self.u32()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::guard::test_support::{guard, tally, START};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn state_survives_encoding_and_bad_bytes_read_as_fresh() {
        let mut state = RouteGuardState::new(3);
        state.merge(
            &guard(),
            &[1, 1, 1],
            &[tally(3, 1), tally(60, 60), tally(7, 0)],
            START,
        );
        state.merge(&guard(), &[1, 1, 1], &[tally(4, 0)], START + 700);
        let bytes = state.encode();
        assert_eq!(RouteGuardState::decode(&bytes, 3), state);
        assert_eq!(RouteGuardState::decode(&bytes, 2), RouteGuardState::new(2));
        for end in 0..bytes.len() {
            assert_eq!(
                RouteGuardState::decode(&bytes[..end], 3),
                RouteGuardState::new(3)
            );
        }
        assert_eq!(RouteGuardState::decode(b"", 3), RouteGuardState::new(3));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(RouteGuardState::decode(&longer, 3), RouteGuardState::new(3));
    }

    #[test]
    fn too_many_buckets_are_read_not_refused() {
        let mut state = RouteGuardState::new(2);
        state.versions[1].ejected_until_ms = START + 60_000;
        state.versions[0].buckets = (0..BUCKETS + 2).map(|index| (index, tally(1, 0))).collect();
        let read = RouteGuardState::decode(&state.encode(), 2);
        assert_eq!(read.versions[1].ejected_until_ms, START + 60_000);
        let indices: Vec<u64> = read.versions[0]
            .buckets
            .iter()
            .map(|(index, _)| *index)
            .collect();
        assert_eq!(indices, (2..BUCKETS + 2).collect::<Vec<_>>());
    }
}
