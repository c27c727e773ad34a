//! CRC32C arithmetic the `crc32c` crate does not offer: extending a running
//! checksum by a block whose checksum under another seed is already known,
//! without reading the block again.
//!
//! Every entry of a fragment is covered twice: by its own checksum (seeded
//! with its offset and lengths) and by the fragment's running checksum.
//! Both are CRCs of the same body bytes with different starting states, and
//! a CRC is affine in its starting state, so the second follows from the
//! first with one multiplication modulo the polynomial (by `x^(8·len)`).
//! That turns two passes over each payload into one.

/// The CRC32C (Castagnoli) polynomial, bit-reflected.
const POLY: u32 = 0x82F6_3B78;

/// `a · b mod P` over GF(2), in the reflected bit order of the register
/// (bit 31 is the coefficient of `x^0`).
const fn multiply(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    let mut bit = 1u32 << 31;
    while bit != 0 {
        if a & bit != 0 {
            product ^= b;
        }
        bit >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    product
}

/// `X2N[k]` = `x^(2^k) mod P`.
const X2N: [u32; 64] = {
    let mut table = [0u32; 64];
    let mut power = 1u32 << 30; // x^1
    let mut k = 0;
    while k < 64 {
        table[k] = power;
        power = multiply(power, power);
        k += 1;
    }
    table
};

/// `x^n mod P`.
fn x_pow(n: u64) -> u32 {
    let mut power = 1u32 << 31; // x^0
    let (mut n, mut k) = (n, 0);
    while n != 0 {
        if n & 1 != 0 {
            power = multiply(X2N[k], power);
        }
        n >>= 1;
        k += 1;
    }
    power
}

/// Multiplication by `x^(8·len) mod P`: moves a register state past `len`
/// bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shift {
    /// `x^(8·len) mod P`.
    factor: u32,
    /// `x^(8·len - 32) mod P`, when the CPU has carry-less multiplication
    /// and CRC32 instructions (then one `pclmulqdq` and one `crc32`
    /// replace the 32-step loop of [`multiply`]).
    fast: Option<u32>,
}

impl Shift {
    pub(crate) fn bytes(len: usize) -> Shift {
        let bits = 8 * len as u64;
        Shift {
            factor: x_pow(bits),
            fast: (bits >= 32 && has_clmul()).then(|| x_pow(bits - 32)),
        }
    }

    fn apply(self, value: u32) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if let Some(fast) = self.fast {
            // SAFETY: `fast` is only set when `has_clmul` found the features.
            return unsafe { multiply_times_x32(value, fast) };
        }
        multiply(self.factor, value)
    }
}

fn has_clmul() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("sse4.2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `a · b · x^32 mod P`. The carry-less product of two reflected 32-bit
/// polynomials, shifted left by one, is their 64-bit reflected product;
/// the CRC32 instruction on it (from state 0) multiplies by `x^32` and
/// reduces modulo P.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,sse4.2")]
unsafe fn multiply_times_x32(a: u32, b: u32) -> u32 {
    use std::arch::x86_64::{
        _mm_clmulepi64_si128, _mm_crc32_u64, _mm_cvtsi128_si64, _mm_cvtsi64_si128,
    };
    let product = _mm_clmulepi64_si128(_mm_cvtsi64_si128(a as i64), _mm_cvtsi64_si128(b as i64), 0);
    let reflected = (_mm_cvtsi128_si64(product) as u64) << 1;
    _mm_crc32_u64(0, reflected) as u32
}

/// [`Shift::bytes`], remembering the last length (entries of one fragment
/// usually have the same length).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShiftCache {
    len: usize,
    shift: Shift,
}

impl Default for ShiftCache {
    fn default() -> Self {
        ShiftCache {
            len: 0,
            shift: Shift::bytes(0),
        }
    }
}

impl ShiftCache {
    pub(crate) fn get(&mut self, len: usize) -> Shift {
        if len != self.len {
            self.len = len;
            self.shift = Shift::bytes(len);
        }
        self.shift
    }
}

/// Given `seeded = crc32c_append(seed, body)`, returns
/// `crc32c_append(running, body)` without reading `body`; `shift` is
/// `Shift::bytes(body.len())`.
pub(crate) fn rebase(seeded: u32, seed: u32, running: u32, shift: Shift) -> u32 {
    seeded ^ shift.apply(seed ^ running)
}

/// The CRC32C of `a ++ b` from the CRC32C of `a`, that of `b` and the
/// length of `b` (what `crc32c::crc32c_combine` computes, without its
/// matrix squaring: microseconds per call for megabyte lengths).
pub(crate) fn combine(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    Shift::bytes(len_b).apply(crc_a) ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, salt: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
            .collect()
    }

    #[test]
    fn rebase_matches_a_second_pass() {
        let mut cache = ShiftCache::default();
        for len in [0usize, 1, 7, 8, 63, 1024, 1037, 65_536, 1_048_583] {
            let body = pattern(len, len as u8);
            for (seed_bytes, running_bytes) in [(&b""[..], &b""[..]), (b"seed", b"running state")] {
                let seed = crc32c::crc32c(seed_bytes);
                let running = crc32c::crc32c(running_bytes);
                let seeded = crc32c::crc32c_append(seed, &body);
                let expected = crc32c::crc32c_append(running, &body);
                let shift = Shift::bytes(len);
                assert_eq!(rebase(seeded, seed, running, shift), expected, "len {len}");
                let slow = Shift {
                    fast: None,
                    ..shift
                };
                assert_eq!(rebase(seeded, seed, running, slow), expected, "len {len}");
                assert_eq!(rebase(seeded, seed, running, cache.get(len)), expected);
            }
        }
    }

    #[test]
    fn shift_agrees_with_crc32c_combine() {
        for len in [1usize, 2, 3, 4, 5, 100, 4096, 123_457, 8 << 20] {
            let (a, b) = (crc32c::crc32c(b"first"), crc32c::crc32c(&pattern(len, 3)));
            assert_eq!(
                combine(a, b, len),
                crc32c::crc32c_combine(a, b, len),
                "len {len}"
            );
        }
    }

    #[test]
    fn fast_and_portable_multiplication_agree() {
        if !has_clmul() {
            return;
        }
        let mut value = 0x1234_5678u32;
        for len in 4..2_000usize {
            let shift = Shift::bytes(len);
            let slow = Shift {
                fast: None,
                ..shift
            };
            value = value.rotate_left(7) ^ len as u32;
            assert_eq!(shift.apply(value), slow.apply(value), "len {len}");
        }
    }
}
