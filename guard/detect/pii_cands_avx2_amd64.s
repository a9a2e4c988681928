#include "textflag.h"

// piiCandsAVX2 (see pii_amd64.go and piiCandsGo): piiCands512 for CPUs
// with AVX2 and BMI1/BMI2 but no AVX-512, four blocks at a time, block
// b+j in qword lane j. The groups of four run to the end of the last group
// of eight, as piiCands512's do (the lanes past the chunk count nothing),
// so that both kernels keep the same contract. Each pair of fields of the
// four blocks is transposed with two 16-byte loads, two VINSERTI128 from
// memory and VPUNPCK[LH]QDQ, and the twelve fields are kept on the stack;
// the block before each lane is the vector moved up a lane (VPERMQ) with
// the block before the group blended in from memory (VPBLENDD), the block
// after likewise. prevBits and nextBits are two shifts and an OR; the
// popcounts are nibble lookups (VPSHUFB) summed by VPSADBW; the key runs'
// heads and ends are TZCNT and BSR on each lane in scalar code.

DATA piiA2Nib<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA piiA2Nib<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA piiA2Nib<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA piiA2Nib<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL piiA2Nib<>(SB), RODATA|NOPTR, $32

DATA piiA2Pop<>+0(SB)/8, $0x0302020102010100
DATA piiA2Pop<>+8(SB)/8, $0x0403030203020201
DATA piiA2Pop<>+16(SB)/8, $0x0302020102010100
DATA piiA2Pop<>+24(SB)/8, $0x0403030203020201
GLOBL piiA2Pop<>(SB), RODATA|NOPTR, $32

DATA piiA2Lane<>+0(SB)/8, $0
DATA piiA2Lane<>+8(SB)/8, $1
DATA piiA2Lane<>+16(SB)/8, $2
DATA piiA2Lane<>+24(SB)/8, $3
GLOBL piiA2Lane<>(SB), RODATA|NOPTR, $32

DATA piiA2K4<>+0(SB)/8, $4
DATA piiA2K4<>+8(SB)/8, $4
DATA piiA2K4<>+16(SB)/8, $4
DATA piiA2K4<>+24(SB)/8, $4
GLOBL piiA2K4<>(SB), RODATA|NOPTR, $32

DATA piiA2K3<>+0(SB)/8, $3
DATA piiA2K3<>+8(SB)/8, $3
DATA piiA2K3<>+16(SB)/8, $3
DATA piiA2K3<>+24(SB)/8, $3
GLOBL piiA2K3<>(SB), RODATA|NOPTR, $32

DATA piiA2M1<>+0(SB)/8, $-1
GLOBL piiA2M1<>(SB), RODATA|NOPTR, $8

// The twelve fields of the group's blocks, a vector each, on the stack.
#define F_DIGIT 0(SP)
#define F_ALNUM 32(SP)
#define F_DOT 64(SP)
#define F_DASH 96(SP)
#define F_SPACE 128(SP)
#define F_WFOLD 160(SP)
#define F_COLON 192(SP)
#define F_PLUS 224(SP)
#define F_UNDER 256(SP)
#define F_SLASH 288(SP)
#define F_GX 320(SP)
#define F_AT 352(SP)
#define XS 384(SP)

// PAIR transposes the fields at offset O and O+8 of the four blocks at
// BX into two vectors stored at DA and DB.
#define PAIR(O, O1, O2, O3, DA, DB) \
	VMOVDQU     O(BX), X0; \
	VINSERTI128 $1, O2(BX), Y0, Y0; \
	VMOVDQU     O1(BX), X1; \
	VINSERTI128 $1, O3(BX), Y1, Y1; \
	VPUNPCKLQDQ Y1, Y0, Y2; \
	VPUNPCKHQDQ Y1, Y0, Y3; \
	VMOVDQU     Y2, DA; \
	VMOVDQU     Y3, DB

// PREV sets D to F's lanes moved up one, lane 0 the field at offset O of
// the block before the group (its qword at PO(BX), PO = O-96).
#define PREV(F, PO, D) \
	VPERMQ   $0x90, F, D; \
	VPBLENDD $0x03, PO(BX), D, D

// NEXT sets D to F's lanes moved down one, lane 3 the field at offset O of
// the block after the group (read as the last qword of 32 bytes at NO(BX),
// NO = 4*96+O-24).
#define NEXT(F, NO, D) \
	VPERMQ   $0xf9, F, D; \
	VPBLENDD $0xc0, NO(BX), D, D

// PB sets D to prevBits(A, P, K) (K2 = 64-K), with T a scratch register.
#define PB(K, K2, A, P, T, D) \
	VPSLLQ $K, A, D; \
	VPSRLQ $K2, P, T; \
	VPOR   T, D, D

// NB sets D to nextBits(A, N, K) (K2 = 64-K).
#define NB(K, K2, A, N, T, D) \
	VPSRLQ $K, A, D; \
	VPSLLQ $K2, N, T; \
	VPOR   T, D, D

// POPB sets D to the bytes' popcounts of A (LUT the table, T scratch).
#define POPB(A, LUT, T, D) \
	VPSRLQ  $4, A, T; \
	VPAND   piiA2Nib<>(SB), A, D; \
	VPAND   piiA2Nib<>(SB), T, T; \
	VPSHUFB D, LUT, D; \
	VPSHUFB T, LUT, T; \
	VPADDB  T, D, D

// NONZERO sets R to the lanes of V that are not zero and valid (R9), as
// bits (Y15 is zero; V is overwritten).
#define NONZERO(V, R) \
	VPCMPEQQ  Y15, V, V; \
	VMOVMSKPD V, R; \
	XORL      $15, R; \
	ANDL      R9, R

// ACC ORs the group's lane bits R (shifted to the group, R12) into the
// candVec field at off(DI).
#define ACC(R, off) \
	SHLXQ R12, R, R; \
	ORQ   R, off(DI)

// KEYLANE: the lane's key characters x at off(SP): its head is R11 and
// the trailing zeros of ^x (TZCNT: 64 when x is all ones), kept in R10
// when the longest; R11 becomes the leading zeros of ^x (63 - BSR, 64
// when ^x is zero).
#define KEYLANE(off) \
	MOVQ    off(SP), AX; \
	NOTQ    AX; \
	TZCNTQ  AX, DX; \
	ADDQ    R11, DX; \
	CMPQ    DX, R10; \
	CMOVQHI DX, R10; \
	BSRQ    AX, AX; \
	CMOVQEQ piiA2M1<>(SB), AX; \
	MOVQ    $63, R11; \
	SUBQ    AX, R11

// func piiCandsAVX2(m *piiBlock, nb int, v *candVec, starts, sep *[trigChunk]uint64)
TEXT ·piiCandsAVX2(SB), NOSPLIT, $416-40
	MOVQ   m+0(FP), BX
	MOVQ   nb+8(FP), CX
	MOVQ   v+16(FP), DI
	MOVQ   starts+24(FP), R13
	MOVQ   sep+32(FP), R14
	ADDQ   $96, BX       // &m[1]
	MOVQ   DI, SI        // the group's elements of v's arrays
	LEAQ   7(CX), R8
	ANDQ   $-8, R8       // blocks to the end of the last group of eight
	XORQ   R12, R12      // 4 * the group
	MOVQ   800(DI), R11  // the key run before the group
	XORQ   R10, R10      // the longest head of a key run
	VPXOR  Y15, Y15, Y15 // zero
	VPXOR  Y14, Y14, Y14 // runs of 20 inside a block (any lane)
	VPXOR  Y13, Y13, Y13 // runs of 40

gloop:
	TESTQ R8, R8
	JLE   gdone

	// The valid lanes (j < CX): R9 as bits, Y4 as a vector.
	XORL        AX, AX
	MOVQ        CX, DX
	TESTQ       DX, DX
	CMOVQLT     AX, DX
	MOVL        $15, AX
	BZHIQ       DX, AX, R9
	VMOVQ       CX, X4
	VPBROADCASTQ X4, Y4
	VMOVDQU     piiA2Lane<>(SB), Y5
	VPCMPGTQ    Y5, Y4, Y4

	PAIR(0, 96, 192, 288, F_DIGIT, F_ALNUM)
	PAIR(16, 112, 208, 304, F_DOT, F_DASH)
	PAIR(32, 128, 224, 320, F_SPACE, F_WFOLD)
	PAIR(48, 144, 240, 336, F_COLON, F_PLUS)
	PAIR(64, 160, 256, 352, F_UNDER, F_SLASH)
	PAIR(80, 176, 272, 368, F_GX, F_AT)

	// Key runs: x (zero past the chunk), runs of 20 and 40 inside a
	// block (Y14, Y13).
	VMOVDQU F_ALNUM, Y0
	VPOR    F_PLUS, Y0, Y0
	VPOR    F_SLASH, Y0, Y0
	VPAND   Y4, Y0, Y0
	VMOVDQU Y0, XS
	VPSRLQ  $1, Y0, Y1
	VPAND   Y0, Y1, Y1
	VPSRLQ  $2, Y1, Y2
	VPAND   Y2, Y1, Y1
	VPSRLQ  $4, Y1, Y2
	VPAND   Y2, Y1, Y1
	VPSRLQ  $8, Y1, Y2
	VPAND   Y2, Y1, Y1 // runs of 16
	VPSRLQ  $4, Y1, Y2
	VPAND   Y1, Y2, Y2
	VPOR    Y2, Y14, Y14
	VPSRLQ  $16, Y1, Y2
	VPAND   Y1, Y2, Y2
	VPSRLQ  $24, Y1, Y3
	VPAND   Y3, Y2, Y2
	VPOR    Y2, Y13, Y13

	// Each lane's head (the run from the lanes before and its trailing
	// ones; the longest in R10) and the run ending it (R11).
	KEYLANE(384)
	KEYLANE(392)
	KEYLANE(400)
	KEYLANE(408)

	VMOVDQU F_DIGIT, Y12 // cd
	VMOVDQU F_ALNUM, Y11
	PREV(Y12, -96, Y10)  // the digits before
	PREV(Y11, -88, Y9)   // the letters and digits before
	NEXT(Y12, 360, Y8)   // nd

	// starts: digits after no digit (Y7).
	PB(1, 63, Y12, Y10, Y1, Y0)
	VPANDN  Y12, Y0, Y7

	// sep: ':' or a first MAC separator, after a letter or digit (Y5).
	VMOVDQU F_DASH, Y1
	NEXT(Y1, 384, Y0)
	NB(3, 61, Y1, Y0, Y3, Y2)
	NB(6, 58, Y1, Y0, Y4, Y3)
	VPAND   Y2, Y1, Y1
	VPAND   Y3, Y1, Y1
	VMOVDQU F_DOT, Y2
	NEXT(Y2, 376, Y6)    // the dots after (kept)
	NB(5, 59, Y2, Y6, Y4, Y3)
	VPAND   Y2, Y3, Y3
	VPOR    Y3, Y1, Y1
	VPOR    F_COLON, Y1, Y1
	PB(1, 63, Y11, Y9, Y4, Y3)
	VPAND   Y3, Y1, Y5
	VMOVDQU Y5, (R14)

	// any: a start or a sep.
	VPOR Y7, Y5, Y0
	NONZERO(Y0, AX)
	ACC(AX, 792)

	// marked: '@', "://", or "www." in either case.
	VMOVDQU F_SLASH, Y1
	NEXT(Y1, 432, Y0)
	NB(1, 63, Y1, Y0, Y4, Y3)
	NB(2, 62, Y1, Y0, Y4, Y2)
	VPAND   Y2, Y3, Y3
	VPAND   F_COLON, Y3, Y3 // "://"
	VMOVDQU F_WFOLD, Y1
	NEXT(Y1, 400, Y0)
	NB(1, 63, Y1, Y0, Y4, Y2)
	VPAND   Y1, Y2, Y2
	NB(2, 62, Y1, Y0, Y4, Y1)
	VPAND   Y1, Y2, Y2
	VMOVDQU F_DOT, Y1
	NB(3, 61, Y1, Y6, Y4, Y1)
	VPAND   Y1, Y2, Y2 // "www."
	VPOR    Y3, Y2, Y2
	VPOR    F_AT, Y2, Y2
	NONZERO(Y2, AX)
	ACC(AX, 784)

	// startBits. letter (Y4), the lane before's (Y3).
	VPANDN Y11, Y12, Y4
	VPANDN Y9, Y10, Y3

	// pre: after '+', or a letter or '_' with no digit before it (Y2).
	VMOVDQU F_PLUS, Y1
	PREV(Y1, -40, Y0)
	PB(1, 63, Y1, Y0, Y0, Y1)
	VPAND   Y7, Y1, Y2
	VMOVDQU F_UNDER, Y1
	PREV(Y1, -32, Y0)
	VPOR    Y4, Y1, Y1
	VPOR    Y3, Y0, Y0
	PB(1, 63, Y1, Y0, Y0, Y1)
	VPAND   Y7, Y1, Y1
	PB(2, 62, Y12, Y10, Y10, Y0)
	VPANDN  Y1, Y0, Y1
	VPOR    Y1, Y2, Y2
	VMOVDQU Y2, 0(SI)

	// nino: after a two-letter word and a space, digit pairs after (Y1).
	VMOVDQU F_SPACE, Y1
	PREV(Y1, -64, Y0)
	PB(1, 63, Y1, Y0, Y0, Y1)
	VPAND   Y7, Y1, Y1
	PB(4, 60, Y11, Y9, Y9, Y0)
	VPANDN  Y1, Y0, Y1
	PB(2, 62, Y4, Y3, Y0, Y10)
	VPAND   Y10, Y1, Y1
	PB(3, 61, Y4, Y3, Y3, Y10)
	VPAND   Y10, Y1, Y1
	NB(1, 63, Y12, Y8, Y0, Y3)
	VPAND   Y3, Y1, Y1
	NB(3, 61, Y12, Y8, Y0, Y3)
	VPAND   Y3, Y1, Y1
	NB(2, 62, Y12, Y8, Y0, Y3)
	VMOVDQU F_SPACE, Y4
	NEXT(Y4, 392, Y10)   // the spaces after (kept)
	NB(2, 62, Y4, Y10, Y0, Y4)
	NB(4, 60, Y12, Y8, Y0, Y9)
	VPAND   Y9, Y4, Y4
	VPOR    Y4, Y3, Y3
	VPAND   Y3, Y1, Y1
	VMOVDQU Y1, 256(SI)
	VPOR    Y2, Y5, Y5
	VPOR    Y1, Y5, Y5   // work so far: sep, pre, nino

	// Fewer than four digits in the block and the next (Y9), fewer than
	// three dots before digits (Y11).
	VMOVDQU  piiA2Pop<>(SB), Y11
	POPB(Y12, Y11, Y0, Y1)
	POPB(Y8, Y11, Y0, Y2)
	VPADDB   Y2, Y1, Y1
	VPSADBW  Y15, Y1, Y1
	VMOVDQU  piiA2K4<>(SB), Y0
	VPCMPGTQ Y1, Y0, Y9
	NB(1, 63, Y12, Y8, Y0, Y1)
	VPAND    F_DOT, Y1, Y1
	VPSRLQ   $1, Y8, Y2
	VPAND    Y6, Y2, Y2
	VPOR     Y2, Y1, Y1
	POPB(Y1, Y11, Y0, Y2)
	VPSADBW  Y15, Y2, Y2
	VMOVDQU  piiA2K3<>(SB), Y0
	VPCMPGTQ Y2, Y0, Y11

	// The clusters (clu Y0, the next block's Y1).
	VMOVDQU F_SPACE, Y0
	VPOR    Y12, Y0, Y0
	VPOR    F_DASH, Y0, Y0
	VPOR    F_DOT, Y0, Y0
	VPOR    F_GX, Y0, Y0
	VPOR    Y8, Y10, Y1
	VPOR    Y6, Y1, Y1
	VMOVDQU F_DASH, Y2
	NEXT(Y2, 384, Y3)
	VPOR    Y3, Y1, Y1
	VMOVDQU F_GX, Y2
	NEXT(Y2, 440, Y3)
	VPOR    Y3, Y1, Y1

	// few: and the last byte in a cluster, and a start (R15; Y12 without
	// the start).
	VPCMPGTQ  Y0, Y15, Y12
	VPAND     Y9, Y12, Y12
	VMOVMSKPD Y0, AX
	VMOVMSKPD Y9, DX
	ANDL      DX, AX
	VPCMPEQQ  Y15, Y7, Y2
	VMOVMSKPD Y2, DX
	XORL      $15, DX
	ANDL      DX, AX
	ANDL      R9, AX
	MOVL      AX, R15
	ACC(AX, 768)

	// long: seven bytes of cluster from a start, nine unless three dots
	// before digits.
	NB(1, 63, Y0, Y1, Y2, Y3)
	VPAND  Y0, Y3, Y3 // c2
	VPSRLQ $1, Y1, Y2
	VPAND  Y1, Y2, Y2 // the next block's c2
	NB(2, 62, Y3, Y2, Y1, Y0)
	VPAND  Y3, Y0, Y0 // c4
	VPSRLQ $2, Y2, Y1
	VPAND  Y2, Y1, Y1 // the next block's c4
	NB(3, 61, Y0, Y1, Y2, Y3)
	VPAND  Y0, Y3, Y3 // long (7 bytes)
	NB(5, 59, Y0, Y1, Y2, Y4) // (9 bytes)
	VPANDN Y11, Y4, Y4
	VPANDN Y3, Y4, Y3
	VPAND  Y7, Y3, Y3
	VPANDN Y3, Y9, Y3 // & starts, none where few digits
	VMOVDQU Y3, 512(SI)

	// work: a sep, pre, nino, long or few; starts, zero in the blocks
	// with no work.
	VPOR      Y3, Y5, Y5
	VPCMPEQQ  Y15, Y5, Y5 // no sep, pre, nino or long
	VMOVMSKPD Y5, AX
	XORL      $15, AX
	ANDL      R9, AX
	ORL       R15, AX
	ACC(AX, 776)
	VPANDN    Y5, Y12, Y5 // nor few (where few has a start)
	VPANDN    Y7, Y5, Y7
	VMOVDQU   Y7, (R13)

	ADDQ $384, BX
	ADDQ $32, SI
	ADDQ $32, R13
	ADDQ $32, R14
	ADDQ $4, R12
	SUBQ $4, CX
	SUBQ $4, R8
	JMP  gloop

gdone:
	MOVQ  R11, 800(DI)
	XORL  AX, AX
	XORL  DX, DX
	CMPQ  R10, $20
	SETCC AL
	VPTEST Y14, Y14
	SETNE DL
	ORB   DL, AL
	CMPQ  R10, $40
	SETCC DL
	VPTEST Y13, Y13
	SETNE CL
	ORB   CL, DL
	SHLB  $1, DL
	ORB   DL, AL
	ORQ   AX, 808(DI)
	VZEROUPPER
	RET
