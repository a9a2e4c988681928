#include "textflag.h"

// piiCands512 (see pii_amd64.go and piiCandsGo): load's bitmaps and
// startBits for eight blocks at a time, block b+j in qword lane j. The
// eight blocks' fields are transposed into a vector each (VPERMI2Q); the
// lanes of the block before and after are the vector
// shifted by one lane (VALIGNQ) with the block before the group or after
// it broadcast in; prevBits and nextBits are VPSHLDQ and VPSHRDQ.

DATA piiTA0<>+0(SB)/8, $0
DATA piiTA0<>+8(SB)/8, $8
DATA piiTA0<>+16(SB)/8, $1
DATA piiTA0<>+24(SB)/8, $9
DATA piiTA0<>+32(SB)/8, $2
DATA piiTA0<>+40(SB)/8, $10
DATA piiTA0<>+48(SB)/8, $3
DATA piiTA0<>+56(SB)/8, $11
GLOBL piiTA0<>(SB), RODATA|NOPTR, $64

DATA piiTA1<>+0(SB)/8, $4
DATA piiTA1<>+8(SB)/8, $12
DATA piiTA1<>+16(SB)/8, $5
DATA piiTA1<>+24(SB)/8, $13
DATA piiTA1<>+32(SB)/8, $6
DATA piiTA1<>+40(SB)/8, $14
DATA piiTA1<>+48(SB)/8, $7
DATA piiTA1<>+56(SB)/8, $15
GLOBL piiTA1<>(SB), RODATA|NOPTR, $64

DATA piiTB0<>+0(SB)/8, $0
DATA piiTB0<>+8(SB)/8, $1
DATA piiTB0<>+16(SB)/8, $8
DATA piiTB0<>+24(SB)/8, $9
DATA piiTB0<>+32(SB)/8, $2
DATA piiTB0<>+40(SB)/8, $3
DATA piiTB0<>+48(SB)/8, $10
DATA piiTB0<>+56(SB)/8, $11
GLOBL piiTB0<>(SB), RODATA|NOPTR, $64

DATA piiTB1<>+0(SB)/8, $4
DATA piiTB1<>+8(SB)/8, $5
DATA piiTB1<>+16(SB)/8, $12
DATA piiTB1<>+24(SB)/8, $13
DATA piiTB1<>+32(SB)/8, $6
DATA piiTB1<>+40(SB)/8, $7
DATA piiTB1<>+48(SB)/8, $14
DATA piiTB1<>+56(SB)/8, $15
GLOBL piiTB1<>(SB), RODATA|NOPTR, $64

DATA piiTC0<>+0(SB)/8, $0
DATA piiTC0<>+8(SB)/8, $1
DATA piiTC0<>+16(SB)/8, $2
DATA piiTC0<>+24(SB)/8, $3
DATA piiTC0<>+32(SB)/8, $8
DATA piiTC0<>+40(SB)/8, $9
DATA piiTC0<>+48(SB)/8, $10
DATA piiTC0<>+56(SB)/8, $11
GLOBL piiTC0<>(SB), RODATA|NOPTR, $64

DATA piiTC1<>+0(SB)/8, $4
DATA piiTC1<>+8(SB)/8, $5
DATA piiTC1<>+16(SB)/8, $6
DATA piiTC1<>+24(SB)/8, $7
DATA piiTC1<>+32(SB)/8, $12
DATA piiTC1<>+40(SB)/8, $13
DATA piiTC1<>+48(SB)/8, $14
DATA piiTC1<>+56(SB)/8, $15
GLOBL piiTC1<>(SB), RODATA|NOPTR, $64

DATA piiK1<>+0(SB)/8, $1
DATA piiK1<>+8(SB)/8, $1
DATA piiK1<>+16(SB)/8, $1
DATA piiK1<>+24(SB)/8, $1
DATA piiK1<>+32(SB)/8, $1
DATA piiK1<>+40(SB)/8, $1
DATA piiK1<>+48(SB)/8, $1
DATA piiK1<>+56(SB)/8, $1
GLOBL piiK1<>(SB), RODATA|NOPTR, $64

DATA piiK3<>+0(SB)/8, $3
DATA piiK3<>+8(SB)/8, $3
DATA piiK3<>+16(SB)/8, $3
DATA piiK3<>+24(SB)/8, $3
DATA piiK3<>+32(SB)/8, $3
DATA piiK3<>+40(SB)/8, $3
DATA piiK3<>+48(SB)/8, $3
DATA piiK3<>+56(SB)/8, $3
GLOBL piiK3<>(SB), RODATA|NOPTR, $64

DATA piiK4<>+0(SB)/8, $4
DATA piiK4<>+8(SB)/8, $4
DATA piiK4<>+16(SB)/8, $4
DATA piiK4<>+24(SB)/8, $4
DATA piiK4<>+32(SB)/8, $4
DATA piiK4<>+40(SB)/8, $4
DATA piiK4<>+48(SB)/8, $4
DATA piiK4<>+56(SB)/8, $4
GLOBL piiK4<>(SB), RODATA|NOPTR, $64

DATA piiK20<>+0(SB)/8, $20
DATA piiK20<>+8(SB)/8, $20
DATA piiK20<>+16(SB)/8, $20
DATA piiK20<>+24(SB)/8, $20
DATA piiK20<>+32(SB)/8, $20
DATA piiK20<>+40(SB)/8, $20
DATA piiK20<>+48(SB)/8, $20
DATA piiK20<>+56(SB)/8, $20
GLOBL piiK20<>(SB), RODATA|NOPTR, $64

DATA piiK40<>+0(SB)/8, $40
DATA piiK40<>+8(SB)/8, $40
DATA piiK40<>+16(SB)/8, $40
DATA piiK40<>+24(SB)/8, $40
DATA piiK40<>+32(SB)/8, $40
DATA piiK40<>+40(SB)/8, $40
DATA piiK40<>+48(SB)/8, $40
DATA piiK40<>+56(SB)/8, $40
GLOBL piiK40<>(SB), RODATA|NOPTR, $64

// PERM sets D to the qwords of A and B (B's numbered from 8) that the
// index vector I lists.
#define PERM(I, A, B, D) \
	VMOVDQU64 I<>(SB), D; \
	VPERMI2Q  B, A, D

// func piiCands512(m *piiBlock, nb int, v *candVec, starts, sep *[trigChunk]uint64)
TEXT ·piiCands512(SB), NOSPLIT, $0-40
	MOVQ         m+0(FP), BX
	MOVQ         nb+8(FP), CX
	MOVQ         v+16(FP), DI
	MOVQ         starts+24(FP), R13
	MOVQ         sep+32(FP), R14
	ADDQ         $96, BX             // &m[1]
	MOVQ         DI, SI              // the group's elements of v's arrays
	XORQ         R12, R12            // the group
	XORQ         R11, R11            // keys
	VPBROADCASTQ 800(DI), Z26           // lane 7: the key run before the group

cloop:
	TESTQ CX, CX
	JLE   cdone
	MOVL  $0xff, AX
	CMPQ  CX, $8
	JAE   cfull
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX

cfull:
	KMOVB AX, K7 // the lanes of blocks in the chunk
	// The fields 0-7 of the eight blocks (a row each, Z12-Z19)
	// transposed into Z0-Z7 (a field each), in three steps: pairs of
	// rows, pairs of pairs, all.
	VMOVDQU64 0(BX), Z12
	VMOVDQU64 96(BX), Z13
	VMOVDQU64 192(BX), Z14
	VMOVDQU64 288(BX), Z15
	VMOVDQU64 384(BX), Z16
	VMOVDQU64 480(BX), Z17
	VMOVDQU64 576(BX), Z18
	VMOVDQU64 672(BX), Z19
	PERM(piiTA0, Z12, Z13, Z20)
	PERM(piiTA1, Z12, Z13, Z21)
	PERM(piiTA0, Z14, Z15, Z22)
	PERM(piiTA1, Z14, Z15, Z23)
	PERM(piiTA0, Z16, Z17, Z24)
	PERM(piiTA1, Z16, Z17, Z25)
	PERM(piiTA0, Z18, Z19, Z27)
	PERM(piiTA1, Z18, Z19, Z28)
	PERM(piiTB0, Z20, Z22, Z12)
	PERM(piiTB1, Z20, Z22, Z13)
	PERM(piiTB0, Z21, Z23, Z14)
	PERM(piiTB1, Z21, Z23, Z15)
	PERM(piiTB0, Z24, Z27, Z16)
	PERM(piiTB1, Z24, Z27, Z17)
	PERM(piiTB0, Z25, Z28, Z18)
	PERM(piiTB1, Z25, Z28, Z19)
	PERM(piiTC0, Z12, Z16, Z0)
	PERM(piiTC1, Z12, Z16, Z1)
	PERM(piiTC0, Z13, Z17, Z2)
	PERM(piiTC1, Z13, Z17, Z3)
	PERM(piiTC0, Z14, Z18, Z4)
	PERM(piiTC1, Z14, Z18, Z5)
	PERM(piiTC0, Z15, Z19, Z6)
	PERM(piiTC1, Z15, Z19, Z7)

	// The fields 8-11 (the rows' qwords 0-3 from offset 64) into Z8-Z11.
	VMOVDQU64 64(BX), Z12
	VMOVDQU64 160(BX), Z13
	VMOVDQU64 256(BX), Z14
	VMOVDQU64 352(BX), Z15
	VMOVDQU64 448(BX), Z16
	VMOVDQU64 544(BX), Z17
	VMOVDQU64 640(BX), Z18
	VMOVDQU64 736(BX), Z19
	PERM(piiTA0, Z12, Z13, Z20)
	PERM(piiTA0, Z14, Z15, Z21)
	PERM(piiTA0, Z16, Z17, Z22)
	PERM(piiTA0, Z18, Z19, Z23)
	PERM(piiTB0, Z20, Z21, Z24)
	PERM(piiTB1, Z20, Z21, Z25)
	PERM(piiTB0, Z22, Z23, Z27)
	PERM(piiTB1, Z22, Z23, Z28)
	PERM(piiTC0, Z24, Z27, Z8)
	PERM(piiTC1, Z24, Z27, Z9)
	PERM(piiTC0, Z25, Z28, Z10)
	PERM(piiTC1, Z25, Z28, Z11)

	// The block before each lane: digit, alnum, plus, under, space.
	VPBROADCASTQ -96(BX), Z24
	VALIGNQ      $7, Z24, Z0, Z12
	VPBROADCASTQ -88(BX), Z24
	VALIGNQ      $7, Z24, Z1, Z13
	VPBROADCASTQ -40(BX), Z24
	VALIGNQ      $7, Z24, Z7, Z14
	VPBROADCASTQ -32(BX), Z24
	VALIGNQ      $7, Z24, Z8, Z15
	VPBROADCASTQ -64(BX), Z24
	VALIGNQ      $7, Z24, Z4, Z16

	// The block after each lane: digit, dot, dash, space, wfold, gx.
	VPBROADCASTQ 768(BX), Z24
	VALIGNQ      $1, Z0, Z24, Z17
	VPBROADCASTQ 784(BX), Z24
	VALIGNQ      $1, Z2, Z24, Z18
	VPBROADCASTQ 792(BX), Z24
	VALIGNQ      $1, Z3, Z24, Z19
	VPBROADCASTQ 800(BX), Z24
	VALIGNQ      $1, Z4, Z24, Z20
	VPBROADCASTQ 808(BX), Z24
	VALIGNQ      $1, Z5, Z24, Z21
	VPBROADCASTQ 848(BX), Z24
	VALIGNQ      $1, Z10, Z24, Z22

	// sep: ':' or a first MAC separator, after a letter or digit.
	VPSHRDQ   $3, Z19, Z3, Z23
	VPSHRDQ   $6, Z19, Z3, Z24
	VPANDQ    Z23, Z24, Z23
	VPANDQ    Z3, Z23, Z23
	VPSHRDQ   $5, Z18, Z2, Z24
	VPANDQ    Z2, Z24, Z24
	VPORQ     Z24, Z23, Z23
	VPORQ     Z6, Z23, Z23
	VPSHLDQ   $1, Z13, Z1, Z24
	VPANDQ    Z24, Z23, Z23
	VMOVDQU64 Z23, (R14)

	// starts: digits after no digit.
	VPSHLDQ   $1, Z12, Z0, Z24
	VPANDNQ   Z0, Z24, Z25
	VPORQ     Z23, Z25, Z24
	VPTESTMQ  Z24, Z24, K7, K1
	KMOVB     K1, 792(DI)(R12*1) // any

	// marked: '@', "://", or "www." in either case.
	VPBROADCASTQ 840(BX), Z24
	VALIGNQ      $1, Z9, Z24, Z27 // the block after's slash
	VPSHRDQ      $1, Z27, Z9, Z28
	VPSHRDQ      $2, Z27, Z9, Z29
	VPANDQ       Z28, Z29, Z28
	VPANDQ       Z6, Z28, Z28     // "://"
	VPSHRDQ      $1, Z21, Z5, Z24
	VPSHRDQ      $2, Z21, Z5, Z29
	VPANDQ       Z24, Z29, Z24
	VPANDQ       Z5, Z24, Z24
	VPSHRDQ      $3, Z18, Z2, Z29
	VPANDQ       Z29, Z24, Z24    // "www."
	VPORQ        Z28, Z24, Z24
	VPORQ        Z11, Z24, Z24
	VPTESTMQ     Z24, Z24, K7, K1
	KMOVB        K1, 784(DI)(R12*1)

	// Key runs: x (zero past the chunk), its head after the run before
	// (the leading zeros of the lane before), runs of 20 and 40 inside.
	VPORQ       Z1, Z7, Z24
	VPORQ       Z9, Z24, Z24
	VMOVDQA64.Z Z24, K7, Z24
	VPTERNLOGQ  $0x55, Z24, Z24, Z27 // ^x
	VPLZCNTQ    Z27, Z28
	VPSUBQ      piiK1<>(SB), Z27, Z29
	VPANDQ      Z24, Z29, Z29
	VPOPCNTQ    Z29, Z29             // trailing zeros of ^x
	VALIGNQ     $7, Z26, Z28, Z30
	VPADDQ      Z30, Z29, Z29        // head
	VMOVDQA64   Z28, Z26
	VPCMPUQ     $5, piiK20<>(SB), Z29, K2
	VPCMPUQ     $5, piiK40<>(SB), Z29, K3
	VPSRLQ      $1, Z24, Z30
	VPANDQ      Z24, Z30, Z30
	VPSRLQ      $2, Z30, Z29
	VPANDQ      Z29, Z30, Z30
	VPSRLQ      $4, Z30, Z29
	VPANDQ      Z29, Z30, Z30
	VPSRLQ      $8, Z30, Z29
	VPANDQ      Z29, Z30, Z30        // runs of 16
	VPSRLQ      $4, Z30, Z29
	VPTESTMQ    Z29, Z30, K4
	VPSRLQ      $16, Z30, Z29
	VPANDQ      Z30, Z29, Z29
	VPSRLQ      $24, Z30, Z27
	VPTESTMQ    Z27, Z29, K5
	KORB        K2, K4, K2
	KORB        K3, K5, K3
	KORTESTB    K2, K2
	JZ          cno20
	ORQ         $1, R11

cno20:
	KORTESTB K3, K3
	JZ       cno40
	ORQ      $2, R11

cno40:
	// startBits. letter (Z27), the lane before's (Z28).
	VPANDNQ Z1, Z0, Z27
	VPANDNQ Z13, Z12, Z28

	// pre: after '+', or a letter or '_' with no digit before it.
	VPSHLDQ   $1, Z14, Z7, Z29
	VPANDQ    Z25, Z29, Z29
	VPORQ     Z8, Z27, Z30
	VPORQ     Z15, Z28, Z24
	VPSHLDQ   $1, Z24, Z30, Z30
	VPANDQ    Z25, Z30, Z30
	VPSHLDQ   $2, Z12, Z0, Z24
	VPANDNQ   Z30, Z24, Z30
	VPORQ     Z30, Z29, Z29
	VMOVDQU64 Z29, 0(SI)

	// nino: after a two-letter word and a space, digit pairs after.
	VPSHLDQ   $1, Z16, Z4, Z30
	VPANDQ    Z25, Z30, Z30
	VPSHLDQ   $4, Z13, Z1, Z24
	VPANDNQ   Z30, Z24, Z30
	VPSHLDQ   $2, Z28, Z27, Z24
	VPANDQ    Z24, Z30, Z30
	VPSHLDQ   $3, Z28, Z27, Z24
	VPANDQ    Z24, Z30, Z30
	VPSHRDQ   $1, Z17, Z0, Z24
	VPANDQ    Z24, Z30, Z30
	VPSHRDQ   $3, Z17, Z0, Z24
	VPANDQ    Z24, Z30, Z30
	VPSHRDQ   $2, Z17, Z0, Z24
	VPSHRDQ   $2, Z20, Z4, Z27
	VPSHRDQ   $4, Z17, Z0, Z28
	VPANDQ    Z28, Z27, Z27
	VPORQ     Z27, Z24, Z24
	VPANDQ    Z24, Z30, Z30
	VMOVDQU64 Z30, 256(SI)
	VPORQ     Z29, Z23, Z23
	VPORQ     Z30, Z23, Z23 // work so far: sep, pre, nino

	// Fewer than four digits in the block and the next (K2); the
	// clusters (clu Z24, the next block's Z27).
	VPOPCNTQ Z0, Z24
	VPOPCNTQ Z17, Z27
	VPADDQ   Z27, Z24, Z24
	VPCMPUQ  $1, piiK4<>(SB), Z24, K2
	VPORQ    Z0, Z4, Z24
	VPORQ    Z3, Z24, Z24
	VPORQ    Z2, Z24, Z24
	VPORQ    Z10, Z24, Z24
	VPORQ    Z17, Z20, Z27
	VPORQ    Z19, Z27, Z27
	VPORQ    Z18, Z27, Z27
	VPORQ    Z22, Z27, Z27

	// few (K3): and the last byte in a cluster, and a start.
	VPSRLQ   $63, Z24, Z28
	VPTESTMQ Z28, Z28, K2, K3
	VPTESTMQ Z25, Z25, K3, K3
	KANDB    K3, K7, K3
	KMOVB    K3, 768(DI)(R12*1)

	// long: seven bytes of cluster from a start, nine unless three dots
	// before digits.
	VPSHRDQ $1, Z27, Z24, Z28
	VPANDQ  Z24, Z28, Z28         // c2
	VPSRLQ  $1, Z27, Z29
	VPANDQ  Z27, Z29, Z29         // the next block's c2
	VPSHRDQ $2, Z29, Z28, Z30
	VPANDQ  Z28, Z30, Z30         // c4
	VPSRLQ  $2, Z29, Z27
	VPANDQ  Z29, Z27, Z27         // the next block's c4
	VPSHRDQ $3, Z27, Z30, Z28
	VPANDQ  Z30, Z28, Z28         // long (7 bytes)
	VPSHRDQ $5, Z27, Z30, Z29     // c4 five bytes on (9 bytes)
	VPSHRDQ $1, Z17, Z0, Z27
	VPANDQ  Z2, Z27, Z27
	VPSRLQ  $1, Z17, Z30
	VPANDQ  Z18, Z30, Z30
	VPORQ   Z30, Z27, Z27         // dots before digits
	VPOPCNTQ Z27, Z27
	VPCMPUQ $1, piiK3<>(SB), Z27, K4
	VPANDQ  Z29, Z28, K4, Z28
	KNOTB   K2, K5
	VPANDQ.Z Z25, Z28, K5, Z28    // & starts, none where few digits
	VMOVDQU64 Z28, 512(SI)

	// work: a sep, pre, nino, long or few.
	VPORQ    Z28, Z23, Z23
	VPTESTMQ Z23, Z23, K7, K1
	KORB     K1, K3, K1
	KMOVB    K1, 776(DI)(R12*1)
	VMOVDQA64.Z Z25, K1, Z25      // starts, zero in blocks with no work
	VMOVDQU64   Z25, (R13)

	ADDQ $768, BX
	ADDQ $64, SI
	ADDQ $64, R13
	ADDQ $64, R14
	INCQ R12
	SUBQ $8, CX
	JMP  cloop

cdone:
	VEXTRACTI64X2 $3, Z26, X0
	VPEXTRQ       $1, X0, AX
	MOVQ          AX, 800(DI)
	ORQ           R11, 808(DI)
	VZEROUPPER
	RET
