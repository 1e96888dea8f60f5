//! Integer fields that read every JSON spelling of an integer. JSON Schema (and so the API's
//! OpenAPI document) counts `3.0` as an integer; serde's own `u32` refuses it. These readers
//! take `3` and `3.0` alike and refuse fractions, negatives and values out of range, naming
//! the value as serde does.

use serde::Deserializer;
use serde::de::{Error, Unexpected, Visitor};
use std::fmt;
use std::marker::PhantomData;

struct Integral<T>(PhantomData<T>);

impl<T: TryFrom<u64>> Integral<T> {
    fn narrow<E: Error>(self, value: u64) -> Result<T, E> {
        T::try_from(value).map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
    }
}

// Messages as serde's own integers give them: "invalid type: integer `-1`, expected u32".
impl<T: TryFrom<u64>> Visitor<'_> for Integral<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::any::type_name::<T>())
    }

    fn visit_u64<E: Error>(self, value: u64) -> Result<T, E> {
        self.narrow(value)
    }

    fn visit_i64<E: Error>(self, value: i64) -> Result<T, E> {
        match u64::try_from(value) {
            Ok(value) => self.narrow(value),
            Err(_) => Err(E::invalid_type(Unexpected::Signed(value), &self)),
        }
    }

    fn visit_f64<E: Error>(self, value: f64) -> Result<T, E> {
        // 2^64 is the first float past u64::MAX; `as` would saturate, so check first.
        if value >= 0.0 && value.fract() == 0.0 && value < 18_446_744_073_709_551_616.0 {
            self.narrow(value as u64)
        } else if value.fract() == 0.0 && value >= 0.0 {
            Err(E::invalid_value(Unexpected::Float(value), &self))
        } else {
            Err(E::invalid_type(Unexpected::Float(value), &self))
        }
    }
}

/// `#[serde(deserialize_with = "crate::integer::integral")]` on a `u16`, `u32` or `u64`.
pub fn integral<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_any(Integral(PhantomData))
}

/// The same for an `Option` of one: `null` (or an absent field, with `#[serde(default)]`) is `None`.
pub fn optional_integral<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    struct Optional<T>(PhantomData<T>);
    impl<'de, T: TryFrom<u64>> Visitor<'de> for Optional<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "null or a non-negative integer")
        }

        fn visit_none<E: Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_unit<E: Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
            integral(deserializer).map(Some)
        }
    }
    deserializer.deserialize_option(Optional(PhantomData))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Sample {
        #[serde(deserialize_with = "super::integral")]
        count: u16,
        #[serde(default, deserialize_with = "super::optional_integral")]
        limit: Option<u32>,
    }

    fn read(text: &str) -> Result<Sample, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_floats_are_integers_and_fractions_are_not() {
        assert_eq!(
            read(r#"{"count": 3.0, "limit": 7}"#),
            Ok(Sample {
                count: 3,
                limit: Some(7)
            })
        );
        assert_eq!(
            read(r#"{"count": 3}"#),
            Ok(Sample {
                count: 3,
                limit: None
            })
        );
        assert_eq!(
            read(r#"{"count": 3, "limit": null}"#),
            Ok(Sample {
                count: 3,
                limit: None
            })
        );
        for (text, reason) in [
            (
                r#"{"count": 3.5}"#,
                "invalid type: floating point `3.5`, expected u16",
            ),
            (
                r#"{"count": -1}"#,
                "invalid type: integer `-1`, expected u16",
            ),
            (
                r#"{"count": 65536}"#,
                "invalid value: integer `65536`, expected u16",
            ),
            (r#"{"count": 1e300}"#, "invalid value: floating point"),
            (r#"{"count": "3"}"#, "expected u16"),
        ] {
            let error = read(text).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn yaml_reads_the_same() {
        let sample: Sample = yaml_serde::from_str("count: 4.0\nlimit: 2\n").unwrap();
        assert_eq!(
            sample,
            Sample {
                count: 4,
                limit: Some(2)
            }
        );
    }
}
