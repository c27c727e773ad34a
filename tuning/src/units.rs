//! Values with units: sizes (`8MiB`, `256MB`, `4096`) and durations
//! (`10ms`, `2s`, `10m`). A bare number takes the unit the setting's name
//! (or, for a Woodpecker key, its documentation) gives it; a suffix names
//! its own unit. Nothing is guessed: `8M` is refused, since it could mean
//! 8,000,000 or 8,388,608.

/// What a bare number means for a duration setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareDuration {
    Millis,
    Seconds,
}

/// A size in bytes: a whole number, or a number with one of B, KB, MB, GB,
/// TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '_' || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim());
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?} is not a size: use a number of bytes or a unit of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB (e.g. 8MiB)"
            ))
        }
    };
    let not_size = || format!("{text:?} is not a size (e.g. 4096, 256MB, 8MiB)");
    if number.contains('.') {
        // A fraction is fine while the result is a whole number of bytes.
        let value: f64 = number.replace('_', "").parse().map_err(|_| not_size())?;
        let bytes = value * scale as f64;
        if !bytes.is_finite() || bytes.fract() != 0.0 || bytes > u64::MAX as f64 {
            return Err(format!("{text:?} is not a whole number of bytes"));
        }
        return Ok(bytes as u64);
    }
    parse_whole(number)
        .ok_or_else(not_size)?
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A duration in whole milliseconds: a bare number in the `bare` unit, or a
/// number with a unit (`500ms`, `2s`, `10m`, `72h`, `1h 30m`).
pub fn parse_millis(text: &str, bare: BareDuration) -> Result<u64, String> {
    let text = text.trim();
    if let Some(number) = parse_whole(text) {
        let scale = match bare {
            BareDuration::Millis => 1,
            BareDuration::Seconds => 1_000,
        };
        return number
            .checked_mul(scale)
            .ok_or_else(|| format!("{text:?} is too large"));
    }
    let duration = humantime::parse_duration(text)
        .map_err(|_| format!("{text:?} is not a duration (e.g. 10ms, 2s, 10m, 1h 30m)"))?;
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!("{text:?} is not a whole number of milliseconds"));
    }
    u64::try_from(duration.as_millis()).map_err(|_| format!("{text:?} is too large"))
}

/// A whole number without a unit (`65536`, `65_536`).
pub fn parse_count(text: &str) -> Result<u64, String> {
    let text = text.trim();
    parse_whole(text)
        .ok_or_else(|| format!("{text:?} is not a whole number (this setting has no unit)"))
}

pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        other => Err(format!("{other:?} is not true or false")),
    }
}

fn parse_whole(text: &str) -> Option<u64> {
    let digits = text.replace('_', "");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_their_unit_from_the_suffix() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("8MiB"), Ok(8 << 20));
        assert_eq!(parse_bytes("8 MiB"), Ok(8 << 20));
        assert_eq!(parse_bytes("256MB"), Ok(256_000_000));
        assert_eq!(parse_bytes("1.5KiB"), Ok(1536));
        assert_eq!(parse_bytes("1_000B"), Ok(1000));
        assert!(parse_bytes("8M").unwrap_err().contains("KiB"));
        assert!(parse_bytes("10ms").is_err());
        assert!(parse_bytes("0.3B").is_err());
        assert!(parse_bytes("99999999TiB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn durations_take_the_bare_unit_or_their_suffix() {
        assert_eq!(parse_millis("10", BareDuration::Millis), Ok(10));
        assert_eq!(parse_millis("10", BareDuration::Seconds), Ok(10_000));
        assert_eq!(parse_millis("10ms", BareDuration::Seconds), Ok(10));
        assert_eq!(parse_millis("2s", BareDuration::Millis), Ok(2_000));
        assert_eq!(parse_millis("10m", BareDuration::Millis), Ok(600_000));
        assert_eq!(parse_millis("1h 30m", BareDuration::Millis), Ok(5_400_000));
        assert!(parse_millis("8MiB", BareDuration::Millis).is_err());
        assert!(parse_millis("10us", BareDuration::Millis)
            .unwrap_err()
            .contains("whole number of milliseconds"));
    }

    #[test]
    fn counts_and_flags_have_no_unit() {
        assert_eq!(parse_count("65_536"), Ok(65_536));
        assert!(parse_count("10ms").unwrap_err().contains("no unit"));
        assert_eq!(parse_bool("true"), Ok(true));
        assert!(parse_bool("yes").is_err());
    }
}
