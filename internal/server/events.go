package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"bulkgen/internal/store"
)

// Defaults of the SSE stream's timing (Extra.EventsPoll, EventsHeartbeat).
const (
	defaultEventsPoll      = 500 * time.Millisecond
	defaultEventsHeartbeat = 15 * time.Second
	// eventsPage bounds the events read (and sent) per database query.
	eventsPage = 500
	// eventsRetryMS is the reconnection delay suggested to EventSource.
	eventsRetryMS = 2000
)

// handleBatchEvents handles GET /api/v1/batches/{id}/events: live progress
// of a batch as Server-Sent Events.
//
// Events:
//
//	event: item      data: {"item_id","status","image_id"}   one item changed status
//	event: progress  data: {"batch_id","status","total","counts":{status: n}}
//	event: done      data: the same as progress; the stream then ends
//
// Every event carries an id: the position in the batch's event log
// (batch_events, written by database triggers on every item and batch
// status change; see migration 0003_events). A client that reconnects with
// Last-Event-ID (EventSource does it by itself; curl users may pass
// ?last_event_id=) first receives every item change after that position,
// then a progress event. A new client starts at the end of the log with a
// progress event. A comment line every 15 s keeps idle connections open
// through proxies. The stream ends after done, which is sent as soon as the
// batch is final or none of its items is pending or running.
func (s *Server) handleBatchEvents(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	b, err := s.db.GetBatch(ctx, s.db.Reader(), caller(r).WorkspaceID, id)
	if err != nil {
		return err
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	cur, resume := parseEventCursor(last)
	if !resume {
		if cur, err = s.eventHead(ctx, b.WorkspaceID, b.ID); err != nil {
			return err
		}
	}

	st := &sseStream{w: w, rc: http.NewResponseController(w)}
	// The server's write timeout is for ordinary responses; a progress
	// stream legitimately lasts as long as its batch.
	_ = st.rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	st.printf("retry: %d\n\n", eventsRetryMS)

	poll := cmpDuration(s.ext.EventsPoll, defaultEventsPoll)
	heartbeat := cmpDuration(s.ext.EventsHeartbeat, defaultEventsHeartbeat)
	timer := time.NewTimer(0) // the first round runs at once
	defer timer.Stop()
	first := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		changed := first
		first = false
		for {
			evs, err := s.batchEvents(ctx, b.WorkspaceID, b.ID, cur, eventsPage)
			if err != nil {
				return s.sseFail(ctx, err)
			}
			for _, ev := range evs {
				cur = ev.cursor
				changed = true
				if ev.ItemID != 0 {
					st.event("item", cur.String(), ev)
				}
			}
			if len(evs) < eventsPage {
				break
			}
		}
		if changed {
			p, err := s.batchProgress(ctx, b.WorkspaceID, b.ID)
			if err != nil {
				return s.sseFail(ctx, err)
			}
			if p.done() {
				st.event("done", cur.String(), p)
				st.flush()
				return nil
			}
			st.event("progress", cur.String(), p)
		}
		if time.Since(st.lastWrite) >= heartbeat {
			st.printf(": heartbeat\n\n")
		}
		if st.err != nil {
			return nil // the client has gone
		}
		st.flush()
		timer.Reset(poll)
	}
}

// sseFail logs an error that happened after the stream started (the status
// is sent already, so the client just sees the stream end and reconnects).
func (s *Server) sseFail(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		s.logger.ErrorContext(ctx, "event stream failed", "request_id", requestID(ctx), "err", err)
	}
	return nil
}

func cmpDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// sseStream writes Server-Sent Events and remembers the first write error.
type sseStream struct {
	w         io.Writer
	rc        *http.ResponseController
	err       error
	lastWrite time.Time
}

func (st *sseStream) printf(format string, args ...any) {
	if st.err != nil {
		return
	}
	_, st.err = fmt.Fprintf(st.w, format, args...)
	st.lastWrite = time.Now()
}

// event writes one event whose data is v as JSON (one line: JSON never
// contains a raw newline).
func (st *sseStream) event(name, id string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		st.err = err
		return
	}
	st.printf("id: %s\nevent: %s\ndata: %s\n\n", id, name, data)
}

func (st *sseStream) flush() {
	if st.err == nil {
		st.err = st.rc.Flush()
	}
}

// eventCursor is a position in a batch's event log. On SQLite the id alone
// orders events in commit order; on PostgreSQL events are ordered by
// (transaction id, id), see migrations/postgres/0003_events.sql.
type eventCursor struct {
	xid uint64
	id  int64
}

// String is the SSE id: "<xid>-<id>" (the xid is 0 on SQLite).
func (c eventCursor) String() string {
	return strconv.FormatUint(c.xid, 10) + "-" + strconv.FormatInt(c.id, 10)
}

// parseEventCursor reads a Last-Event-ID; ok is false for an absent or
// malformed one, which then means "from now".
func parseEventCursor(s string) (c eventCursor, ok bool) {
	x, i, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		return eventCursor{}, false
	}
	xid, err1 := strconv.ParseUint(x, 10, 64)
	id, err2 := strconv.ParseInt(i, 10, 64)
	if err1 != nil || err2 != nil || id < 0 {
		return eventCursor{}, false
	}
	return eventCursor{xid: xid, id: id}, true
}

// batchEvent is one row of the event log.
type batchEvent struct {
	cursor  eventCursor
	ItemID  int64  `json:"item_id"`
	Status  string `json:"status"`
	ImageID int64  `json:"image_id,omitempty"`
}

// batchEvents returns up to limit events of batch after cur, in order (see
// store.DB.BatchEvents for which events a read may return).
func (s *Server) batchEvents(ctx context.Context, workspaceID, batchID int64, cur eventCursor, limit int) ([]batchEvent, error) {
	evs, err := s.db.BatchEvents(ctx, s.db.Reader(), workspaceID, batchID, store.EventCursor{XID: cur.xid, ID: cur.id}, limit)
	if err != nil {
		return nil, err
	}
	out := make([]batchEvent, len(evs))
	for i, ev := range evs {
		out[i] = batchEvent{cursor: eventCursor{xid: ev.Cursor.XID, id: ev.Cursor.ID},
			ItemID: ev.ItemID, Status: ev.Status, ImageID: ev.ImageID}
	}
	return out, nil
}

// eventHead returns the cursor of the newest event of batch that a reader
// may rely on: a new stream starts there.
func (s *Server) eventHead(ctx context.Context, workspaceID, batchID int64) (eventCursor, error) {
	c, err := s.db.BatchEventHead(ctx, s.db.Reader(), workspaceID, batchID)
	if err != nil {
		return eventCursor{}, err
	}
	return eventCursor{xid: c.XID, id: c.ID}, nil
}

// batchProgress is the payload of progress and done events.
type batchProgress struct {
	BatchID int64            `json:"batch_id"`
	Status  string           `json:"status"`
	Total   int64            `json:"total"`
	Counts  map[string]int64 `json:"counts"`
}

// done reports whether no more progress will come: the batch is final, or
// nothing of it is waiting or running (a batch whose last item has just
// finished, before the worker marks the batch itself).
func (p batchProgress) done() bool {
	if store.BatchStatus(p.Status).Final() {
		return true
	}
	if store.BatchStatus(p.Status) == store.BatchPaused {
		return false
	}
	return p.Counts[string(store.ItemPending)] == 0 && p.Counts[string(store.ItemRunning)] == 0
}

// batchProgress counts the batch's items by status, from the items
// themselves (not the batch's counters, which lag behind the workers).
func (s *Server) batchProgress(ctx context.Context, workspaceID, batchID int64) (batchProgress, error) {
	b, err := s.db.GetBatch(ctx, s.db.Reader(), workspaceID, batchID)
	if err != nil {
		return batchProgress{}, err
	}
	p := batchProgress{BatchID: b.ID, Status: string(b.Status), Counts: map[string]int64{}}
	for _, st := range []store.ItemStatus{store.ItemPending, store.ItemRunning, store.ItemSucceeded, store.ItemFailed, store.ItemCanceled} {
		p.Counts[string(st)] = 0
	}
	counts, err := s.db.CountBatchItems(ctx, s.db.Reader(), workspaceID, b.ID)
	if err != nil {
		return p, err
	}
	for st, n := range counts {
		p.Counts[string(st)] = n
		p.Total += n
	}
	return p, nil
}
