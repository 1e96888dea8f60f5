//! The autoscale core against HPA's rules, with an injected clock.

use super::*;

const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;
const MIB: u64 = 1 << 20;

fn at(s: i64) -> OffsetDateTime {
    T0 + Duration::seconds(s)
}

/// `min..=max` on CPU `target` %, windows as given (up, down).
fn spec(min: u32, max: u32, target: u32, windows: (u32, u32)) -> AutoscaleSpec {
    AutoscaleSpec {
        min,
        max,
        target_cpu: Some(target),
        target_memory: None,
        scale_up_stabilization_seconds: windows.0,
        scale_down_stabilization_seconds: windows.1,
    }
}

/// 100 millicores and 64 MiB per instance.
const REQUESTS: Requests = Requests {
    cpu_millis: 100,
    memory_bytes: 64 * MIB,
};

fn using(cpu_millis: u64) -> Sample {
    Sample {
        ready: true,
        usage: Some(Usage {
            cpu_millis,
            memory_bytes: 16 * MIB,
        }),
    }
}

const SILENT: Sample = Sample {
    ready: true,
    usage: None,
};

const UNREADY: Sample = Sample {
    ready: false,
    usage: None,
};

/// One decision at second 0, with a history of `replicas` too old for any window.
fn once(spec: &AutoscaleSpec, replicas: u32, samples: &[Sample]) -> Decision {
    let mut history = History::starting(at(-10_000), replicas);
    decide(spec, replicas, REQUESTS, samples, &mut history, at(0))
}

#[test]
fn one_instance_far_above_its_target_scales_up_at_once_to_max() {
    let spec = spec(1, 5, 50, (0, 300));
    // 200 % of the request against a 50 % target: four times as many, capped at 5.
    let decision = once(&spec, 1, &[using(200)]);
    assert_eq!((decision.current, decision.desired), (1, 4));
    let burning = once(&spec, 1, &[using(1000)]);
    assert_eq!(burning.desired, 5, "{}", burning.reason);
    assert_eq!(
        burning.readings,
        [Reading {
            resource: Resource::Cpu,
            usage: 1000,
            target: 50,
            measured: 1,
            missing: 0,
            unready: 0,
            proposal: 20,
        }]
    );
    assert!(
        burning
            .reason
            .starts_with("cpu at 1000% of its 50% target over 1 measured instance(s)"),
        "{}",
        burning.reason
    );
    assert!(burning.reason.contains("5 within min 1 and max 5"));
}

#[test]
fn the_formula_is_ceil_of_current_times_usage_over_target_without_rounding_drift() {
    let spec = spec(1, 100, 50, (0, 0));
    // 3 × 100 % / 50 % = exactly 6, not 7.
    assert_eq!(once(&spec, 3, &[using(100); 3]).desired, 6);
    // 3 × 70 % / 50 % = 4.2: 5.
    assert_eq!(once(&spec, 3, &[using(70); 3]).desired, 5);
    // Uneven instances: the average counts.
    let uneven = [using(10), using(190)];
    assert_eq!(once(&spec, 2, &uneven).desired, 4);
}

#[test]
fn a_ratio_within_ten_percent_of_the_target_changes_nothing() {
    let spec = spec(1, 10, 50, (0, 0));
    for (millis, replicas) in [(45, 2), (50, 2), (55, 2), (44, 2), (20, 1), (56, 3)] {
        let two = [using(millis), using(millis)];
        let decision = once(&spec, 2, &two);
        assert_eq!(decision.desired, replicas, "{millis}m: {}", decision.reason);
    }
}

#[test]
fn an_idle_service_scales_down_to_min_once_its_window_passed() {
    let spec = spec(1, 5, 50, (0, 300));
    let mut history = History::starting(at(0), 4);
    let idle = [using(2); 4];
    // Every 15 s for five minutes: the 4 recommended at second 0 holds.
    for s in (15..=300).step_by(15) {
        let decision = decide(&spec, 4, REQUESTS, &idle, &mut history, at(s));
        assert_eq!(decision.desired, 4, "at {s} s");
        assert!(decision.reason.contains("300 s stabilisation window"));
    }
    let after = decide(&spec, 4, REQUESTS, &idle, &mut history, at(301));
    assert_eq!(after.desired, 1, "{}", after.reason);
}

#[test]
fn a_scale_down_takes_the_highest_recommendation_of_its_window() {
    let spec = spec(1, 10, 50, (0, 60));
    let mut history = History::starting(at(-1000), 8);
    let load = |millis: u64| [using(millis); 8];
    // 8 × 50 % / 50 % → 8, then 8 × 25 % → 4, then 8 × 12.5 % → 2.
    let mut desired = |s: i64, millis: u64| {
        decide(&spec, 8, REQUESTS, &load(millis), &mut history, at(s)).desired
    };
    assert_eq!(desired(0, 100), 10, "16 wanted, clamped to max");
    assert_eq!(desired(20, 25), 8, "second 0's 10 is still in the window");
    assert_eq!(desired(61, 25), 4, "second 20's 4 is now the highest");
    assert_eq!(desired(70, 12), 4);
    assert_eq!(desired(121, 12), 4, "second 61's 4 still in the window");
    assert_eq!(desired(122, 12), 2);
}

#[test]
fn a_scale_up_window_takes_the_lowest_recommendation_of_its_window() {
    let spec = spec(1, 10, 50, (30, 0));
    let mut history = History::starting(at(0), 1);
    let mut desired = |s: i64, millis: u64| {
        decide(&spec, 1, REQUESTS, &[using(millis)], &mut history, at(s)).desired
    };
    assert_eq!(desired(0, 250), 1, "the 1 of second 0 is in the window");
    assert_eq!(desired(10, 250), 1);
    assert_eq!(desired(20, 150), 1);
    assert_eq!(desired(31, 250), 3, "the lowest since second 1 is 3");
    assert_eq!(desired(51, 250), 5);
}

#[test]
fn a_new_history_never_scales_down_before_a_whole_window() {
    let spec = spec(1, 5, 50, (0, 30));
    let mut history = History::starting(at(100), 5);
    let idle = [using(0); 5];
    let held = decide(&spec, 5, REQUESTS, &idle, &mut history, at(100));
    assert_eq!(held.desired, 5);
    let held = decide(&spec, 5, REQUESTS, &idle, &mut history, at(130));
    assert_eq!(held.desired, 5);
    assert_eq!(
        decide(&spec, 5, REQUESTS, &idle, &mut history, at(131)).desired,
        1
    );
}

#[test]
fn missing_measurements_never_scale_down() {
    let spec = spec(1, 5, 50, (0, 0));
    // One idle, one silent: holding, not halving.
    let decision = once(&spec, 2, &[using(0), SILENT]);
    assert_eq!(decision.desired, 2, "{}", decision.reason);
    assert_eq!(
        (decision.readings[0].missing, decision.readings[0].measured),
        (1, 1)
    );
    // Not ready (starting, pending) is no data either.
    assert_eq!(once(&spec, 2, &[using(0), UNREADY]).desired, 2);
    // Nobody measured: no reading, and nothing changes.
    let blind = once(&spec, 3, &[SILENT, UNREADY, SILENT]);
    assert_eq!(blind.desired, 3);
    assert!(blind.readings.is_empty());
    assert_eq!(blind.reason, "no measurements yet: holding");
}

#[test]
fn a_scale_up_counts_instances_without_data_as_idle() {
    let spec = spec(1, 10, 50, (0, 0));
    // 300 % on one, the other silent: as if 150 % each → 6.
    assert_eq!(once(&spec, 2, &[using(300), SILENT]).desired, 6);
    // 55 % on one (above the tolerance alone), one pending: 27.5 % each, no scale-up.
    let decision = once(&spec, 2, &[using(55), UNREADY]);
    assert_eq!(decision.desired, 2, "{}", decision.reason);
    assert_eq!(decision.readings[0].unready, 1);
    // Never below the current count on the way up.
    assert_eq!(once(&spec, 4, &[using(120), UNREADY]).desired, 4);
}

#[test]
fn out_of_range_replicas_come_back_within_min_and_max_even_without_data() {
    let spec = spec(2, 5, 50, (0, 300));
    assert_eq!(once(&spec, 9, &[]).desired, 5);
    assert_eq!(once(&spec, 1, &[]).desired, 2);
    // A lower max takes effect over a higher recommendation of the window.
    let mut history = History::starting(at(0), 9);
    let decision = decide(&spec, 9, REQUESTS, &[using(500); 9], &mut history, at(1));
    assert_eq!(decision.desired, 5);
}

#[test]
fn a_service_scaled_to_zero_is_left_alone() {
    let spec = spec(1, 5, 50, (0, 0));
    let decision = once(&spec, 0, &[]);
    assert_eq!((decision.current, decision.desired), (0, 0));
    assert!(decision.reason.contains("autoscaling is off"));
}

#[test]
fn the_target_asking_for_most_wins() {
    let both = AutoscaleSpec {
        target_memory: Some(50),
        ..spec(1, 10, 50, (0, 0))
    };
    // CPU at 100 % (→ 4 of 2), memory at 25 % of 64 MiB (→ 1): 4.
    let samples = [using(100), using(100)];
    let decision = once(&both, 2, &samples);
    assert_eq!(decision.desired, 4);
    let memory = decision
        .readings
        .iter()
        .find(|r| r.resource == Resource::Memory)
        .expect("a memory reading");
    assert_eq!((memory.usage, memory.proposal), (25, 1));
    // Memory alone, far above: 48 MiB of 64 at a 25 % target → 3 each.
    let memory_only = AutoscaleSpec {
        target_cpu: None,
        target_memory: Some(25),
        ..spec(1, 10, 50, (0, 0))
    };
    let heavy = Sample {
        ready: true,
        usage: Some(Usage {
            cpu_millis: 0,
            memory_bytes: 48 * MIB,
        }),
    };
    let decision = once(&memory_only, 1, &[heavy]);
    assert_eq!(decision.desired, 3);
    assert!(
        decision.reason.starts_with("memory at 75%"),
        "{}",
        decision.reason
    );
}

#[test]
fn the_history_keeps_only_what_its_windows_need() {
    let spec = spec(1, 5, 50, (10, 60));
    let mut history = History::starting(at(0), 1);
    for s in 1..=1000 {
        decide(&spec, 1, REQUESTS, &[using(50)], &mut history, at(s));
    }
    assert!(history.0.len() <= 62, "{}", history.0.len());
    assert!(history.0.iter().all(|(t, _)| *t >= at(940)));
}
