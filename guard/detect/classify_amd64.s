#include "textflag.h"

DATA wordConsts<>+0(SB)/8, $0x00275f3a2f7b6020
GLOBL wordConsts<>(SB), RODATA|NOPTR, $8

DATA joinConsts<>+0(SB)/8, $0x00000000002d3d2b
GLOBL joinConsts<>(SB), RODATA|NOPTR, $8

// classLo and classHi are VPSHUFB tables (a 16-byte table in each lane)
// whose AND is a byte's classes, a bit each: 0 the letters A-O and a-o
// (high nibble 4 or 6, low 1-15), 1 P-Z and p-z (5 or 7, low 0-10), 2 the
// digits (3, 0-9), 3 '_' (5, 15), 4 '+', '-' and '/' (2; b, d, f), 5 '='
// (3, d), 6 the apostrophe (2, 7). Bytes of 0x80 and above (high nibble
// 8-15) have none.
DATA classLo<>+0(SB)/8, $0x4707070707070706
DATA classLo<>+8(SB)/8, $0x1901310111030707
GLOBL classLo<>(SB), RODATA|NOPTR, $16
DATA classHi<>+0(SB)/8, $0x02010a0124500000
DATA classHi<>+8(SB)/8, $0x0000000000000000
GLOBL classHi<>(SB), RODATA|NOPTR, $16
DATA classMasks<>+0(SB)/8, $0x000000000000300f
GLOBL classMasks<>(SB), RODATA|NOPTR, $8

// func classifyWordsAVX2(p *byte, nb int, word, odd, digit, join *uint64)
//
// For each 64-byte block: odd gets the high bit of every byte that is 0x80
// or above or an apostrophe (0x27); word a bit for every byte that is an
// ASCII letter, digit or '_'; digit one for every ASCII digit; join one for
// every '+', '/', '=' and '-'. Each byte's classes come from two table
// look-ups by its nibbles (classLo, classHi); a class bit is moved to the
// byte's top bit by a 16-bit shift (the bits it moves across bytes land
// below the top one) or tested for by a compare.
TEXT ·classifyWordsAVX2(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ word+16(FP), DI
	MOVQ odd+24(FP), R8
	MOVQ digit+32(FP), R9
	MOVQ join+40(FP), R10

	// The constants are broadcast from memory: a legacy-SSE MOVQ into
	// an X register after a VEX instruction has dirtied the upper halves
	// costs a state transition (measured at ~0.5 µs on this VM).
	VBROADCASTI128 classLo<>(SB), Y12
	VBROADCASTI128 classHi<>(SB), Y13
	VPBROADCASTB   classMasks<>+0(SB), Y14 // 0x0f: the low nibble; the word classes
	VPBROADCASTB   classMasks<>+1(SB), Y15 // 0x30: the join classes
	VPXOR          Y11, Y11, Y11           // zero

loop:
	TESTQ CX, CX
	JZ    done
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1

	// The classes of each half.
	VPAND    Y14, Y0, Y2
	VPSHUFB  Y2, Y12, Y2
	VPSRLW   $4, Y0, Y3
	VPAND    Y14, Y3, Y3
	VPSHUFB  Y3, Y13, Y3
	VPAND    Y3, Y2, Y2 // classes of Y0
	VPAND    Y14, Y1, Y4
	VPSHUFB  Y4, Y12, Y4
	VPSRLW   $4, Y1, Y5
	VPAND    Y14, Y5, Y5
	VPSHUFB  Y5, Y13, Y5
	VPAND    Y5, Y4, Y4 // classes of Y1

	// odd: 0x80 or above, or an apostrophe (class 6).
	VPSLLW    $1, Y2, Y3
	VPOR      Y0, Y3, Y3
	VPMOVMSKB Y3, AX
	VPSLLW    $1, Y4, Y5
	VPOR      Y1, Y5, Y5
	VPMOVMSKB Y5, BX
	SHLQ      $32, BX
	ORQ       BX, AX
	MOVQ      AX, (R8)

	// digits (class 2).
	VPSLLW    $5, Y2, Y3
	VPMOVMSKB Y3, AX
	VPSLLW    $5, Y4, Y5
	VPMOVMSKB Y5, BX
	SHLQ      $32, BX
	ORQ       BX, AX
	MOVQ      AX, (R9)

	// word bytes (classes 0-3).
	VPAND     Y14, Y2, Y3
	VPCMPGTB  Y11, Y3, Y3
	VPMOVMSKB Y3, AX
	VPAND     Y14, Y4, Y5
	VPCMPGTB  Y11, Y5, Y5
	VPMOVMSKB Y5, BX
	SHLQ      $32, BX
	ORQ       BX, AX
	MOVQ      AX, (DI)

	// join bytes (classes 4 and 5).
	VPAND     Y15, Y2, Y3
	VPCMPGTB  Y11, Y3, Y3
	VPMOVMSKB Y3, AX
	VPAND     Y15, Y4, Y5
	VPCMPGTB  Y11, Y5, Y5
	VPMOVMSKB Y5, BX
	SHLQ      $32, BX
	ORQ       BX, AX
	MOVQ      AX, (R10)

	ADDQ $64, SI
	ADDQ $8, DI
	ADDQ $8, R8
	ADDQ $8, R9
	ADDQ $8, R10
	DECQ CX
	JMP  loop

done:
	VZEROUPPER
	RET

DATA keyConsts<>+0(SB)/8, $0x00002f2b3a2f7b60
GLOBL keyConsts<>(SB), RODATA|NOPTR, $8

// func keyMasksAVX2(p *byte, nb int, m *uint64)
//
// A bit for every ASCII letter, digit, '+' and '/' (signed compares: bytes
// of 0x80 and above are negative and never match).
TEXT ·keyMasksAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ m+16(FP), DI
	VPBROADCASTB wordConsts<>+0(SB), Y10 // 0x20
	VPBROADCASTB keyConsts<>+0(SB), Y11  // 'a'-1
	VPBROADCASTB keyConsts<>+1(SB), Y12  // 'z'+1
	VPBROADCASTB keyConsts<>+2(SB), Y13  // '0'-1, also '/'
	VPBROADCASTB keyConsts<>+3(SB), Y14  // '9'+1
	VPBROADCASTB keyConsts<>+4(SB), Y15  // '+'

kloop:
	TESTQ CX, CX
	JZ    kdone
	VMOVDQU   (SI), Y0
	VPOR      Y10, Y0, Y2
	VPCMPGTB  Y11, Y2, Y3
	VPCMPGTB  Y2, Y12, Y4
	VPAND     Y3, Y4, Y3
	VPCMPGTB  Y13, Y0, Y4
	VPCMPGTB  Y0, Y14, Y5
	VPAND     Y4, Y5, Y4
	VPOR      Y4, Y3, Y3
	VPCMPEQB  Y13, Y0, Y4
	VPOR      Y4, Y3, Y3
	VPCMPEQB  Y15, Y0, Y4
	VPOR      Y4, Y3, Y3
	VPMOVMSKB Y3, AX
	VMOVDQU   32(SI), Y1
	VPOR      Y10, Y1, Y2
	VPCMPGTB  Y11, Y2, Y3
	VPCMPGTB  Y2, Y12, Y4
	VPAND     Y3, Y4, Y3
	VPCMPGTB  Y13, Y1, Y4
	VPCMPGTB  Y1, Y14, Y5
	VPAND     Y4, Y5, Y4
	VPOR      Y4, Y3, Y3
	VPCMPEQB  Y13, Y1, Y4
	VPOR      Y4, Y3, Y3
	VPCMPEQB  Y15, Y1, Y4
	VPOR      Y4, Y3, Y3
	VPMOVMSKB Y3, BX
	SHLQ      $32, BX
	ORQ       BX, AX
	MOVQ      AX, (DI)
	ADDQ      $64, SI
	ADDQ      $8, DI
	DECQ      CX
	JMP       kloop

kdone:
	VZEROUPPER
	RET

// func indexLitAVX2(p *byte, blocks int, lit *[4]byte, m int) int
TEXT ·indexLitAVX2(SB), NOSPLIT, $0-40
	MOVQ p+0(FP), SI
	MOVQ blocks+8(FP), CX
	MOVQ lit+16(FP), R8
	MOVQ m+24(FP), DX
	VPBROADCASTB 0(R8), Y1
	VPBROADCASTB 1(R8), Y2
	VPBROADCASTB 2(R8), Y3
	VPBROADCASTB 3(R8), Y4
	// Y5, Y6: all ones where the literal has no third or fourth byte,
	// so that position matches anything.
	VPXOR    Y5, Y5, Y5
	VPXOR    Y6, Y6, Y6
	VPCMPEQB Y0, Y0, Y0
	CMPQ     DX, $4
	JGE      lsetup
	VMOVDQU  Y0, Y6
	CMPQ     DX, $3
	JGE      lsetup
	VMOVDQU  Y0, Y5

lsetup:
	XORQ BX, BX

lloop:
	TESTQ     CX, CX
	JZ        lnone
	VPCMPEQB  0(SI)(BX*1), Y1, Y7
	VPCMPEQB  1(SI)(BX*1), Y2, Y8
	VPAND     Y8, Y7, Y7
	VPCMPEQB  2(SI)(BX*1), Y3, Y8
	VPOR      Y5, Y8, Y8
	VPAND     Y8, Y7, Y7
	VPCMPEQB  3(SI)(BX*1), Y4, Y8
	VPOR      Y6, Y8, Y8
	VPAND     Y8, Y7, Y7
	VPMOVMSKB Y7, AX
	TESTL     AX, AX
	JNZ       lfound
	ADDQ      $32, BX
	DECQ      CX
	JMP       lloop

lfound:
	BSFL AX, AX
	ADDQ BX, AX
	MOVQ AX, ret+32(FP)
	VZEROUPPER
	RET

lnone:
	MOVQ $-1, ret+32(FP)
	VZEROUPPER
	RET


// func asciiBlocksAVX2(p *byte, nb int) int
//
// 128 times the number of leading 128-byte blocks at p with no byte of
// 0x80 or above (the sign bits of four 32-byte loads or-ed together).
TEXT ·asciiBlocksAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ nb+8(FP), CX
	XORQ AX, AX

asciiloop:
	TESTQ     CX, CX
	JZ        asciidone
	VMOVDQU   (SI), Y0
	VPOR      32(SI), Y0, Y0
	VPOR      64(SI), Y0, Y0
	VPOR      96(SI), Y0, Y0
	VPMOVMSKB Y0, DX
	TESTL     DX, DX
	JNZ       asciidone
	ADDQ      $128, SI
	ADDQ      $128, AX
	DECQ      CX
	JMP       asciiloop

asciidone:
	VZEROUPPER
	MOVQ AX, ret+16(FP)
	RET

// func classifyWordsAVX512(p *byte, nb int, word, odd, digit, join *uint64, tab *[128]byte)
//
// classifyWordsAVX2 a block at a time with AVX-512 (F, BW, VBMI): each
// byte's classes from one look-up in the 128-byte table tab (VPERMI2B,
// classTab512: bit 7 word, 6 digit, 0 join, 1 apostrophe; zeroed for bytes
// of 0x80 and above), each bitmap from a mask move or a test into a mask
// register, stored from there.
TEXT ·classifyWordsAVX512(SB), NOSPLIT, $0-56
	MOVQ p+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ word+16(FP), DI
	MOVQ odd+24(FP), R8
	MOVQ digit+32(FP), R9
	MOVQ join+40(FP), R10
	MOVQ tab+48(FP), DX
	VMOVDQU64    (DX), Z16
	VMOVDQU64    64(DX), Z17
	MOVL         $0x40, AX
	VPBROADCASTB AX, Z18 // digit
	MOVL         $0x01, AX
	VPBROADCASTB AX, Z19 // join
	MOVL         $0x02, AX
	VPBROADCASTB AX, Z20 // apostrophe

zloop:
	TESTQ      CX, CX
	JZ         zdone
	VMOVDQU64  (SI), Z0
	VPMOVB2M   Z0, K1 // 0x80 and above
	KNOTQ      K1, K2
	VMOVDQA64  Z0, Z1
	VPERMI2B.Z Z17, Z16, K2, Z1
	VPMOVB2M   Z1, K3
	KMOVQ      K3, (DI)
	VPTESTMB   Z18, Z1, K4
	KMOVQ      K4, (R9)
	VPTESTMB   Z19, Z1, K5
	KMOVQ      K5, (R10)
	VPTESTMB   Z20, Z1, K6
	KORQ       K1, K6, K6
	KMOVQ      K6, (R8)
	ADDQ       $64, SI
	ADDQ       $8, DI
	ADDQ       $8, R8
	ADDQ       $8, R9
	ADDQ       $8, R10
	DECQ       CX
	JMP        zloop

zdone:
	VZEROUPPER
	RET
