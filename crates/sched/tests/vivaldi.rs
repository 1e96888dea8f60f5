//! Vivaldi converges on a synthetic latency matrix.

mod common;

use canopy_sched::{Coordinate, Vivaldi};
use common::SeededRng;

#[test]
fn converges_on_a_synthetic_matrix() {
    let median = run(0.0);
    assert!(median < 0.20, "median relative error {median}");
}

#[test]
fn converges_with_noisy_samples() {
    // Each probe off by up to ±20 %, as queueing makes it.
    let median = run(0.2);
    assert!(median < 0.20, "median relative error {median}");
}

/// Median relative error after 3000 rounds, with samples jittered by up to `noise`.
fn run(noise: f64) -> f64 {
    const N: usize = 50;
    let mut rng = SeededRng(7);
    // Planar positions in a 200 × 200 ms square, plus an access-link height of 1–10 ms.
    let truth: Vec<(f64, f64, f64)> = (0..N)
        .map(|_| {
            (
                rng.range(0.0, 200.0),
                rng.range(0.0, 200.0),
                rng.range(1.0, 10.0),
            )
        })
        .collect();
    let rtt = |i: usize, j: usize| {
        let (a, b) = (truth[i], truth[j]);
        (a.0 - b.0).hypot(a.1 - b.1) + a.2 + b.2
    };
    let mut nodes: Vec<Vivaldi> = (0..N as u64).map(Vivaldi::new).collect();
    for _round in 0..3000 {
        for i in 0..N {
            let mut j = rng.below(N - 1);
            if j >= i {
                j += 1;
            }
            let (remote, remote_error) = (nodes[j].coordinate, nodes[j].error);
            let sample = rtt(i, j) * (1.0 + rng.range(-noise, noise));
            nodes[i].update(sample, &remote, remote_error);
        }
    }
    let mut errors = Vec::new();
    for i in 0..N {
        for j in i + 1..N {
            let estimate = nodes[i].estimate_rtt(&nodes[j].coordinate);
            errors.push((estimate - rtt(i, j)).abs() / rtt(i, j));
        }
    }
    errors.sort_by(f64::total_cmp);
    let median = errors[errors.len() / 2];
    let p90 = errors[errors.len() * 9 / 10];
    println!(
        "vivaldi (noise ±{:.0} %): median relative error {:.3} %, p90 {:.3} %",
        noise * 100.0,
        median * 100.0,
        p90 * 100.0
    );
    assert!(
        nodes
            .iter()
            .all(|n| n.error.is_finite() && n.coordinate.height > 0.0)
    );
    median
}

#[test]
fn coincident_coordinates_separate_deterministically() {
    let run = || {
        let mut a = Vivaldi::new(1);
        let origin = Coordinate::default();
        a.update(10.0, &origin, 1.5);
        a.coordinate
    };
    let first = run();
    assert_eq!(first, run(), "same seed, same result");
    assert!(first.x != 0.0 || first.y != 0.0, "pushed off the origin");
    let mut other = Vivaldi::new(2);
    other.update(10.0, &Coordinate::default(), 1.5);
    assert_ne!(first, other.coordinate, "another seed, another direction");
    // Bad samples are ignored.
    let mut v = Vivaldi::new(3);
    let before = v.clone();
    v.update(f64::NAN, &Coordinate::default(), 1.0);
    v.update(-1.0, &Coordinate::default(), 1.0);
    v.update(0.0, &Coordinate::default(), 1.0);
    assert_eq!(v, before);
    let c = Coordinate {
        x: 3.0,
        y: 4.0,
        height: 1.0,
    };
    assert_eq!(
        c.estimate_rtt(&Coordinate {
            x: 0.0,
            y: 0.0,
            height: 2.0
        }),
        8.0
    );
}
