//! FHIR date, dateTime and instant values as time ranges.
//!
//! A value stands for the whole span its precision implies: `2024` is all of 2024,
//! `2024-03-05T10:00:00Z` is one second. Ranges are microseconds since the Unix epoch,
//! both ends inclusive. Values without a time zone are read as UTC.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// Parses a FHIR date, dateTime or instant into its range.
pub fn parse_range(text: &str) -> Option<(i64, i64)> {
    let text = text.trim();
    let (date_part, time_part) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut parts = date_part.split('-');
    let year: i32 = parse_digits(parts.next()?, 4)?;
    let month: Option<u32> = match parts.next() {
        Some(m) => Some(parse_digits(m, 2)?),
        None => None,
    };
    let day: Option<u32> = match parts.next() {
        Some(d) => Some(parse_digits(d, 2)?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    match (month, day, time_part) {
        (None, None, None) => {
            let start = NaiveDate::from_ymd_opt(year, 1, 1)?;
            let end = NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?;
            Some(day_range(start, end))
        }
        (Some(m), None, None) => {
            let start = NaiveDate::from_ymd_opt(year, m, 1)?;
            let end = if m == 12 {
                NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(year, m + 1, 1)?
            };
            Some(day_range(start, end))
        }
        (Some(m), Some(d), None) => {
            let start = NaiveDate::from_ymd_opt(year, m, d)?;
            Some(day_range(start, start.succ_opt()?))
        }
        (Some(m), Some(d), Some(t)) => {
            let date = NaiveDate::from_ymd_opt(year, m, d)?;
            time_range(date, t)
        }
        _ => None,
    }
}

fn parse_digits<T: std::str::FromStr>(s: &str, len: usize) -> Option<T> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn micros(dt: NaiveDateTime) -> i64 {
    Utc.from_utc_datetime(&dt).timestamp_micros()
}

fn day_range(start: NaiveDate, end_exclusive: NaiveDate) -> (i64, i64) {
    let low = micros(start.and_time(NaiveTime::MIN));
    let high = micros(end_exclusive.and_time(NaiveTime::MIN)) - 1;
    (low, high)
}

fn time_range(date: NaiveDate, t: &str) -> Option<(i64, i64)> {
    // Split off the zone: `Z`, `+hh:mm` or `-hh:mm`.
    let (clock, offset_secs) = if let Some(clock) = t.strip_suffix('Z') {
        (clock, 0)
    } else if let Some(pos) = t.rfind(['+', '-']) {
        let (clock, zone) = t.split_at(pos);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':')?;
        let h: i32 = parse_digits(h, 2)?;
        let m: i32 = parse_digits(m, 2)?;
        if h > 14 || m > 59 {
            return None;
        }
        (clock, sign * (h * 3600 + m * 60))
    } else {
        (t, 0)
    };
    let mut fields = clock.split(':');
    let h: u32 = parse_digits(fields.next()?, 2)?;
    let m: u32 = parse_digits(fields.next()?, 2)?;
    let (s, frac, span_micros) = match fields.next() {
        None => (0, 0, 60_000_000i64),
        Some(sec) => {
            let (whole, frac) = match sec.split_once('.') {
                Some((w, f)) => (w, Some(f)),
                None => (sec, None),
            };
            let s: u32 = parse_digits(whole, 2)?;
            match frac {
                None => (s, 0, 1_000_000),
                Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
                    // Precision beyond microseconds is truncated.
                    let digits = f.len().min(6);
                    let value: i64 = f[..digits].parse().ok()?;
                    let scale = 10i64.pow(6 - digits as u32);
                    (s, value * scale, scale)
                }
                Some(_) => return None,
            }
        }
    };
    if fields.next().is_some() {
        return None;
    }
    // FHIR allows a leap second written as :60; read it as the last moment of the minute.
    let s = s.min(59);
    let time = NaiveTime::from_hms_opt(h, m, s)?;
    let offset = FixedOffset::east_opt(offset_secs)?;
    let local = date.and_time(time);
    let dt: DateTime<FixedOffset> = offset.from_local_datetime(&local).single()?;
    let low = dt.with_timezone(&Utc).timestamp_micros() + frac;
    Some((low, low + span_micros - 1))
}

/// Formats µs since the epoch as a FHIR instant (`2024-03-05T10:00:00.123456Z`, trailing
/// zero fraction dropped to millisecond precision).
pub fn format_instant(micros: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(dt) if dt.year() > 0 => dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        _ => "1970-01-01T00:00:00Z".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<DateTime<Utc>>()
            .map(|d| d.timestamp_micros())
            .unwrap_or(i64::MIN)
    }

    #[test]
    fn ranges() {
        let check = |input: &str, low: &str, high: &str| {
            assert_eq!(
                parse_range(input),
                Some((at(low), at(high))),
                "parsing {input}"
            );
        };
        check(
            "2024",
            "2024-01-01T00:00:00Z",
            "2024-12-31T23:59:59.999999Z",
        );
        check(
            "2024-02",
            "2024-02-01T00:00:00Z",
            "2024-02-29T23:59:59.999999Z",
        );
        check(
            "2023-12",
            "2023-12-01T00:00:00Z",
            "2023-12-31T23:59:59.999999Z",
        );
        check(
            "2024-03-05",
            "2024-03-05T00:00:00Z",
            "2024-03-05T23:59:59.999999Z",
        );
        check(
            "2024-03-05T10:00:00+01:00",
            "2024-03-05T09:00:00Z",
            "2024-03-05T09:00:00.999999Z",
        );
        check(
            "2024-03-05T10:00:00.5Z",
            "2024-03-05T10:00:00.5Z",
            "2024-03-05T10:00:00.599999Z",
        );
        check(
            "2024-03-05T10:00Z",
            "2024-03-05T10:00:00Z",
            "2024-03-05T10:00:59.999999Z",
        );
        for bad in [
            "",
            "24",
            "2024-13",
            "2024-02-30",
            "2024-1-01",
            "2024-03-05T25:00:00Z",
            "x",
        ] {
            assert_eq!(parse_range(bad), None, "{bad} should not parse");
        }
    }

    #[test]
    fn instant_format_round_trips() {
        let m = at("2024-03-05T10:00:00.123456Z");
        assert_eq!(format_instant(m), "2024-03-05T10:00:00.123456Z");
        assert_eq!(parse_range(&format_instant(m)).map(|r| r.0), Some(m));
    }
}
