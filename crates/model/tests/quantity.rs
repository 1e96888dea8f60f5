//! Quantity parsing: every unit, numbers vs strings, and bad inputs.

use canopy_model::{Mebibytes, Millicores};

#[test]
fn cpu_text_table() {
    let ok: &[(&str, u64)] = &[
        ("500m", 500),
        ("1m", 1),
        ("0m", 0),
        ("0.5", 500),
        ("0.25", 250),
        ("2", 2000),
        ("1.5", 1500),
        (" 3 ", 3000),
        ("0.0005", 1), // rounds to the nearest millicore
        ("1e1", 10_000),
    ];
    for (text, millis) in ok {
        assert_eq!(Millicores::parse(text), Ok(Millicores(*millis)), "{text:?}");
    }
    for bad in [
        "", "m", "-1", "-5m", "1.5m", "abc", "1 core", "inf", "NaN", "2e9", "5 m",
    ] {
        let err = Millicores::parse(bad).expect_err(bad);
        assert!(err.0.contains("invalid CPU quantity"), "{bad:?}: {err}");
    }
}

#[test]
fn memory_text_table() {
    let ok: &[(&str, u64)] = &[
        ("128", 128),
        ("128Mi", 128),
        ("1Gi", 1024),
        ("1.5Gi", 1536),
        ("1Ti", 1024 * 1024),
        ("1024Ki", 1),
        ("1Ki", 1), // rounded up: a request never shrinks
        ("100M", 96),
        ("1G", 954),
        ("1T", 953_675),
        ("1000k", 1),
        ("1000K", 1),
        ("0", 0),
        (".5Gi", 512),
    ];
    for (text, mib) in ok {
        assert_eq!(Mebibytes::parse(text), Ok(Mebibytes(*mib)), "{text:?}");
    }
    for bad in [
        "", "Mi", "-1Mi", "1Pi", "1 Gi", "1e3", "1.2.3", "12Mb", "lots", "1gi",
    ] {
        let err = Mebibytes::parse(bad).expect_err(bad);
        assert!(err.0.contains("invalid size"), "{bad:?}: {err}");
    }
}

#[test]
fn display_round_trips() {
    for m in [0, 1, 250, 1000, 123_456] {
        let text = Millicores(m).to_string();
        assert_eq!(Millicores::parse(&text), Ok(Millicores(m)));
    }
    for m in [0, 1, 64, 1024, 999_999] {
        let text = Mebibytes(m).to_string();
        assert_eq!(Mebibytes::parse(&text), Ok(Mebibytes(m)));
    }
}

#[test]
fn serde_numbers_and_strings() {
    // A bare number of CPU is cores, as in Kubernetes; of memory, MiB.
    let cpu = |json: &str| serde_json::from_str::<Millicores>(json);
    assert_eq!(cpu("2").unwrap(), Millicores(2000));
    assert_eq!(cpu("0.5").unwrap(), Millicores(500));
    assert_eq!(cpu("\"250m\"").unwrap(), Millicores(250));
    assert_eq!(cpu("\"1\"").unwrap(), Millicores(1000));
    for bad in [
        "-1",
        "-0.5",
        "[1]",
        "true",
        "null",
        "\"x\"",
        "18446744073709551615",
    ] {
        let err = cpu(bad).expect_err(bad).to_string();
        assert!(
            err.contains("CPU") || err.contains("negative"),
            "{bad}: {err}"
        );
    }
    let mem = |json: &str| serde_json::from_str::<Mebibytes>(json);
    assert_eq!(mem("128").unwrap(), Mebibytes(128));
    assert_eq!(mem("1.5").unwrap(), Mebibytes(2));
    assert_eq!(mem("\"1Gi\"").unwrap(), Mebibytes(1024));
    for bad in ["-1", "-0.5", "{}", "false", "\"1 Gi\""] {
        let err = mem(bad).expect_err(bad).to_string();
        assert!(
            err.contains("size") || err.contains("negative"),
            "{bad}: {err}"
        );
    }
    // YAML spells the same things without quotes.
    assert_eq!(
        yaml_serde::from_str::<Millicores>("500m").unwrap(),
        Millicores(500)
    );
    assert_eq!(
        yaml_serde::from_str::<Millicores>("0.5").unwrap(),
        Millicores(500)
    );
    assert_eq!(
        yaml_serde::from_str::<Mebibytes>("2Gi").unwrap(),
        Mebibytes(2048)
    );
    assert_eq!(serde_json::to_string(&Millicores(500)).unwrap(), "\"500m\"");
    assert_eq!(serde_json::to_string(&Mebibytes(128)).unwrap(), "\"128Mi\"");
}
