#include "textflag.h"

// func filterMaskBMI2(blk *byte, w, cand uint64, starts *uint64) uint64
//
// filterMaskGo with BMI1 and BMI2: TZCNT and BLSR walk the starts, SHRX and
// SHLX shift by a register without the flag dependency of SHR CL, and
// BZHI keeps a word's first min(length, 8) bytes (index 64: all of them).
TEXT ·filterMaskBMI2(SB), NOSPLIT, $0-40
	MOVQ blk+0(FP), SI
	MOVQ w+8(FP), DX
	MOVQ cand+16(FP), CX
	MOVQ starts+24(FP), DI
	XORQ R12, R12                 // the mask
	MOVQ $0x2020202020202020, R13 // shortKey
	MOVQ $0x9E3779B97F4A7C15, R14 // filterKey's multiplier
	MOVQ $0x8080808080808080, R15

loop:
	TESTQ  CX, CX
	JZ     done
	TZCNTQ CX, AX      // i: the next start
	BLSRQ  CX, CX
	SHRXQ  AX, DX, BX  // w >> i
	NOTQ   BX
	ORQ    $0x100, BX
	TZCNTQ BX, BX      // min(length, 8)
	SHLQ   $3, BX
	MOVQ   (SI)(AX*1), R8
	BZHIQ  BX, R8, R8  // the word's first min(length, 8) bytes
	MOVQ   R8, R9
	ANDQ   R15, R9
	NEGQ   R9          // CF: a byte of 0x80 or above (no key: kept)
	SBBQ   R10, R10
	ANDQ   $1, R10
	ORQ    R13, R8
	IMULQ  R14, R8
	SHRQ   $50, R8     // filterKey
	MOVQ   R8, R11
	SHRQ   $6, R11
	MOVQ   (DI)(R11*8), R11
	SHRXQ  R8, R11, R11 // the key's bit (SHRX takes the count mod 64)
	ANDQ   $1, R11
	ORQ    R10, R11
	SHLXQ  AX, R11, R11
	ORQ    R11, R12
	JMP    loop

done:
	MOVQ R12, ret+32(FP)
	RET

// func filterMaskASCIIBMI2(blk *byte, w, cand uint64, starts *uint64) uint64
//
// filterMaskBMI2 for a block of ASCII (the 8 bytes after it may be
// anything: a word's bytes past its end are masked off, and a word that
// ends in the block holds no byte of the next): no word lacks a key.
TEXT ·filterMaskASCIIBMI2(SB), NOSPLIT, $0-40
	MOVQ blk+0(FP), SI
	MOVQ w+8(FP), DX
	MOVQ cand+16(FP), CX
	MOVQ starts+24(FP), DI
	XORQ R12, R12
	MOVQ $0x2020202020202020, R13
	MOVQ $0x9E3779B97F4A7C15, R14

aloop:
	TESTQ  CX, CX
	JZ     adone
	TZCNTQ CX, AX
	BLSRQ  CX, CX
	SHRXQ  AX, DX, BX
	NOTQ   BX
	ORQ    $0x100, BX
	TZCNTQ BX, BX
	SHLQ   $3, BX
	MOVQ   (SI)(AX*1), R8
	BZHIQ  BX, R8, R8
	ORQ    R13, R8
	IMULQ  R14, R8
	SHRQ   $50, R8
	MOVQ   R8, R11
	SHRQ   $6, R11
	MOVQ   (DI)(R11*8), R11
	SHRXQ  R8, R11, R11
	ANDQ   $1, R11
	SHLXQ  AX, R11, R11
	ORQ    R11, R12
	JMP    aloop

adone:
	MOVQ R12, ret+32(FP)
	RET
