//! Durations on the command line, as kubectl and Go write them: `90` (seconds), `90s`,
//! `30m`, `24h`, `7d`, or a sum such as `1h30m`.

/// Seconds in `text`.
pub fn parse_seconds(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let invalid = || format!("expected a duration like 90s, 30m, 24h, 7d or 1h30m, got {text:?}");
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return text.parse().map_err(|_| invalid());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let (number, after) = rest.split_at(digits);
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            "" => return Err(invalid()),
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {text:?}: use s, m, h or d"
                ));
            }
        };
        total = number
            .checked_mul(scale)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("{text:?} is too long"))?;
        rest = next;
    }
    if text.is_empty() {
        return Err(invalid());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units_and_sums() {
        assert_eq!(parse_seconds("90"), Ok(90));
        assert_eq!(parse_seconds("90s"), Ok(90));
        assert_eq!(parse_seconds("30m"), Ok(1800));
        assert_eq!(parse_seconds("24h"), Ok(86400));
        assert_eq!(parse_seconds("7d"), Ok(604800));
        assert_eq!(parse_seconds("1h30m"), Ok(5400));
        for bad in ["", "1w", "h", "5m3", "m5", "99999999999999999999d", "1.5h"] {
            assert!(parse_seconds(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
