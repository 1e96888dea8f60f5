//! qemu's command line for one microVM, pure: the machine (`-M microvm`, a serial console on
//! the ISA port, ACPI for the power button), the accelerator, CPUs and memory from the
//! service's resources, the kernel, initramfs and command line, the console on stdout (the
//! instance's log) and a QMP socket for ACPI shutdown.

use super::accel::Acceleration;
use canopy_model::Resources;
use std::path::Path;

/// The kernel command line when the service gives none: the console where qemu puts the
/// serial port, and a panic that ends the VM (qemu runs with `-no-reboot`).
pub(crate) const DEFAULT_CMDLINE: &str = "console=ttyS0 panic=-1";

/// TCG's translation cache, MiB (qemu's default is a quarter of RAM, up to 1 GiB): counted
/// in [`memory_overhead_mib`].
const TCG_CACHE_MIB: u64 = 64;

/// What qemu itself holds beyond the guest's memory (devices, code, the TCG cache): the
/// instance's cgroup allows the guest's memory plus this.
pub(crate) fn memory_overhead_mib(acceleration: Acceleration) -> u64 {
    match acceleration {
        Acceleration::Kvm => 64,
        Acceleration::Tcg => 64 + TCG_CACHE_MIB,
    }
}

/// One VM's inputs.
pub(crate) struct QemuInput<'a> {
    pub kernel: &'a Path,
    pub initramfs: Option<&'a Path>,
    pub cmdline: Option<&'a str>,
    pub resources: &'a Resources,
    pub acceleration: Acceleration,
    pub qmp_socket: &'a Path,
}

/// Whole cores for the guest: at least one, rounded up from millicores (the cgroup's CPU
/// quota still holds qemu to `resources.cpu`).
pub(crate) fn vcpus(resources: &Resources) -> u64 {
    resources.cpu.0.div_ceil(1000).clamp(1, 64)
}

/// The kernel command line: the service's, else the default; under TCG with the TSC's rate
/// given when the line does not (calibrating it against the PIT fails on a busy emulating
/// host, and the guest then waits for a clock forever).
pub(crate) fn kernel_cmdline(cmdline: Option<&str>, acceleration: Acceleration) -> String {
    let mut line = cmdline.unwrap_or(DEFAULT_CMDLINE).trim().to_string();
    if acceleration == Acceleration::Tcg && !line.contains("tsc_early_khz=") {
        line.push_str(" tsc_early_khz=2000000");
    }
    line
}

/// The arguments after the qemu binary.
pub(crate) fn args(input: &QemuInput<'_>) -> Vec<String> {
    let accel = match input.acceleration {
        Acceleration::Kvm => "kvm".to_string(),
        Acceleration::Tcg => format!("tcg,tb-size={TCG_CACHE_MIB}"),
    };
    let mut args: Vec<String> = [
        "-M",
        "microvm,isa-serial=on,acpi=on",
        "-accel",
        &accel,
        "-cpu",
        match input.acceleration {
            Acceleration::Kvm => "host",
            Acceleration::Tcg => "max",
        },
        "-m",
        &format!("{}M", input.resources.memory.0.max(16)),
        "-smp",
        &vcpus(input.resources).to_string(),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
        "-qmp",
        &format!("unix:{},server=on,wait=off", input.qmp_socket.display()),
        "-kernel",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(input.kernel.display().to_string());
    if let Some(initramfs) = input.initramfs {
        args.push("-initrd".to_string());
        args.push(initramfs.display().to_string());
    }
    args.push("-append".to_string());
    args.push(kernel_cmdline(input.cmdline, input.acceleration));
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_model::{Mebibytes, Millicores};

    #[test]
    fn the_command_line_follows_resources_and_acceleration() {
        let resources = Resources {
            cpu: Millicores(1500),
            memory: Mebibytes(256),
            ..Resources::default()
        };
        let args = args(&QemuInput {
            kernel: Path::new("/k/vmlinuz"),
            initramfs: Some(Path::new("/k/initrd.gz")),
            cmdline: None,
            resources: &resources,
            acceleration: Acceleration::Tcg,
            qmp_socket: Path::new("/run/q.sock"),
        });
        let text = args.join(" ");
        for want in [
            "-M microvm,isa-serial=on,acpi=on",
            "-accel tcg,tb-size=64",
            "-m 256M",
            "-smp 2",
            "-serial stdio",
            "-qmp unix:/run/q.sock,server=on,wait=off",
            "-kernel /k/vmlinuz -initrd /k/initrd.gz",
        ] {
            assert!(text.contains(want), "{want} missing: {text}");
        }
        assert_eq!(
            args.last().map(String::as_str),
            Some("console=ttyS0 panic=-1 tsc_early_khz=2000000")
        );
        assert_eq!(
            kernel_cmdline(Some("console=ttyS0 quiet"), Acceleration::Kvm),
            "console=ttyS0 quiet"
        );
        assert_eq!(vcpus(&Resources::default()), 1);
        assert!(memory_overhead_mib(Acceleration::Tcg) > memory_overhead_mib(Acceleration::Kvm));
    }
}
