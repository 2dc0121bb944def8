package unwind

import (
	"bytes"
	"compress/zlib"
	"debug/elf"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

// inflateAll reads a whole zlib stream through inflater, in reads of odd
// sizes.
func inflateAll(stream []byte) ([]byte, error) {
	return readAll(newInflater(bytes.NewReader(stream), 0, int64(len(stream))))
}

func readAll(f io.Reader, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	var out []byte
	buf := make([]byte, 7919)
	for {
		n, err := f.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestInflateMatchesZlib: inflater gives compress/zlib's bytes for streams
// of every block kind (stored, fixed, dynamic Huffman, Huffman only), every
// level, data from random to highly repetitive (overlapping copies), and
// for this binary's compressed DWARF sections; a corrupted stream fails.
func TestInflateMatchesZlib(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	inputs := map[string][]byte{"empty": nil, "one": {42}}
	random := make([]byte, 300_000)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	inputs["random"] = random
	text := make([]byte, 0, 1<<20)
	for len(text) < 1<<20 {
		w := []string{"runtime.", "main.", "github.com/switchboard-go/", "(*T).M", "func1", "\x00", "\x01\x02"}[r.IntN(7)]
		text = append(text, w...)
		if r.IntN(10) == 0 {
			text = append(text, byte(r.Uint32()))
		}
	}
	inputs["text"] = text
	inputs["runs"] = bytes.Repeat([]byte("ab"), 200_000)
	inputs["zeros"] = make([]byte, 100_000)
	for name, in := range inputs {
		for _, level := range []int{zlib.HuffmanOnly, zlib.NoCompression, zlib.BestSpeed, zlib.DefaultCompression, zlib.BestCompression} {
			var z bytes.Buffer
			w, _ := zlib.NewWriterLevel(&z, level)
			w.Write(in)
			w.Close()
			got, err := inflateAll(z.Bytes())
			if err != nil || !bytes.Equal(got, in) {
				t.Fatalf("%s, level %d: %d bytes, %v; want %d bytes", name, level, len(got), err, len(in))
			}
			if len(in) > 1000 {
				bad := bytes.Clone(z.Bytes())
				bad[len(bad)/2] ^= 0x10
				if got, err := inflateAll(bad); err == nil && bytes.Equal(got, in) {
					t.Errorf("%s, level %d: a corrupted stream inflated to the original", name, level)
				} else if err == nil {
					t.Errorf("%s, level %d: a corrupted stream inflated without error", name, level)
				}
			}
		}
	}
	im, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Open(im.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	sections := 0
	for _, s := range im.file.Sections {
		if s.Flags&elf.SHF_COMPRESSED == 0 {
			continue
		}
		r, err := openSection(s, im.file, exe)
		if _, ok := r.(*inflater); !ok || err != nil {
			t.Fatalf("%s: %T, %v; want an inflater", s.Name, r, err)
		}
		want, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(r, nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, %v; want %d bytes", s.Name, len(got), err, len(want))
		}
		sections++
	}
	if sections == 0 {
		t.Error("no compressed section in this binary: the linker's default compresses DWARF")
	}
	t.Logf("%d compressed sections of this binary", sections)
}

// FuzzInflate: whatever stream inflater accepts, compress/zlib inflates to
// the same bytes; and every stream compress/zlib writes, inflater reads.
func FuzzInflate(f *testing.F) {
	for _, s := range []string{"", "a", "hello hello hello hello", "\x00\x01\x02\x03"} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, level uint8) {
		var z bytes.Buffer
		w, _ := zlib.NewWriterLevel(&z, int(level%11)-1)
		w.Write(data)
		w.Close()
		if got, err := inflateAll(z.Bytes()); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("level %d: %d bytes, %v; want %d", int(level%11)-1, len(got), err, len(data))
		}
		// data as a stream itself: accepted only if zlib agrees.
		got, err := inflateAll(data)
		if err != nil {
			return
		}
		zr, zerr := zlib.NewReader(bytes.NewReader(data))
		if zerr != nil {
			t.Fatalf("inflater accepted a stream zlib refuses: %v", zerr)
		}
		want, zerr := io.ReadAll(zr)
		if zerr != nil || !bytes.Equal(got, want) {
			t.Fatalf("inflater gave %d bytes, zlib %d bytes, %v", len(got), len(want), zerr)
		}
	})
}
