//! Which accelerator this node's VMs get, probed once per boot of the machine: a tiny
//! multiboot guest (it writes one byte to the serial port and exits through qemu's
//! `isa-debug-exit`) run under TCG proves qemu works; under KVM, where `/dev/kvm` opens, it
//! must finish within [`KVM_DEADLINE`], or KVM is not used. On nested hosts `/dev/kvm` opens
//! but guests crawl (this probe takes 5–6 s there, 0.2 s under TCG), so opening it is no proof;
//! on one such host it took 1.5 s, and a KVM guest there never booted, so it must also run
//! about as fast as under TCG.
//! The verdict is kept in `/run` for the boot (the machine's property, not one agent's).

use crate::RuntimeError;
use crate::supervise::DEFAULT_PATH;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// KVM counts as working when the probe guest ends this fast...
const KVM_DEADLINE: Duration = Duration::from_secs(2);
/// ...and within this, or [`KVM_AGAINST_TCG`] times what TCG took when that is longer. A
/// nested host ran the probe in 1.5 s under KVM against 0.06 s under TCG, and there a Linux
/// guest under KVM never got past its setup code, while under TCG it booted in 1.5 s.
const KVM_FLOOR: Duration = Duration::from_millis(500);
const KVM_AGAINST_TCG: u32 = 3;
/// TCG runs the probe in ≈ 0.2 s; a loaded host may take longer.
const TCG_DEADLINE: Duration = Duration::from_secs(20);
const CACHE: &str = "/run/canopy-vm-acceleration.json";
/// `isa-debug-exit` makes qemu exit with `(value << 1) | 1`; the probe writes 1.
const PROBE_EXIT: i32 = 3;

/// How guests run: hardware virtualisation or qemu's emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acceleration {
    Kvm,
    Tcg,
}

impl Acceleration {
    pub fn as_str(self) -> &'static str {
        match self {
            Acceleration::Kvm => "kvm",
            Acceleration::Tcg => "tcg",
        }
    }
}

/// The probe's verdict and why (shown in the node's log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelerationProbe {
    pub acceleration: Acceleration,
    pub reason: String,
}

#[derive(Serialize, Deserialize)]
struct Cached {
    boot_id: String,
    qemu: PathBuf,
    probe: AccelerationProbe,
}

/// A 32-bit multiboot image (a.out kludge, loaded at 1 MiB): `out 0x3f8, 'K'`, then
/// `out 0xf4, 1` (isa-debug-exit), then `hlt`.
fn probe_image() -> Vec<u8> {
    const MAGIC: u32 = 0x1BAD_B002;
    const FLAGS: u32 = 1 << 16;
    const BASE: u32 = 0x10_0000;
    let checksum = 0u32.wrapping_sub(MAGIC.wrapping_add(FLAGS));
    let header = [MAGIC, FLAGS, checksum, BASE, BASE, 0, 0, BASE + 32];
    let mut image: Vec<u8> = header.iter().flat_map(|w| w.to_le_bytes()).collect();
    image.extend([
        0x66, 0xBA, 0xF8, 0x03, // mov dx, 0x3f8
        0xB0, b'K', // mov al, 'K'
        0xEE, // out dx, al
        0x66, 0xBA, 0xF4, 0x00, // mov dx, 0xf4
        0xB0, 0x01, // mov al, 1
        0xEE, // out dx, al
        0xF4, // hlt
        0xEB, 0xFD, // jmp back to hlt
    ]);
    image
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Runs the probe guest under `accel`; Ok(elapsed) when it ran to its exit.
async fn run_probe(
    qemu: &Path,
    image: &Path,
    accel: &str,
    deadline: Duration,
) -> Result<Duration, String> {
    let mut cmd = tokio::process::Command::new(qemu);
    cmd.env_clear()
        .env("PATH", DEFAULT_PATH)
        .args(["-M", "pc", "-accel", accel, "-m", "16"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-serial", "null"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-kernel")
        .arg(image)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("qemu: {e}"))?;
    match tokio::time::timeout(deadline, child.wait_with_output()).await {
        Err(_) => Err(format!(
            "the probe guest did not finish within {deadline:?}"
        )),
        Ok(Err(e)) => Err(format!("qemu: {e}")),
        Ok(Ok(out)) if out.status.code() == Some(PROBE_EXIT) => Ok(started.elapsed()),
        Ok(Ok(out)) => Err(format!(
            "qemu exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Probes (or reads this boot's verdict for `qemu`); an error when qemu cannot run even
/// the emulated probe, so the node offers no VMs.
pub async fn probe_acceleration(
    qemu: &Path,
    scratch: &Path,
) -> Result<AccelerationProbe, RuntimeError> {
    let boot = boot_id();
    if let Some(cached) = std::fs::read(CACHE)
        .ok()
        .and_then(|b| serde_json::from_slice::<Cached>(&b).ok())
        .filter(|c| !boot.is_empty() && c.boot_id == boot && c.qemu == qemu)
    {
        return Ok(cached.probe);
    }
    std::fs::create_dir_all(scratch).map_err(|e| RuntimeError::io("create", scratch, e))?;
    let image = scratch.join("accel-probe.bin");
    std::fs::write(&image, probe_image()).map_err(|e| RuntimeError::io("write", &image, e))?;
    let tcg = run_probe(qemu, &image, "tcg", TCG_DEADLINE).await;
    let kvm_opens = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let kvm = if kvm_opens {
        Some(run_probe(qemu, &image, "kvm", KVM_DEADLINE).await)
    } else {
        None
    };
    let _ = std::fs::remove_file(&image);
    let tcg = tcg.map_err(|message| RuntimeError::oci("qemu", "probe", "tcg", message))?;
    let probe = verdict(kvm, tcg);
    let cached = Cached {
        boot_id: boot,
        qemu: qemu.to_path_buf(),
        probe: probe.clone(),
    };
    if let Ok(json) = serde_json::to_vec(&cached) {
        // Best effort: without /run every agent probes for itself.
        let tmp = format!("{CACHE}.{}", std::process::id());
        if std::fs::write(&tmp, json).is_ok() && std::fs::rename(&tmp, CACHE).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(probe)
}

/// Which accelerator, from the KVM probe's outcome (`None`: no usable `/dev/kvm`) and the
/// time the TCG probe took.
fn verdict(kvm: Option<Result<Duration, String>>, tcg: Duration) -> AccelerationProbe {
    let allowed = KVM_FLOOR.max(tcg * KVM_AGAINST_TCG);
    let (acceleration, reason) = match kvm {
        Some(Ok(took)) if took <= allowed => (
            Acceleration::Kvm,
            format!("the KVM probe guest ran in {took:?}"),
        ),
        Some(Ok(took)) => (
            Acceleration::Tcg,
            format!(
                "/dev/kvm opens but its probe guest took {took:?}, TCG's {tcg:?} (a nested \
                 host whose guests crawl): emulating with TCG"
            ),
        ),
        Some(Err(why)) => (
            Acceleration::Tcg,
            format!("/dev/kvm opens but {why} (TCG took {tcg:?}): emulating with TCG"),
        ),
        None => (
            Acceleration::Tcg,
            "no usable /dev/kvm: emulating with TCG".to_string(),
        ),
    };
    AccelerationProbe {
        acceleration,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_is_used_only_when_its_guest_runs_about_as_fast_as_tcg_or_faster() {
        let ms = Duration::from_millis;
        let cases = [
            (Some(Ok(ms(80))), ms(60), Acceleration::Kvm),
            (Some(Ok(ms(450))), ms(60), Acceleration::Kvm),
            // The nested host: under the deadline, but 25 times TCG.
            (Some(Ok(ms(1480))), ms(60), Acceleration::Tcg),
            // A loaded host, where TCG took long too.
            (Some(Ok(ms(1400))), ms(600), Acceleration::Kvm),
            (
                Some(Err("timed out".to_string())),
                ms(60),
                Acceleration::Tcg,
            ),
            (None, ms(60), Acceleration::Tcg),
        ];
        for (kvm, tcg, expected) in cases {
            let shown = format!("{kvm:?} against {tcg:?}");
            let probe = verdict(kvm, tcg);
            assert_eq!(probe.acceleration, expected, "{shown}: {}", probe.reason);
        }
    }

    #[test]
    fn the_probe_image_is_a_valid_multiboot_header() {
        let image = probe_image();
        let word = |i: usize| u32::from_le_bytes(image[i * 4..i * 4 + 4].try_into().expect("4"));
        assert_eq!(word(0), 0x1BAD_B002);
        assert_eq!(word(0).wrapping_add(word(1)).wrapping_add(word(2)), 0);
        assert_eq!(word(7), 0x10_0000 + 32, "entry right after the header");
        assert_eq!(image.len(), 32 + 17);
    }
}
