//! Human durations such as `7d`, `12h` or `2w`, as users type them in `--expiring-within`.

use jiff::SignedDuration;

use crate::id::InvalidInput;

/// Parse `N` followed by one unit: `ms`, `s`, `m`, `h`, `d` or `w`. Whitespace around is ignored.
pub fn parse_duration(text: &str) -> Result<SignedDuration, InvalidInput> {
    let text = text.trim();
    let bad = || {
        InvalidInput::new(format!(
            "`{text}` is not a duration; write a whole number and a unit, such as `30m`, `12h`, `7d` or `2w`"
        ))
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    if unit == "ms" {
        return Ok(SignedDuration::from_millis(n));
    }
    let seconds_per_unit: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    let seconds = n
        .checked_mul(seconds_per_unit)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .ok_or_else(|| InvalidInput::new(format!("`{text}` is longer than a century")))?;
    Ok(SignedDuration::from_secs(seconds))
}

/// Render a duration the way the token table shows it: the two largest units, such as `3d 4h`.
pub fn format_duration_short(d: SignedDuration) -> String {
    let total = d.as_secs().unsigned_abs();
    let (days, rem) = (total / 86_400, total % 86_400);
    let (hours, rem) = (rem / 3_600, rem % 3_600);
    let (minutes, seconds) = (rem / 60, rem % 60);
    if days > 0 {
        if hours > 0 {
            format!("{days}d {hours}h")
        } else {
            format!("{days}d")
        }
    } else if hours > 0 {
        if minutes > 0 {
            format!("{hours}h {minutes}m")
        } else {
            format!("{hours}h")
        }
    } else if minutes > 0 {
        format!("{minutes}m")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 7 * 86_400);
        assert_eq!(parse_duration(" 12h ").unwrap().as_secs(), 12 * 3_600);
        assert_eq!(parse_duration("2w").unwrap().as_secs(), 14 * 86_400);
        assert_eq!(parse_duration("30m").unwrap().as_secs(), 1_800);
        assert_eq!(parse_duration("45s").unwrap().as_secs(), 45);
        assert_eq!(parse_duration("250ms").unwrap().as_millis(), 250);
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "d",
            "7",
            "7 d",
            "-7d",
            "7y",
            "1.5d",
            "99999999999999999999d",
            "40000w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formats_two_largest_units() {
        assert_eq!(
            format_duration_short(SignedDuration::from_secs(3 * 86_400 + 4 * 3_600 + 5)),
            "3d 4h"
        );
        assert_eq!(
            format_duration_short(SignedDuration::from_secs(90 * 60)),
            "1h 30m"
        );
        assert_eq!(format_duration_short(SignedDuration::from_secs(-120)), "2m");
        assert_eq!(format_duration_short(SignedDuration::from_secs(5)), "5s");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
        }
    }
}
