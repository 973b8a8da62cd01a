// Package config is the typed configuration of `bulkgen serve`, `worker`,
// `migrate` and `admin`: zero-config defaults (./data, SQLite, the preview
// engine), an optional JSON file, BULKGEN_* environment variables (with a
// BULKGEN_*_FILE form for each secret) and command-line flags, applied in
// that order so that flags win over the environment, the environment over
// the file and the file over the defaults.
//
// One table (options) names every setting once, with its flag, variable,
// file key and help text, so the three sources and `--help` cannot drift
// apart.
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the configuration of the server-side commands.
type Config struct {
	// DataDir holds the SQLite database and the image folder.
	DataDir string
	// Database is "postgres://…" or an SQLite path; empty means
	// DataDir/bulkgen.db (see DatabaseDSN).
	Database string
	// Addr is the HTTP listen address (serve only).
	Addr string
	// Workers is the number of image jobs each provider's queue runs at
	// once in this process; 0 means the provider's catalogue concurrency
	// plus headroom (see providerQueues in cmd/bulkgen).
	Workers int
	// LogLevel is debug, info, warn or error; LogFormat json or text.
	LogLevel  string
	LogFormat string
	// ShutdownTimeout is how long a stopping process lets in-flight HTTP
	// requests and image jobs finish before it cancels them.
	ShutdownTimeout time.Duration
	// MaxUploadBytes caps an uploaded input file (serve only).
	MaxUploadBytes int64
	// MaxBatchImages caps the images of one batch (serve only).
	MaxBatchImages int
	// JobTimeout bounds one run of an image job.
	JobTimeout time.Duration
	// RescueAfter is how long a job may stay running before it is assumed
	// lost with its process and run again; it must exceed JobTimeout.
	RescueAfter time.Duration
	// BlobSweepInterval is how often serve and worker remove image files
	// that no image row references (left by a process that died between
	// writing a file and recording it); 0 disables the sweep.
	BlobSweepInterval time.Duration
	// NoMigrate skips applying migrations on start (serve and worker).
	NoMigrate bool
	// Catalog is a model catalogue file merged over the built-in one
	// (docs/catalog.md); "" means the built-in catalogue alone.
	Catalog string
	// URLKey signs the short-lived image links of the OpenAI-compatible
	// endpoint; empty means a random key per process. Secret.
	URLKey string
	// File is the configuration file that was read, if any.
	File string

	// Run holds the settings of `bulkgen run` (command Run only).
	Run Run
}

// Run is the configuration of `bulkgen run`: the batch's defaults and how
// it runs. Zero values mean the defaults their help names.
type Run struct {
	Out string
	// Defaults of rows that do not set the field themselves.
	Model, Size, Aspect, Quality, Format, Style, Negative string
	N                                                     int
	Seed                                                  *int64
	Options                                               map[string]string
	Template, Name, Wildcards                             string
	Combinatorial                                         bool
	MaxPerRow                                             int
	DryRun                                                bool
	Concurrency                                           int
	// Retries and RetryDelay override the retry policy's MaxAttempts and
	// first delay; 0 keeps the policy's.
	Retries    int
	RetryDelay time.Duration
	JSON       bool
	// Delimiter and InputFormat override what the input's name and
	// content suggest.
	Delimiter   rune
	InputFormat string
	// MaxCost refuses a run whose estimate is above it (credits; 0: none).
	// ConfirmAbove asks on a terminal before a run estimated above it
	// starts; Yes never asks.
	MaxCost      int64
	ConfirmAbove int64
	Yes          bool
}

// Command selects the options a subcommand accepts.
type Command string

// The commands that take a Config.
const (
	Serve   Command = "serve"
	Worker  Command = "worker"
	Migrate Command = "migrate"
	Admin   Command = "admin"
	RunCmd  Command = "run"
)

// Default returns the zero-config settings.
func Default() Config {
	return Config{
		DataDir:         "data",
		Addr:            "127.0.0.1:8080",
		LogLevel:        "info",
		LogFormat:       "json",
		ShutdownTimeout: 30 * time.Second,
		MaxUploadBytes:  64 << 20,
		MaxBatchImages:  100_000,
		JobTimeout:      3 * time.Minute,
		RescueAfter:     5 * time.Minute,

		BlobSweepInterval: time.Hour,

		Run: Run{N: 1, ConfirmAbove: DefaultConfirmAbove},
	}
}

// DefaultConfirmAbove is the estimate, in credits (US$10), above which
// `bulkgen run` asks before it starts on a terminal.
const DefaultConfirmAbove = 10_000

// option is one setting in every source it can come from.
type option struct {
	flag  string // command-line flag, without dashes; "" for none
	alias string // a second name of the flag ("o" for "output"); "" for none
	arg   string // the flag's value placeholder in help text
	env   string // environment variable; "" for none
	key   string // key in the configuration file; "" for none
	usage string
	// secret options also read ENV_FILE, and are never shown in help.
	secret bool
	// isBool options are flags without a value.
	isBool bool
	// only lists the commands that take the option; empty means all but
	// run, whose options are its own.
	only []Command
	set  func(c *Config, v string) error
	show func(c Config) string // the default, for help
}

var options = []option{
	{flag: "data", arg: "DIR", env: "BULKGEN_DATA", key: "data",
		usage: "folder for the SQLite database and the images",
		set:   func(c *Config, v string) error { c.DataDir = v; return nil },
		show:  func(c Config) string { return c.DataDir }},
	{flag: "db", arg: "URL", env: "BULKGEN_DB", key: "db", secret: true,
		usage: "database: postgres://user:pass@host/db or an SQLite file path",
		set:   func(c *Config, v string) error { c.Database = v; return nil },
		show:  func(c Config) string { return "DATA/bulkgen.db" }},
	{flag: "addr", arg: "HOST:PORT", env: "BULKGEN_ADDR", key: "addr", only: []Command{Serve},
		usage: "HTTP listen address (port 0 picks a free port)",
		set:   func(c *Config, v string) error { c.Addr = v; return nil },
		show:  func(c Config) string { return c.Addr }},
	{flag: "workers", arg: "N", env: "BULKGEN_WORKERS", key: "workers", only: []Command{Serve, Worker},
		usage: "image jobs run at once per provider (0: the provider's concurrency from the catalogue plus half again; calls in flight stay within that concurrency)",
		set:   func(c *Config, v string) error { return parseInt(v, &c.Workers) },
		show:  func(c Config) string { return strconv.Itoa(c.Workers) }},
	{flag: "log-level", arg: "LEVEL", env: "BULKGEN_LOG_LEVEL", key: "log_level",
		usage: "debug, info, warn or error",
		set:   func(c *Config, v string) error { c.LogLevel = strings.ToLower(v); return nil },
		show:  func(c Config) string { return c.LogLevel }},
	{flag: "log-format", arg: "FORMAT", env: "BULKGEN_LOG_FORMAT", key: "log_format",
		usage: "json or text",
		set:   func(c *Config, v string) error { c.LogFormat = strings.ToLower(v); return nil },
		show:  func(c Config) string { return c.LogFormat }},
	{flag: "shutdown-timeout", arg: "DURATION", env: "BULKGEN_SHUTDOWN_TIMEOUT", key: "shutdown_timeout", only: []Command{Serve, Worker},
		usage: "on SIGTERM, how long in-flight requests and images may take to finish",
		set:   func(c *Config, v string) error { return parseDuration(v, &c.ShutdownTimeout) },
		show:  func(c Config) string { return c.ShutdownTimeout.String() }},
	{flag: "max-upload", arg: "BYTES", env: "BULKGEN_MAX_UPLOAD", key: "max_upload", only: []Command{Serve},
		usage: "largest accepted input file upload",
		set:   func(c *Config, v string) error { return parseInt64(v, &c.MaxUploadBytes) },
		show:  func(c Config) string { return strconv.FormatInt(c.MaxUploadBytes, 10) }},
	{flag: "max-batch-images", arg: "N", env: "BULKGEN_MAX_BATCH_IMAGES", key: "max_batch_images", only: []Command{Serve},
		usage: "most images one batch may have (a request over it is refused before anything is written)",
		set:   func(c *Config, v string) error { return parseInt(v, &c.MaxBatchImages) },
		show:  func(c Config) string { return strconv.Itoa(c.MaxBatchImages) }},
	{flag: "job-timeout", arg: "DURATION", env: "BULKGEN_JOB_TIMEOUT", key: "job_timeout", only: []Command{Serve, Worker},
		usage: "longest run of one image job",
		set:   func(c *Config, v string) error { return parseDuration(v, &c.JobTimeout) },
		show:  func(c Config) string { return c.JobTimeout.String() }},
	{flag: "rescue-after", arg: "DURATION", env: "BULKGEN_RESCUE_AFTER", key: "rescue_after", only: []Command{Serve, Worker},
		usage: "a job running this long is assumed lost with its process and run again (> job-timeout)",
		set:   func(c *Config, v string) error { return parseDuration(v, &c.RescueAfter) },
		show:  func(c Config) string { return c.RescueAfter.String() }},
	{flag: "blob-sweep-interval", arg: "DURATION", env: "BULKGEN_BLOB_SWEEP_INTERVAL", key: "blob_sweep_interval", only: []Command{Serve, Worker},
		usage: "how often to delete image files no image refers to (crash leftovers older than max(1h, 2×job-timeout, rescue-after)); 0 disables",
		set:   func(c *Config, v string) error { return parseDuration(v, &c.BlobSweepInterval) },
		show:  func(c Config) string { return c.BlobSweepInterval.String() }},
	{flag: "no-migrate", env: "BULKGEN_NO_MIGRATE", key: "no_migrate", isBool: true, only: []Command{Serve, Worker},
		usage: "do not apply database migrations on start",
		set:   func(c *Config, v string) error { return parseBool(v, &c.NoMigrate) },
		show:  func(c Config) string { return "" }},
	{flag: "catalog", arg: "FILE", env: "BULKGEN_CATALOG", key: "catalog", only: []Command{Serve, Worker},
		usage: "model catalogue JSON file merged over the built-in one: an entry with a built-in id changes the fields it sets, a new id adds a model (docs/catalog.md)",
		set:   func(c *Config, v string) error { c.Catalog = v; return nil },
		show:  func(c Config) string { return "" }},
	{env: "BULKGEN_URL_KEY", key: "url_key", secret: true, only: []Command{Serve},
		usage: "key signing the OpenAI endpoint's image links (default: random per process)",
		set:   func(c *Config, v string) error { c.URLKey = v; return nil }},
}

// configOption is the --config flag, read before the others.
var configOption = option{flag: "config", arg: "FILE", env: "BULKGEN_CONFIG",
	usage: "JSON configuration file (keys: " + fileKeys() + ")"}

func fileKeys() string {
	var keys []string
	for _, o := range options {
		keys = append(keys, o.key)
	}
	return strings.Join(keys, ", ")
}

func (o option) appliesTo(cmd Command) bool {
	if len(o.only) == 0 {
		return cmd != RunCmd
	}
	return slices.Contains(o.only, cmd)
}

// Flags binds a command's options to its flag set. Build it with Bind
// before the flag set is parsed, then call Load.
type Flags struct {
	cmd  Command
	fs   *flag.FlagSet
	seen map[string][]string // flag name → values given on the command line, in order
}

// Bind defines cmd's options on fs (the command may add its own flags) and
// replaces fs.Usage with help that names each option's variable and
// default.
func Bind(fs *flag.FlagSet, cmd Command) *Flags {
	f := &Flags{cmd: cmd, fs: fs, seen: map[string][]string{}}
	for _, o := range append(append([]option{configOption}, options...), runOptions...) {
		if o.flag == "" || !o.appliesTo(cmd) {
			continue
		}
		name := o.flag
		record := func(v string) error { f.seen[name] = append(f.seen[name], v); return nil }
		for _, n := range []string{o.flag, o.alias} {
			switch {
			case n == "":
			case o.isBool:
				fs.BoolFunc(n, o.usage, record)
			default:
				fs.Func(n, o.usage, record)
			}
		}
	}
	return f
}

// PrintOptions writes the help of cmd's options: flag, variable, default.
func PrintOptions(w io.Writer, cmd Command) {
	def := Default()
	for _, o := range append(append([]option{configOption}, options...), runOptions...) {
		if !o.appliesTo(cmd) {
			continue
		}
		head := "  "
		switch {
		case o.flag != "" && o.alias != "":
			head += "-" + o.alias + ", --" + o.flag
		case o.flag != "":
			head += "--" + o.flag
		default:
			head += "(environment only)"
		}
		if o.flag != "" && o.arg != "" {
			head += " " + o.arg
		}
		var notes []string
		if o.env != "" {
			env := "env " + o.env
			if o.secret {
				env += " or " + o.env + "_FILE"
			}
			notes = append(notes, env)
		}
		if o.show != nil {
			if d := o.show(def); d != "" && d != "0" {
				notes = append(notes, "default "+d)
			}
		}
		line := o.usage
		if len(notes) > 0 {
			line += " (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", head, line)
	}
}

// Load builds the Config from the defaults, the configuration file
// (--config or BULKGEN_CONFIG), the environment read through getenv and
// the flags parsed into the bound flag set, in that order of increasing
// precedence, then validates it. Every problem found is reported in one
// error.
func (f *Flags) Load(getenv func(string) string) (Config, error) {
	c := Default()
	var errs []error
	file := last(f.seen[configOption.flag])
	if file == "" {
		file = strings.TrimSpace(getenv(configOption.env))
	}
	if file != "" {
		c.File = file
		errs = append(errs, f.applyFile(&c, file))
	}
	all := append(append([]option(nil), options...), runOptions...)
	for _, o := range all {
		if !o.appliesTo(f.cmd) || o.env == "" {
			continue
		}
		v, from, err := lookupEnv(getenv, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if from == "" {
			continue
		}
		if err := o.set(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", from, err))
		}
	}
	for _, o := range all {
		if o.flag == "" {
			continue
		}
		for _, v := range f.seen[o.flag] {
			if err := o.set(&c, v); err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", o.flag, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// last is the last of vs, "" when there is none.
func last(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// lookupEnv reads an option's variable, or for a secret its _FILE form
// (trailing newlines trimmed). from names the variable used; "" means
// neither was set.
func lookupEnv(getenv func(string) string, o option) (v, from string, err error) {
	if v := getenv(o.env); v != "" {
		return v, o.env, nil
	}
	if !o.secret {
		return "", "", nil
	}
	path := strings.TrimSpace(getenv(o.env + "_FILE"))
	if path == "" {
		return "", "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("%s_FILE: %w", o.env, err)
	}
	v = strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", "", fmt.Errorf("%s_FILE: %s is empty", o.env, path)
	}
	return v, o.env + "_FILE", nil
}

// applyFile sets the options found in the JSON file. Values may be JSON
// strings, numbers or booleans; unknown keys are errors, so that a typo
// does not silently leave a default in place.
func (f *Flags) applyFile(c *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	var errs []error
	for _, key := range sortedKeys(raw) {
		i := slices.IndexFunc(options, func(o option) bool { return o.key == key })
		if i < 0 {
			errs = append(errs, fmt.Errorf("config file %s: unknown key %q (known: %s)", path, key, fileKeys()))
			continue
		}
		o := options[i]
		if !o.appliesTo(f.cmd) {
			continue // shared files may hold other commands' settings
		}
		v, err := scalar(raw[key])
		if err == nil {
			err = o.set(c, v)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("config file %s: %s: %w", path, key, err))
		}
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// scalar turns a JSON string, number or boolean into its text.
func scalar(raw json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", fmt.Errorf("want a string, number or boolean, not %s", raw)
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data: must name a folder")
	}
	if c.Addr != "" {
		if _, port, err := net.SplitHostPort(c.Addr); err != nil {
			bad("addr %q: want HOST:PORT such as 127.0.0.1:8080", c.Addr)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("addr %q: port must be a number from 0 to 65535", c.Addr)
		}
	}
	if c.Workers < 0 || c.Workers > 1000 {
		bad("workers %d: want 0 (provider defaults) to 1000", c.Workers)
	}
	if _, err := c.level(); err != nil {
		bad("log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("log-format %q: want json or text", c.LogFormat)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout %s: must be positive", c.ShutdownTimeout)
	}
	if c.MaxUploadBytes <= 0 {
		bad("max-upload %d: must be positive", c.MaxUploadBytes)
	}
	if c.MaxBatchImages <= 0 {
		bad("max-batch-images %d: must be positive", c.MaxBatchImages)
	}
	if c.JobTimeout <= 0 {
		bad("job-timeout %s: must be positive", c.JobTimeout)
	}
	if c.RescueAfter <= c.JobTimeout {
		bad("rescue-after %s: must exceed job-timeout %s, or running jobs would be run twice", c.RescueAfter, c.JobTimeout)
	}
	if c.BlobSweepInterval < 0 {
		bad("blob-sweep-interval %s: must be 0 (off) or positive", c.BlobSweepInterval)
	}
	if strings.Contains(c.Database, "://") && !strings.HasPrefix(c.Database, "postgres://") &&
		!strings.HasPrefix(c.Database, "postgresql://") && !strings.HasPrefix(c.Database, "sqlite://") {
		bad("db: want postgres://…, sqlite://PATH or a file path")
	}
	return errors.Join(errs...)
}

// DatabaseDSN is the database to open: Database, or the SQLite file in
// the data folder.
func (c Config) DatabaseDSN() string {
	if c.Database != "" {
		return c.Database
	}
	return filepath.Join(c.DataDir, "bulkgen.db")
}

// ImageDir is the folder of the local blob store.
func (c Config) ImageDir() string { return filepath.Join(c.DataDir, "images") }

// Logger returns the slog logger the settings ask for, writing to w.
func (c Config) Logger(w io.Writer) *slog.Logger {
	level, _ := c.level()
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func (c Config) level() (slog.Level, error) {
	var l slog.Level
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
		return l, l.UnmarshalText([]byte(c.LogLevel))
	}
	return l, fmt.Errorf("unknown level %q", c.LogLevel)
}

// LogValue implements slog.LogValuer: the settings without their secrets,
// for the start-up log line.
func (c Config) LogValue() slog.Value {
	db := "sqlite:" + c.DatabaseDSN()
	if strings.Contains(c.Database, "://") {
		db = redactURL(c.Database)
	}
	return slog.GroupValue(
		slog.String("data", c.DataDir), slog.String("db", db), slog.String("addr", c.Addr),
		slog.Int("workers", c.Workers), slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.Duration("job_timeout", c.JobTimeout), slog.Duration("rescue_after", c.RescueAfter),
		slog.Duration("blob_sweep_interval", c.BlobSweepInterval),
		slog.String("config_file", c.File),
	)
}

// redactURL hides the password of a database URL.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	user, _, _ := strings.Cut(rest[:at], ":")
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

func parseInt(v string, dst *int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("%q is not a whole number", v)
	}
	*dst = n
	return nil
}

func parseInt64(v string, dst *int64) error {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", v)
	}
	*dst = n
	return nil
}

func parseDuration(v string, dst *time.Duration) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 30s or 5m", v)
	}
	*dst = d
	return nil
}

func parseBool(v string, dst *bool) error {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("%q is not true or false", v)
	}
	*dst = b
	return nil
}
