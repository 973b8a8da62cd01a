// Command bulkgen is a bulk AI image generator: a command-line batch runner,
// a multi-user web service, and queue workers, in one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx := context.Background()
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	var ec exitCode
	switch {
	case errors.As(err, &ec):
		os.Exit(int(ec))
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "bulkgen:", err)
		os.Exit(1)
	}
}

// exitCode ends the process with a status but no further message: the
// command has already said what happened.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// errUsage means the command line was wrong and usage has been printed.
var errUsage = errors.New("usage")

// env is the process environment as a function, so tests can supply theirs.
type env func(string) string

const usage = `bulkgen — bulk AI image generation

Usage:
  bulkgen run FILE... -o DIR [flags]   generate images from prompt files (TXT, CSV, JSONL, manifest)
  bulkgen models [--all]               list the model catalogue and which providers are configured
  bulkgen serve [flags]                the web service: REST API, OpenAI-compatible endpoint, workers
  bulkgen worker [flags]               image workers only, next to a server on the same database
  bulkgen migrate [flags]              apply the database migrations and print them
  bulkgen admin COMMAND [flags]        create-token, create-admin, credits, resume-provider, sweep-files
  bulkgen version                      print the version

Run 'bulkgen COMMAND -h' for a command's flags.
`

func run(ctx context.Context, args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, getenv, stdin, stdout, stderr)
	case "models":
		return cmdModels(ctx, rest, getenv, stdout, stderr)
	case "serve":
		return cmdServe(ctx, rest, getenv, stdout, stderr)
	case "worker":
		return cmdWorker(ctx, rest, getenv, stderr)
	case "migrate":
		return cmdMigrate(ctx, rest, getenv, stdout, stderr)
	case "admin":
		return cmdAdmin(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "bulkgen", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "bulkgen: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

// interrupts returns two contexts: soft is cancelled by the first SIGINT or
// SIGTERM, hard by the second. stop releases the signal handler.
func interrupts(parent context.Context, stderr io.Writer, onFirst string) (soft, hard context.Context, stop func()) {
	soft, cancelSoft := context.WithCancel(parent)
	hard, cancelHard := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-ch:
				n++
				if n == 1 {
					fmt.Fprintln(stderr, "\n"+onFirst)
					cancelSoft()
				} else {
					fmt.Fprintln(stderr, "\nsecond interrupt: aborting images in flight")
					cancelHard()
					return
				}
			case <-done:
				return
			}
		}
	}()
	return soft, hard, func() {
		signal.Stop(ch)
		close(done)
		cancelSoft()
		cancelHard()
	}
}
