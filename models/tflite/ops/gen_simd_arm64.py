#!/usr/bin/env python3
"""Generates simd_arm64.s (python3 gen_simd_arm64.py > simd_arm64.s): Go assembly, with the NEON instructions the Go
assembler lacks encoded as WORDs (by llvm-mc) next to their GNU syntax."""
import re, subprocess, sys

L = []
def go(s): L.append(('go', s))
def ne(s): L.append(('neon', s))

def rq(x, f, m, l, nr):
    ne(f'add v{x}.4s, v{x}.4s, v{f}.4s')
    ne(f'sshl v{x}.4s, v{x}.4s, v{l}.4s')
    ne(f'sqrdmulh v{x}.4s, v{x}.4s, v{m}.4s')
    ne(f'and v9.16b, v{x}.16b, v{nr}.16b')
    ne(f'sshr v9.4s, v9.4s, #31')
    ne(f'sqadd v{x}.4s, v{x}.4s, v9.4s')
    ne(f'srshl v{x}.4s, v{x}.4s, v{nr}.4s')
    ne(f'add v{x}.4s, v{x}.4s, v5.4s')
    ne(f'smax v{x}.4s, v{x}.4s, v6.4s')
    ne(f'smin v{x}.4s, v{x}.4s, v7.4s')

def load_rq(base):
    go(f'\tVLD1 ({base}), [V24.S4, V25.S4, V26.S4, V27.S4]')
    go(f'\tADD $64, {base}, R15')
    go('\tVLD1 (R15), [V28.S4, V29.S4, V30.S4, V31.S4]')
    ne('neg v30.4s, v30.4s')
    ne('neg v31.4s, v31.4s')

def pack(lo, hi):
    ne(f'sqxtn v8.4h, v{lo}.4s')
    ne(f'sqxtn2 v8.8h, v{hi}.4s')
    ne('sqxtn v8.8b, v8.8h')

def consts():
    go('\tMOVW 104(R0), R15'); go('\tVDUP R15, V5.S4')
    go('\tMOVW 112(R0), R15'); go('\tVDUP R15, V6.S4')
    go('\tMOVW 120(R0), R15'); go('\tVDUP R15, V7.S4')

# ---- GEMM
go('// func simdGemmKernel(args *gemmArgs)')
go('TEXT ·simdGemmKernel(SB), NOSPLIT, $0-8')
go('\tMOVD args+0(FP), R0')
go('\tMOVD 0(R0), R1   // a')
go('\tMOVD 8(R0), R2   // lda')
go('\tMOVD 16(R0), R19 // rows')
go('\tMOVD 24(R0), R8  // k octets')
go('\tMOVD 32(R0), R3  // w')
go('\tMOVD 40(R0), R4  // n')
go('\tMOVD 48(R0), R5  // rq')
go('\tMOVD 88(R0), R6  // out')
go('\tMOVD 96(R0), R7  // ldo')
consts()
go('\tMOVD ZR, R9      // c0')
go('')
go('gblock:')
for i in range(16, 24):
    go(f'\tVEOR V{i}.B16, V{i}.B16, V{i}.B16')
go('\tMOVD R1, R10')
go('\tADD R2, R10, R11')
go('\tADD R2, R11, R12')
go('\tADD R2, R12, R13')
go('\tMOVD R8, R14')
go('')
go('gkloop:')
for r, reg in enumerate(['R10', 'R11', 'R12', 'R13']):
    go(f'\tVLD1.P 16({reg}), [V{r}.H8]')
for j in range(8):
    go('\tVLD1.P 16(R3), [V4.H8]')
    for r in range(4):
        ne(f'smlal v{16+2*r}.4s, v4.4h, v{r}.h[{j}]')
        ne(f'smlal2 v{17+2*r}.4s, v4.8h, v{r}.h[{j}]')
go('\tSUBS $1, R14, R14')
go('\tBNE gkloop')
go('')
load_rq('R5')
go('\tSUB R9, R4, R20  // channels left')
go('\tADD R9, R6, R21  // row 0 outputs')
for r in range(4):
    if r > 0:
        go(f'\tCMP ${r}, R19')
        go('\tBLE gnext')
    rq(16+2*r, 24, 26, 28, 30)
    rq(17+2*r, 25, 27, 29, 31)
    pack(16+2*r, 17+2*r)
    go('\tCMP $8, R20')
    go(f'\tBLT gpart{r}')
    go('\tVST1 [V8.B8], (R21)')
    go(f'\tB gdone{r}')
    go(f'gpart{r}:')
    go('\tVMOV V8.D[0], R16')
    go('\tMOVD R21, R17')
    go('\tMOVD R20, R15')
    go(f'gloop{r}:')
    go('\tMOVB R16, (R17)')
    go('\tLSR $8, R16, R16')
    go('\tADD $1, R17, R17')
    go('\tSUBS $1, R15, R15')
    go(f'\tBNE gloop{r}')
    go(f'gdone{r}:')
    go('\tADD R7, R21, R21')
go('')
go('gnext:')
go('\tADD $224, R5, R5')
go('\tADD $8, R9, R9')
go('\tCMP R4, R9')
go('\tBLT gblock')
go('\tRET')
go('')

# ---- GEMM with SDOT (ARMv8.2 dot product; only behind the feature check)
go('// func simdGemmKernelDot(args *gemmArgs)')
go('// As simdGemmKernel, with int8 rows (16 k per step, lda bytes apart) and')
go('// weights per block of 8 channels and quad of k: 8 x 4 int8 (SDOT).')
go('TEXT ·simdGemmKernelDot(SB), NOSPLIT, $0-8')
go('\tMOVD args+0(FP), R0')
go('\tMOVD 0(R0), R1   // a')
go('\tMOVD 8(R0), R2   // lda')
go('\tMOVD 16(R0), R19 // rows')
go('\tMOVD 24(R0), R8  // k groups of 16')
go('\tMOVD 32(R0), R3  // w')
go('\tMOVD 40(R0), R4  // n')
go('\tMOVD 48(R0), R5  // rq')
go('\tMOVD 88(R0), R6  // out')
go('\tMOVD 96(R0), R7  // ldo')
consts()
go('\tMOVD ZR, R9      // c0')
go('')
go('sblock:')
for i in range(16, 24):
    go(f'\tVEOR V{i}.B16, V{i}.B16, V{i}.B16')
go('\tMOVD R1, R10')
go('\tADD R2, R10, R11')
go('\tADD R2, R11, R12')
go('\tADD R2, R12, R13')
go('\tMOVD R8, R14')
go('')
go('skloop:')
for r, reg in enumerate(['R10', 'R11', 'R12', 'R13']):
    go(f'\tVLD1.P 16({reg}), [V{r}.B16]')
for j in range(4):
    go('\tVLD1.P 32(R3), [V10.B16, V11.B16]')
    for r in range(4):
        ne(f'sdot v{16+2*r}.4s, v10.16b, v{r}.4b[{j}]')
        ne(f'sdot v{17+2*r}.4s, v11.16b, v{r}.4b[{j}]')
go('\tSUBS $1, R14, R14')
go('\tBNE skloop')
go('')
load_rq('R5')
go('\tSUB R9, R4, R20  // channels left')
go('\tADD R9, R6, R21  // row 0 outputs')
for r in range(4):
    if r > 0:
        go(f'\tCMP ${r}, R19')
        go('\tBLE snext')
    rq(16+2*r, 24, 26, 28, 30)
    rq(17+2*r, 25, 27, 29, 31)
    pack(16+2*r, 17+2*r)
    go('\tCMP $8, R20')
    go(f'\tBLT spart{r}')
    go('\tVST1 [V8.B8], (R21)')
    go(f'\tB sdone{r}')
    go(f'spart{r}:')
    go('\tVMOV V8.D[0], R16')
    go('\tMOVD R21, R17')
    go('\tMOVD R20, R15')
    go(f'sloop{r}:')
    go('\tMOVB R16, (R17)')
    go('\tLSR $8, R16, R16')
    go('\tADD $1, R17, R17')
    go('\tSUBS $1, R15, R15')
    go(f'\tBNE sloop{r}')
    go(f'sdone{r}:')
    go('\tADD R7, R21, R21')
go('')
go('snext:')
go('\tADD $224, R5, R5')
go('\tADD $8, R9, R9')
go('\tCMP R4, R9')
go('\tBLT sblock')
go('\tRET')
go('')

# ---- depthwise 3x3
go('// func simdDWKernel(args *dwArgs)')
go('TEXT ·simdDWKernel(SB), NOSPLIT, $0-8')
go('\tMOVD args+0(FP), R0')
go('\tMOVD 0(R0), R1   // first tap of the pixel')
go('\tMOVD 8(R0), R2   // rowLen')
go('\tMOVD 16(R0), R3  // c')
go('\tMOVD 24(R0), R4  // step')
go('\tMOVD 32(R0), R5  // pixels')
go('\tMOVD 56(R0), R6  // out')
go('\tMOVW 64(R0), R15'); go('\tVDUP R15, V5.S4')
go('\tMOVW 72(R0), R15'); go('\tVDUP R15, V6.S4')
go('\tMOVW 80(R0), R15'); go('\tVDUP R15, V7.S4')
go('')
go('dpixel:')
go('\tMOVD 40(R0), R7  // w')
go('\tMOVD 48(R0), R8  // rq')
go('\tMOVD R1, R10')
go('\tADD R2, R10, R11')
go('\tADD R2, R11, R12')
go('\tLSR $3, R3, R14')
go('')
go('dblock:')
go('\tVEOR V16.B16, V16.B16, V16.B16')
go('\tVEOR V17.B16, V17.B16, V17.B16')
for reg in ['R10', 'R11', 'R12']:
    go(f'\tMOVD {reg}, R15')
    go('\tADD R3, R15, R16')
    go('\tADD R3, R16, R17')
    go('\tVLD1 (R15), [V0.B8]')
    go('\tVLD1 (R16), [V1.B8]')
    go('\tVLD1 (R17), [V2.B8]')
    for t in range(3):
        ne(f'sxtl v{t}.8h, v{t}.8b')
    go('\tVLD1.P 48(R7), [V20.H8, V21.H8, V22.H8]')
    for t in range(3):
        ne(f'smlal v16.4s, v{t}.4h, v{20+t}.4h')
        ne(f'smlal2 v17.4s, v{t}.8h, v{20+t}.8h')
go('\tADD $8, R10, R10')
go('\tADD $8, R11, R11')
go('\tADD $8, R12, R12')
load_rq('R8')
rq(16, 24, 26, 28, 30)
rq(17, 25, 27, 29, 31)
pack(16, 17)
go('\tVST1.P [V8.B8], 8(R6)')
go('\tADD $224, R8, R8')
go('\tSUBS $1, R14, R14')
go('\tBNE dblock')
go('\tADD R4, R1, R1')
go('\tSUBS $1, R5, R5')
go('\tBNE dpixel')
go('\tRET')
go('')

# ---- widen
go('// func widenNEON(dst *int16, src *int8, n int)')
go('// n is a positive multiple of 16.')
go('TEXT ·widenNEON(SB), NOSPLIT, $0-24')
go('\tMOVD dst+0(FP), R0')
go('\tMOVD src+8(FP), R1')
go('\tMOVD n+16(FP), R2')
go('wloop:')
go('\tVLD1.P 16(R1), [V0.B16]')
ne('sxtl v1.8h, v0.8b')
ne('sxtl2 v2.8h, v0.16b')
go('\tVST1.P [V1.H8, V2.H8], 32(R0)')
go('\tSUBS $16, R2, R2')
go('\tBNE wloop')
go('\tRET')

neon = [s for k, s in L if k == 'neon']
uniq = list(dict.fromkeys(neon))
out = subprocess.run(['llvm-mc', '-triple=aarch64', '-mattr=+neon,+dotprod', '-show-encoding'],
                     input='\n'.join(uniq) + '\n', capture_output=True, text=True, check=True).stdout
enc = []
for line in out.splitlines():
    m = re.search(r'encoding: \[(0x..),(0x..),(0x..),(0x..)\]', line)
    if m:
        b = [int(x, 16) for x in m.groups()]
        enc.append(b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24)
assert len(enc) == len(uniq), (len(enc), len(uniq))
code = dict(zip(uniq, enc))

hdr = '''// Code generated by gen_simd_arm64.py; DO NOT EDIT.

//go:build arm64 && !purego

#include "textflag.h"

// NEON kernels for the int8 GEMM and 3x3 depthwise convolution; see
// simd_arm64.go. Instructions the Go assembler does not know are WORDs,
// each with its GNU syntax. Requantization per 4 lanes, exactly TFLite's
// MultiplyByQuantizedMultiplier with gemmlowp's NEON rounding shift:
// x = (acc + folded) << left; h = SQRDMULH(x, mult); h = SQADD(h,
// (h & -right) >> 31); h = SRSHL(h, -right); + off; clamp; saturating
// narrow to int8 (exact: the clamp is within int8).

'''
body = []
for k, s in L:
    if k == 'go':
        body.append(s)
    else:
        body.append(f'\tWORD ${code[s]:#08x} // {s}')
sys.stdout.write(hdr + '\n'.join(body) + '\n')
