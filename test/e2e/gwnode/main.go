// Command gwnode runs one bare gateway node, for the end-to-end tests that kill a node with
// SIGKILL (while it holds concurrency slots, while it completes requests): the kill needs a
// process of its own. It reads its settings from the environment:
//
//	GWNODE_LISTEN       loopback address to serve on, e.g. 127.0.0.1:0 (the chosen address is
//	                    printed as "listening <addr>" on stdout)
//	DATABASE_URL        PostgreSQL URL, or a SQLite file path (the single-node shape)
//	REDIS_URL           redis:// URL; empty for in-process coordination (single node)
//	ENCRYPTION_KEY      the master key shared with the test (64 hex characters)
//	GATEWAY_SLOT_TTL    slot lease (Go duration)
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/coord/memory"
	"github.com/fluxcode/fluxcode/internal/coord/redis"
	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gwnode:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	master, err := secret.ParseMasterKey(os.Getenv("ENCRYPTION_KEY"))
	if err != nil {
		return fmt.Errorf("ENCRYPTION_KEY: %w", err)
	}
	keys, err := secret.NewKeys(master)
	if err != nil {
		return err
	}
	st, err := sqlstore.Open(ctx, sqlstore.Config{DSN: os.Getenv("DATABASE_URL"), Keys: keys, Logger: log,
		SQLiteSync: os.Getenv("SQLITE_SYNCHRONOUS")})
	if err != nil {
		return err
	}
	defer st.Close()
	var co coord.Coordinator
	if url := os.Getenv("REDIS_URL"); url != "" {
		rc, err := redis.New(ctx, redis.Options{URL: url})
		if err != nil {
			return err
		}
		co = rc
	} else {
		co = memory.New()
	}
	defer co.Close()
	cfg := gateway.Default()
	// The mock upstream listens on loopback, which the gateway refuses by default.
	cfg.AllowedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	if v := os.Getenv("GATEWAY_SLOT_TTL"); v != "" {
		if cfg.SlotTTL, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("GATEWAY_SLOT_TTL: %w", err)
		}
	}
	gw, err := gateway.New(gateway.Options{Providers: []provider.Provider{anthropic.New()}, Store: st, Coord: co, Keys: keys, Prices: billing.Default(),
		Logger: log, Config: cfg, NodeName: "gwnode"})
	if err != nil {
		return err
	}
	defer gw.Close(ctx)
	mux := http.NewServeMux()
	gw.Routes(mux)
	ln, err := net.Listen("tcp", os.Getenv("GWNODE_LISTEN"))
	if err != nil {
		return err
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		return fmt.Errorf("refusing to serve on %s: loopback only", ip)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	return (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
}
