package main

// Track writers: a server-sdk-go sample track (the SDK packetizes), and an audio/red track
// that builds RFC 2198 payloads itself (the SDK's sample track has no RED payloader).

import (
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

type trackWriter interface {
	track() webrtc.TrackLocal
	// write sends one frame whose presentation time is ticks (RTP clock, from the shared
	// start) and whose duration is dur ticks.
	write(data []byte, ticks, dur uint32) error
	bound() bool
	// boundEpoch counts binds, so the media loop notices a new binding (wait for a keyframe).
	boundEpoch() uint64
}

func randomBase() uint32 { return uint32(rand.Int63n(1<<30)) + 1<<31 }

// sampleWriter: lksdk.LocalTrack + WriteSample with an explicit RTP timestamp, so the RTP time
// follows the schedule (gaps while muted advance it too).
type sampleWriter struct {
	t     *lksdk.LocalTrack
	clock uint32
	base  uint32
	epoch atomic.Uint64
}

func newSampleWriter(c webrtc.RTPCodecCapability, opts ...lksdk.LocalTrackOptions) (*sampleWriter, error) {
	t, err := lksdk.NewLocalSampleTrack(c, opts...)
	if err != nil {
		return nil, err
	}
	w := &sampleWriter{t: t, clock: c.ClockRate, base: randomBase()}
	t.OnBind(func() { w.epoch.Add(1) })
	return w, nil
}

func (w *sampleWriter) track() webrtc.TrackLocal { return w.t }
func (w *sampleWriter) bound() bool              { return w.t.IsBound() }
func (w *sampleWriter) boundEpoch() uint64       { return w.epoch.Load() }

func (w *sampleWriter) write(data []byte, ticks, dur uint32) error {
	ts := w.base + ticks
	if ts == 0 { // 0 means "no timestamp" to the SDK
		ts = 1
	}
	// Duration rounded down, so the SDK's own estimate never exceeds the real step.
	d := time.Duration(uint64(dur) * uint64(time.Second) / uint64(w.clock))
	return w.t.WriteSample(media.Sample{Data: data, Duration: d, PacketTimestamp: ts}, nil)
}

// redTrack is a TrackLocalStaticRTP with MimeType audio/red; it notices binds.
type redTrack struct {
	*webrtc.TrackLocalStaticRTP
	nbound atomic.Int32
	epoch  atomic.Uint64
}

func (r *redTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	c, err := r.TrackLocalStaticRTP.Bind(ctx)
	if err == nil {
		r.nbound.Add(1)
		r.epoch.Add(1)
	}
	return c, err
}

func (r *redTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	r.nbound.Add(-1)
	return r.TrackLocalStaticRTP.Unbind(ctx)
}

// redWriter sends each Opus packet as an RFC 2198 payload: one redundant block (the previous
// packet, when it is at most 16383 ticks and 1023 bytes away/long) and the primary block (the
// packet itself, unchanged). Block payload type = the Opus payload type (111, as in "111/111").
type redWriter struct {
	mu       sync.Mutex
	t        *redTrack
	opusPT   uint8
	base     uint32
	seq      uint16
	prev     []byte
	prevTs   uint32
	havePrev bool
}

const redFmtp = "111/111"

func newRedWriter() (*redWriter, error) {
	t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{
		MimeType: "audio/red", ClockRate: 48000, Channels: 2, SDPFmtpLine: redFmtp,
	}, "TR_red"+randomID(), "ST_red"+randomID())
	if err != nil {
		return nil, err
	}
	return &redWriter{t: &redTrack{TrackLocalStaticRTP: t}, opusPT: 111, base: randomBase(), seq: uint16(rand.Intn(1 << 16))}, nil
}

func (w *redWriter) track() webrtc.TrackLocal { return w.t }
func (w *redWriter) bound() bool              { return w.t.nbound.Load() > 0 }
func (w *redWriter) boundEpoch() uint64       { return w.t.epoch.Load() }

func (w *redWriter) write(data []byte, ticks, _ uint32) error {
	w.mu.Lock()
	ts := w.base + ticks
	payload := make([]byte, 0, 5+len(w.prev)+len(data))
	off := ts - w.prevTs
	if w.havePrev && off > 0 && off < 1<<14 && len(w.prev) < 1<<10 {
		payload = append(payload,
			0x80|w.opusPT,
			byte(off>>6),
			byte(off&0x3f)<<2|byte(len(w.prev)>>8),
			byte(len(w.prev)),
			w.opusPT)
		payload = append(payload, w.prev...)
	} else {
		payload = append(payload, w.opusPT)
	}
	payload = append(payload, data...)
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: w.seq, Timestamp: ts}, Payload: payload}
	w.seq++
	w.prev, w.prevTs, w.havePrev = data, ts, true
	w.mu.Unlock()
	return w.t.WriteRTP(pkt)
}

func randomID() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 12)
	for i := range b {
		b[i] = letters[rand.Intn(len(letters))]
	}
	return string(b)
}
