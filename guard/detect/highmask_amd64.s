#include "textflag.h"

// func highMasksAVX2(p *byte, nb int, out *uint64)
//
// out[k] = the bitmap of the bytes of 0x80 or above in the k-th of the nb
// 64-byte blocks at p (bit j for byte j): the sign bits of two 32-byte loads.
TEXT ·highMasksAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ out+16(FP), DI
	TESTQ CX, CX
	JZ   highdone

highloop:
	VMOVDQU   (SI), Y0
	VMOVDQU   32(SI), Y1
	VPMOVMSKB Y0, AX
	VPMOVMSKB Y1, BX
	SHLQ      $32, BX
	ORQ       BX, AX
	MOVQ      AX, (DI)
	ADDQ      $64, SI
	ADDQ      $8, DI
	DECQ      CX
	JNZ       highloop
	VZEROUPPER

highdone:
	RET
