// lkpub joins a LiveKit room as a participant and publishes pre-encoded files without
// transcoding, looping them in real time. Controlled through stdin (one command per line,
// each answered by one JSON line with "reply"); events are JSON lines with "event" on stdout.
// Logs go to stderr. See README.md.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
)

var outMu sync.Mutex

func emit(v map[string]any) {
	b, _ := json.Marshal(v)
	outMu.Lock()
	os.Stdout.Write(append(b, '\n'))
	outMu.Unlock()
}

func event(name string, kv ...any) {
	m := map[string]any{"event": name}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	emit(m)
}

type config struct {
	url, apiKey, apiSecret, room, identity string
	video, audio                           string
	simulcast                              []string // video layers, low to high (rid q, h, f)
	loops                                  int
	red                                    bool
	e2ee                                   bool
	ttl                                    time.Duration
	fps                                    uint
	startTimeout                           time.Duration
}

// flow is the sending state of one stream: a kind, or one simulcast layer of video.
type flow struct {
	lastEpoch uint64
	needKey   bool
	sent      int64
	lastErr   time.Time
}

// layerState is one simulcast layer of the video kind (--simulcast).
type layerState struct {
	flow
	rid    string
	src    *source
	writer *sampleWriter
}

// kindState is one published (or publishable) kind.
type kindState struct {
	flow
	src    *source // with --simulcast: the top layer's
	writer trackWriter
	layers []*layerState // --simulcast only (video), low to high
	sid    string
	pub    *lksdk.LocalTrackPublication
	want   bool // published unless "unpublish"
	muted  bool
}

type publisher struct {
	cfg   config
	mu    sync.Mutex
	room  *lksdk.Room
	kinds map[string]*kindState
	gen   int // room generation, for the ICE watcher
}

func main() {
	var c config
	var loops int
	flag.StringVar(&c.url, "url", "ws://127.0.0.1:7880", "LiveKit server URL")
	flag.StringVar(&c.apiKey, "api-key", "devkey", "API key")
	flag.StringVar(&c.apiSecret, "api-secret", "", "API secret")
	flag.StringVar(&c.room, "room", "", "room name")
	flag.StringVar(&c.identity, "identity", "lkpub", "participant identity")
	flag.StringVar(&c.video, "video", "", "video file (.ivf VP8/VP9/AV1, .h264 Annex-B)")
	flag.StringVar(&c.audio, "audio", "", "audio file (.ogg Opus)")
	simulcast := flag.String("simulcast", "", "video as three simulcast layers: q.ivf,h.ivf,f.ivf (low to high, one codec, the same frame times)")
	flag.IntVar(&loops, "loops", 1, "times to play the files, 0 = forever")
	flag.BoolVar(&c.red, "red", false, "publish the audio as audio/red (RFC 2198, primary + previous packet)")
	flag.BoolVar(&c.e2ee, "e2ee", false, "announce the audio track as end-to-end encrypted (TrackInfo.encryption = GCM; the payload is sent as is, unencrypted)")
	flag.DurationVar(&c.ttl, "token-ttl", time.Hour, "access token lifetime")
	flag.UintVar(&c.fps, "fps", 30, "frame rate of an .h264 file")
	flag.DurationVar(&c.startTimeout, "start-timeout", 15*time.Second, "how long to wait for the tracks to be bound before starting anyway")
	flag.Parse()
	c.loops = loops
	if *simulcast != "" {
		c.simulcast = strings.Split(*simulcast, ",")
	}
	if c.room == "" || c.apiSecret == "" || (c.video == "" && c.audio == "" && c.simulcast == nil) ||
		(c.video != "" && c.simulcast != nil) || (c.simulcast != nil && len(c.simulcast) != 3) {
		fmt.Fprintln(os.Stderr, "usage: lkpub --url ws://... --api-key K --api-secret S --room R --identity I [--video F | --simulcast Q,H,F] [--audio F] [--loops N] [--red] [--e2ee]")
		os.Exit(2)
	}
	p := &publisher{cfg: c, kinds: map[string]*kindState{}}
	if c.simulcast != nil {
		var layers []*layerState
		for i, path := range c.simulcast {
			src, err := loadSource("video", path, uint32(c.fps))
			if err == nil && (src.width == 0 || (i > 0 && src.codec.MimeType != layers[0].src.codec.MimeType)) {
				err = fmt.Errorf("%s: a simulcast layer must be an IVF file of the first layer's codec", path)
			}
			if err != nil {
				event("error", "error", err.Error())
				os.Exit(1)
			}
			layers = append(layers, &layerState{rid: []string{"q", "h", "f"}[i], src: src})
		}
		p.kinds["video"] = &kindState{src: layers[2].src, layers: layers, want: true}
	}
	for _, kv := range []struct{ kind, path string }{{"video", c.video}, {"audio", c.audio}} {
		if kv.path == "" {
			continue
		}
		src, err := loadSource(kv.kind, kv.path, uint32(c.fps))
		if err != nil {
			event("error", "error", err.Error())
			os.Exit(1)
		}
		p.kinds[kv.kind] = &kindState{src: src, want: true}
	}
	if v, a := p.kinds["video"], p.kinds["audio"]; v != nil && a != nil {
		a.src.alignLoop(v.src)
	}
	if err := p.join(); err != nil {
		event("error", "error", "join: "+err.Error())
		os.Exit(1)
	}
	p.waitBound(c.startTimeout)
	start := time.Now()
	event("started", "unix_ms", start.UnixMilli())

	done := make(chan struct{})
	var wg sync.WaitGroup
	for kind, ks := range p.kinds {
		for layer := -1; layer < len(ks.layers); layer++ {
			if layer < 0 && ks.layers != nil {
				continue // each layer is played on its own
			}
			wg.Add(1)
			go func(kind string, layer int) {
				defer wg.Done()
				p.play(kind, layer, start, done)
			}(kind, layer)
		}
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	go p.reportSent(done)

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case <-finished:
			p.reportSentOnce()
			event("finished")
			p.leave()
			os.Exit(0)
		case line, ok := <-lines:
			if !ok { // stdin closed: leave quietly
				close(done)
				p.leave()
				os.Exit(0)
			}
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			reply := p.command(line)
			reply["reply"] = line
			if line == "leave" {
				close(done)
				p.reportSentOnce()
				p.leave()
				emit(reply)
				os.Exit(0)
			}
			emit(reply)
		}
	}
}

func (p *publisher) token() (string, error) {
	at := auth.NewAccessToken(p.cfg.apiKey, p.cfg.apiSecret)
	at.SetIdentity(p.cfg.identity).SetName(p.cfg.identity).SetValidFor(p.cfg.ttl).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: p.cfg.room})
	return at.ToJWT()
}

// join connects a new Room and publishes every wanted kind (with fresh tracks).
func (p *publisher) join() error {
	tok, err := p.token()
	if err != nil {
		return err
	}
	cb := lksdk.NewRoomCallback()
	cb.OnDisconnectedWithReason = func(r lksdk.DisconnectionReason) { event("disconnected", "reason", string(r)) }
	cb.OnReconnecting = func() { event("reconnecting") }
	cb.OnReconnected = func() { event("reconnected") }
	cb.OnLocalTrackPublished = func(pub *lksdk.LocalTrackPublication, _ *lksdk.LocalParticipant) {
		p.onPublished(pub)
	}
	cb.OnLocalTrackUnpublished = func(pub *lksdk.LocalTrackPublication, _ *lksdk.LocalParticipant) {
		event("unpublished", "kind", string(pub.Kind()), "track_sid", pub.SID())
	}
	opts := []lksdk.ConnectOption{lksdk.WithAutoSubscribe(false)}
	if p.cfg.red {
		// The default (pion) codec list has no audio/red: register it next to Opus.
		opts = append(opts, lksdk.WithCodecs([]livekit.Codec{
			{Mime: webrtc.MimeTypeOpus, FmtpLine: "minptime=10;useinbandfec=1"},
			{Mime: "audio/red", FmtpLine: redFmtp},
			{Mime: webrtc.MimeTypeVP8},
			{Mime: webrtc.MimeTypeVP9, FmtpLine: "profile-id=0"},
			{Mime: webrtc.MimeTypeH264, FmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
			{Mime: webrtc.MimeTypeAV1},
		}))
	}
	room, err := lksdk.ConnectToRoomWithToken(p.cfg.url, tok, cb, opts...)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.room = room
	p.gen++
	gen := p.gen
	p.mu.Unlock()
	event("joined", "participant_sid", room.LocalParticipant.SID(), "identity", room.LocalParticipant.Identity(), "room_sid", room.SID())
	go p.watchICE(room, gen)
	for _, kind := range []string{"video", "audio"} {
		ks := p.kinds[kind]
		if ks == nil || !ks.want {
			continue
		}
		if err := p.publish(kind); err != nil {
			return fmt.Errorf("publish %s: %w", kind, err)
		}
	}
	return nil
}

func (p *publisher) onPublished(pub *lksdk.LocalTrackPublication) {
	kind := string(pub.Kind())
	p.mu.Lock()
	ks := p.kinds[kind]
	mime := ""
	if ks != nil && ks.writer != nil && (pub.TrackLocal() == ks.writer.track() || ks.isLayerOf(pub)) {
		ks.pub, ks.sid = pub, pub.SID()
		if tc, ok := ks.writer.track().(interface {
			Codec() webrtc.RTPCodecCapability
		}); ok {
			mime = tc.Codec().MimeType
		}
		if ks.muted {
			pub.SetMuted(true)
		}
	}
	p.mu.Unlock()
	event("published", "kind", kind, "track_sid", pub.SID(), "mime", mime, "server_mime", pub.MimeType())
}

// isLayerOf: pub is the simulcast publication of these layers.
func (ks *kindState) isLayerOf(pub *lksdk.LocalTrackPublication) bool {
	for _, t := range pub.TrackLocalForSimulcast() {
		for _, l := range ks.layers {
			if l.writer != nil && webrtc.TrackLocal(t) == l.writer.track() {
				return true
			}
		}
	}
	return false
}

// publishSimulcast publishes the video layers as one simulcast track (one transceiver with
// three encodings, rid q/h/f, the sizes of the IVF headers).
func (p *publisher) publishSimulcast(ks *kindState, room *lksdk.Room) error {
	simID := "TR_sim" + randomID()
	var tracks []*lksdk.LocalTrack
	writers := make([]*sampleWriter, len(ks.layers))
	for i, l := range ks.layers {
		layer := &livekit.VideoLayer{
			Quality: []livekit.VideoQuality{livekit.VideoQuality_LOW, livekit.VideoQuality_MEDIUM, livekit.VideoQuality_HIGH}[i],
			Width:   l.src.width, Height: l.src.height,
		}
		w, err := newSampleWriter(l.src.codec, lksdk.WithSimulcast(simID, layer))
		if err != nil {
			return err
		}
		writers[i] = w
		tracks = append(tracks, w.t)
	}
	p.mu.Lock()
	for i, l := range ks.layers {
		l.writer = writers[i]
	}
	ks.writer, ks.want, ks.pub, ks.sid = writers[len(writers)-1], true, nil, ""
	p.mu.Unlock()
	pub, err := room.LocalParticipant.PublishSimulcastTrack(tracks, &lksdk.TrackPublicationOptions{Name: "video"})
	if err != nil {
		return err
	}
	p.mu.Lock()
	ks.pub, ks.sid = pub, pub.SID()
	p.mu.Unlock()
	return nil
}

func (p *publisher) publish(kind string) error {
	p.mu.Lock()
	ks := p.kinds[kind]
	room := p.room
	red := p.cfg.red && kind == "audio"
	p.mu.Unlock()
	if ks == nil {
		return fmt.Errorf("no %s file given", kind)
	}
	if ks.layers != nil {
		return p.publishSimulcast(ks, room)
	}
	var w trackWriter
	var err error
	if red {
		w, err = newRedWriter()
	} else {
		w, err = newSampleWriter(ks.src.codec)
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	ks.writer, ks.want, ks.pub, ks.sid = w, true, nil, ""
	p.mu.Unlock()
	opts := &lksdk.TrackPublicationOptions{Name: kind}
	if kind == "audio" && p.cfg.e2ee {
		opts.Encryption = livekit.Encryption_GCM
	}
	if kind == "video" {
		opts.VideoWidth, opts.VideoHeight = 320, 240
		if ks.src.width > 0 {
			opts.VideoWidth, opts.VideoHeight = int(ks.src.width), int(ks.src.height)
		}
	}
	pub, err := room.LocalParticipant.PublishTrack(w.track(), opts)
	if err != nil {
		return err
	}
	p.mu.Lock()
	ks.pub, ks.sid = pub, pub.SID()
	p.mu.Unlock()
	return nil
}

func (p *publisher) unpublish(kind string) error {
	p.mu.Lock()
	ks := p.kinds[kind]
	if ks == nil || ks.pub == nil {
		p.mu.Unlock()
		return fmt.Errorf("%s is not published", kind)
	}
	sid, room := ks.sid, p.room
	ks.want, ks.writer, ks.pub, ks.sid = false, nil, nil, ""
	for _, l := range ks.layers {
		l.writer = nil
	}
	p.mu.Unlock()
	return room.LocalParticipant.UnpublishTrack(sid)
}

func (p *publisher) waitBound(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		all := true
		p.mu.Lock()
		if pc := p.room.LocalParticipant.GetPublisherPeerConnection(); pc == nil || pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
			all = false
		}
		for _, ks := range p.kinds {
			if ks.want && (ks.writer == nil || !ks.writer.bound()) {
				all = false
			}
			for _, l := range ks.layers {
				if ks.want && (l.writer == nil || !l.writer.bound()) {
					all = false
				}
			}
		}
		p.mu.Unlock()
		if all {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	event("error", "error", "tracks not bound (or publisher not connected) before --start-timeout; starting anyway")
}

func (p *publisher) watchICE(room *lksdk.Room, gen int) {
	last := ""
	for {
		p.mu.Lock()
		cur := p.gen
		p.mu.Unlock()
		if cur != gen {
			return
		}
		if pc := room.LocalParticipant.GetPublisherPeerConnection(); pc != nil {
			s := pc.ICEConnectionState().String()
			if s != last {
				last = s
				ev := []any{"pc", "publisher", "state", s}
				if s == "connected" {
					if pair := selectedPair(pc); pair != "" {
						ev = append(ev, "pair", pair)
					}
				}
				event("ice", ev...)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func selectedPair(pc *webrtc.PeerConnection) string {
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return ""
	}
	pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return ""
	}
	return fmt.Sprintf("%s:%d -> %s:%d", pair.Local.Address, pair.Local.Port, pair.Remote.Address, pair.Remote.Port)
}

// play paces one kind in real time: frame i of loop L goes out at
// start + (L*loopTicks + ticks_i)/clock, with that RTP time (relative to the track's random
// base). Frames are skipped (time still advances) while muted, unpublished or reconnecting;
// video restarts at a keyframe after each new binding or unmute. layer >= 0: that simulcast
// layer of video (each layer restarts at its own keyframes).
func (p *publisher) play(kind string, layer int, start time.Time, done <-chan struct{}) {
	p.mu.Lock()
	src := p.kinds[kind].src
	if layer >= 0 {
		src = p.kinds[kind].layers[layer].src
	}
	p.mu.Unlock()
	clock := uint64(src.codec.ClockRate)
	for loop := 0; p.cfg.loops == 0 || loop < p.cfg.loops; loop++ {
		for i, f := range src.frames {
			ticks := uint64(loop)*uint64(src.loopTicks) + uint64(f.ticks)
			at := start.Add(time.Duration(ticks * uint64(time.Second) / clock))
			if d := time.Until(at); d > 0 {
				select {
				case <-done:
					return
				case <-time.After(d):
				}
			} else {
				select {
				case <-done:
					return
				default:
				}
			}
			p.mu.Lock()
			ks := p.kinds[kind]
			w, fl := ks.writer, &ks.flow
			if layer >= 0 {
				l := ks.layers[layer]
				fl, w = &l.flow, nil
				if l.writer != nil {
					w = l.writer
				}
			}
			send := w != nil && !ks.muted && w.bound()
			if send {
				if e := w.boundEpoch(); e != fl.lastEpoch {
					fl.lastEpoch, fl.needKey = e, true
				}
				if fl.needKey && kind == "video" && !f.key {
					send = false
				} else {
					fl.needKey = false
				}
			}
			p.mu.Unlock()
			if !send {
				continue
			}
			err := w.write(f.data, uint32(ticks), src.frameTicks(i))
			p.mu.Lock()
			if err != nil {
				if time.Since(fl.lastErr) > time.Second {
					fl.lastErr = time.Now()
					p.mu.Unlock()
					event("error", "kind", kind, "error", "write: "+err.Error())
					continue
				}
			} else {
				fl.sent++
				if layer >= 0 {
					ks.sent++
				}
			}
			p.mu.Unlock()
		}
	}
}

func (p *publisher) reportSentOnce() {
	p.mu.Lock()
	type kv struct {
		kind, rid string
		n         int64
	}
	var all []kv
	for _, kind := range []string{"video", "audio"} {
		if ks := p.kinds[kind]; ks != nil {
			for _, l := range ks.layers {
				all = append(all, kv{kind, l.rid, l.sent})
			}
			all = append(all, kv{kind, "", ks.sent})
		}
	}
	p.mu.Unlock()
	for _, e := range all {
		if e.rid != "" {
			event("sent", "kind", e.kind, "rid", e.rid, "frames", e.n)
		} else {
			event("sent", "kind", e.kind, "frames", e.n)
		}
	}
}

func (p *publisher) reportSent(done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			p.reportSentOnce()
		}
	}
}

func (p *publisher) leave() {
	p.mu.Lock()
	room := p.room
	p.gen++
	p.mu.Unlock()
	if room != nil {
		room.Disconnect()
	}
}

func ok(kv ...any) map[string]any {
	m := map[string]any{"ok": true}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func fail(err error) map[string]any { return map[string]any{"ok": false, "error": err.Error()} }

// rejoin joins again with the same identity, republishing: after leaving (newFirst false), or
// with the new session first and the old one dropped after it (newFirst true).
func (p *publisher) rejoin(newFirst bool) map[string]any {
	p.mu.Lock()
	old := p.room
	p.gen++
	for _, ks := range p.kinds {
		ks.writer, ks.pub, ks.sid = nil, nil, ""
		for _, l := range ks.layers {
			l.writer = nil
		}
	}
	p.mu.Unlock()
	if !newFirst {
		old.Disconnect()
	}
	if err := p.join(); err != nil {
		return fail(err)
	}
	if newFirst {
		old.Disconnect()
	}
	p.mu.Lock()
	sid := p.room.LocalParticipant.SID()
	p.mu.Unlock()
	return ok("participant_sid", sid)
}

func (p *publisher) command(line string) map[string]any {
	f := strings.Fields(line)
	arg := ""
	if len(f) > 1 {
		arg = f[1]
	}
	needKind := func() (*kindState, error) {
		if arg != "audio" && arg != "video" {
			return nil, fmt.Errorf("%s: want audio or video", f[0])
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		ks := p.kinds[arg]
		if ks == nil {
			return nil, fmt.Errorf("no %s file given", arg)
		}
		return ks, nil
	}
	switch f[0] {
	case "mute", "unmute":
		ks, err := needKind()
		if err != nil {
			return fail(err)
		}
		muted := f[0] == "mute"
		p.mu.Lock()
		ks.muted = muted
		if !muted {
			ks.needKey = true
			for _, l := range ks.layers {
				l.needKey = true
			}
		}
		pub, sid := ks.pub, ks.sid
		p.mu.Unlock()
		if pub != nil {
			pub.SetMuted(muted)
		}
		return ok("track_sid", sid)
	case "unpublish":
		if _, err := needKind(); err != nil {
			return fail(err)
		}
		p.mu.Lock()
		sid := p.kinds[arg].sid
		p.mu.Unlock()
		if err := p.unpublish(arg); err != nil {
			return fail(err)
		}
		return ok("track_sid", sid)
	case "publish":
		ks, err := needKind()
		if err != nil {
			return fail(err)
		}
		p.mu.Lock()
		already := ks.pub != nil
		p.mu.Unlock()
		if already {
			return fail(fmt.Errorf("%s is already published", arg))
		}
		if err := p.publish(arg); err != nil {
			return fail(err)
		}
		p.mu.Lock()
		sid := ks.sid
		p.mu.Unlock()
		return ok("track_sid", sid)
	case "reconnect":
		// leave, then join again with the same identity
		return p.rejoin(false)
	case "rejoin":
		// a second session with the same identity while the first is still connected (a page
		// reload, a network switch): the server replaces the old session without announcing
		// its departure to other participants; the old connection is then dropped
		return p.rejoin(true)
	case "leave":
		return ok()
	case "status":
		p.mu.Lock()
		defer p.mu.Unlock()
		st := map[string]any{}
		for k, ks := range p.kinds {
			st[k] = map[string]any{"track_sid": ks.sid, "muted": ks.muted, "published": ks.pub != nil, "sent": ks.sent}
		}
		return ok("participant_sid", p.room.LocalParticipant.SID(), "tracks", st)
	default:
		return fail(fmt.Errorf("unknown command %q", f[0]))
	}
}
