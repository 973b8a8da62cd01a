package config_test

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/config"
)

// load parses args for cmd with env as the environment.
func load(t *testing.T, cmd config.Command, args []string, env map[string]string) (config.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet(string(cmd), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := config.Bind(fs, cmd)
	if err := fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	return f.Load(func(k string) string { return env[k] })
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "bulkgen.json", `{"addr": "0.0.0.0:9000", "workers": 3, "data": "/srv/file", "shutdown_timeout": "1m", "no_migrate": true}`)
	secret := writeFile(t, "db", "postgres://u:p@db/bulkgen\n")
	tests := []struct {
		name  string
		cmd   config.Command
		args  []string
		env   map[string]string
		check func(t *testing.T, c config.Config)
	}{
		{name: "defaults", cmd: config.Serve, check: func(t *testing.T, c config.Config) {
			if c.DataDir != "data" || c.Addr != "127.0.0.1:8080" || c.Workers != 0 || c.LogFormat != "json" || c.NoMigrate {
				t.Errorf("defaults: %+v", c)
			}
			if got := c.DatabaseDSN(); got != filepath.Join("data", "bulkgen.db") {
				t.Errorf("DatabaseDSN %q", got)
			}
			if got := c.ImageDir(); got != filepath.Join("data", "images") {
				t.Errorf("ImageDir %q", got)
			}
		}},
		{name: "file over defaults", cmd: config.Serve, args: []string{"--config", file}, check: func(t *testing.T, c config.Config) {
			if c.Addr != "0.0.0.0:9000" || c.Workers != 3 || c.DataDir != "/srv/file" || c.ShutdownTimeout != time.Minute || !c.NoMigrate {
				t.Errorf("file not applied: %+v", c)
			}
			if c.DatabaseDSN() != filepath.Join("/srv/file", "bulkgen.db") {
				t.Errorf("DatabaseDSN %q", c.DatabaseDSN())
			}
		}},
		{name: "env over file", cmd: config.Serve, env: map[string]string{"BULKGEN_CONFIG": file, "BULKGEN_WORKERS": "7", "BULKGEN_DATA": "/srv/env"},
			check: func(t *testing.T, c config.Config) {
				if c.Workers != 7 || c.DataDir != "/srv/env" || c.Addr != "0.0.0.0:9000" {
					t.Errorf("env over file: %+v", c)
				}
			}},
		{name: "flags over env", cmd: config.Serve, args: []string{"--config", file, "--workers", "9", "--addr", "127.0.0.1:0"},
			env: map[string]string{"BULKGEN_WORKERS": "7", "BULKGEN_ADDR": "127.0.0.1:1"},
			check: func(t *testing.T, c config.Config) {
				if c.Workers != 9 || c.Addr != "127.0.0.1:0" {
					t.Errorf("flags over env: %+v", c)
				}
			}},
		{name: "secret from file", cmd: config.Migrate, env: map[string]string{"BULKGEN_DB_FILE": secret},
			check: func(t *testing.T, c config.Config) {
				if c.DatabaseDSN() != "postgres://u:p@db/bulkgen" {
					t.Errorf("db %q", c.Database)
				}
			}},
		{name: "secret variable over its file", cmd: config.Migrate, env: map[string]string{"BULKGEN_DB_FILE": secret, "BULKGEN_DB": "other.db"},
			check: func(t *testing.T, c config.Config) {
				if c.Database != "other.db" {
					t.Errorf("db %q", c.Database)
				}
			}},
		{name: "other command's file keys ignored", cmd: config.Migrate, args: []string{"--config", file},
			check: func(t *testing.T, c config.Config) {
				if c.DataDir != "/srv/file" || c.Workers != 0 {
					t.Errorf("migrate: %+v", c)
				}
			}},
		{name: "blob sweep on by default", cmd: config.Worker, check: func(t *testing.T, c config.Config) {
			if c.BlobSweepInterval != time.Hour {
				t.Errorf("BlobSweepInterval %v, want 1h", c.BlobSweepInterval)
			}
		}},
		{name: "blob sweep off", cmd: config.Serve, env: map[string]string{"BULKGEN_BLOB_SWEEP_INTERVAL": "0"},
			check: func(t *testing.T, c config.Config) {
				if c.BlobSweepInterval != 0 {
					t.Errorf("BlobSweepInterval %v, want 0", c.BlobSweepInterval)
				}
			}},
		{name: "no-migrate flag", cmd: config.Worker, args: []string{"--no-migrate"},
			check: func(t *testing.T, c config.Config) {
				if !c.NoMigrate {
					t.Error("NoMigrate not set")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(t, tt.cmd, tt.args, tt.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cmd  config.Command
		args []string
		env  map[string]string
		file string
		want []string // every one must appear in the error
	}{
		{name: "every problem at once", cmd: config.Serve,
			args: []string{"--addr", "nonsense", "--workers", "-1", "--log-level", "loud", "--log-format", "xml", "--shutdown-timeout", "0s"},
			want: []string{`addr "nonsense"`, "workers -1", `log-level "loud"`, `log-format "xml"`, "shutdown-timeout 0s"}},
		{name: "unparsable values name their source", cmd: config.Serve,
			args: []string{"--job-timeout", "soon"}, env: map[string]string{"BULKGEN_WORKERS": "many"},
			want: []string{`BULKGEN_WORKERS: "many" is not a whole number`, `--job-timeout: "soon" is not a duration`}},
		{name: "rescue must exceed timeout", cmd: config.Worker, args: []string{"--job-timeout", "10m", "--rescue-after", "5m"},
			want: []string{"rescue-after 5m0s: must exceed job-timeout 10m0s"}},
		{name: "negative sweep interval", cmd: config.Serve, args: []string{"--blob-sweep-interval", "-1m"},
			want: []string{"blob-sweep-interval -1m0s: must be 0 (off) or positive"}},
		{name: "bad port", cmd: config.Serve, args: []string{"--addr", "localhost:99999"}, want: []string{"port must be a number"}},
		{name: "unknown file key", cmd: config.Serve, file: `{"adr": "x"}`, want: []string{`unknown key "adr"`}},
		{name: "file value of the wrong shape", cmd: config.Serve, file: `{"workers": [1]}`, want: []string{"workers: want a string, number or boolean"}},
		{name: "malformed file", cmd: config.Serve, file: `{`, want: []string{"config file"}},
		{name: "missing secret file", cmd: config.Admin, env: map[string]string{"BULKGEN_DB_FILE": "/nonexistent/db"}, want: []string{"BULKGEN_DB_FILE"}},
		{name: "unsupported db scheme", cmd: config.Migrate, args: []string{"--db", "mysql://x"}, want: []string{"db: want postgres://"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if tt.file != "" {
				args = append(args, "--config", writeFile(t, "c.json", tt.file))
			}
			_, err := load(t, tt.cmd, args, tt.env)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not mention %q", err, w)
				}
			}
		})
	}
}

func TestFlagsPerCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cmd    config.Command
		has    []string
		hasNot []string
	}{
		{config.Serve, []string{"data", "db", "addr", "workers", "config", "no-migrate", "max-upload", "blob-sweep-interval"}, nil},
		{config.Worker, []string{"data", "db", "workers", "shutdown-timeout", "blob-sweep-interval"}, []string{"addr", "max-upload"}},
		{config.Migrate, []string{"data", "db", "log-level"}, []string{"addr", "workers", "blob-sweep-interval"}},
		{config.Admin, []string{"data", "db"}, []string{"addr", "workers"}},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		config.Bind(fs, tt.cmd)
		for _, n := range tt.has {
			if fs.Lookup(n) == nil {
				t.Errorf("%s: no --%s", tt.cmd, n)
			}
		}
		for _, n := range tt.hasNot {
			if fs.Lookup(n) != nil {
				t.Errorf("%s: unexpected --%s", tt.cmd, n)
			}
		}
	}
}

func TestPrintOptionsNamesEveryVariable(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	config.PrintOptions(&buf, config.Serve)
	help := buf.String()
	for _, want := range []string{"--data DIR", "env BULKGEN_DATA; default data", "--addr HOST:PORT", "BULKGEN_ADDR; default 127.0.0.1:8080",
		"BULKGEN_DB or BULKGEN_DB_FILE", "BULKGEN_WORKERS", "BULKGEN_CONFIG", "BULKGEN_URL_KEY_FILE", "--no-migrate", "BULKGEN_SHUTDOWN_TIMEOUT",
		"--blob-sweep-interval DURATION", "BULKGEN_BLOB_SWEEP_INTERVAL; default 1h0m0s"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
}

func TestLogValueHidesPassword(t *testing.T) {
	t.Parallel()
	c := config.Default()
	c.Database = "postgres://bulkgen:hunter2@db:5432/bulkgen"
	got := c.LogValue().String()
	if strings.Contains(got, "hunter2") || !strings.Contains(got, "bulkgen:xxxxx@db") {
		t.Errorf("LogValue = %s", got)
	}
}
