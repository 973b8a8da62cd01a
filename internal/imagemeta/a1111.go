package imagemeta

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
)

// Parameters are the generation settings written into an image in the
// "infotext" layout of AUTOMATIC1111's web UI, which many image viewers and
// sites (Civitai, the A1111 "PNG Info" tab, ComfyUI loaders) read.
type Parameters struct {
	Prompt         string
	NegativePrompt string
	// Steps is omitted from the infotext when zero (providers without
	// sampling steps).
	Steps int
	// Seed is omitted when negative: A1111 uses -1 for "no fixed seed",
	// and ParseA1111 returns -1 when the text has no Seed.
	Seed int64
	// Width and Height form the "Size: WxH" field, omitted when zero.
	Width, Height int
	// Model is omitted when empty.
	Model string
	// Extra holds further "Key: value" fields in order, appended after the
	// known ones (for example {"Provider", "openai"}). Keys must be word
	// characters, spaces, '-' or '/' and at least two characters long for
	// A1111 to read them back.
	Extra [][2]string
}

// A1111 returns the infotext exactly as A1111 lays it out: the prompt, a
// "Negative prompt: " line when there is one, then one line of
// comma-separated "Key: value" fields, the whole string trimmed. Values
// containing ',', ':' or a newline (or starting with '"') are written as
// JSON strings, as A1111's quote() does.
func (p Parameters) A1111() string {
	var fields []string
	add := func(k, v string) { fields = append(fields, k+": "+quoteValue(v)) }
	if p.Steps != 0 {
		add("Steps", strconv.Itoa(p.Steps))
	}
	if p.Seed >= 0 {
		add("Seed", strconv.FormatInt(p.Seed, 10))
	}
	if p.Width != 0 || p.Height != 0 {
		add("Size", strconv.Itoa(p.Width)+"x"+strconv.Itoa(p.Height))
	}
	if p.Model != "" {
		add("Model", p.Model)
	}
	for _, kv := range p.Extra {
		add(kv[0], kv[1])
	}
	var b strings.Builder
	b.WriteString(p.Prompt)
	if p.NegativePrompt != "" {
		b.WriteString("\nNegative prompt: ")
		b.WriteString(p.NegativePrompt)
	}
	b.WriteString("\n")
	b.WriteString(strings.Join(fields, ", "))
	return strings.TrimSpace(b.String())
}

// quoteValue mirrors A1111's quote(): plain text unless the value would be
// cut by the field syntax.
func quoteValue(v string) string {
	if !strings.ContainsAny(v, ",\n:") && !strings.HasPrefix(v, `"`) {
		return v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // A1111 uses json.dumps(ensure_ascii=False)
	if err := enc.Encode(v); err != nil {
		return v // cannot happen for a string
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// reParam is A1111's re_param (modules/infotext_utils.py), one "Key: value"
// field of the last line.
var reParam = regexp.MustCompile(`\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)`)

// reImageSize is A1111's re_imagesize.
var reImageSize = regexp.MustCompile(`^(\d+)x(\d+)$`)

// ErrEmpty is returned by ParseA1111 for text with nothing in it.
var ErrEmpty = errors.New("imagemeta: empty parameters text")

// ParseA1111 reads infotext the way A1111's parse_generation_parameters
// does: the last line holds the fields if it has at least three of them
// (otherwise it is part of the prompt); lines before it are the prompt
// until one starts with "Negative prompt:". Each prompt line is trimmed, as
// in A1111. Steps, Seed, Size and Model fill their fields when well formed;
// every other field (and a malformed known one) goes to Extra as written.
func ParseA1111(s string) (Parameters, error) {
	p := Parameters{Seed: -1}
	s = strings.TrimSpace(s)
	if s == "" {
		return p, ErrEmpty
	}
	lines := strings.Split(s, "\n")
	last := lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	if len(reParam.FindAllStringSubmatch(last, -1)) < 3 {
		lines = append(lines, last)
		last = ""
	}
	var prompt, negative []string
	inNegative := false
	for _, line := range lines {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "Negative prompt:"); ok {
			inNegative = true
			line = strings.TrimSpace(rest)
		}
		if inNegative {
			negative = append(negative, line)
		} else {
			prompt = append(prompt, line)
		}
	}
	p.Prompt = joinLines(prompt)
	p.NegativePrompt = joinLines(negative)

	for _, m := range reParam.FindAllStringSubmatch(last, -1) {
		k, v := m[1], unquoteValue(m[2])
		switch k {
		case "Steps":
			if n, err := strconv.Atoi(v); err == nil {
				p.Steps = n
				continue
			}
		case "Seed":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				p.Seed = n
				continue
			}
		case "Size":
			if sm := reImageSize.FindStringSubmatch(v); sm != nil {
				w, errW := strconv.Atoi(sm[1])
				h, errH := strconv.Atoi(sm[2])
				if errW == nil && errH == nil {
					p.Width, p.Height = w, h
					continue
				}
			}
		case "Model":
			p.Model = v
			continue
		}
		p.Extra = append(p.Extra, [2]string{k, v})
	}
	return p, nil
}

// joinLines joins like A1111's loop, which (quirk kept) drops leading empty
// lines because it only adds a separator after a non-empty start.
func joinLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	return b.String()
}

// unquoteValue mirrors A1111's unquote(): a JSON string if it parses as
// one, else the text as is.
func unquoteValue(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	var s string
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return v
	}
	return s
}
