// Command loadgen is the benchmark's load generator, run by cmd/bench as a process of its
// own so that its CPU is never counted against a target. It sends Anthropic Messages, OpenAI
// Responses or Gemini generateContent requests (-protocol) to one loopback target in a closed loop at a fixed concurrency, bounded in time
// and count, and prints one JSON result (bench/internal/load.Result) on stdout.
//
// With -hold N it instead opens N slow streams, prints {"open":N} once all have started, and
// holds them until its standard input closes or it is signalled.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fluxcode/fluxcode/bench/internal/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// HoldReport is the line printed in -hold mode once the streams are open.
type HoldReport struct {
	Open  int    `json:"open"`
	Error string `json:"error,omitempty"`
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var cfg load.Config
	fs.StringVar(&cfg.URL, "url", "", "target base URL (loopback only)")
	fs.StringVar(&cfg.Protocol, "protocol", load.Anthropic, "protocol of the requests: anthropic (/v1/messages), openai (/v1/responses) or gemini (generateContent)")
	fs.StringVar(&cfg.Key, "key", "bench", "API key, sent where the protocol's clients send it")
	fs.StringVar(&cfg.Model, "model", "claude-sonnet-5-5", "model in the request body")
	fs.BoolVar(&cfg.Stream, "stream", false, "ask for SSE answers")
	fs.IntVar(&cfg.Concurrency, "c", 1, "concurrent workers (closed loop)")
	fs.DurationVar(&cfg.Warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up")
	fs.DurationVar(&cfg.Duration, "duration", 3*time.Second, "measured window")
	fs.Int64Var(&cfg.MaxRequests, "max-requests", 2_000_000, "cap on requests sent")
	fs.StringVar(&cfg.System, "system", "", "system text of the request (e.g. a mock directive)")
	hold := fs.Int("hold", 0, "open this many slow streams and hold them instead of generating load")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	enc := json.NewEncoder(stdout)
	if *hold > 0 {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { // the harness closes our stdin to end the hold
			_, _ = io.Copy(io.Discard, stdin)
			cancel()
		}()
		return load.Hold(ctx, cfg, *hold, func(open int, err error) {
			r := HoldReport{Open: open}
			if err != nil {
				r.Error = err.Error()
			}
			_ = enc.Encode(r)
		})
	}
	res, err := load.Run(ctx, cfg)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return enc.Encode(res)
}
