#include "textflag.h"

// Broadcast sources: 0x20 (fold to lower case, also ' '), '9'+1 (also ':'),
// 'z'+1, 'f'+1, '0'-1 (also '/'), 'a'-1, '.', '-', '+', '_'.
DATA piiConsts<>+0(SB)/8, $0x2d2e602f677b3a20
DATA piiConsts<>+8(SB)/8, $0x0000000000005f2b
GLOBL piiConsts<>(SB), RODATA|NOPTR, $16

// Whole vectors of '\t', '(', ')' and 'w' for memory operands.
DATA piiVec<>+0(SB)/8, $0x0909090909090909
DATA piiVec<>+8(SB)/8, $0x0909090909090909
DATA piiVec<>+16(SB)/8, $0x0909090909090909
DATA piiVec<>+24(SB)/8, $0x0909090909090909
DATA piiVec<>+32(SB)/8, $0x2828282828282828
DATA piiVec<>+40(SB)/8, $0x2828282828282828
DATA piiVec<>+48(SB)/8, $0x2828282828282828
DATA piiVec<>+56(SB)/8, $0x2828282828282828
DATA piiVec<>+64(SB)/8, $0x2929292929292929
DATA piiVec<>+72(SB)/8, $0x2929292929292929
DATA piiVec<>+80(SB)/8, $0x2929292929292929
DATA piiVec<>+88(SB)/8, $0x2929292929292929
DATA piiVec<>+96(SB)/8, $0x7777777777777777
DATA piiVec<>+104(SB)/8, $0x7777777777777777
DATA piiVec<>+112(SB)/8, $0x7777777777777777
DATA piiVec<>+120(SB)/8, $0x7777777777777777
GLOBL piiVec<>(SB), RODATA|NOPTR, $128

// PIIHALF classifies the 32 bytes in Y0 into the 32-bit halves at offset
// O of the piiBlock at DI (see piiBlock for the fields). Signed compares:
// bytes of 0x80 and above are negative and fall outside every range.
#define PIIHALF(O) \
	VPCMPGTB  Y11, Y0, Y1; \
	VPCMPGTB  Y0, Y14, Y2; \
	VPAND     Y1, Y2, Y1; \
	VPMOVMSKB Y1, AX; \
	MOVL      AX, O+0(DI); \
	VPOR      Y15, Y0, Y2; \
	VPCMPEQB  piiVec<>+96(SB), Y2, Y3; \
	VPMOVMSKB Y3, AX; \
	MOVL      AX, O+88(DI); \
	VPCMPGTB  Y10, Y2, Y3; \
	VPCMPGTB  Y2, Y13, Y4; \
	VPAND     Y3, Y4, Y4; \
	VPCMPGTB  Y2, Y12, Y5; \
	VPAND     Y3, Y5, Y5; \
	VPMOVMSKB Y5, AX; \
	MOVL      AX, O+8(DI); \
	VPOR      Y1, Y4, Y4; \
	VPMOVMSKB Y4, AX; \
	MOVL      AX, O+16(DI); \
	VPCMPEQB  Y7, Y0, Y5; \
	VPMOVMSKB Y5, AX; \
	MOVL      AX, O+72(DI); \
	VPCMPEQB  Y9, Y0, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+24(DI); \
	VPOR      Y5, Y2, Y1; \
	VPCMPEQB  Y8, Y0, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+32(DI); \
	VPOR      Y2, Y1, Y1; \
	VPCMPEQB  Y14, Y0, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+40(DI); \
	VPCMPEQB  Y6, Y0, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+48(DI); \
	VPCMPEQB  Y15, Y0, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+56(DI); \
	VPOR      Y2, Y1, Y1; \
	VPCMPEQB  Y11, Y0, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+80(DI); \
	VPOR      Y2, Y1, Y1; \
	VPCMPEQB  piiVec<>+0(SB), Y0, Y2; \
	VPOR      Y2, Y1, Y1; \
	VPCMPEQB  piiVec<>+32(SB), Y0, Y2; \
	VPOR      Y2, Y1, Y1; \
	VPCMPEQB  piiVec<>+64(SB), Y0, Y2; \
	VPOR      Y2, Y1, Y1; \
	VPMOVMSKB Y1, AX; \
	MOVL      AX, O+64(DI)

// func piiMasksAVX2(p *byte, nb int, m *piiBlock)
//
// piiMasksGo for the nb 64-byte blocks at p.
TEXT ·piiMasksAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ m+16(FP), DI
	VPBROADCASTB piiConsts<>+0(SB), Y15 // 0x20, ' '
	VPBROADCASTB piiConsts<>+1(SB), Y14 // '9'+1, ':'
	VPBROADCASTB piiConsts<>+2(SB), Y13 // 'z'+1
	VPBROADCASTB piiConsts<>+3(SB), Y12 // 'f'+1
	VPBROADCASTB piiConsts<>+4(SB), Y11 // '0'-1, '/'
	VPBROADCASTB piiConsts<>+5(SB), Y10 // 'a'-1
	VPBROADCASTB piiConsts<>+6(SB), Y9  // '.'
	VPBROADCASTB piiConsts<>+7(SB), Y8  // '-'
	VPBROADCASTB piiConsts<>+9(SB), Y7  // '_'
	VPBROADCASTB piiConsts<>+8(SB), Y6  // '+'

ploop:
	TESTQ CX, CX
	JZ    pdone
	VMOVDQU (SI), Y0
	PIIHALF(0)
	VMOVDQU 32(SI), Y0
	PIIHALF(4)
	ADDQ $64, SI
	ADDQ $96, DI
	DECQ CX
	JMP  ploop

pdone:
	VZEROUPPER
	RET
