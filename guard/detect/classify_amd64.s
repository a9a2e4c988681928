#include "textflag.h"

DATA wordConsts<>+0(SB)/8, $0x00275f3a2f7b6020
GLOBL wordConsts<>(SB), RODATA|NOPTR, $8

DATA joinConsts<>+0(SB)/8, $0x00000000002d3d2b
GLOBL joinConsts<>(SB), RODATA|NOPTR, $8

// func classifyWordsAVX2(p *byte, nb int, word, odd, digit, join *uint64)
//
// For each 64-byte block: odd gets the high bit of every byte that is 0x80
// or above or an apostrophe (0x27); word a bit for every byte that is an
// ASCII letter, digit or '_'; digit one for every ASCII digit; join one for
// every '+', '/', '=' and '-' (signed compares: bytes of 0x80 and above are
// negative and fall outside every range; such a block is odd anyway).
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
	VPBROADCASTB wordConsts<>+0(SB), Y10 // 0x20: fold to lower case
	VPBROADCASTB wordConsts<>+1(SB), Y11 // 'a'-1
	VPBROADCASTB wordConsts<>+2(SB), Y12 // 'z'+1
	VPBROADCASTB wordConsts<>+3(SB), Y13 // '0'-1, also '/'
	VPBROADCASTB wordConsts<>+4(SB), Y14 // '9'+1
	VPBROADCASTB wordConsts<>+5(SB), Y15 // '_'
	VPBROADCASTB wordConsts<>+6(SB), Y9  // '\''
	VPBROADCASTB joinConsts<>+0(SB), Y6  // '+'
	VPBROADCASTB joinConsts<>+1(SB), Y7  // '='
	VPBROADCASTB joinConsts<>+2(SB), Y8  // '-'

loop:
	TESTQ CX, CX
	JZ    done
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1

	// odd: non-ASCII or apostrophe.
	VPCMPEQB  Y9, Y0, Y2
	VPOR      Y0, Y2, Y2
	VPMOVMSKB Y2, AX
	VPCMPEQB  Y9, Y1, Y3
	VPOR      Y1, Y3, Y3
	VPMOVMSKB Y3, BX
	SHLQ      $32, BX
	ORQ       BX, AX
	MOVQ      AX, (R8)

	// join bytes.
	VPCMPEQB  Y6, Y0, Y2
	VPCMPEQB  Y7, Y0, Y3
	VPOR      Y3, Y2, Y2
	VPCMPEQB  Y8, Y0, Y3
	VPOR      Y3, Y2, Y2
	VPCMPEQB  Y13, Y0, Y3
	VPOR      Y3, Y2, Y2
	VPMOVMSKB Y2, AX
	VPCMPEQB  Y6, Y1, Y2
	VPCMPEQB  Y7, Y1, Y3
	VPOR      Y3, Y2, Y2
	VPCMPEQB  Y8, Y1, Y3
	VPOR      Y3, Y2, Y2
	VPCMPEQB  Y13, Y1, Y3
	VPOR      Y3, Y2, Y2
	VPMOVMSKB Y2, BX
	SHLQ      $32, BX
	ORQ       BX, AX
	MOVQ      AX, (R10)

	// digits and word bytes of the first half.
	VPCMPGTB  Y13, Y0, Y4 // > '0'-1
	VPCMPGTB  Y0, Y14, Y5 // < '9'+1
	VPAND     Y4, Y5, Y4
	VPMOVMSKB Y4, DX
	VPOR      Y10, Y0, Y2
	VPCMPGTB  Y11, Y2, Y3 // > 'a'-1
	VPCMPGTB  Y2, Y12, Y5 // < 'z'+1
	VPAND     Y3, Y5, Y3
	VPOR      Y4, Y3, Y3
	VPCMPEQB  Y15, Y0, Y4
	VPOR      Y4, Y3, Y3
	VPMOVMSKB Y3, AX

	// and of the second.
	VPCMPGTB  Y13, Y1, Y4
	VPCMPGTB  Y1, Y14, Y5
	VPAND     Y4, Y5, Y4
	VPMOVMSKB Y4, BX
	SHLQ      $32, BX
	ORQ       BX, DX
	MOVQ      DX, (R9)
	VPOR      Y10, Y1, Y2
	VPCMPGTB  Y11, Y2, Y3
	VPCMPGTB  Y2, Y12, Y5
	VPAND     Y3, Y5, Y3
	VPOR      Y4, Y3, Y3
	VPCMPEQB  Y15, Y1, Y4
	VPOR      Y4, Y3, Y3
	VPMOVMSKB Y3, BX
	SHLQ      $32, BX
	ORQ       BX, AX
	MOVQ      AX, (DI)

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
