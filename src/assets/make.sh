#!/bin/sh
# Makes the encoded loops embedded in the binary and used by the tests (ffmpeg 5.1, Debian 12).
# Each loop is 4 s, 320x240 at 30 fps, a keyframe every second, and carries the sync marker:
# an all-white frame and a 1 kHz beep (100 ms) at the same instant, every 2 s (t = 0, 2).
# Run from this directory: sh make.sh
set -eu
D=4
VIDEO="testsrc2=size=320x240:rate=30:duration=$D,format=yuv420p,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t\,2)\,0.02)'"
AUDIO="aevalsrc='if(lt(mod(t\,2)\,0.1)\,0.5*sin(2*PI*1000*t)\,0.03*sin(2*PI*300*t))|if(lt(mod(t\,2)\,0.1)\,0.5*sin(2*PI*1000*t)\,0.03*sin(2*PI*300*t))':s=48000:d=$D"
ff() { ffmpeg -hide_banner -v error -y "$@"; }
ff -f lavfi -i "$VIDEO" -c:v libvpx -b:v 250k -g 30 -keyint_min 30 -auto-alt-ref 0 -f ivf vp8.ivf
ff -f lavfi -i "$VIDEO" -c:v libvpx-vp9 -deadline realtime -b:v 250k -g 30 -keyint_min 30 -f ivf vp9.ivf
ff -f lavfi -i "$VIDEO" -c:v libx264 -preset ultrafast -tune zerolatency -profile:v baseline -b:v 250k \
   -g 30 -keyint_min 30 -sc_threshold 0 -x264-params aud=1:repeat-headers=1 -bsf:v h264_mp4toannexb -f h264 h264.h264
ff -f lavfi -i "$VIDEO" -c:v libaom-av1 -cpu-used 8 -usage realtime -b:v 250k -g 30 -keyint_min 30 -f ivf av1.ivf
ff -f lavfi -i "$AUDIO" -c:a libopus -b:a 48k -frame_duration 20 -application voip opus.ogg
ls -l vp8.ivf vp9.ivf h264.h264 av1.ivf opus.ogg
