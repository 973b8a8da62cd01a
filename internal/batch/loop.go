package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"bulkgen/internal/generate"
	"bulkgen/internal/input"
)

// RowSource streams input rows: an input.Reader over a file, or the rows
// of a JSON request. Next returns io.EOF at the end and an
// *input.RowError for a bad row, after which the source goes on.
type RowSource interface {
	Next() (input.Row, error)
}

// headered is a RowSource that knows its columns (a CSV or JSONL file),
// so that a file without a prompt column is refused at once.
type headered interface {
	Header() []string
	HasPrompt() bool
}

// Summary is what planning found: counts, the estimate, the first
// requests (to show) and the problems (up to a bound; ProblemCount counts
// them all).
type Summary struct {
	Rows         int
	InvalidRows  int
	Images       int
	Cost         int64
	PerModel     map[string]ModelPlan
	First        []generate.Request
	Problems     []Problem
	ProblemCount int
}

// ModelPlan is one model's part of a plan.
type ModelPlan struct {
	Images int   `json:"images"`
	Cost   int64 `json:"cost"`
}

// How much of a plan Summary keeps.
const (
	// KeepFirst is how many planned requests Summary.First keeps.
	KeepFirst = 10
	// KeepProblems is how many problems Summary.Problems keeps.
	KeepProblems = 100
)

// Summary returns what p has planned so far.
func (p *Planner) Summary() Summary { return p.sum }

// OnProblem, when set, is called with every problem as it is found (the
// CLI prints them as it goes; Summary keeps only the first KeepProblems).
type OnProblem func(Problem)

// PlanRows runs every row of src through p, calling yield for each
// request in order, and adds what it saw to p's Summary. It is the one
// planning loop of bulkgen: the CLI runs it over each input file, the
// batch service over an upload or a request's rows, the OpenAI endpoint
// over its one prompt and regeneration over an image's stored request.
//
// A bad row is counted, reported to onProblem (may be nil) and skipped. An
// input that cannot be read on (a runaway quoted field, a read error, a
// file with columns but no prompt column and no template) is an *Error of
// kind Invalid, code invalid_input; going past the batch's MaxImages is
// code batch_too_large. An error from yield stops the loop and is
// returned as it is.
func (p *Planner) PlanRows(ctx context.Context, src RowSource, onProblem OnProblem, yield func(generate.Request) error) error {
	if h, ok := src.(headered); ok && p.template == nil && h.Header() != nil && !h.HasPrompt() {
		return &Error{Kind: Invalid, Code: "invalid_input", Field: "template",
			Message: fmt.Sprintf("the file has no prompt column (columns: %s); give a prompt template to build prompts from its columns",
				strings.Join(h.Header(), ", "))}
	}
	st := &p.sum
	if st.PerModel == nil {
		st.PerModel = map[string]ModelPlan{}
	}
	problem := func(pr Problem) {
		st.ProblemCount++
		if len(st.Problems) < KeepProblems {
			st.Problems = append(st.Problems, pr)
		}
		if onProblem != nil {
			onProblem(pr)
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		row, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var re *input.RowError
		if errors.As(err, &re) {
			st.Rows++
			st.InvalidRows++
			problem(Problem{File: re.File, Line: re.Line, Column: re.Column, Message: re.Msg})
			continue
		}
		if err != nil {
			return &Error{Kind: Invalid, Code: "invalid_input", Message: err.Error()}
		}
		st.Rows++
		var yerr error
		problems := p.Plan(row, func(req generate.Request) bool {
			if max := p.cfg.MaxImages; max > 0 && st.Images >= max {
				yerr = &Error{Kind: Invalid, Code: "batch_too_large",
					Message: fmt.Sprintf("the batch would have more than %d images; split the input", max)}
				return false
			}
			st.Images++
			st.Cost += req.Price
			mp := st.PerModel[req.Model]
			mp.Images++
			mp.Cost += req.Price
			st.PerModel[req.Model] = mp
			if len(st.First) < KeepFirst {
				st.First = append(st.First, req)
			}
			yerr = yield(req)
			return yerr == nil
		})
		if yerr != nil {
			return yerr
		}
		if len(problems) > 0 {
			st.InvalidRows++
			for _, pr := range problems {
				problem(pr)
			}
		}
	}
}
