//! The mux path: a 1.5 Mbit/s VP8 + Opus stream (10 s: 300 video + 500 audio frames) through
//! the media session (timeline, keyframe gate, interleaving, WebM writer) into a
//! `BufWriter<File>`, next to a baseline that copies the same frame bytes into a
//! `BufWriter<File>` and does nothing else. `cargo bench --bench mux` prints frames/s, ns per
//! frame and the ratio to the baseline measured in the same run.
//!
//! The stream: the embedded 250 kbit/s VP8 loop with every frame padded to 6x its size (frame
//! headers intact, so keyframe detection and size parsing run as usual), plus the Opus loop.

use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use livekit_recorder::media::mux::ContainerKind;
use livekit_recorder::media::session::{Session, SessionConfig};
use livekit_recorder::media::{Codec, FrameIn, SenderReport};
use livekit_recorder::synth::EncodedLoop;

struct Frame {
    track: usize,
    payload: Vec<u8>,
    rtp: u32,
    arrival_ns: u64,
}

fn stream() -> Vec<Frame> {
    let v = EncodedLoop::embedded(Codec::Vp8).expect("vp8 loop");
    let a = EncodedLoop::embedded(Codec::Opus).expect("opus loop");
    let mut frames = Vec::new();
    for i in 0..300u64 {
        let src = &v.frames[i as usize % v.frames.len()].data;
        let mut payload = src.clone();
        payload.resize(src.len() * 6, 0x5a);
        frames.push(Frame { track: 0, payload, rtp: (i * 3000) as u32, arrival_ns: i * 33_333_333 });
    }
    for i in 0..500u64 {
        let payload = a.frames[i as usize % a.frames.len()].data.clone();
        frames.push(Frame {
            track: 1,
            payload,
            rtp: (i * 960) as u32,
            arrival_ns: i * 20_000_000 + 5_000_000,
        });
    }
    frames.sort_by_key(|f| f.arrival_ns);
    frames
}

fn record(frames: &[Frame], file: &mut impl Write) {
    let cfg = SessionConfig::new(ContainerKind::Webm, vec![Codec::Vp8, Codec::Opus]);
    let mut s = Session::new(cfg).expect("session");
    let mut out = Vec::with_capacity(64 * 1024);
    for f in frames {
        let sr = SenderReport { ntp_ns: f.arrival_ns, rtp_time: f.rtp };
        let frame = FrameIn {
            payload: &f.payload,
            rtp_time: f.rtp,
            arrival_ns: f.arrival_ns,
            contiguous: true,
            sender_report: Some(sr),
        };
        let o = s.push(f.track, &frame, &mut out);
        file.write_all(&out).expect("write");
        out.clear();
        if o.flush {
            file.flush().expect("flush");
        }
    }
    let _ = s.finish(&mut out);
    file.write_all(&out).expect("write");
    file.flush().expect("flush");
}

fn baseline(frames: &[Frame], file: &mut impl Write) {
    for f in frames {
        file.write_all(&f.payload).expect("write");
    }
    file.flush().expect("flush");
}

fn open(dir: &tempfile::TempDir, name: &str) -> BufWriter<File> {
    BufWriter::with_capacity(256 * 1024, File::create(dir.path().join(name)).expect("create"))
}

fn bench_mux(c: &mut Criterion) {
    let frames = stream();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("mux_vp8_1.5mbps_opus_10s");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("session_webm", |b| b.iter(|| record(black_box(&frames), &mut open(&dir, "s.webm"))));
    g.bench_function("baseline_bufwriter_copy", |b| {
        b.iter(|| baseline(black_box(&frames), &mut open(&dir, "b.bin")))
    });
    // the same in memory (a Vec), so the CPU cost of the mux path shows without disk noise
    let mut buf = Vec::with_capacity(4 << 20);
    g.bench_function("session_webm_in_memory", |b| {
        b.iter(|| {
            buf.clear();
            record(black_box(&frames), &mut buf)
        })
    });
    g.bench_function("baseline_copy_in_memory", |b| {
        b.iter(|| {
            buf.clear();
            baseline(black_box(&frames), &mut buf)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_mux);

/// Median wall time of `runs` runs of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[runs / 2]
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` runs each benchmark once; no figures
    }
    let frames = stream();
    let dir = tempfile::tempdir().expect("tempdir");
    let n = frames.len() as f64;
    let ours = median(21, || record(&frames, &mut open(&dir, "s.webm")));
    let base = median(21, || baseline(&frames, &mut open(&dir, "b.bin")));
    let mut buf = Vec::with_capacity(4 << 20);
    let ours_mem = median(21, || {
        buf.clear();
        record(&frames, &mut buf)
    });
    let base_mem = median(21, || {
        buf.clear();
        baseline(&frames, &mut buf)
    });
    let bytes: usize = frames.iter().map(|f| f.payload.len()).sum();
    println!(
        "\nmux path, {} frames, {:.1} MB of media, median of 21 runs:",
        frames.len(),
        bytes as f64 / 1e6
    );
    let rows = [
        ("session + WebM -> BufWriter<File>", ours),
        ("baseline: copy -> BufWriter<File>", base),
        ("session + WebM -> Vec (CPU only)", ours_mem),
        ("baseline: copy -> Vec", base_mem),
    ];
    for (name, d) in rows {
        let per = d.as_nanos() as f64 / n;
        println!("  {name:36} {:>10.0} frames/s {:>8.0} ns/frame", 1e9 / per, per);
    }
    println!("  ratio to baseline, to a file: {:.2}x", ours.as_secs_f64() / base.as_secs_f64());
    println!("  ratio to baseline, in memory: {:.2}x", ours_mem.as_secs_f64() / base_mem.as_secs_f64());
    println!("  real-time factor: {:.0}x (10 s of media, to a file)", 10.0 / ours.as_secs_f64());
}
