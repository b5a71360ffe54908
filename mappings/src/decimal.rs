//! Exact decimal ranges on text, for quantity and number search: the range a value's written
//! precision implies (`5.4` is 5.35 to 5.45, `100` is 99.5 to 100.5, `1.5e3` is 1450 to
//! 1550), and the approximate range of `ap` (±10 %, at least the precision range). No
//! floating point: the digits are added and subtracted as digits.

use std::cmp::Ordering;

/// The most digits a bound may have; a value that would need more is refused (it would ask
/// PostgreSQL's numeric, and every comparison, for more than any measurement carries).
const MAX_DIGITS: usize = 100;

/// A decimal read from FHIR's lexical form (`-?digits[.digits][e[+-]digits]`):
/// `sign × magnitude × 10^-scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    /// Digits, most significant first, no leading zeros (empty is zero).
    magnitude: Vec<u8>,
    scale: i64,
}

fn parse(text: &str) -> Option<Decimal> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            (m, e.parse::<i64>().ok()?)
        }
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) || mantissa.ends_with('.') {
        return None;
    }
    let magnitude: Vec<u8> = int
        .bytes()
        .chain(frac.bytes())
        .map(|b| b - b'0')
        .skip_while(|d| *d == 0)
        .collect();
    let scale = frac.len() as i64 - exponent;
    if magnitude.len() > MAX_DIGITS || scale.unsigned_abs() as usize > MAX_DIGITS {
        return None;
    }
    Some(Decimal {
        negative: negative && !magnitude.is_empty(),
        magnitude,
        scale,
    })
}

fn cmp_mag(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn trim(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|d| **d == 0).count();
    v.drain(..zeros);
    v
}

fn add_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let (mut i, mut j, mut carry) = (a.len(), b.len(), 0u8);
    while i > 0 || j > 0 || carry > 0 {
        let x = if i > 0 { a[i - 1] } else { 0 };
        let y = if j > 0 { b[j - 1] } else { 0 };
        let s = x + y + carry;
        out.push(s % 10);
        carry = s / 10;
        i = i.saturating_sub(1);
        j = j.saturating_sub(1);
    }
    out.reverse();
    trim(out)
}

/// `a - b` for `a >= b`.
fn sub_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let (mut i, mut j, mut borrow) = (a.len(), b.len(), 0i8);
    while i > 0 {
        let x = a[i - 1] as i8;
        let y = if j > 0 { b[j - 1] as i8 } else { 0 };
        let mut d = x - y - borrow;
        borrow = 0;
        if d < 0 {
            d += 10;
            borrow = 1;
        }
        out.push(d as u8);
        i -= 1;
        j = j.saturating_sub(1);
    }
    out.reverse();
    trim(out)
}

/// A signed integer as (negative, magnitude).
type Signed = (bool, Vec<u8>);

fn add(a: &Signed, b: &Signed) -> Signed {
    if a.0 == b.0 {
        return (a.0, add_mag(&a.1, &b.1));
    }
    match cmp_mag(&a.1, &b.1) {
        Ordering::Less => (b.0, sub_mag(&b.1, &a.1)),
        _ => {
            let m = sub_mag(&a.1, &b.1);
            (a.0 && !m.is_empty(), m)
        }
    }
}

/// Renders `value × 10^-scale` as plain decimal text (no exponent).
fn render((negative, magnitude): &Signed, scale: i64) -> String {
    let digits: String = magnitude.iter().map(|d| char::from(b'0' + d)).collect();
    let digits = if digits.is_empty() {
        "0".into()
    } else {
        digits
    };
    let body = if scale <= 0 {
        let zeros = if digits == "0" { 0 } else { (-scale) as usize };
        format!("{digits}{}", "0".repeat(zeros))
    } else {
        let scale = scale as usize;
        let padded = format!(
            "{}{digits}",
            "0".repeat((scale + 1).saturating_sub(digits.len()))
        );
        let (int, frac) = padded.split_at(padded.len() - scale);
        format!("{int}.{frac}")
    };
    if *negative && magnitude.iter().any(|d| *d != 0) {
        format!("-{body}")
    } else {
        body
    }
}

/// The range `text`'s written precision implies, as decimal text (low, high), or `None` if
/// `text` is not a decimal.
pub fn precision_range(text: &str) -> Option<(String, String)> {
    range(text, false)
}

/// The range `ap` searches: ±10 % of the value, and at least its precision range.
pub fn approximate_range(text: &str) -> Option<(String, String)> {
    range(text, true)
}

fn range(text: &str, approximate: bool) -> Option<(String, String)> {
    let d = parse(text)?;
    // One more digit of scale: the half step is 5 there, and 10 % of the value is the value's
    // own digits.
    let mut scaled = d.magnitude.clone();
    if !scaled.is_empty() {
        scaled.push(0);
    }
    let value: Signed = (d.negative, scaled);
    let five = vec![5u8];
    let delta = if approximate && cmp_mag(&d.magnitude, &five) == Ordering::Greater {
        d.magnitude.clone()
    } else {
        five
    };
    let low = add(&value, &(true, delta.clone()));
    let high = add(&value, &(false, delta));
    let scale = d.scale + 1;
    Some((render(&low, scale), render(&high, scale)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Option<(String, String)> {
        precision_range(text)
    }

    fn pair(a: &str, b: &str) -> Option<(String, String)> {
        Some((a.into(), b.into()))
    }

    #[test]
    fn precision_ranges() {
        assert_eq!(r("5.4"), pair("5.35", "5.45"));
        assert_eq!(r("100"), pair("99.5", "100.5"));
        assert_eq!(r("0"), pair("-0.5", "0.5"));
        assert_eq!(r("-5.4"), pair("-5.45", "-5.35"));
        assert_eq!(r("1.50"), pair("1.495", "1.505"));
        assert_eq!(r("1.5e3"), pair("1450", "1550"));
        assert_eq!(r("1.5E-3"), pair("0.00145", "0.00155"));
        assert_eq!(r("0.00001"), pair("0.000005", "0.000015"));
        assert_eq!(r("9.99"), pair("9.985", "9.995"));
        assert_eq!(r("0.04"), pair("0.035", "0.045"));
        assert_eq!(r("-0.04"), pair("-0.045", "-0.035"));
        assert_eq!(
            r("123456789012345678901234567890"),
            pair(
                "123456789012345678901234567889.5",
                "123456789012345678901234567890.5"
            )
        );
        for bad in [
            "",
            "-",
            "1.",
            ".5",
            "1e",
            "abc",
            "1,5",
            "1e9999999",
            "0x10",
            "1.2.3",
        ] {
            assert_eq!(r(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn approximate_ranges() {
        assert_eq!(approximate_range("100"), pair("90.0", "110.0"));
        assert_eq!(approximate_range("5.4"), pair("4.86", "5.94"));
        assert_eq!(approximate_range("-100"), pair("-110.0", "-90.0"));
        // Never narrower than the precision range.
        assert_eq!(approximate_range("1"), pair("0.5", "1.5"));
        assert_eq!(approximate_range("0"), pair("-0.5", "0.5"));
    }
}
