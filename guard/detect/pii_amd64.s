#include "textflag.h"

// Broadcast sources: 0x20 (fold to lower case, also ' '), '9'+1 (also ':'),
// 'z'+1, 'w', '0'-1 (also '/'), 'a'-1, '.', '-'.
DATA piiConsts<>+0(SB)/8, $0x2d2e602f777b3a20
GLOBL piiConsts<>(SB), RODATA|NOPTR, $8

// piiRare1 and piiRare2 are VPSHUFB tables indexed by a byte's low nibble:
// a byte equals its entry in one of them when it is one of the rare bytes
// ( ) : + / and tab _ @ (0x80 where no byte of the nibble is; a byte of
// 0x80 and above looks up 0 and equals no entry).
DATA piiRare1<>+0(SB)/8, $0x8080808080808080
DATA piiRare1<>+8(SB)/8, $0x2f8080802b3a2928
GLOBL piiRare1<>(SB), RODATA|NOPTR, $16

DATA piiRare2<>+0(SB)/8, $0x8080808080808040
DATA piiRare2<>+8(SB)/8, $0x5f80808080800980
GLOBL piiRare2<>(SB), RODATA|NOPTR, $16

// Whole vectors of '+', '_' and '@' for memory operands.
DATA piiVec<>+0(SB)/8, $0x2b2b2b2b2b2b2b2b
DATA piiVec<>+8(SB)/8, $0x2b2b2b2b2b2b2b2b
DATA piiVec<>+16(SB)/8, $0x2b2b2b2b2b2b2b2b
DATA piiVec<>+24(SB)/8, $0x2b2b2b2b2b2b2b2b
DATA piiVec<>+32(SB)/8, $0x5f5f5f5f5f5f5f5f
DATA piiVec<>+40(SB)/8, $0x5f5f5f5f5f5f5f5f
DATA piiVec<>+48(SB)/8, $0x5f5f5f5f5f5f5f5f
DATA piiVec<>+56(SB)/8, $0x5f5f5f5f5f5f5f5f
DATA piiVec<>+64(SB)/8, $0x4040404040404040
DATA piiVec<>+72(SB)/8, $0x4040404040404040
DATA piiVec<>+80(SB)/8, $0x4040404040404040
DATA piiVec<>+88(SB)/8, $0x4040404040404040
GLOBL piiVec<>(SB), RODATA|NOPTR, $96

// PIICOMMON classifies the 32 bytes in Y0 into the 32-bit halves at offset
// O of the common fields of the piiBlock at DI (see piiBlock), and sets R
// to the bytes that are rare (one of ( ) : + / tab _ @). Signed compares:
// bytes of 0x80 and above are negative and fall outside every range.
#define PIICOMMON(O, R) \
	VPCMPGTB  Y11, Y0, Y2; \
	VPCMPGTB  Y0, Y14, Y3; \
	VPAND     Y2, Y3, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+0(DI); \
	VPOR      Y15, Y0, Y3; \
	VPCMPEQB  Y12, Y3, Y4; \
	VPMOVMSKB Y4, AX; \
	MOVL      AX, O+40(DI); \
	VPCMPGTB  Y10, Y3, Y4; \
	VPCMPGTB  Y3, Y13, Y3; \
	VPAND     Y3, Y4, Y3; \
	VPOR      Y2, Y3, Y3; \
	VPMOVMSKB Y3, AX; \
	MOVL      AX, O+8(DI); \
	VPCMPEQB  Y9, Y0, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+16(DI); \
	VPCMPEQB  Y8, Y0, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+24(DI); \
	VPCMPEQB  Y15, Y0, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+32(DI); \
	VPSHUFB   Y0, Y7, Y2; \
	VPCMPEQB  Y0, Y2, Y2; \
	VPSHUFB   Y0, Y6, Y3; \
	VPCMPEQB  Y0, Y3, Y3; \
	VPOR      Y2, Y3, R

// PIIRARE classifies the 32 bytes in Y0, whose rare bytes are R, into the
// 32-bit halves at offset O of the rare fields of the piiBlock at DI.
#define PIIRARE(O, R) \
	VPCMPEQB  Y14, Y0, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+48(DI); \
	VPCMPEQB  piiVec<>+0(SB), Y0, Y3; \
	VPMOVMSKB Y3, AX; \
	MOVL      AX, O+56(DI); \
	VPOR      Y2, Y3, Y2; \
	VPCMPEQB  piiVec<>+64(SB), Y0, Y3; \
	VPMOVMSKB Y3, AX; \
	MOVL      AX, O+88(DI); \
	VPOR      Y3, Y2, Y2; \
	VPANDN    R, Y2, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+80(DI); \
	VPCMPEQB  piiVec<>+32(SB), Y0, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+64(DI); \
	VPCMPEQB  Y11, Y0, Y2; \
	VPMOVMSKB Y2, AX; \
	MOVL      AX, O+72(DI)

// func piiMasksAVX2(p *byte, nb int, m *piiBlock)
//
// piiMasksGo for the nb 64-byte blocks at p: the common classes and the
// rare ones of every block. (Computing the rare ones only for a block with
// a rare byte was 10 % slower on texts the branch predictor has not seen:
// in a chat most blocks have a ':' or a parenthesis, unpredictably.)
TEXT ·piiMasksAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ m+16(FP), DI
	VPBROADCASTB piiConsts<>+0(SB), Y15 // 0x20, ' '
	VPBROADCASTB piiConsts<>+1(SB), Y14 // '9'+1, ':'
	VPBROADCASTB piiConsts<>+2(SB), Y13 // 'z'+1
	VPBROADCASTB piiConsts<>+3(SB), Y12 // 'w'
	VPBROADCASTB piiConsts<>+4(SB), Y11 // '0'-1, '/'
	VPBROADCASTB piiConsts<>+5(SB), Y10 // 'a'-1
	VPBROADCASTB piiConsts<>+6(SB), Y9  // '.'
	VPBROADCASTB piiConsts<>+7(SB), Y8  // '-'
	VBROADCASTI128 piiRare1<>(SB), Y7
	VBROADCASTI128 piiRare2<>(SB), Y6

ploop:
	TESTQ CX, CX
	JZ    pdone
	VMOVDQU (SI), Y0
	PIICOMMON(0, Y5)
	PIIRARE(0, Y5)
	VMOVDQU 32(SI), Y0
	PIICOMMON(4, Y1)
	PIIRARE(4, Y1)
	ADDQ $64, SI
	ADDQ $96, DI
	DECQ CX
	JMP  ploop

pdone:
	VZEROUPPER
	RET

// func piiMasksAVX512(p *byte, nb int, m *piiBlock, c *piiConsts512)
//
// piiMasksGo for the nb 64-byte blocks at p, a block at a time: each byte's
// classes are looked up (VPERMI2B, two 128-entry tables: the bits of
// piiBlock's fields 0-7 and 8-11, zero for bytes of 0x80 and above), the
// 8x8 bit matrices of each qword transposed (VGF2P8AFFINEQB with the class
// bytes as the matrix: byte k of a qword becomes the bits of class k of
// its eight bytes, which are reversed first so that bit i is byte i), and
// the bytes of the eight qwords transposed (VPERMB) into the fields.
TEXT ·piiMasksAVX512(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ m+16(FP), DI
	MOVQ c+24(FP), DX
	VMOVDQU64    0(DX), Z16   // fields 0-7: bytes 0-63
	VMOVDQU64    64(DX), Z17  // bytes 64-127
	VMOVDQU64    128(DX), Z18 // fields 8-11: bytes 0-63
	VMOVDQU64    192(DX), Z19 // bytes 64-127
	VMOVDQU64    256(DX), Z20 // reverse each qword's bytes
	VMOVDQU64    320(DX), Z21 // transpose qwords and bytes
	VPBROADCASTQ 384(DX), Z22 // byte k: 1<<k
	VPTERNLOGD   $0xff, Z23, Z23, Z23 // all ones
	MOVQ         $15, AX
	KMOVQ        AX, K3 // fields 8-11

zloop:
	TESTQ CX, CX
	JZ    zdone
	VMOVDQU64      (SI), Z0
	VPSHUFB        Z20, Z0, Z0
	VPCMPGTB       Z23, Z0, K2 // ASCII bytes
	VMOVDQA64      Z0, Z1
	VPERMI2B.Z     Z17, Z16, K2, Z0
	VPERMI2B.Z     Z19, Z18, K2, Z1
	VGF2P8AFFINEQB $0, Z0, Z22, Z0
	VGF2P8AFFINEQB $0, Z1, Z22, Z1
	VPERMB         Z0, Z21, Z0
	VPERMB         Z1, Z21, Z1
	VMOVDQU64      Z0, (DI)
	VMOVDQU64      Z1, K3, 64(DI)
	ADDQ           $64, SI
	ADDQ           $96, DI
	DECQ           CX
	JMP            zloop

zdone:
	VZEROUPPER
	RET
