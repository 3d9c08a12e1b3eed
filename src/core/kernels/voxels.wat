;; SIMD kernels over runs of 16-bit voxels copied into linear memory (see voxelKernels.ts).
;; Data starts at byte 64. Results of range_16 are written at bytes 0..11: min, max, padding count
;; (i32 each); bytes 16..31 are scratch. Unsigned data is handled by flipping the sign bit
;; ($flip = 0x8000), which maps unsigned order onto signed order; the caller flips lo/hi and the
;; results. Padding is the inclusive range [lo, hi] (in flipped terms); lo > hi means none.
(module
  (memory (export "memory") 1)

  ;; Smallest (max = 0) or largest (max = 1) signed lane of an i16x8 vector.
  (func $reduce (param $v v128) (param $max i32) (result i32)
    (local $i i32) (local $r i32) (local $x i32)
    (v128.store (i32.const 16) (local.get $v))
    (local.set $r (i32.load16_s (i32.const 16)))
    (local.set $i (i32.const 1))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const 8)))
      (local.set $x (i32.load16_s (i32.add (i32.const 16) (i32.shl (local.get $i) (i32.const 1)))))
      (if (select (i32.gt_s (local.get $x) (local.get $r)) (i32.lt_s (local.get $x) (local.get $r)) (local.get $max))
        (then (local.set $r (local.get $x))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $r))

  (func (export "range_16") (param $n i32) (param $lo i32) (param $hi i32) (param $flip i32)
    (local $p i32) (local $end i32) (local $v v128) (local $m v128) (local $vflip v128)
    (local $mn v128) (local $mx v128) (local $cnt v128) (local $vlo v128) (local $vhi v128)
    (local $min i32) (local $max i32) (local $pad i32) (local $x i32)
    (local.set $mn (i16x8.splat (i32.const 32767)))
    (local.set $mx (i16x8.splat (i32.const -32768)))
    (local.set $vlo (i16x8.splat (local.get $lo)))
    (local.set $vhi (i16x8.splat (local.get $hi)))
    (local.set $vflip (i16x8.splat (local.get $flip)))
    (local.set $p (i32.const 64))
    (local.set $end (i32.add (i32.const 64) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 1))))
    (if (i32.gt_s (local.get $lo) (local.get $hi))
      (then
        (block $done (loop $next
          (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
          (local.set $v (v128.xor (v128.load (local.get $p)) (local.get $vflip)))
          (local.set $mn (i16x8.min_s (local.get $mn) (local.get $v)))
          (local.set $mx (i16x8.max_s (local.get $mx) (local.get $v)))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (br $next))))
      (else
        (block $done (loop $next
          (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
          (local.set $v (v128.xor (v128.load (local.get $p)) (local.get $vflip)))
          (local.set $m (v128.and (i16x8.ge_s (local.get $v) (local.get $vlo)) (i16x8.le_s (local.get $v) (local.get $vhi))))
          (local.set $mn (i16x8.min_s (local.get $mn) (v128.bitselect (i16x8.splat (i32.const 32767)) (local.get $v) (local.get $m))))
          (local.set $mx (i16x8.max_s (local.get $mx) (v128.bitselect (i16x8.splat (i32.const -32768)) (local.get $v) (local.get $m))))
          (local.set $cnt (i32x4.sub (local.get $cnt) (i32x4.extadd_pairwise_i16x8_s (local.get $m))))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (br $next)))))
    (local.set $min (call $reduce (local.get $mn) (i32.const 0)))
    (local.set $max (call $reduce (local.get $mx) (i32.const 1)))
    (local.set $pad
      (i32.add
        (i32.add (i32x4.extract_lane 0 (local.get $cnt)) (i32x4.extract_lane 1 (local.get $cnt)))
        (i32.add (i32x4.extract_lane 2 (local.get $cnt)) (i32x4.extract_lane 3 (local.get $cnt)))))
    (local.set $end (i32.add (i32.const 64) (i32.shl (local.get $n) (i32.const 1))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      (local.set $x (i32.shr_s (i32.shl (i32.xor (i32.load16_u (local.get $p)) (local.get $flip)) (i32.const 16)) (i32.const 16)))
      (if (i32.and (i32.ge_s (local.get $x) (local.get $lo)) (i32.le_s (local.get $x) (local.get $hi)))
        (then (local.set $pad (i32.add (local.get $pad) (i32.const 1))))
        (else
          (if (i32.lt_s (local.get $x) (local.get $min)) (then (local.set $min (local.get $x))))
          (if (i32.gt_s (local.get $x) (local.get $max)) (then (local.set $max (local.get $x))))))
      (local.set $p (i32.add (local.get $p) (i32.const 2)))
      (br $next)))
    (i32.store (i32.const 0) (local.get $min))
    (i32.store (i32.const 4) (local.get $max))
    (i32.store (i32.const 8) (local.get $pad)))

  ;; In place: v = v + add (16-bit wrapping); lanes inside the padding range become pad.
  ;; lo/hi are compared after flipping by $flip, as in range_16.
  (func (export "add_16") (param $n i32) (param $add i32) (param $lo i32) (param $hi i32) (param $pad i32) (param $flip i32)
    (local $p i32) (local $end i32) (local $v v128) (local $f v128) (local $m v128)
    (local $vadd v128) (local $vlo v128) (local $vhi v128) (local $vpad v128) (local $vflip v128) (local $x i32)
    (local.set $vadd (i16x8.splat (local.get $add)))
    (local.set $vlo (i16x8.splat (local.get $lo)))
    (local.set $vhi (i16x8.splat (local.get $hi)))
    (local.set $vpad (i16x8.splat (local.get $pad)))
    (local.set $vflip (i16x8.splat (local.get $flip)))
    (local.set $p (i32.const 64))
    (local.set $end (i32.add (i32.const 64) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 1))))
    (if (i32.gt_s (local.get $lo) (local.get $hi))
      (then
        (block $done (loop $next
          (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
          (v128.store (local.get $p) (i16x8.add (v128.load (local.get $p)) (local.get $vadd)))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (br $next))))
      (else
        (block $done (loop $next
          (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
          (local.set $v (v128.load (local.get $p)))
          (local.set $f (v128.xor (local.get $v) (local.get $vflip)))
          (local.set $m (v128.and (i16x8.ge_s (local.get $f) (local.get $vlo)) (i16x8.le_s (local.get $f) (local.get $vhi))))
          (v128.store (local.get $p) (v128.bitselect (local.get $vpad) (i16x8.add (local.get $v) (local.get $vadd)) (local.get $m)))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (br $next)))))
    (local.set $end (i32.add (i32.const 64) (i32.shl (local.get $n) (i32.const 1))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      (local.set $x (i32.shr_s (i32.shl (i32.xor (i32.load16_u (local.get $p)) (local.get $flip)) (i32.const 16)) (i32.const 16)))
      (if (i32.and (i32.ge_s (local.get $x) (local.get $lo)) (i32.le_s (local.get $x) (local.get $hi)))
        (then (i32.store16 (local.get $p) (local.get $pad)))
        (else (i32.store16 (local.get $p) (i32.add (i32.load16_u (local.get $p)) (local.get $add)))))
      (local.set $p (i32.add (local.get $p) (i32.const 2)))
      (br $next)))))
