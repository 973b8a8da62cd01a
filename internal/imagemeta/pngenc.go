package imagemeta

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"sync"
)

// encodePNG writes img as PNG as fast as it can: bulkgen writes many
// images and spends CPU rather than disk. Opaque *image.RGBA images (what
// the preview engine draws) take a lean path: RGB rows, each filtered with
// Sub or Up, whichever leaves smaller residuals, and zlib at BestSpeed with
// a reused writer. image/png tries all five filters on every row, which
// costs more than the compression itself on small pictures. Everything else
// goes through image/png.
func encodePNG(w io.Writer, img image.Image) error {
	if m, ok := img.(*image.RGBA); ok && m.Rect.Dx() > 0 && m.Rect.Dy() > 0 && m.Opaque() {
		return encodeOpaqueRGBA(w, m)
	}
	enc := png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: pngBuffers}
	return enc.Encode(w, img)
}

// PNG filter types (PNG specification section 9.2).
const (
	filterSub = 1
	filterUp  = 2
)

func encodeOpaqueRGBA(w io.Writer, m *image.RGBA) error {
	width, height := m.Rect.Dx(), m.Rect.Dy()
	st := pngStates.Get().(*pngState)
	defer pngStates.Put(st)

	st.idat.Reset()
	st.zw.Reset(&st.idat)
	rowLen := 3 * width
	st.prev = resize(st.prev, rowLen)
	st.cur = resize(st.cur, rowLen)
	st.sub = resize(st.sub, 1+rowLen)
	st.up = resize(st.up, 1+rowLen)
	clear(st.prev) // the row above the first is zeros
	for y := 0; y < height; y++ {
		src := m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y+y):][:4*width]
		cur := st.cur
		for i, j := 0, 0; i < len(src); i, j = i+4, j+3 {
			cur[j], cur[j+1], cur[j+2] = src[i], src[i+1], src[i+2]
		}
		st.sub[0], st.up[0] = filterSub, filterUp
		sub, up, prev := st.sub[1:1+rowLen], st.up[1:1+rowLen], st.prev[:rowLen]
		costSub, costUp := 0, 0
		for i := 0; i < 3; i++ { // no pixel to the left
			sub[i], up[i] = cur[i], cur[i]-prev[i]
			costSub += absSigned(sub[i])
			costUp += absSigned(up[i])
		}
		for i := 3; i < rowLen; i++ {
			c := cur[i]
			sv, uv := c-cur[i-3], c-prev[i]
			sub[i], up[i] = sv, uv
			costSub += absSigned(sv)
			costUp += absSigned(uv)
		}
		row := st.sub
		if costUp < costSub {
			row = st.up
		}
		if _, err := st.zw.Write(row); err != nil {
			return fmt.Errorf("compress png rows: %w", err)
		}
		st.prev, st.cur = st.cur, st.prev
	}
	if err := st.zw.Close(); err != nil {
		return fmt.Errorf("compress png rows: %w", err)
	}

	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(width))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(height))
	ihdr[8], ihdr[9] = 8, 2 // 8-bit truecolour; compression, filter, interlace 0
	head := append(bytes.Clone(pngSignature), make([]byte, 0, 25)...)
	head = appendPNGChunk(head, "IHDR", ihdr[:])
	idat := st.idat.Bytes()
	head = binary.BigEndian.AppendUint32(head, uint32(len(idat)))
	head = append(head, "IDAT"...)
	crc := crc32.Update(crc32.ChecksumIEEE([]byte("IDAT")), crc32.IEEETable, idat)
	tail := binary.BigEndian.AppendUint32(nil, crc)
	tail = appendPNGChunk(tail, "IEND", nil)
	for _, part := range [][]byte{head, idat, tail} {
		if _, err := w.Write(part); err != nil {
			return fmt.Errorf("write png: %w", err)
		}
	}
	return nil
}

// absSigned is |b| reading b as a signed byte: the usual PNG filter
// heuristic, small residuals either side of zero compress well.
func absSigned(b byte) int {
	x := int(int8(b))
	m := x >> 63
	return (x ^ m) - m
}

func resize(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// pngState is the reusable working memory of one encode.
type pngState struct {
	zw                 *zlib.Writer
	idat               bytes.Buffer
	prev, cur, sub, up []byte
}

// pngStates and pngBuffers let encodes reuse their zlib writers and
// buffers. A fresh zlib writer is several hundred kilobytes, which for small
// images costs more than the encoding itself, and every worker encodes
// images back to back.
var pngStates = sync.Pool{New: func() any {
	zw, _ := zlib.NewWriterLevel(io.Discard, zlib.BestSpeed) // the level is valid
	return &pngState{zw: zw}
}}

var pngBuffers png.EncoderBufferPool = &pngBufferPool{}

type pngBufferPool struct{ p sync.Pool }

func (b *pngBufferPool) Get() *png.EncoderBuffer {
	buf, _ := b.p.Get().(*png.EncoderBuffer)
	return buf // nil tells the encoder to allocate
}

func (b *pngBufferPool) Put(buf *png.EncoderBuffer) { b.p.Put(buf) }
