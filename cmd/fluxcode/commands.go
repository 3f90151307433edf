package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/fluxcode/fluxcode/internal/app"
	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
)

// loadConfig loads the configuration or explains why it cannot, one problem a line.
func loadConfig(getenv env, stderr io.Writer) (config.Config, bool) {
	cfg, err := config.Load(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "fluxcode: invalid configuration:")
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "  - %s\n", line)
		}
		return config.Config{}, false
	}
	return cfg, true
}

// newFlags returns a flag set that reports errors to stderr instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// serve runs a node until SIGINT or SIGTERM, then shuts it down gracefully: it drains (reports
// not-ready while still serving, SERVER_DRAIN_DELAY), then stops accepting and lets requests
// finish (SERVER_SHUTDOWN_TIMEOUT). A second signal during shutdown kills the process at once
// (the default signal behaviour is restored).
func serve(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "fluxcode serve: unexpected arguments %q\n", args)
		return exitUsage
	}
	cfg, ok := loadConfig(getenv, stderr)
	if !ok {
		return exitUsage
	}
	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	m := app.New(cfg, stdout)
	// Once per process, before any Redis client exists.
	app.RouteRedisLogs(cfg, m.Logger())
	if err := m.Run(sigCtx); err != nil {
		m.Logger().Error("start failed", "err", err)
		return exitFailure
	}
	code := exitOK
	select {
	case <-sigCtx.Done():
		stop()
		// Out of the load balancer's rotation first, then stop accepting (Close).
		m.Drain(ctx)
		m.Logger().Info("shutting down", "grace", cfg.ShutdownTimeout.String())
	case err := <-m.Err():
		m.Logger().Error("server failed", "err", err)
		code = exitFailure
	}
	stop()
	if err := m.Close(context.Background()); err != nil {
		m.Logger().Error("shutdown", "err", err)
		code = exitFailure
	}
	return code
}

// openStore opens the configured database for a maintenance command, logging to stderr.
func openStore(ctx context.Context, cfg config.Config, stderr io.Writer) (*sqlstore.DB, error) {
	logger := app.NewLogger(cfg, stderr)
	keys, _, err := app.LoadKeys(cfg)
	if err != nil {
		return nil, err
	}
	return app.OpenStore(ctx, cfg, keys, logger)
}

// migrate applies pending migrations and lists them.
func migrate(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "fluxcode migrate: unexpected arguments %q\n", args)
		return exitUsage
	}
	cfg, ok := loadConfig(getenv, stderr)
	if !ok {
		return exitUsage
	}
	// Opening migrates (under the advisory lock on PostgreSQL) and reports what it applied.
	db, err := openStore(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "fluxcode migrate: %v\n", err)
		return exitFailure
	}
	defer db.Close()
	applied := db.Applied()
	for _, v := range applied {
		fmt.Fprintf(stdout, "applied %s\n", v)
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "schema is up to date")
	}
	return exitOK
}

// admin manages admin accounts from the command line, for first access and lost passwords.
func admin(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "rotate-key" {
		return rotateKey(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "create" && args[0] != "reset-password") {
		fmt.Fprintf(stderr, "fluxcode admin: want create, reset-password or rotate-key\n\n%s", usage)
		return exitUsage
	}
	sub := args[0]
	fs := newFlags("fluxcode admin "+sub, stderr)
	email := fs.String("email", "", "the user's e-mail address (required)")
	password := fs.String("password", "", "the new password; omitted: one is generated and printed")
	if err := fs.Parse(args[1:]); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fluxcode admin %s: unexpected arguments %q\n", sub, fs.Args())
		return exitUsage
	}
	addr := strings.ToLower(strings.TrimSpace(*email))
	if addr == "" {
		fmt.Fprintf(stderr, "fluxcode admin %s: --email is required\n", sub)
		return exitUsage
	}
	pw, generated := *password, *password == ""
	if generated {
		pw = app.GeneratePassword()
	} else if n := utf8.RuneCountInString(pw); n < 8 || len(pw) > 256 {
		fmt.Fprintf(stderr, "fluxcode admin %s: --password must have 8 to 256 characters\n", sub)
		return exitUsage
	}
	cfg, ok := loadConfig(getenv, stderr)
	if !ok {
		return exitUsage
	}
	db, err := openStore(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "fluxcode admin %s: %v\n", sub, err)
		return exitFailure
	}
	defer db.Close()

	if sub == "create" {
		u := &store.User{Email: addr, PasswordHash: secret.HashPassword(pw), Role: store.RoleAdmin, Status: store.StatusActive}
		if err := db.CreateUser(ctx, u); err != nil {
			if errors.Is(err, store.ErrConflict) {
				fmt.Fprintf(stderr, "fluxcode admin create: a user with e-mail %s exists; use admin reset-password\n", addr)
			} else {
				fmt.Fprintf(stderr, "fluxcode admin create: %v\n", err)
			}
			return exitFailure
		}
		fmt.Fprintf(stdout, "created admin %s\n", addr)
	} else {
		u, err := db.GetUserByEmail(ctx, addr)
		if errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(stderr, "fluxcode admin reset-password: no user has e-mail %s\n", addr)
			return exitFailure
		}
		if err == nil {
			err = db.SetPassword(ctx, u.ID, secret.HashPassword(pw))
		}
		if err != nil {
			fmt.Fprintf(stderr, "fluxcode admin reset-password: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "password of %s changed; older login tokens no longer work\n", addr)
	}
	if generated {
		fmt.Fprintf(stdout, "password=%s\n", pw)
	}
	return exitOK
}

// configCmd prints the effective configuration (check) or the table of variables (vars).
func configCmd(args []string, getenv env, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "fluxcode config: want check or vars\n\n%s", usage)
		return exitUsage
	}
	switch args[0] {
	case "check":
		cfg, ok := loadConfig(getenv, stderr)
		if !ok {
			return exitUsage
		}
		fmt.Fprint(stdout, cfg.Redacted())
		fmt.Fprintln(stdout, "configuration is valid")
		return exitOK
	case "vars":
		if err := config.WriteMarkdown(stdout); err != nil {
			fmt.Fprintf(stderr, "fluxcode config vars: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprintf(stderr, "fluxcode config: unknown subcommand %q; want check or vars\n", args[0])
	return exitUsage
}

// health probes a running node, for container health checks where curl is absent. It reads
// only SERVER_HOST and SERVER_PORT, so it works even when the rest of the environment does not
// validate.
func health(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := newFlags("fluxcode health", stderr)
	url := fs.String("url", "", "base URL of the node (default http://127.0.0.1:$SERVER_PORT)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fluxcode health: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	target := *url
	if target == "" {
		target = "http://" + localAddr(getenv)
	}
	target = strings.TrimRight(target, "/")
	if !strings.HasSuffix(target, "/health") {
		target += "/health"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintf(stderr, "fluxcode health: %v\n", err)
		return exitUsage
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "fluxcode health: %v\n", err)
		return exitFailure
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	stdout.Write(body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "fluxcode health: %s answered %s\n", target, resp.Status)
		return exitFailure
	}
	return exitOK
}

// localAddr is where this host's node listens: SERVER_HOST unless it is a wildcard (then
// loopback), and SERVER_PORT (default 8080).
func localAddr(getenv env) string {
	host, _ := getenv("SERVER_HOST")
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	port, ok := getenv("SERVER_PORT")
	if !ok || port == "" {
		port = "8080"
	}
	return net.JoinHostPort(host, port)
}

func version(stdout io.Writer) int {
	commit := app.Commit
	if commit == "" {
		commit = "unknown commit"
	}
	fmt.Fprintf(stdout, "fluxcode %s (%s, %s)\n", app.Version, commit, runtime.Version())
	return exitOK
}
