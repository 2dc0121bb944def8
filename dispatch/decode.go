package dispatch

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/arch/x86/x86asm"
)

// decoder is the instruction decoder, replaced by tests.
var decoder = x86asm.Decode

// decode decodes one 64-bit instruction, and endbr64 as a 4-byte NOP
// (x86asm does not know it). Every decode of this package goes
// through it: x86asm has panicked on some inputs in the past, and a panic
// here would take down the program being patched. A panic becomes an error
// wrapping ErrUnpatchable, so the function is refused and nothing changes.
func decode(b []byte) (in x86asm.Inst, err error) {
	defer func() {
		if r := recover(); r != nil {
			in, err = x86asm.Inst{}, fmt.Errorf("%w: x86asm panicked decoding % x: %v", ErrUnpatchable, head(b, maxInstLen), r)
		}
	}()
	if len(b) >= 4 && string(b[:4]) == endbr64 {
		return x86asm.Inst{Op: x86asm.NOP, Len: 4}, nil
	}
	if len(b) >= 3 && string(b[:3]) == vzeroupper {
		return x86asm.Inst{Op: x86asm.VZEROUPPER, Len: 3, Mode: 64}, nil
	}
	if vexNoModRM(b) {
		return x86asm.Inst{}, fmt.Errorf("%w: VEX 0F 77 form % x other than vzeroupper (x86asm misreads its length)", ErrUnpatchable, head(b, 3))
	}
	return decoder(b, 64)
}

// known remembers the instructions decodeKnown has decoded, by their
// bytes with the PC-relative field x86asm places (PCRel, PCRelOff: a
// branch's rel, a legacy-encoded RIP-relative displacement) left out:
// x86asm reads that field as a number, decides nothing by it, and only an
// immediate follows it. Forms x86asm gives no PCRel (VEX or EVEX operands
// encoded RIP-relative, EIP-relative ones) are keyed by all their bytes.
// x86asm finds an opcode by a linear search of its tables, close to a
// microsecond an instruction, and every first Set decodes its whole
// function; compiled Go repeats most encodings (spills, prologues, calls,
// epilogues), so a later Set finds most of its instructions here.
var known struct {
	sync.Mutex
	// The shapes of known instructions: by first byte for one-byte
	// instructions and those whose PC-relative field starts at byte 1
	// (call, jmp, jcc rel8), by first two bytes for the rest, so that a
	// lookup tries a few.
	short [256][]shape
	long  map[[2]byte][]shape
	inst  map[knownKey]*knownInst
	// seen holds the instructions decoded once and not yet remembered
	// (at most maxKnown, then emptied).
	seen map[knownKey]struct{}
}

// shape is a known instruction's length and where its PC-relative field
// lies (relLen 0: none).
type shape struct{ n, relOff, relLen uint8 }

// knownKey is an instruction's shape and bytes, its PC-relative field
// zeroed: the shape tells MOV [RBX],0 from LEA of a zero displacement.
type knownKey struct {
	b  [maxInstLen]byte
	sh shape
}

// knownInst is x86asm's decoding, and which of its Args holds the
// PC-relative field (-1: none).
type knownInst struct {
	in  x86asm.Inst
	arg int8
}

// maxKnown bounds known (an entry is about 200 bytes), and maxShapes the
// shapes tried for one first byte or pair.
const (
	maxKnown  = 4096
	maxShapes = 32
)

func (sh shape) key(b []byte) knownKey {
	k := knownKey{sh: sh}
	copy(k.b[:sh.n], b)
	clear(k.b[sh.relOff : sh.relOff+sh.relLen])
	return k
}

// at is the decoding of b, an instruction of this shape: the known one with
// b's PC-relative field put in, sign-extended and unscaled as x86asm
// stores a Rel or a Disp.
func (e *knownInst) at(sh shape, b []byte) x86asm.Inst {
	in := e.in
	if e.arg < 0 {
		return in
	}
	var v int64
	switch f := b[sh.relOff : sh.relOff+sh.relLen]; sh.relLen {
	case 1:
		v = int64(int8(f[0]))
	case 2:
		v = int64(int16(binary.LittleEndian.Uint16(f)))
	default:
		v = int64(int32(binary.LittleEndian.Uint32(f)))
	}
	switch a := in.Args[e.arg].(type) {
	case x86asm.Rel:
		in.Args[e.arg] = x86asm.Rel(v)
	case x86asm.Mem:
		a.Disp = v
		in.Args[e.arg] = a
	}
	return in
}

// pcRelative returns in's shape, and the Args index of its PC-relative
// field when it has one x86asm places (a Rel, or a RIP-based Mem).
func pcRelative(in x86asm.Inst) (shape, int8) {
	sh := shape{n: uint8(in.Len)}
	if in.PCRel != 1 && in.PCRel != 2 && in.PCRel != 4 || in.PCRelOff <= 0 || in.PCRelOff+in.PCRel > in.Len {
		return sh, -1
	}
	for i, a := range in.Args {
		switch a := a.(type) {
		case x86asm.Rel:
		case x86asm.Mem:
			if a.Base != x86asm.RIP {
				continue
			}
		default:
			continue
		}
		sh.relOff, sh.relLen = uint8(in.PCRelOff), uint8(in.PCRel)
		return sh, int8(i)
	}
	return sh, -1
}

// decodeKnown is decode through known. With more than maxInstLen bytes
// from an instruction's start, x86asm's one read past the instruction is
// a peek at what would be its ModRM byte, whose mod field alone tells a
// memory operand from a register (a byte it then takes is part of the
// instruction); what else depends on length (C4, C5 and 62 read as VEX
// or EVEX only with the bytes after them, the 15-byte cut) is met by any
// byte string longer than the instruction, and decode's fixed patterns
// (endbr64, vzeroupper, other VEX 0F 77) hold no PC-relative field. An
// instruction decoded that way is remembered only when a decode with the
// mod field after it turned the other way agrees, so its bytes decode the
// same wherever they stand with a byte after them: near the end of the
// code, a known instruction is taken when a byte follows it, and any
// other is decoded (decodeAll checks those for stability).
func decodeKnown(b []byte) (x86asm.Inst, error) {
	if in, ok := lookupKnown(b); ok && in.Len < len(b) {
		return in, nil
	}
	in, err := decode(b)
	if len(b) <= maxInstLen {
		return in, err
	}
	if err != nil || in.Len == 0 || in.Op == 0 || in.Len > maxInstLen {
		return in, err
	}
	if !seenBefore(b, in) {
		// Seen once: an instruction met once (a compare with a constant
		// of its own) is not worth the second decode remember needs.
		return in, nil
	}
	var other [maxInstLen + 1]byte
	copy(other[:], b)
	if other[in.Len] = 0xFF; b[in.Len]>>6 == 3 {
		other[in.Len] = 0x00
	}
	if again, err := decode(other[:]); err == nil && again == in {
		remember(b, in)
	}
	return in, nil
}

// seenBefore reports whether the instruction in, decoded from b, was
// decoded before, and notes that it was.
func seenBefore(b []byte, in x86asm.Inst) bool {
	sh, _ := pcRelative(in)
	k := sh.key(b)
	known.Lock()
	defer known.Unlock()
	if _, ok := known.seen[k]; ok {
		delete(known.seen, k)
		return true
	}
	if known.seen == nil || len(known.seen) >= maxKnown {
		known.seen = make(map[knownKey]struct{}, 256)
	}
	known.seen[k] = struct{}{}
	return false
}

// remember adds in, decoded from b with more than maxInstLen bytes and
// again with the mod field of the byte after it turned the other way, to
// known.
func remember(b []byte, in x86asm.Inst) {
	sh, arg := pcRelative(in)
	known.Lock()
	defer known.Unlock()
	if known.inst == nil {
		known.inst, known.long = make(map[knownKey]*knownInst, 256), map[[2]byte][]shape{}
	}
	var shapes []shape
	if sh.n == 1 || sh.relOff == 1 {
		shapes = known.short[b[0]]
	} else {
		shapes = known.long[[2]byte(b)]
	}
	if len(known.inst) >= maxKnown || !slices.Contains(shapes, sh) && len(shapes) >= maxShapes {
		return
	}
	if !slices.Contains(shapes, sh) {
		shapes = append(shapes, sh)
		if sh.n == 1 || sh.relOff == 1 {
			known.short[b[0]] = shapes
		} else {
			known.long[[2]byte(b)] = shapes
		}
	}
	known.inst[sh.key(b)] = &knownInst{in: in, arg: arg}
}

// lookupKnown returns the known instruction b starts with, if b holds all
// of one.
func lookupKnown(b []byte) (x86asm.Inst, bool) {
	if len(b) == 0 {
		return x86asm.Inst{}, false
	}
	known.Lock()
	defer known.Unlock()
	sh, e := findKnown(known.short[b[0]], b)
	if e == nil && len(b) >= 2 {
		sh, e = findKnown(known.long[[2]byte(b)], b)
	}
	if e == nil {
		return x86asm.Inst{}, false
	}
	return e.at(sh, b), true
}

// findKnown returns the known instruction of one of these shapes that b
// starts with. known is locked.
func findKnown(shapes []shape, b []byte) (shape, *knownInst) {
	for _, sh := range shapes {
		if int(sh.n) <= len(b) {
			if e := known.inst[sh.key(b)]; e != nil {
				return sh, e
			}
		}
	}
	return shape{}, nil
}

// forget empties known: tests that replace decoder call it.
func forget() {
	known.Lock()
	known.inst, known.short, known.long, known.seen = nil, [256][]shape{}, nil, nil
	known.Unlock()
}

// vzeroupper is C5 F8 77 (VEX.128.0F.WIG 77). x86asm reads a ModRM byte
// after it that is not there, so it returns 4 bytes when any byte follows
// and linear decoding loses step: AVX2 assembly (bytealg, crypto) ends its
// vector loops with it. decode gives its true length, 3.
const vzeroupper = "\xc5\xf8\x77"

// vexNoModRM reports the VEX 0F 77 forms other than C5 F8 77 (vzeroall,
// the 3-byte VEX spellings): x86asm misreads them too, and Go's assembler
// emits none of them, so decode refuses them rather than trust a length.
func vexNoModRM(b []byte) bool {
	switch {
	case len(b) >= 3 && b[0] == 0xC5:
		return b[2] == 0x77
	case len(b) >= 4 && b[0] == 0xC4:
		return b[1]&0x1F == 1 && b[3] == 0x77
	}
	return false
}

// adxLen returns the length of ADCX (66 [REX] 0F 38 F6 /r) or ADOX
// (F3 [REX] 0F 38 F6 /r), which x86asm does not know (math/big and
// crypto/internal/fips140/bigmod use them in their multiply loops): the
// prefix, an optional REX, the three opcode bytes, then ModRM with its SIB
// and displacement; no immediate. Neither is a branch, touches RSP, or
// has an encoding that depends on the bytes after it. decodeAll uses it to
// keep step past them, and only in a function's body: an instruction
// measured this way is never written over, copied or evicted (opaque).
func adxLen(b []byte) (int, bool) {
	if len(b) < 5 || b[0] != 0x66 && b[0] != 0xF3 {
		return 0, false
	}
	i := 1
	if b[i]&0xF0 == 0x40 {
		i++
	}
	if len(b) < i+4 || b[i] != 0x0F || b[i+1] != 0x38 || b[i+2] != 0xF6 {
		return 0, false
	}
	n, ok := modrmLen(b[i+3:])
	return i + 3 + n, ok
}

// modrmLen is the length of a 64-bit mode ModRM byte with the SIB byte and
// displacement it calls for (no address-size prefix).
func modrmLen(b []byte) (int, bool) {
	if len(b) < 1 {
		return 0, false
	}
	mod, rm := b[0]>>6, b[0]&7
	n := 1
	if mod != 3 && rm == 4 {
		if len(b) < 2 {
			return 0, false
		}
		if mod == 0 && b[1]&7 == 5 {
			n += 4 // SIB with no base: disp32
		}
		n++
	}
	switch {
	case mod == 0 && rm == 5:
		n += 4 // RIP-relative disp32
	case mod == 1:
		n++
	case mod == 2:
		n += 4
	}
	return n, len(b) >= n
}

// Decode is decode for other packages that read code (registry decodes
// generic wrappers): a decoder panic is an error, never a crash.
func Decode(b []byte) (x86asm.Inst, error) { return decode(b) }
