#include "textflag.h"

// func filterMaskBMI2(blk *byte, w, cand uint64, keys *byte) uint64
//
// filterMaskGo with BMI1 and BMI2, keys the filter's key bytes (one a
// filterKey: wordFilter.keyBytes): TZCNT and BLSR walk the starts, SHRX
// and SHLX shift by a register without the flag dependency of SHR CL, and
// runBytes, indexed by the 8 word bits from the start, keeps the word's
// first min(length, 8) bytes, folded (filterKey). The loop is bound by the CPU's shift and
// multiply ports (TZCNT and IMUL share one): the table look-ups replace
// four of them per word (a second TZCNT, the shift of the length, BZHI,
// and the bit extraction a 64-bit key bitmap needs).
TEXT ·filterMaskBMI2(SB), NOSPLIT, $0-40
	MOVQ  blk+0(FP), SI
	MOVQ  w+8(FP), DX
	MOVQ  cand+16(FP), CX
	MOVQ  keys+24(FP), DI
	XORQ  R12, R12                 // the mask
	TESTQ CX, CX
	JZ    done
	LEAQ  ·runBytes(SB), R9
	MOVQ  $0x9E3779B97F4A7C15, R14 // filterKey's multiplier
	MOVQ  $0x8080808080808080, R15

loop:
	TZCNTQ  CX, AX      // i: the next start
	SHRXQ   AX, DX, BX  // the word bits from i on
	MOVBQZX BX, BX
	MOVQ    (R9)(BX*8), R8
	ANDQ    (SI)(AX*1), R8 // the word's first min(length, 8) bytes, folded
	MOVQ    R8, R10
	ANDQ    R15, R10
	NEGQ    R10         // CF: a byte of 0x80 or above (no key: kept)
	SBBQ    R10, R10
	IMULQ   R14, R8
	SHRQ    $50, R8     // filterKey
	MOVBQZX (DI)(R8*1), R11
	ORQ     R10, R11    // bit 0: kept
	ANDQ    $1, R11
	SHLXQ   AX, R11, R11
	ORQ     R11, R12
	BLSRQ   CX, CX
	JNZ     loop

done:
	MOVQ R12, ret+32(FP)
	RET

// func filterMaskASCIIBMI2(blk *byte, w, cand uint64, keys *byte) uint64
//
// filterMaskBMI2 for a block of ASCII (the 8 bytes after it may be
// anything: a word's bytes past its end are masked off, and a word that
// ends in the block holds no byte of the next): no word lacks a key.
TEXT ·filterMaskASCIIBMI2(SB), NOSPLIT, $0-40
	MOVQ  blk+0(FP), SI
	MOVQ  w+8(FP), DX
	MOVQ  cand+16(FP), CX
	MOVQ  keys+24(FP), DI
	XORQ  R12, R12
	TESTQ CX, CX
	JZ    adone
	LEAQ  ·runBytes(SB), R9
	MOVQ  $0x9E3779B97F4A7C15, R14

aloop:
	TZCNTQ  CX, AX
	SHRXQ   AX, DX, BX
	MOVBQZX BX, BX
	MOVQ    (R9)(BX*8), R8
	ANDQ    (SI)(AX*1), R8
	IMULQ   R14, R8
	SHRQ    $50, R8
	MOVBQZX (DI)(R8*1), R11 // 1: the key is kept
	SHLXQ   AX, R11, R11
	ORQ     R11, R12
	BLSRQ   CX, CX
	JNZ     aloop

adone:
	MOVQ R12, ret+32(FP)
	RET
