// Command mockupstream serves the provider mock of internal/mockupstream on a loopback
// port, for benchmarks and the cluster harness. It is scripted and inspected over HTTP
// through /_mock/ (see the package documentation).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/fluxcode/fluxcode/internal/mockupstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mockupstream:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. It prints "listening on <url>" once the port is open.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mockupstream", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9090", "listen address (loopback only)")
	logSize := fs.Int("log-size", 10000, "request log entries kept (negative: none)")
	record := fs.Int("record-per-key", 32, "received requests kept per key (negative: none)")
	events := fs.Int("events", mockupstream.DefaultEvents, "default number of text deltas per stream")
	interval := fs.Duration("interval", 0, "default pause between stream events")
	latency := fs.Duration("latency", 0, "default wait before response headers")
	accessTTL := fs.Duration("oauth-access-ttl", mockupstream.DefaultAccessTTL, "lifetime of the access tokens the login server issues")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *events < 0 {
		return errors.New("-events must not be negative")
	}
	if fs.NArg() > 0 {
		return errors.New("unexpected arguments: " + fmt.Sprint(fs.Args()))
	}
	def := mockupstream.Script{Events: *events, Interval: *interval, Latency: *latency}
	if *events == 0 {
		def.Events = -1 // the flag's 0 means none, not the package default
	}
	srv := mockupstream.New(mockupstream.Options{
		Addr: *addr, LogSize: *logSize, RecordPerKey: *record, Default: def,
	})
	if *accessTTL <= 0 {
		return errors.New("-oauth-access-ttl must be positive")
	}
	srv.SetAccessTTL(*accessTTL)
	if err := srv.Start(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "listening on", srv.URL())
	<-ctx.Done()
	return srv.Close()
}
