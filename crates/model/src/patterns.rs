//! The validator's string rules as regular expressions, for the OpenAPI document: built from
//! the same constants as the checks in `validate.rs`, in the syntax ECMA 262, Python and
//! Rust's `regex` share (no look-behind, `\uXXXX` escapes). Tests match each one against its
//! check in Rust.

use crate::limits::*;

/// Unicode White_Space (what Rust's `char::is_whitespace` and `str::trim` use).
const WHITESPACE: &str =
    r"\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// White_Space and the control characters (`char::is_control`, category Cc).
const SPACE_OR_CONTROL: &str =
    r"\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// A DNS label (RFC 1035), as `validate_dns_label` checks it.
pub fn dns_label() -> String {
    format!("^[a-z](?:[-a-z0-9]{{0,{}}}[a-z0-9])?$", MAX_NAME_LEN - 2)
}

/// A label name or value body: `[A-Za-z0-9._-]`, alphanumeric at both ends, at most `max`.
fn label_name(max: usize) -> String {
    format!("[A-Za-z0-9](?:[-A-Za-z0-9_.]{{0,{}}}[A-Za-z0-9])?", max - 2)
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain of at most 253.
pub fn label_key() -> String {
    let part = "[a-z0-9](?:[-a-z0-9]*[a-z0-9])?";
    format!(
        "^(?:(?=[^/]{{1,{MAX_LABEL_PREFIX_LEN}}}/){part}(?:\\.{part})*/)?{}$",
        label_name(MAX_NAME_LEN)
    )
}

/// A label value: empty, or a label name of at most 63.
pub fn label_value() -> String {
    format!("^(?:{})?$", label_name(MAX_LABEL_VALUE_LEN))
}

/// A label selector as the list endpoints' `labelSelector` takes it: requirements
/// (`key=value`, `key==value`, `key!=value`, `key`, `!key`) joined by commas; empty selects
/// everything, as in Kubernetes.
pub fn label_selector() -> String {
    let key = label_key();
    let key = key.trim_start_matches('^').trim_end_matches('$');
    let value = label_name(MAX_LABEL_VALUE_LEN);
    let requirement = format!("(?:!{key}|{key}(?:(?:==|!=|=){value})?)");
    format!("^(?:{requirement}(?:,{requirement})*)?$")
}

/// A GPU model: a label value that is not empty.
pub fn gpu_model() -> String {
    format!("^{}$", label_name(MAX_LABEL_VALUE_LEN))
}

/// An image reference or module location, or a cluster or node name: one word of printable
/// characters. Lengths are the schema's `maxLength` (a count in a pattern this large is more
/// than some regex engines take).
pub fn word() -> String {
    format!("^[^{SPACE_OR_CONTROL}]+$")
}

/// An HTTP path: '/' then anything but whitespace and control characters.
pub fn http_path() -> String {
    format!("^/[^{SPACE_OR_CONTROL}]*$")
}

/// Free text (command words, environment and annotation values): no NUL.
pub fn text() -> String {
    r"^[^\u0000]*$".to_string()
}

/// Free text that must not be empty (`workingDir`).
pub fn non_empty_text() -> String {
    r"^[^\u0000]+$".to_string()
}

/// An environment variable name: no `=`, no NUL, not empty.
pub fn env_name() -> String {
    r"^[^=\u0000]+$".to_string()
}

/// Somewhere a character that is not white space (unanchored: `str::trim` leaves something).
pub fn non_blank() -> String {
    format!("[^{WHITESPACE}]")
}

/// Canonical integers in `1..=n` (n >= 1), without leading zeros, as one group.
pub fn integers_up_to(n: u64) -> String {
    let digits: Vec<u8> = n.to_string().bytes().map(|b| b - b'0').collect();
    let len = digits.len();
    let any = |count: usize| match count {
        0 => String::new(),
        1 => "[0-9]".to_string(),
        _ => format!("[0-9]{{{count}}}"),
    };
    let range = |low: u8, high: u8| {
        if low == high {
            low.to_string()
        } else {
            format!("[{low}-{high}]")
        }
    };
    let mut alternatives: Vec<String> = (1..len)
        .map(|shorter| format!("[1-9]{}", any(shorter - 1)))
        .collect();
    for (i, &digit) in digits.iter().enumerate() {
        let low = u8::from(i == 0);
        if digit > low {
            let prefix: String = digits[..i].iter().map(u8::to_string).collect();
            alternatives.push(format!(
                "{prefix}{}{}",
                range(low, digit - 1),
                any(len - i - 1)
            ));
        }
    }
    alternatives.push(n.to_string());
    format!("(?:{})", alternatives.join("|"))
}

/// Decimal numbers (optional leading zeros, optional fraction) in `(0, n]` (n >= 1), or in
/// `[0, n]` with `zero`.
pub fn decimal_up_to(n: u64, zero: bool) -> String {
    let mut alternatives = Vec::new();
    if n >= 2 {
        alternatives.push(format!("0*{}(?:\\.[0-9]+)?", integers_up_to(n - 1)));
    }
    alternatives.push(format!("0*{n}(?:\\.0+)?"));
    alternatives.push("0+\\.[0-9]*[1-9][0-9]*".to_string());
    if zero {
        alternatives.push("0+(?:\\.0+)?".to_string());
    }
    format!("(?:{})", alternatives.join("|"))
}

/// A CPU quantity string: millicores (`500m`) or cores (`0.5`, `2`), more than 0, at most
/// [`MAX_CPU_MILLICORES`].
pub fn cpu() -> String {
    let cores = MAX_CPU_MILLICORES / 1000;
    format!(
        "^(?:0*{}m|{})$",
        integers_up_to(MAX_CPU_MILLICORES),
        decimal_up_to(cores, false)
    )
}

/// Bytes per unit of a size string; the empty unit is MiB.
pub const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1 << 20),
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("k", 1_000),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
];

/// A size string of at most `max_mib` MiB in any unit; more than 0 unless `zero`.
pub fn size(max_mib: u64, zero: bool) -> String {
    let alternatives: Vec<String> = SIZE_UNITS
        .iter()
        .map(|(unit, bytes)| {
            let most = u128::from(max_mib) * (1 << 20) / u128::from(*bytes);
            let most = u64::try_from(most).unwrap_or(u64::MAX);
            format!("{}{unit}", decimal_up_to(most, zero))
        })
        .collect();
    format!("^(?:{})$", alternatives.join("|"))
}

/// A job's cron schedule, as `job::check_schedule` takes it: a nickname, or five fields
/// (six with seconds first) of `*`, `*/STEP` (1 to the field's largest value) or
/// comma-separated numbers in the field's range, without leading zeros.
pub fn schedule() -> String {
    let nicknames: Vec<&str> = crate::job::SCHEDULE_NICKNAMES
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let field = |&(_, low, high): &(&str, u32, u32)| {
        let value = if low == 0 {
            format!("(?:0|{})", integers_up_to(u64::from(high)))
        } else {
            integers_up_to(u64::from(high))
        };
        let step = integers_up_to(u64::from(high));
        format!("(?:\\*|\\*/{step}|{value}(?:,{value})*)")
    };
    let fields: Vec<String> = crate::job::SCHEDULE_FIELDS.iter().map(field).collect();
    format!(
        "^(?:{}|(?:{} )?{})$",
        nicknames.join("|"),
        field(&crate::job::SECONDS_FIELD),
        fields.join(" ")
    )
}
