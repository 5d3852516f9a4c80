//! Decimal conversions of floats done the way SQLite (3.54, the version the SQL
//! differentials run against) does them, where its results differ from correctly rounded
//! ones:
//!
//! - **Digits of a float.** SQLite renders a float as text (for LIKE, and a float literal
//!   read back) from 18 or 19 leading digits that it gets by multiplying the float's binary
//!   mantissa by a 64-bit approximation of a power of ten and keeping the top 64 bits of
//!   the product. For about one float in 200 those digits differ in the last place from the
//!   exact ones, and then so does the 17th digit SQLite rounds them to.
//! - **Value of a decimal literal.** SQLite accumulates at most about 19 significant digits
//!   of a literal in a `u64` and drops the rest unrounded before converting, so a literal
//!   with more digits can read as a neighbouring float.
//!
//! Written here because no crate reproduces another engine's approximations: float
//! formatting crates (ryu, the standard library) are exact by design. The powers of ten
//! are SQLite's in value: the top 96 bits of 10^(27k), rounded to nearest, computed for
//! this file with exact rational arithmetic; 10^n for n < 27 exactly; other exponents as
//! the product of the two, truncated to 96 bits.

/// 10^n for n in 0..27, shifted left until the top bit is set: 5^n shifted the same way
/// (10^n = 5^n x 2^n), exact since 5^26 < 2^64.
const BASE: [u64; 27] = {
    let mut base = [0u64; 27];
    let mut n = 0;
    while n < 27 {
        let five = 5u64.pow(n as u32);
        base[n] = five << five.leading_zeros();
        n += 1;
    }
    base
};

/// The top 96 bits of 10^(27 (i - 13)), as (top 64, next 32), rounded to nearest. Entry 13
/// would be 10^0 and is never read ([`power_of_ten`] takes exponents 0..27 from [`BASE`]).
const SCALE: [(u64, u32); 26] = [
    (0x8049_a4ac_0c58_11ae, 0x205b_896d), // 10^-351
    (0xcf42_894a_5dce_35ea, 0x5206_4cad), // 10^-324
    (0xa76c_5823_38ed_2621, 0xaf2a_f2b8), // 10^-297
    (0x873e_4f75_e222_4e68, 0x5a77_44a7), // 10^-270
    (0xda7f_5bf5_9096_6848, 0xaf39_a475), // 10^-243
    (0xb080_392c_c434_9dec, 0xbd8d_794e), // 10^-216
    (0x8e93_8662_882a_f53e, 0x547e_b47b), // 10^-189
    (0xe658_29b3_046b_0afa, 0x0cb4_a5a3), // 10^-162
    (0xba12_1a46_50e4_ddeb, 0x92f3_4d62), // 10^-135
    (0x964e_858c_91ba_2655, 0x3a6a_07f9), // 10^-108
    (0xf2d5_6790_ab41_c2a2, 0xfae2_7299), // 10^-81
    (0xc428_d05a_a475_1e4c, 0xaa97_e14c), // 10^-54
    (0x9e74_d1b7_91e0_7e48, 0x775e_a265), // 10^-27
    (0x8000_0000_0000_0000, 0x0000_0000), // 10^0 (unused)
    (0xcecb_8f27_f420_0f3a, 0x0000_0000), // 10^27
    (0xa70c_3c40_a64e_6c51, 0x9990_90b6), // 10^54
    (0x86f0_ac99_b4e8_dafd, 0x69a0_28bb), // 10^81
    (0xda01_ee64_1a70_8de9, 0xe80e_6f48), // 10^108
    (0xb01a_e745_b101_e9e4, 0x5ec0_5dd0), // 10^135
    (0x8e41_ade9_fbeb_c27d, 0x1458_8f14), // 10^162
    (0xe5d3_ef28_2a24_2e81, 0x8f16_68c9), // 10^189
    (0xb9a7_4a06_37ce_2ee1, 0x6d95_3e2c), // 10^216
    (0x95f8_3d0a_1fb6_9cd9, 0x4abd_af10), // 10^243
    (0xf24a_01a7_3cf2_dccf, 0xbc63_3b39), // 10^270
    (0xc3b8_3581_09e8_4f07, 0x0a86_2f81), // 10^297
    (0x9e19_db92_b4e3_1ba9, 0x6c07_a2c2), // 10^324
];

/// floor(log2(10^p)), as SQLite approximates it (exact over the exponents used here).
fn log2_of_power_of_ten(p: i32) -> i32 {
    (p * 108_853) >> 15
}

/// floor(log10(2^e)), likewise.
fn log10_of_power_of_two(e: i32) -> i32 {
    (e * 78_913) >> 18
}

/// The top 64 bits of 10^p (top bit set) as SQLite approximates them, for p in -348..=347.
fn power_of_ten(p: i32) -> u64 {
    if (0..27).contains(&p) {
        return BASE[p as usize];
    }
    if p == -1 {
        // SQLite's own entry for 10^-1: the product below would lose its last bit.
        return 0xcccc_cccc_cccc_cccc;
    }
    let group = p.div_euclid(27);
    let rest = p.rem_euclid(27) as usize;
    let (high, low) = SCALE[(group + 13) as usize];
    if rest == 0 {
        return high;
    }
    // The top 96 bits of the 160-bit product (high:low) x BASE[rest], truncated.
    let base = u128::from(BASE[rest]);
    let upper = u128::from(high) * base;
    let lower = u128::from(low) * base;
    let top = (upper >> 32) + ((((upper & 0xffff_ffff) << 32) + lower) >> 64);
    let (mut x, low) = ((top >> 32) as u64, top as u32);
    if x >> 63 == 0 {
        x = (x << 1) | u64::from(low >> 31);
    }
    x
}

/// The leading decimal digits of a positive finite float as SQLite computes them before
/// rounding to 17: `(digits, exponent)` with the float about `digits x 10^exponent` and
/// `digits` of 18 or 19 decimal digits.
pub(crate) fn leading_digits(magnitude: f64) -> (u64, i32) {
    debug_assert!(magnitude.is_finite() && magnitude > 0.0);
    let bits = magnitude.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    // The float is mantissa x 2^exponent, with the mantissa's top bit set.
    let (mantissa, exponent) = if biased == 0 {
        let shift = fraction.leading_zeros();
        (fraction << shift, -1074 - shift as i32)
    } else {
        ((fraction << 11) | (1 << 63), biased - 1086)
    };
    let p = 17 - log10_of_power_of_two(exponent + 63);
    let product = ((u128::from(mantissa) * u128::from(power_of_ten(p))) >> 64) as u64;
    let shift = -(exponent + log2_of_power_of_ten(p) + 2);
    debug_assert!((0..64).contains(&shift));
    let scaled = product >> shift;
    // Halved, rounding the dropped bit up.
    ((scaled >> 1) + (scaled & 1), -p)
}

/// A decimal number's text (`[+-]digits[.digits][e[+-]digits]`, or starting with the
/// point) read as SQLite reads it: at most about 19 significant digits count, the rest are
/// dropped; the value of those is then rounded to the nearest float. `None` when `text` is
/// not such a number.
pub(crate) fn read_decimal(text: &str) -> Option<f64> {
    match read_leading_decimal(text.as_bytes()) {
        Some((value, read)) if read == text.len() => Some(value),
        _ => None,
    }
}

/// The decimal number `bytes` starts with, read as [`read_decimal`] reads a whole one, and
/// how many bytes it takes: an `e` not followed by exponent digits is not part of it.
/// `None` when `bytes` starts with no digit (after a sign, and a point if any).
pub(crate) fn read_leading_decimal(bytes: &[u8]) -> Option<(f64, usize)> {
    // SQLite stops taking digits once the mantissa reaches this.
    const FULL: u64 = (u64::MAX - 9) / 10;
    let mut at = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            at = 1;
            true
        }
        Some(b'+') => {
            at = 1;
            false
        }
        _ => false,
    };
    let mut mantissa: u64 = 0;
    let mut exponent: i64 = 0;
    let mut any_digit = false;
    let mut full = false;
    while let Some(digit) = bytes.get(at).filter(|byte| byte.is_ascii_digit()) {
        any_digit = true;
        if full {
            exponent += 1;
        } else {
            mantissa = mantissa * 10 + u64::from(digit - b'0');
            // The integer part checks after taking a digit, the fraction before.
            full = mantissa >= FULL;
        }
        at += 1;
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        while let Some(digit) = bytes.get(at).filter(|byte| byte.is_ascii_digit()) {
            any_digit = true;
            if mantissa < FULL {
                mantissa = mantissa * 10 + u64::from(digit - b'0');
                exponent -= 1;
            }
            at += 1;
        }
    }
    if !any_digit {
        return None;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        let mut after = at + 1;
        let sign = match bytes.get(after) {
            Some(b'-') => {
                after += 1;
                -1
            }
            Some(b'+') => {
                after += 1;
                1
            }
            _ => 1,
        };
        let from = after;
        let mut written: i64 = 0;
        while let Some(digit) = bytes.get(after).filter(|byte| byte.is_ascii_digit()) {
            // SQLite takes digits of the written exponent while it is below 10,000 and
            // makes it exactly 10,000 at any digit after that (so it ends below 100,000):
            // the digits of a long mantissa can bring such an exponent back into range.
            written = if written < 10_000 {
                written * 10 + i64::from(digit - b'0')
            } else {
                10_000
            };
            after += 1;
        }
        if after > from {
            exponent += sign * written;
            at = after;
        }
    }
    let value = nearest_float(mantissa, exponent)?;
    Some((if negative { -value } else { value }, at))
}

/// The float nearest `mantissa x 10^exponent`, correctly rounded. No allocation: text
/// used as a condition reads its number here on every evaluation.
fn nearest_float(mantissa: u64, exponent: i64) -> Option<f64> {
    if mantissa == 0 {
        return Some(0.0);
    }
    if exponent == 0 && mantissa < 1 << 53 {
        return Some(mantissa as f64);
    }
    // The standard library rounds decimal text correctly; "{u64}e{i64}" fits in 48 bytes.
    let mut text = [0u8; 48];
    let mut cursor = std::io::Cursor::new(&mut text[..]);
    std::io::Write::write_fmt(&mut cursor, format_args!("{mantissa}e{exponent}")).ok()?;
    let written = cursor.position() as usize;
    std::str::from_utf8(&text[..written]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_powers_of_ten_are_exact_and_normalized() {
        assert_eq!(BASE[0], 1 << 63);
        assert_eq!(BASE[1], 10 << 60);
        assert_eq!(BASE[19], 10_000_000_000_000_000_000);
        for (n, base) in BASE.iter().enumerate() {
            assert_eq!(base >> 63, 1, "10^{n} normalized");
            // The odd part of 10^n is 5^n.
            assert_eq!(base >> base.trailing_zeros(), 5u64.pow(n as u32), "10^{n}");
        }
    }

    #[test]
    fn composed_powers_of_ten_are_exact_where_their_factors_are() {
        // 10^(27+n) from the scale of 10^27 (exact in 96 bits) and 10^n (exact): the
        // product's top 64 bits are those of 10^(27+n).
        for p in [28, 30, 40, 53] {
            let exact = {
                // 10^p = 2^p x 5^p, so its top 64 bits are 5^p's (5^53 < 2^128).
                let five = 5u128.pow(p as u32);
                (five << five.leading_zeros() >> 64) as u64
            };
            assert_eq!(power_of_ten(p), exact, "10^{p}");
        }
    }

    #[test]
    fn leading_digits_of_known_floats() {
        // 18 or 19 digits, with the value's decimal exponent.
        let (digits, exponent) = leading_digits(1.0);
        assert_eq!(digits as f64 * 10f64.powi(exponent), 1.0);
        assert!((100_000_000_000_000_000..10_000_000_000_000_000_000).contains(&digits));
    }

    #[test]
    fn a_leading_decimal_stops_where_the_number_does() {
        let read = |text: &str| read_leading_decimal(text.as_bytes());
        assert_eq!(read("12"), Some((12.0, 2)));
        assert_eq!(read("12e"), Some((12.0, 2)));
        assert_eq!(read("1.5e+"), Some((1.5, 3)));
        assert_eq!(read("1e5e"), Some((100_000.0, 3)));
        assert_eq!(read("-.5x"), Some((-0.5, 3)));
        assert_eq!(read("+7. apples"), Some((7.0, 3)));
        assert_eq!(read("2E-1 "), Some((0.2, 4)));
        for none in ["", ".", "-", "+.", "e5", "x1", " 1"] {
            assert_eq!(read(none), None, "{none:?}");
        }
        // A whole number only for read_decimal.
        assert_eq!(read_decimal("12e"), None);
        assert_eq!(read_decimal("1e5"), Some(100_000.0));
    }

    #[test]
    fn decimals_read_like_sqlite() {
        assert_eq!(read_decimal("7.5"), Some(7.5));
        assert_eq!(read_decimal("-.5e1"), Some(-5.0));
        assert_eq!(read_decimal("5."), Some(5.0));
        assert_eq!(read_decimal("1e999"), Some(f64::INFINITY));
        assert_eq!(read_decimal("1e-999"), Some(0.0));
        assert_eq!(read_decimal("0.000"), Some(0.0));
        assert_eq!(read_decimal("."), None);
        assert_eq!(read_decimal("1e"), None);
        assert_eq!(read_decimal("1x"), None);
        // Past 19 digits the rest is dropped, not rounded: SQLite reads this literal as
        // 25967586501402155008 would read (the float below), not as the nearest float.
        assert_eq!(
            read_decimal("25967586501402155009"),
            Some(2.596_758_650_140_215_3e19)
        );
        assert_eq!(
            read_decimal("9223372036854775808"),
            Some(9_223_372_036_854_775_808.0)
        );
        // A written exponent past 10,000 is read whole, and the mantissa's digits bring it
        // back into range.
        let tiny_mantissa = format!("0.{}1e12100", "0".repeat(12_000));
        assert_eq!(read_decimal(&tiny_mantissa), Some(1e99));
        let huge_mantissa = format!("1{}e-12100", "0".repeat(12_000));
        assert_eq!(read_decimal(&huge_mantissa), Some(1e-100));
        // A sixth digit makes it 10,000, not 121,000 nor 12,100.
        let capped = format!("1{}e-121000", "0".repeat(12_000));
        assert_eq!(read_decimal(&capped), Some(f64::INFINITY));
    }
}
