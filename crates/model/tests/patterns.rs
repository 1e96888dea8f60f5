//! The OpenAPI patterns (`canopy_model::patterns`) say what the checks in Rust say: every
//! string a pattern matches is accepted, and every accepted string in the pattern's
//! (canonical) spelling is matched.

use canopy_model::limits::*;
use canopy_model::{Mebibytes, Millicores, patterns, validate_dns_label};
use proptest::prelude::*;
use regex::Regex;
use std::sync::LazyLock;

// Compiled once: the quantity patterns are large.
static DNS_LABEL: LazyLock<Regex> = LazyLock::new(|| compile(&patterns::dns_label()));
static CPU: LazyLock<Regex> = LazyLock::new(|| compile(&patterns::cpu()));
static MEMORY: LazyLock<Regex> = LazyLock::new(|| compile(&patterns::size(MAX_MEMORY_MIB, false)));
static STORAGE: LazyLock<Regex> = LazyLock::new(|| compile(&patterns::size(MAX_STORAGE_MIB, true)));
static LABEL_VALUE: LazyLock<Regex> = LazyLock::new(|| compile(&patterns::label_value()));
static WORD: LazyLock<Regex> = LazyLock::new(|| compile(&patterns::word()));
static SCHEDULE: LazyLock<Regex> = LazyLock::new(|| compile(&patterns::schedule()));

fn compile(pattern: &str) -> Regex {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 26)
        .build()
        .unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

fn cpu_accepted(text: &str) -> bool {
    Millicores::parse(text).is_ok_and(|m| m.0 > 0 && m.0 <= MAX_CPU_MILLICORES)
}

fn size_accepted(text: &str, max: u64, zero: bool) -> bool {
    Mebibytes::parse(text).is_ok_and(|m| (zero || m.0 > 0) && m.0 <= max)
}

/// Digits with at most one '.' inside, no leading '.', no trailing '.': the patterns' spelling.
fn canonical_number(number: &str) -> bool {
    !number.starts_with('.') && !number.ends_with('.') && number.matches('.').count() <= 1
}

#[test]
fn integer_ranges_are_exact() {
    for n in [1, 7, 9, 10, 19, 100, 1023, 1024, 1_024_000, 16_777_216] {
        let range = compile(&format!("^{}$", patterns::integers_up_to(n)));
        for k in (0..=n + 20).chain([n * 10, n * 10 + 1]) {
            let inside = (1..=n).contains(&k);
            assert_eq!(range.is_match(&k.to_string()), inside, "{k} in 1..={n}");
        }
        assert!(
            !range.is_match("01"),
            "no leading zeros in the integer part"
        );
    }
}

#[test]
fn quantity_boundaries() {
    let cpu = &*CPU;
    for (text, ok) in [
        ("1m", true),
        ("0m", false),
        ("1024000m", true),
        ("1024001m", false),
        ("0.0001", true),
        ("0", false),
        ("0.000", false),
        ("1024", true),
        ("1024.0", true),
        ("1024.5", false),
        ("1023.9999", true),
        ("1025", false),
        ("007", true),
    ] {
        assert_eq!(cpu.is_match(text), ok, "cpu {text}");
        assert_eq!(cpu_accepted(text), ok, "cpu {text} parses");
    }
    let memory = &*MEMORY;
    for (text, ok) in [
        ("16Ti", true),
        ("16.0Ti", true),
        ("16.1Ti", false),
        ("17Ti", false),
        ("16384Gi", true),
        ("16385Gi", false),
        ("16777216", true),
        ("16777217Mi", false),
        ("0", false),
        ("0Mi", false),
        ("0.5Ki", true),
        ("17592G", true),
        ("17593G", false),
    ] {
        assert_eq!(memory.is_match(text), ok, "memory {text}");
        assert_eq!(
            size_accepted(text, MAX_MEMORY_MIB, false),
            ok,
            "memory {text} parses"
        );
    }
    let storage = &*STORAGE;
    assert!(storage.is_match("0") && storage.is_match("0Gi") && storage.is_match("1024Ti"));
    assert!(!storage.is_match("1025Ti"));
}

proptest! {
    #[test]
    fn dns_label_pattern_is_the_check(name in "[a-z0-9A-Z_-]{0,66}") {
        let pattern = &*DNS_LABEL;
        prop_assert_eq!(pattern.is_match(&name), validate_dns_label(&name).is_ok(), "{}", name);
    }

    #[test]
    fn cpu_pattern_is_the_check(number in "[0-9.]{1,9}", millis in any::<bool>()) {
        let text = if millis { format!("{number}m") } else { number.clone() };
        let pattern = &*CPU;
        let matched = pattern.is_match(&text);
        if matched {
            prop_assert!(cpu_accepted(&text), "{} matches but is refused", text);
        } else if canonical_number(&number) && !(millis && number.contains('.')) {
            prop_assert!(!cpu_accepted(&text), "{} is accepted but not matched", text);
        }
    }

    #[test]
    fn size_pattern_is_the_check(
        number in "[0-9.]{1,12}",
        unit in prop::sample::select(vec!["", "Ki", "Mi", "Gi", "Ti", "k", "K", "M", "G", "T"]),
    ) {
        let text = format!("{number}{unit}");
        for (max, zero, pattern) in [(MAX_MEMORY_MIB, false, &*MEMORY), (MAX_STORAGE_MIB, true, &*STORAGE)] {
            if pattern.is_match(&text) {
                prop_assert!(size_accepted(&text, max, zero), "{} matches but is refused", text);
            } else if canonical_number(&number) && !["k", "K", "M", "G", "T"].contains(&unit) {
                // Decimal units stop at the whole number below the limit: the few values
                // between it and the limit are accepted but not matched.
                prop_assert!(!size_accepted(&text, max, zero), "{} is accepted but not matched", text);
            }
        }
    }

    #[test]
    fn label_value_pattern_is_the_check(value in "[a-zA-Z0-9._/ -]{0,66}") {
        let pattern = &*LABEL_VALUE;
        let accepted = value.is_empty()
            || (value.len() <= MAX_LABEL_VALUE_LEN
                && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && value.starts_with(|c: char| c.is_ascii_alphanumeric())
                && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
        prop_assert_eq!(pattern.is_match(&value), accepted, "{}", value);
    }

    #[test]
    fn reference_pattern_is_one_printable_word(word in "\\PC{0,8}|[ \t\u{a0}\u{2028}\u{85}\u{feff}a-z]{0,4}") {
        let pattern = &*WORD;
        let accepted = !word.trim().is_empty()
            && !word.chars().any(|c| c.is_whitespace() || c.is_control());
        prop_assert_eq!(pattern.is_match(&word), accepted, "{:?}", word);
    }

    #[test]
    fn schedule_pattern_is_the_check(
        fields in prop::collection::vec("\\*|\\*/[0-9]{1,3}|[0-9]{1,3}(,[0-9]{1,3}){0,2}|@[a-z]{4,8}|[0-9]-[0-9]", 1..7),
    ) {
        let schedule = fields.join(" ");
        let pattern = &*SCHEDULE;
        let accepted = canopy_model::job::check_schedule(&schedule).is_ok();
        prop_assert_eq!(pattern.is_match(&schedule), accepted, "{:?}", schedule);
    }
}
