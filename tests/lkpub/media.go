package main

// Readers for the fixture files: IVF (VP8, VP9, AV1), H.264 Annex-B and Ogg Opus. Each file
// becomes a list of frames with their time in RTP clock ticks from the start of the loop; the
// frame bytes are what the publisher hands to the packetizer, unchanged (H.264: the access
// unit without its AUD NAL units, see h264AccessUnits).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pion/webrtc/v4"
)

type frame struct {
	data  []byte
	ticks uint32 // presentation time within one loop, RTP clock
	key   bool
}

type source struct {
	kind      string // "audio" or "video"
	path      string
	codec     webrtc.RTPCodecCapability
	frames    []frame
	loopTicks uint32 // length of one loop, RTP clock
	width     uint32 // from the IVF header (0 when unknown)
	height    uint32
}

// Duration of frame i in ticks (to the next frame, or to the end of the loop).
func (s *source) frameTicks(i int) uint32 {
	if i+1 < len(s.frames) {
		return s.frames[i+1].ticks - s.frames[i].ticks
	}
	return s.loopTicks - s.frames[i].ticks
}

// alignLoop gives this loop the period of `other` (on its own clock) and leaves out frames
// beyond it, so that both loops repeat together and the sync markers stay aligned loop after
// loop (the Opus file is one 20 ms packet longer than the video: its encoder delay).
func (s *source) alignLoop(other *source) {
	period := uint32(uint64(other.loopTicks) * uint64(s.codec.ClockRate) / uint64(other.codec.ClockRate))
	kept := s.frames[:0]
	for _, f := range s.frames {
		if f.ticks < period {
			kept = append(kept, f)
		}
	}
	s.frames, s.loopTicks = kept, period
}

func loadSource(kind, path string, fps uint32) (*source, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var src *source
	switch ext := strings.ToLower(filepath.Ext(path)); {
	case kind == "video" && ext == ".ivf":
		src, err = readIVF(data)
	case kind == "video" && (ext == ".h264" || ext == ".264"):
		src, err = readH264(data, fps)
	case kind == "audio" && (ext == ".ogg" || ext == ".opus"):
		src, err = readOggOpus(data)
	default:
		return nil, fmt.Errorf("%s: unsupported %s file (want .ivf/.h264 for video, .ogg for audio)", path, kind)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(src.frames) == 0 {
		return nil, fmt.Errorf("%s: no frames", path)
	}
	src.kind, src.path = kind, path
	return src, nil
}

// mostCommonDelta is the usual distance between consecutive frame times (the last frame's
// duration; IVF has no durations).
func mostCommonDelta(frames []frame, fallback uint32) uint32 {
	counts := map[uint32]int{}
	best, bestN := fallback, 0
	for i := 1; i < len(frames); i++ {
		d := frames[i].ticks - frames[i-1].ticks
		counts[d]++
		if counts[d] > bestN {
			best, bestN = d, counts[d]
		}
	}
	return best
}

func readIVF(data []byte) (*source, error) {
	if len(data) < 32 || !bytes.Equal(data[:4], []byte("DKIF")) {
		return nil, errors.New("not an IVF file")
	}
	hdrLen := int(binary.LittleEndian.Uint16(data[6:]))
	fourcc := string(data[8:12])
	rate := uint64(binary.LittleEndian.Uint32(data[16:]))
	scale := uint64(binary.LittleEndian.Uint32(data[20:]))
	if hdrLen < 32 || hdrLen > len(data) || rate == 0 || scale == 0 {
		return nil, errors.New("bad IVF header")
	}
	src := &source{
		width:  uint32(binary.LittleEndian.Uint16(data[12:])),
		height: uint32(binary.LittleEndian.Uint16(data[14:])),
	}
	switch fourcc {
	case "VP80":
		src.codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	case "VP90":
		src.codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"}
	case "AV01":
		src.codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}
	default:
		return nil, fmt.Errorf("unsupported IVF FourCC %q", fourcc)
	}
	var first uint64
	for off := hdrLen; off < len(data); {
		if off+12 > len(data) {
			return nil, errors.New("truncated IVF frame header")
		}
		size := int(binary.LittleEndian.Uint32(data[off:]))
		pts := binary.LittleEndian.Uint64(data[off+4:])
		off += 12
		if size > len(data)-off {
			return nil, errors.New("truncated IVF frame")
		}
		if len(src.frames) == 0 {
			first = pts
		}
		f := frame{data: data[off : off+size], ticks: uint32((pts - first) * scale * 90000 / rate)}
		switch fourcc {
		case "VP80":
			f.key = vp8Key(f.data)
		case "VP90":
			f.key = vp9Key(f.data)
		case "AV01":
			f.key = av1Key(f.data)
		}
		src.frames = append(src.frames, f)
		off += size
	}
	if len(src.frames) > 0 {
		last := src.frames[len(src.frames)-1].ticks
		src.loopTicks = last + mostCommonDelta(src.frames, 3000)
	}
	return src, nil
}

func vp8Key(b []byte) bool { return len(b) > 0 && b[0]&1 == 0 }

func vp9Key(b []byte) bool {
	if len(b) == 0 || b[0]>>6 != 2 {
		return false
	}
	profile := (b[0]>>5)&1 | ((b[0]>>4)&1)<<1
	bit := 4
	if profile == 3 {
		bit++
	}
	showExisting := (b[0] >> (7 - bit)) & 1
	frameType := (b[0] >> (6 - bit)) & 1
	return showExisting == 0 && frameType == 0
}

// av1Key: the temporal unit carries a sequence header OBU (libaom repeats it on keyframes).
func av1Key(b []byte) bool {
	for len(b) > 0 {
		h := b[0]
		typ := (h >> 3) & 0xf
		if typ == 1 {
			return true
		}
		n := 1
		if h&4 != 0 {
			n++
		}
		if h&2 == 0 {
			return false // no size field: last OBU
		}
		size, l := leb128(b[n:])
		if l == 0 {
			return false
		}
		n += l
		if uint64(len(b)-n) < size {
			return false
		}
		b = b[n+int(size):]
	}
	return false
}

func leb128(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < 8 && i < len(b); i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

// nalUnits splits an Annex-B stream into NAL units (start codes excluded) with the offset of
// the start code that precedes each (3 or 4 bytes).
func nalUnits(data []byte) (nals [][]byte, starts []int) {
	type sc struct{ at, payload int }
	var scs []sc
	for i := 0; i+3 <= len(data); {
		if data[i] == 0 && data[i+1] == 0 && data[i+2] == 1 {
			at := i
			if i > 0 && data[i-1] == 0 {
				at = i - 1
			}
			scs = append(scs, sc{at, i + 3})
			i += 3
			continue
		}
		i++
	}
	for k, s := range scs {
		end := len(data)
		if k+1 < len(scs) {
			end = scs[k+1].at
		}
		nals = append(nals, data[s.payload:end])
		starts = append(starts, s.at)
	}
	return nals, starts
}

// firstMbIsZero: the slice header's first_mb_in_slice (ue(v), the first field) is 0, i.e. its
// first bit after the one-byte NAL header is 1.
func firstMbIsZero(nal []byte) bool { return len(nal) > 1 && nal[1]&0x80 != 0 }

// h264AccessUnits groups NAL units into access units (H.264 7.4.1.2.3): a new unit starts at an
// AUD, at an SPS/PPS/SEI/prefix (types 6-8, 14-18) after a slice, or at a slice with
// first_mb_in_slice = 0 after a slice. Each unit is returned as the file's bytes of its NAL
// units minus AUD (type 9) units, each with the start code it had in the file.
func h264AccessUnits(data []byte) ([][]byte, []bool) {
	nals, starts := nalUnits(data)
	var aus [][]byte
	var keys []bool
	var cur []byte
	curKey, inAU, seenSlice := false, false, false
	flush := func() {
		if inAU && len(cur) > 0 {
			aus = append(aus, cur)
			keys = append(keys, curKey)
		}
		cur, curKey, seenSlice = nil, false, false
	}
	for i, nal := range nals {
		if len(nal) == 0 {
			continue
		}
		t := nal[0] & 0x1f
		isSlice := t == 1 || t == 5
		newAU := false
		switch {
		case t == 9:
			newAU = inAU
		case t == 6 || t == 7 || t == 8 || (t >= 14 && t <= 18):
			newAU = seenSlice
		case isSlice:
			newAU = seenSlice && firstMbIsZero(nal)
		}
		if !inAU || newAU {
			flush()
			inAU = true
		}
		end := len(data)
		if i+1 < len(nals) {
			end = starts[i+1]
		}
		if t != 9 {
			cur = append(cur, data[starts[i]:end]...)
		}
		curKey = curKey || t == 5
		seenSlice = seenSlice || isSlice
	}
	flush()
	return aus, keys
}

func readH264(data []byte, fps uint32) (*source, error) {
	if fps == 0 {
		return nil, errors.New("--fps must be > 0")
	}
	aus, keys := h264AccessUnits(data)
	if len(aus) == 0 {
		return nil, errors.New("no H.264 NAL units")
	}
	src := &source{codec: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}}
	for i, au := range aus {
		src.frames = append(src.frames, frame{data: au, ticks: uint32(uint64(i) * 90000 / uint64(fps)), key: keys[i]})
	}
	src.loopTicks = uint32(uint64(len(aus)) * 90000 / uint64(fps))
	return src, nil
}

// opusSamples: samples at 48 kHz in one Opus packet, from its TOC byte (RFC 6716 3.1).
func opusSamples(p []byte) uint32 {
	if len(p) == 0 {
		return 0
	}
	cfg := p[0] >> 3
	var per uint32
	switch {
	case cfg < 12:
		per = []uint32{480, 960, 1920, 2880}[cfg%4]
	case cfg < 16:
		per = []uint32{480, 960}[cfg%2]
	default:
		per = []uint32{120, 240, 480, 960}[cfg%4]
	}
	switch p[0] & 3 {
	case 0:
		return per
	case 1, 2:
		return 2 * per
	default:
		if len(p) < 2 {
			return 0
		}
		return uint32(p[1]&0x3f) * per
	}
}

// readOggOpus returns the Opus packets of the first logical stream (RFC 7845), header packets
// excluded.
func readOggOpus(data []byte) (*source, error) {
	var packets [][]byte
	var serial uint32
	var partial []byte
	first := true
	for off := 0; off < len(data); {
		if off+27 > len(data) || !bytes.Equal(data[off:off+4], []byte("OggS")) {
			return nil, errors.New("bad Ogg page")
		}
		s := binary.LittleEndian.Uint32(data[off+14:])
		nseg := int(data[off+26])
		if off+27+nseg > len(data) {
			return nil, errors.New("truncated Ogg page")
		}
		lacing := data[off+27 : off+27+nseg]
		body := off + 27 + nseg
		if first {
			serial, first = s, false
		}
		for _, l := range lacing {
			if body+int(l) > len(data) {
				return nil, errors.New("truncated Ogg segment")
			}
			if s == serial {
				partial = append(partial, data[body:body+int(l)]...)
				if l < 255 {
					packets = append(packets, partial)
					partial = nil
				}
			}
			body += int(l)
		}
		off = body
	}
	if len(packets) < 2 || !bytes.HasPrefix(packets[0], []byte("OpusHead")) || !bytes.HasPrefix(packets[1], []byte("OpusTags")) {
		return nil, errors.New("not an Ogg Opus stream")
	}
	channels := uint16(2)
	src := &source{codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: channels, SDPFmtpLine: "minptime=10;useinbandfec=1"}}
	var t uint32
	for _, p := range packets[2:] {
		n := opusSamples(p)
		if n == 0 {
			return nil, errors.New("bad Opus packet")
		}
		src.frames = append(src.frames, frame{data: p, ticks: t, key: true})
		t += n
	}
	src.loopTicks = t
	return src, nil
}
