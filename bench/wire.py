#!/usr/bin/env python3
"""A userspace netem for kernels without `sch_netem` (this machine's: CONFIG_NET_SCH_NETEM is
not set): point-to-point IP links made of two TUN devices, each in its own network namespace,
with this process copying packets between them after a delay (± normal jitter) and with
random loss, per direction.

  wire.py LINK [LINK...]   LINK = NS_A:DEV_A:NS_B:DEV_B:DELAY_MS:JITTER_MS:LOSS (each way)

The devices exist while this process runs (they are not persistent): they vanish, and with them
every address and route on them, when it exits. It prints `ready` once every device exists;
the caller then configures addresses and routes. Packets of one direction leave in the order
they came (a later packet never overtakes an earlier one, unlike netem with jitter), so the
jitter is applied as max(previous release, arrival + delay + N(0, jitter)). Stop it with
SIGTERM or SIGKILL by its pid."""

import ctypes
import fcntl
import heapq
import os
import random
import select
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

libc = ctypes.CDLL("libc.so.6", use_errno=True)


def enter(ns):
    """Moves this (single-threaded) process into `ns` (a name under /run/netns or a path)."""
    path = ns if ns.startswith("/") else f"/run/netns/{ns}"
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    home = f"/proc/self/task/{os.getpid()}/ns/net"
    home_fd = os.open(f"/proc/{os.getpid()}/ns/net", os.O_RDONLY)
    directions = {}  # in fd -> (out fd, delay s, jitter s, loss, key)
    for spec in sys.argv[1:]:
        ns_a, dev_a, ns_b, dev_b, delay, jitter, loss = spec.split(":")
        enter(ns_a)
        fd_a = tun(dev_a)
        enter(ns_b)
        fd_b = tun(dev_b)
        delay, jitter, loss = float(delay) / 1000, float(jitter) / 1000, float(loss)
        directions[fd_a] = (fd_b, delay, jitter, loss)
        directions[fd_b] = (fd_a, delay, jitter, loss)
    if libc.setns(home_fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {home}")
    print("ready", flush=True)

    poller = select.epoll()
    for fd in directions:
        poller.register(fd, select.EPOLLIN)
    queue = []  # (release time, sequence, out fd, packet)
    last_release = {fd: 0.0 for fd in directions}
    sequence = 0
    rng = random.Random()
    while True:
        # epoll's timeout has millisecond granularity (rounded up): wait with it until about
        # 1 ms before the next release, then in short high-resolution sleeps.
        due = queue[0][0] - time.monotonic() if queue else None
        if due is None:
            ready = poller.poll()
        elif due >= 0.002:
            ready = poller.poll(due - 0.001)
        else:
            ready = poller.poll(0)
            if not ready and due > 0:
                time.sleep(min(due, 0.0002))
        for fd, _ in ready:
            out, delay, jitter, loss = directions[fd]
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if loss and rng.random() < loss:
                    continue
                now = time.monotonic()
                release = now + max(0.0, delay + (rng.gauss(0, jitter) if jitter else 0.0))
                release = max(release, last_release[fd])
                last_release[fd] = release
                sequence += 1
                heapq.heappush(queue, (release, sequence, out, packet))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, packet = heapq.heappop(queue)
            try:
                os.write(out, packet)
            except OSError:
                pass  # the device is down or its queue is full: the packet is lost


if __name__ == "__main__":
    main()
