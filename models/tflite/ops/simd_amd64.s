//go:build amd64 && !purego

#include "textflag.h"

// 2^30, the rounding term of the doubling high multiply.
DATA rqround<>+0(SB)/8, $0x40000000
GLOBL rqround<>(SB), RODATA|NOPTR, $8

// RQ requantizes the 8 int32 sums in ACC (channels of the table at BASE):
// x = (ACC + folded) << left; h = (x*mult + 2^30) >> 31 (64-bit, exact);
// the rounding right shift of gemmlowp's RoundingDivideByPOT:
// (h >> right) + ((h & mask) - (h < 0) > (mask >> 1)); then + off,
// clamped to [lo, hi] and packed to 8 int8 in the low 8 bytes of XACC.
// Needs Y11 = 2^30 (qwords), Y12 = off, Y13 = lo, Y14 = hi; clobbers
// Y8-Y10.
#define RQ(ACC, XACC, BASE) \
	VPADDD 0(BASE), ACC, ACC; \
	VPSLLVD 64(BASE), ACC, ACC; \
	VPMULDQ 32(BASE), ACC, Y8; \
	VPSHUFD $0xF5, ACC, Y9; \
	VPMULDQ 192(BASE), Y9, Y9; \
	VPADDQ Y11, Y8, Y8; \
	VPADDQ Y11, Y9, Y9; \
	VPSRLQ $31, Y8, Y8; \
	VPSLLQ $1, Y9, Y9; \
	VPBLENDD $0xAA, Y9, Y8, ACC; \
	VPAND 128(BASE), ACC, Y9; \
	VPSRAD $31, ACC, Y10; \
	VPADDD Y10, Y9, Y9; \
	VPCMPGTD 160(BASE), Y9, Y9; \
	VPSRAVD 96(BASE), ACC, ACC; \
	VPSUBD Y9, ACC, ACC; \
	VPADDD Y12, ACC, ACC; \
	VPMAXSD Y13, ACC, ACC; \
	VPMINSD Y14, ACC, ACC; \
	VEXTRACTI128 $1, ACC, X9; \
	VPACKSSDW X9, XACC, XACC; \
	VPACKSSWB XACC, XACC, XACC

// MADD2 accumulates one row's broadcast input pair (at PTR) times the two
// weight vectors Y8, Y9 into A0, A1.
#define MADD2(PTR, A0, A1) \
	VPBROADCASTD (PTR), Y10; \
	VPMADDWD Y8, Y10, Y12; \
	VPADDD Y12, A0, A0; \
	VPMADDWD Y9, Y10, Y13; \
	VPADDD Y13, A1, A1

// STORE16 writes a row's outputs XLO, XHI (8 int8 each) at PTR: all 16,
// or the first R11 of them when R11 < 16. Clobbers R12, R13 (BX is saved).
#define STORE16(XLO, XHI, PTR, LPART, LLOOP, LEND, LDONE) \
	CMPQ R11, $16; \
	JLT LPART; \
	MOVQ XLO, 0(PTR); \
	MOVQ XHI, 8(PTR); \
	JMP LDONE; \
LPART: \
	MOVQ XLO, tmp-16(SP); \
	MOVQ XHI, tmp-8(SP); \
	MOVQ BX, save-24(SP); \
	LEAQ tmp-16(SP), BX; \
	XORQ R12, R12; \
	CMPQ R11, $8; \
	JLT LLOOP; \
	MOVQ XLO, 0(PTR); \
	MOVQ $8, R12; \
LLOOP: \
	CMPQ R12, R11; \
	JGE LEND; \
	MOVB (BX)(R12*1), R13; \
	MOVB R13, (PTR)(R12*1); \
	INCQ R12; \
	JMP LLOOP; \
LEND: \
	MOVQ save-24(SP), BX; \
LDONE:

// func simdGemmKernel(args *gemmArgs)
TEXT ·simdGemmKernel(SB), NOSPLIT, $24-8
	MOVQ args+0(FP), DI
	MOVQ 0(DI), SI   // a
	MOVQ 8(DI), R8   // lda
	MOVQ 32(DI), BX  // w
	MOVQ 48(DI), R9  // rq
	MOVQ 88(DI), R10 // out
	XORQ CX, CX      // c0

block:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	MOVQ SI, AX
	LEAQ (SI)(R8*1), DX
	LEAQ (SI)(R8*2), R12
	LEAQ (DX)(R8*2), R13
	MOVQ 24(DI), R11

kloop:
	VMOVDQU 0(BX), Y8
	VMOVDQU 32(BX), Y9
	MADD2(AX, Y0, Y1)
	MADD2(DX, Y2, Y3)
	MADD2(R12, Y4, Y5)
	MADD2(R13, Y6, Y7)
	ADDQ $64, BX
	ADDQ $4, AX
	ADDQ $4, DX
	ADDQ $4, R12
	ADDQ $4, R13
	DECQ R11
	JNZ  kloop

	VPBROADCASTQ rqround<>(SB), Y11
	VPBROADCASTD 104(DI), Y12
	VPBROADCASTD 112(DI), Y13
	VPBROADCASTD 120(DI), Y14
	LEAQ 224(R9), DX
	MOVQ 40(DI), R11
	SUBQ CX, R11     // channels left
	LEAQ (R10)(CX*1), AX
	MOVQ 96(DI), R8  // ldo (lda reloaded below)

	RQ(Y0, X0, R9)
	RQ(Y1, X1, DX)
	STORE16(X0, X1, AX, r0part, r0loop, r0end, r0done)
	CMPQ 16(DI), $1
	JLE  next
	ADDQ R8, AX
	RQ(Y2, X2, R9)
	RQ(Y3, X3, DX)
	STORE16(X2, X3, AX, r1part, r1loop, r1end, r1done)
	CMPQ 16(DI), $2
	JLE  next
	ADDQ R8, AX
	RQ(Y4, X4, R9)
	RQ(Y5, X5, DX)
	STORE16(X4, X5, AX, r2part, r2loop, r2end, r2done)
	CMPQ 16(DI), $3
	JLE  next
	ADDQ R8, AX
	RQ(Y6, X6, R9)
	RQ(Y7, X7, DX)
	STORE16(X6, X7, AX, r3part, r3loop, r3end, r3done)

next:
	MOVQ 8(DI), R8
	ADDQ $448, R9
	ADDQ $16, CX
	CMPQ CX, 40(DI)
	JLT  block
	VZEROUPPER
	RET

// func simdDWKernel(args *dwArgs)
TEXT ·simdDWKernel(SB), NOSPLIT, $0-8
	MOVQ args+0(FP), DI
	MOVQ 0(DI), R8   // first tap of the pixel
	MOVQ 16(DI), CX  // c
	MOVQ 56(DI), R10 // out
	MOVQ 32(DI), R11 // pixels
	VPBROADCASTQ rqround<>(SB), Y11
	VPBROADCASTD 64(DI), Y12
	VPBROADCASTD 72(DI), Y13
	VPBROADCASTD 80(DI), Y14

pixel:
	MOVQ R8, AX
	MOVQ 8(DI), BX
	LEAQ (R8)(BX*1), BX
	MOVQ 8(DI), DX
	LEAQ (BX)(DX*1), DX
	MOVQ 40(DI), SI  // w
	MOVQ 48(DI), R9  // rq
	MOVQ CX, R12
	SHRQ $3, R12     // blocks

dwblock:
	VPMOVSXBD (AX), Y0
	VPMULLD   0(SI), Y0, Y0
	VPMOVSXBD (AX)(CX*1), Y1
	VPMULLD   32(SI), Y1, Y1
	VPMOVSXBD (AX)(CX*2), Y2
	VPMULLD   64(SI), Y2, Y2
	VPMOVSXBD (BX), Y3
	VPMULLD   96(SI), Y3, Y3
	VPMOVSXBD (BX)(CX*1), Y4
	VPMULLD   128(SI), Y4, Y4
	VPMOVSXBD (BX)(CX*2), Y5
	VPMULLD   160(SI), Y5, Y5
	VPMOVSXBD (DX), Y6
	VPMULLD   192(SI), Y6, Y6
	VPMOVSXBD (DX)(CX*1), Y7
	VPMULLD   224(SI), Y7, Y7
	VPMOVSXBD (DX)(CX*2), Y15
	VPMULLD   256(SI), Y15, Y15
	VPADDD    Y1, Y0, Y0
	VPADDD    Y3, Y2, Y2
	VPADDD    Y5, Y4, Y4
	VPADDD    Y7, Y6, Y6
	VPADDD    Y2, Y0, Y0
	VPADDD    Y6, Y4, Y4
	VPADDD    Y15, Y0, Y0
	VPADDD    Y4, Y0, Y0
	RQ(Y0, X0, R9)
	MOVQ      X0, (R10)
	ADDQ      $8, R10
	ADDQ      $288, SI
	ADDQ      $224, R9
	ADDQ      $8, AX
	ADDQ      $8, BX
	ADDQ      $8, DX
	DECQ      R12
	JNZ       dwblock

	ADDQ 24(DI), R8
	DECQ R11
	JNZ  pixel
	VZEROUPPER
	RET

// func widenAVX2(dst *int16, src *int8, n int)
// n is a positive multiple of 16.
TEXT ·widenAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

widen:
	VPMOVSXBW (SI), Y0
	VMOVDQU   Y0, (DI)
	ADDQ      $16, SI
	ADDQ      $32, DI
	SUBQ      $16, CX
	JNZ       widen
	VZEROUPPER
	RET

// func flipAVX2(dst *uint8, src *int8, n int)
// n is a positive multiple of 32.
TEXT ·flipAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x80808080, AX
	MOVQ AX, X1
	VPBROADCASTD X1, Y1

flip:
	VPXOR   (SI), Y1, Y0
	VMOVDQU Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $32, CX
	JNZ     flip
	VZEROUPPER
	RET

// RQ16 is RQ for 16 int32 sums in a ZMM register, with the 16-channel
// table at R9 (folded, mult, left, right, mask, mask>>1, odd multipliers
// moved to the even lanes: 64 bytes each). Needs K1 = 0xAAAA, Z11 = 2^30
// (qwords), Z12 = off, Z13 = lo, Z14 = hi, Z15 = -1; clobbers Z8-Z10, K2.
#define RQ16(ACC, XACC) \
	VPADDD 0(R9), ACC, ACC; \
	VPSLLVD 128(R9), ACC, ACC; \
	VPMULDQ 64(R9), ACC, Z8; \
	VPSHUFD $0xF5, ACC, Z9; \
	VPMULDQ 384(R9), Z9, Z9; \
	VPADDQ Z11, Z8, Z8; \
	VPADDQ Z11, Z9, Z9; \
	VPSRLQ $31, Z8, Z8; \
	VPSLLQ $1, Z9, Z9; \
	VPBLENDMD Z9, Z8, K1, ACC; \
	VPANDD 256(R9), ACC, Z9; \
	VPSRAD $31, ACC, Z10; \
	VPADDD Z10, Z9, Z9; \
	VPCMPGTD 320(R9), Z9, K2; \
	VPSRAVD 192(R9), ACC, ACC; \
	VPSUBD Z15, ACC, K2, ACC; \
	VPADDD Z12, ACC, ACC; \
	VPMAXSD Z13, ACC, ACC; \
	VPMINSD Z14, ACC, ACC; \
	VPMOVSDB ACC, XACC

// STORE16X writes a row's 16 outputs in XACC at PTR, or the first R11 of
// them when R11 < 16. Clobbers R12, R13 (BX is saved).
#define STORE16X(XACC, PTR, LPART, LLOOP, LDONE) \
	CMPQ R11, $16; \
	JLT LPART; \
	VMOVDQU XACC, 0(PTR); \
	JMP LDONE; \
LPART: \
	VMOVDQU XACC, tmp-16(SP); \
	MOVQ BX, save-24(SP); \
	LEAQ tmp-16(SP), BX; \
	XORQ R12, R12; \
LLOOP: \
	MOVB (BX)(R12*1), R13; \
	MOVB R13, (PTR)(R12*1); \
	INCQ R12; \
	CMPQ R12, R11; \
	JLT LLOOP; \
	MOVQ save-24(SP), BX; \
LDONE:

// func simdGemmKernel512(args *gemmArgs)
// The VNNI GEMM on 512-bit vectors: 4 rows x 16 channels, VPDPBUSD of
// uint8 inputs (x+128) and int8 weights, 4 k per step; rq is the
// 16-channel table.
TEXT ·simdGemmKernel512(SB), NOSPLIT, $24-8
	MOVQ args+0(FP), DI
	MOVQ 0(DI), SI   // a
	MOVQ 8(DI), R8   // lda
	MOVQ 32(DI), BX  // w
	MOVQ 48(DI), R9  // rq
	MOVQ 88(DI), R10 // out
	XORQ CX, CX      // c0
	MOVL $0xAAAA, AX
	KMOVW AX, K1
	VPBROADCASTQ rqround<>(SB), Z11
	VPBROADCASTD 104(DI), Z12
	VPBROADCASTD 112(DI), Z13
	VPBROADCASTD 120(DI), Z14
	VPTERNLOGD $0xff, Z15, Z15, Z15

zblock:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ SI, AX
	LEAQ (SI)(R8*1), DX
	LEAQ (SI)(R8*2), R12
	LEAQ (DX)(R8*2), R13
	MOVQ 24(DI), R11

zkloop:
	VMOVDQU32 0(BX), Z8
	VPBROADCASTD (AX), Z10
	VPDPBUSD Z8, Z10, Z0
	VPBROADCASTD (DX), Z9
	VPDPBUSD Z8, Z9, Z1
	VPBROADCASTD (R12), Z10
	VPDPBUSD Z8, Z10, Z2
	VPBROADCASTD (R13), Z9
	VPDPBUSD Z8, Z9, Z3
	ADDQ $64, BX
	ADDQ $4, AX
	ADDQ $4, DX
	ADDQ $4, R12
	ADDQ $4, R13
	DECQ R11
	JNZ  zkloop

	MOVQ 40(DI), R11
	SUBQ CX, R11     // channels left
	LEAQ (R10)(CX*1), AX
	MOVQ 96(DI), R8  // ldo

	RQ16(Z0, X0)
	STORE16X(X0, AX, z0part, z0loop, z0done)
	CMPQ 16(DI), $1
	JLE  znext
	ADDQ R8, AX
	RQ16(Z1, X1)
	STORE16X(X1, AX, z1part, z1loop, z1done)
	CMPQ 16(DI), $2
	JLE  znext
	ADDQ R8, AX
	RQ16(Z2, X2)
	STORE16X(X2, AX, z2part, z2loop, z2done)
	CMPQ 16(DI), $3
	JLE  znext
	ADDQ R8, AX
	RQ16(Z3, X3)
	STORE16X(X3, AX, z3part, z3loop, z3done)

znext:
	MOVQ 8(DI), R8
	ADDQ $448, R9
	ADDQ $16, CX
	CMPQ CX, 40(DI)
	JLT  zblock
	VZEROUPPER
	RET

// func simdDWKernel512(args *dwArgs)
// The 3x3 depthwise kernel on 512-bit vectors: 16 channels per step
// (c a multiple of 16), weights [c/16][9][16] int32, the 16-channel table.
TEXT ·simdDWKernel512(SB), NOSPLIT, $0-8
	MOVQ args+0(FP), DI
	MOVQ 0(DI), R8   // first tap of the pixel
	MOVQ 16(DI), CX  // c
	MOVQ 56(DI), R10 // out
	MOVQ 32(DI), R11 // pixels
	MOVL $0xAAAA, AX
	KMOVW AX, K1
	VPBROADCASTQ rqround<>(SB), Z11
	VPBROADCASTD 64(DI), Z12
	VPBROADCASTD 72(DI), Z13
	VPBROADCASTD 80(DI), Z14
	VPTERNLOGD $0xff, Z15, Z15, Z15

wpixel:
	MOVQ R8, AX
	MOVQ 8(DI), BX
	LEAQ (R8)(BX*1), BX
	MOVQ 8(DI), DX
	LEAQ (BX)(DX*1), DX
	MOVQ 40(DI), SI  // w
	MOVQ 48(DI), R9  // rq
	MOVQ CX, R12
	SHRQ $4, R12     // blocks

wblock:
	VPMOVSXBD (AX), Z0
	VPMULLD   0(SI), Z0, Z0
	VPMOVSXBD (AX)(CX*1), Z1
	VPMULLD   64(SI), Z1, Z1
	VPMOVSXBD (AX)(CX*2), Z2
	VPMULLD   128(SI), Z2, Z2
	VPMOVSXBD (BX), Z3
	VPMULLD   192(SI), Z3, Z3
	VPMOVSXBD (BX)(CX*1), Z4
	VPMULLD   256(SI), Z4, Z4
	VPMOVSXBD (BX)(CX*2), Z5
	VPMULLD   320(SI), Z5, Z5
	VPMOVSXBD (DX), Z6
	VPMULLD   384(SI), Z6, Z6
	VPMOVSXBD (DX)(CX*1), Z7
	VPMULLD   448(SI), Z7, Z7
	VPMOVSXBD (DX)(CX*2), Z16
	VPMULLD   512(SI), Z16, Z16
	VPADDD    Z1, Z0, Z0
	VPADDD    Z3, Z2, Z2
	VPADDD    Z5, Z4, Z4
	VPADDD    Z7, Z6, Z6
	VPADDD    Z2, Z0, Z0
	VPADDD    Z6, Z4, Z4
	VPADDD    Z16, Z0, Z0
	VPADDD    Z4, Z0, Z0
	RQ16(Z0, X0)
	VMOVDQU   X0, (R10)
	ADDQ      $16, R10
	ADDQ      $576, SI
	ADDQ      $448, R9
	ADDQ      $16, AX
	ADDQ      $16, BX
	ADDQ      $16, DX
	DECQ      R12
	JNZ       wblock

	ADDQ 24(DI), R8
	DECQ R11
	JNZ  wpixel
	VZEROUPPER
	RET
