// The browser publisher of tests/real_browser.rs: joins the room with livekit-client and
// publishes, with livekit-client's default publish options unless the config overrides them
// (VP8, simulcast, RED, DTX):
// - "camera": a canvas (captureStream(30)) that shows a frame counter as two rows of 16 big
//   blocks (the counter's bits, white = 1, then the same bits inverted, so a decoder can tell a
//   readable row from a smeared one) on a dark grey picture; every 2 s the picture turns white
//   for 100 ms (the blocks stay), and
// - "microphone": a WebAudio 1 kHz sine (amplitude 0.5) for the same 100 ms at each flash,
//   digital silence between (so Opus DTX has something to do), made by an AudioWorklet that
//   also sets the flash's instant (below) into a MediaStreamAudioDestinationNode;
// - optionally "screen": a second canvas at a low frame rate, published as a screen share
//   (config `camera: false` / `microphone: false` leave those out).
// The counter lives in sessionStorage, so it keeps increasing across page reloads.
// Config: JSON in the URL's hash (see driver.mjs). Events go to the driver through
// window.lkEvent (a Playwright binding).
'use strict';
(async () => {
  const LK = window.LivekitClient;
  const cfg = JSON.parse(decodeURIComponent(location.hash.slice(1)));
  const emit = (event, fields) => window.lkEvent(JSON.stringify({ event, ...fields }));
  window.onerror = (msg) => emit('error', { message: String(msg) });
  window.onunhandledrejection = (e) => emit('error', { message: String(e.reason && e.reason.stack || e.reason) });

  // the canvas's size: the "resize WxH" command changes it mid-publication
  let W = cfg.width || 640, H = cfg.height || 360;
  // 16 blocks: the counter's low 12 bits, then a 4-bit check of them (a picture whose blocks
  // come partly from an older frame, as an SVC encoder's skipped blocks do, fails the check
  // instead of reading as another counter); see tests/support/browser_support.rs `counter_check`
  const BITS = 16;
  const check = (c) => ((c & 15) + 3 * ((c >> 4) & 15) + 5 * ((c >> 8) & 15) + 7) & 15;
  let ROW = Math.round(H / 15);
  const canvas = document.getElementById('cam');
  canvas.width = W; canvas.height = H;
  const g = canvas.getContext('2d');

  const audio = new AudioContext({ sampleRate: 48000 });
  await audio.resume();
  const audioT0 = audio.currentTime;
  const dest = audio.createMediaStreamDestination();
  dest.channelCount = 1;

  let counter = Number(sessionStorage.getItem('counter') || '0');
  let video = null; // the canvas track, once captured
  const t0 = performance.now();
  let lastFlash = -1, drawn = 0, maxInterval = 0, lastDraw = 0;
  // the counter drawn on each marker's first white frame (its beep starts at that draw)
  const flashCounters = [];

  // The beep comes from an AudioWorklet on the audio render thread, which also decides the
  // marker's instant: the page asks for a beep every 2 s, the worklet starts it at the next
  // render quantum and says so, and the page draws the flash picture as that message arrives.
  // Chromium stamps the destination's samples as they are rendered, so both markers are then
  // captured within the message's latency of each other. (A beep scheduled from the page with
  // setValueAtTime(currentTime) starts at a render quantum up to one render burst later: the
  // audio marker was captured 20-40 ms after its picture.) The worklet writes digital silence
  // between beeps, so the track carries samples in real time and Opus DTX has something to do.
  const BEEPER = `
    class Beeper extends AudioWorkletProcessor {
      constructor() {
        super();
        this.pending = false; this.left = 0; this.phase = 0;
        this.port.onmessage = () => { this.pending = true; };
      }
      process(inputs, outputs) {
        const out = outputs[0][0];
        if (this.pending) {
          this.pending = false; this.left = Math.round(0.1 * sampleRate); this.phase = 0;
          this.port.postMessage({ frame: currentFrame });
        }
        for (let i = 0; i < out.length; i++) {
          if (this.left > 0) {
            out[i] = 0.5 * Math.sin(this.phase);
            this.phase += 2 * Math.PI * 1000 / sampleRate;
            this.left -= 1;
          } else {
            out[i] = 0;
          }
        }
        return true;
      }
    }
    registerProcessor('beeper', Beeper);`;
  await audio.audioWorklet.addModule(URL.createObjectURL(new Blob([BEEPER], { type: 'text/javascript' })));
  const beeper = new AudioWorkletNode(audio, 'beeper', { numberOfInputs: 0, outputChannelCount: [1] });
  beeper.connect(dest);
  // per marker: ms from the page's request to the worklet's "started" reaching the page
  const beepLatencies = [];
  let flashUntil = 0, flashStarts = false, asked = 0;
  beeper.port.onmessage = () => {
    const now = performance.now();
    beepLatencies.push(Math.round(now - asked));
    flashUntil = now + 100;
    flashStarts = true;
    draw(); // the picture of the marker, at once
  };

  function draw() {
    const now = performance.now();
    if (lastDraw) maxInterval = Math.max(maxInterval, now - lastDraw);
    lastDraw = now;
    const k = Math.floor((now - t0) / 2000);
    if (k !== lastFlash) {
      lastFlash = k;
      asked = now;
      beeper.port.postMessage('beep');
    }
    const flash = now < flashUntil;
    counter += 1;
    if (flashStarts) flashCounters.push(counter);
    flashStarts = false;
    sessionStorage.setItem('counter', String(counter));
    g.fillStyle = flash ? '#ffffff' : '#282828';
    g.fillRect(0, 0, W, H);
    const bw = W / BITS;
    const word = ((counter & 0xfff) << 4) | check(counter & 0xfff);
    for (let i = 0; i < BITS; i++) {
      const bit = (word >> (BITS - 1 - i)) & 1;
      g.fillStyle = bit ? '#ffffff' : '#000000';
      g.fillRect(i * bw, 0, bw, ROW);
      g.fillStyle = bit ? '#000000' : '#ffffff';
      g.fillRect(i * bw, ROW, bw, ROW);
    }
    drawn += 1;
    if (video) video.requestFrame();
  }
  draw();
  setInterval(draw, 1000 / 30);

  // What the publisher itself sends: every encoded frame passes through an encoded transform
  // (unchanged) that notes its layer (SSRC), size and RTP timestamp, so the test can compare
  // the recording's gaps with the publisher's own. livekit-client creates its transceivers
  // with addTransceiver; the streams must be taken right there.
  const sent = new Map();
  const NativePC = window.RTCPeerConnection;
  const addTransceiver = NativePC.prototype.addTransceiver;
  window.RTCPeerConnection = function (config, ...rest) {
    return new NativePC(Object.assign({}, config, { encodedInsertableStreams: true }), ...rest);
  };
  window.RTCPeerConnection.prototype = NativePC.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, NativePC);
  const setConfiguration = NativePC.prototype.setConfiguration;
  NativePC.prototype.setConfiguration = function (config) {
    return setConfiguration.call(this, Object.assign({}, config, { encodedInsertableStreams: true }));
  };
  NativePC.prototype.addTransceiver = function (...args) {
    const tr = addTransceiver.apply(this, args);
    const { readable, writable } = tr.sender.createEncodedStreams();
    readable.pipeThrough(new TransformStream({
      transform(frame, ctl) {
        const m = frame.getMetadata();
        const ssrc = m.synchronizationSource;
        const ts = m.rtpTimestamp !== undefined ? m.rtpTimestamp : frame.timestamp;
        let e = sent.get(ssrc);
        if (!e) { e = { ssrc, kind: frame.type === undefined ? 'audio' : 'video', frames: 0, keyframes: 0,
                        width: 0, height: 0, max_gap_ticks: 0, last: null, times: [] }; sent.set(ssrc, e); }
        e.frames += 1;
        if (frame.type === 'key') e.keyframes += 1;
        if (m.width) { e.width = Math.max(e.width, m.width); e.height = Math.max(e.height, m.height); }
        if (e.last !== null) e.max_gap_ticks = Math.max(e.max_gap_ticks, (ts - e.last) >>> 0);
        e.last = ts;
        if (e.kind === 'video') e.times.push([Date.now(), ts]);
        ctl.enqueue(frame);
      },
    })).pipeTo(writable).catch((err) => emit('error', { message: 'encoded transform: ' + err }));
    return tr;
  };
  // per SSRC: frames, keyframes, the largest size, the largest RTP step, and for video every
  // frame's [Date.now() as it left the encoder, RTP timestamp]
  const sentFrames = () => [...sent.values()].map(({ last, ...e }) => e);

  if (cfg.log_level) LK.setLogLevel(cfg.log_level);
  const room = new LK.Room(cfg.room_options || {});
  room.on(LK.RoomEvent.Disconnected, (reason) => emit('disconnected', { reason: String(reason) }));
  await room.connect(cfg.url, cfg.token);
  emit('joined', { participant_sid: room.localParticipant.sid, identity: room.localParticipant.identity });

  const published = [];
  // Each drawn frame is captured at once (requestFrame) instead of through captureStream(30)'s
  // frame-rate limiter, which holds a frame drawn less than 33 ms after the last capture until
  // the next slot: up to 33 ms of video lag at a marker, varying from one marker to the next.
  let apub = null, vpub = null;
  if (cfg.camera !== false) {
    video = canvas.captureStream(0).getVideoTracks()[0];
    const pubOpts = Object.assign({ source: LK.Track.Source.Camera, name: 'camera' }, cfg.publish || {});
    vpub = await room.localParticipant.publishTrack(video, pubOpts);
    published.push(vpub);
    emit('published', { kind: 'video', source: 'camera', track_sid: vpub.trackSid, mime: vpub.mimeType || null });
  }
  if (cfg.microphone !== false) {
    const mic = dest.stream.getAudioTracks()[0];
    apub = await room.localParticipant.publishTrack(mic, { source: LK.Track.Source.Microphone, name: 'microphone' });
    published.push(apub);
    emit('published', { kind: 'audio', source: 'microphone', track_sid: apub.trackSid });
  }

  let screenFrames = 0;
  if (cfg.screen) {
    // a slide-like picture that changes only at the screen share's own frame rate
    const sc = document.createElement('canvas');
    sc.width = cfg.screen.width || 1280; sc.height = cfg.screen.height || 720;
    const sg = sc.getContext('2d');
    const track = sc.captureStream(0).getVideoTracks()[0];
    track.contentHint = 'detail'; // as a captured screen has
    const paint = () => {
      screenFrames += 1;
      sg.fillStyle = screenFrames % 2 ? '#e0e0f0' : '#f0e0e0';
      sg.fillRect(0, 0, sc.width, sc.height);
      sg.fillStyle = '#000';
      sg.font = '96px sans-serif';
      sg.fillText('slide ' + screenFrames, 80, 200);
      track.requestFrame();
    };
    paint();
    setInterval(paint, 1000 / (cfg.screen.fps || 2));
    const spub = await room.localParticipant.publishTrack(track,
      Object.assign({ source: LK.Track.Source.ScreenShare, name: 'screen' }, cfg.screen.publish || {}));
    published.push(spub);
    emit('published', { kind: 'video', source: 'screen', track_sid: spub.trackSid });
  }

  async function senderStats() {
    const out = [];
    for (const p of published) {
      const sender = p.track && p.track.sender;
      if (!sender) continue;
      const stats = await sender.getStats();
      stats.forEach((s) => {
        if (s.type === 'outbound-rtp') {
          out.push({
            source: p.source, kind: s.kind, rid: s.rid || null, ssrc: s.ssrc,
            width: s.frameWidth, height: s.frameHeight, fps: s.framesPerSecond,
            frames_encoded: s.framesEncoded, keyframes_encoded: s.keyFramesEncoded,
            packets_sent: s.packetsSent, pli: s.pliCount, fir: s.firCount, nack: s.nackCount,
            quality_limitation: s.qualityLimitationReason,
            encoder: s.encoderImplementation, active: s.active,
          });
        }
      });
    }
    return out;
  }

  window.lkCommand = async (cmd) => {
    switch (cmd) {
      case 'status':
        return { counter, drawn, max_draw_interval_ms: Math.round(maxInterval), sent: sentFrames(),
                 flash_counters: flashCounters, beep_latencies_ms: beepLatencies,
                 // the audio clock against the page's: WebAudio must render in real time
                 audio_s: audio.currentTime - audioT0, wall_s: (performance.now() - t0) / 1000,
                 audio_state: audio.state, audio_base_latency: audio.baseLatency,
                 screen_frames: screenFrames, senders: await senderStats(),
                 participant_sid: room.localParticipant.sid };
      case 'leave':
        await room.disconnect();
        return {};
      case 'mute audio':
        await apub.mute(); return {};
      case 'unmute audio':
        await apub.unmute(); return {};
      case 'mute video':
        await vpub.mute(); return { counter };
      case 'unmute video':
        await vpub.unmute(); return { counter };
      default: {
        const m = /^resize (\d+)x(\d+)$/.exec(cmd);
        if (!m) throw new Error('unknown command ' + cmd);
        // the next draw paints the new size: the captured track's resolution changes there
        W = Number(m[1]); H = Number(m[2]); ROW = Math.round(H / 15);
        canvas.width = W; canvas.height = H;
        return { counter };
      }
    }
  };
  emit('started', { counter, unix_ms: Date.now() });
})().catch((e) => window.lkEvent(JSON.stringify({ event: 'error', message: String(e && e.stack || e) })));
