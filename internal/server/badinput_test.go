package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testUploadLimit keeps the upload tests quick; the default is 64 MiB.
const testUploadLimit = 8 << 20

func TestBadInput(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, func(d *Deps) { d.Ext.MaxUploadBytes = testUploadLimit })
	tok := tb.A.Token
	preview := map[string]any{"model": "preview"}

	hugeJSON := `{"prompts":["` + strings.Repeat("a", 5<<20) + `"]}`
	var oneRowMillion strings.Builder
	oneRowMillion.WriteString("prompt\n\"a cat\"")
	oneRowMillion.WriteString(strings.Repeat(",x", 1_000_000))
	oneRowMillion.WriteString("\n")
	var headerMillion strings.Builder
	for i := range 1_000_000 {
		if i > 0 {
			headerMillion.WriteByte(',')
		}
		headerMillion.WriteString("c" + strconv.Itoa(i))
	}
	headerMillion.WriteString("\nx\n")

	type upload struct {
		file, content string
		fields        map[string]string
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   any // JSON body (string sent as is)
		upload *upload
		ctype  string // overrides Content-Type
		status int
		code   string
		inMsg  string // the message contains this
	}{
		{name: "malformed JSON", method: "POST", path: "/api/v1/batches", body: `{"prompts": ["a",}`,
			status: 400, code: "invalid_json", inMsg: "malformed JSON"},
		{name: "empty body", method: "POST", path: "/api/v1/batches", body: ``, status: 400, code: "invalid_json"},
		{name: "trailing data", method: "POST", path: "/api/v1/batches", body: `{"prompts":["a"]} {"x":1}`, status: 400, code: "invalid_json"},
		{name: "wrong type", method: "POST", path: "/api/v1/batches", body: `{"prompts": "a cat"}`,
			status: 400, code: "invalid_json", inMsg: "prompts"},
		{name: "wrong nested type", method: "POST", path: "/api/v1/batches", body: `{"prompts":["a"],"defaults":{"n":"two"}}`,
			status: 400, code: "invalid_json", inMsg: "defaults.n"},
		{name: "unknown field", method: "POST", path: "/api/v1/batches", body: `{"prompts":["a"],"colour":"red"}`,
			status: 400, code: "unknown_field", inMsg: "colour"},
		{name: "no input at all", method: "POST", path: "/api/v1/batches", body: map[string]any{"defaults": preview},
			status: 400, code: "invalid_request"},
		{name: "two inputs", method: "POST", path: "/api/v1/batches", body: map[string]any{"prompts": []string{"a"}, "text": "b"},
			status: 400, code: "invalid_request"},
		{name: "JSON body over 4 MiB", method: "POST", path: "/api/v1/batches", body: hugeJSON,
			status: 413, code: "body_too_large"},
		{name: "wrong content type", method: "POST", path: "/api/v1/batches", body: `{"prompts":["a"]}`, ctype: "text/plain",
			status: 415, code: "unsupported_media_type"},
		{name: "zip-slip name template", method: "POST", path: "/api/v1/batches",
			body:   map[string]any{"prompts": []string{"a"}, "name_template": "../../x/{row}", "defaults": preview},
			status: 422, code: "invalid_field", inMsg: "name_template"},
		{name: "absolute name template", method: "POST", path: "/api/v1/batches",
			body:   map[string]any{"prompts": []string{"a"}, "name_template": "/etc/{row}", "defaults": preview},
			status: 422, code: "invalid_field", inMsg: "name_template"},
		{name: "bad prompt template", method: "POST", path: "/api/v1/batches",
			body:   map[string]any{"prompts": []string{"a"}, "template": "{a|b", "defaults": preview},
			status: 422, code: "invalid_field", inMsg: "template"},
		{name: "every row invalid", method: "POST", path: "/api/v1/batches",
			body:   map[string]any{"rows": []map[string]any{{"prompt": ""}, {"prompt": "x", "size": "0x0"}, {"prompt": "y", "model": "nope"}}, "defaults": preview},
			status: 422, code: "no_valid_rows"},
		{name: "combinatorial blow-up", method: "POST", path: "/api/v1/batches",
			body: map[string]any{"prompts": []string{strings.Repeat("{a|b|c|d|e|f|g|h|i|j}", 8)}, "combinatorial": true,
				"defaults": preview},
			status: 422, code: "no_valid_rows"},
		{name: "negative seed", method: "POST", path: "/api/v1/batches",
			body: map[string]any{"prompts": []string{"a"}, "defaults": map[string]any{"model": "preview", "seed": -5}}, status: 422, code: "invalid_field"},
		{name: "project of nobody", method: "POST", path: "/api/v1/batches",
			body: map[string]any{"prompts": []string{"a"}, "project_id": 424242, "defaults": preview}, status: 404, code: "not_found"},
		{name: "limit too large", method: "GET", path: "/api/v1/batches?limit=100000", status: 400, code: "invalid_parameter", inMsg: "limit"},
		{name: "limit not a number", method: "GET", path: "/api/v1/images?limit=ten", status: 400, code: "invalid_parameter"},
		{name: "bad cursor", method: "GET", path: "/api/v1/projects?after=-3", status: 400, code: "invalid_parameter"},
		{name: "bad status filter", method: "GET", path: "/api/v1/batches?status=exploded", status: 400, code: "invalid_parameter"},
		{name: "bad date filter", method: "GET", path: "/api/v1/batches?created_after=yesterday", status: 400, code: "invalid_parameter"},
		{name: "bad review filter", method: "GET", path: "/api/v1/images?review=maybe", status: 400, code: "invalid_parameter"},
		{name: "CSV with a million columns in the header", method: "POST", path: "/api/v1/batches",
			upload: &upload{file: "wide.csv", content: headerMillion.String(), fields: map[string]string{"model": "preview"}},
			status: 422, code: "invalid_input", inMsg: "column"},
		{name: "CSV with a million columns in one row", method: "POST", path: "/api/v1/batches",
			upload: &upload{file: "wide.csv", content: oneRowMillion.String(), fields: map[string]string{"model": "preview"}},
			status: 422, code: "no_valid_rows"},
		{name: "binary upload", method: "POST", path: "/api/v1/batches",
			upload: &upload{file: "prompts.csv", content: "prompt\n\x00\x01\x02", fields: map[string]string{"model": "preview"}},
			status: 422, code: "invalid_input", inMsg: "NUL"},
		{name: "empty upload", method: "POST", path: "/api/v1/batches",
			upload: &upload{file: "prompts.txt", content: "", fields: map[string]string{"model": "preview"}},
			status: 422, code: "invalid_input"},
		{name: "upload without prompt column", method: "POST", path: "/api/v1/batches",
			upload: &upload{file: "vars.csv", content: "animal,colour\ncat,red\n", fields: map[string]string{"model": "preview"}},
			status: 422, code: "invalid_input", inMsg: "no prompt column"},
		{name: "upload with unknown field", method: "POST", path: "/api/v1/batches",
			upload: &upload{file: "p.txt", content: "a\n", fields: map[string]string{"colour": "red"}},
			status: 400, code: "unknown_field"},
		{name: "upload with a bad boolean", method: "POST", path: "/api/v1/batches",
			upload: &upload{file: "p.txt", content: "a\n", fields: map[string]string{"dry_run": "perhaps"}},
			status: 400, code: "invalid_field"},
		{name: "upload with bad defaults JSON", method: "POST", path: "/api/v1/batches",
			upload: &upload{file: "p.txt", content: "a\n", fields: map[string]string{"defaults": `{"model": 3}`}},
			status: 400, code: "invalid_json", inMsg: "defaults"},
		{name: "upload with zip-slip name template", method: "POST", path: "/api/v1/batches",
			upload: &upload{file: "p.txt", content: "a\n", fields: map[string]string{"model": "preview", "name_template": "../../x/{row}"}},
			status: 422, code: "invalid_field", inMsg: "name_template"},
		{name: "multipart without a file", method: "POST", path: "/api/v1/batches", body: multipartOnlyFields(t),
			status: 400, code: "invalid_multipart"},
		{name: "NUL in a prompt", method: "POST", path: "/api/v1/batches",
			body: map[string]any{"prompts": []string{"a \u0000 cat"}, "defaults": preview}, status: 422, code: "no_valid_rows"},
		{name: "NUL in a row's column", method: "POST", path: "/api/v1/batches",
			body: map[string]any{"rows": []map[string]any{{"prompt": "a {sku}", "sku": "x\u0000"}}, "defaults": preview}, status: 422, code: "no_valid_rows"},
		{name: "NUL in a name", method: "POST", path: "/api/v1/batches",
			body: map[string]any{"prompts": []string{"a"}, "name": "b\u0000", "defaults": preview}, status: 422, code: "invalid_field", inMsg: "NUL"},
		{name: "NUL in a negative prompt", method: "POST", path: "/api/v1/batches",
			body:   map[string]any{"prompts": []string{"a"}, "defaults": map[string]any{"model": "preview", "negative_prompt": "\u0000"}},
			status: 422, code: "invalid_field", inMsg: "defaults.negative_prompt"},
		{name: "review of a missing image", method: "POST", path: "/api/v1/images/99999/review", body: map[string]string{"review": "approved"},
			status: 404, code: "not_found"},
		{name: "review with a wrong type", method: "POST", path: "/api/v1/images/1/review", body: `{"review": true}`,
			status: 400, code: "invalid_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r testResponse
			switch {
			case tt.upload != nil:
				body, ct := multipartBody(t, tt.upload.file, tt.upload.content, tt.upload.fields)
				r = tb.do(t, tt.method, tt.path, tok, body, "Content-Type", ct)
			case tt.ctype != "":
				r = tb.do(t, tt.method, tt.path, tok, strings.NewReader(tt.body.(string)), "Content-Type", tt.ctype)
			default:
				if mp, ok := tt.body.(multipartForm); ok {
					r = tb.do(t, tt.method, tt.path, tok, bytes.NewReader(mp.body), "Content-Type", mp.ctype)
					break
				}
				r = tb.do(t, tt.method, tt.path, tok, tt.body)
			}
			if r.Status != tt.status || r.ErrorCode() != tt.code {
				t.Fatalf("%d %.300s, want %d %s", r.Status, r.Body, tt.status, tt.code)
			}
			var e struct {
				Error struct {
					Message string          `json:"message"`
					Details json.RawMessage `json:"details"`
				} `json:"error"`
			}
			r.JSON(t, &e)
			if e.Error.Message == "" || !strings.Contains(e.Error.Message, tt.inMsg) {
				t.Errorf("message %q, want one mentioning %q", e.Error.Message, tt.inMsg)
			}
			if len(e.Error.Message) > 2000 {
				t.Errorf("message is %d bytes long", len(e.Error.Message))
			}
			if tt.code == "no_valid_rows" && !bytes.Contains(e.Error.Details, []byte(`"problems"`)) {
				t.Errorf("details %s, want the problems", e.Error.Details)
			}
			if strings.HasPrefix(tt.name, "NUL") && !bytes.Contains(r.Body, []byte("NUL character")) {
				t.Errorf("body %s, want it to say the text holds a NUL character", r.Body)
			}
			// The server keeps serving.
			tb.createBatch(t, tb.A, "still fine")
		})
	}
	// Nothing was left in the upload folder.
	if left := filesIn(t, tb.Server.ext.UploadDir); len(left) != 0 {
		t.Errorf("upload files left behind: %v", left)
	}
}

type multipartForm struct {
	body  []byte
	ctype string
}

func multipartOnlyFields(t *testing.T) multipartForm {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("model", "preview"); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return multipartForm{buf.Bytes(), mw.FormDataContentType()}
}

func TestBadInputRowNamesStayInside(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	var out batchOut
	tb.must(t, http.StatusCreated, "POST", "/api/v1/batches", tb.A.Token, map[string]any{
		"rows":     []map[string]any{{"prompt": "a", "name": "../../etc/passwd"}, {"prompt": "b", "name": "/abs/x"}, {"prompt": "c", "name": `..\..\win`}},
		"defaults": map[string]any{"model": "preview"},
	}, &out)
	for _, it := range tb.items(t, tb.A, out.ID) {
		if strings.Contains(it.Name, "..") || strings.HasPrefix(it.Name, "/") || strings.Contains(it.Name, `\`) {
			t.Errorf("item name %q escapes the batch folder", it.Name)
		}
	}
}

// endlessBody yields n bytes of CSV-ish text without holding them, and
// counts what was read.
type endlessBody struct {
	left int64
	read atomic.Int64
}

func (e *endlessBody) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), e.left)
	for i := range p[:n] {
		p[i] = "prompt,x\n"[i%9]
	}
	e.left -= n
	e.read.Add(n)
	return int(n), nil
}

// TestBadInputTwoGigabyteUpload streams a 2 GB multipart upload that is
// generated on the fly: the server stops reading just past its limit,
// answers 413, and goes on serving.
func TestBadInputTwoGigabyteUpload(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, func(d *Deps) { d.Ext.MaxUploadBytes = testUploadLimit })
	const size = 2 << 30

	boundary := "bulkgenboundary"
	head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\npreview\r\n" +
		"--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.csv\"\r\nContent-Type: text/csv\r\n\r\n"
	tail := "\r\n--" + boundary + "--\r\n"
	file := &endlessBody{left: size}
	body := io.MultiReader(strings.NewReader(head), file, strings.NewReader(tail))

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", tb.URL+"/api/v1/batches", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(head)) + size + int64(len(tail))
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	req.Header.Set("Authorization", "Bearer "+tb.A.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload: %v (after sending %d bytes)", err, file.read.Load())
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(data, []byte(`"file_too_large"`)) {
		t.Fatalf("status %d %s, want 413 file_too_large", resp.StatusCode, data)
	}
	// The client may have pushed some more into socket buffers, but
	// nowhere near the whole body.
	if sent := file.read.Load(); sent > testUploadLimit+64<<20 {
		t.Errorf("the server let the client send %d bytes, limit %d", sent, testUploadLimit)
	}
	if left := filesIn(t, tb.Server.ext.UploadDir); len(left) != 0 {
		t.Errorf("upload files left behind: %v", left)
	}
	tb.createBatch(t, tb.A, "still serving")
}
