// Command fluxcode is the FluxCode AI API gateway: one binary that serves (the default), runs
// migrations, manages admin passwords, checks its configuration and probes a running node.
//
// Configuration comes from environment variables (see `fluxcode config vars`) and an
// optional YAML file named by CONFIG_FILE. Run `fluxcode help` for the commands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	_ "time/tzdata" // TZ must work in a minimal container without /usr/share/zoneinfo
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed (database down, node unhealthy)
	exitUsage   = 2 // bad arguments or invalid configuration
)

const usage = `fluxcode — an AI API gateway

Usage:
  fluxcode [serve]                      run a node (the default command)
  fluxcode migrate                      apply pending database migrations and exit
  fluxcode admin create --email E [--password P]
                                        create an admin user (prints a generated password if none given)
  fluxcode admin reset-password --email E [--password P]
                                        set a user's password (prints a generated one if none given);
                                        the user's older login tokens stop working
  fluxcode admin rotate-key [--batch N]
                                        re-seal every stored secret under ENCRYPTION_KEY, opening
                                        older ones with ENCRYPTION_KEY_PREVIOUS; safe while nodes serve
  fluxcode config check                 print the effective configuration, secrets hidden;
                                        exit 2 if it is invalid
  fluxcode config vars                  print every configuration variable as a Markdown table
  fluxcode health [--url URL] [--timeout D]
                                        probe a running node's /health (default
                                        http://127.0.0.1:$SERVER_PORT); exit 0 only on 200
  fluxcode version                      print the version

Configuration is read from the environment (and CONFIG_FILE, a YAML file); the environment wins.
Exit codes: 0 success, 1 failure, 2 usage or configuration error.
`

// env looks up an environment variable (os.LookupEnv in main, a map in tests).
type env func(string) (string, bool)

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, getenv, stdout, stderr)
	case "admin":
		return admin(ctx, args, getenv, stdout, stderr)
	case "config":
		return configCmd(args, getenv, stdout, stderr)
	case "health":
		return health(ctx, args, getenv, stdout, stderr)
	case "version", "--version", "-version":
		return version(stdout)
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "fluxcode: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}
