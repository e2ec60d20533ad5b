// Command videosim publishes per-frame object detections over MQTT as the
// video-metadata JSON that outpost-edge's "video" decoder reads:
//
//	{"camera":"cam-1","ts":"2026-11-23T06:00:00.040Z","frame":2,
//	 "objects":[{"class":"person","confidence":0.91,"bbox":[l,t,w,h]}]}
//
// Given a MOTChallenge det.txt path it replays those detections (every box
// a "person"; frames without a detection sent as empty frames). Without a
// path it generates detections from a seed: pedestrians walking across a
// 1920x1080 frame, a car now and then, detector noise, and one crowd burst.
// Frames are published at --fps (default 25); MOT15's det.txt files carry
// no frame rate (nor frame size), so the rate is a choice, not the
// recording's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/outpost-iot/outpost/edge/cmd/videosim/internal/vsim"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run parses args, publishes, logs a summary and returns the exit code: 0
// done (or stopped by a signal), 1 publishing failed, 2 bad usage.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("videosim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg    vsim.Config
		synth  vsim.SynthConfig
		qos    int
		loop   bool
		start  string
		width  int
		height int
		class  string
	)
	fs.StringVar(&cfg.MQTTURL, "mqtt", vsim.DefaultMQTTURL, "MQTT broker `URL`")
	fs.StringVar(&cfg.Username, "username", "", "MQTT user name")
	fs.StringVar(&cfg.Password, "password", "", "MQTT password")
	fs.StringVar(&cfg.ClientID, "client-id", "", "MQTT client id (default videosim-<random>)")
	fs.StringVar(&cfg.Camera, "camera", vsim.DefaultCamera, "camera `ID` in the payloads")
	fs.StringVar(&cfg.Topic, "topic", vsim.DefaultTopic, "topic `TEMPLATE`; {camera} is replaced by the camera id")
	fs.Float64Var(&cfg.FPS, "fps", vsim.DefaultFPS, "frames per second `N` (frame times advance by 1/N; MOT15 det.txt has no frame rate)")
	fs.BoolVar(&cfg.Fast, "fast", false, "publish as fast as possible (frame times still advance by 1/fps)")
	fs.StringVar(&start, "start", "", "time of the first frame, RFC 3339 (default now)")
	fs.IntVar(&cfg.Count, "frames", 0, "stop after `N` frames; 0 = the whole file, or 3000 generated frames (2 min at 25 fps)")
	fs.BoolVar(&loop, "loop", false, "replay the file, or keep generating, until --frames or a signal")
	fs.IntVar(&qos, "qos", 1, "MQTT QoS, 0 or 1")
	fs.StringVar(&class, "class", "person", "class given to every box of a det.txt file")
	fs.IntVar(&width, "width", 0, "frame width in pixels to put in the payloads (generated: default 1920; det.txt: none)")
	fs.IntVar(&height, "height", 0, "frame height in pixels to put in the payloads (generated: default 1080; det.txt: none)")
	fs.Int64Var(&synth.Seed, "seed", 1, "seed of the generated detections")
	fs.Float64Var(&synth.Rate, "rate", 0.5, "generated: pedestrians entering per second")
	fs.IntVar(&synth.BurstAt, "burst-at", 1500, "generated: frame `N` at which a crowd bursts in; -1 = never")
	fs.IntVar(&synth.BurstFrames, "burst-frames", 250, "generated: frames the burst's heavy arrivals last")
	fs.IntVar(&synth.BurstSize, "burst-size", 15, "generated: pedestrians entering at once when the burst starts")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: videosim [flags] [det.txt]

Publishes one JSON message of object detections per video frame to
<topic> (default cameras/<camera>/detections), as outpost-edge's video
decoder reads them. With a MOTChallenge det.txt path (frame,id,left,top,
width,height,conf,...) it replays the file; without one it generates
pedestrians walking across a frame with a crowd burst (logged to stderr).
MOT15's detection files record no frame rate or frame size: --fps (default
25) and --width/--height are choices. The summary goes to stderr as JSON.

Flags:
`)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, `
Examples:
  videosim --mqtt tcp://127.0.0.1:1883                    # generated, 2 min at 25 fps
  videosim --fps 30 --loop path/to/MOT15/ETH-Bahnhof/det/det.txt
`)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(err error) int {
		fmt.Fprintf(stderr, "videosim: %v\n", err)
		return 2
	}
	if fs.NArg() > 1 {
		return usage(fmt.Errorf("at most one det.txt path, got %q", fs.Args()))
	}
	if qos != 0 && qos != 1 {
		return usage(fmt.Errorf("qos: %d must be 0 or 1", qos))
	}
	cfg.QoS0 = qos == 0
	if cfg.FPS <= 0 {
		return usage(fmt.Errorf("fps: %g must be > 0", cfg.FPS))
	}
	if start != "" {
		t, err := time.Parse(time.RFC3339Nano, start)
		if err != nil {
			return usage(fmt.Errorf("start: %v", err))
		}
		cfg.Start = t
	}
	if width < 0 || height < 0 || (width == 0) != (height == 0) {
		return usage(fmt.Errorf("width and height: set both (> 0) or neither"))
	}
	if err := cfg.Validate(); err != nil {
		return usage(err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	cfg.Log = log

	var src vsim.Source
	if fs.NArg() == 1 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return usage(err)
		}
		frames, err := vsim.ReadMOT(f, class)
		f.Close()
		if err != nil {
			return usage(fmt.Errorf("%s: %v", fs.Arg(0), err))
		}
		for i := range frames {
			frames[i].Width, frames[i].Height = width, height
		}
		src = &vsim.Replay{Frames: frames, Loop: loop}
		log.Info("replaying", "file", fs.Arg(0), "frames", len(frames), "fps", cfg.FPS)
	} else {
		synth.FPS, synth.Width, synth.Height = cfg.FPS, width, height
		g := vsim.NewSynthetic(synth)
		src = vsim.Endless{Synthetic: g}
		if cfg.Count == 0 && !loop {
			cfg.Count = 3000
		}
		sc := g.Config()
		if sc.BurstAt >= 0 {
			log.Info("crowd burst", "from_frame", sc.BurstAt, "frames", sc.BurstFrames, "size", sc.BurstSize,
				"at_seconds", float64(sc.BurstAt-1)/cfg.FPS)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := vsim.Run(ctx, cfg, src)
	log.Info("summary", "frames", res.Frames, "objects", res.Objects, "failed", res.Failed, "bytes", res.Bytes,
		"elapsed_seconds", res.Elapsed.Seconds(), "stopped_by_signal", ctx.Err() != nil)
	if err != nil {
		log.Error("publishing failed", "error", err.Error())
		return 1
	}
	if res.Failed > 0 {
		return 1
	}
	return 0
}
