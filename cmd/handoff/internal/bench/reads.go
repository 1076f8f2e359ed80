package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/handoff-dev/handoff/events"
)

// readPool is how many finished tasks the read rows pick from at random.
const readPool = 1000

// readsRow measures status reads per second, GET /v1/tasks/{id} from
// cfg.HTTPClients clients, against raw batch direct gets of the same
// tasks' subjects.
func (g *generator) readsRow(ctx context.Context) ([]Row, error) {
	figure := fmt.Sprintf("status reads/s, GET /v1/tasks/{id}, %d concurrent", g.cfg.HTTPClients)
	ids, err := g.finishedTasks(ctx, readPool)
	if err != nil {
		return nil, err
	}
	js := g.st.client.JetStream()
	stream := g.st.client.Names().TasksStream()
	baseline := g.settled(func(ctx context.Context) Sample {
		return runWindow(ctx, g.cfg.HTTPClients, g.cfg.Warmup, g.cfg.Duration, func(ctx context.Context, w *window) {
			id := ids[rand.IntN(len(ids))]
			start := time.Now()
			if err := rawRead(ctx, js, stream, events.TaskFilter(g.st.client.Names().Namespace, benchTenant, id)); err != nil {
				w.fail(err)
				return
			}
			w.done(time.Since(start))
		})
	})
	handoff := g.settled(func(ctx context.Context) Sample {
		return g.getWindow(ctx, g.st.apiURL, g.cfg.HTTPClients, ids)
	})
	bs, hs := compare(ctx, g.cfg, RowReads, baseline, handoff, rateValue, formatRate)
	if err := g.profile(ctx, RowReads, handoff); err != nil {
		return nil, err
	}
	return []Row{rateRow(figure, bs, hs, atLeast(0.50))}, nil
}

// getWindow reads random tasks of ids with GET /v1/tasks/{id} from
// clients clients for one window.
func (g *generator) getWindow(ctx context.Context, apiURL string, clients int, ids []string) Sample {
	client := newHTTPClient(clients)
	defer client.CloseIdleConnections()
	return runWindow(ctx, clients, g.cfg.Warmup, g.cfg.Duration, func(ctx context.Context, w *window) {
		id := ids[rand.IntN(len(ids))]
		start := time.Now()
		if err := get(ctx, client, apiURL+"/v1/tasks/"+id); err != nil {
			w.fail(err)
			return
		}
		w.done(time.Since(start))
	})
}

// get reads url and expects 200.
func get(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("read the response of GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// rawRead is the baseline of a status read: one batch direct get of every
// message on the task's subjects, as the bus reads them, without decoding
// or folding.
func rawRead(ctx context.Context, js jetstream.JetStream, stream, filter string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	msgs, err := jetstreamext.GetBatch(ctx, js, stream, 1024, jetstreamext.GetBatchSubject(filter), jetstreamext.GetBatchSeq(1))
	if err != nil {
		return fmt.Errorf("read %s: %w", filter, err)
	}
	n := 0
	for _, err := range msgs {
		if err != nil {
			return fmt.Errorf("read %s: %w", filter, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("read %s: %w", filter, errNoMessages)
	}
	return nil
}

var errNoMessages = errors.New("no messages")

// finishedTasks submits n echo tasks over NATS, 64 at a time, and returns
// the ids of those that succeeded.
func (g *generator) finishedTasks(ctx context.Context, n int) ([]string, error) {
	var (
		mu   sync.Mutex
		ids  []string
		errs []error
		wg   sync.WaitGroup
	)
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for range min(n, 64) {
		wg.Go(func() {
			for range next {
				t, err := g.echo.run(ctx)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					ids = append(ids, t.id)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(ids) < n/2 {
		return nil, fmt.Errorf("only %d of %d tasks to read succeeded: %w", len(ids), n, errors.Join(errs...))
	}
	return ids, nil
}
