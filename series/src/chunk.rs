//! Compressed runs of samples: the in-memory head of each series and the persisted chunks.
//!
//! A byte-aligned cousin of Facebook's Gorilla encoding (the scheme Prometheus's TSDB uses):
//! timestamps as a zig-zag varint of the delta-of-delta, which is 0 — one byte — for a target
//! scraped at a steady interval; values as the XOR with the previous value, 0 — one byte — when
//! unchanged, otherwise a header byte (trailing zero bytes, meaningful bytes) and only the
//! meaningful bytes. Byte rather than bit alignment costs some density on noisy values but keeps
//! the code short and the appends branch-light.

/// Appends samples to a growing chunk. Timestamps must increase strictly.
#[derive(Debug, Clone, Default)]
pub(crate) struct Encoder {
    bytes: Vec<u8>,
    count: u32,
    first_t: i64,
    last_t: i64,
    last_delta: i64,
    last_bits: u64,
}

impl Encoder {
    pub(crate) fn new() -> Self {
        Encoder::default()
    }

    pub(crate) fn push(&mut self, t: i64, v: f64) {
        let bits = v.to_bits();
        if self.count == 0 {
            write_varint(&mut self.bytes, zigzag(t));
            self.bytes.extend_from_slice(&bits.to_le_bytes());
            self.first_t = t;
        } else {
            let delta = t - self.last_t;
            write_varint(&mut self.bytes, zigzag(delta - self.last_delta));
            self.last_delta = delta;
            write_xor(&mut self.bytes, bits ^ self.last_bits);
        }
        self.last_t = t;
        self.last_bits = bits;
        self.count += 1;
    }

    pub(crate) fn len(&self) -> u32 {
        self.count
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn first_t(&self) -> i64 {
        self.first_t
    }

    pub(crate) fn last_t(&self) -> i64 {
        self.last_t
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    /// Gives the finished chunk away and starts empty.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.shrink_to_fit();
        *self = Encoder::default();
        bytes
    }
}

/// Decodes a chunk written by [`Encoder`]. A truncated or corrupt chunk yields what could be
/// read before the damage.
pub(crate) fn decode(bytes: &[u8]) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    let Some(t0) = read_varint(bytes, &mut pos).map(unzigzag) else { return out };
    let Some(first) = bytes.get(pos..pos + 8) else { return out };
    pos += 8;
    let mut bits = u64::from_le_bytes(first.try_into().unwrap_or([0; 8]));
    let (mut t, mut delta) = (t0, 0i64);
    out.push((t, f64::from_bits(bits)));
    while pos < bytes.len() {
        let Some(dod) = read_varint(bytes, &mut pos).map(unzigzag) else { break };
        let Some(xor) = read_xor(bytes, &mut pos) else { break };
        delta += dod;
        t += delta;
        bits ^= xor;
        out.push((t, f64::from_bits(bits)));
    }
    out
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// 0 → one zero byte; otherwise `(trailing_zero_bytes << 4) | meaningful_bytes` and those bytes.
fn write_xor(out: &mut Vec<u8>, x: u64) {
    if x == 0 {
        out.push(0);
        return;
    }
    let tz = (x.trailing_zeros() / 8) as usize;
    let lz = (x.leading_zeros() / 8) as usize;
    let n = 8 - tz - lz;
    out.push(((tz as u8) << 4) | n as u8);
    out.extend_from_slice(&x.to_le_bytes()[tz..tz + n]);
}

fn read_xor(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let head = *bytes.get(*pos)?;
    *pos += 1;
    if head == 0 {
        return Some(0);
    }
    let (tz, n) = ((head >> 4) as usize, (head & 0x0f) as usize);
    if n == 0 || tz + n > 8 {
        return None;
    }
    let data = bytes.get(*pos..*pos + n)?;
    *pos += n;
    let mut le = [0u8; 8];
    le[tz..tz + n].copy_from_slice(data);
    Some(u64::from_le_bytes(le))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn steady_scrapes_of_a_constant_take_two_bytes_a_sample() {
        let mut e = Encoder::new();
        for i in 0..120 {
            e.push(1_700_000_000_000 + i * 15_000, 42.0);
        }
        // First sample: 6-byte varint + 8-byte value; then delta-of-delta 15000 (3 bytes) once,
        // and 2 bytes for each of the remaining 118.
        assert_eq!(e.bytes().len(), 6 + 8 + (3 + 1) + 118 * 2);
        let points = decode(e.bytes());
        assert_eq!(points.len(), 120);
        assert_eq!(points[119], (1_700_000_000_000 + 119 * 15_000, 42.0));
    }

    #[test]
    fn special_values_round_trip() {
        let mut e = Encoder::new();
        let values = [0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-300, f64::MAX, 3.25];
        for (i, v) in values.iter().enumerate() {
            e.push(i as i64 * 1000 - 5000, *v);
        }
        let back = decode(e.bytes());
        assert_eq!(back.len(), values.len());
        for ((t, v), (i, want)) in back.iter().zip(values.iter().enumerate()) {
            assert_eq!(*t, i as i64 * 1000 - 5000);
            assert_eq!(v.to_bits(), want.to_bits());
        }
    }

    #[test]
    fn a_truncated_chunk_yields_its_intact_prefix() {
        let mut e = Encoder::new();
        for i in 0..10 {
            e.push(i * 1000, i as f64 * 1.5);
        }
        let bytes = e.bytes();
        let cut = decode(&bytes[..bytes.len() - 1]);
        assert_eq!(cut.len(), 9);
        assert!(decode(&[]).is_empty());
    }

    proptest! {
        #[test]
        fn any_increasing_series_round_trips(
            start in -1_000_000_000_000i64..2_000_000_000_000,
            steps in proptest::collection::vec((1i64..10_000_000, any::<f64>()), 1..300),
        ) {
            let mut e = Encoder::new();
            let mut t = start;
            let mut want = Vec::new();
            for (dt, v) in steps {
                e.push(t, v);
                want.push((t, v.to_bits()));
                t += dt;
            }
            let got: Vec<(i64, u64)> = decode(e.bytes()).into_iter().map(|(t, v)| (t, v.to_bits())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
