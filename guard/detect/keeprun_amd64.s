#include "textflag.h"

// Offsets into asciiRun (TestASCIIRunLayout holds them to the struct).
#define R_W 0
#define R_ODD 128
#define R_DIGIT 256
#define R_JOIN 384
#define R_KM 512
#define R_EN 640
#define R_CARRY 768
#define R_PREV 896
#define R_START 904
#define R_ST 912
#define R_EN2 920
#define R_HOOK 928
#define R_DIGITS 936
#define R_AVX 944
#define R_SCR 1080

// KSLOT(k) is one candidate of the scalar key test, without a branch:
// its key byte (1: kept) into r.scr[k]. Past the last candidate (CX 0:
// TZCNT 64) it reads the 8 bytes after the block, and its byte is not
// used.
#define KSLOT(k) \
	TZCNTQ  CX, AX \
	SHRXQ   AX, DX, BX \
	MOVBQZX BX, BX \
	MOVQ    (R15)(BX*8), BX \
	ANDQ    (R11)(AX*1), BX \
	IMULQ   R14, BX \
	SHRQ    $50, BX \
	MOVBQZX (DI)(BX*1), BX \
	MOVB    BX, (R_SCR+k)(R8) \
	BLSRQ   CX, CX

DATA eight<>+0(SB)/8, $8
GLOBL eight<>(SB), RODATA|NOPTR, $8

// The AVX-512 key test's constants: the bytes 0-63 (the offsets
// VPCOMPRESSB packs), byte j of each qword k: k (which start a qword
// takes), and j (its bytes from the start).
DATA keyConsts<>+0(SB)/8, $0x0706050403020100
DATA keyConsts<>+8(SB)/8, $0x0f0e0d0c0b0a0908
DATA keyConsts<>+16(SB)/8, $0x1716151413121110
DATA keyConsts<>+24(SB)/8, $0x1f1e1d1c1b1a1918
DATA keyConsts<>+32(SB)/8, $0x2726252423222120
DATA keyConsts<>+40(SB)/8, $0x2f2e2d2c2b2a2928
DATA keyConsts<>+48(SB)/8, $0x3736353433323130
DATA keyConsts<>+56(SB)/8, $0x3f3e3d3c3b3a3938
DATA keyConsts<>+64(SB)/8, $0x0000000000000000
DATA keyConsts<>+72(SB)/8, $0x0101010101010101
DATA keyConsts<>+80(SB)/8, $0x0202020202020202
DATA keyConsts<>+88(SB)/8, $0x0303030303030303
DATA keyConsts<>+96(SB)/8, $0x0404040404040404
DATA keyConsts<>+104(SB)/8, $0x0505050505050505
DATA keyConsts<>+112(SB)/8, $0x0606060606060606
DATA keyConsts<>+120(SB)/8, $0x0707070707070707
DATA keyConsts<>+128(SB)/8, $0x0706050403020100
DATA keyConsts<>+136(SB)/8, $0x0706050403020100
DATA keyConsts<>+144(SB)/8, $0x0706050403020100
DATA keyConsts<>+152(SB)/8, $0x0706050403020100
DATA keyConsts<>+160(SB)/8, $0x0706050403020100
DATA keyConsts<>+168(SB)/8, $0x0706050403020100
DATA keyConsts<>+176(SB)/8, $0x0706050403020100
DATA keyConsts<>+184(SB)/8, $0x0706050403020100
GLOBL keyConsts<>(SB), RODATA|NOPTR, $192

// func keepRunBMI2(s *byte, gbase int, r *asciiRun, keys *byte, bi, end int) int
//
// keepBlock for the blocks bi, bi+1, … of the group at s+gbase, while
// they hold only ASCII bytes and no apostrophe (r.odd is 0) and before
// block end; it returns the first block it did not do. For each block it
// stores the kept word starts (r.km), the word ends (r.en) and the start
// of the word that runs in from the block before when it is kept (r.carry,
// else -1), carrying r.prev and r.start from block to block as
// appendWordsFiltered does. Every block it does has 8 readable bytes after
// it. It needs BMI1 and BMI2; with r.avx set, AVX-512 F, BW, DQ, VL, VBMI
// and VBMI2, for the key test eight words at a time.
TEXT ·keepRunBMI2(SB), NOSPLIT, $0-56
	MOVQ s+0(FP), SI
	MOVQ r+16(FP), R8
	MOVQ keys+24(FP), DI
	MOVQ bi+32(FP), R9
	MOVQ end+40(FP), R10
	MOVQ gbase+8(FP), R11
	ADDQ SI, R11
	MOVQ R9, AX
	SHLQ $6, AX
	ADDQ AX, R11                   // the block's bytes
	LEAQ ·runBytes(SB), R15
	MOVQ $0xDFDFDFDFDFDFDFDF, R13  // filterKey's fold
	MOVQ $0x9E3779B97F4A7C15, R14
	CMPQ R_AVX(R8), $0
	JE   block
	VMOVDQU64    keyConsts<>+0(SB), Z16   // the offsets 0-63
	VMOVDQU64    keyConsts<>+64(SB), Z17  // qword k: the k-th start
	VMOVDQU64    keyConsts<>+128(SB), Z18 // its bytes 0-7
	MOVL         $0x08080808, AX
	VPBROADCASTD AX, Z19                  // the next eight starts
	VPBROADCASTQ R13, Z20                 // filterKey's fold
	VPBROADCASTQ R14, Z21                 // and multiplier
	MOVL         $1, AX
	VPBROADCASTQ AX, Z22
	MOVL         $0xff, AX
	VPBROADCASTD AX, Y23                  // keyBytes' byte of a dword

block:
	CMPQ R9, end+40(FP)
	JGE  out
	MOVQ R_ODD(R8)(R9*8), AX
	TESTQ AX, AX
	JNZ  out
	MOVQ R_W(R8)(R9*8), DX     // w
	MOVQ R_PREV(R8), AX        // prev: 0 or 1
	LEAQ (AX)(DX*2), BX        // before: w<<1 | prev
	MOVQ BX, CX
	NOTQ CX
	ANDQ DX, CX                // st: w &^ before
	MOVQ DX, R12
	NOTQ R12
	ANDQ BX, R12               // en: before &^ w
	MOVQ R12, R_EN(R8)(R9*8)
	MOVQ $-1, R_CARRY(R8)(R9*8)
	MOVQ CX, R_ST(R8)
	TESTQ AX, AX
	JZ   nocarry
	TESTQ R12, R12
	JZ   nocarry

	// The word that runs in, from r.start to the block's first end.
	MOVQ   R_START(R8), AX     // ws
	TZCNTQ R12, BX             // we - base
	MOVQ   R_JOIN(R8)(R9*8), CX
	SHRXQ  BX, CX, CX
	ANDQ   $1, CX              // a join byte at we
	ADDQ   R11, BX
	SUBQ   SI, BX
	SUBQ   AX, BX              // the length, we - ws
	CMPQ   BX, $12
	JLT    short
	MOVQ   $1, CX              // 12 bytes or longer

short:
	ANDQ    R_HOOK(R8), CX     // the blob hook reads it: kept
	CMPQ    BX, $8
	CMOVQGT eight<>(SB), BX
	SHLQ    $3, BX
	MOVQ    (SI)(AX*1), DX
	BZHIQ   BX, DX, DX         // its first min(length, 8) bytes
	MOVQ    $0x8080808080808080, BX
	ANDQ    DX, BX
	NEGQ    BX                 // CF: a byte of 0x80 or above (no key: kept)
	SBBQ    BX, BX
	ANDQ    $1, BX
	ANDQ    R13, DX
	IMULQ   R14, DX
	SHRQ    $50, DX
	MOVBQZX (DI)(DX*1), DX
	ORQ     BX, DX             // kept by its key, or for having none
	MOVBQZX (SI)(AX*1), BX
	SUBQ    $'0', BX
	CMPQ    BX, $10
	JAE     notdigit
	ANDQ    R_DIGITS(R8), DX   // digit-led: kept only if a first word is

notdigit:
	ORQ     CX, DX
	JZ      dropped
	MOVQ    AX, R_CARRY(R8)(R9*8)

dropped:
	BLSRQ R12, R12

nocarry:
	MOVQ R12, R_EN2(R8)
	MOVQ R_ST(R8), CX
	MOVQ R_W(R8)(R9*8), DX
	MOVQ DX, AX
	SHRQ $63, AX
	MOVQ AX, R_PREV(R8)        // the last word runs on
	JZ   cand
	TESTQ CX, CX
	JZ   cand
	LZCNTQ CX, BX
	XORQ   $63, BX             // its start
	BTRQ   BX, CX
	MOVQ   CX, R_ST(R8)
	ADDQ   R11, BX
	SUBQ   SI, BX
	MOVQ   BX, R_START(R8)

cand:
	CMPQ R_DIGITS(R8), $0
	JNE  kstart
	MOVQ R_DIGIT(R8)(R9*8), AX
	NOTQ AX
	ANDQ AX, CX                // digit-led words start no phrase

kstart:
	// filterMaskASCIIBMI2's loop: CX the candidates, DX the word bytes.
	XORQ  R12, R12
	TESTQ CX, CX
	JZ    hook
	CMPQ  R_AVX(R8), $0
	JE    kslots

	// With AVX-512, eight candidates at a time: their offsets packed
	// (VPCOMPRESSB), each broadcast to a qword with 0-7 added, the
	// block's bytes and word-byte flags from there (VPERMB: every word
	// ends in the block, before any offset wraps), the run of word bytes
	// from the start (f &^ (f+1)), folded, hashed, and the key bytes
	// gathered (a dword each: keyPad); the kept bits go back to their
	// starts with PDEP.
	KMOVQ         CX, K1
	VPCOMPRESSB.Z Z16, K1, Z24
	KMOVQ         DX, K2
	VPMOVM2B      K2, Z25
	VMOVDQU64     (R11), Z26
	VMOVDQA64     Z17, Z27

	// Sixteen candidates an iteration, in two independent halves: a
	// block has 8 to 16 of them in prose, so the loop's exit is
	// taken on the first iteration but for a rare block (more than 16),
	// where testing eight at a time left it to the text.
vloop:
	VPADDB     Z19, Z27, Z9         // the second half's starts
	VPERMB     Z24, Z27, Z28
	VPERMB     Z24, Z9, Z8
	VPADDB     Z18, Z28, Z28
	VPADDB     Z18, Z8, Z8
	VPERMB     Z26, Z28, Z29        // the 8 bytes from each start
	VPERMB     Z26, Z8, Z7
	VPERMB     Z25, Z28, Z30        // which of them are word bytes
	VPERMB     Z25, Z8, Z6
	VPADDQ     Z22, Z30, Z31
	VPADDQ     Z22, Z6, Z5
	VPANDNQ    Z30, Z31, Z31        // the word's first min(length, 8)
	VPANDNQ    Z6, Z5, Z5
	VPTERNLOGQ $0x80, Z20, Z29, Z31 // its bytes, folded
	VPTERNLOGQ $0x80, Z20, Z7, Z5
	VPMULLQ    Z21, Z31, Z31
	VPMULLQ    Z21, Z5, Z5
	VPSRLQ     $50, Z31, Z31        // filterKey
	VPSRLQ     $50, Z5, Z5
	KXNORB     K3, K3, K3
	KXNORB     K5, K5, K5
	VPGATHERQD (DI)(Z31*1), K3, Y29
	VPGATHERQD (DI)(Z5*1), K5, Y7
	VPTESTMD   Y23, Y29, K4         // kept
	VPTESTMD   Y23, Y7, K6
	KUNPCKBW   K4, K6, K4           // the sixteen: K6 high, K4 low
	KMOVW      K4, BX
	PDEPQ      CX, BX, BX           // at the starts
	ORQ        BX, R12
	MOVL       $0xffff, BX
	PDEPQ      CX, BX, BX           // the sixteen starts
	ANDNQ      CX, BX, CX
	VPADDB     Z19, Z9, Z27
	TESTQ      CX, CX
	JNZ        vloop
	JMP        hook

	// The scalar key test: ten candidates without a branch (a prose
	// block has 8 to 16; a loop over them had its exit mispredicted
	// about once a block on text the predictor has not seen; ten
	// slots measured best against 8, 9, 11, 12 and 14), their key
	// bytes packed into bits (VPMOVMSKB) and put back on their starts
	// (PDEP); the rest, if any, one at a time.
kslots:
	MOVQ    CX, R10
	KSLOT(0)
	KSLOT(1)
	KSLOT(2)
	KSLOT(3)
	KSLOT(4)
	KSLOT(5)
	KSLOT(6)
	KSLOT(7)
	KSLOT(8)
	KSLOT(9)
	VMOVDQU   R_SCR(R8), X0
	VPSLLW    $7, X0, X0
	VPMOVMSKB X0, BX
	ANDQ      $0x3ff, BX
	PDEPQ     R10, BX, BX
	ORQ       BX, R12
	TESTQ     CX, CX
	JZ        hook

kloop:
	TZCNTQ  CX, AX
	SHRXQ   AX, DX, BX
	MOVBQZX BX, BX
	MOVQ    (R15)(BX*8), BX
	ANDQ    (R11)(AX*1), BX
	IMULQ   R14, BX
	SHRQ    $50, BX
	MOVBQZX (DI)(BX*1), BX
	SHLXQ   AX, BX, BX
	ORQ     BX, R12
	BLSRQ   CX, CX
	JNZ     kloop

hook:
	CMPQ R_HOOK(R8), $0
	JE   store
	// Words the blob hook reads: 12 bytes or longer, or followed by a
	// join byte; kept in runs of blobRuns.
	MOVQ DX, AX
	SHRQ $1, AX
	ANDQ DX, AX
	MOVQ AX, BX
	SHRQ $2, BX
	ANDQ BX, AX
	MOVQ AX, BX
	SHRQ $4, BX
	ANDQ BX, AX
	MOVQ AX, BX
	SHRQ $4, BX
	ANDQ BX, AX                // runs of 12 word bytes from here
	ANDQ R_ST(R8), AX          // hk
	// The words that end on a join byte: r.st and r.en2 hold the
	// block's starts and ends without the word that runs in or on, so
	// the k-th start's word has the k-th end: the ends on a join byte
	// numbered among the ends (PEXT), and the starts of those numbers
	// (PDEP).
	MOVQ  R_EN2(R8), CX
	MOVQ  R_JOIN(R8)(R9*8), BX
	ANDQ  CX, BX               // ends on a join byte
	PEXTQ CX, BX, BX
	PDEPQ R_ST(R8), BX, BX
	ORQ   BX, AX

hookdone:
	TESTQ AX, AX
	JZ    store
	// blobRuns(w | join), and hk & it into the mask.
	ORQ  R_JOIN(R8)(R9*8), DX  // b
	MOVQ DX, CX
	SHRQ $1, CX
	ANDQ DX, CX
	MOVQ CX, BX
	SHRQ $2, BX
	ANDQ BX, CX
	MOVQ CX, BX
	SHRQ $4, BX
	ANDQ BX, CX
	MOVQ CX, BX
	SHRQ $8, BX
	ANDQ BX, CX
	MOVQ CX, BX
	SHRQ $4, BX
	ANDQ BX, CX                // the starts of 20 bytes of b
	MOVQ CX, BX
	SHLQ $1, BX
	ORQ  BX, CX
	MOVQ CX, BX
	SHLQ $2, BX
	ORQ  BX, CX
	MOVQ CX, BX
	SHLQ $4, BX
	ORQ  BX, CX
	MOVQ CX, BX
	SHLQ $8, BX
	ORQ  BX, CX
	MOVQ CX, BX
	SHLQ $4, BX
	ORQ  BX, CX                // and every byte they cover
	LEAQ 1(DX), BX
	XORQ DX, BX
	SHRQ $1, BX
	ORQ  BX, CX                // the run at bit 0
	NOTQ DX
	LZCNTQ DX, DX              // the length of the run at bit 63
	MOVQ $-1, BX
	SHRXQ DX, BX, BX
	NOTQ BX
	ORQ  BX, CX                // that run (all of b at 64: covered above)
	ANDQ CX, AX
	ORQ  AX, R12

store:
	MOVQ R12, R_KM(R8)(R9*8)
	INCQ R9
	ADDQ $64, R11
	JMP  block

out:
	VZEROUPPER
	MOVQ R9, ret+48(FP)
	RET
