//! Docker's default seccomp profile as data: `seccomp/default.json` of github.com/moby/profiles
//! (Apache-2.0; vendored by moby at b985e2313a), rule for rule. Everything not allowed here fails with EPERM. A rule may hold
//! only on some architectures (Go's names: `amd64`, `arm64`, ...), only when the container
//! has a capability, or only from a kernel version on, exactly as in that file;
//! `seccomp.rs` turns it into the OCI form for one container.

/// The action of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Allow,
    /// Fail with this errno.
    Errno(u32),
}

/// The comparison of a syscall argument (`SCMP_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compare {
    Equal,
    LessThan,
    GreaterThan,
    /// `(argument & value) == value_two`.
    MaskedEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arg {
    pub index: usize,
    pub value: u64,
    pub value_two: u64,
    pub op: Compare,
}

/// When a rule applies: every `includes` must hold and no `excludes` may.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Condition {
    pub arches: &'static [&'static str],
    pub caps: &'static [&'static str],
    pub min_kernel: Option<(u32, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub names: &'static [&'static str],
    pub action: Action,
    /// The one argument the rule compares (no rule of the profile compares two).
    pub arg: Option<Arg>,
    pub includes: Condition,
    pub excludes: Condition,
}

/// Errno of the default action (EPERM).
pub(crate) const DEFAULT_ERRNO: u32 = 1;

/// moby's `archMap`: the native architecture's seccomp name and its sub-architectures.
pub(crate) const ARCH_MAP: [(&str, &[&str]); 8] = [
    ("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    ("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
    (
        "SCMP_ARCH_MIPS64",
        &["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"],
    ),
    (
        "SCMP_ARCH_MIPS64N32",
        &["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"],
    ),
    (
        "SCMP_ARCH_MIPSEL64",
        &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"],
    ),
    (
        "SCMP_ARCH_MIPSEL64N32",
        &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"],
    ),
    ("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
    ("SCMP_ARCH_RISCV64", &[]),
];

const ALWAYS: Condition = Condition {
    arches: &[],
    caps: &[],
    min_kernel: None,
};

const fn allow(names: &'static [&'static str], includes: Condition) -> Rule {
    Rule {
        names,
        action: Action::Allow,
        arg: None,
        includes,
        excludes: ALWAYS,
    }
}

const fn on_arches(arches: &'static [&'static str]) -> Condition {
    Condition {
        arches,
        caps: &[],
        min_kernel: None,
    }
}

const fn with_cap(caps: &'static [&'static str]) -> Condition {
    Condition {
        arches: &[],
        caps,
        min_kernel: None,
    }
}

const fn socket(family: u64, op: Compare) -> Rule {
    Rule {
        names: &["socket"],
        action: Action::Allow,
        arg: Some(Arg {
            index: 0,
            value: family,
            value_two: 0,
            op,
        }),
        includes: ALWAYS,
        excludes: ALWAYS,
    }
}

const fn personality(value: u64) -> Rule {
    Rule {
        names: &["personality"],
        action: Action::Allow,
        arg: Some(Arg {
            index: 0,
            value,
            value_two: 0,
            op: Compare::Equal,
        }),
        includes: ALWAYS,
        excludes: ALWAYS,
    }
}

/// The namespace flags of clone(2) (CLONE_NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID |
/// NEWNET | NEWCGROUP): without CAP_SYS_ADMIN, clone may not make namespaces.
const CLONE_NAMESPACE_FLAGS: u64 = 2_114_060_288;

/// What every container may call.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
    "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
    "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old",
    "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat",
    "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod",
    "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync",
    "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64",
    "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex",
    "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat",
    "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid",
    "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername",
    "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
    "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage",
    "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
    "getuid", "getuid32", "getxattr", "getxattrat", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup",
    "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
    "listmount", "listxattr", "listxattrat", "llistxattr", "_llseek", "lremovexattr", "lseek",
    "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect",
    "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl",
    "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
    "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
    "remap_file_pages", "removexattr", "removexattrat", "rename", "renameat", "renameat2",
    "restart_syscall", "riscv_hwprobe", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile",
    "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid",
    "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid",
    "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
    "setxattrat", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd",
    "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat",
    "stat64", "statfs", "statfs64", "statmount", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
    "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
    "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
    "writev",
];

/// The profile's rules, in the file's order.
pub(crate) const RULES: &[Rule] = &[
    allow(ALLOWED, ALWAYS),
    allow(
        &["process_vm_readv", "process_vm_writev", "ptrace"],
        Condition {
            arches: &[],
            caps: &[],
            min_kernel: Some((4, 8)),
        },
    ),
    // Every address family but AF_ALG (38) and AF_VSOCK (40).
    socket(38, Compare::LessThan),
    socket(39, Compare::Equal),
    socket(40, Compare::GreaterThan),
    personality(0),
    personality(8),
    personality(131_072),
    personality(131_080),
    personality(4_294_967_295),
    allow(
        &["sync_file_range2", "swapcontext"],
        on_arches(&["ppc64le"]),
    ),
    allow(
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        on_arches(&["arm", "arm64"]),
    ),
    allow(&["arch_prctl"], on_arches(&["amd64", "x32"])),
    allow(&["modify_ldt"], on_arches(&["amd64", "x32", "x86"])),
    allow(
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        on_arches(&["s390", "s390x"]),
    ),
    allow(&["riscv_flush_icache"], on_arches(&["riscv64"])),
    allow(&["open_by_handle_at"], with_cap(&["CAP_DAC_READ_SEARCH"])),
    allow(
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        with_cap(&["CAP_SYS_ADMIN"]),
    ),
    Rule {
        names: &["clone"],
        action: Action::Allow,
        arg: Some(Arg {
            index: 0,
            value: CLONE_NAMESPACE_FLAGS,
            value_two: 0,
            op: Compare::MaskedEqual,
        }),
        includes: ALWAYS,
        excludes: Condition {
            arches: &["s390", "s390x"],
            caps: &["CAP_SYS_ADMIN"],
            min_kernel: None,
        },
    },
    Rule {
        names: &["clone"],
        action: Action::Allow,
        // s390 orders clone's parameters differently.
        arg: Some(Arg {
            index: 1,
            value: CLONE_NAMESPACE_FLAGS,
            value_two: 0,
            op: Compare::MaskedEqual,
        }),
        includes: on_arches(&["s390", "s390x"]),
        excludes: with_cap(&["CAP_SYS_ADMIN"]),
    },
    // ENOSYS, so that C libraries fall back to clone (whose flags can be checked).
    Rule {
        names: &["clone3"],
        action: Action::Errno(38),
        arg: None,
        includes: ALWAYS,
        excludes: with_cap(&["CAP_SYS_ADMIN"]),
    },
    allow(&["reboot"], with_cap(&["CAP_SYS_BOOT"])),
    allow(&["chroot"], with_cap(&["CAP_SYS_CHROOT"])),
    allow(
        &["delete_module", "init_module", "finit_module"],
        with_cap(&["CAP_SYS_MODULE"]),
    ),
    allow(&["acct"], with_cap(&["CAP_SYS_PACCT"])),
    allow(
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        with_cap(&["CAP_SYS_PTRACE"]),
    ),
    allow(&["iopl", "ioperm"], with_cap(&["CAP_SYS_RAWIO"])),
    allow(
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        with_cap(&["CAP_SYS_TIME"]),
    ),
    allow(&["vhangup"], with_cap(&["CAP_SYS_TTY_CONFIG"])),
    allow(
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        with_cap(&["CAP_SYS_NICE"]),
    ),
    allow(&["syslog"], with_cap(&["CAP_SYSLOG"])),
    allow(&["bpf"], with_cap(&["CAP_BPF"])),
    allow(&["perf_event_open"], with_cap(&["CAP_PERFMON"])),
];
