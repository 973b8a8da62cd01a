// Command bulkgen-bench runs the benchmarks whose figures the README
// quotes: ingest (parse, expand, validate, plan), run (the CLI on the
// preview engine), ratelimit (against a local OpenAI contract server) and
// serve (the service's queue, throughput and export). It is a separate
// program so that the shipped bulkgen binary carries none of its test
// servers: go run ./cmd/bulkgen-bench serve.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmdBench(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var ec exitCode
	switch {
	case errors.As(err, &ec):
		os.Exit(int(ec))
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "bulkgen-bench:", err)
		os.Exit(1)
	}
}

// errUsage means the command line was wrong and usage has been printed.
var errUsage = errors.New("usage")

// env is the process environment as a function, so tests can supply theirs.
type env func(string) string

// exitCode ends the process with a status but no further message: the
// command has already said what happened.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
