;; A sensor filter as a WASI preview 1 command, in WebAssembly text: the node assembles it
;; (no wasm toolchain needed). It prints its arguments once, then every second takes a
;; reading (a pseudo-random value in 0.00..0.99) and prints the ones above 0.75.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "sensor-filter started:")
  (data (i32.const 1056) "reading ")
  (data (i32.const 1072) ": 0.")
  (data (i32.const 1088) " above threshold 0.75\n")

  ;; Writes len bytes at ptr to stdout (the iovec lives at 0).
  (func $out (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  ;; Writes n in decimal.
  (func $number (param $n i32) (local $p i32)
    (local.set $p (i32.const 2048))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (local.get $n)))
    (call $out (local.get $p) (i32.sub (i32.const 2048) (local.get $p))))

  ;; The arguments on one line, separated by spaces.
  (func $args (local $i i32) (local $len i32)
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $args_get (i32.const 4096) (i32.const 8192)))
    (local.set $len (i32.load (i32.const 20)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (if (i32.eqz (i32.load8_u (i32.add (i32.const 8192) (local.get $i))))
        (then (i32.store8 (i32.add (i32.const 8192) (local.get $i)) (i32.const 32))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (call $out (i32.const 1024) (i32.const 22))
    (i32.store8 (i32.const 8191) (i32.const 32))
    (i32.store8 (i32.add (i32.const 8191) (local.get $len)) (i32.const 10))
    (call $out (i32.const 8191) (i32.add (local.get $len) (i32.const 1))))

  ;; Sleeps one second: a monotonic clock subscription at 256, its event at 320.
  (func $sleep
    (i64.store (i32.const 256) (i64.const 0))
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.const 1000000000))
    (i64.store (i32.const 288) (i64.const 1000000))
    (i32.store16 (i32.const 296) (i32.const 0))
    (drop (call $poll_oneoff (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 360))))

  (func (export "_start") (local $seed i32) (local $n i32) (local $value i32)
    (call $args)
    (local.set $seed (i32.const 20240601))
    (loop $forever
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (local.set $seed (i32.add (i32.mul (local.get $seed) (i32.const 1103515245))
        (i32.const 12345)))
      (local.set $value (i32.rem_u (i32.shr_u (local.get $seed) (i32.const 16)) (i32.const 100)))
      (if (i32.ge_u (local.get $value) (i32.const 76))
        (then
          (call $out (i32.const 1056) (i32.const 8))
          (call $number (local.get $n))
          (call $out (i32.const 1072) (i32.const 4))
          (call $number (local.get $value))
          (call $out (i32.const 1088) (i32.const 22))))
      (call $sleep)
      (br $forever))))
