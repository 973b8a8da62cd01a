package batch

import (
	"strings"
	"time"

	"bulkgen/internal/catalog"
	"bulkgen/internal/expand"
)

// Config is what a planner is built from: the batch's settings as a
// request, a form or the CLI's flags give them, and what the planner
// checks rows against. NewPlanner is the one place that turns it into a
// Planner, so the CLI, the API, the OpenAI endpoint and regeneration plan
// alike.
type Config struct {
	// Catalog checks and prices rows; nil means catalog.Default().
	Catalog *catalog.Catalog
	// Wildcards resolves __name__ in templates; nil refuses them.
	Wildcards *expand.Wildcards
	// Available says whether a provider can take work here (its key or
	// URL is configured); nil accepts every provider. A row for one that
	// cannot is a problem found before anything is spent (in a dry run, a
	// warning: the plan still prices it).
	Available func(provider string) error
	// Now is the planning time: {date} in names and model shutdown dates.
	// Zero means time.Now().
	Now time.Time
	// DryRun plans to show, not to run (see Available).
	DryRun bool

	// Template, when set, builds every row's prompt; the row's own prompt
	// column is then available to it as {prompt}.
	Template string
	// NameTemplate builds file names; "" means the default "{row}-{n}"
	// (or the row's own name column when it has one).
	NameTemplate string
	Defaults     Defaults
	// Combinatorial expands every combination of {a|b} variants instead
	// of choosing one per image.
	Combinatorial bool
	// MaxPerRow caps the images one row may make (prompts × n); 0 means
	// DefaultMaxPerRow.
	MaxPerRow int
	// MaxImages caps the images of the whole batch; 0 means no cap.
	MaxImages int
}

// DefaultMaxPerRow is the images one row may make unless the batch says
// otherwise (--max-images, "max_images").
const DefaultMaxPerRow = expand.DefaultMaxImages

// NewPlanner checks cfg and returns its planner. A bad setting is an
// *Error of kind Invalid whose Field names it as the API does ("template",
// "name_template", "max_images", "defaults.n", "defaults.seed", …); the
// CLI maps those names to its flags.
func NewPlanner(cfg Config) (*Planner, error) {
	if cfg.Catalog == nil {
		cfg.Catalog = catalog.Default()
	}
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	switch {
	case cfg.MaxPerRow < 0:
		return nil, fieldError("max_images", "must be 1 or more (0 means the default of %d)", DefaultMaxPerRow)
	case cfg.MaxImages > 0 && cfg.MaxPerRow > cfg.MaxImages:
		return nil, fieldError("max_images", "must be at most %d, the images a batch may have", cfg.MaxImages)
	case cfg.Defaults.N < 0:
		return nil, fieldError("defaults.n", "must be 1 or more (0 means 1)")
	case cfg.MaxImages > 0 && cfg.Defaults.N > cfg.MaxImages:
		return nil, fieldError("defaults.n", "must be at most %d, the images a batch may have", cfg.MaxImages)
	case cfg.Defaults.HasSeed && (cfg.Defaults.Seed < 0 || cfg.Defaults.Seed > MaxSeed):
		return nil, fieldError("defaults.seed", "must be between 0 and %d", MaxSeed)
	}
	d := &cfg.Defaults
	d.Model, d.Size, d.AspectRatio = strings.TrimSpace(d.Model), strings.TrimSpace(d.Size), strings.TrimSpace(d.AspectRatio)
	d.Quality, d.Style = strings.TrimSpace(d.Quality), strings.TrimSpace(d.Style)
	d.Format = strings.ToLower(strings.TrimSpace(d.Format))
	if len(d.Options) == 0 {
		d.Options = nil
	}
	p := &Planner{
		cfg:      cfg,
		catalog:  cfg.Catalog,
		expander: &expand.Expander{Combinatorial: cfg.Combinatorial, MaxImages: cfg.MaxPerRow, Wildcards: cfg.Wildcards},
		limit:    int64(cfg.MaxPerRow),
		date:     cfg.Now.Format("2006-01-02"),
	}
	if p.limit == 0 {
		p.limit = DefaultMaxPerRow
	}
	if cfg.Template != "" {
		t, err := expand.Parse(cfg.Template)
		if err != nil {
			return nil, fieldError("template", "%v", err)
		}
		p.template = t
	}
	nameSrc := cfg.NameTemplate
	if nameSrc == "" {
		nameSrc = expand.DefaultNameTemplate
	}
	nt, err := expand.ParseName(nameSrc)
	if err != nil {
		return nil, fieldError("name_template", "%v", err)
	}
	p.name = nt
	return p, nil
}

// Config returns the settings p was built from (with defaults applied).
func (p *Planner) Config() Config { return p.cfg }
