package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
)

// Bounds of the work of one GET /v1/tasks.
const (
	// listWindow is the first range of stream sequences scanned for
	// tasks. A later range is sized for the candidates still wanted at the
	// density found so far. It is at most listWindowGrowth times the
	// previous one and at most maxListWindow, so a tenant with few tasks in
	// a busy stream is found in a few requests.
	listWindow       = 1024
	listWindowGrowth = 4
	maxListWindow    = 1 << 20

	// listBatch and listBatchBytes bound one batch direct get of the scan.
	// Each batch costs the server a count of the matches up to the end of
	// the stream, so batches are large.
	listBatch      = 1024
	listBatchBytes = 1 << 20

	// maxListReads bounds the tasks read and folded for one page. A page
	// that reaches it before it is full ends early, with a cursor.
	maxListReads = 1000

	// listReaders is how many tasks of a page are read at once.
	listReaders = 16

	// maxSteppedEvents bounds the events of a task that readCandidate
	// reads with one direct get each.
	maxSteppedEvents = 32

	// createdBeforeSkew is how much later than created_at a task's first
	// event may have been stored, for the scan bound of created_before.
	// created_at is the writer's clock, which is at most this far behind
	// the server's for the bound to hold.
	createdBeforeSkew = time.Minute

	// headerNumPending counts the messages after this one that match a
	// batch direct get.
	headerNumPending = "Nats-Num-Pending"
)

// taskList is the body of GET /v1/tasks.
type taskList struct {
	Tasks      []events.View `json:"tasks"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// listCandidate is a submitted or scheduled event found by the scan: maybe
// the first event of a task.
type listCandidate struct {
	seq     uint64
	subject events.Subject
}

// handleListTasks serves GET /v1/tasks: the caller's tenant's tasks,
// newest first, a page at a time.
func (s *Server) handleListTasks(w http.ResponseWriter, r *http.Request) {
	tenant, p := s.tenantOf(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	q, p := parseListQuery(r.URL.Query())
	if p != nil {
		writeProblem(w, r, p)
		return
	}

	page, p := s.listPage(r.Context(), tenant, q)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, page)
}

// listPage returns the page of the tenant's tasks that q selects, within
// Config.RequestTimeout.
func (s *Server) listPage(ctx context.Context, tenant string, q listQuery) (*taskList, *Problem) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	start := time.Now()
	page, stats, err := s.listTasks(ctx, tenant, q)
	if err != nil {
		return nil, s.logFailure(storeProblem(err, "listing the tasks"), "listing tasks failed", err, zap.String(logging.KeyTenant, tenant))
	}
	s.log.Debug("tasks listed", zap.String(logging.KeyTenant, tenant), zap.Int("tasks", len(page.Tasks)),
		zap.Int("candidates", stats.candidates), zap.Int("reads", stats.reads), zap.Int("batches", stats.batches),
		zap.Duration("duration", time.Since(start)))
	return page, nil
}

// listStats counts the work of one listing, for the debug log and tests.
type listStats struct {
	candidates, reads, batches int
}

// listTasks scans the tasks stream backwards from the cursor's bound, in
// ranges of sequences, for the tenant's submitted and scheduled events.
// Each one that is its task's first event is a task, which is read and
// folded for its view and status. Tasks are listed in the order of their
// first events, newest first, and the cursor is the sequence of the last
// one listed, so tasks created later never shift a page.
//
// NOTE: a delayed task moves to a newer position when its scheduled event
// is replaced by a submitted one, at run_at or on a cancel, so a walk
// through the pages at that moment can miss it or list it twice.
func (s *Server) listTasks(ctx context.Context, tenant string, q listQuery) (*taskList, listStats, error) {
	var stats listStats
	page := &taskList{Tasks: []events.View{}}

	stream, lower, upper, err := s.listBounds(ctx, q)
	if err != nil {
		return nil, stats, err
	}
	filters := s.listFilters(tenant, q.typePattern)

	window := uint64(listWindow)
	var scanned, found uint64
	hi := upper
	for hi > lower {
		lo := lower
		if hi-lower > window {
			lo = hi - window
		}
		candidates, err := s.scanCandidates(ctx, filters, lo, hi, &stats)
		if err != nil {
			return nil, stats, err
		}
		scanned += hi - lo
		found += uint64(len(candidates))
		// Newest first.
		slices.Reverse(candidates)

		for len(candidates) > 0 {
			need := q.limit - len(page.Tasks)
			chunk := candidates[:min(len(candidates), max(need, listReaders))]
			candidates = candidates[len(chunk):]
			tasks, err := s.readCandidates(ctx, stream, chunk, &stats)
			if err != nil {
				return nil, stats, err
			}
			for i, task := range tasks {
				if task != nil && q.matches(task) {
					page.Tasks = append(page.Tasks, s.links.withLink(task, time.Now()))
				}
				if len(page.Tasks) == q.limit || stats.reads >= maxListReads {
					// The next page starts below the last task read.
					page.NextCursor = q.encodeCursor(chunk[i].seq)
					if len(page.Tasks) == q.limit && i == len(tasks)-1 && len(candidates) == 0 && lo == lower {
						page.NextCursor = ""
					}
					return page, stats, nil
				}
			}
		}

		hi = lo
		want := q.limit - len(page.Tasks)
		if q.filtersTasks() {
			want = maxListReads - stats.reads
		}
		window = nextWindow(window, scanned, found, want)
	}
	return page, stats, nil
}

// nextWindow sizes the next range of sequences to scan: enough for want
// more candidates at the density found so far, with a quarter more as a
// margin, and listWindowGrowth times the last range while none was found.
func nextWindow(window, scanned, found uint64, want int) uint64 {
	next := window * listWindowGrowth
	if found > 0 && want > 0 {
		estimate := uint64(want)*scanned/found + 1
		estimate += estimate / 4
		next = min(next, max(estimate, listWindow))
	}
	return min(next, maxListWindow)
}

// listBounds returns the tasks stream and the range of its sequences,
// lower inclusive and upper exclusive, that can hold the first events of
// the tasks the query lists.
func (s *Server) listBounds(ctx context.Context, q listQuery) (stream jetstream.Stream, lower, upper uint64, err error) {
	stream, err = s.bus.JetStream().Stream(ctx, s.bus.Names().TasksStream())
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read the state of the tasks stream: %w", err)
	}
	state := stream.CachedInfo().State
	if state.Msgs == 0 {
		return stream, 0, 0, nil
	}
	lower, upper = state.FirstSeq, state.LastSeq+1
	if q.before > 0 {
		upper = min(upper, q.before)
	}

	// An event stored before created_after belongs to a task created
	// before it, because created_at is never later than the first event's
	// storage time.
	if !q.createdAfter.IsZero() {
		seq, found, err := s.firstSeqAt(ctx, q.createdAfter)
		if err != nil {
			return nil, 0, 0, err
		}
		if !found {
			return stream, 0, 0, nil
		}
		lower = max(lower, seq)
	}
	if !q.createdBefore.IsZero() {
		seq, found, err := s.firstSeqAt(ctx, q.createdBefore.Add(createdBeforeSkew))
		if err != nil {
			return nil, 0, 0, err
		}
		if found {
			upper = min(upper, seq)
		}
	}
	return stream, lower, max(lower, upper), nil
}

// firstSeqAt returns the sequence of the first message of the tasks stream
// stored at or after t, or found false when there is none.
func (s *Server) firstSeqAt(ctx context.Context, t time.Time) (uint64, bool, error) {
	msgs, err := jetstreamext.GetBatch(ctx, s.bus.JetStream(), s.bus.Names().TasksStream(), 1, jetstreamext.GetBatchStartTime(t))
	if err != nil {
		return 0, false, fmt.Errorf("find the first event stored at %s: %w", t.Format(time.RFC3339), err)
	}
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("find the first event stored at %s: %w", t.Format(time.RFC3339), err)
		}
		return msg.Sequence, true, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	return 0, false, fmt.Errorf("find the first event stored at %s: the server sent no response", t.Format(time.RFC3339))
}

// listFilters returns the subject filters of the events that create the
// tenant's tasks of the type pattern: submitted and scheduled.
func (s *Server) listFilters(tenant, typePattern string) []string {
	if typePattern == "" {
		typePattern = ">"
	}
	ns := s.bus.Names().Namespace
	return []string{
		ns + ".task." + tenant + ".*." + string(events.KindSubmitted) + "." + typePattern,
		ns + ".task." + tenant + ".*." + string(events.KindScheduled) + "." + typePattern,
	}
}

// scanCandidates returns the messages of every filter stored from
// sequence lo to before hi, sorted by sequence.
func (s *Server) scanCandidates(ctx context.Context, filters []string, lo, hi uint64, stats *listStats) ([]listCandidate, error) {
	var out []listCandidate
	for _, filter := range filters {
		start := lo
		for start < hi {
			next, more, err := s.scanBatch(ctx, filter, start, hi, &out)
			stats.batches++
			if err != nil {
				return nil, err
			}
			if !more {
				break
			}
			start = next
		}
	}
	slices.SortFunc(out, func(a, b listCandidate) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	stats.candidates += len(out)
	return out, nil
}

// scanBatch appends to out the messages of one batch direct get on filter
// from sequence start that lie before hi. It returns where the next batch
// starts and whether one is needed.
func (s *Server) scanBatch(ctx context.Context, filter string, start, hi uint64, out *[]listCandidate) (uint64, bool, error) {
	msgs, err := jetstreamext.GetBatch(ctx, s.bus.JetStream(), s.bus.Names().TasksStream(), listBatch,
		jetstreamext.GetBatchSubject(filter), jetstreamext.GetBatchSeq(start), jetstreamext.GetBatchMaxBytes(listBatchBytes))
	if err != nil {
		return 0, false, fmt.Errorf("scan %s: %w", filter, err)
	}
	n := 0
	next := start
	pending := uint64(0)
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("scan %s: %w", filter, err)
		}
		n++
		if msg.Sequence >= hi {
			return 0, false, nil
		}
		next = msg.Sequence + 1
		pending, _ = strconv.ParseUint(msg.Header.Get(headerNumPending), 10, 64)
		subj, err := events.ParseSubject(msg.Subject)
		if err != nil {
			continue
		}
		*out = append(*out, listCandidate{seq: msg.Sequence, subject: subj})
	}
	if err := ctx.Err(); err != nil {
		return 0, false, fmt.Errorf("scan %s: incomplete response: %w", filter, err)
	}
	if n == 0 {
		return 0, false, fmt.Errorf("scan %s: the server sent no response", filter)
	}
	return next, pending > 0, nil
}

// readCandidates reads and folds the task of each candidate, at most
// listReaders at once. The task of a candidate is nil when the candidate
// is not the task's first event, as for the submitted copy of a cancelled
// delayed task whose scheduled event is still stored, or when the task is
// gone.
func (s *Server) readCandidates(ctx context.Context, stream jetstream.Stream, candidates []listCandidate, stats *listStats) ([]*events.Task, error) {
	tasks := make([]*events.Task, len(candidates))
	errs := make([]error, len(candidates))
	sem := make(chan struct{}, listReaders)
	var wg sync.WaitGroup
	for i, c := range candidates {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tasks[i], errs[i] = s.readCandidate(ctx, stream, c)
		}()
	}
	wg.Wait()
	stats.reads += len(candidates)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return tasks, nil
}

// readCandidate reads the task of a candidate from the candidate on, and
// folds it. A batch read of a task's subjects makes the server count the
// matches up to the end of the stream, which is slow in a long stream. So
// readCandidate first gets the task's last sequence from the last message
// of each subject. Then it reads up to that sequence with single direct
// gets, each of which stops at the next match. A task with more than
// maxSteppedEvents events is read on with [bus.Bus.ReadEvents].
func (s *Server) readCandidate(ctx context.Context, stream jetstream.Stream, c listCandidate) (*events.Task, error) {
	tenant, id := c.subject.Tenant, c.subject.TaskID
	lastByKind, lastSeq, err := s.lastTaskSequences(ctx, tenant, id)
	if err != nil || lastSeq < c.seq {
		// Gone, or expired since the scan.
		return nil, err
	}

	// The candidate is the task's first event unless an earlier scheduled
	// or submitted event is stored, and only those two kinds can start a
	// task.
	if seq, ok := lastByKind[events.KindScheduled]; ok && seq < c.seq {
		return nil, nil
	}
	if c.subject.Kind == events.KindSubmitted {
		first, err := stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(c.subject.String()))
		if err != nil {
			return nil, fmt.Errorf("read task %s: %w", id, err)
		}
		if first.Sequence < c.seq {
			return nil, nil
		}
	}

	te := &bus.TaskEvents{}
	filter := s.bus.Names().TaskFilter(tenant, id)
	for seq := c.seq; seq <= lastSeq; {
		if len(te.Events)+len(te.Invalid) == maxSteppedEvents {
			rest, err := s.bus.ReadEvents(ctx, tenant, id, seq-1)
			if err != nil {
				return nil, err
			}
			te.Events = append(te.Events, rest.Events...)
			te.Invalid = append(te.Invalid, rest.Invalid...)
			te.LastSeq = max(te.LastSeq, rest.LastSeq)
			break
		}
		msg, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read task %s: %w", id, err)
		}
		te.LastSeq = msg.Sequence
		seq = msg.Sequence + 1
		ev, err := bus.Decode(msg.Subject, msg.Header, msg.Data, msg.Sequence, msg.Time)
		if err != nil {
			te.Invalid = append(te.Invalid, events.SkippedEvent{Seq: msg.Sequence, ID: msg.Header.Get(bus.HeaderMsgID), Reason: err.Error()})
			continue
		}
		te.Events = append(te.Events, ev)
	}

	task := events.Fold(te.Events)
	task.Skipped = append(task.Skipped, te.Invalid...)
	task.LastSeq = max(task.LastSeq, te.LastSeq)
	if !task.Exists() {
		return nil, nil
	}
	return task, nil
}

// lastTaskSequences returns the sequence of the last event of each kind of
// a task, and of its last event, with one multi-subject direct get. A task
// without events has none.
func (s *Server) lastTaskSequences(ctx context.Context, tenant, id string) (map[events.Kind]uint64, uint64, error) {
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, s.bus.JetStream(), s.bus.Names().TasksStream(), []string{s.bus.Names().TaskFilter(tenant, id)})
	if err != nil {
		return nil, 0, fmt.Errorf("read task %s: %w", id, err)
	}
	byKind := map[events.Kind]uint64{}
	var last uint64
	n := 0
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read task %s: %w", id, err)
		}
		n++
		last = max(last, msg.Sequence)
		if subj, err := events.ParseSubject(msg.Subject); err == nil {
			byKind[subj.Kind] = max(byKind[subj.Kind], msg.Sequence)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("read task %s: incomplete response: %w", id, err)
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("read task %s: the server sent no response", id)
	}
	return byKind, last, nil
}

// filtersTasks reports whether the query has filters that only a task's
// fold can check, so a page may need many more candidates than tasks.
func (q listQuery) filtersTasks() bool {
	return len(q.statuses) > 0 || !q.createdAfter.IsZero() || !q.createdBefore.IsZero()
}

// matches reports whether a task passes the filters that its first
// event's subject cannot express: status and creation time.
func (q listQuery) matches(task *events.Task) bool {
	if len(q.statuses) > 0 && !slices.Contains(q.statuses, task.Status) {
		return false
	}
	if !q.createdAfter.IsZero() && !task.Created.After(q.createdAfter) {
		return false
	}
	if !q.createdBefore.IsZero() && !task.Created.Before(q.createdBefore) {
		return false
	}
	return true
}
