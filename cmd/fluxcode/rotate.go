package main

import (
	"context"
	"fmt"
	"io"

	"github.com/fluxcode/fluxcode/internal/app"
)

// rotateKey re-seals every stored secret under ENCRYPTION_KEY, reading older values with
// ENCRYPTION_KEY_PREVIOUS. Safe while nodes serve (each row is replaced only if unchanged
// since it was read) and idempotent: run it again after an interruption.
func rotateKey(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := newFlags("fluxcode admin rotate-key", stderr)
	batch := fs.Int("batch", 500, "rows read per statement")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 || *batch <= 0 {
		fmt.Fprintf(stderr, "fluxcode admin rotate-key: unexpected arguments %q (or --batch not positive)\n", fs.Args())
		return exitUsage
	}
	cfg, ok := loadConfig(getenv, stderr)
	if !ok {
		return exitUsage
	}
	keys, _, err := app.LoadKeys(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "fluxcode admin rotate-key: %v\n", err)
		return exitFailure
	}
	db, err := app.OpenStore(ctx, cfg, keys, app.NewLogger(cfg, stderr))
	if err != nil {
		fmt.Fprintf(stderr, "fluxcode admin rotate-key: %v\n", err)
		return exitFailure
	}
	defer db.Close()
	// A database last served by a version without a stored API key hash key gets it now,
	// derived from the old key, before anything is re-sealed.
	if _, err := app.WithAPIKeyHashKey(ctx, db, keys); err != nil {
		fmt.Fprintf(stderr, "fluxcode admin rotate-key: %v\n", err)
		return exitFailure
	}
	rep, err := db.ResealSecrets(ctx, *batch)
	if err != nil {
		fmt.Fprintf(stderr, "fluxcode admin rotate-key: %v (re-sealed %d of %d values so far; run it again once fixed)\n", err, rep.Resealed, rep.Checked)
		return exitFailure
	}
	fmt.Fprintf(stdout, "checked %d sealed values, re-sealed %d under ENCRYPTION_KEY (key id %s)\n", rep.Checked, rep.Resealed, keys.KeyID())
	fmt.Fprintln(stdout, "once every node runs with this ENCRYPTION_KEY, remove ENCRYPTION_KEY_PREVIOUS")
	return exitOK
}
