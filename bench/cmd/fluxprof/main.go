// Command fluxprof runs one FluxCode node exactly as `fluxcode serve` does (same app.Main,
// same environment variables) and additionally serves net/http/pprof on a separate loopback
// address, so that the benchmark harness can capture a CPU profile of a FluxCode target.
//
// It exists because the fluxcode binary has no opt-in pprof listener yet; measurements are
// taken from the real binary, profiles from this one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fluxcode/fluxcode/internal/app"
	"github.com/fluxcode/fluxcode/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fluxprof:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fluxprof", flag.ContinueOnError)
	pprofAddr := fs.String("pprof", "127.0.0.1:0", "listen address of the pprof endpoints (loopback only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*pprofAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-pprof %q is not a loopback host:port", *pprofAddr)
	}
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	ln, err := net.Listen("tcp", *pprofAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	psrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = psrv.Serve(ln) }()
	defer psrv.Close()
	fmt.Fprintln(os.Stdout, "pprof on", "http://"+ln.Addr().String())

	m := app.New(cfg, os.Stdout)
	if err := m.Run(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-m.Err():
	}
	return errors.Join(serveErr, m.Close(context.Background()))
}
