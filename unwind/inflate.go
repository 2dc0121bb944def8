package unwind

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"hash"
	"hash/adler32"
	"io"
)

// inflater reads a zlib stream (RFC 1950, DEFLATE inside, RFC 1951), the
// form of a compressed ELF section, from a file. It does what
// compress/zlib does, about twice as fast on Go's DWARF: a 64-bit bit buffer
// filled eight bytes at a time, and one table lookup per Huffman code of
// up to 10 bits (tables rebuilt per block). The first Set of a process
// inflates .debug_info, megabytes in a large binary, and compress/flate
// was half of its time. The Adler-32 checksum is checked at the end
// (Read's io.EOF), so a decoding error cannot go unnoticed.
type inflater struct {
	// The stream is read from src in chunks into buf; in is what of buf
	// holds input.
	src    io.ReaderAt
	srcOff int64 // next offset of src to read
	srcEnd int64
	srcErr error
	buf    []byte
	in     []byte
	pos    int    // next byte of in to load into bits
	bits   uint64 // bit buffer, least significant first
	nbits  uint

	out   []byte      // window (the last 32 KiB handed out) then bytes not yet read
	read  int         // out[read:] is not read yet
	sum   hash.Hash32 // Adler-32 of the bytes read so far
	final bool        // the block being decoded is the last
	state int         // between blocks, in a stored block, or in a Huffman block
	left  int         // bytes left in a stored block
	done  bool        // the last block and the checksum were read
	want  uint32      // the stream's Adler-32

	lit, dist huffTable
}

// huffTable decodes one Huffman code: fast holds symbol<<4 | length for
// every code of up to fastBits bits, by the next fastBits bits of input;
// a longer code (rare) is decoded canonically from count and symbols.
type huffTable struct {
	fast    [1 << fastBits]uint16
	count   [16]uint16
	symbols [288]uint16
}

const fastBits = 10

const (
	inflBetween = iota
	inflStored
	inflHuffman
	inflWindow = 32 << 10
	inflBuf    = inflWindow + 256<<10
	inflMaxLen = 258
)

var errInflate = errors.New("corrupt DEFLATE stream")

// openSection reads a section of the ELF file at file: a section of a
// 64-bit little-endian file compressed with zlib (SHF_COMPRESSED,
// ELFCOMPRESS_ZLIB) through inflater, any other through Section.Open.
func openSection(s *elf.Section, f *elf.File, file io.ReaderAt) (io.Reader, error) {
	const chdr64, elfCompressZlib = 24, 1
	if s.Flags&elf.SHF_COMPRESSED == 0 || s.Type == elf.SHT_NOBITS || s.FileSize < chdr64 ||
		f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || file == nil {
		return s.Open(), nil
	}
	var hdr [4]byte
	if _, err := file.ReadAt(hdr[:], int64(s.Offset)); err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint32(hdr[:]) != elfCompressZlib {
		return s.Open(), nil
	}
	return newInflater(file, int64(s.Offset)+chdr64, int64(s.FileSize)-chdr64)
}

// newInflater starts reading the zlib stream of n bytes at off in src.
func newInflater(src io.ReaderAt, off, n int64) (*inflater, error) {
	f := &inflater{src: src, srcOff: off, srcEnd: off + n, buf: make([]byte, 64<<10), out: make([]byte, 0, inflBuf), sum: adler32.New()}
	f.refill()
	if len(f.in) < 6 || f.in[0]&0x0f != 8 || (uint(f.in[0])<<8|uint(f.in[1]))%31 != 0 || f.in[1]&0x20 != 0 {
		return nil, errors.Join(errors.New("not a zlib stream without preset dictionary"), f.srcErr)
	}
	f.pos = 2
	return f, nil
}

// refill moves the input not yet loaded to the front of buf and reads
// more after it.
func (f *inflater) refill() {
	if f.srcOff >= f.srcEnd || f.srcErr != nil {
		return
	}
	rest := copy(f.buf, f.in[min(f.pos, len(f.in)):])
	n := min(int64(len(f.buf)-rest), f.srcEnd-f.srcOff)
	m, err := f.src.ReadAt(f.buf[rest:rest+int(n)], f.srcOff)
	if err != nil && !(err == io.EOF && int64(m) == n) {
		f.srcErr = err
	}
	f.srcOff += int64(m)
	f.in, f.pos = f.buf[:rest+m], 0
}

// Read hands out inflated bytes. At the end it checks the checksum.
func (f *inflater) Read(p []byte) (int, error) {
	for f.read == len(f.out) {
		if f.done {
			if f.sum.Sum32() != f.want {
				return 0, errors.New("DEFLATE stream fails its Adler-32 checksum")
			}
			return 0, io.EOF
		}
		// Keep the window, drop what was read before it.
		if keep := len(f.out) - inflWindow; keep > 0 {
			n := copy(f.out, f.out[keep:])
			f.out, f.read = f.out[:n], n
		}
		if err := f.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, f.out[f.read:])
	f.sum.Write(f.out[f.read : f.read+n])
	f.read += n
	return n, nil
}

// need makes sure at least n (at most 56) bits are buffered. Past the end
// of the input it buffers zeros: using them is an error (see overrun).
func (f *inflater) need(n uint) {
	if f.nbits < n && f.pos+8 > len(f.in) {
		f.refill()
	}
	if f.nbits < n && f.pos+8 <= len(f.in) {
		f.bits |= binary.LittleEndian.Uint64(f.in[f.pos:]) << f.nbits
		k := (63 - f.nbits) / 8 // the whole bytes that fit
		f.pos += int(k)
		f.nbits += k * 8
		f.bits &= 1<<f.nbits - 1 // the part of the next byte that came along
	}
	for f.nbits < n {
		var b byte
		if f.pos < len(f.in) {
			b = f.in[f.pos]
		}
		f.pos++
		f.bits |= uint64(b) << f.nbits
		f.nbits += 8
	}
}

func (f *inflater) take(n uint) uint64 {
	f.need(n)
	v := f.bits & (1<<n - 1)
	f.bits >>= n
	f.nbits -= n
	return v
}

// overrun reports whether decoding used bits past the end of the input,
// or the input could not be read.
func (f *inflater) overrun() bool {
	return f.srcErr != nil || f.srcOff >= f.srcEnd && f.pos*8-int(f.nbits) > len(f.in)*8
}

// fill decodes until the buffer is nearly full or the stream ends.
func (f *inflater) fill() error {
	for !f.done && len(f.out) < inflBuf-inflMaxLen {
		switch f.state {
		case inflBetween:
			if f.final {
				return f.end()
			}
			f.final = f.take(1) == 1
			switch f.take(2) {
			case 0:
				f.bits >>= f.nbits % 8 // to a byte boundary
				f.nbits -= f.nbits % 8
				n, nn := f.take(16), f.take(16)
				if n != ^nn&0xffff {
					return errInflate
				}
				f.state, f.left = inflStored, int(n)
			case 1:
				f.fixedTables()
				f.state = inflHuffman
			case 2:
				if err := f.dynamicTables(); err != nil {
					return err
				}
				f.state = inflHuffman
			default:
				return errInflate
			}
		case inflStored:
			for f.left > 0 && len(f.out) < inflBuf {
				f.out = append(f.out, byte(f.take(8)))
				f.left--
			}
			if f.left == 0 {
				f.state = inflBetween
			}
		case inflHuffman:
			if err := f.huffman(); err != nil {
				return err
			}
		}
		if f.overrun() {
			return errInflate
		}
	}
	return nil
}

// end reads the checksum after the last block; the bytes not yet read
// are still to be summed, so the check waits for them (see Read).
func (f *inflater) end() error {
	f.bits >>= f.nbits % 8
	f.nbits -= f.nbits % 8
	want := uint32(f.take(8))<<24 | uint32(f.take(8))<<16 | uint32(f.take(8))<<8 | uint32(f.take(8))
	if f.overrun() {
		return errInflate
	}
	f.done, f.want = true, want
	return nil
}

var lenBase = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
var lenExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
var distBase = [30]uint32{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
var distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

// decodeSym reads one symbol with a table.
func (f *inflater) decodeSym(t *huffTable) (int, error) {
	f.need(15)
	sym, n := t.decode(f.bits)
	if n == 0 {
		return 0, errInflate
	}
	f.bits >>= n
	f.nbits -= n
	return sym, nil
}

// decode returns the symbol whose code begins bits (at least 15 buffered)
// and the code's length; length 0 for no code.
func (t *huffTable) decode(bits uint64) (sym int, n uint) {
	if e := t.fast[bits&(1<<fastBits-1)]; e&15 != 0 {
		return int(e >> 4), uint(e & 15)
	}
	// Canonical decoding (RFC 1951 3.2.2), one bit at a time: codes are
	// sent most significant bit first.
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		code |= int(bits & 1)
		bits >>= 1
		c := int(t.count[l])
		if code-first < c {
			return int(t.symbols[index+code-first]), uint(l)
		}
		index += c
		first = (first + c) << 1
		code <<= 1
	}
	return 0, 0
}

// huffman decodes symbols of the current block until its end or until
// the buffer is nearly full. It keeps the bit buffer in locals and refills
// it once per symbol: a literal/length code, its extra bits, a distance
// code and its extra bits take at most 15+5+15+13 = 48 bits.
func (f *inflater) huffman() (err error) {
	bits, nbits, in, pos, out := f.bits, f.nbits, f.in, f.pos, f.out
	defer func() { f.bits, f.nbits, f.in, f.pos, f.out = bits, nbits, in, pos, out }()
	for len(out) < inflBuf-inflMaxLen {
		if nbits < 48 {
			if pos+8 <= len(in) {
				bits |= binary.LittleEndian.Uint64(in[pos:]) << nbits
				k := (63 - nbits) / 8
				pos += int(k)
				nbits += k * 8
				bits &= 1<<nbits - 1
			} else {
				f.bits, f.nbits, f.in, f.pos = bits, nbits, in, pos
				f.need(48)
				bits, nbits, in, pos = f.bits, f.nbits, f.in, f.pos
			}
		}
		var sym int
		var n uint
		if e := f.lit.fast[bits&(1<<fastBits-1)]; e&15 != 0 {
			sym, n = int(e>>4), uint(e&15) // decode's fast path, inline
		} else {
			sym, n = f.lit.decode(bits)
		}
		if n == 0 {
			return errInflate
		}
		bits >>= n
		nbits -= n
		if sym < 256 {
			out = append(out, byte(sym))
			continue
		}
		if sym == 256 {
			f.state = inflBetween
			return nil
		}
		if sym > 285 {
			return errInflate
		}
		i := sym - 257
		eb := uint(lenExtra[i])
		length := int(lenBase[i]) + int(bits&(1<<eb-1))
		bits >>= eb
		nbits -= eb
		var d int
		if e := f.dist.fast[bits&(1<<fastBits-1)]; e&15 != 0 {
			d, n = int(e>>4), uint(e&15)
		} else {
			d, n = f.dist.decode(bits)
		}
		if n == 0 || d >= 30 {
			return errInflate
		}
		bits >>= n
		nbits -= n
		db := uint(distExtra[d])
		dist := int(distBase[d]) + int(bits&(1<<db-1))
		bits >>= db
		nbits -= db
		if dist > len(out) {
			return errInflate
		}
		start := len(out) - dist
		if dist >= length {
			out = append(out, out[start:start+length]...)
		} else {
			for k := range length {
				out = append(out, out[start+k])
			}
		}
	}
	return nil
}

// build makes a table from code lengths (RFC 1951 3.2.2): in fast, every
// fastBits-bit value whose low bits are a short code (bit-reversed, as
// codes are read) maps to that code's symbol and length; count and symbols
// serve the longer codes. Unused values stay zero.
func build(t *huffTable, lengths []uint8) error {
	var count [16]int
	for _, l := range lengths {
		count[l]++
	}
	count[0] = 0
	// An over-subscribed code is corrupt; an incomplete one is allowed
	// (a single distance code), its unused values left zero.
	left := 1
	for l := 1; l < 16; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return errInflate
		}
	}
	var next, offs [16]int
	code := 0
	for l := 1; l < 16; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
		offs[l] = offs[l-1] + count[l-1]
		t.count[l] = uint16(count[l])
	}
	t.fast = [1 << fastBits]uint16{}
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		t.symbols[offs[l]] = uint16(sym)
		offs[l]++
		c := next[l]
		next[l]++
		if l > fastBits {
			continue
		}
		rev := 0
		for k := 0; k < int(l); k++ {
			rev = rev<<1 | (c>>k)&1
		}
		e := uint16(sym)<<4 | uint16(l)
		for v := rev; v < 1<<fastBits; v += 1 << l {
			t.fast[v] = e
		}
	}
	return nil
}

func (f *inflater) fixedTables() {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	build(&f.lit, l[:])
	var d [30]uint8
	for i := range d {
		d[i] = 5
	}
	build(&f.dist, d[:])
}

var clOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

func (f *inflater) dynamicTables() error {
	nlit, ndist, nclen := int(f.take(5))+257, int(f.take(5))+1, int(f.take(4))+4
	if nlit > 286 || ndist > 30 {
		return errInflate
	}
	var cl [19]uint8
	for i := range nclen {
		cl[clOrder[i]] = uint8(f.take(3))
	}
	if err := build(&f.dist, cl[:]); err != nil { // the code-length code, for now
		return err
	}
	var lengths [286 + 30]uint8
	for i := 0; i < nlit+ndist; {
		sym, err := f.decodeSym(&f.dist)
		if err != nil {
			return err
		}
		rep, val := 1, uint8(sym)
		switch sym {
		case 16:
			if i == 0 {
				return errInflate
			}
			rep, val = 3+int(f.take(2)), lengths[i-1]
		case 17:
			rep, val = 3+int(f.take(3)), 0
		case 18:
			rep, val = 11+int(f.take(7)), 0
		}
		if i+rep > nlit+ndist {
			return errInflate
		}
		for range rep {
			lengths[i] = val
			i++
		}
	}
	if lengths[256] == 0 {
		return errInflate
	}
	if err := build(&f.lit, lengths[:nlit]); err != nil {
		return err
	}
	return build(&f.dist, lengths[nlit:nlit+ndist])
}
