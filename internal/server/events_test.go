package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/store"
	"bulkgen/internal/store/storetest"
)

// sseEvent is one parsed Server-Sent Event, or a comment line (Name
// "comment").
type sseEvent struct {
	ID, Name, Data string
}

// sseClient reads an event stream in the background.
type sseClient struct {
	resp   *http.Response
	events chan sseEvent
}

// openEvents connects to a batch's event stream as tn.
func (b *testBundle) openEvents(t *testing.T, batchID int64, token, lastEventID string) *sseClient {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", fmt.Sprintf("%s/api/v1/batches/%d/events", b.URL, batchID), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open events: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	c := &sseClient{resp: resp, events: make(chan sseEvent, 100)}
	if resp.StatusCode != http.StatusOK {
		close(c.events)
		return c
	}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name != "" {
					c.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				c.events <- sseEvent{Name: "comment", Data: line}
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.Name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return c
}

// next returns the next event that is not a comment, failing the test
// after a few seconds (the stream polls every 10 ms in these tests).
func (c *sseClient) next(t *testing.T) sseEvent {
	t.Helper()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatal("the event stream ended early")
			}
			if ev.Name != "comment" {
				return ev
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10 s")
		}
	}
}

// nextItem returns the next item event, skipping progress events: on
// PostgreSQL an event becomes readable only once every older transaction on
// the server has ended (see eventsPostgres), so a progress event computed
// from the items table may come before the item events it already counts.
func (c *sseClient) nextItem(t *testing.T) batchEvent {
	t.Helper()
	for {
		ev := c.next(t)
		if ev.Name == "progress" {
			continue
		}
		return decodeEvent[batchEvent](t, ev, "item")
	}
}

// nextDone skips item and progress events until done.
func (c *sseClient) nextDone(t *testing.T) batchProgress {
	t.Helper()
	for {
		if ev := c.next(t); ev.Name == "done" {
			return decodeEvent[batchProgress](t, ev, "done")
		}
	}
}

// expectEnd checks that the stream closes with no further events.
func (c *sseClient) expectEnd(t *testing.T) {
	t.Helper()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return
			}
			if ev.Name != "comment" {
				t.Fatalf("event %+v after done", ev)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the stream did not end after done")
		}
	}
}

func decodeEvent[T any](t *testing.T, ev sseEvent, want string) T {
	t.Helper()
	if ev.Name != want {
		t.Fatalf("got event %q (%s), want %q", ev.Name, ev.Data, want)
	}
	if ev.ID == "" {
		t.Errorf("%s event has no id", ev.Name)
	}
	var v T
	if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
		t.Fatalf("%s data %q: %v", ev.Name, ev.Data, err)
	}
	return v
}

func fastEvents(d *Deps) {
	d.Ext.EventsPoll = 10 * time.Millisecond
	d.Ext.EventsHeartbeat = time.Hour
}

func TestBatchEventsLive(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, fastEvents)
	bt, items := submitTestBatch(t, b, b.A, []string{"one", "two", "three"})
	c := b.openEvents(t, bt.ID, b.A.Token, "")
	if ct := c.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	p := decodeEvent[batchProgress](t, c.next(t), "progress")
	if p.Total != 3 || p.Counts["pending"] != 3 || p.Status != "queued" {
		t.Fatalf("first progress %+v, want 3 pending", p)
	}

	im := b.completeItem(t, items[0])
	ev := decodeEvent[batchEvent](t, c.next(t), "item")
	if ev.ItemID != items[0].ID || ev.Status != "succeeded" || ev.ImageID != im.ID {
		t.Errorf("item event %+v, want item %d succeeded with image %d", ev, items[0].ID, im.ID)
	}
	p = decodeEvent[batchProgress](t, c.next(t), "progress")
	if p.Counts["succeeded"] != 1 || p.Counts["pending"] != 2 {
		t.Errorf("progress %+v, want 1 succeeded 2 pending", p)
	}

	b.failItem(t, items[1])
	ev = decodeEvent[batchEvent](t, c.next(t), "item")
	if ev.ItemID != items[1].ID || ev.Status != "failed" || ev.ImageID != 0 {
		t.Errorf("item event %+v, want item %d failed", ev, items[1].ID)
	}
	decodeEvent[batchProgress](t, c.next(t), "progress")

	b.completeItem(t, items[2])
	decodeEvent[batchEvent](t, c.next(t), "item")
	done := decodeEvent[batchProgress](t, c.next(t), "done")
	if done.Counts["succeeded"] != 2 || done.Counts["failed"] != 1 || done.Total != 3 {
		t.Errorf("done %+v, want 2 succeeded 1 failed", done)
	}
	c.expectEnd(t)
}

// TestBatchEventsResume disconnects, lets items change, and reconnects with
// the last id seen: the changes made in between arrive, in order.
func TestBatchEventsResume(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, fastEvents)
	bt, items := submitTestBatch(t, b, b.A, []string{"one", "two", "three"})

	first := b.openEvents(t, bt.ID, b.A.Token, "")
	start := first.next(t)
	b.completeItem(t, items[0])
	seen := first.next(t) // item one
	if seen.Name != "item" {
		t.Fatalf("got %q, want item", seen.Name)
	}
	first.resp.Body.Close()

	// While nobody listens: item two fails, item three starts running.
	b.failItem(t, items[1])
	if _, err := b.DB.UpdateItemStatus(t.Context(), b.DB.Writer(), items[2].ID, store.ItemUpdate{Status: store.ItemRunning}); err != nil {
		t.Fatal(err)
	}

	c := b.openEvents(t, bt.ID, b.A.Token, seen.ID)
	for _, want := range []struct {
		id     int64
		status string
	}{{items[1].ID, "failed"}, {items[2].ID, "running"}} {
		ev := c.nextItem(t)
		if ev.ItemID != want.id || ev.Status != want.status {
			t.Errorf("replayed %+v, want item %d %s", ev, want.id, want.status)
		}
	}
	p := decodeEvent[batchProgress](t, c.next(t), "progress")
	if p.Counts["running"] != 1 || p.Counts["failed"] != 1 || p.Counts["succeeded"] != 1 {
		t.Errorf("progress after replay %+v", p)
	}

	// Resuming from the very first id replays everything since.
	all := b.openEvents(t, bt.ID, b.A.Token, start.ID)
	var replayed []int64
	for range 3 {
		replayed = append(replayed, all.nextItem(t).ItemID)
	}
	if fmt.Sprint(replayed) != fmt.Sprint([]int64{items[0].ID, items[1].ID, items[2].ID}) {
		t.Errorf("replay from the start gave items %v", replayed)
	}

	// The batch reaching a final status ends both streams.
	b.completeItem(t, items[2])
	if err := b.DB.SetBatchStatus(t.Context(), b.DB.Writer(), bt.ID, store.BatchPartial); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*sseClient{c, all} {
		if p := s.nextDone(t); p.Status != "partial" && p.Counts["pending"]+p.Counts["running"] != 0 {
			t.Errorf("done %+v", p)
		}
		s.expectEnd(t)
	}
}

func TestBatchEventsHeartbeat(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, func(d *Deps) {
		d.Ext.EventsPoll = 10 * time.Millisecond
		d.Ext.EventsHeartbeat = 30 * time.Millisecond
	})
	bt, _ := submitTestBatch(t, b, b.A, []string{"one"})
	c := b.openEvents(t, bt.ID, b.A.Token, "")
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.Name == "comment" && strings.Contains(ev.Data, "heartbeat") {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat")
		}
	}
}

func TestBatchEventsDoneAtOnce(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, fastEvents)
	bt, items := submitTestBatch(t, b, b.A, []string{"one"})
	b.completeItem(t, items[0])
	c := b.openEvents(t, bt.ID, b.A.Token, "")
	// On PostgreSQL the item's event may still be behind the read horizon
	// when the stream starts, and then arrives first; done follows anyway.
	p := c.nextDone(t)
	if p.Counts["succeeded"] != 1 {
		t.Errorf("done %+v", p)
	}
	c.expectEnd(t)
}

func TestBatchEventsAuthz(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, fastEvents)
	bt, _ := submitTestBatch(t, b, b.A, []string{"one"})
	path := fmt.Sprintf("/api/v1/batches/%d/events", bt.ID)
	for _, tt := range []struct {
		name, path, token string
		want              int
	}{
		{"no token", path, "", http.StatusUnauthorized},
		{"other workspace", path, b.B.Token, http.StatusNotFound},
		{"missing", "/api/v1/batches/999999/events", b.A.Token, http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if r := b.do(t, "GET", tt.path, tt.token, nil); r.Status != tt.want {
				t.Errorf("status %d, want %d: %s", r.Status, tt.want, r.Body)
			}
		})
	}
}

func TestEventCursor(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want eventCursor
		ok   bool
	}{
		{"0-15", eventCursor{0, 15}, true},
		{"123456-7", eventCursor{123456, 7}, true},
		{"", eventCursor{}, false},
		{"15", eventCursor{}, false},
		{"a-b", eventCursor{}, false},
		{"1--2", eventCursor{}, false},
	} {
		got, ok := parseEventCursor(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseEventCursor(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if ok && got.String() != tt.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
}

// TestBatchEventsCommitOrder is the PostgreSQL case that the (xid, id)
// cursor exists for: a transaction that took its event id first but
// commits last must not be skipped by a reader that already saw the later
// id. (On SQLite writers are serialised, so ids are commit order.)
func TestBatchEventsCommitOrder(t *testing.T) {
	t.Parallel()
	if storetest.Dialect() != store.Postgres {
		t.Skip("PostgreSQL only: SQLite has one writer at a time")
	}
	b := newTestBundle(t, fastEvents)
	bt, items := submitTestBatch(t, b, b.A, []string{"early", "late"})
	ctx := t.Context()
	head, err := b.Server.eventHead(ctx, bt.WorkspaceID, bt.ID)
	if err != nil {
		t.Fatal(err)
	}

	slow, err := b.DB.Writer().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback()
	if _, err := b.DB.UpdateItemStatus(ctx, slow, items[0].ID, store.ItemUpdate{Status: store.ItemRunning}); err != nil {
		t.Fatal(err)
	}
	// A later transaction commits first.
	if _, err := b.DB.UpdateItemStatus(ctx, b.DB.Writer(), items[1].ID, store.ItemUpdate{Status: store.ItemRunning}); err != nil {
		t.Fatal(err)
	}
	evs, err := b.Server.batchEvents(ctx, bt.WorkspaceID, bt.ID, head, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 {
		t.Fatalf("read %+v while an older transaction is open; a cursor past it would skip that transaction's event", evs)
	}
	if err := slow.Commit(); err != nil {
		t.Fatal(err)
	}
	// Other tests' transactions on the same server can hold the horizon
	// back for a moment; wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for len(evs) < 2 && time.Now().Before(deadline) {
		if evs, err = b.Server.batchEvents(ctx, bt.WorkspaceID, bt.ID, head, 10); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(evs) != 2 || evs[0].ItemID != items[0].ID || evs[1].ItemID != items[1].ID {
		t.Fatalf("events %+v, want item %d then %d", evs, items[0].ID, items[1].ID)
	}
}
